"""The privacy boundary on PostgreSQL (issue 12): secrets generated at run time, of every
format the redactor knows, go through every ingress of a PostgreSQL store — the library
(tasks, notes, events, metrics, sessions, agents, integrations, artifacts, streams), the
CLI (arguments, stdin, `agentkeep run`'s output), hook deliveries (spooled, then
`agentkeep sync`), the Claude, Codex, OpenCode and JSONL importers, the HTTP API, the MCP
tools, `db copy` into the server and a bundle import. Afterwards not one fragment of any
of them is anywhere PostgreSQL or agentkeep wrote: a ``pg_dump`` of the database, every
byte of the server's directory (heap, TOAST, WAL, after a CHECKPOINT, while the server
runs; and its log, kept with ``log_statement = 'all'``: agentkeep binds values client-side,
so a raw secret sent in any statement, even a lookup, would be there), and every file
under the project's ``.agentkeep/`` (spool, streams, objects, logs; zstd decompressed).
A canary planted past the boundary (an UPDATE through psycopg) is found by the same
scans, so the check cannot pass vacuously.

The server is one of the test's own (``private_pg_server``): its data directory holds
nothing but this test's writes, and reading it disturbs no one.

Also: a store URL with a password is refused by ``init --url`` and ``config set
store.url`` and never written to config.toml, and when ``AGENTKEEP_URL`` holds one, errors
and ``agentkeep status`` show it as ``***``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

import agentkeep
from agentkeep.mcp.server import ProjectStores, build_server
from agentkeep.ops.bundle_export import export_bundle
from test_mcp import ok

from agentfixtures import ClaudeSession, CodexRollout
from conftest import Cli, git, run_agentkeep
from helpers.pg import PgServer, PgUrl
from helpers.server import running_server
from opencodefixtures import Ids, OpenCodeDB, conversation
from secretgen import fragments, generate, leaks

SECRETS = generate()
TOKEN = SECRETS["github-classic"][0]
NEEDLES = [f for _, secret in SECRETS.values() for f in fragments(secret)]
EVERY_SECRET = " and ".join(f"{name}: {text}" for name, (text, _) in SECRETS.items())
SENTENCE = f"deploy failed; used {EVERY_SECRET} to log in"


def project_on(where: Path, url: str | None) -> Path:
    where.mkdir(parents=True)
    git(where, "init", "-q", "-b", "main")
    agentkeep.init_store(where, url=url)
    return where


def grep(directory: Path, needles: list[str]) -> list[str]:
    """The files under ``directory`` holding a needle's raw bytes (grep, as root: the data
    directory belongs to the server's user)."""
    hits = []
    for needle in needles:
        done = subprocess.run(
            ["grep", "-r", "-l", "-a", "-F", "--", needle, str(directory)],
            capture_output=True,
            text=True,
        )
        assert done.returncode in (0, 1), f"grep exited {done.returncode}: {done.stderr}"
        hits += [f"{line} contains {needle[:6]}…" for line in done.stdout.splitlines()]
    return hits


def in_dump(dump: bytes, needles: list[str]) -> list[str]:
    return [f"pg_dump contains {n[:6]}…" for n in needles if n.encode() in dump]


def checkpoint(server: PgServer) -> None:
    """Everything in shared buffers written to the data files (the WAL has it already)."""
    with server.connect() as conn:
        conn.execute("CHECKPOINT")


def uncompressed_columns(server: PgServer, schema: str) -> None:
    """Long values are kept out of line uncompressed (STORAGE EXTERNAL), so a secret in a
    value past TOAST's threshold is in the data files as its own bytes: pglz would split
    it with control bytes and a raw scan of the data directory could not see it (the
    pg_dump sees every value either way). Only the test's store is changed."""
    with server.connect() as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " JOIN information_schema.tables USING (table_schema, table_name)"
            " WHERE table_schema = %s AND data_type = 'text' AND table_type = 'BASE TABLE'",
            (schema,),
        ).fetchall()
        assert len(columns) > 20
        for table, column in columns:
            conn.execute(
                f'ALTER TABLE "{schema}"."{table}" ALTER COLUMN "{column}" SET STORAGE EXTERNAL'
            )


