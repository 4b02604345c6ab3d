"""One privacy boundary (issue 9 §4, principle 5 of docs/design.md).

The same hostile inputs — secrets generated at run time, NUL, lone surrogates, NaN and
Infinity, oversize text, and a redactor that raises — go through every writer: the library
(tasks, notes, events, metrics, sessions, agents, integrations), the hook (a subprocess),
each importer (Claude, Codex, JSONL), import cursors, the hook log (``agentkeep hook`` and
``prime --hook-json``), bundle exports and ``setup`` (backups, original, diff). Afterwards
not one fragment of any secret is anywhere on disk: the store with its live WAL, every
zstd file decompressed, the bundle, AGENTKEEP_HOME and the agent tools' directories.

One policy, two modes (agentkeep.boundary): library input is refused (InvalidInput),
captured agent data is never dropped (replaced); both redact, and both store nothing when
the redactor fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import boundary, redact
from agentkeep.agent_setup import setup_agent
from agentkeep.errors import CaptureError, InvalidInput, RedactionFailed
from agentkeep.importers.files import Cursor, load_cursor, save_cursor
from agentkeep.ops.bundle_export import export_bundle

from agentfixtures import ClaudeSession, CodexRollout
from conftest import run_agentkeep
from secretgen import fragments, generate, leaks

SECRETS = generate()
TOKEN = SECRETS["github-classic"][0]
NEEDLES = [f for _, secret in SECRETS.values() for f in fragments(secret)]
MAX_FIELD = 1_048_576  # store.max_field_bytes by default

# A secret placed so that a cut made *before* redaction (at 200 characters for titles, at
# 1,000 for identifiers) would keep its prefix and more than a dozen characters after it:
# too short for the redactor to recognise, long enough to leak.
CUT_TITLE = "t" * 176 + TOKEN
CUT_IDENT = "s" * 970 + TOKEN

HOSTILE_TEXT = {
    "nul": "before\x00after",
    "surrogate": "bad \udcff byte",
    "oversize": "x" * (4 * MAX_FIELD + 1),  # beyond a text field and a JSON document
}
HOSTILE_NUMBER = {"nan": float("nan"), "infinity": float("inf")}


def every_secret() -> str:
    return " and ".join(f"{name}: {text}" for name, (text, _) in SECRETS.items())


def assert_no_leaks(*directories: Path) -> None:
    found: list[str] = []
    for directory in directories:
        found += leaks(directory, NEEDLES)
    assert found == []


def home() -> Path:
    """agentkeep's per-user directory (setup backups, global.db). The agent tools' own
    directories are not checked: they hold the transcripts the test wrote, secrets and all."""
    return Path(os.environ["AGENTKEEP_HOME"])


# -- the library: refuse what it cannot store, redact secrets -----------------------------------

LIBRARY: dict[str, Callable[[agentkeep.Store, Any], object]] = {
    "task title": lambda s, v: s.add_task(v),
    "task body": lambda s, v: s.add_task("t", body=v),
    "task labels": lambda s, v: s.add_task("t", labels=[v]),
    "task update": lambda s, v: s.update_task(1, body=v),  # task 1: see snapshot()
    "note body": lambda s, v: s.add_note("fact", v),
    "note data": lambda s, v: s.add_note("fact", "n", data={"k": v, "list": [v]}),
    "event data": lambda s, v: s.record_event("tool.finished", data={"v": v}),
    "event batch": lambda s, v: s.record_events([{"kind": "tool.output", "data": {"v": v}}]),
    "metric labels": lambda s, v: s.record_metric("m", 1, labels={"k": v}),
    "metric value": lambda s, v: s.record_metric("m", v),
    "session title": lambda s, v: s.start_session(source="lib", title=v),
    "agent role": lambda s, v: s.register_agent("agent-x", role=v),
    "integration": lambda s, v: s.set_integration("svc", kind="http", settings={"h": v}),
}
TEXT_CALLERS = [name for name in LIBRARY if name != "metric value"]
NUMBER_CALLERS = ["metric value", "event data", "note data", "integration"]
# Callers whose value lands inside a JSON document: a NUL there is its escape \u0000.
JSON_CALLERS = ["note data", "event data", "event batch", "metric labels", "integration"]
REFUSED_TEXT = [
    (caller, hostile)
    for caller in TEXT_CALLERS
    for hostile in sorted(HOSTILE_TEXT)
    if not (hostile == "nul" and caller in JSON_CALLERS)
]


def snapshot(store: agentkeep.Store) -> dict[str, int]:
    """The row counts a write would change (after making sure task 1 exists)."""
    if not store._count("SELECT count(*) FROM tasks WHERE id = 1"):
        store.add_task("the task to update")
    tables = ("tasks", "notes", "events", "metrics", "sessions", "agents", "redactions")
    return {t: store._count(f"SELECT count(*) FROM {t}") for t in tables}


@pytest.mark.parametrize(("caller", "hostile"), REFUSED_TEXT)
def test_library_refuses_text_it_cannot_store(
    store: agentkeep.Store, caller: str, hostile: str
) -> None:
    before = snapshot(store)
    with pytest.raises(InvalidInput) as refused:
        LIBRARY[caller](store, HOSTILE_TEXT[hostile])
    assert not isinstance(refused.value, CaptureError)
    assert snapshot(store) == before  # nothing of the write is stored


NUL_COLUMNS = {
    "notes": "data",
    "events": "data",
    "metrics": "labels",
    "integrations": "settings",
}


@pytest.mark.parametrize("caller", JSON_CALLERS)
@pytest.mark.sqlite_only(
    "counts NULs with SQLite's instr(char(0)); PostgreSQL text cannot hold a NUL at all"
)
def test_library_keeps_a_nul_inside_json_as_its_escape(store: agentkeep.Store, caller: str) -> None:
    """A raw NUL byte is refused in a text column (SQL stops at it); inside JSON it is the
    six characters of its escape, in both modes, so it is stored and reads back equal."""
    before = snapshot(store)
    LIBRARY[caller](store, "a\x00b")
    assert snapshot(store)["events"] > before["events"]  # the write happened
    kept = []
    for table, column in NUL_COLUMNS.items():
        assert store._count(f"SELECT count(*) FROM {table} WHERE instr({column}, char(0))") == 0
        for (doc,) in store._rows(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
            if "a\\u0000b" in doc:  # the escape, and it reads back as the NUL it stands for
                kept.append((table, "'a\\x00b'" in repr(json.loads(doc))))
    assert kept and all(ok for _, ok in kept), kept
    assert "events" in dict(kept)  # the event of the write carries it too


@pytest.mark.parametrize("caller", NUMBER_CALLERS)
@pytest.mark.parametrize("hostile", sorted(HOSTILE_NUMBER))
def test_library_refuses_nan_and_infinity(
    store: agentkeep.Store, caller: str, hostile: str
) -> None:
    before = snapshot(store)
    with pytest.raises(InvalidInput, match=r"NaN|finite"):
        LIBRARY[caller](store, HOSTILE_NUMBER[hostile])
    assert snapshot(store) == before


def test_library_refuses_secret_identifiers(store: agentkeep.Store) -> None:
    for call in (
        lambda: store.add_task("t", idempotency_key=TOKEN),
        lambda: store.start_session(source="lib", external_id=TOKEN),
        lambda: store.register_agent(TOKEN),
    ):
        with pytest.raises(InvalidInput, match="looks like a secret"):
            call()
    assert store._count("SELECT count(*) FROM redactions") == 0


# -- the capture writer: replace what it cannot store, never drop -------------------------------


def test_capture_writer_replaces_and_keeps_everything(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", TOKEN, title=CUT_TITLE, model="m" * (2 * MAX_FIELD))
        again = w.session("claude", TOKEN)  # the same (secret) id finds the same session
        assert again == sid
        w.capture(
            source="claude",
            event="tool_post",
            dedupe_key=f"claude|{TOKEN}|x",
            session_id=sid,
            tool_use_id=CUT_IDENT,
            payload={"nan": float("nan"), "inf": [float("-inf")], "nul": "a\x00b", "k": TOKEN},
        )
        assert w.capture(source="claude", event="x", dedupe_key=f"claude|{TOKEN}|x") is None
        texts = [*HOSTILE_TEXT.values(), every_secret()]
        for seq, text in enumerate(texts):
            w.message(
                sid, seq=seq, external_id=f"{TOKEN}:{seq}", role="user", kind="text", text=text
            )
        w.message(
            sid,
            seq=9,
            external_id="raw",
            role="system",
            kind="raw",
            raw={"v": "x" * (5 * MAX_FIELD)},
        )
    session = store._row("SELECT external_id, title, model FROM sessions")
    assert session is not None
    assert session["external_id"] == "[REDACTED:github-pat]"
    assert session["title"] == "t" * 176 + "[REDACTED:github-pat]"  # redacted, then cut
    assert len(session["model"]) == boundary.MAX_ID_CHARS
    capture = store._row("SELECT payload, tool_use_id, dedupe_key FROM captures")
    assert capture is not None
    assert json.loads(capture["payload"]) == {
        "nan": None,
        "inf": [None],
        "nul": "a\x00b",  # a JSON escape (\\u0000), never a raw NUL in the column
        "k": "[REDACTED:github-pat]",
    }
    assert "[REDACTED:" in capture["tool_use_id"] and TOKEN not in capture["dedupe_key"]
    rows = store._rows("SELECT text, raw FROM messages ORDER BY seq")
    assert rows[0]["text"] == "before\ufffdafter"
    assert rows[1]["text"] == "bad \ufffd byte"
    assert len(rows[2]["text"].encode()) <= MAX_FIELD and "elided by agentkeep" in rows[2]["text"]
    assert json.loads(rows[4]["raw"])["agentkeep_elided_bytes"] > 4 * MAX_FIELD
    audit = {(r.entity, r.field) for r in store.redactions()}
    assert {("sessions", "external_id"), ("sessions", "title"), ("captures", "payload")} <= audit
    assert store._count("SELECT count(*) FROM events WHERE kind = 'session.started'") == 1


def test_what_the_capture_writer_stores_the_library_accepts_unchanged(
    store: agentkeep.Store,
) -> None:
    """Everything REPLACE stores, REFUSE accepts as it is (so import-bundle, which writes
    through the library, takes any bundle of captured data): each stored value of the
    captured tables, bound again in REFUSE mode, comes out equal."""
    from agentkeep.ops.bundle_format import TABLES

    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", f"{TOKEN}\x00", title=CUT_TITLE)
        hostile = {**HOSTILE_TEXT, "secrets": every_secret()}
        w.capture(
            source="claude",
            event="tool_post",
            dedupe_key=f"claude|{TOKEN}|\x00",
            session_id=sid,
            tool_use_id=CUT_IDENT,
            payload={"nan": float("nan"), **hostile, "k\x00": [float("inf")]},
        )
        for seq, text in enumerate(hostile.values()):
            w.message(sid, seq=seq, external_id=f"{TOKEN}:{seq}", role="user", kind="text",
                      text=text, raw={"line": text})  # fmt: skip
    refuse = boundary.Boundary(boundary.REFUSE)
    checked = 0
    for spec in TABLES:
        if spec.name not in ("sessions", "captures", "messages", "events"):
            continue
        for row in store._rows(f"SELECT * FROM {spec.name}"):
            for column, value in dict(row).items():
                if column in spec.json and value is not None:
                    assert refuse.json(column, json.loads(value)) == value, (spec.name, column)
                else:
                    assert refuse.bind(column, value) == value, (spec.name, column)
                checked += 1
    assert checked > 100 and refuse.pending == []  # nothing left to redact either


IDENTIFIERS: list[object] = [" ", "", "\t\n", 7, None, "ok-key", TOKEN, "a\x00b", "bad \udcff"]


def identifier_answer(value: object) -> str:
    try:
        return repr(boundary.Boundary(boundary.REFUSE).ident("the key", value))  # type: ignore[arg-type]
    except InvalidInput as refused:
        return f"refused: {refused.message}"


def test_identifier_answers_do_not_depend_on_earlier_writes(store: agentkeep.Store) -> None:
    """Whether an identifier is accepted is decided by the identifier alone, not by what
    the process bound before (the clean-text cache only saves work)."""
    boundary.clear_cache()
    fresh = {repr(value): identifier_answer(value) for value in IDENTIFIERS}
    assert fresh[repr(" ")].startswith("refused") and fresh[repr("ok-key")] == "'ok-key'"
    for value in IDENTIFIERS:  # every text bound once, as a row's text, in both modes
        if isinstance(value, str):
            for mode in boundary.MODES:
                with contextlib.suppress(InvalidInput):
                    boundary.Boundary(mode).text("body", value)
    store.add_task("t1", body=" ")
    assert {repr(value): identifier_answer(value) for value in IDENTIFIERS} == fresh
    with pytest.raises(InvalidInput, match="non-empty"):
        store.add_task("t2", idempotency_key=" ")
    assert store.add_task("t3", idempotency_key="k").outcome == "created"
    assert store.add_task("t4", idempotency_key="k").outcome == "already_exists"


# -- a redactor that raises: nothing is stored, by any writer -----------------------------------


def break_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every public function of the redactor raises from now on (the designed seam)."""

    def broken(*_: object) -> Any:
        raise RuntimeError("rule engine crashed")

    class BrokenStream:
        def __init__(self) -> None:
            self.counts: dict[str, int] = {}

        def feed(self, chunk: str) -> str:
            raise RuntimeError("rule engine crashed")

        flush = feed

    for name in ("redact_text", "redact_value", "scan", "may_contain_secret"):
        monkeypatch.setattr(redact, name, broken)
    monkeypatch.setattr(redact, "StreamRedactor", BrokenStream)
    boundary.clear_cache()  # texts found clean before would not reach the redactor


