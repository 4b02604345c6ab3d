"""Durability, crash consistency, concurrency and fork safety against real SQLite files and
real processes (docs/design.md "How the guarantees are tested"). No mocks.

Writers are ``tests/helpers/writer.py`` child processes that go through the library and
print one JSON line per acknowledged write, only after the call returned. Their stdout goes
to a file (a pipe could fill up and stall them). A write is *acknowledged* when its line
was printed; committed-but-unacknowledged writes are the legitimate "in doubt" set.

Random choices come from ``DURABILITY_SEED`` (printed in every summary line); timing is not
reproducible, but every assertion holds for every interleaving. Summary lines go to stderr
(shown with ``pytest -rA`` or ``-s``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from contract.harness import Child  # one harness for child writers

from conftest import run_agentkeep

WRITER = Path(__file__).resolve().parent / "helpers" / "writer.py"
SEED = int(os.environ.get("DURABILITY_SEED", "20250601"))
CRASH_KINDS = ("event", "task", "note")  # writer.py: write n goes to CRASH_KINDS[n % 3]


# -- harness ------------------------------------------------------------------------------


@contextmanager
def writer(log_dir: Path, label: str, *args: str) -> Iterator[Child]:
    """Run ``writer.py ARGS``; on exit it is killed if still running, and always reaped."""
    log_dir.mkdir(exist_ok=True)
    out, err = log_dir / f"{label}.out", log_dir / f"{label}.err"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), *args], stdout=out_file, stderr=err_file
        )
        try:
            yield Child(label, proc, out, err)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def wait_until(
    children: list[Child], ready: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
) -> None:
    """Poll until ``ready(acks)`` holds for every child; fail if one dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [c for c in children if not ready(c.acks())]
        if not pending:
            return
        for child in pending:
            if child.proc.poll() is not None and not ready(child.acks()):
                pytest.fail(f"writer exited early ({child.proc.returncode}):\n{child.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for writers: {[c.out.name for c in pending]}")
        time.sleep(0.002)


def report(line: str) -> None:
    """A summary line for people and CI logs (pytest shows it with -rA or -s)."""
    sys.stderr.write(line + "\n")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def integrity(store: agentkeep.Store) -> list[str]:
    return [row[0] for row in store._conn.execute("PRAGMA integrity_check").fetchall()]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# -- kill loop ----------------------------------------------------------------------------

CRASH_KILLS = 60  # at least this many SIGKILLs in total...
CRASH_MID_STREAM = 25  # ...and at least this many after the writer's first ack
# A ceiling that fails loudly, not a time budget: odd rounds wait for the writer's start
# line before the kill, so every odd round is a mid-stream kill and 60 rounds always reach
# both counts, however slow the machine.
CRASH_MAX_ROUNDS = 150


def committed_crash_count(store: agentkeep.Store) -> int:
    row = store._conn.execute(
        "SELECT (SELECT count(*) FROM events WHERE kind = 'crash.test')"
        " + (SELECT count(*) FROM tasks WHERE title LIKE 'crash %')"
        " + (SELECT count(*) FROM notes WHERE kind = 'fact')"
    ).fetchone()
    return int(row[0])


def committed_crash_writes(
    store: agentkeep.Store,
) -> tuple[dict[int, tuple[str, int, str, str]], list[str]]:
    """n -> (kind, id, payload, sha256) for every committed crash write, read through the
    library; plus the problems found (an n committed twice)."""
    rows: dict[int, tuple[str, int, str, str]] = {}
    problems: list[str] = []

    def put(n: int, kind: str, ident: int, payload: str, digest: str) -> None:
        if n in rows:
            problems.append(f"n={n} committed twice: {rows[n][:2]} and {(kind, ident)}")
        rows[n] = (kind, ident, payload, digest)

    for event in store.events(kind="crash.test"):
        put(event.data["n"], "event", event.seq, event.data["payload"], event.data["sha256"])
    for task in store.list_tasks():
        if task.title.startswith("crash "):
            _, n, digest = task.title.split(" ")
            put(int(n), "task", task.id, task.body, digest)
    for note in store.list_notes(kind="fact"):
        put(note.data["n"], "note", note.id, note.body, note.data["sha256"])
    return rows, problems