def log_every_statement(server: PgServer) -> None:
    """``log_statement = 'all'``, as a team's server may be set up (auditing, debugging):
    every statement agentkeep sends goes to the server's log with its values inline
    (client-side binding), so the scan of the log shows whether a raw secret was ever
    sent to the server, even in a lookup that stores nothing."""
    with server.connect() as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("SELECT 'agentkeep-log-probe'")  # a fresh session reads the new setting
    log = server.pg_dir / "log" if server.pg_dir is not None else None
    assert log is not None
    deadline = 60.0  # only a safety net: the reload is signalled, the probe then logged
    started = time.monotonic()
    while b"agentkeep-log-probe" not in log.read_bytes():
        assert time.monotonic() - started < deadline, "log_statement never took effect"
        with server.connect() as conn:
            conn.execute("SELECT 'agentkeep-log-probe'")
        time.sleep(0.05)


# -- the ingresses --------------------------------------------------------------------------


def through_the_library(store: agentkeep.Store) -> None:
    task = store.add_task(f"title {TOKEN}", body=SENTENCE, labels=[TOKEN]).item
    store.update_task(task.id, body=SENTENCE + " (updated)", labels=[TOKEN, "x"])
    store.add_note("fact", SENTENCE, data={"command": f"curl -H '{TOKEN}'", TOKEN: 1})
    store.record_event("tool.finished", data={"output": SENTENCE, "args": [TOKEN]})
    store.record_events([{"kind": "tool.output", "data": {"text": SENTENCE}}])
    store.record_metric("m", 1, labels={"k": SENTENCE})
    session = store.start_session(source="lib", title=SENTENCE).item.id
    store.register_agent("agent-lib", role=SENTENCE)
    store.set_integration("svc", kind="http", settings={"header": SENTENCE})
    store.add_artifact(f"artifact text {SENTENCE}\n".encode(), name="a.log", session_id=session)
    writer = store.open_stream(session, "stdout")
    for line in SENTENCE.split(" and "):  # a secret per write, some split across writes
        writer.write(f"{line} and ".encode())
    writer.close()


def through_the_cli(project: Path) -> None:
    cli = Cli()
    assert cli("tasks", "add", f"cli {TOKEN}", "--body", SENTENCE).exit_code == 0
    assert cli("tasks", "add", "from stdin", "--body", "-", input=SENTENCE).exit_code == 0
    assert cli("notes", "add", "fact", "-", input=SENTENCE).exit_code == 0
    data = json.dumps({"detail": SENTENCE, TOKEN: 1})
    assert cli("notes", "add", "fact", "with data", "--data", data).exit_code == 0
    assert cli("metrics", "record", "m", "2", "-l", f"k={TOKEN}").exit_code == 0
    assert cli("sessions", "start", "--title", SENTENCE).exit_code == 0
    assert cli("agents", "register", "agent-cli", "--role", SENTENCE).exit_code == 0
    failed = cli("notes", "add", "pointer", "--url", f"not-a-url {SENTENCE}")
    assert failed.exit_code == 3 and not [n for n in NEEDLES if n in failed.stderr]
    assert cli("config", "set", "actor", "--", TOKEN).exit_code == 3
    # `agentkeep run`: a real command's output into the session's streams
    script = f"printf '%s\\n' {json.dumps(SENTENCE)}; printf '%s' {json.dumps(TOKEN)} >&2"
    done = run_agentkeep("run", "--", "sh", "-c", script, cwd=project)
    assert done.returncode == 0, done.stderr.decode()


def through_the_hook(project: Path) -> None:
    """Deliveries as Claude Code makes them: on PostgreSQL the hook only spools, redacted;
    the spool is scanned before `agentkeep sync` sends it."""
    base = {"hook_event_name": "UserPromptSubmit", "cwd": str(project)}
    for payload in (
        {**base, "session_id": TOKEN, "session_title": SENTENCE, "prompt": SENTENCE},
        {**base, "session_id": "s-big", "prompt": SENTENCE + "y" * 200_000},  # spilled
        {
            "hook_event_name": "PostToolUse",
            "cwd": str(project),
            "session_id": "s-tool",
            "tool_name": "Bash",
            "tool_input": {"command": f"curl -H '{TOKEN}'"},
            "tool_response": {"stdout": SENTENCE},
        },
    ):
        done = run_agentkeep(
            "hook", "--source", "claude", cwd=project, input=json.dumps(payload).encode()
        )
        assert done.returncode == 0 and done.stdout == b"", done.stderr.decode()
    spool = project / ".agentkeep" / "spool"
    assert len(list(spool.glob("*.delivery"))) == 3  # waiting, not sent: the hook never connects
    assert leaks(project / ".agentkeep", NEEDLES) == []
    synced = run_agentkeep("sync", "--json", cwd=project)
    assert synced.returncode == 0, synced.stderr.decode()
    assert json.loads(synced.stdout)["stored"] == 3