def test_a_raising_redactor_stores_nothing_anywhere(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store_dir = project / ".agentkeep"
    with agentkeep.open(project) as store:
        session = store.start_session(source="lib").item.id
        before = snapshot(store)
        artifacts = store._count("SELECT count(*) FROM artifacts")
        break_redactor(monkeypatch)
        with pytest.raises(RedactionFailed):
            store.add_artifact(b"artifact text " + TOKEN.encode())
        with pytest.raises(RedactionFailed):
            store.open_stream(session, "stdout").write(b"output " + TOKEN.encode() + b"\n")
        assert store._count("SELECT count(*) FROM artifacts") == artifacts
        for name in TEXT_CALLERS:
            with pytest.raises(RedactionFailed):
                LIBRARY[name](store, f"fresh {name}")
        with pytest.raises(RedactionFailed), store.transaction() as tx:
            store.capture_writer(tx).session("claude", "fresh-session", title="fresh title")
        with pytest.raises(RedactionFailed), store.transaction() as tx:
            save_cursor(tx.conn, Cursor(source="claude", file_key="k", state={"x": 1}), tx.now)
        with pytest.raises(RedactionFailed):
            export_bundle(store, tmp_path / "out.tar", all=True)
        assert snapshot(store) == before
        assert store._count("SELECT count(*) FROM import_cursors") == 0
    assert not (tmp_path / "out.tar").exists()
    settings = project / ".claude" / "settings.local.json"
    with pytest.raises(RedactionFailed):
        setup_agent("claude", root=project, exe=["/usr/bin/agentkeep"])
    assert not settings.exists()  # the diff is redacted before anything is written
    boundary_log = store_dir / "hook-errors.log"
    from agentkeep import hooklog

    hooklog.log_failure(store_dir, "claude", ValueError(f"bad value {TOKEN}"))
    line = boundary_log.read_text()
    assert "message withheld" in line and "ValueError" in line and TOKEN not in line


BROKEN_HOOK = """
import sys
import agentkeep.redact as r

def broken(*_):
    raise RuntimeError("rule engine crashed")

for name in ("redact_text", "redact_value", "scan", "may_contain_secret"):
    setattr(r, name, broken)
from agentkeep.hook import main
sys.exit(main(["--source", "claude"]))
"""


def test_the_hook_with_a_raising_redactor_stores_nothing(project: Path) -> None:
    payload = {"session_id": "s1", "hook_event_name": "Stop", "cwd": str(project), "x": TOKEN}
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_HOOK],
        input=json.dumps(payload).encode(),
        capture_output=True,
        cwd=project,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == b""
    with agentkeep.open(project) as store:
        assert store._count("SELECT count(*) FROM captures") == 0
        assert store._count("SELECT count(*) FROM sessions") == 0
    log = (project / ".agentkeep" / "hook-errors.log").read_text()
    assert log.count("\n") == 1 and "message withheld" in log
    assert_no_leaks(project / ".agentkeep")


