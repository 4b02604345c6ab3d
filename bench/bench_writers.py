"""Concurrent writers: 8 processes appending events, agentkeep against raw sqlite3, in one run.

    python bench/bench_writers.py [--writers 8] [--seconds 5] [--rounds 3]
                                  [--payload transcript|plain] [--stub-redactor]

Each side starts ``--writers`` processes that append single events as fast as they can for
``--seconds`` seconds, all starting at the same instant:

* agentkeep: ``Store.record_event("tool.finished", data=…)``, one store opened per process
  (WAL, ``synchronous=FULL``, the writers' queue lock, the high-water mark, redaction);
* raw sqlite3: the same work without agentkeep — ``json.dumps`` and one INSERT into the
  same ``events`` table in ``BEGIN IMMEDIATE … COMMIT``, same schema and settings (WAL,
  ``synchronous=FULL``, ``busy_timeout`` = agentkeep's default 5,000 ms, ``foreign_keys``,
  ``secure_delete``). A transaction SQLite refuses ("database is locked" after the busy
  timeout) is counted as an error and the writer goes on.

The payloads are the transcript-like texts of ``bench_store.py`` (200–2,000 bytes, half
of them with "token", "key", "password" or "secret" in ordinary prose and code), or with
``--payload plain`` its short tool result. ``--stub-redactor`` replaces the redactor with
a no-op in the agentkeep writers (attribution only, never a supported mode). Each agentkeep
writer redacts the payloads once before the start, so its compiled redaction engine is
built and warm, as in a process that has been writing for a while (a one-off ~20-25 ms per
process; ``--cold-redactor`` builds it inside the timed loop instead).

Printed per side and round: aggregate events/s, per-write latency p50/p99/max (the time a
caller waits for its acknowledged write), CPU per event (user + system of the writers'
timed loops), fairness (the fewest and most events any writer
got through), errors; then the ratios agentkeep/raw as median (min–max) over rounds. Rounds
alternate the sides so drift on a shared machine hits both; the load average is printed
before and after. ``PYTHONPATH=<checkout>/src`` measures another checkout's agentkeep
with this script (the writers inherit it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_store  # the same payloads and baseline schema

INSERT = bench_store.INSERT
BUSY_TIMEOUT_MS = 5000


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    for pragma in (
        f"busy_timeout={BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
        "synchronous=FULL",
        "secure_delete=ON",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _payloads(kind: str) -> list[dict[str, object]]:
    return [bench_store.PAYLOAD] if kind == "plain" else bench_store.transcript_payloads(500)


def _wait_for_start(ready: Any, go: Any, start: Any) -> float:
    """Say this writer is ready, wait for the common start, and return its time."""
    ready.put(os.getpid())
    go.wait()
    delay = start.value - time.time()
    if delay > 0:
        time.sleep(delay)
    return float(start.value)


def raw_writer(path: str, index: int, sync: tuple[Any, ...], seconds: float, kind: str) -> None:
    payloads = _payloads(kind)
    conn = raw_connect(Path(path))
    latencies: list[float] = []
    errors = 0
    i = index * 1_000_000
    ready, go, shared_start, out = sync
    start = _wait_for_start(ready, go, shared_start)
    cpu = time.process_time()
    end = start + seconds
    clock = time.perf_counter
    while time.time() < end:
        t0 = clock()
        data = json.dumps({**payloads[i % len(payloads)], "n": i}, ensure_ascii=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                INSERT, (bench_store.now(), f"w{index}", "custom", None, "tool.finished", data)
            )
            conn.execute("COMMIT")
        except sqlite3.OperationalError:
            errors += 1
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            continue
        latencies.append(clock() - t0)
        i += 1
    cpu = time.process_time() - cpu
    conn.close()
    out.put((index, latencies, errors, cpu))


def agentkeep_writer(
    root: str,
    index: int,
    sync: tuple[Any, ...],
    seconds: float,
    kind: str,
    stub: bool,
    warm: bool = True,
) -> None:
    import agentkeep
    from agentkeep import redact
    from agentkeep.errors import AgentkeepError

    payloads = _payloads(kind)
    store = agentkeep.open(Path(root), actor=f"w{index}")
    if stub:
        redact.redact_text = lambda text: (text, {})  # type: ignore[assignment]
        redact.may_contain_secret = lambda text: False  # type: ignore[assignment]
    elif warm:
        # What a process that has been writing for a while has: the compiled redaction
        # engine, built once per process after its first 64 KB (~20-25 ms), and warm. In a
        # 4 s round of ~700 events per writer, building it inside the timed loop added
        # ~35 us to each event (8,000 events for a lone writer: ~3 us).
        for payload in payloads:
            redact.redact_text(json.dumps(payload, ensure_ascii=False))
    latencies: list[float] = []
    errors = 0
    i = index * 1_000_000
    ready, go, shared_start, out = sync
    start = _wait_for_start(ready, go, shared_start)
    cpu = time.process_time()
    end = start + seconds
    clock = time.perf_counter
    while time.time() < end:
        t0 = clock()
        try:
            store.record_event("tool.finished", data={**payloads[i % len(payloads)], "n": i})
        except AgentkeepError:
            errors += 1
            continue
        latencies.append(clock() - t0)
        i += 1
    cpu = time.process_time() - cpu
    store.close()
    out.put((index, latencies, errors, cpu))


class Side:
    """One side's result in one round."""

    def __init__(self, results: list[tuple[int, list[float], int, float]], seconds: float) -> None:
        self.counts = [len(lat) for _, lat, _, _ in results]
        everything = sorted(x for _, lat, _, _ in results for x in lat)
        self.rate = len(everything) / seconds
        self.errors = sum(err for _, _, err, _ in results)
        # CPU (user + system) the writers spent per acknowledged event, in microseconds
        self.cpu_us = sum(cpu for *_, cpu in results) / max(1, len(everything)) * 1e6
        n = len(everything)
        self.p50 = everything[n // 2] * 1000 if n else float("nan")
        self.p99 = everything[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan")
        self.max = everything[-1] * 1000 if n else float("nan")
        self.fair = min(self.counts) / max(self.counts) if max(self.counts, default=0) else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label:<10} {self.rate:8,.0f} events/s  p50 {self.p50:6.2f} ms  "
            f"p99 {self.p99:7.2f} ms  max {self.max:7.1f} ms  per writer "
            f"{min(self.counts):,}-{max(self.counts):,} (min/max {self.fair:.2f})  "
            f"errors {self.errors}  CPU {self.cpu_us:.0f} us/event"
        )