def through_the_importers(store: agentkeep.Store, project: Path, tmp_path: Path) -> None:
    claude = ClaudeSession(project, session_id=f"sess-{TOKEN}")
    claude.user(SENTENCE)
    claude.assistant({"type": "tool_use", "id": f"toolu_{TOKEN}", "name": "Bash", "input": {}})
    claude.text("nul \x00 here " + SENTENCE)
    codex = CodexRollout(project)
    codex.user(SENTENCE)
    opencode = OpenCodeDB(Path(os.environ["XDG_DATA_HOME"]) / "opencode" / "opencode.db")
    try:
        conversation(opencode, Ids(), directory=str(project), secret=EVERY_SECRET)
    finally:
        opencode.close()
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text(json.dumps({"type": "deploy", "tool": TOKEN, "detail": SENTENCE}) + "\n")
    for source in ("claude", "codex", "opencode"):
        assert store.import_history(source).sessions >= 1, source
    store.import_history("jsonl", path=jsonl, options={"kind": "event", "name": "ops"})


def through_http(store_dir: Path) -> None:
    with running_server(store_dir) as server:
        api = server.url + "/api/v1"
        posts: list[tuple[str, dict[str, Any]]] = [
            ("/tasks", {"title": f"http {TOKEN}", "body": SENTENCE, "labels": [TOKEN]}),
            ("/notes", {"kind": "fact", "body": SENTENCE, "data": {"k": SENTENCE}}),
            ("/events", {"kind": "deploy.finished", "data": {"log": SENTENCE}}),
            ("/metrics", {"name": "m", "value": 3, "labels": {"k": SENTENCE}}),
            ("/sessions", {"source": "http", "title": SENTENCE}),
        ]
        for path, body in posts:
            response = httpx.post(api + path, json=body, headers=server.auth, timeout=60)
            assert response.status_code < 300, (path, response.text)
            assert not [n for n in NEEDLES if n in response.text]
        task_id = httpx.post(api + "/tasks", json={"title": "t"}, headers=server.auth).json()
        patched = httpx.patch(
            f"{api}/tasks/{task_id['task']['id'] if 'task' in task_id else task_id['id']}",
            json={"body": SENTENCE},
            headers=server.auth,
            timeout=60,
        )
        assert patched.status_code < 300, patched.text


def through_mcp(project: Path) -> None:
    stores = ProjectStores(project, "tester@test")

    async def main() -> None:
        with anyio.fail_after(120):  # a safety net for a stuck server, never a budget
            await calls()

    async def calls() -> None:
        async with Client(build_server(stores)) as client:
            for tool, args in (
                ("task_add", {"title": f"mcp {TOKEN}", "body": SENTENCE, "labels": [TOKEN]}),
                ("note_write", {"kind": "fact", "body": SENTENCE}),
            ):
                ok(await client.call_tool(tool, args))
            task = ok(await client.call_tool("task_add", {"title": "to update"}))["task"]
            ok(await client.call_tool("task_update", {"task_id": task["id"], "body": SENTENCE}))

    try:
        anyio.run(main)
    finally:
        stores.close()


def a_sqlite_store_with_secrets(where: Path) -> Path:
    """A SQLite project whose records went through its own boundary: the source of `db
    copy` and of the bundle."""
    source = project_on(where, None)
    with agentkeep.open(source) as store:
        through_the_library(store)
    return source


