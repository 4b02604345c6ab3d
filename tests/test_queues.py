"""Work queues (services/queues.py, ops/queue_worker.py, cli/queue_cmd.py): the file
protocol, leases and holders, crashes at every step, the CLI, and the worker.

Store-level tests run on both backends (the events go to the database; the item files are
local on both). Nothing sleeps on the clock: tests wait for a file, a count or a state,
with a generous ceiling as a safety net.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.documents.leases import Holder
from agentkeep.errors import Conflict, InvalidInput, NotFound
from agentkeep.services.queues import QueueService, check_queue_name

from conftest import Cli, run_agentkeep
from secretgen import generate

STATE_DIRS = ("new", "cur", "done", "failed")
CEILING = 60.0  # seconds: a safety net for waits that normally end in milliseconds


def wait_for(condition: Callable[[], Any], what: str, ceiling: float = CEILING) -> Any:
    deadline = time.monotonic() + ceiling
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def queue_dir(store: agentkeep.Store, queue: str) -> Path:
    return store.store_dir / "queues" / queue


def where(store: agentkeep.Store, queue: str) -> dict[str, list[str]]:
    """item id -> the state directories holding a file of it."""
    found: dict[str, list[str]] = {}
    for state in STATE_DIRS:
        directory = queue_dir(store, queue) / state
        for name in os.listdir(directory) if directory.is_dir() else []:
            found.setdefault(name.split(",")[0], []).append(state)
    return found


def queue_events(store: agentkeep.Store, kind: str | None = None) -> list[Any]:
    events = [e for e in store.events(entity="queue", limit=None) if e.entity == "queue"]
    return [e for e in events if kind is None or e.kind == kind]


PY_TAKER = """
import os, sys, time, json
import agentkeep
from agentkeep.services.queues import Holder
root, queue, go, mode = sys.argv[1:5]
with agentkeep.open(root) as store:
    while not os.path.exists(go):
        time.sleep(0.001)
    holder = Holder.me() if mode != "cli" else None
    if mode == "drain":
        taken = []
        while (item := store.queues.take(queue, holder=holder)) is not None:
            taken.append(item.id)
        print(json.dumps(taken), flush=True)
        sys.stdin.read()  # hold them (alive) until the test closes our stdin
    else:
        item = store.queues.take(queue, holder=holder, lease=float(os.environ.get("LEASE", "300")))
        print(json.dumps(item.id if item else None), flush=True)
        if mode == "hold":
            sys.stdin.read()  # hold the item until the test closes our stdin
