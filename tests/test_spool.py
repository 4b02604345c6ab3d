"""The hook spool (principle 3 of docs/design.md), in real subprocesses: a hook that finds the
writer lock held spools its redacted delivery and exits 0; the next writer (a hook, the
CLI, the library) stores every spooled delivery exactly once, in order; a drainer killed
mid-drain leaves a spool the next one finishes; concurrent drainers apply nothing twice;
damaged records are quarantined and reported; a full disk loses nothing silently."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import spool

from conftest import fill_disk, git, mounted_tmpfs, run_agentkeep
from hookpayloads import Delivery, claude_script, recorded, totals
from secretgen import fragments, generate, leaks

LOG = "hook-errors.log"


@pytest.fixture(autouse=True)
def _no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)


@contextmanager
def writer_lock_held(project: Path, how: str) -> Iterator[None]:
    """Hold the store's writer lock in this process until the block ends: ``queue`` is
    agentkeep's queue lock (what a long import holds), ``sqlite`` a ``BEGIN IMMEDIATE``
    of a process that does not take the queue lock (another tool)."""
    db = project / ".agentkeep" / "state.db"
    if how == "queue":
        fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)
    else:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def deliver(d: Delivery, cwd: Path) -> None:
    """One delivery as the agent makes it: exit 0, nothing printed."""
    done = run_agentkeep(*d.argv(), cwd=cwd, input=d.stdin())
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done.stderr


LOOP = """
import base64, io, json, sys
from agentkeep.hook import main
for job in json.load(open(sys.argv[1])):
    sys.stdin = io.TextIOWrapper(io.BytesIO(base64.b64decode(job["stdin"])))
    assert main(job["argv"][1:]) == 0
"""


def deliver_in_a_loop(deliveries: list[Delivery], cwd: Path, spec: Path) -> None:
    """Many deliveries, in order, by one process running the hook's entry point in a loop."""
    jobs = [{"argv": d.argv(), "stdin": base64.b64encode(d.stdin()).decode()} for d in deliveries]
    spec.write_text(json.dumps(jobs))
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(spec)], cwd=cwd, capture_output=True, timeout=300
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done.stderr