# -- every caller, then one grep over everything -----------------------------------------------


def deliver(
    project: Path, payload: dict[str, Any] | bytes, env: dict[str, str] | None = None
) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    done = run_agentkeep("hook", "--source", "claude", cwd=project, input=data, env=env)
    assert done.returncode == 0 and done.stdout == b""


def test_no_secret_reaches_disk_through_any_writer(project: Path, tmp_path: Path) -> None:
    store_dir = project / ".agentkeep"
    secrets_text = every_secret()
    with agentkeep.open(project) as store:  # held open so the WAL is still there at the end
        # The library: every noun, with every secret.
        for name, call in LIBRARY.items():
            if name != "metric value":
                call(store, secrets_text)
        store.add_task(CUT_TITLE)

        # The hook (a subprocess): secrets in the session id, a title cut at 200, an id
        # cut at 1,000, the payload; NUL, invalid UTF-8, NaN; an oversize payload that is
        # spilled into an artifact (zstd); the same delivery twice.
        base = {"hook_event_name": "UserPromptSubmit", "cwd": str(project)}
        prompt = {**base, "session_id": TOKEN, "session_title": CUT_TITLE, "prompt": secrets_text}
        deliver(project, prompt)
        deliver(project, prompt)
        deliver(project, {**base, "session_id": TOKEN, "prompt": "second prompt"})
        deliver(project, {**base, "session_id": CUT_IDENT, "prompt": "x"})
        raw = json.dumps({**base, "session_id": "s-bytes", "prompt": "nul \u0000 nan"})
        deliver(project, raw.replace('"nan"', "NaN").encode()[:-1] + b', "b": "\xff\xfe"}')
        big = {**base, "session_id": "s-big", "prompt": secrets_text + "y" * 200_000}
        deliver(project, big)

        # The hook log: a secret in a setting, through `hook` and `prime --hook-json`.
        env = {"AGENTKEEP_STORE_BUSY_TIMEOUT_MS": TOKEN}
        done = run_agentkeep("prime", "--hook-json", cwd=project, input=b"{}", env=env)
        assert done.returncode == 0 and done.stdout == b"{}\n"
        deliver(project, {**base, "session_id": "s-log"}, env=env)
        log = (store_dir / "hook-errors.log").read_text().splitlines()
        assert len(log) == 2 and all("[REDACTED:github-pat]" in line for line in log)
        assert "prime --hook-json" in log[0]

        # The importers: a Claude transcript (secret session id, custom title, text, NUL,
        # tool ids kept in the cursor state), a Codex rollout, a JSONL file.
        claude = ClaudeSession(project, session_id=f"sess-{TOKEN}")
        claude.user(secrets_text)
        claude.assistant({"type": "tool_use", "id": f"toolu_{TOKEN}", "name": "Bash", "input": {}})
        claude.unknown("custom-title", customTitle=CUT_TITLE)
        claude.text("nul \x00 here " + secrets_text)
        claude.write_bytes(b'{"type": "user", "broken": "\xff' + TOKEN.encode() + b"\n")
        codex = CodexRollout(project)
        codex.user(CUT_TITLE + " " + secrets_text)
        jsonl = tmp_path / "events.jsonl"
        jsonl.write_text(
            json.dumps({"type": "deploy", "tool": TOKEN, "detail": secrets_text, "n": 1}) + "\n"
        )
        store.import_history("claude")
        store.import_history("codex")
        store.import_history("jsonl", path=jsonl, options={"kind": "event", "name": "ops"})
        assert store._count("SELECT count(*) FROM import_cursors") >= 3

        sessions = {r["external_id"] for r in store._rows("SELECT external_id FROM sessions")}
        assert "[REDACTED:github-pat]" in sessions and "sess-[REDACTED:github-pat]" in sessions
        assert all(TOKEN not in (s or "") for s in sessions)
        by_hook = store._row(
            "SELECT id, prompts FROM sessions WHERE external_id = ?", ("[REDACTED:github-pat]",)
        )
        assert by_hook is not None and by_hook["prompts"] == 2  # deduped, and matched again
        titles = [
            r["title"] for r in store._rows("SELECT title FROM sessions WHERE title IS NOT NULL")
        ]
        cut = [t for t in titles if t.startswith("t" * 50)]  # hook, Claude (200), Codex (80)
        assert len(cut) == 3 and all("ghp_" not in t for t in cut)
        nul = store._row("SELECT payload FROM captures WHERE payload LIKE '%nul%'")
        assert nul is not None and "\x00" not in nul["payload"]

        # A bundle of everything, written beside the store.
        export_bundle(store, store_dir / "all.bundle.tar", all=True)

        # setup: a settings file with secrets is backed up and diffed redacted, and its
        # bytes come back on --remove.
        settings = project / ".claude" / "settings.local.json"
        settings.parent.mkdir()
        user_text = json.dumps({"env": {"GITHUB_TOKEN": TOKEN, "OTHER": secrets_text}}, indent=2)
        settings.write_text(user_text + "\n")
        original = settings.read_bytes()
        done = run_agentkeep("setup", "claude", "--json", cwd=project)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        backup = Path(report["files"][0]["backup"])
        assert "[REDACTED:github-pat]" in backup.read_text()
        for fragment in NEEDLES:
            assert fragment.encode() not in done.stdout + done.stderr
        shown = run_agentkeep("setup", "claude", "--remove", "--dry-run", cwd=project)
        for fragment in NEEDLES:
            assert fragment.encode() not in shown.stdout + shown.stderr
        assert_no_leaks(store_dir, home())
        removed = run_agentkeep("setup", "claude", "--remove", "--json", cwd=project)
        assert json.loads(removed.stdout)["files"][0]["action"] == "restored"
        assert settings.read_bytes() == original  # byte for byte, secrets filled back

        settings.unlink()  # the user's own file holds their secrets; nothing else may
        store.backup()
        assert_no_leaks(store_dir, home())
        recorded = {r.rule for r in store.redactions()}
        assert len(recorded) >= 10
    assert_no_leaks(store_dir)  # after the WAL is checkpointed into state.db