"""


def python(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", *args], text=True, stdout=subprocess.PIPE, **kwargs
    )


class Taker:
    """A process that takes one item of ``queue`` (holder: itself) once ``go`` exists and
    holds it, alive, until :meth:`release` (its stdin closed) or :meth:`kill`."""

    def __init__(self, project: Path, queue: str, go: Path, lease: float = 300) -> None:
        self.proc = python(
            PY_TAKER,
            str(project),
            queue,
            str(go),
            "hold",
            stdin=subprocess.PIPE,
            env={**os.environ, "LEASE": str(lease)},
        )

    def taken(self) -> str | None:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def release(self) -> None:
        self.proc.communicate("", timeout=CEILING)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=CEILING)


# -- the protocol ------------------------------------------------------------------------


def test_put_take_ack_fifo_with_events(store: agentkeep.Store) -> None:
    ids = [store.queues.put("jobs", f"job {n}").item.id for n in range(5)]
    assert ids == sorted(ids)  # time-sortable ids
    taken = [store.queues.take("jobs") for _ in range(5)]
    assert [t.id for t in taken if t] == ids  # FIFO
    assert all(t is not None and t.attempts == 1 and t.state == "taken" for t in taken)
    assert taken[0] is not None and taken[0].body == "job 0"
    assert store.queues.take("jobs") is None
    for item_id in ids:
        done = store.queues.ack("jobs", item_id)
        assert done.state == "done" and done.attempts == 1
    assert where(store, "jobs") == {i: ["done"] for i in ids}
    kinds = [e.kind for e in queue_events(store)]
    assert kinds.count("queue.put") == kinds.count("queue.taken") == 5
    assert kinds.count("queue.acked") == 5
    acked = queue_events(store, "queue.acked")
    assert {e.data["id"] for e in acked} == set(ids)
    assert all(e.data["queue"] == "jobs" and e.data["attempts"] == 1 for e in acked)
    (summary,) = store.queues.list_queues()
    assert (summary.queue, summary.done, summary.ready) == ("jobs", 5, 0)


def test_item_files_are_immutable_json_and_private(store: agentkeep.Store) -> None:
    item = store.queues.put("jobs", "hello").item
    (name,) = os.listdir(queue_dir(store, "jobs") / "new")
    path = queue_dir(store, "jobs") / "new" / name
    assert name == f"{item.id},a=0"
    assert json.loads(path.read_text())["body"] == "hello"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (queue_dir(store, "jobs") / "cur").stat().st_mode & 0o777 == 0o700
    inode = path.stat().st_ino
    store.queues.take("jobs")
    (taken,) = os.listdir(queue_dir(store, "jobs") / "cur")
    assert (queue_dir(store, "jobs") / "cur" / taken).stat().st_ino == inode  # renamed only


def test_idempotency_key_adds_one_item(store: agentkeep.Store) -> None:
    first = store.queues.put("jobs", "a", idempotency_key="k-1")
    again = store.queues.put("jobs", "a", idempotency_key="k-1")
    assert (first.outcome, again.outcome) == ("created", "already_exists")
    assert again.item.id == first.item.id and again.item.body == "a"
    store.queues.take("jobs")
    store.queues.ack("jobs", first.item.id)
    later = store.queues.put("jobs", "a", idempotency_key="k-1")
    assert (later.outcome, later.item.state) == ("already_exists", "done")
    assert len(where(store, "jobs")) == 1
    assert len(queue_events(store, "queue.put")) == 1


def test_delay_nack_backoff_and_failure(store: agentkeep.Store) -> None:
    delayed = store.queues.put("jobs", "later", delay=3600).item
    assert delayed.state == "delayed" and delayed.not_before
    assert store.queues.take("jobs") is None
    item = store.queues.put("jobs", "now").item
    assert store.queues.take("jobs").id == item.id  # type: ignore[union-attr]
    back = store.queues.nack("jobs", item.id, max_attempts=2)
    assert (back.state, back.attempts) == ("ready", 1)
    assert store.queues.take("jobs").attempts == 2  # type: ignore[union-attr]
    failed = store.queues.nack("jobs", item.id, max_attempts=2)
    assert (failed.state, failed.attempts) == ("failed", 2)
    assert where(store, "jobs")[item.id] == ["failed"]
    kinds = [e.kind for e in queue_events(store)]
    assert kinds.count("queue.nacked") == 1 and kinds.count("queue.failed") == 1
    later = store.queues.put("jobs", "x").item
    store.queues.take("jobs")
    store.queues.nack("jobs", later.id, delay=3600)
    assert store.queues.get("jobs", later.id).state == "delayed"
    assert store.queues.take("jobs") is None
    counts = store.queues.summary("jobs")
    assert (counts.delayed, counts.failed, counts.ready) == (2, 1, 0)


def test_ack_nack_errors_are_clear(store: agentkeep.Store) -> None:
    item = store.queues.put("jobs", "x").item
    with pytest.raises(Conflict, match="not taken"):
        store.queues.ack("jobs", item.id)
    taken = store.queues.take("jobs")
    assert taken is not None
    with pytest.raises(Conflict, match="attempt 7 is over"):
        store.queues.ack("jobs", item.id, attempt=7)
    with pytest.raises(Conflict, match="another process holds it"):
        store.queues.ack("jobs", item.id, holder=Holder.me())
    store.queues.ack("jobs", item.id, attempt=1)
    with pytest.raises(Conflict, match="acked already"):
        store.queues.nack("jobs", item.id)
    with pytest.raises(NotFound):
        store.queues.ack("jobs", "0000000000000000-000000000000")
    with pytest.raises(NotFound):
        store.queues.ack("nosuch", item.id)
    with pytest.raises(InvalidInput):
        store.queues.ack("jobs", "../../etc/passwd")
    for bad in ("", "../x", "a/b", "UPPER", ".hidden", "x" * 65, "-x"):
        with pytest.raises(InvalidInput):
            store.queues.put(bad, "body")
    assert check_queue_name("a.b_c-9") == "a.b_c-9"
    with pytest.raises(InvalidInput, match="lone surrogate"):
        store.queues.put("jobs", "half \ud800 a pair")
    nul = store.queues.put("jobs", "a\x00b").item  # kept, as the JSON escape
    assert store.queues.get("jobs", nul.id).body == "a\x00b"


def test_secrets_in_bodies_never_reach_disk(store: agentkeep.Store) -> None:
    secrets = generate()
    for name, (text, _) in secrets.items():
        store.queues.put("jobs", f"deploy with {text} for {name}")
    needles = [secret for _, secret in secrets.values()]
    for path in queue_dir(store, "jobs").rglob("*"):
        if path.is_file():
            content = path.read_text()
            assert not [n for n in needles if n in content], path
    item = store.queues.take("jobs")
    assert item is not None and "[REDACTED" in (item.body or "")
    assert any(e.data.get("redactions") for e in queue_events(store, "queue.put"))


def test_foreign_and_half_written_files_are_never_served(store: agentkeep.Store) -> None:
    store.queues.put("jobs", "real")
    base = queue_dir(store, "jobs")
    (base / "new" / "README").write_text("not an item")
    (base / "new" / "0000000000000001-000000000000,a=zz").write_text("{}")
    dead = _dead_pid()
    leftover = base / "tmp" / f"0000000000000002-000000000000.tmp-{dead}-0badc0de"
    leftover.write_text('{"id": "half')
    item = store.queues.take("jobs")
    assert item is not None and item.body == "real"
    assert store.queues.take("jobs") is None
    assert not leftover.exists()  # swept: its writer is dead


def test_a_keyed_put_killed_before_its_rename_is_finished_by_the_sweep(
    store: agentkeep.Store, project: Path
) -> None:
    code = (
        "import agentkeep, sys\n"
        "with agentkeep.open(sys.argv[1]) as s: s.queues.put('jobs', 'once', "
        "idempotency_key='k')\n"
    )
    env = {**os.environ, "AGENTKEEP_FAILPOINT": "queue:put:before_rename"}
    done = subprocess.run([sys.executable, "-c", code, str(project)], env=env, check=False)
    assert done.returncode == -signal.SIGKILL
    assert where(store, "jobs") == {}
    assert len(os.listdir(queue_dir(store, "jobs") / "tmp")) == 1
    again = store.queues.put("jobs", "once", idempotency_key="k")
    assert again.outcome == "already_exists"  # the key was reserved before the kill…
    item = store.queues.take("jobs")  # …so the sweep publishes the item rather than drop it
    assert item is not None and item.id == again.item.id and item.body == "once"
    assert os.listdir(queue_dir(store, "jobs") / "tmp") == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- racing takers, dead and live holders ----------------------------------------------


@pytest.mark.slow
def test_racing_takers_each_item_taken_exactly_once(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    ids = {store.queues.put("race", f"n{n}").item.id for n in range(40)}
    go = tmp_path / "go"
    # Holders that exit at once would see their items reclaimed by the others: these
    # drain with holder=themselves and report before exiting; two more take as the CLI
    # does (no holder: only the lease's expiry returns an item).
    drainers = [
        python(PY_TAKER, str(project), "race", str(go), "drain", stdin=subprocess.PIPE)
        for _ in range(6)
    ]
    clis = [python(PY_TAKER, str(project), "race", str(go), "cli") for _ in range(2)]
    go.touch()
    got: list[str] = []
    for proc in drainers:
        assert proc.stdout is not None
        got += json.loads(proc.stdout.readline())
    for proc in drainers:
        proc.communicate("", timeout=CEILING)
    for proc in clis:
        taken = json.loads(proc.communicate(timeout=CEILING)[0])
        got += [taken] if taken else []
    assert sorted(got) == sorted(ids)  # every item once: no item to two takers, none lost
    assert len(queue_events(store, "queue.taken")) == len(ids)


@pytest.mark.slow
def test_two_takers_race_for_one_item_exactly_one_wins(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    for round_ in range(5):
        item = store.queues.put("one", "only").item
        go = tmp_path / f"go{round_}"
        # Both stay alive holding what they took (a dead holder's item would return).
        takers = [Taker(project, "one", go) for _ in range(2)]
        go.touch()
        results = [taker.taken() for taker in takers]
        for taker in takers:
            taker.release()
        assert sorted(results, key=str) == sorted([item.id, None], key=str)
        store.queues.ack("one", item.id)


def test_a_dead_holders_item_is_reclaimed_at_once(store: agentkeep.Store, project: Path) -> None:
    item = store.queues.put("jobs", "x").item
    taker = Taker(project, "jobs", project)
    assert taker.taken() == item.id
    (taken,) = os.listdir(queue_dir(store, "jobs") / "cur")
    assert f":{taker.proc.pid}:" in taken
    assert store.queues.take("jobs") is None  # its holder lives: never reclaimed
    taker.kill()
    again = QueueService(store).take("jobs")  # a fresh process's first take reclaims
    assert again is not None and again.id == item.id and again.attempts == 2
    (event,) = queue_events(store, "queue.reclaimed")
    assert event.data["reason"] == "holder_dead" and event.data["id"] == item.id


def test_a_live_holders_item_is_never_reclaimed_before_expiry(
    store: agentkeep.Store, project: Path
) -> None:
    item = store.queues.put("jobs", "x").item
    taker = Taker(project, "jobs", project, lease=3600)
    assert taker.taken() == item.id
    try:
        for _ in range(20):  # fresh services: each reclaims before it takes
            assert QueueService(store).reclaim("jobs") == []
            assert QueueService(store).take("jobs") is None
        with pytest.raises(Conflict):
            store.queues.ack("jobs", item.id, holder=Holder.me())
    finally:
        taker.kill()


def test_an_expired_lease_returns_the_item(store: agentkeep.Store) -> None:
    item = store.queues.put("jobs", "x").item
    store.queues.take("jobs", lease=0.05, holder=Holder.me())  # we live: only expiry helps
    wait_for(lambda: QueueService(store).reclaim("jobs"), "the lease to expire")
    again = store.queues.take("jobs")
    assert again is not None and again.id == item.id and again.attempts == 2
    with pytest.raises(Conflict, match="attempt 1 is over"):
        store.queues.ack("jobs", item.id, attempt=1)  # the first taker's late ack
    (event,) = queue_events(store, "queue.reclaimed")
    assert event.data["reason"] == "expired"


def test_renew_extends_a_lease_and_fails_once_lost(store: agentkeep.Store) -> None:
    item = store.queues.put("jobs", "x").item
    me = Holder.me()
    taken = store.queues.take("jobs", lease=0.05, holder=me)
    assert taken is not None
    renewed = store.queues.renew("jobs", item.id, lease=3600, attempt=1, holder=me)
    assert renewed.lease_expires_at and renewed.lease_expires_at > (taken.lease_expires_at or "")
    assert QueueService(store).reclaim("jobs") == []
    store.queues.renew("jobs", item.id, lease=0.01, holder=me)
    wait_for(lambda: QueueService(store).reclaim("jobs"), "the lease to expire")
    with pytest.raises(Conflict):
        store.queues.renew("jobs", item.id, lease=60, holder=me)


def test_holder_text_round_trips_and_judges_liveness() -> None:
    me = Holder.me()
    assert Holder.parse(str(me)) == me and me.alive() is True
    assert Holder(me.host, me.pid, me.started + "1").alive() is False  # a reused pid
    assert Holder(me.host, _dead_pid(), "").alive() is False
    assert Holder("elsewhere.example", me.pid, me.started).alive() is None
    with pytest.raises(ValueError):
        Holder.parse("nonsense")


# -- kill -9 at each step, and at random points ------------------------------------------

LOOP = """
import sys, agentkeep
from agentkeep.services.queues import Holder
root, queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
me = Holder.me()
with agentkeep.open(root) as store:
    for n in range(count):
        store.queues.put(queue, f"item {n}")
        print("put", flush=True)
    while (item := store.queues.take(queue, holder=me)) is not None:
        store.queues.ack(queue, item.id, holder=me)
