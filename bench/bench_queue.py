"""Work queues: put → worker fire latency, and put/take/ack throughput, agentkeep against a
plain-file baseline in the same run.

    python bench/bench_queue.py [--items 200] [--rounds 3] [--ops 500] [--poll 0.1]
                                [--skip-latency] [--skip-throughput]

Fire latency (issue 13's floor: p99 ≤ 1 s without the server). One `agentkeep queue work`
process (``--poll`` seconds idle poll, the default 0.1) runs ``sh -c 'date +%s%N'``-like
command for each item; the bench puts one item at a time, at a random phase of the poll
(a 0–150 ms pause after the previous run), and measures from just before ``put`` to the
command's own start (it writes ``time.time_ns()`` when it starts). The baseline is the
least a polling worker can do: a Python loop that scans a plain directory every ``--poll``
seconds, claims a file by rename and spawns the same command (no session, no event, no
lease). p50/p99/max over ``--items`` items per round.

Throughput (``--ops`` items per round, transcript-like bodies of 200–2,000 bytes):
agentkeep's ``store.queues.put`` / ``take`` / ``ack`` (redaction, tmp → fsync → rename →
fsync dir, an event committed per change on SQLite with ``synchronous=FULL``) against the
plain files: write tmp + fsync + rename into new/ + fsync dir; rename new/ → cur/ + fsync
dir; rename cur/ → done/ + fsync dir. An attribution row runs agentkeep with the events
stubbed out (never a supported mode). Rounds alternate the sides; ratios are printed as
median (min–max) over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agentkeep
import bench_store  # the same transcript-like payloads
from agentkeep.files import fsync_path

CHILD = (
    "import os, sys, time; t = time.time_ns(); body = sys.stdin.read(); "
    "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600); "
    "os.write(fd, f'{os.environ.get(\"AGENTKEEP_QUEUE_ITEM\", body)} {t}\\n'.encode()); "
    "os.close(fd)"
)

BASELINE_WORKER = """
import os, subprocess, sys, time
base, log, poll, child = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
new, cur = os.path.join(base, "new"), os.path.join(base, "cur")
while True:
    names = sorted(e.name for e in os.scandir(new))
    if not names:
        if os.path.exists(os.path.join(base, "stop")):
            break
        time.sleep(poll)
        continue
    for name in names:
        try:
            os.rename(os.path.join(new, name), os.path.join(cur, name))
        except FileNotFoundError:
            continue
        with open(os.path.join(cur, name), "rb") as body:
            subprocess.run([sys.executable, "-c", child, log], stdin=body, check=True)
        os.unlink(os.path.join(cur, name))
