"""The hook on a PostgreSQL project, and the drainers that send its spool (`agentkeep sync`,
any write, `agentkeep serve`): the hook never connects (it imports no psycopg and works
while the server is down), and every delivery is stored exactly once however many
machines and drainers run, and whatever drainer is SIGKILLed where.

A "machine" is a project directory of its own (its own .agentkeep/ and spool) whose
config.toml names the same PostgreSQL store. The outage is a server of the test's own
stopped with ``pg_ctl stop -m immediate`` (tests/helpers/pg.py's ``private_pg_server``).
PostgreSQL comes from tests/helpers/pg.py (``pg_url``: a fresh schema per test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import hook
from test_hook import ALLOWED_OWN

from conftest import Cli, git, run_agentkeep
from helpers.pg import PgServer
from hookpayloads import Delivery, claude_script, totals

SAFETY = 120.0  # seconds: a safety net for a hung process, never a budget


def machine(where: Path, url: str) -> Path:
    """A project directory of its own whose store is the PostgreSQL store at ``url``."""
    where.mkdir(parents=True)
    git(where, "init", "-q", "-b", "main")
    agentkeep.init_store(where, url=url)
    return where


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    from agentkeep.backends.postgres.connection import connect

    conn = connect(url)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def stored_keys(url: str) -> list[str]:
    return [r[0] for r in rows(url, "SELECT dedupe_key FROM captures ORDER BY id")]


def spooled(root: Path) -> list[Path]:
    spool = root / ".agentkeep" / "spool"
    return sorted(spool.glob("*.delivery")) if spool.exists() else []


def spool_in_process(root: Path, deliveries: list[Delivery]) -> None:
    """Deliveries as the hook takes them (its own function; the subprocess tests below
    run the real command)."""
    store_dir = str(root / ".agentkeep")
    for d in deliveries:
        assert hook.store_delivery(store_dir, d.source, d.payload, d.body()) is None


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + SAFETY
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


# -- the hook ---------------------------------------------------------------------------------


@pytest.mark.parametrize("named_by", ["config", "environment"])
def test_the_hook_only_spools_and_imports_no_psycopg(
    pg_url: str, tmp_path: Path, named_by: str
) -> None:
    env = {}
    if named_by == "config":
        root = machine(tmp_path / "a", pg_url)
    else:  # AGENTKEEP_URL, with a config.toml that names no URL
        root = machine(tmp_path / "a", pg_url)
        config = root / ".agentkeep" / "config.toml"
        config.write_text(config.read_text().replace(f'url = "{pg_url}"', ""))
        assert pg_url not in config.read_text()
        env = {"AGENTKEEP_URL": pg_url}
    deliveries = claude_script("s-pg", str(root))[:4]
    everything: list[str] = []  # the first delivery builds the settings cache (config)
    imported: list[str] = []  # the others: the hook's own path
    for i, d in enumerate(deliveries):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "agentkeep", *d.argv()],
            input=d.stdin(),
            capture_output=True,
            cwd=root,
            timeout=SAFETY,
            env={**os.environ, **env},
        )
        assert done.returncode == 0 and done.stdout == b""
        lines = done.stderr.decode().splitlines()
        assert all(line.startswith("import time:") for line in lines), done.stderr
        modules = [line.rsplit("|", 1)[1].strip() for line in lines[1:]]
        everything += modules
        if i:
            imported += modules[modules.index("runpy") :]
    assert len(spooled(root)) == len(deliveries)
    assert stored_keys(pg_url) == []  # the hook never connected
    assert "agentkeep.spool" in imported
    assert "tomllib" not in imported  # the store's URL read without a TOML parser
    assert not [m for m in everything if m.split(".")[0] in ("psycopg", "psycopg_binary")]
    assert {m for m in imported if m.startswith("agentkeep")} <= ALLOWED_OWN
    stdlib = sys.stdlib_module_names | {"_sha2"}
    assert [m for m in imported if m.split(".")[0] not in stdlib] == [
        m for m in imported if m.startswith("agentkeep")
    ]
    assert not (root / ".agentkeep" / "hook-errors.log").exists()

    done = run_agentkeep("sync", "--json", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["backend"], result["stored"], result["waiting"]) == ("postgres", 4, 0)
    assert len(stored_keys(pg_url)) == 4 and spooled(root) == []
    assert rows(pg_url, "SELECT tool_calls FROM sessions") in ([(1,)], [(2,)], [(0,)])


def test_the_cached_settings_say_postgres_after_the_first_delivery(
    pg_url: str, tmp_path: Path
) -> None:
    """After the first delivery the hook reads its settings cache, not the config (no
    tomllib on the hot path), and the cache knows the store is on PostgreSQL."""
    root = machine(tmp_path / "a", pg_url)
    spool_in_process(root, claude_script("s-cache", str(root))[:1])
    cached = json.loads((root / ".agentkeep" / ".hook-config.json").read_text())
    assert cached["values"]["store.url"] == pg_url
    assert len(spooled(root)) == 1


# -- drainers ---------------------------------------------------------------------------------


def test_two_machines_and_two_drainers_each_store_every_delivery_once(
    pg_url: str, tmp_path: Path
) -> None:
    a = machine(tmp_path / "a", pg_url)
    b = machine(tmp_path / "b", pg_url)
    mine = {root: claude_script(f"s-{root.name}", str(root)) * 1 for root in (a, b)}
    for root in (a, b):  # more than one batch's worth each
        mine[root] += [d for i in range(3) for d in claude_script(f"s-{root.name}{i}", str(root))]
        spool_in_process(root, mine[root])
    total = sum(len(v) for v in mine.values())
    assert len(spooled(a)) + len(spooled(b)) == total

    drainers = [
        subprocess.Popen(
            [sys.executable, "-m", "agentkeep", "sync", "--json"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for root in (a, a, b, b)
    ]
    reported = 0
    for proc in drainers:
        out, err = proc.communicate(timeout=SAFETY)
        assert proc.returncode == 0, err
        reported += json.loads(out)["stored"]
    keys = stored_keys(pg_url)
    assert len(keys) == len(set(keys)) == total
    assert spooled(a) == spooled(b) == []
    # What each drainer reported adds up: no record was counted (applied) twice.
    assert reported == total
    # Drained events are stamped by the database's clock inside the writer lock, as the
    # library's writes are: their times follow seq across machines.
    stamps = [at for (at,) in rows(pg_url, "SELECT at FROM events ORDER BY seq")]
    assert stamps == sorted(stamps)
    # Each machine's deliveries in its own order (a drainer applies its spool oldest first).
    for root in (a, b):
        sessions = {d.session for d in mine[root]}
        got = rows(
            pg_url,
            "SELECT s.external_id FROM captures c JOIN sessions s ON s.id = c.session_id"
            " ORDER BY c.id",
        )
        assert len([s for (s,) in got if s in sessions]) == len(mine[root])


@pytest.mark.parametrize("where", ["spool:applied:3", "spool:committed"])
def test_a_drainer_killed_mid_drain_loses_and_duplicates_nothing(
    pg_url: str, tmp_path: Path, where: str
) -> None:
    root = machine(tmp_path / "a", pg_url)
    deliveries = [d for i in range(3) for d in claude_script(f"s-kill{i}", str(root))]
    spool_in_process(root, deliveries)

    killed = run_agentkeep("sync", cwd=root, env={"AGENTKEEP_FAILPOINT": where})
    assert killed.returncode == -signal.SIGKILL
    stored = stored_keys(pg_url)
    if where == "spool:committed":  # a batch committed; none of its records removed yet
        assert stored and len(spooled(root)) == len(deliveries)
    else:  # killed inside a transaction: nothing of it committed
        assert len(spooled(root)) == len(deliveries) - len(stored)

    done = run_agentkeep("sync", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    keys = stored_keys(pg_url)
    assert len(keys) == len(set(keys)) == len(deliveries)
    assert spooled(root) == []
    sessions = totals(deliveries)  # each session started once, its counters counted once
    assert rows(pg_url, "SELECT count(*) FROM events WHERE kind = 'session.started'") == [
        (len(sessions),)
    ]
    got = rows(
        pg_url, "SELECT source, external_id, prompts, tool_calls, failures, turns FROM sessions"
    )
    assert {(r[0], r[1]): list(r[2:]) for r in got} == {
        key: list(c.values()) for key, c in sessions.items()
    }


def test_opening_and_any_write_drain_the_spool(pg_url: str, tmp_path: Path) -> None:
    root = machine(tmp_path / "a", pg_url)
    spool_in_process(root, claude_script("s-w", str(root))[:3])
    with agentkeep.open(root) as store:
        assert spooled(root) == [] and len(stored_keys(pg_url)) == 3  # opening drained
        spool_in_process(root, claude_script("s-w2", str(root))[:2])
        store.add_task("a write drains first")
        assert spooled(root) == [] and len(stored_keys(pg_url)) == 5
        assert store.sync_spool().stored == 5  # what this store drained, told once
        assert store.sync_spool().stored == 0


def test_a_large_payload_is_spilled_into_an_artifact_by_the_drainer(
    pg_url: str, tmp_path: Path
) -> None:
    root = machine(tmp_path / "a", pg_url)
    content = "HEAD-MARKER\n" + "line of a big file\n" * 10_000 + "TAIL-MARKER"
    d = claude_script("s-big", str(root))[2]  # PreToolUse
    d.payload["tool_input"] = {"content": content}
    done = run_agentkeep(*d.argv(), cwd=root, input=d.stdin())
    assert (done.returncode, done.stderr) == (0, b"")
    assert len(spooled(root)) == 1
    assert Cli()("--store", str(root), "sync", "--json").json()["stored"] == 1
    [(artifact_id, stored)] = rows(pg_url, "SELECT artifact_id, payload FROM captures")
    preview = json.loads(stored)
    assert preview["spilled"] is True and preview["artifact_id"] == artifact_id
    with agentkeep.open(root) as store:
        back = json.loads(store.read_artifact(artifact_id))
    assert back["tool_input"]["content"] == content
    assert spooled(root) == [] and not (root / ".agentkeep" / "hook-errors.log").exists()


# -- PostgreSQL unreachable ---------------------------------------------------------------------


def test_the_hook_works_while_postgres_is_down_and_the_deliveries_arrive_after(
    private_pg_server: PgServer, tmp_path: Path
) -> None:
    url = private_pg_server.url(f"t_{os.urandom(6).hex()}")
    a = machine(tmp_path / "a", url)
    b = machine(tmp_path / "b", url)
    private_pg_server.kill()  # pg_ctl stop -m immediate
    deliveries = claude_script("s-down", str(a))[:5]
    for d in deliveries:
        done = run_agentkeep(*d.argv(), cwd=a, input=d.stdin())
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert len(spooled(a)) == len(deliveries)
    assert not (a / ".agentkeep" / "hook-errors.log").exists()

    once = run_agentkeep("sync", cwd=a)  # says why, no traceback; the records stay
    assert once.returncode != 0 and b"Traceback" not in once.stderr
    assert b"PostgreSQL" in once.stderr and len(spooled(a)) == len(deliveries)

    watcher = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "sync", "--watch", "--json"],
        cwd=a,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        assert b"retrying" in watcher.stderr.readline()  # told once, and it goes on
        private_pg_server.start()
        line = json.loads(watcher.stdout.readline())
        assert line["backend"] == "postgres" and line["stored"] >= 1
        wait_for(lambda: len(stored_keys(url)) == len(deliveries), "the deliveries to arrive")
        with agentkeep.open(b) as teammate:  # a teammate's store sees them
            started = teammate.events(entity="session", kind="session.started")
            assert len(started) == len(totals(deliveries))
        # More deliveries while it watches arrive without another command.
        more = claude_script("s-up", str(a))[:2]
        for d in more:
            assert run_agentkeep(*d.argv(), cwd=a, input=d.stdin()).returncode == 0
        wait_for(
            lambda: len(stored_keys(url)) == len(deliveries) + len(more),
            "the later deliveries to arrive",
        )
        # Killed again while it watches: told again, and what comes meanwhile waits.
        private_pg_server.kill()
        late = claude_script("s-late", str(a))[:1]
        for d in late:
            assert run_agentkeep(*d.argv(), cwd=a, input=d.stdin()).returncode == 0
        assert b"retrying" in watcher.stderr.readline()
        private_pg_server.start()
        wait_for(
            lambda: len(stored_keys(url)) == len(deliveries) + len(more) + len(late),
            "the deliveries made in the second outage to arrive",
        )
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(SAFETY) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.communicate(timeout=SAFETY)  # and its pipes closed
    assert spooled(a) == []
    keys = stored_keys(url)
    assert len(keys) == len(set(keys))


# -- the server, and SQLite ---------------------------------------------------------------------


def test_the_server_sends_the_spool_while_it_runs(pg_url: str, tmp_path: Path) -> None:
    from helpers.server import running_server

    root = machine(tmp_path / "a", pg_url)
    with running_server(root / ".agentkeep"):
        spool_in_process(root, claude_script("s-srv", str(root))[:3])
        wait_for(lambda: len(stored_keys(pg_url)) == 3, "the server to drain the spool")
        wait_for(lambda: spooled(root) == [], "the records to be removed")


def test_sync_on_a_sqlite_project_drains_too(project: Path) -> None:
    import fcntl

    lock = os.open(project / ".agentkeep" / "state.db.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the writer lock busy: the hook spools
        for d in claude_script("s-lite", str(project))[:2]:
            done = run_agentkeep(*d.argv(), cwd=project, input=d.stdin())
            assert done.returncode == 0
    finally:
        os.close(lock)
    assert len(spooled(project)) == 2
    result = Cli()("sync", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["backend"] == "sqlite" and result.json()["stored"] == 2
    assert spooled(project) == []
    human = Cli()("sync")
    assert "stored 0 hook delivery(ies) in the SQLite store" in human.stdout