def a_bundle_with_raw_secrets(where: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundle whose rows hold the secrets themselves (as from a tool that never redacted):
    written and exported here with the redactor switched off, then switched on again. The
    import must redact every row it stores."""
    from agentkeep import boundary, redact

    source = project_on(where / "proj", None)
    bundle = where / "raw.bundle.tar"
    with monkeypatch.context() as patched, agentkeep.open(source) as store:
        patched.setattr(redact, "redact_text", lambda text: (text, {}))
        boundary.clear_cache()
        task = store.add_task(f"raw {TOKEN}", body=SENTENCE, labels=[TOKEN]).item
        store.add_note("fact", SENTENCE, data={"k": SENTENCE}, task_id=task.id)
        store.record_event("deploy.finished", data={"log": SENTENCE})
        store.start_session(source="raw", title=SENTENCE)
        export_bundle(store, bundle, all=True)
    boundary.clear_cache()
    assert leaks(where, NEEDLES)  # the bundle does hold them
    return bundle


# -- the test -------------------------------------------------------------------------------


def test_no_secret_reaches_postgres_or_the_project_through_any_ingress(
    private_pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = private_pg_server
    project = project_on(tmp_path / "proj", server.url("ak_privacy"))
    monkeypatch.chdir(project)
    store_dir = project / ".agentkeep"
    uncompressed_columns(server, "ak_privacy")
    log_every_statement(server)
    with agentkeep.open(project) as store:
        through_the_library(store)
        through_the_cli(project)
        through_the_hook(project)
        through_the_importers(store, project, tmp_path)
        through_http(store_dir)
        through_mcp(project)
        source = a_sqlite_store_with_secrets(tmp_path / "source")
        bundle = tmp_path / "all.bundle.tar"
        with agentkeep.open(source) as other:
            export_bundle(other, bundle, all=True)
        raw_bundle = a_bundle_with_raw_secrets(tmp_path / "hostile", monkeypatch)
        for path in (bundle, raw_bundle):
            imported = run_agentkeep("import-bundle", str(path), "--json", cwd=project)
            assert imported.returncode == 0, imported.stderr.decode()
            assert not [n for n in NEEDLES if n.encode() in imported.stdout + imported.stderr]
        assert store._count("SELECT count(*) FROM tasks WHERE title LIKE 'raw %'") == 1
        copied = run_agentkeep("db", "copy", "--to", server.url("ak_copied"), "--json", cwd=source)
        assert copied.returncode == 0, copied.stderr.decode()
        assert json.loads(copied.stdout)["verified"]
        # every ingress wrote: the scans below look at real rows
        assert store._count("SELECT count(*) FROM captures") >= 3
        assert store._count("SELECT count(*) FROM messages") >= 6
        assert store._count("SELECT count(*) FROM streams") >= 3
        assert store._count("SELECT count(*) FROM artifacts") >= 2
        assert len({r.rule for r in store.redactions()}) >= 10
    assert server.pg_dir is not None
    logged = (server.pg_dir / "log").read_bytes()  # the statements, their values inline
    assert b"INSERT INTO" in logged and b"[REDACTED:github-pat]" in logged
    checkpoint(server)
    found = in_dump(server_dump(server), NEEDLES)
    assert server.pg_dir is not None and server.data_dir.is_relative_to(server.pg_dir)
    found += grep(server.pg_dir, NEEDLES)  # the data directory and the server's log
    found += leaks(store_dir, NEEDLES) + leaks(source / ".agentkeep", NEEDLES)
    found += leaks(Path(os.environ["AGENTKEEP_HOME"]), NEEDLES)
    assert found == []

    # The scans find what gets past the boundary: a raw INSERT through psycopg.
    canary = "ghp_" + secrets.token_hex(18)
    with server.connect() as conn:
        conn.execute(
            "UPDATE ak_privacy.notes SET body = %s"
            " WHERE id = (SELECT min(id) FROM ak_privacy.notes)",
            (f"planted {canary}",),
        )
    checkpoint(server)
    planted = fragments(canary)
    assert len(in_dump(server_dump(server), planted)) == 2
    assert grep(server.data_dir, planted)  # the heap file (and the WAL)
    assert grep(server.data_dir / "pg_wal", planted)


def server_dump(server: PgServer) -> bytes:
    """``pg_dump`` of the server's test database (every schema: the store and the copy)."""
    done = subprocess.run(
        [str(server.bindir / "pg_dump"), "--dbname", server.dsn, "--no-owner"],
        capture_output=True,
        timeout=300,
        check=True,
    )
    assert b"CREATE TABLE ak_privacy.tasks" in done.stdout
    assert b"CREATE TABLE ak_copied.tasks" in done.stdout
    return done.stdout


# -- passwords in store URLs ----------------------------------------------------------------


def test_a_url_with_a_password_is_refused_and_never_shown(
    pg_url: PgUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = secrets.token_hex(12)
    # postgresql://USER@/db?host=… or (scripts/postgres) postgresql:///db?host=…&user=USER
    scheme, _, rest = pg_url.partition("://")
    netloc = rest.split("/", 1)[0]
    if "@" in netloc:
        userinfo, _, after = rest.partition("@")
        with_password = f"{scheme}://{userinfo}:{password}@{after}"
    else:
        from urllib.parse import parse_qs, urlsplit

        user = parse_qs(urlsplit(pg_url).query).get("user", ["postgres"])[0]
        with_password = f"{scheme}://{user}:{password}@{rest}"
    in_query = f"{pg_url}&password={password}"
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    monkeypatch.chdir(root)
    cli = Cli()
    for url in (with_password, in_query):
        refused = cli("init", "--url", url)
        assert refused.exit_code == 3 and "password" in refused.stderr
        assert password not in refused.stdout + refused.stderr
    assert not (root / ".agentkeep").exists()
    assert cli("init").exit_code == 0
    config = root / ".agentkeep" / "config.toml"
    before = config.read_bytes()
    for url in (with_password, in_query):
        refused = cli("config", "set", "store.url", url)
        assert refused.exit_code == 3 and password not in refused.stdout + refused.stderr
    assert config.read_bytes() == before
    assert cli("config", "set", "store.url", pg_url).exit_code == 0  # the same without it
    assert pg_url in config.read_text()

    # AGENTKEEP_URL with a password (libpq takes it from there; trust auth ignores it)
    project_on(tmp_path / "other", pg_url)  # the store the URL names
    for url in (with_password, in_query):
        env = {"AGENTKEEP_URL": url}
        status = run_agentkeep("status", cwd=root, env=env)
        shown = run_agentkeep("status", "--json", cwd=root, env=env)
        for done in (status, shown):
            output = (done.stdout + done.stderr).decode()
            assert done.returncode == 0 and password not in output, output
        assert json.loads(shown.stdout)["counts"]["events"] >= 1  # it read the store
        assert json.loads(shown.stdout)["backend"] == "postgres"
        assert "***" in status.stdout.decode()  # it names the database, without the password
        # an unreachable server: the error names the URL, with *** for the password
        dead = url.replace(f"port={pg_url_port(pg_url)}", "port=1")
        assert dead != url
        failed = run_agentkeep("status", cwd=root, env={"AGENTKEEP_URL": dead})
        output = (failed.stdout + failed.stderr).decode()
        assert failed.returncode != 0 and password not in output, output
        assert "***" in output, output
    # AGENTKEEP_STORE_URL (the setting's variable) with a password: refused, and the
    # refusal, in stderr and in the hook's log on disk, shows it as ***
    for url in (with_password, in_query):
        env = {"AGENTKEEP_STORE_URL": url}
        refused_env = run_agentkeep("status", cwd=root, env=env)
        output = (refused_env.stdout + refused_env.stderr).decode()
        assert refused_env.returncode == 3 and "holds a password" in output
        assert password not in output, output
        payload = json.dumps({"session_id": "s", "hook_event_name": "Stop", "cwd": str(root)})
        hooked = run_agentkeep(
            "hook", "--source", "claude", cwd=root, input=payload.encode(), env=env
        )
        assert hooked.returncode == 0 and password.encode() not in hooked.stderr
    assert "password" in (root / ".agentkeep" / "hook-errors.log").read_text()
    for url in (with_password, in_query):  # db copy names its target in its refusal
        refused = cli("db", "copy", "--to", url)
        assert refused.exit_code == 3 and password not in refused.stdout + refused.stderr
    assert leaks(root / ".agentkeep", [password]) == []


def pg_url_port(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    return parse_qs(parts.query).get("port", [str(parts.port or 5432)])[0]
