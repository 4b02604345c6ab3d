"""A team on one PostgreSQL, tortured: two "machines" (two project directories whose
config.toml name the same store URL, each with its own actors) run writer processes that
add tasks, notes and events with idempotency keys and claim tasks from one shared board,
while a follower per machine reads the ledger live (``agentkeep events -f --json`` on one,
``Store.follow()`` on the other). Writers are SIGKILLed at random points and restarted;
in the last test the PostgreSQL server itself is killed (``pg_ctl stop -m immediate``) and
started again under them.

What every run must show (``verify``):

* every acknowledged write is stored exactly once, and nothing keyed is stored that was
  not acknowledged: a killed writer's restart re-sends the write that was in doubt with
  the same idempotency key, and that stores it once;
* each task is claimed by exactly one writer (one ``task.claimed`` event), and every
  acknowledged claim is the task's assignee;
* every follower saw every event of the run once, in seq order: the seqs it printed equal
  the events table's seqs after the run's start.

Writers are ``tests/helpers/writer.py team`` and followers ``… follow`` or the CLI; the
child machinery is ``tests/contract/harness.py``. Nothing waits for the clock: the tests
wait on acknowledgement counts and states. Random kill points come from a seeded RNG: the
seed is printed (shown with a failure) and ``AGENTKEEP_TEST_SEED=N`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from contract.harness import WRITER, Child, Children, children, wait_until

from helpers.pg import PgServer, PgUrl, fresh_name

# Seconds of writing in the two-machine run (issue 12 asks for >= 60 s); longer soaks:
# AGENTKEEP_TEST_TORTURE_SECONDS=600.
DURATION = float(os.environ.get("AGENTKEEP_TEST_TORTURE_SECONDS") or 60)
MACHINES = ("laptop-a", "ci-b")
WRITERS = 4  # per machine
CHAOS_WRITERS = 2  # per machine, in the server-crash test
SEED = int(os.environ.get("AGENTKEEP_TEST_SEED") or random.randrange(2**31))
CLI = Path(sys.executable).parent / "agentkeep"


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Captured output is shown with a failure: the seed that replays it.
    print(f"AGENTKEEP_TEST_SEED={SEED}")


@dataclass
class Team:
    """The writers and followers of one run on the store at ``url``."""

    kids: Children
    roots: dict[str, Path]  # machine -> project directory
    stop: Path
    start_seq: int
    writers: dict[str, list[Child]] = field(default_factory=dict)  # name -> incarnations
    followers: list[Child] = field(default_factory=list)
    kills: int = 0

    def start_writer(self, machine: str, name: str, *, die_after: int | None = None) -> Child:
        lives = self.writers.setdefault(name, [])
        args = ["team", str(self.roots[machine]), "--name", name, "--seed", str(SEED)]
        args += ["--stop", str(self.stop), "--start", str(self.next_k(name))]
        if die_after is not None:
            args += ["--die-after-commit", str(die_after)]
        child = self.kids.start(f"{name}.{len(lives)}", WRITER, *args, env=actor_env(name))
        lives.append(child)
        return child

    def next_k(self, name: str) -> int:
        """Where a new incarnation of ``name`` starts: after its last acknowledged write."""
        done = [a["k"] for life in self.writers.get(name, []) for a in life.acks() if "op" in a]
        return max(done) + 1 if done else 0

    def current(self, name: str) -> Child:
        return self.writers[name][-1]

    def kill(self, name: str) -> None:
        child = self.current(name)
        child.proc.send_signal(signal.SIGKILL)
        assert child.proc.wait() == -signal.SIGKILL, f"{child.name}: {child.stderr()}"
        self.kills += 1

    def start_followers(self) -> None:
        """``Store.follow()`` in a process on the first machine, ``agentkeep events -f
        --json`` on the second."""
        first, second = MACHINES
        self.followers.append(
            self.kids.start(
                f"follow-{first}",
                WRITER,
                "follow",
                str(self.roots[first]),
                "--start",
                str(self.start_seq),
                env=actor_env(f"follower@{first}"),
            )
        )
        self.followers.append(
            self.kids.start(
                f"follow-{second}",
                CLI,
                "--store",
                str(self.roots[second]),
                "events",
                "-f",
                "--json",
                "--id-gt",
                str(self.start_seq),
                env=actor_env(f"follower@{second}"),
            )
        )

    def finish_writers(self) -> dict[str, list[dict[str, Any]]]:
        """Stop every writer (the stop file), wait for clean exits; acks by writer."""
        self.stop.touch()
        acked: dict[str, list[dict[str, Any]]] = {}
        for name, lives in self.writers.items():
            lives[-1].finish()
            acked[name] = [a for life in lives for a in life.acks()]
        return acked

    def finish_followers(self, last_seq: int) -> list[list[int]]:
        """Wait until every follower printed ``last_seq`` (or stopped); their seqs."""
        wait_until(
            self.followers,
            lambda acks: bool(acks) and acks[-1]["seq"] >= last_seq,
            f"the followers to reach seq {last_seq}",
        )
        for child in self.followers:
            child.proc.kill()
            child.proc.wait()
        return [[a["seq"] for a in child.acks()] for child in self.followers]


def actor_env(name: str) -> dict[str, str]:
    """A writer ``<machine>-wN`` acts as ``wN@<machine>``."""
    if "@" not in name:
        machine, _, writer = name.rpartition("-")
        name = f"{writer}@{machine}"
    return {"AGENTKEEP_ACTOR": name}


def make_machines(tmp_path: Path, url: str) -> dict[str, Path]:
    """Two project directories whose config.toml name the same store."""
    roots = {}
    for machine in MACHINES:
        root = tmp_path / machine
        root.mkdir()
        agentkeep.init_store(root, url=url)
        roots[machine] = root
    with agentkeep.open(roots[MACHINES[0]]) as store:
        for i in range(20):  # the board is not empty when the claimers start
            store.add_task(f"board {i}", priority=i % 5)
    return roots


@contextmanager
def team(tmp_path: Path, url: str) -> Iterator[Team]:
    roots = make_machines(tmp_path, url)
    with agentkeep.open(roots[MACHINES[0]]) as store:
        start_seq = store.last_seq()
    with children(tmp_path / "logs") as kids:
        yield Team(kids, roots, tmp_path / "stop", start_seq)


def read_store(server: PgServer, schema: str, start_seq: int) -> dict[str, Any]:
    """Everything verify() compares, read with plain SQL from the store's schema."""
    with server.connect() as conn:
        conn.execute(f'SET search_path = "{schema}"')
        return {
            "keys": {
                r[0]: (r[1], r[2])
                for r in conn.execute("SELECT key, entity, entity_id FROM idempotency_keys")
            },
            "tasks": {
                r[0]: (r[1], r[2], r[3])
                for r in conn.execute("SELECT id, title, status, assignee FROM tasks")
            },
            "notes": [tuple(r) for r in conn.execute("SELECT id, body FROM notes")],
            "events": [
                (r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None)
                for r in conn.execute(
                    "SELECT seq, kind, entity_id, actor, data FROM events WHERE seq > %s"
                    " ORDER BY seq",
                    (start_seq,),
                )
            ],
        }