@pytest.mark.slow
def test_sigkill_loop_loses_no_acknowledged_write(project: Path, tmp_path: Path) -> None:
    """Kill loop: SIGKILL the writer U(30, 300) ms after it starts (even rounds: after the process
    started, which also hits open(); odd rounds: after it reported its resume point), at
    least CRASH_KILLS times and until CRASH_MID_STREAM kills landed after an ack."""
    rng = random.Random(SEED)
    logs = tmp_path / "logs"
    began = time.monotonic()
    acked: dict[int, tuple[str, int]] = {}
    top = -1  # highest n known to be committed (acked, or implied by a writer's start)
    kills = killed_before_first_ack = integrity_checks = 0
    round_no = -1
    while kills < CRASH_KILLS or kills - killed_before_first_ack < CRASH_MID_STREAM:
        round_no += 1
        assert round_no < CRASH_MAX_ROUNDS, f"only {kills} kills in {round_no} rounds"
        expected_start = None
        if round_no % 5 == 0:  # otherwise the next writer meets its predecessor's hot WAL
            with agentkeep.open(project) as store:
                expected_start = committed_crash_count(store)
                if round_no % 10 == 0:
                    assert integrity(store) == ["ok"], f"integrity failed before round {round_no}"
                    integrity_checks += 1
        args = ("crash", str(project), "--seed", str(rng.randrange(2**31)))
        delay = rng.uniform(0.030, 0.300)
        with writer(logs, f"crash-{round_no}", *args) as child:
            if round_no % 2:
                # Odd rounds time the kill from the writer's start line, so that enough kills
                # land mid-stream even when a loaded machine makes start-up slow.
                wait_until([child], lambda acks: bool(acks))
            time.sleep(delay)
            child.proc.send_signal(signal.SIGKILL)
            child.proc.wait()
        kills += 1
        assert child.proc.returncode == -signal.SIGKILL, child.stderr()
        lines = child.acks()
        if not lines:
            killed_before_first_ack += 1
            continue
        start = lines[0]["start"]
        if expected_start is not None:
            assert start == expected_start, f"round {round_no}: resumed at {start}"
        # At most one write is in flight when the writer dies, so at most one is in doubt.
        assert start - (top + 1) in (0, 1), f"round {round_no}: start {start} after top {top}"
        top = start - 1
        for line in lines[1:]:
            acked[line["n"]] = (line["kind"], line["id"])
            top = line["n"]
        if len(lines) == 1:
            killed_before_first_ack += 1

    # The next writer resumes where the committed writes end, and finishes cleanly.
    with agentkeep.open(project) as store:
        resume_at = committed_crash_count(store)
    with writer(
        logs, "crash-final", "crash", str(project), "--seed", "1", "--count", "30"
    ) as child:
        assert child.proc.wait(timeout=60) == 0, child.stderr()
    lines = child.acks()
    assert lines[0] == {"start": resume_at}
    assert [line["n"] for line in lines[1:]] == list(range(resume_at, resume_at + 30))
    for line in lines[1:]:
        acked[line["n"]] = (line["kind"], line["id"])

    with agentkeep.open(project) as store:
        rows, problems = committed_crash_writes(store)
        check = store.check()
        task_events = Counter(e.entity_id for e in store.events(kind="task.created"))
        note_events = Counter(e.entity_id for e in store.events(kind="note.created"))
    lost = sorted(
        n for n, (kind, ident) in acked.items() if rows.get(n, ("", 0))[:2] != (kind, ident)
    )
    corrupt = sorted(
        n
        for n, (kind, _, payload, digest) in rows.items()
        if sha256(payload) != digest or CRASH_KINDS[n % 3] != kind
    )
    # Every mutation wrote its event in the same transaction: one event per row, no orphans.
    task_ids = Counter(ident for kind, ident, _, _ in rows.values() if kind == "task")
    note_ids = Counter(ident for kind, ident, _, _ in rows.values() if kind == "note")
    in_doubt = len(rows) - len(acked)
    elapsed = time.monotonic() - began
    report(
        f"durability: acked_lost={len(lost)}/{len(acked)} kills={kills} corrupt={len(corrupt)} "
        f"in_doubt={in_doubt} committed={len(rows)} killed_before_first_ack="
        f"{killed_before_first_ack} integrity_checks={integrity_checks + 1} seed={SEED} "
        f"elapsed={elapsed:.1f}s",
    )
    assert not problems, problems[:5]
    assert lost == [], f"acknowledged writes lost: {lost[:20]}"
    assert corrupt == [], f"payload hash mismatch: {corrupt[:20]}"
    assert sorted(rows) == list(range(len(rows))), "committed n are not 0..N-1 (gap or resume bug)"
    assert 0 <= in_doubt <= kills
    assert task_events == task_ids, "task rows and task.created events disagree"
    assert note_events == note_ids, "note rows and note.created events disagree"
    assert check.integrity == ["ok"] and check.ok, check
    # The loop must really have killed writers mid-stream, not only during start-up.
    assert kills >= CRASH_KILLS
    assert kills - killed_before_first_ack >= CRASH_MID_STREAM, "too few mid-stream kills"


