"""The store's per-event Python in two checkouts, alternately: CPU per append beyond raw sqlite3.

bench_store's wall-clock ratios move ±15 % between runs on a shared machine, more than a
few microseconds of Python per event. This measures what that work costs directly: in one
process per checkout, with ``synchronous=NORMAL`` (no fsync to wait on), the CPU time
(``time.process_time``) of ``Store.record_event`` and of the same INSERT in
``BEGIN IMMEDIATE … COMMIT`` on the store's own connection, then of ``Store.record_events``
and ``executemany`` for 1,000-event batches; it prints the difference (µs per event, the
store's own work: boundary, Tx, high-water mark, writers' queue) and the CPU ratio, as median
(min–max) over ``--rounds`` processes per checkout, the checkouts alternating.

    .venv/bin/python bench/store_cpu_ab.py --before /work/main [--rounds 6] [--events 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import agentkeep
sys.path.insert(0, sys.argv[1])
import bench_store as B
events = int(sys.argv[2])
work = Path(tempfile.mkdtemp(prefix="agentkeep-cpu-ab-"))
os.environ["AGENTKEEP_HOME"] = str(work / "home")
(work / "proj").mkdir()
subprocess.run(["git", "init", "-q", str(work / "proj")], check=True)
agentkeep.init_store(work / "proj")
store = agentkeep.open(work / "proj", actor="bench", config={"store.synchronous": "NORMAL"})
raw = store._conn.raw
INSERT = B.INSERT


def raw_one(i):
    data = json.dumps({**B.PAYLOAD, "n": i}, ensure_ascii=False)
    raw.execute("BEGIN IMMEDIATE")
    raw.execute(INSERT, (B.now(), "bench", "custom", None, "tool.finished", data))
    raw.execute("COMMIT")


def store_one(i):
    store.record_event("tool.finished", data={**B.PAYLOAD, "n": i})


def raw_batch(b):
    at = B.now()
    rows = [
        (at, "bench", "custom", None, "tool.finished",
         json.dumps({**B.PAYLOAD, "n": i}, ensure_ascii=False))
        for i in range(1000)
    ]
    raw.execute("BEGIN IMMEDIATE")
    raw.executemany(INSERT, rows)
    raw.execute("COMMIT")


def store_batch(b):
    store.record_events(
        [{"kind": "tool.finished", "data": {**B.PAYLOAD, "n": i}} for i in range(1000)]
    )


def cpu_us(work, n, per=1):
    started = time.process_time()
    for i in range(n):
        work(i)
    return (time.process_time() - started) / (n * per) * 1e6


single = [(cpu_us(raw_one, events), cpu_us(store_one, events)) for _ in range(3)]
batched = [(cpu_us(raw_batch, 10, 1000), cpu_us(store_batch, 10, 1000)) for _ in range(3)]
r1, a1 = (statistics.median(x[k] for x in single) for k in (0, 1))
rn, an = (statistics.median(x[k] for x in batched) for k in (0, 1))
print(json.dumps({"single": a1 - r1, "ratio": a1 / r1, "batched": an - rn, "bratio": an / rn}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--events", type=int, default=1500, help="single appends per sample")
    args = parser.parse_args()
    sides = {"before": Path(args.before).resolve() / "src", "after": HERE.parent / "src"}
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    print(f"load average {os.getloadavg()[0]:.2f} before")
    for _ in range(args.rounds):
        for side, src in sides.items():
            env = {**os.environ, "PYTHONPATH": str(src)}
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(HERE), str(args.events)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[side].append(json.loads(out.stdout.splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.2f} after; {args.rounds} rounds, median (min-max)")
    labels = {
        "single": "single append, CPU beyond raw (us/event)",
        "ratio": "single append, CPU ratio",
        "batched": "batched 1000/txn, CPU beyond raw (us/event)",
        "bratio": "batched 1000/txn, CPU ratio",
    }
    for key, label in labels.items():
        for side in sides:
            values = [r[key] for r in results[side]]
            print(
                f"{label:<45} {side:<6} {statistics.median(values):7.2f} "
                f"({min(values):.2f}-{max(values):.2f})"
            )


if __name__ == "__main__":
    main()