def verify(
    acked: dict[str, list[dict[str, Any]]],
    stored: dict[str, Any],
    followed: list[list[int]],
) -> dict[str, int]:
    """The run's guarantees (the module docstring); returns its counts."""
    where = f"(AGENTKEEP_TEST_SEED={SEED})"
    keyed: dict[str, dict[str, Any]] = {}
    claims: dict[int, str] = {}
    for name, lines in acked.items():
        for line in lines:
            if "key" in line:
                first = keyed.setdefault(line["key"], line)
                assert first is line, f"{line['key']} acknowledged twice {where}"
                assert line["key"] == f"{name}-{line['k']}", line
            elif line.get("op") == "claim":
                assert line["id"] not in claims, f"task {line['id']} acked twice {where}"
                claims[line["id"]] = name
    noun = {"task": "task", "note": "note", "event": "event"}
    # 0 acknowledged writes lost, and nothing keyed stored that was not acknowledged.
    ours = {k: v for k, v in stored["keys"].items() if k.rsplit("-", 1)[0] in acked}
    lost = sorted(set(keyed) - set(ours))
    assert lost == [], f"acknowledged, not stored: {lost[:10]} {where}"
    unacked = sorted(set(ours) - set(keyed))
    assert unacked == [], f"stored, never acknowledged: {unacked[:10]} {where}"
    wrong = [
        (key, line["op"], line["id"], ours[key])
        for key, line in keyed.items()
        if ours[key] != (noun[line["op"]], line["id"])
    ]
    assert wrong == [], f"keys pointing elsewhere than acknowledged: {wrong[:10]} {where}"
    # Each keyed write stored once: one row per key, with the acknowledged id.
    titles = Counter(t[0] for t in stored["tasks"].values() if t[0].startswith("team "))
    bodies = Counter(body for _, body in stored["notes"] if body.startswith("team "))
    written = Counter(
        e[4]["key"] for e in stored["events"] if e[1] == "team.write" and e[4] is not None
    )
    for what, counts in (("tasks", titles), ("notes", bodies), ("events", written)):
        twice = {k: n for k, n in counts.items() if n > 1}
        assert twice == {}, f"{what} stored more than once: {list(twice.items())[:10]} {where}"
    ops = Counter(line["op"] for line in keyed.values())
    assert (len(titles), len(bodies), len(written)) == (ops["task"], ops["note"], ops["event"])
    # 0 double claims: one task.claimed event per task, and each acknowledged claimer
    # holds its task.
    claimed = Counter(e[2] for e in stored["events"] if e[1] == "task.claimed")
    doubles = {task: n for task, n in claimed.items() if n > 1}
    assert doubles == {}, f"tasks claimed more than once: {doubles} {where}"
    in_progress = {i for i, t in stored["tasks"].items() if t[1] == "in_progress"}
    assert in_progress == set(claimed), f"claims without their event, or the reverse {where}"
    stolen = {
        task: (name, stored["tasks"][task][2])
        for task, name in claims.items()
        if stored["tasks"][task][2] != name
    }
    assert stolen == {}, f"acknowledged claims another writer holds: {stolen} {where}"
    actors = {e[2]: e[3] for e in stored["events"] if e[1] == "task.claimed"}
    for task, name in claims.items():  # the event names the claimer's machine
        assert actors[task] == actor_env(name)["AGENTKEEP_ACTOR"], (task, name, actors[task])
    # Every follower saw every event once, in order.
    seqs = [e[0] for e in stored["events"]]
    for n, seen in enumerate(followed):
        missing = sorted(set(seqs) - set(seen))
        extra = [s for s, c in Counter(seen).items() if c > 1 or s not in set(seqs)]
        assert seen == seqs, (
            f"follower {n}: {len(seen)} seen, {len(seqs)} stored; missing {missing[:10]}, "
            f"twice or unknown {extra[:10]}, in order: {seen == sorted(seen)} {where}"
        )
    return {
        "writes": len(keyed),
        "claims": len(claims),
        "events": len(seqs),
        "resent_existing": sum(1 for line in keyed.values() if line["outcome"] == "already_exists"),
        "conflicts": sum(1 for ls in acked.values() for a in ls if a.get("op") == "conflict"),
        "failures": sum(1 for ls in acked.values() for a in ls if "failed" in a),
    }