"""


def check_invariants(store: agentkeep.Store, queue: str) -> dict[str, list[str]]:
    """Every item in exactly one state directory; every visible file a whole item."""
    found = where(store, queue)
    assert all(len(states) == 1 for states in found.values()), found
    for state in STATE_DIRS:
        for path in (queue_dir(store, queue) / state).iterdir():
            record = json.loads(path.read_text())
            assert record["id"] == path.name.split(",")[0] and "body" in record
    return found


def finish(store: agentkeep.Store, queue: str) -> None:
    """What any later worker does: reclaim (the dead writer's items), take and ack all."""
    while (item := QueueService(store).take(queue)) is not None:
        store.queues.ack(queue, item.id)
    assert os.listdir(queue_dir(store, queue) / "tmp") == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "failpoint",
    [
        "file:mid_write:2",
        "queue:put:before_rename:3",
        "queue:take:after_rename:2",
        "queue:ack:after_rename:2",
    ],
)
def test_kill_at_each_step_leaves_every_item_in_one_state(
    store: agentkeep.Store, project: Path, failpoint: str
) -> None:
    env = {**os.environ, "AGENTKEEP_FAILPOINT": failpoint}
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(project), "jobs", "5"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    puts = done.stdout.count("put")
    found = check_invariants(store, "jobs")
    assert len(found) >= puts  # every acknowledged put is there
    finish(store, "jobs")
    found = check_invariants(store, "jobs")
    assert set(map(tuple, found.values())) == {("done",)} and len(found) >= puts
    acked = [e.data["id"] for e in queue_events(store, "queue.acked")]
    assert len(acked) == len(set(acked))  # no item acked twice


