"""Store write path and CLI start-up, side by side with their baselines, in one run.

    python bench/bench_store.py [--events N] [--rounds R]

1. Durable single-event append: ``Store.record_event`` vs raw sqlite3 doing the same work
   (json.dumps + INSERT in BEGIN IMMEDIATE … COMMIT) on an identical schema with the same
   settings (WAL, synchronous=FULL). Target ≥ 0.85×.
2. Batched recording, 1,000 events per transaction: ``Store.record_events`` vs raw sqlite3
   ``executemany`` in one transaction. Target ≥ 0.8×.
3. ``agentkeep status`` cold start (a new process) vs ``python -c pass``.

For attribution only, the same store calls are also timed with the redactor stubbed out
(never a supported mode): the difference is what the privacy boundary costs. And the commit
high-water mark (highwater.py: a pread, two primary-key lookups and a pwrite per
write transaction) is timed on and off with ``synchronous=NORMAL``, where no fsync hides
CPU costs: the difference is its cost per transaction in microseconds.

Rounds alternate baseline and agentkeep so drift on a shared machine hits both; medians
are reported. Absolute numbers vary ±25% between runs; the ratios are the result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import agentkeep
from agentkeep import redact
from agentkeep.backends.sqlite.migrate import split_statements
from agentkeep.migrations import MIGRATIONS

PAYLOAD = {
    "tool": "Bash",
    "command": "pytest -q tests/test_parser.py::test_nested_lists",
    "exit_code": 1,
    "duration_ms": 1834,
    "cwd": "src/parser",
    "summary": "1 failed, 41 passed in 1.83s; AssertionError: expected 3 nested items, got 2",
    "files": ["src/parser/lists.py", "tests/test_parser.py"],
}
INSERT = "INSERT INTO events (at, actor, entity, entity_id, kind, data) VALUES (?, ?, ?, ?, ?, ?)"


def raw_connection(path: Path) -> sqlite3.Connection:
    """The baseline: stdlib sqlite3 with agentkeep's settings and schema, nothing else."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for pragma in ("synchronous=FULL", "busy_timeout=5000", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    for migration in MIGRATIONS:
        for statement in split_statements(migration.sql_for("sqlite")):
            conn.execute(statement)
    return conn


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def raw_single(conn: sqlite3.Connection, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        data = json.dumps({**PAYLOAD, "n": i}, ensure_ascii=False)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, (now(), "bench", "custom", None, "tool.finished", data))
        conn.execute("COMMIT")
    return n / (time.perf_counter() - start)


def store_single(store: agentkeep.Store, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        store.record_event("tool.finished", data={**PAYLOAD, "n": i})
    return n / (time.perf_counter() - start)


def raw_batched(conn: sqlite3.Connection, batches: int, size: int = 1000) -> float:
    start = time.perf_counter()
    for b in range(batches):
        at = now()
        rows = [
            (
                at,
                "bench",
                "custom",
                None,
                "tool.finished",
                json.dumps({**PAYLOAD, "n": b * size + i}, ensure_ascii=False),
            )
            for i in range(size)
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    return batches * size / (time.perf_counter() - start)


def store_batched(store: agentkeep.Store, batches: int, size: int = 1000) -> float:
    start = time.perf_counter()
    for b in range(batches):
        store.record_events(
            [{"kind": "tool.finished", "data": {**PAYLOAD, "n": b * size + i}} for i in range(size)]
        )
    return batches * size / (time.perf_counter() - start)


@contextlib.contextmanager
def mark_detached(store: agentkeep.Store) -> Iterator[None]:
    """The store's connection without its high-water mark guard (attribution only)."""
    guard = store._conn.guard
    store._conn.guard = None
    try:
        yield
    finally:
        store._conn.guard = guard


def mark_cost_us(store: agentkeep.Store, n: int, rounds: int) -> tuple[float, float]:
    """Median µs per single-event transaction with and without the mark (NORMAL sync)."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(rounds):
        on.append(1e6 / store_single(store, n))
        with mark_detached(store):
            off.append(1e6 / store_single(store, n))
    return statistics.median(on), statistics.median(off)


@contextlib.contextmanager
def redaction_stubbed() -> Iterator[None]:
    saved = redact.redact_text, redact.may_contain_secret
    redact.redact_text = lambda text: (text, {})  # type: ignore[assignment]
    redact.may_contain_secret = lambda text: False  # type: ignore[assignment]
    try:
        yield
    finally:
        redact.redact_text, redact.may_contain_secret = saved


def cold_start(argv: list[str], cwd: Path, runs: int) -> float:
    """Median wall time of a new process, with the bytecode cache as users have it (a
    sandbox may set PYTHONDONTWRITEBYTECODE, which makes every run recompile from source)."""
    times = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)  # warm the cache
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="single appends per round")
    parser.add_argument("--batches", type=int, default=20, help="1,000-event batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agentkeep-bench-"))
    os.environ["AGENTKEEP_HOME"] = str(work / "home")
    (work / "proj").mkdir()
    subprocess.run(["git", "init", "-q", str(work / "proj")], check=True)
    agentkeep.init_store(work / "proj")
    store = agentkeep.open(work / "proj", actor="bench")
    raw = raw_connection(work / "raw.db")

    keys = ("raw1", "ak1", "free1", "rawN", "akN", "freeN")
    results: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(args.rounds):
        results["raw1"].append(raw_single(raw, args.events))
        results["ak1"].append(store_single(store, args.events))
        results["rawN"].append(raw_batched(raw, args.batches))
        results["akN"].append(store_batched(store, args.batches))
        with redaction_stubbed():
            results["free1"].append(store_single(store, args.events))
            results["freeN"].append(store_batched(store, args.batches))
    med = {k: statistics.median(v) for k, v in results.items()}
    fast = agentkeep.open(work / "proj", actor="bench", config={"store.synchronous": "NORMAL"})
    with_mark, without_mark = mark_cost_us(fast, args.events, max(3, args.rounds))
    fast.close()

    python = cold_start([sys.executable, "-c", "pass"], work / "proj", 15)
    status = cold_start([sys.executable, "-m", "agentkeep", "status"], work / "proj", 15)
    store.close()
    raw.close()

    single = med["ak1"] / med["raw1"]
    batched = med["akN"] / med["rawN"]
    print(
        f"durable single append: raw sqlite3 {med['raw1']:,.0f}/s, "
        f"agentkeep {med['ak1']:,.0f}/s -> ratio {single:.2f}x (target >= 0.85)"
    )
    print(
        f"batched 1000/txn:      raw sqlite3 {med['rawN']:,.0f}/s, "
        f"agentkeep {med['akN']:,.0f}/s -> ratio {batched:.2f}x (target >= 0.80)"
    )
    print(
        f"  attribution, redactor stubbed out: single {med['free1'] / med['raw1']:.2f}x, "
        f"batched {med['freeN'] / med['rawN']:.2f}x (the gap to these is the privacy boundary)"
    )
    print(
        f"  high-water mark, synchronous=NORMAL: {with_mark:.1f} us/txn with it, "
        f"{without_mark:.1f} us/txn without -> +{with_mark - without_mark:.1f} us per write "
        "transaction"
    )
    print(
        f"cold start:            python -c pass {python:.1f} ms, "
        f"agentkeep status {status:.1f} ms -> {status / python:.1f}x "
        f"(+{status - python:.1f} ms)"
    )


if __name__ == "__main__":
    main()