def summaries(acked: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for lines in acked.values():
        for line in lines:
            if "summary" in line:
                total.update(line["summary"])
    return dict(total)


def check_store(root: Path) -> None:
    with agentkeep.open(root) as store:
        report = store.check()
    assert report.ok, report


# -- the tests -------------------------------------------------------------------------------


def test_two_machines_eight_writers_kills_and_followers(
    pg_server: PgServer, pg_url: PgUrl, tmp_path: Path
) -> None:
    """DURATION seconds of 2 machines x WRITERS writers on one store, writers SIGKILLed at
    random points and restarted (one of them right after a commit it never acknowledged),
    a follower per machine: see the module docstring for what must hold."""
    rng = random.Random(SEED)
    began = time.monotonic()
    with team(tmp_path, pg_url) as run:
        run.start_followers()
        names = [f"{m}-w{i}" for m in MACHINES for i in range(WRITERS)]
        in_doubt = {f"{m}-w0": rng.randint(5, 40) for m in MACHINES}
        started = time.monotonic()
        deadline = started + DURATION
        for name in names:
            run.start_writer(name.rsplit("-", 1)[0], name, die_after=in_doubt.get(name))
        # The in-doubt writers die right after a keyed write returned, before its ack;
        # restarted, they re-send it (the same key) first.
        for name in in_doubt:
            assert run.current(name).proc.wait(timeout=90) == -signal.SIGKILL, name
            run.kills += 1
            resent = run.start_writer(name.rsplit("-", 1)[0], name)
            wait_until([resent], lambda acks: any("op" in a for a in acks), "the re-sent write")
            first = next(a for a in resent.acks() if "op" in a)
            assert first["k"] >= in_doubt[name] and first["outcome"] == "already_exists", first
        while time.monotonic() < deadline:
            victim = rng.choice(names)
            child = run.current(victim)
            target = writes(child.acks()) + rng.randint(1, 40)
            wait_until([child], lambda acks, t=target: writes(acks) >= t, f"{target} writes")
            run.kill(victim)
            run.start_writer(victim.rsplit("-", 1)[0], victim)
        acked = run.finish_writers()
        writing = time.monotonic() - started
        stored = read_store(pg_server, pg_url.schema, run.start_seq)
        last = stored["events"][-1][0]
        followed = run.finish_followers(last)
        counts = verify(acked, stored, followed)
        kills = run.kills
    check_store(tmp_path / MACHINES[0])
    print(
        f"{writing:.1f} s of writing, {kills} kills: {counts}, {summaries(acked)}; "
        f"{counts['writes'] / writing:.0f} keyed writes/s, total {time.monotonic() - began:.1f} s"
    )


def test_server_killed_and_restarted_under_writers_and_followers(
    private_pg_server: PgServer, tmp_path: Path
) -> None:
    """``pg_ctl stop -m immediate`` while writers write and followers follow, then start:
    the writers see Busy/StorageError while it is down and retry with the same keys; after
    the restart every acknowledged write is stored once and the followers resume."""
    rng = random.Random(SEED)
    server = private_pg_server
    schema = fresh_name()
    began = time.monotonic()
    with team(tmp_path, server.url(schema)) as run:
        run.start_followers()
        names = [f"{m}-w{i}" for m in MACHINES for i in range(CHAOS_WRITERS)]
        for name in names:
            run.start_writer(name.rsplit("-", 1)[0], name)
        for round_no in range(2):
            lives = [run.current(n) for n in names]
            for child in lives:
                mark = writes(child.acks()) + rng.randint(3, 25)
                wait_until([child], lambda acks, m=mark: writes(acks) >= m, f"{mark} writes")
            # The followers have caught up once: they listen.
            wait_until(run.followers, lambda acks: bool(acks), "followed events")
            failed = {c.name: fails(c.acks()) for c in lives}
            down = time.monotonic()
            server.kill()
            # Every writer finds the server gone (and keeps retrying the same write).
            for child in lives:
                before = failed[child.name]
                wait_until([child], lambda acks, n=before: fails(acks) > n, "a failed write")
            server.start()
            outage = time.monotonic() - down
            for child in lives:
                mark = writes(child.acks()) + rng.randint(3, 25)
                wait_until([child], lambda acks, m=mark: writes(acks) >= m, f"{mark} writes")
            print(f"round {round_no}: server down {outage:.1f} s")
        acked = run.finish_writers()
        stored = read_store(server, schema, run.start_seq)
        last = stored["events"][-1][0]
        followed = run.finish_followers(last)
        counts = verify(acked, stored, followed)
        errors = {a["error"].split(":")[0] for ls in acked.values() for a in ls if "failed" in a}
    assert errors <= {"Busy", "StorageError"}, errors
    assert counts["failures"] >= 2 * len(names), counts
    check_store(tmp_path / MACHINES[0])
    print(f"{counts}, {summaries(acked)}; total {time.monotonic() - began:.1f} s")


def writes(acks: list[dict[str, Any]]) -> int:
    """How many writes (or claims) a writer acknowledged."""
    return sum(1 for a in acks if "op" in a)


def fails(acks: list[dict[str, Any]]) -> int:
    """How many times a writer's write failed (a streak of retries counts once)."""
    return sum(1 for a in acks if "failed" in a)


def dropped_by_server(server: PgServer, conn: Any) -> None:
    """Terminate ``conn``'s backend and wait (for the event, not the clock) until its
    socket shows the hang-up."""
    raw = conn.raw
    with server.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (raw.info.backend_pid,))
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLRDHUP | select.POLLHUP)
    assert poller.poll(90_000), "the server never closed the connection"


