"""Run the benchmarks of two checkouts side by side, alternating, to show what a change
costs: ``python bench/compare.py --before /path/to/old/checkout [--rounds 3]``.

Each benchmark runs from its own checkout (its own ``bench/`` script and ``src/``), before
and after in turn, ``--rounds`` times, so that load on the machine falls on both sides
alike. Every run's full output is kept under ``--out``; the summary prints each run's
result lines (those holding a ratio ``×`` or a rate) one under the other.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AFTER = HERE.parent

# script, arguments: sized so one round of everything takes a few minutes on 2 cores
SUITE = [
    ("bench_store.py", ["--rounds", "1"]),
    ("bench_writers.py", ["--rounds", "1", "--seconds", "4"]),
    ("bench_hook.py", ["--runs", "12"]),
    ("bench_import.py", ["--mib", "40"]),
    ("bench_search.py", ["--messages", "100000", "--rounds", "1"]),
    ("bench_streams.py", ["--mib", "64", "--rounds", "1", "--reads", "100"]),
    ("bench_redact.py", ["--mb", "8"]),
    ("bench_startup.py", ["--runs", "10", "--usage-rounds", "3"]),
]


def run(tree: Path, script: str, args: list[str], log: Path, tmp: Path) -> list[str]:
    path = tree / "bench" / script
    if not path.exists():
        return [f"({script} does not exist in {tree})"]
    tmp.mkdir(parents=True, exist_ok=True)  # each side its own cached corpora
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "TMPDIR": str(tmp)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    lines = [
        line.rstrip()
        for line in done.stdout.splitlines()
        if "×" in line or "MB/s" in line or "MiB/s" in line or "p99" in line or " ms" in line
    ]
    status = "" if done.returncode == 0 else f" (exit {done.returncode}, see {log})"
    return [f"[{time.monotonic() - started:.0f} s{status}]", *lines]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", action="append", help="run only these scripts")
    parser.add_argument("--out", type=Path, default=Path("/tmp/agentkeep-compare"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sides = {"before": args.before.resolve(), "after": AFTER}
    for script, script_args in SUITE:
        if args.only and script not in args.only:
            continue
        print(f"== {script} {' '.join(script_args)}", flush=True)
        for round_no in range(1, args.rounds + 1):
            for side, tree in sides.items():
                log = args.out / f"{script}.{side}.{round_no}.log"
                tmp = args.out / f"tmp-{side}"
                for line in run(tree, script, script_args, log, tmp):
                    print(f"  {side:<6} r{round_no} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