def query(project: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{project / '.agentkeep' / 'state.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def spooled(project: Path) -> list[str]:
    directory = project / ".agentkeep" / spool.SPOOL_DIR
    return sorted(os.listdir(directory)) if directory.exists() else []


def log_lines(project: Path) -> list[str]:
    path = project / ".agentkeep" / LOG
    return path.read_text().splitlines() if path.exists() else []


def captured(project: Path) -> list[tuple[Any, ...]]:
    return query(project, "SELECT vendor_event, tool_use_id, turn_id FROM captures ORDER BY id")


def expected(deliveries: list[Delivery]) -> list[tuple[Any, ...]]:
    return [(d.vendor_event, d.tool_use_id, d.turn_id) for d in deliveries]


def session_counts(project: Path) -> dict[tuple[str, str], list[int]]:
    return {
        (source, external): [prompts, tools, failures, turns]
        for source, external, prompts, tools, failures, turns in query(
            project,
            "SELECT source, external_id, prompts, tool_calls, failures, turns FROM sessions",
        )
    }


DRAIN = "import sys, agentkeep; agentkeep.open(sys.argv[1]).close()"


def open_store(project: Path, env: dict[str, str] | None = None) -> int:
    """The library's next writer, in a subprocess: ``agentkeep.open()`` drains."""
    done = subprocess.run(
        [sys.executable, "-c", DRAIN, str(project)],
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    if done.returncode == 0:
        assert done.stderr == b""
    return done.returncode


# -- a held lock ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holder", "next_writer"), [("queue", "hook"), ("sqlite", "cli"), ("queue", "library")]
)
def test_deliveries_under_a_held_lock_are_spooled_then_drained_once_in_order(
    project: Path, holder: str, next_writer: str
) -> None:
    deliveries = claude_script("s-held", str(project))
    with writer_lock_held(project, holder):
        for d in deliveries:
            deliver(d, project)  # exits 0 although the lock is never released meanwhile
        assert len(spooled(project)) == len(deliveries)
        assert query(project, "SELECT count(*) FROM captures") == [(0,)]
    assert log_lines(project) == []  # a busy lock is not a failure

    if next_writer == "hook":
        # Each hook stores spooled deliveries first (for a few ms, at least two), then its
        # own, or spools its own behind the rest: the spool shrinks with every delivery.
        after = claude_script("s-after", str(project)) + claude_script("s-later", str(project))
        used = 0
        while spooled(project):
            assert used < len(after), "the hooks stopped draining the spool"
            deliver(after[used], project)
            used += 1
        deliveries = [*deliveries, *after[:used]]
    elif next_writer == "cli":
        done = run_agentkeep("tasks", "add", "after the lock", cwd=project)
        assert done.returncode == 0, done.stderr
    else:
        assert open_store(project) == 0
    assert spooled(project) == []
    assert not (project / ".agentkeep" / spool.SPOOL_DIR).exists()  # one stat says "empty"
    assert captured(project) == expected(deliveries)
    stamps = [at for (at,) in query(project, "SELECT at FROM captures ORDER BY id")]
    assert stamps == sorted(stamps)  # each keeps the time it was delivered
    want = {key: list(c.values()) for key, c in totals(deliveries).items()}
    assert session_counts(project) == want

    assert open_store(project) == 0  # draining again changes nothing
    assert captured(project) == expected(deliveries)
    assert session_counts(project) == want
    assert log_lines(project) == []


def test_every_library_write_stores_the_spool_first(project: Path) -> None:
    """A store opened before the deliveries were spooled drains them at its next write
    (an importer's next batch, a daemon's next request)."""
    deliveries = claude_script("s-lib", str(project))[:3]
    with agentkeep.open(project) as store:
        with writer_lock_held(project, "queue"):
            for d in deliveries:
                deliver(d, project)
        assert len(spooled(project)) == 3 and store.status().spooled == 3
        task = store.add_task("after the spool").item
        assert spooled(project) == [] and store.status().spooled == 0
        events = store.events()
    assert captured(project) == expected(deliveries)
    started = [e.seq for e in events if e.kind == "session.started"]
    created = [e.seq for e in events if e.kind == "task.created" and e.entity_id == task.id]
    assert started and created and max(started) < min(created)  # the spool went first


def test_spooled_records_are_redacted_and_so_are_the_stored_rows(project: Path) -> None:
    secrets = generate()
    said = " ".join(f"used {text} to log in;" for text, _ in secrets.values())
    deliveries = claude_script("s-secret", str(project))
    for d in deliveries:
        if "prompt" in d.payload:
            d.payload["prompt"] = said
        if "tool_input" in d.payload:
            d.payload["tool_input"] = {"command": said, said: 1}
    needles = [f for _, secret in secrets.values() for f in fragments(secret)]
    with writer_lock_held(project, "queue"):
        for d in deliveries[:4]:
            deliver(d, project)
        assert len(spooled(project)) == 4
        assert leaks(project / ".agentkeep", needles) == []
    assert open_store(project) == 0
    assert len(captured(project)) == 4
    assert leaks(project / ".agentkeep", needles) == []
    rules = query(project, "SELECT count(DISTINCT rule) FROM redactions WHERE entity = 'captures'")
    assert rules[0][0] >= 5  # the redactions made before spooling are recorded


def test_metadata_policy_spools_no_text(project: Path) -> None:
    done = run_agentkeep("config", "set", "capture.policy", "metadata", cwd=project)
    assert done.returncode == 0, done.stderr
    marker = "zebra-quartz-unique-words"
    d = claude_script("s-meta", str(project))[1]
    d.payload["prompt"] = marker
    with writer_lock_held(project, "queue"):
        deliver(d, project)
        [name] = spooled(project)
        record = spool.read(str(project / ".agentkeep" / spool.SPOOL_DIR / name))
        assert record["payload"] is None and record["policy"] == "metadata"
        assert leaks(project / ".agentkeep", [marker]) == []
    assert open_store(project) == 0
    assert query(project, "SELECT event, payload FROM captures") == [("prompt", None)]


def test_a_large_payload_is_spooled_then_spilled_by_the_drainer(project: Path) -> None:
    content = "HEAD-MARKER\n" + "line of a big file\n" * 10_000 + "TAIL-MARKER"
    d = claude_script("s-big", str(project))[2]  # PreToolUse
    d.payload["tool_input"] = {"content": content}
    with writer_lock_held(project, "queue"):
        deliver(d, project)
        assert len(spooled(project)) == 1
    assert open_store(project) == 0
    [(artifact_id, stored)] = query(project, "SELECT artifact_id, payload FROM captures")
    preview = json.loads(stored)
    assert preview["spilled"] is True and preview["artifact_id"] == artifact_id
    assert preview["size"] == len(d.body())
    with agentkeep.open(project) as store:
        back = json.loads(store.read_artifact(artifact_id))
    assert back["tool_input"]["content"] == content
    assert spooled(project) == []


# -- crashes and concurrency -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["spool:applied:3", "spool:committed"])
def test_a_drainer_killed_mid_drain_leaves_a_spool_the_next_one_finishes(
    project: Path, tmp_path: Path, where: str
) -> None:
    deliveries = claude_script("s-kill", str(project))
    with writer_lock_held(project, "queue"):
        deliver_in_a_loop(deliveries, tmp_path, tmp_path / "jobs.json")
    assert len(spooled(project)) == len(deliveries)

    assert open_store(project, {"AGENTKEEP_FAILPOINT": where}) == -9  # SIGKILL
    # Whatever a batch (bounded in time) held when the kill came: what is stored is the
    # oldest deliveries, and every delivery is stored or still spooled.
    stored = captured(project)
    assert stored == expected(deliveries)[: len(stored)]
    if where == "spool:committed":  # a batch committed; none of its records removed yet
        assert stored and len(spooled(project)) == len(deliveries)
    else:  # killed inside a transaction, after its third record
        assert len(stored) < len(deliveries)
        assert len(spooled(project)) == len(deliveries) - len(stored)

    assert open_store(project) == 0
    assert spooled(project) == []
    assert captured(project) == expected(deliveries)
    want = {key: list(c.values()) for key, c in totals(deliveries).items()}
    assert session_counts(project) == want
    assert query(project, "SELECT count(*) FROM events WHERE kind = 'session.started'") == [
        (len(want),)
    ]


CONCURRENT_DRAIN = """
import sys
from agentkeep import hook
while hook.drain_spool(sys.argv[1], wait_ms=120_000, batch=3).applied:
    pass
"""


def test_concurrent_drainers_store_each_record_once_in_order(project: Path, tmp_path: Path) -> None:
    deliveries = recorded(60, str(project))
    with writer_lock_held(project, "queue"):
        deliver_in_a_loop(deliveries, tmp_path, tmp_path / "jobs.json")
        assert len(spooled(project)) == len(deliveries)
        # Four drainers start while the lock is held, so all of them wait for it at once.
        drainers = [
            subprocess.Popen(
                [sys.executable, "-c", CONCURRENT_DRAIN, str(project / ".agentkeep")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
    for drainer in drainers:
        out, err = drainer.communicate(timeout=300)
        assert (drainer.returncode, out, err) == (0, b"", b"")
    assert spooled(project) == []
    assert captured(project) == expected(deliveries)
    want = {key: list(c.values()) for key, c in totals(deliveries).items()}
    assert session_counts(project) == want
    assert log_lines(project) == []


# -- damaged records, doctor -----------------------------------------------------------------


def test_damaged_records_are_quarantined_and_reported(project: Path, tmp_path: Path) -> None:
    deliveries = claude_script("s-damage", str(project))[:5]
    with writer_lock_held(project, "queue"):
        deliver_in_a_loop(deliveries, tmp_path, tmp_path / "jobs.json")
    directory = project / ".agentkeep" / spool.SPOOL_DIR
    names = spooled(project)
    flipped = directory / names[1]
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0x20
    flipped.write_bytes(bytes(data))
    # A write cut short by a kill: its process is gone (this pid was never a hook's...)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    pid = int(dead.stdout)
    (directory / f"{names[2]}.tmp-{pid}-0123abcd").write_bytes(b"agentkeep-spool 1 99 ab")
    # ... and one whose frame is whole (killed between fsync and rename): promoted.
    whole = directory / names[3]
    whole.rename(directory / f"{names[3]}.tmp-{pid}-89abcdef")

    assert open_store(project) == 0
    assert spooled(project) == []
    stored = expected([d for i, d in enumerate(deliveries) if i != 1])
    assert captured(project) == stored
    quarantine = project / ".agentkeep" / spool.QUARANTINE_DIR
    reasons = sorted(p.read_text() for p in quarantine.glob("*.reason"))
    assert len(reasons) == 2
    assert any("checksum" in r for r in reasons) and any("cut short" in r for r in reasons)
    assert sum(1 for line in log_lines(project) if "quarantined" in line) == 2

    done = run_agentkeep("doctor", "--json", cwd=project)
    assert done.returncode == 1
    findings = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
    assert findings["spool-quarantine"]["severity"] == "error"
    assert "2 spooled hook delivery(ies)" in findings["spool-quarantine"]["message"]


def test_doctor_reports_an_undrained_spool_and_fix_drains_it(project: Path) -> None:
    d = claude_script("s-old", str(project))[1]
    with writer_lock_held(project, "sqlite"):
        deliver(d, project)
        [name] = spooled(project)
        directory = project / ".agentkeep" / spool.SPOOL_DIR
        old = name.replace(name[:20], f"{(1_700_000_000 * 10**9):020d}", 1)
        (directory / name).rename(directory / old)  # written long ago
        done = run_agentkeep("doctor", "--json", cwd=project)  # its open cannot drain
        assert done.returncode == 1, done.stderr
        findings = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
        assert findings["spool"]["severity"] == "warning"
        assert "1 hook delivery(ies) waiting" in findings["spool"]["message"]
        assert "--fix" in findings["spool"]["hint"]
    done = run_agentkeep("doctor", "--fix", "--json", cwd=project)
    assert done.returncode == 0, done.stdout
    assert captured(project) == expected([d])


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def tmpfs_project(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(project root with a store on a 8 MiB tmpfs, a file that fills the rest of it)."""
    with mounted_tmpfs(tmp_path / "mnt") as mount:
        root = mount / "proj"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        agentkeep.init_store(root)
        yield root, mount / "filler"


@pytest.mark.parametrize("log", ["room in the log", "no room at all"])
def test_a_full_disk_loses_nothing_silently(
    tmpfs_project: tuple[Path, Path], tmp_path: Path, log: str
) -> None:
    root, filler = tmpfs_project
    deliveries = claude_script("s-full", str(root))
    deliver(deliveries[0], tmp_path)  # the settings cache, the WAL: all in place
    store_dir = root / ".agentkeep"
    if log == "room in the log":
        (store_dir / LOG).write_text("an earlier line\n")  # its page has room left
    fill_disk(filler)
    with writer_lock_held(root, "queue"):
        done = run_agentkeep(*deliveries[1].argv(), cwd=tmp_path, input=deliveries[1].stdin())
    assert (done.returncode, done.stdout) == (0, b"")
    assert [p.name for p in (store_dir / spool.SPOOL_DIR).glob("*")] == []  # no torn record
    if log == "room in the log":
        assert done.stderr == b""
        lost = [line for line in log_lines(root) if "delivery lost" in line]
        assert len(lost) == 1 and "prompt of session s-full" in lost[0]
    else:
        assert b"delivery lost" in done.stderr and b"s-full" in done.stderr
        assert not (store_dir / LOG).exists() or "lost" not in (store_dir / LOG).read_text()

    # Without a held lock, each delivery is stored, spooled or said lost; none dropped.
    said_lost = done.stderr.count(b"delivery lost")
    for d in deliveries[2:6]:
        done = run_agentkeep(*d.argv(), cwd=tmp_path, input=d.stdin())
        assert (done.returncode, done.stdout) == (0, b"")
        said_lost += done.stderr.count(b"delivery lost")
    filler.unlink()  # (a reader cannot open the database on a full disk either)
    logged_lost = sum(1 for line in log_lines(root) if "delivery lost" in line)
    assert len(captured(root)) + len(spooled(root)) + logged_lost + said_lost == 6

    if log == "room in the log":
        done = run_agentkeep("doctor", "--json", cwd=root)
        assert done.returncode == 1, done.stderr
        findings = [f for f in json.loads(done.stdout)["findings"] if f["check"] == "lost-delivery"]
        assert len(findings) == 1 and findings[0]["severity"] == "error"
    deliver(deliveries[-1], tmp_path)
    assert query(root, "SELECT count(*) FROM captures WHERE vendor_event = 'SessionEnd'") == [(1,)]


def test_a_spooled_delivery_from_a_tool_this_version_does_not_know_is_stored(
    project: Path,
) -> None:
    """A newer agentkeep sharing the store may spool a source this one has no tool for:
    the delivery is stored under that source, not quarantined as malformed."""
    from agentkeep import hook

    store_dir = str(project / ".agentkeep")
    found = hook.Delivery()
    found.event, found.session, found.tool_name = "tool_post", "s-1", "Bash"
    settings = hook.load_settings(store_dir)
    hook.spool_delivery(store_dir, "newtool", found, "k1", "2026-12-03T10:00:00.000Z", settings, {})
    with agentkeep.open(project) as store:
        store.add_task("drains the spool")
        assert [(s.source, s.external_id) for s in store.list_sessions()] == [("newtool", "s-1")]
    assert spooled(project) == []
    assert not any("quarantined" in line for line in log_lines(project))