# -- idempotent retry of in-doubt writes ---------------------------------------------------

IDEM_ROUNDS = 24


def committed_key(project: Path, key: str) -> int | None:
    with agentkeep.open(project) as store:
        row = store._conn.execute(
            "SELECT entity_id FROM idempotency_keys WHERE key = ?", (key,)
        ).fetchone()
    return None if row is None else int(row[0])


@pytest.mark.slow
def test_retry_after_crash_between_commit_and_ack_is_idempotent(
    project: Path, tmp_path: Path
) -> None:
    """In-doubt retry: even rounds die right after a COMMIT returned (before the ack), odd
    rounds are SIGKILLed at a random time; every next writer first re-sends the
    unacknowledged key."""
    rng = random.Random(SEED + 1)
    logs = tmp_path / "logs"
    next_i = 0
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []
    kills = 0
    for round_no in range(IDEM_ROUNDS + 1):
        final = round_no == IDEM_ROUNDS
        previous = committed_key(project, f"idem-{next_i}")
        args = ["idem", str(project), "--start", str(next_i)]
        if final:
            args += ["--count", "9"]
        elif round_no % 2 == 0:
            args += ["--die-after-commit", str(next_i + rng.randint(0, 12))]
        with writer(logs, f"idem-{round_no}", *args) as child:
            if final or round_no % 2 == 0:
                child.proc.wait(timeout=60)
            else:
                time.sleep(rng.uniform(0.030, 0.300))
                child.proc.send_signal(signal.SIGKILL)
                child.proc.wait()
        expected_code = 0 if final else -signal.SIGKILL
        assert child.proc.returncode == expected_code, child.stderr()
        kills += not final
        lines = child.acks()
        if not lines:
            continue  # died before its first ack: the same key is re-sent next round
        first, rest = lines[0], lines[1:]
        assert first["i"] == next_i
        outcomes[first["outcome"]] += 1
        want = "created" if previous is None else "already_exists"
        if first["outcome"] != want or (previous is not None and first["id"] != previous):
            wrong.append(f"round {round_no}: retry of idem-{next_i} gave {first}, want {want}")
        wrong += [
            f"round {round_no}: fresh key gave {x}" for x in rest if x["outcome"] != "created"
        ]
        next_i = lines[-1]["i"] + 1

    with agentkeep.open(project) as store:
        per_i: Counter[int] = Counter()
        for event in store.events(kind="idem.test"):
            per_i[event.data["i"]] += 1
        idem_tasks = [t for t in store.list_tasks() if t.title.startswith("idem ")]
        idem_notes = [n for n in store.list_notes(kind="fact") if n.body.startswith("idem ")]
        per_i.update(int(t.title.split()[1]) for t in idem_tasks)
        per_i.update(int(n.body.split()[1]) for n in idem_notes)
        keys = store._conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0]
        created_events = Counter(
            (e.entity, e.entity_id)
            for e in store.events(kind="task.created") + store.events(kind="note.created")
        )
        check = store.check()
    duplicates = sorted(i for i, count in per_i.items() if count > 1)
    report(
        f"idempotency: keys={keys} writes={next_i} kills={kills} "
        f"retries_already_exists={outcomes['already_exists']} "
        f"retries_created={outcomes['created']} duplicates={len(duplicates)} "
        f"wrong_outcomes={len(wrong)} seed={SEED + 1}",
    )
    assert duplicates == [], f"keys written twice: {duplicates}"
    assert wrong == [], wrong
    assert sorted(per_i) == list(range(next_i)), "a write is missing or out of range"
    assert keys == next_i
    # A retry that found its key must not have emitted a second creation event.
    assert all(count == 1 for count in created_events.values()), created_events.most_common(3)
    # Every even round leaves one write committed but unacknowledged.
    assert outcomes["already_exists"] >= IDEM_ROUNDS // 4
    assert check.ok, check


