"""8 `agentkeep queue work` processes on one queue for at least 60 s, SIGKILLed at seeded
random points and restarted: every item is processed and acked exactly once, none is lost,
and no acked item is run again (issue 13, "What must be shown").

The loop ends on counts, not on a clock budget: it runs until at least MIN_SECONDS have
passed (the issue's floor) AND MIN_KILLS kills happened; every wait after that waits for a
count, with a generous ceiling that fails loudly.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import agentkeep

WORKERS = 8
MIN_SECONDS = 60.0
MIN_KILLS = 12
BACKLOG = 16  # ready items the producer keeps in the queue
CEILING = 300.0  # seconds: only a safety net
QUEUE = "torture"


def state_counts(base: Path) -> dict[str, int]:
    return {state: len(os.listdir(base / state)) for state in ("tmp", "new", "cur", "done")}


@pytest.mark.slow
@pytest.mark.sqlite_only(
    "the queue is files, the same on both backends; only its events go to the database, "
    "and test_queues kills workers on PostgreSQL too (a second minute of 8 workers here "
    "bought no coverage and a minute of the suite's two cores)"
)
def test_eight_workers_with_random_kills_ack_every_item_once(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    rng = random.Random(1313)
    log = tmp_path / "runs.log"
    # Each run appends "<id> <attempt>" (one small O_APPEND write: atomic), then works a
    # little so that kills land inside runs too.
    script = (
        f'read body; echo "$AGENTKEEP_QUEUE_ITEM $AGENTKEEP_QUEUE_ATTEMPT" >> {log}; sleep 0.02'
    )
    argv = [
        sys.executable, "-m", "agentkeep", "queue", "work", QUEUE, "-q", "--lease", "10",
        "--poll", "0.05", "--max-attempts", "1000", "--backoff", "0", "--",
        "sh", "-c", script,
    ]  # fmt: skip

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    base = store.store_dir / "queues" / QUEUE
    put: list[str] = []
    put.append(store.queues.put(QUEUE, "first").item.id)  # the queue's directories exist
    workers = [start() for _ in range(WORKERS)]
    kills = 0
    began = time.monotonic()
    try:
        next_kill = rng.randint(3, 15)  # acks until the next kill
        while time.monotonic() - began < MIN_SECONDS or kills < MIN_KILLS:
            assert time.monotonic() - began < CEILING, f"only {kills} kills in {CEILING}s"
            counts = state_counts(base)
            if counts["new"] < BACKLOG:
                put += [store.queues.put(QUEUE, f"item {len(put)}").item.id for _ in range(8)]
            if counts["done"] >= next_kill:
                victim = rng.randrange(WORKERS)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                workers[victim] = start()
                kills += 1
                next_kill = counts["done"] + rng.randint(3, 15)
            time.sleep(0.02)  # the producer's own pace; nothing waits on it
        deadline = time.monotonic() + CEILING
        while state_counts(base)["done"] < len(put):
            assert time.monotonic() < deadline, f"stuck at {state_counts(base)} of {len(put)}"
            time.sleep(0.05)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=CEILING) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    # A worker restarted just before the end may get SIGTERM before its handler is set
    # (the default action then ends it); the clean stop itself is tested in test_queues.
    assert set(codes) <= {0, -signal.SIGTERM} and 0 in codes
    assert kills >= MIN_KILLS and len(put) > 100

    # Every item is in done/ exactly once, and nowhere else.
    done = {}
    for name in os.listdir(base / "done"):
        ident, attempts = name.split(",")
        assert ident not in done
        done[ident] = int(attempts.removeprefix("a="))
    assert sorted(done) == sorted(put)
    assert state_counts(base) == {"tmp": 0, "new": 0, "cur": 0, "done": len(put)}
    assert os.listdir(base / "failed") == []

    # Each item acked once in the ledger too. A kill between an ack's rename (the commit
    # point) and its event loses that event only: at most one per kill.
    acked = Counter(e.data["id"] for e in store.events(entity="queue", kind="queue.acked"))
    assert max(acked.values()) == 1
    assert len(acked) >= len(put) - kills and set(acked) <= set(put)

    # Every item ran; none ran again after its ack (a run's attempt is never above the
    # acked attempt: attempts only grow, and an acked item is never taken again).
    runs: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        ident, attempt = line.split()
        runs.setdefault(ident, []).append(int(attempt))
    assert set(runs) == set(put)
    assert all(max(runs[ident]) <= done[ident] for ident in put)
    print(f"{len(put)} items, {kills} kills, {sum(map(len, runs.values()))} runs")