@pytest.mark.slow
def test_kill_at_seeded_random_points(store: agentkeep.Store, project: Path) -> None:
    rng = random.Random(1313)
    stack = contextlib.ExitStack()
    for round_ in range(6):
        queue = f"r{round_}"
        proc = subprocess.Popen(
            [sys.executable, "-c", LOOP, str(project), queue, "30"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        stack.callback(proc.stdout.close)
        target = rng.randrange(0, 45)  # put lines, then done/ entries: some kill takes/acks
        puts = 0
        while puts < min(target, 30):
            if not proc.stdout.readline():
                break
            puts += 1
        if target > 30:
            wait_for(
                lambda q=queue, t=target, p=proc: (
                    p.poll() is not None or len(os.listdir(queue_dir(store, q) / "done")) >= t - 30
                ),
                "acks",
            )
        proc.kill()
        proc.wait()
        found = check_invariants(store, queue)
        assert len(found) >= puts
        finish(store, queue)
        found = check_invariants(store, queue)
        assert all(states == ["done"] for states in found.values())
        acked = [
            e.data["id"] for e in queue_events(store, "queue.acked") if e.data["queue"] == queue
        ]
        assert len(acked) == len(set(acked)) and len(acked) >= len(found) - 1
    stack.close()


# -- the command line -------------------------------------------------------------------


def test_cli_put_take_ack_nack_ls_show_json(cli: Cli) -> None:
    put = cli("queue", "put", "builds", "ref main", "--json")
    assert put.exit_code == 0, put.stderr
    item = put.json()["item"]
    assert put.json()["outcome"] == "created" and item["state"] == "ready"
    assert cli("queue", "put", "builds", "-", "--json", input="from stdin").exit_code == 0
    again = cli("queue", "put", "builds", "x", "--idempotency-key", "k", "--json")
    same = cli("queue", "put", "builds", "x", "--idempotency-key", "k", "--json")
    assert same.json()["outcome"] == "already_exists"
    assert same.json()["item"]["id"] == again.json()["item"]["id"]
    listed = cli("queue", "ls", "--json").json()
    assert listed[0]["queue"] == "builds" and listed[0]["ready"] == 3
    taken = cli("queue", "take", "builds", "--json", "--lease", "60")
    assert taken.exit_code == 0 and taken.json()["id"] == item["id"]
    assert taken.json()["body"] == "ref main" and taken.json()["attempts"] == 1
    acked = cli("queue", "ack", "builds", item["id"], "--attempt", "1", "--json")
    assert acked.json()["outcome"] == "updated" and acked.json()["item"]["state"] == "done"
    second = cli("queue", "take", "builds", "--json").json()
    nacked = cli("queue", "nack", "builds", second["id"], "--delay", "600", "--json")
    assert nacked.json()["item"]["state"] == "delayed"
    items = cli("queue", "ls", "builds", "--json").json()
    assert [i["state"] for i in items] == ["ready", "delayed", "done"]
    assert cli("queue", "ls", "builds", "--state", "done", "--json").json()[0]["id"] == item["id"]
    shown = cli("queue", "show", "builds", item["id"], "--json").json()
    assert shown["state"] == "done" and shown["body"] == "ref main"
    assert cli("queue", "take", "builds", "--json").exit_code == 0
    empty = cli("queue", "take", "builds", "--json")
    assert (empty.exit_code, empty.stdout.strip()) == (0, "null")
    quiet = cli("queue", "take", "builds")
    assert (quiet.exit_code, quiet.stdout) == (0, "")
    assert cli("queue", "ls", "nothing-here", "--json").exit_code == 4
    assert cli("queue", "take", "nothing-here", "--json").stdout.strip() == "null"
    human = cli("queue", "ls")
    assert "builds" in human.stdout and "READY" in human.stdout


def test_cli_errors_are_clear(cli: Cli) -> None:
    item = cli("queue", "put", "q", "x", "--json").json()["item"]
    bad = cli("queue", "put", "../etc", "x", "--json")
    assert bad.exit_code == 3 and bad.error()["code"] == "invalid_input"
    assert "not a queue name" in bad.error()["error"]
    unknown = cli("queue", "ack", "q", "0000000000000000-000000000000", "--json")
    assert unknown.exit_code == 4 and unknown.error()["code"] == "not_found"
    garbage = cli("queue", "ack", "q", "nope", "--json")
    assert garbage.exit_code == 3 and "not a queue item id" in garbage.error()["error"]
    not_taken = cli("queue", "nack", "q", item["id"], "--json")
    assert not_taken.exit_code == 5 and not_taken.error()["code"] == "conflict"
    human = cli("queue", "ack", "q", item["id"])
    assert human.exit_code == 5 and "Traceback" not in human.stderr
    assert "not taken" in human.stderr
    assert cli("queue", "ls", "--state", "done").exit_code == 2
    missing = cli("queue", "work", "q", "--drain", "--", "no-such-command-xyz")
    assert missing.exit_code == 3 and "command not found" in missing.stderr


def test_cli_work_runs_each_item_as_a_recorded_session(
    cli: Cli, store: agentkeep.Store, tmp_path: Path
) -> None:
    for body in ("alpha", "beta", "fail"):
        cli("queue", "put", "w", body)
    script = (
        'read body; echo "ran $body $AGENTKEEP_QUEUE $AGENTKEEP_QUEUE_ATTEMPT '
        '$AGENTKEEP_QUEUE_ITEM"; [ "$body" != fail ]'
    )
    done = cli(
        "queue", "work", "w", "--drain", "--backoff", "0", "--max-attempts", "2", "--json",
        "-q", "--", "sh", "-c", script,
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    summary = done.json()
    assert summary["processed"] == 4 and summary["acked"] == 2
    assert (summary["nacked"], summary["failed"], summary["stopped_by"]) == (1, 1, "drained")
    outputs = [
        "".join(line.text for line in store.session_lines(sid)) for sid in summary["sessions"]
    ]
    assert outputs[0].startswith("ran alpha w 1 ")
    assert outputs[-1].startswith("ran fail w 2 ")
    sessions = [store.get_session(sid) for sid in summary["sessions"]]
    assert [s.status for s in sessions] == ["ended", "ended", "failed", "failed"]
    assert [i["state"] for i in cli("queue", "ls", "w", "--json").json()] == [
        "failed",
        "done",
        "done",
    ]
    kinds = [e.kind for e in queue_events(store)]
    assert kinds.count("queue.acked") == 2 and kinds.count("queue.failed") == 1


def test_an_item_whose_holders_died_too_often_fails_without_running(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    item = store.queues.put("poison", "x").item
    for _ in range(2):  # two holders die with it
        taker = Taker(project, "poison", project)
        assert taker.taken() == item.id
        taker.kill()
    marker = tmp_path / "ran"
    done = run_agentkeep(
        "queue", "work", "poison", "--drain", "--max-attempts", "2", "--json", "--",
        "touch", str(marker), cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["failed"] == 1 and not marker.exists()
    assert store.queues.get("poison", item.id).state == "failed"


@pytest.mark.slow
def test_worker_fires_on_a_new_item_and_stops_cleanly_on_sigterm(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "queue", "work", "live", "--json", "-q", "--",
         "sh", "-c", f'read b; echo "$b" >> {log}; [ "$b" != hang ] || exec sleep 600'],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        store.queues.put("live", "first")
        wait_for(lambda: log.exists() and "first" in log.read_text(), "the worker to fire")
        wait_for(lambda: store.queues.summary("live").done == 1, "the ack")
        hang = store.queues.put("live", "hang").item
        wait_for(lambda: "hang" in log.read_text(), "the second run")
        # A SIGTERM landing between the child's start and the relay's handlers only asks
        # the worker to stop after the item (sleep 600): signal until it has stopped.
        deadline = time.monotonic() + CEILING
        while worker.poll() is None and time.monotonic() < deadline:
            worker.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=0.5)
        out, err = worker.communicate(timeout=CEILING)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    summary = json.loads(out)
    assert summary["stopped_by"] == "signal" and summary["acked"] == 1
    back = store.queues.get("live", hang.id)
    assert (back.state, back.attempts) == ("ready", 1)  # given back at once, not failed