# -- concurrent read-then-write processes ------------------------------------------------

MIX_WRITERS = 4
MIX_SECONDS = 10.0
# Writers run back to back (no pause between operations): the writer queue lock in
# backends/sqlite/connection.py is what keeps every process from waiting past busy_timeout.
MIX_THINK_MS = 0.0  # each op is preceded by a pause of U(0, MIX_THINK_MS) ms


@pytest.mark.slow
def test_concurrent_read_then_write_processes(project: Path, tmp_path: Path) -> None:
    """Four processes claim tasks (read, then CAS), bump a shared counter (read then
    write in one BEGIN IMMEDIATE), bump their own counter (get_task then update_task), add
    tasks and record events, for MIX_SECONDS. None may see 'database is locked'."""
    rng = random.Random(SEED + 2)
    names = [f"w{i}" for i in range(MIX_WRITERS)]
    with agentkeep.open(project) as store:
        shared = store.add_task("shared counter", body="0", status="blocked").item.id
        own = {n: store.add_task(f"counter {n}", body="0", status="blocked").item.id for n in names}
        for i in range(100):
            store.add_task(f"seed {i}", priority=i % 5)
    barrier = tmp_path / "go"
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        children = {
            name: stack.enter_context(
                writer(
                    logs,
                    name,
                    "mix",
                    str(project),
                    "--name",
                    name,
                    "--seed",
                    str(rng.randrange(2**31)),
                    "--barrier",
                    str(barrier),
                    "--seconds",
                    str(MIX_SECONDS),
                    "--shared",
                    str(shared),
                    "--own",
                    str(own[name]),
                    "--think-ms",
                    str(MIX_THINK_MS),
                )
            )
            for name in names
        }
        wait_until(list(children.values()), lambda acks: bool(acks))
        began = time.monotonic()
        barrier.touch()
        for child in children.values():
            assert child.proc.wait(timeout=MIX_SECONDS + 60) == 0, child.stderr()
        wall = time.monotonic() - began

    summaries: dict[str, dict[str, Any]] = {}
    acks: dict[str, list[dict[str, Any]]] = {}
    for name, child in children.items():
        lines = child.acks()
        summaries[name] = lines[-1]
        acks[name] = lines[1:-1]
        assert "summary" in summaries[name], child.stderr()

    totals: Counter[str] = Counter()
    for summary in summaries.values():
        totals.update(summary["summary"])
    errors = [e for s in summaries.values() for e in s["errors"]]

    lost: list[str] = []
    with agentkeep.open(project) as store:
        tasks = {t.id: t for t in store.list_tasks()}
        claimed_events = Counter(e.entity_id for e in store.events(kind="task.claimed"))
        mix_events = {e.seq: e for e in store.events(kind="mix.event")}
        check = store.check()
        wal_bytes = store.status().wal_bytes
    claims: Counter[int] = Counter()
    shared_values: list[int] = []
    for name, lines in acks.items():
        own_values = []
        for line in lines:
            op = line["op"]
            if op == "add":
                task = tasks.get(line["id"])
                if task is None or task.title != line["title"]:
                    lost.append(f"{name} add {line}")
            elif op == "claim":
                claims[line["id"]] += 1
                task = tasks.get(line["id"])
                if task is None or (task.status, task.assignee) != ("in_progress", name):
                    lost.append(f"{name} claim {line} -> {task}")
            elif op == "shared":
                shared_values.append(line["v"])
            elif op == "own":
                own_values.append(line["v"])
            else:
                event = mix_events.get(line["seq"])
                if event is None or event.data != {"p": name, "k": line["k"]}:
                    lost.append(f"{name} event {line}")
        if own_values != list(range(1, len(own_values) + 1)):
            lost.append(f"{name} own counter acks are not 1..n")
        if tasks[own[name]].body != str(len(own_values)):
            lost.append(f"{name} own counter {tasks[own[name]].body} != {len(own_values)}")
    double_claims = sorted(task_id for task_id, count in claims.items() if count > 1)
    if sorted(shared_values) != list(range(1, len(shared_values) + 1)):
        lost.append("shared counter acks are not a permutation of 1..n (lost update)")
    if tasks[shared].body != str(len(shared_values)):
        lost.append(f"shared counter {tasks[shared].body} != {len(shared_values)} increments")
    claimed_total = sum(claimed_events.values())
    latencies_p99 = max(s["p99_ms"] for s in summaries.values())
    latencies_p50 = statistics.median(s["p50_ms"] for s in summaries.values())
    report(
        f"concurrency: writers={MIX_WRITERS} wall={wall:.1f}s attempts={totals['attempts']} "
        f"acked={totals['acked']} lost={len(lost)} locked_errors={totals['locked']} "
        f"other_errors={totals['errors']} claims={sum(claims.values())} "
        f"claim_conflicts={totals['conflicts']} double_claims={len(double_claims)} "
        f"shared_increments={len(shared_values)} p50={latencies_p50:.2f}ms "
        f"p99={latencies_p99:.2f}ms wal={wal_bytes / 1e6:.1f}MB seed={SEED + 2}",
    )
    assert totals["locked"] == 0, errors
    assert totals["errors"] == 0, errors
    assert lost == [], lost[:20]
    assert double_claims == []
    # No process was killed, so nothing is in doubt: the ledger holds exactly the acked claims.
    assert claimed_total == sum(claims.values()) and max(claimed_events.values()) == 1
    assert check.ok, check
    assert totals["acked"] >= 1000
    assert wal_bytes < 64 * 1024 * 1024