def test_cursor_state_and_key_pass_the_boundary(store: agentkeep.Store) -> None:
    cursor = Cursor(
        source="claude", file_key=f"dir/{TOKEN}.jsonl", state={"tools": {TOKEN: "Bash"}}
    )
    with store.transaction() as tx:
        save_cursor(tx.conn, cursor, tx.now)
    found = load_cursor(store._conn, "claude", f"dir/{TOKEN}.jsonl")  # found by its raw key
    assert found is not None
    assert found.state == {"tools": {"[REDACTED:github-pat]": "Bash"}}
    assert found.file_key == "dir/[REDACTED:github-pat].jsonl"
    audit = [(r.entity, r.field) for r in store.redactions()]
    assert ("import_cursors", "state") in audit and ("import_cursors", "file_key") in audit


def test_setup_restores_a_file_the_user_changed_since_without_our_entries(project: Path) -> None:
    settings = project / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"env": {"GITHUB_TOKEN": TOKEN}}, indent=4) + "\n")
    exe = ["/usr/bin/agentkeep"]
    setup_agent("claude", root=project, exe=exe)
    rotated = SECRETS["npm"][0]
    changed = json.loads(settings.read_text())
    changed["env"]["GITHUB_TOKEN"] = rotated  # the user rotated the key meanwhile
    settings.write_text(json.dumps(changed, indent=4) + "\n")
    result = setup_agent("claude", root=project, remove=True, exe=exe)
    assert result.files[0]["action"] in ("restored", "updated")
    assert json.loads(settings.read_text()) == {"env": {"GITHUB_TOKEN": rotated}}
    assert TOKEN not in settings.read_text()


def test_no_raw_nul_reaches_a_column(project: Path) -> None:
    """No writer stores a NUL byte in a column (SQL search would truncate at it)."""
    deliver(project, {"hook_event_name": "Stop", "cwd": str(project), "session_id": "a\u0000b"})
    with agentkeep.open(project) as store:
        rows = [r["external_id"] for r in store._rows("SELECT external_id FROM sessions")]
    assert rows == ["a\ufffdb"]
