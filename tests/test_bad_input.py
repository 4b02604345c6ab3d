"""Hostile and malformed input, through the library and the CLI (docs/design.md "How the
guarantees are tested").

For every bad input: a clear one-sentence error (JSON on stderr under ``--json``, carrying
``code``), the documented exit code (3 invalid input, 4 not found, 5 conflict; 2 for what
click itself rejects as a usage error), no traceback, and nothing half-written — the row
counts of tasks, notes, events, metrics and redactions are the same after the failure.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import (
    AgentkeepError,
    Conflict,
    InvalidInput,
    NotFound,
    Store,
    StoreNotFound,
)

from conftest import Cli, CliResult, run_agentkeep

TEN_MB = "x" * (10 * 1024 * 1024)
DEEP = "[" * 100_000
COUNTED = ("tasks", "notes", "events", "metrics", "redactions", "task_deps", "idempotency_keys")
EXIT_CODES = {"invalid_input": 3, "not_found": 4, "store_not_found": 4, "conflict": 5}


def counts(root: Path) -> dict[str, int]:
    """Row counts read with a plain read-only connection (independent of config.toml)."""
    uri = f"file:{root / '.agentkeep' / 'state.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store (no git needed) with task 1 (open), task 2 (done), a note and a metric."""
    monkeypatch.setenv("AGENTKEEP_STORE_SYNCHRONOUS", "NORMAL")  # speed; not under test
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    agentkeep.init_store(root)
    with agentkeep.open(root) as store:
        store.add_task("seed")
        closed = store.add_task("closed").item
        store.update_task(closed.id, status="done")
        store.add_note("fact", "a fact")
        store.record_metric("m", 1.5)
    return root


@pytest.fixture
def cli(seeded: Path) -> Cli:
    """The in-process CLI runner, in the seeded project."""
    return Cli()