def run_side(
    side: str,
    target: str,
    writers: int,
    seconds: float,
    kind: str,
    stub: bool,
    warm: bool = True,
) -> Side:
    ctx = multiprocessing.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start = ctx.Value("d", 0.0)
    sync = (ready, go, start, out)
    procs = []
    for index in range(writers):
        if side == "raw":
            args: tuple[Any, ...] = (target, index, sync, seconds, kind)
            proc = ctx.Process(target=raw_writer, args=args)
        else:
            args = (target, index, sync, seconds, kind, stub, warm)
            proc = ctx.Process(target=agentkeep_writer, args=args)
        proc.start()
        procs.append(proc)
    waiting = len(procs)
    while waiting:  # every writer has started and opened its store
        try:
            ready.get(timeout=1)
            waiting -= 1
        except queue.Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                for proc in procs:
                    proc.kill()
                raise SystemExit(f"a {side} writer failed before the start") from None
    start.value = time.time() + 0.2
    go.set()
    results = [out.get(timeout=seconds + 300) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"a {side} writer exited with {proc.exitcode}")
    return Side(results, seconds)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}-{fmt.format(max(values))})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payload", choices=("transcript", "plain"), default="transcript")
    parser.add_argument("--stub-redactor", action="store_true", help="attribution only")
    parser.add_argument(
        "--cold-redactor",
        action="store_true",
        help="build the compiled redaction engine inside the timed loop (before issue 14's "
        "last pass)",
    )
    args = parser.parse_args()

    import agentkeep

    work = Path(tempfile.mkdtemp(prefix="agentkeep-bench-writers-"))
    os.environ["AGENTKEEP_HOME"] = str(work / "home")
    root = work / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    agentkeep.init_store(root)
    bench_store.raw_connection(work / "raw.db").close()  # same schema, WAL

    load_before = os.getloadavg()
    print(
        f"{args.writers} writers x {args.seconds:g} s per side, {args.rounds} rounds, "
        f"{args.payload} payload{', redactor stubbed' if args.stub_redactor else ''}"
        f"{', redaction engine built in the timed loop' if args.cold_redactor else ''}; "
        f"load average {load_before[0]:.2f} ({os.cpu_count()} cores)",
        flush=True,
    )
    rounds: list[tuple[Side, Side]] = []
    for number in range(1, args.rounds + 1):
        raw = run_side("raw", str(work / "raw.db"), args.writers, args.seconds, args.payload, False)
        ours = run_side(
            "agentkeep",
            str(root),
            args.writers,
            args.seconds,
            args.payload,
            args.stub_redactor,
            not args.cold_redactor,
        )
        print(f"round {number}: load {os.getloadavg()[0]:.2f}")
        print("  " + raw.line("raw"))
        print("  " + ours.line("agentkeep"), flush=True)
        rounds.append((raw, ours))

    print(f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    raws = [r for r, _ in rounds]
    ours_ = [o for _, o in rounds]
    print(
        "aggregate ratio agentkeep/raw: "
        f"{spread([o.rate / r.rate for r, o in rounds])}× (target >= 0.9)"
    )
    print(
        f"p99 ms: agentkeep {spread([o.p99 for o in ours_], '{:.1f}')}, "
        f"raw {spread([r.p99 for r in raws], '{:.1f}')} (target <= 20 ms)"
    )
    print(
        f"max ms: agentkeep {spread([o.max for o in ours_], '{:.1f}')}, "
        f"raw {spread([r.max for r in raws], '{:.1f}')}"
    )
    print(
        f"fairness (fewest/most per writer): agentkeep {spread([o.fair for o in ours_])}, "
        f"raw {spread([r.fair for r in raws])}"
    )
    print(f"CPU per event: agentkeep/raw {spread([o.cpu_us / r.cpu_us for r, o in rounds])}×")
    print(
        f"errors: agentkeep {sum(o.errors for o in ours_)}, "
        f"raw {sum(r.errors for r in raws)} ('database is locked')"
    )


if __name__ == "__main__":
    main()