def test_a_connection_dropped_while_idle_is_replaced_before_the_next_statement(
    pg_server: PgServer, pg_url: PgUrl
) -> None:
    """A server restart drops every connection; a follower's or writer's first statement
    after it must not fail (nothing was sent on the dead connection). Inside a
    transaction it must fail (Busy): a new connection would silently lose the
    transaction's earlier statements and its writer lock."""
    from agentkeep.backends.postgres.connection import connect

    conn = connect(pg_url)
    try:
        before = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        dropped_by_server(pg_server, conn)
        after = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert after != before
        conn.execute("BEGIN")
        dropped_by_server(pg_server, conn)
        with pytest.raises(agentkeep.Busy):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone()[0] == 1  # and outside it, reconnects
    finally:
        conn.close()


def test_a_connection_whose_server_is_away_fails_busy_and_recovers(
    private_pg_server: PgServer,
) -> None:
    """While the server is down every statement fails with Busy (retryable, and no
    psycopg error); once it is back the same Connection works again: a failed reconnect
    must not leave it closed for good."""
    from agentkeep.backends.postgres.connection import connect

    conn = connect(private_pg_server.url(fresh_name()))
    try:
        before = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        private_pg_server.kill()
        for _ in range(3):  # the first finds the dead socket, the next ones cannot connect
            with pytest.raises(agentkeep.Busy):
                conn.execute("SELECT 1")
        private_pg_server.start()
        assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] != before
    finally:
        conn.close()