def assert_clean_error(result: CliResult, code: str, *, as_json: bool) -> dict[str, Any]:
    """One short error on stderr, nothing on stdout, the class's exit code, no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.stdout == "", result.stdout
    assert result.exit_code == EXIT_CODES[code], result.stderr
    assert len(result.stderr) < 1000, "the error echoes the input back"
    if as_json:
        payload = result.error()
        assert payload["code"] == code
        message = payload["error"]
    else:
        lines = result.stderr.splitlines()
        assert lines[0].startswith("error: "), result.stderr
        assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
        message = lines[0].removeprefix("error: ")
    assert message and "\n" not in message
    return {"message": message}


# (argv, stdin, expected code). Each runs with and without --json against the seeded store.
CLI_CASES: list[tuple[str, list[str], bytes | None, str]] = [
    ("stdin body not UTF-8", ["tasks", "add", "T", "--body", "-"], b"ab\xff\xfe", "invalid_input"),
    ("stdin note not UTF-8", ["notes", "add", "handoff", "-"], b"\xc3\x28 half", "invalid_input"),
    (
        "stdin data not UTF-8",
        ["notes", "add", "fact", "x", "--data", "-"],
        b'{"a": "\xff"}',
        "invalid_input",
    ),
    ("NUL in title", ["tasks", "add", "T\x00x"], None, "invalid_input"),
    ("NUL in body (stdin)", ["tasks", "add", "T", "--body", "-"], b"a\x00b", "invalid_input"),
    ("NUL in note (stdin)", ["notes", "add", "handoff", "-"], b"left \x00 here", "invalid_input"),
    ("10 MB title", ["tasks", "add", TEN_MB], None, "invalid_input"),
    ("10 MB body (stdin)", ["tasks", "add", "T", "--body", "-"], TEN_MB.encode(), "invalid_input"),
    ("10 MB note (stdin)", ["notes", "add", "decision", "-"], TEN_MB.encode(), "invalid_input"),
    ("10 MB update", ["tasks", "update", "1", "--body", "-"], TEN_MB.encode(), "invalid_input"),
    ("malformed JSON", ["notes", "add", "fact", "x", "--data", '{"a": 1'], None, "invalid_input"),
    ("JSON NaN", ["notes", "add", "fact", "x", "--data", '{"x": NaN}'], None, "invalid_input"),
    (
        "JSON Infinity",
        ["notes", "add", "fact", "x", "--data", '{"x": Infinity}'],
        None,
        "invalid_input",
    ),
    (
        "JSON -Infinity",
        ["notes", "add", "fact", "x", "--data", '{"x": [1, -Infinity]}'],
        None,
        "invalid_input",
    ),
    (
        "JSON not an object",
        ["notes", "add", "fact", "x", "--data", "[1, 2]"],
        None,
        "invalid_input",
    ),
    ("JSON nested 100k", ["notes", "add", "fact", "x", "--data", DEEP], None, "invalid_input"),
    (
        "JSON nested 100k (stdin)",
        ["notes", "add", "fact", "x", "--data", "-"],
        DEEP.encode(),
        "invalid_input",
    ),
    ("metric NaN", ["metrics", "record", "m", "nan"], None, "invalid_input"),
    ("metric inf", ["metrics", "record", "m", "inf"], None, "invalid_input"),
    ("metric -inf", ["metrics", "record", "m", "--", "-inf"], None, "invalid_input"),
    ("metric huge", ["metrics", "record", "m", "1e400"], None, "invalid_input"),
    ("validation without command", ["notes", "add", "validation", "ok"], None, "invalid_input"),
    (
        "pointer with a bad URL",
        ["notes", "add", "pointer", "--url", "not a url"],
        None,
        "invalid_input",
    ),
    ("blank title", ["tasks", "add", "   "], None, "invalid_input"),
    ("blank label", ["tasks", "add", "T", "-l", " "], None, "invalid_input"),
    ("self dependency", ["tasks", "dep", "add", "1", "1"], None, "invalid_input"),
    ("cycle", ["tasks", "dep", "add", "2", "1"], None, "invalid_input"),  # after 1 -> 2
    (
        "note on a missing task",
        ["notes", "add", "fact", "x", "--task", "77"],
        None,
        "not_found",
    ),
    ("negative id", ["tasks", "show", "--", "-1"], None, "not_found"),
    ("id zero", ["tasks", "update", "0", "--title", "x"], None, "not_found"),
    ("largest id", ["tasks", "show", str(2**63 - 1)], None, "not_found"),
    ("id beyond 64 bits", ["tasks", "show", str(2**63)], None, "invalid_input"),
    ("huge id", ["tasks", "update", str(10**20), "--title", "x"], None, "invalid_input"),
    ("huge parent", ["tasks", "add", "T", "--parent", str(10**20)], None, "invalid_input"),
    ("huge dependency", ["tasks", "dep", "add", "1", str(10**20)], None, "invalid_input"),
    ("huge undo", ["undo", "task", str(10**20)], None, "invalid_input"),
    ("huge filter", ["events", "--entity-id", str(-(10**20))], None, "invalid_input"),
    ("missing task claim", ["tasks", "claim", "424242", "--as", "a"], None, "not_found"),
    ("missing parent", ["tasks", "add", "T", "--parent", "77"], None, "not_found"),
    ("missing dependency", ["tasks", "dep", "add", "1", "77"], None, "not_found"),
    ("missing note", ["notes", "show", "--", "-5"], None, "not_found"),
    ("nothing to undo", ["undo", "task", "1"], None, "not_found"),
    ("bad transition", ["tasks", "update", "2", "--status", "in_progress"], None, "conflict"),
    ("claim a closed task", ["tasks", "claim", "2", "--as", "a"], None, "conflict"),
    (
        "stale expect-status",
        ["tasks", "update", "1", "-p", "0", "--expect-status", "done"],
        None,
        "conflict",
    ),
]


@pytest.mark.parametrize(
    ("argv", "stdin", "code"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_refuses_bad_input_cleanly(
    seeded: Path, cli: Cli, argv: list[str], stdin: bytes | None, code: str
) -> None:
    assert cli("tasks", "dep", "add", "1", "2").exit_code == 0  # for the "cycle" case
    before = counts(seeded)
    assert_clean_error(cli(*argv, input=stdin), code, as_json=False)
    at = argv.index("--") if "--" in argv else len(argv)  # --json goes before a "--"
    as_json = cli(*argv[:at], "--json", *argv[at:], input=stdin)
    assert_clean_error(as_json, code, as_json=True)
    assert counts(seeded) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["tasks", "update", "1", "--status", "finished"],
        ["tasks", "list", "--status", "bogus"],
        ["notes", "add", "gossip", "x"],
        ["notes", "list", "-k", "gossip"],
        ["tasks", "show", "one"],
        ["tasks", "add", "T", "-p", "9"],
    ],
)
def test_cli_rejects_unknown_choices_as_usage_errors(
    seeded: Path, cli: Cli, argv: list[str]
) -> None:
    """What click itself refuses (an unknown status or kind, a non-number) is a usage error:
    exit 2, with the usage text — or the JSON error shape under --json."""
    before = counts(seeded)
    result = cli(*argv)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert "Error: Invalid value" in result.stderr
    as_json = cli(*argv, "--json")
    assert as_json.exit_code == 2
    assert as_json.stdout == ""
    payload = as_json.error()
    assert payload["code"] == "usage"
    assert payload["error"].startswith("Invalid value") and "\n" not in payload["error"]
    assert counts(seeded) == before


# -- the library ------------------------------------------------------------------------


def _library_cases() -> Iterator[tuple[str, Callable[[Store], Any], type[AgentkeepError]]]:
    yield "surrogate title", lambda s: s.add_task("bad \udcff"), InvalidInput
    yield "surrogate body", lambda s: s.add_task("t", body="\ud800"), InvalidInput
    yield "surrogate note", lambda s: s.add_note("handoff", "x\udcffy"), InvalidInput
    yield "surrogate label", lambda s: s.add_task("t", labels=["\udcff"]), InvalidInput
    yield "surrogate in data", lambda s: s.add_note("fact", "x", data={"k": "\udcff"}), InvalidInput
    yield "surrogate event kind", lambda s: s.record_event("k\udcff"), InvalidInput
    yield "NUL title", lambda s: s.add_task("a\x00b"), InvalidInput
    yield "NUL assignee", lambda s: s.claim_task(1, "a\x00"), InvalidInput
    yield "10 MB title", lambda s: s.add_task(TEN_MB), InvalidInput
    yield "10 MB update", lambda s: s.update_task(1, body=TEN_MB), InvalidInput
    yield "10 MB event", lambda s: s.record_event("k", data={"big": TEN_MB}), InvalidInput
    yield "unknown status", lambda s: s.add_task("t", status="finished"), InvalidInput
    yield "unknown status update", lambda s: s.update_task(1, status="finished"), InvalidInput
    yield "unknown status list", lambda s: s.list_tasks(status="finished"), InvalidInput
    yield "unknown note kind", lambda s: s.add_note("gossip", "x"), InvalidInput
    yield "priority 7", lambda s: s.add_task("t", priority=7), InvalidInput
    yield "priority True", lambda s: s.add_task("t", priority=True), InvalidInput
    yield "NaN in data", lambda s: s.add_note("fact", "x", data={"x": float("nan")}), InvalidInput
    yield "inf in event", lambda s: s.record_event("k", data=[float("inf")]), InvalidInput
    yield "NaN metric", lambda s: s.record_metric("m", float("nan")), InvalidInput
    yield "-inf metric", lambda s: s.record_metric("m", float("-inf")), InvalidInput
    yield "not JSON", lambda s: s.record_event("k", data={"x": object()}), InvalidInput
    yield "blank event kind", lambda s: s.record_event("  "), InvalidInput
    yield "negative id", lambda s: s.get_task(-1), NotFound
    yield "largest id", lambda s: s.update_task(2**63 - 1, title="x"), NotFound
    yield "id beyond 64 bits", lambda s: s.get_task(2**63), InvalidInput
    yield "huge claim", lambda s: s.claim_task(-(2**64), "a"), InvalidInput
    yield "huge note task", lambda s: s.add_note("fact", "x", task_id=2**64), InvalidInput
    yield "huge event entity", lambda s: s.record_event("k", entity_id=2**64), InvalidInput
    yield "missing note", lambda s: s.get_note(0), NotFound
    yield "bad transition", lambda s: s.update_task(2, status="blocked"), Conflict
    yield "claim closed", lambda s: s.claim_task(2, "agent"), Conflict


LIBRARY_CASES = list(_library_cases())


@pytest.mark.parametrize(
    ("call", "error"), [c[1:] for c in LIBRARY_CASES], ids=[c[0] for c in LIBRARY_CASES]
)
def test_library_refuses_bad_input_and_writes_nothing(
    seeded: Path, call: Callable[[Store], Any], error: type[AgentkeepError]
) -> None:
    before = counts(seeded)
    with agentkeep.open(seeded) as store:
        with pytest.raises(error) as raised:
            call(store)
        assert "\n" not in raised.value.message
        assert len(raised.value.message) < 500
        # The failed write left the connection usable.
        assert store.add_task("after").outcome == "created"
    after = counts(seeded)
    assert after == {**before, "tasks": before["tasks"] + 1, "events": before["events"] + 1}


def test_deeply_nested_python_data_is_refused(seeded: Path) -> None:
    """100,000 levels (a JSON bomb already parsed by a caller) fails closed."""
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    before = counts(seeded)
    with agentkeep.open(seeded) as store, pytest.raises(InvalidInput, match="nested"):
        store.add_note("fact", "x", data={"deep": value})
    assert counts(seeded) == before


@pytest.mark.parametrize("depth", [64, 600, 990])
def test_nested_json_that_parses_is_stored_or_refused_as_input(
    seeded: Path, cli: Cli, depth: int
) -> None:
    """Nesting json.loads accepts but the store may not: never a redactor or internal
    failure, always created (0) or invalid input (3), and all-or-nothing."""
    nested = "[" * depth + "]" * depth
    before = counts(seeded)
    result = cli("notes", "add", "fact", "x", "--data", f'{{"a": {nested}}}', "--json")
    assert result.exit_code in (0, 3), result.stderr
    if result.exit_code == 0:
        assert counts(seeded)["notes"] == before["notes"] + 1
    else:
        assert result.error()["code"] == "invalid_input"
        assert counts(seeded) == before


# -- missing store, broken config -------------------------------------------------------


def test_missing_store_is_not_found_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "not-a-project"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cli = Cli()
    for argv in (["status"], ["tasks", "list"], ["tasks", "add", "T"]):
        result = cli(*argv)
        assert_clean_error(result, "store_not_found", as_json=False)
        assert "hint: " in result.stderr and "agentkeep init" in result.stderr
        payload = cli(*argv, "--json").error()
        assert payload["code"] == "store_not_found" and "agentkeep init" in payload["hint"]
    explicit = cli("--store", str(elsewhere / "nope"), "status")
    assert_clean_error(explicit, "store_not_found", as_json=False)
    with pytest.raises(StoreNotFound):
        agentkeep.open(elsewhere)
    assert not (elsewhere / ".agentkeep").exists()

    done = run_agentkeep("tasks", "list", cwd=elsewhere)
    assert done.returncode == 4
    assert b"Traceback" not in done.stderr and b"hint: " in done.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("this is = = not toml\n[", "not valid TOML"),
        ('[store]\nsynchronous = "SOMETIMES"\n', "store.synchronous"),
        ("[store]\nbusy_timeout_ms = -5\n", "store.busy_timeout_ms"),
        ('[store]\nmax_field_bytes = "lots"\n', "store.max_field_bytes"),
        ("actor = 5\n", "actor"),
    ],
    # An unknown key is a warning, not an error (test_hardening.py, issue 9 §4).
    ids=["syntax", "bad-choice", "negative", "not-a-number", "wrong-type"],
)
def test_invalid_config_toml_is_a_clear_error(
    seeded: Path, cli: Cli, text: str, words: str
) -> None:
    before = counts(seeded)
    (seeded / ".agentkeep" / "config.toml").write_text(text, encoding="utf-8")
    for argv in (["status"], ["tasks", "add", "T"]):
        result = cli(*argv)
        error = assert_clean_error(result, "invalid_input", as_json=False)
        assert words in error["message"]
        assert "config.toml" in error["message"] or "project" in error["message"]
        assert cli(*argv, "--json").error()["code"] == "invalid_input"
    with pytest.raises(InvalidInput, match=words.split()[0]):
        agentkeep.open(seeded)
    assert counts(seeded) == before


# -- real processes: raw bytes in argv and stdin ----------------------------------------


def test_invalid_utf8_in_argv_and_stdin_in_a_real_process(seeded: Path) -> None:
    before = counts(seeded)
    cases: list[tuple[list[Any], bytes | None, int]] = [
        (["tasks", "add", b"caf\xe9 \xff\xfe"], None, 3),  # -> lone surrogates in sys.argv
        (["tasks", "add", "T", "--body", b"\x80abc"], None, 3),
        (["tasks", "add", "T", "-l", b"\xc3"], None, 3),
        (["notes", "add", "handoff", b"half \xed\xa0\x80 done"], None, 3),  # encoded surrogate
        (["notes", "add", "fact", "x", "--data", b'{"k": "\xff"}'], None, 3),
        (["tasks", "add", "T", "--body", "-"], b"\xff\xfe\x00bad", 3),
        (["notes", "add", "handoff", "-"], b"\xe2\x82", 3),
        (["notes", "add", b"\xff"], None, 2),  # click: not one of the kinds
        (["tasks", "show", b"\xff"], None, 2),  # click: not an integer
    ]
    for i, (argv, stdin, code) in enumerate(cases):
        as_json = i % 2 == 1
        done = run_agentkeep(*argv, *(["--json"] if as_json else []), cwd=seeded, input=stdin)
        assert done.returncode == code, (argv, done.stderr)
        assert b"Traceback" not in done.stdout + done.stderr, done.stderr
        assert done.stdout == b""
        if code == 3:
            if as_json:
                assert json.loads(done.stderr)["code"] == "invalid_input"
            else:
                assert done.stderr.startswith(b"error: ") and b"UTF-8" in done.stderr
    assert counts(seeded) == before