"""


def bodies(count: int) -> list[str]:
    return [json.dumps(p) for p in bench_store.transcript_payloads(count)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ratio_line(name: str, ratios: list[float]) -> str:
    return (
        f"  {name}: {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}–{max(ratios):.2f}) over {len(ratios)} rounds"
    )


# -- fire latency -----------------------------------------------------------------------


def wait_lines(log: Path, count: int, ceiling: float = 60.0) -> list[str]:
    deadline = time.monotonic() + ceiling
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker ran {len(lines)} of {count} items in {ceiling}s")
        time.sleep(0.001)


def latency_agentkeep(root: Path, items: int, poll: float, rng: random.Random) -> list[float]:
    log = root / "fired.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "queue", "work", "lat", "-q", "--poll", str(poll),
         "--", sys.executable, "-c", CHILD, str(log)],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out = []
    try:
        with agentkeep.open(root) as store:
            store.queues.put("lat", "warm-up")
            wait_lines(log, 1)
            for n in range(items):
                time.sleep(rng.uniform(0, 0.15))
                before = time.time_ns()
                item = store.queues.put("lat", f"item {n}").item
                line = wait_lines(log, n + 2)[-1]
                ident, started = line.split()
                assert ident == item.id
                out.append((int(started) - before) / 1e9)
    finally:
        worker.terminate()
        worker.wait()
    return out


def latency_baseline(root: Path, items: int, poll: float, rng: random.Random) -> list[float]:
    base = root / "plain"
    for name in ("tmp", "new", "cur"):
        (base / name).mkdir(parents=True)
    log = root / "plain.log"
    worker = subprocess.Popen(
        [sys.executable, "-c", BASELINE_WORKER, str(base), str(log), str(poll), CHILD]
    )
    out = []
    try:
        plain_put(base, "warm-up")
        wait_lines(log, 1)
        for n in range(items):
            time.sleep(rng.uniform(0, 0.15))
            before = time.time_ns()
            plain_put(base, f"item {n}")
            line = wait_lines(log, n + 2)[-1]
            out.append((int(line.split()[-1]) - before) / 1e9)
    finally:
        (base / "stop").touch()
        worker.wait()
    return out


# -- throughput ---------------------------------------------------------------------------

_seq = 0


def plain_put(base: Path, body: str) -> str:
    global _seq
    _seq += 1
    name = f"{time.time_ns():016x}-{_seq:08d}"
    tmp = base / "tmp" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, body.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, base / "new" / name)
    fsync_path(base / "new", directory=True)
    return name


def plain_round(root: Path, payloads: list[str]) -> dict[str, float]:
    base = root / "plainq"
    for name in ("tmp", "new", "cur", "done"):
        (base / name).mkdir(parents=True)
    timings = {}
    started = time.perf_counter()
    for body in payloads:
        plain_put(base, body)
    timings["put"] = time.perf_counter() - started
    started = time.perf_counter()
    taken = []
    for _ in payloads:
        name = sorted(os.listdir(base / "new"))[0]
        os.rename(base / "new" / name, base / "cur" / name)
        fsync_path(base / "cur", directory=True)
        (base / "cur" / name).read_bytes()
        taken.append(name)
    timings["take"] = time.perf_counter() - started
    started = time.perf_counter()
    for name in taken:
        os.rename(base / "cur" / name, base / "done" / name)
        fsync_path(base / "done", directory=True)
    timings["ack"] = time.perf_counter() - started
    shutil.rmtree(base)
    return timings


def agentkeep_round(root: Path, payloads: list[str], queue: str) -> dict[str, float]:
    timings = {}
    with agentkeep.open(root) as store:
        started = time.perf_counter()
        for body in payloads:
            store.queues.put(queue, body)
        timings["put"] = time.perf_counter() - started
        started = time.perf_counter()
        taken = []
        for _ in payloads:
            item = store.queues.take(queue)
            assert item is not None
            taken.append(item.id)
        timings["take"] = time.perf_counter() - started
        started = time.perf_counter()
        for ident in taken:
            store.queues.ack(queue, ident)
        timings["ack"] = time.perf_counter() - started
    return timings


def stubbed_events(run: Callable[[], dict[str, float]]) -> dict[str, float]:
    from agentkeep.services.queues import QueueService

    real = QueueService._emitted
    QueueService._emitted = lambda self, kind, item, extra: item  # type: ignore[assignment,method-assign]
    try:
        return run()
    finally:
        QueueService._emitted = real  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rng = random.Random(13)
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        if not args.skip_latency:
            print(f"\nput → worker fire latency ({args.items} items per round, poll {args.poll}s)")
            ratios = []
            for round_ in range(args.rounds):
                results: dict[str, list[float]] = {}
                order = ["agentkeep", "baseline"] if round_ % 2 == 0 else ["baseline", "agentkeep"]
                for side in order:
                    root = Path(tmp) / f"lat-{side}-{round_}"
                    root.mkdir()
                    subprocess.run(["git", "init", "-q", str(root)], check=True)
                    agentkeep.init_store(root)
                    run = latency_agentkeep if side == "agentkeep" else latency_baseline
                    results[side] = run(root, args.items, args.poll, rng)
                for side in ("agentkeep", "baseline"):
                    values = [v * 1000 for v in results[side]]
                    print(
                        f"  round {round_ + 1} {side:9}: p50 {percentile(values, 0.5):6.1f} ms"
                        f"  p99 {percentile(values, 0.99):6.1f} ms  max {max(values):6.1f} ms"
                    )
                ratios.append(
                    percentile(results["agentkeep"], 0.99) / percentile(results["baseline"], 0.99)
                )
            print(ratio_line("p99 agentkeep/baseline", ratios))
        if not args.skip_throughput:
            payloads = bodies(args.ops)
            print(f"\nthroughput ({args.ops} items per round, 200–2,000 byte bodies), ops/s")
            per: dict[str, list[float]] = {}
            for round_ in range(args.rounds):
                root = Path(tmp) / f"tp-{round_}"
                root.mkdir()
                subprocess.run(["git", "init", "-q", str(root)], check=True)
                agentkeep.init_store(root)
                sides: dict[str, Callable[[], dict[str, float]]] = {
                    "plain files": lambda r=root: plain_round(r, payloads),
                    "agentkeep": lambda r=root, n=round_: agentkeep_round(r, payloads, f"q{n}"),
                    "agentkeep, events stubbed": lambda r=root, n=round_: stubbed_events(
                        lambda: agentkeep_round(r, payloads, f"s{n}")
                    ),
                }
                names = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                timings = {name: sides[name]() for name in names}
                line = []
                for name in sides:
                    rates = {op: args.ops / t for op, t in timings[name].items()}
                    line.append(
                        f"{name}: " + " ".join(f"{op} {rate:,.0f}" for op, rate in rates.items())
                    )
                    for op, rate in rates.items():
                        per.setdefault(f"{name}|{op}", []).append(rate)
                print(f"  round {round_ + 1}: " + " | ".join(line))
            for op in ("put", "take", "ack"):
                base = per[f"plain files|{op}"]
                for name in ("agentkeep", "agentkeep, events stubbed"):
                    ratios = [a / b for a, b in zip(per[f"{name}|{op}"], base, strict=True)]
                    print(ratio_line(f"{op} {name}/plain", ratios))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