# -- claim race ---------------------------------------------------------------------------

CLAIMERS = 6
CLAIM_ROUNDS = 8


@pytest.mark.slow
def test_claim_race_has_exactly_one_winner(project: Path, tmp_path: Path) -> None:
    """CLAIMERS processes wait at a file barrier, then claim the same task at once."""
    with agentkeep.open(project) as store:
        task_ids = [store.add_task(f"contested {r}").item.id for r in range(CLAIM_ROUNDS)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        children = [
            stack.enter_context(
                writer(
                    logs,
                    f"claimer-{c}",
                    "claim",
                    str(project),
                    "--name",
                    f"claimer-{c}",
                    "--barrier",
                    str(barrier),
                    "--tasks",
                    *map(str, task_ids),
                )
            )
            for c in range(CLAIMERS)
        ]
        wait_until(children, lambda acks: len(acks) >= 1)
        for r in range(CLAIM_ROUNDS):
            (barrier / f"go-{r}").touch()
            wait_until(children, lambda acks, r=r: len(acks) >= r + 2)
        for child in children:
            assert child.proc.wait(timeout=30) == 0, child.stderr()

    results = [child.acks()[1:] for child in children]
    with agentkeep.open(project) as store:
        tasks = {t.id: t for t in store.list_tasks()}
        claimed = Counter(e.entity_id for e in store.events(kind="task.claimed"))
    winners_per_round = []
    for r, task_id in enumerate(task_ids):
        outcomes = [result[r] for result in results]
        assert all(o["round"] == r for o in outcomes)
        errors = [o for o in outcomes if "error" in o]
        assert errors == [], errors
        winners = [f"claimer-{c}" for c, o in enumerate(outcomes) if o["won"]]
        winners_per_round.append(len(winners))
        assert len(winners) == 1, f"round {r}: winners {winners}"
        assert (tasks[task_id].status, tasks[task_id].assignee) == ("in_progress", winners[0])
        assert claimed[task_id] == 1
    report(
        f"claim race: processes={CLAIMERS} rounds={CLAIM_ROUNDS} "
        f"winners_per_round={winners_per_round}",
    )


# -- fork safety --------------------------------------------------------------------------


def _use_inherited_store(store: agentkeep.Store, project: Path) -> int:
    """Runs in the forked child; the return value becomes its exit status."""
    try:
        store.record_event("fork.child_inherited")
    except agentkeep.UsedAcrossFork:
        pass
    else:
        return 1
    try:
        store.events()
    except agentkeep.UsedAcrossFork:
        pass
    else:
        return 2
    store.close()  # closing what the parent still uses must be a harmless no-op
    with agentkeep.open(project) as fresh:  # the documented remedy works
        fresh.record_event("fork.child_fresh")
    return agentkeep.UsedAcrossFork.exit_code


@pytest.mark.sqlite_only("checks SQLite's integrity_check after the fork")
def test_store_used_across_fork_raises_in_child(store: agentkeep.Store, project: Path) -> None:
    """The child gets UsedAcrossFork (reported as exit 11); the parent carries on."""
    store.record_event("fork.before")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        code = 99
        try:
            code = _use_inherited_store(store, project)
        except BaseException:
            code = 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == agentkeep.UsedAcrossFork.exit_code == 11
    store.record_event("fork.after")
    kinds = [e.kind for e in store.events(kind="fork.*")]
    assert kinds == ["fork.before", "fork.child_fresh", "fork.after"]
    assert integrity(store) == ["ok"]
    assert store.check().ok


def test_forked_child_exiting_normally_does_not_harm_parent(project: Path, tmp_path: Path) -> None:
    """Fork safety in a plain process: the child tries the inherited store, then exits normally so
    the interpreter finalises (garbage-collects) the inherited sqlite3 connection."""
    with writer(tmp_path / "logs", "fork", "fork", str(project)) as child:
        assert child.proc.wait(timeout=60) == 0, child.stderr()
    lines = child.acks()
    assert {"child": "UsedAcrossFork"} in lines
    assert {"parent": "done", "child_status": 0} in lines
    with agentkeep.open(project) as store:
        kinds = Counter(e.kind for e in store.events(kind="fork.*"))
        assert integrity(store) == ["ok"]
    assert kinds == {"fork.parent_before": 1, "fork.child_fresh": 1, "fork.parent_after": 50}


# -- backup under load --------------------------------------------------------------------


def inspect_backup(path: Path, kind: str) -> tuple[list[str], str, dict[int, int]]:
    """(integrity_check rows, journal_mode, {n: seq}) of a backup file, opened read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        checked = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        rows = conn.execute(
            "SELECT json_extract(data, '$.n'), seq FROM events WHERE kind = ?", (kind,)
        ).fetchall()
    finally:
        conn.close()
    return checked, mode, {int(n): int(seq) for n, seq in rows}


@pytest.mark.slow
def test_backup_under_load_holds_every_earlier_ack(
    store: agentkeep.Store,
    project: Path,
    tmp_path: Path,
) -> None:
    """Store.backup() and `agentkeep db backup` while a writer commits continuously."""
    kind = "backup.test"
    lib_dest, cli_dest = tmp_path / "lib-backup.db", tmp_path / "cli-backup.db"
    with writer(tmp_path / "logs", "backup-load", "stream", str(project), "--kind", kind) as child:
        wait_until([child], lambda acks: len(acks) >= 300)
        before_lib = {a["n"]: a["seq"] for a in child.acks()}
        started = time.perf_counter()
        assert store.backup(lib_dest) == lib_dest
        lib_seconds = time.perf_counter() - started
        before_cli = {a["n"]: a["seq"] for a in child.acks()}
        started = time.perf_counter()
        done = run_agentkeep(
            "--store", str(project), "db", "backup", str(cli_dest), "--json", cwd=project
        )
        cli_seconds = time.perf_counter() - started
        acked_after = len(child.acks())
        assert done.returncode == 0, done.stderr.decode()
        assert json.loads(done.stdout)["path"] == str(cli_dest)
        assert child.proc.poll() is None, child.stderr()  # the writer kept going throughout
    assert child.stderr() == ""

    results = {}
    for name, dest, before in (("lib", lib_dest, before_lib), ("cli", cli_dest, before_cli)):
        checked, mode, got = inspect_backup(dest, kind)
        missing = sorted(n for n, seq in before.items() if got.get(n) != seq)
        results[name] = (checked, mode, len(before), len(got), missing)
        assert checked == ["ok"], (name, checked)
        assert mode == "delete", (name, mode)  # a self-contained file, no -wal needed
        assert missing == [], f"{name} backup lacks acked writes {missing[:10]}"
        assert len(got) >= len(before)
    assert lib_seconds < 5 and cli_seconds < 10

    # Restore drill: the backup becomes a store again, in WAL mode, with the data.
    restored_dir = tmp_path / "restored" / ".agentkeep"
    restored_dir.mkdir(parents=True)
    source = sqlite3.connect(f"file:{lib_dest}?mode=ro", uri=True)
    target = sqlite3.connect(restored_dir / "state.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    with agentkeep.open(restored_dir.parent) as restored:
        restored_ns = {e.data["n"] for e in restored.events(kind=kind)}
        restored.record_event("restore.drill")
        assert restored.check().ok
        assert restored._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert set(before_lib) <= restored_ns
    report(
        f"backup: lib={lib_seconds * 1000:.0f}ms ({results['lib'][2]} acked before, "
        f"{results['lib'][3]} in copy) cli={cli_seconds * 1000:.0f}ms "
        f"({results['cli'][2]} acked before, {results['cli'][3]} in copy) "
        f"writer_acks_total={acked_after} missing=0 integrity=ok",
    )


# -- follow() -----------------------------------------------------------------------------

FOLLOW_EVENTS = 20


def checkpoint_truncate(db_path: Path, *, timeout: float = 1.0) -> tuple[int, int]:
    """(busy, WAL bytes afterwards) of a TRUNCATE checkpoint from a separate connection."""
    conn = sqlite3.connect(db_path, timeout=timeout, isolation_level=None)
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        conn.close()
    wal = db_path.with_name(db_path.name + "-wal")
    return int(busy), wal.stat().st_size if wal.exists() else 0


@pytest.mark.sqlite_only(
    "checks that SQLite's WAL checkpoint is not blocked by the follower; PostgreSQL's "
    "counterpart (an idle LISTEN session, no snapshot) is in test_pg_follow"
)
def test_follow_sees_other_process_commits_quickly_and_holds_no_snapshot(
    store: agentkeep.Store,
    project: Path,
    tmp_path: Path,
) -> None:
    kind = "follow.test"
    latencies: list[float] = []
    seqs: list[int] = []
    idle_checks: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    after = store.last_seq()
    args = ("stream", str(project), "--kind", kind, "--count", str(FOLLOW_EVENTS))
    with writer(tmp_path / "logs", "follow", *args, "--interval", "0.05") as child:

        def stop() -> bool:
            """Called by follow() between polls: once every event arrived and the writer
            exited, check that a TRUNCATE checkpoint is not blocked by the idle follower."""
            if time.monotonic() > deadline:
                return True
            if len(latencies) < FOLLOW_EVENTS:
                return False
            child.proc.wait(timeout=30)
            idle_checks.append(checkpoint_truncate(store.db_path))
            return len(idle_checks) >= 3

        follower = store.follow(after=after, stop=stop)
        try:
            for event in follower:
                received = time.time()
                if event.kind == kind:
                    latencies.append((received - event.data["sent"]) * 1000)
                    seqs.append(event.seq)
        finally:
            follower.close()
        assert child.proc.returncode == 0, child.stderr()
    assert len(latencies) == FOLLOW_EVENTS, f"saw {len(latencies)} events before the deadline"
    assert seqs == sorted(set(seqs))
    assert [a["seq"] for a in child.acks()] == seqs
    p50, worst = statistics.median(latencies), max(latencies)
    report(
        f"follow: events={len(latencies)} p50={p50:.1f}ms p90={percentile(latencies, 0.9):.1f}ms "
        f"max={worst:.1f}ms idle_checkpoints(busy,wal_bytes)={idle_checks}",
    )
    assert p50 < 50, latencies
    assert worst < 500, latencies
    assert idle_checks and all(check == (0, 0) for check in idle_checks), idle_checks
    # Control: the same check does see a reader that holds a snapshot.
    reader = sqlite3.connect(store.db_path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()
        store.record_event("follow.after_reader")
        assert checkpoint_truncate(store.db_path, timeout=0.1)[0] == 1
    finally:
        reader.close()


# -- connection settings ------------------------------------------------------------------

PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "secure_delete")


def pragmas(store: agentkeep.Store) -> dict[str, Any]:
    return {name: store._conn.execute(f"PRAGMA {name}").fetchone()[0] for name in PRAGMAS}


def test_connection_settings_default_and_configured(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "secure_delete": 1,
    }
    with agentkeep.open(project) as store:
        assert pragmas(store) == default
    with agentkeep.open(project, read_only=True) as store:
        assert pragmas(store) == default
    normal = {"store.synchronous": "NORMAL", "store.busy_timeout_ms": 1234}
    with agentkeep.open(project, config=normal) as store:
        assert pragmas(store) == {**default, "synchronous": 1, "busy_timeout": 1234}
    monkeypatch.setenv("AGENTKEEP_STORE_SYNCHRONOUS", "normal")
    with agentkeep.open(project) as store:
        assert pragmas(store)["synchronous"] == 1
    monkeypatch.delenv("AGENTKEEP_STORE_SYNCHRONOUS")
    config = project / ".agentkeep" / "config.toml"
    config.write_text('[store]\nsynchronous = "NORMAL"\nbusy_timeout_ms = 777\n', "utf-8")
    with agentkeep.open(project) as store:
        assert pragmas(store) == {**default, "synchronous": 1, "busy_timeout": 777}
    with agentkeep.open(project, config={"store.synchronous": "FULL"}) as store:
        assert pragmas(store) == {**default, "busy_timeout": 777}


def test_connection_settings_in_a_cli_process(project: Path) -> None:
    done = run_agentkeep("db", "status", "--json", cwd=project)
    assert done.returncode == 0, done.stderr.decode()
    status = json.loads(done.stdout)
    assert (status["journal_mode"], status["synchronous"]) == ("wal", "FULL")
    done = run_agentkeep(
        "db", "status", "--json", cwd=project, env={"AGENTKEEP_STORE_SYNCHRONOUS": "NORMAL"}
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["synchronous"] == "NORMAL"


def test_busy_timeout_is_waited_then_reported_as_busy(project: Path) -> None:
    with agentkeep.open(project, config={"store.busy_timeout_ms": 300}) as store:
        blocker = sqlite3.connect(store.db_path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            started = time.perf_counter()
            with pytest.raises(agentkeep.Busy) as caught:
                store.record_event("blocked.write")
            waited = time.perf_counter() - started
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert caught.value.exit_code == 7
        assert 0.25 <= waited < 3, waited
        assert store.record_event("unblocked.write").outcome == "created"
        assert store.events(kind="blocked.write") == []
