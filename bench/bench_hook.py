"""`agentkeep hook` end to end vs the floor of a stdlib script, side by side in one run.

    python bench/bench_hook.py [--runs 30] [--synchronous FULL|NORMAL] [--quick]
    python bench/bench_hook.py --contention [--agents 8] [--seconds 8] [--hold 2] [--rounds 3]

Each measurement is one process, from spawn to exit, with the row durable on exit:

- **hook**: the installed console script, ``agentkeep hook --source claude < payload``, into
  a fresh project store (found from the payload's ``cwd``), with the store's settings:
  WAL, ``synchronous`` as given (default FULL), redaction, dedupe, session counters.
- **floor**: a stdlib Python script run by the same interpreter that reads stdin, parses
  the JSON, connects to a WAL SQLite file with the same ``synchronous``, inserts the
  payload in one row and commits: the least a hook can do (25-28 ms when measured before
  the code; docs/design.md "Agent tools' formats").
  The floor without ``json`` and ``python -c pass`` are printed for reference.

Two Claude ``PostToolUse`` payloads: a small Bash call (~0.5 KB) and a 10 KB tool output.
Every run delivers a new ``tool_use_id`` (a repeat would be a no-op and flatter the hook).
Runs are interleaved (floor, hook, hook, floor, ...) so drift on a shared machine hits both;
medians and p90 are reported, and the ratio of medians (target <= 1.3). Bytecode caches
are written as in a real install (PYTHONDONTWRITEBYTECODE is removed from the children's
environment), and a few warm-up runs fill them and the hook's settings cache first.

``--contention`` (principle 3 of docs/design.md): ``--agents`` threads each run the hook in a loop
(one process per delivery, a new ``tool_use_id`` each) for ``--seconds``, while another
process holds the writer lock (agentkeep's queue lock and ``BEGIN IMMEDIATE``, as a long
import does) for ``--hold`` seconds at a time with 0.5 s breaks. The floor script runs the
same way against its own database, with the same kind of holder. Reported per round: the
deliveries made and how many are in the database once a writer drained the spool (lost =
made - stored; the target is 0), and the wall time of each process: p50, p99, max (target
for the hook: p99 <= 100 ms). For reference, the same agents without a holder ("free"):
what 8 concurrent processes cost on this machine whatever the lock does. And agentkeep's
own share, without the interpreter's start-up: the hook's entry point called 40 times in
one process ("in-process"), with the lock held throughout (every delivery spooled), then
free (each stores the spool first). Then the range of each figure over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep

FLOOR = """\
import json, sqlite3, sys
data = sys.stdin.buffer.read()
json.loads(data)
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
conn.execute("PRAGMA synchronous=" + sys.argv[2])
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO captures (payload) VALUES (?)", (data.decode("utf-8", "replace"),))
conn.execute("COMMIT")
conn.close()
"""
FLOOR_NO_JSON = FLOOR.replace("json.loads(data)\n", "").replace("import json, ", "import ")

# A 10 KB tool output: Python source as a Read returns it (``key`` in it, as in most code,
# so the redactor has a candidate pass to run).
SOURCE_LINES = (
    "def test_retry_{n}(tmp_path):",
    "    path = tmp_path / 'upload_{n}.bin'",
    "    result = upload(path, retries={m}, timeout=0.{m})",
    "    assert result.status == 'ok', result",
    "    cache[key] = result.etag  # {n}",
    "    for attempt in range({m}):",
    "        log.info('attempt %d of %d', attempt, {m})",
    "",
)


def console_script() -> str:
    script = Path(sys.executable).parent / "agentkeep"
    if not script.exists():
        raise SystemExit(f"no console script at {script}; install agentkeep into this venv")
    return str(script)


def payload(cwd: Path, n: int, size: int, rng: random.Random) -> bytes:
    stdout = "14 passed in 0.81s"
    if size > 1000:
        lines: list[str] = []
        while sum(len(line) + 1 for line in lines) < size:
            k = rng.randint(1, 999)
            lines += [line.format(n=k, m=k % 7 + 1) for line in SOURCE_LINES]
        stdout = "\n".join(lines)[:size]
    doc = {
        "session_id": "bench-session-0b6d",
        "transcript_path": "/home/me/.claude/projects/-bench/bench-session-0b6d.jsonl",
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {
            "command": "pytest -q tests/test_upload.py",
            "description": "Run upload tests",
            "timeout": 120000,
            "run_in_background": False,
        },
        "tool_response": {"stdout": stdout, "stderr": "", "interrupted": False},
        "tool_use_id": f"toolu_bench_{size}_{n:06d}",
        "duration_ms": 812,
    }
    return json.dumps(doc).encode()


def timed(argv: list[str], data: bytes, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall ms, CPU ms) of one process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, input=data, env=env, cwd=cwd, capture_output=True)
    elapsed = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or done.stdout or done.stderr:
        raise SystemExit(f"{argv[0]} failed: {done.returncode} {done.stderr[-500:]!r}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return elapsed, cpu


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


# Holds a database's writer lock for HOLD seconds at a time, with BREAK-second breaks,
# until stdin closes: the queue lock (state.db.lock) first, like every agentkeep writer,
# then BEGIN IMMEDIATE. Prints "held" each time it has the lock.
HOLDER = """\
import fcntl, os, sqlite3, sys, threading, time
db, hold, pause = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
conn = sqlite3.connect(db, isolation_level=None, timeout=60)
fd = os.open(db + ".lock", os.O_RDWR | os.O_CREAT)
while not done.is_set():
    fcntl.flock(fd, fcntl.LOCK_EX)
    conn.execute("BEGIN IMMEDIATE")
    print("held", flush=True)
    done.wait(hold)
    conn.execute("ROLLBACK")
    fcntl.flock(fd, fcntl.LOCK_UN)
    done.wait(pause)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def contention_round(
    argv: list[str],
    db: Path,
    project: Path,
    env: dict[str, str],
    cwd: Path,
    args: argparse.Namespace,
    counter: Any,
    *,
    held: bool = True,
) -> tuple[list[float], int]:
    """Agents deliver in a loop while the holder holds ``db``'s lock (``held``); returns
    the wall times (ms) and the number of deliveries made."""
    holder = None
    if held:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), str(args.hold), "0.5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "held\n"  # the agents start under a held lock
    walls: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + args.seconds
    rng = random.Random(2)

    def agent() -> None:
        while time.monotonic() < stop:
            with lock:
                data = payload(project, next(counter), 300, rng)
            wall, _ = timed(argv, data, env, cwd)
            with lock:
                walls.append(wall)

    agents = [threading.Thread(target=agent) for _ in range(args.agents)]
    for thread in agents:
        thread.start()
    for thread in agents:
        thread.join()
    if holder is not None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    return walls, len(walls)


# The hook's entry point called in a loop in one process: the time agentkeep itself holds
# a delivery, without the interpreter's start-up (which the agent pays for any hook).
IN_PROCESS = """\
import io, json, sys, time
from agentkeep.hook import main
walls = []
for line in sys.stdin:
    sys.stdin, real = io.TextIOWrapper(io.BytesIO(line.encode())), sys.stdin
    start = time.perf_counter()
    main(["--source", "claude"])
    walls.append((time.perf_counter() - start) * 1000)
    sys.stdin = real
print(json.dumps(walls))
"""


def in_process(project: Path, env: dict[str, str], cwd: Path, counter: Any, n: int) -> list[float]:
    rng = random.Random(3)
    lines = b"".join(payload(project, next(counter), 300, rng) + b"\n" for _ in range(n))
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS], input=lines, env=env, cwd=cwd, capture_output=True
    )
    if done.returncode != 0 or done.stderr:
        raise SystemExit(f"in-process hook failed: {done.stderr[-500:]!r}")
    walls: list[float] = json.loads(done.stdout)
    return walls


def count_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM captures").fetchone()[0])
    finally:
        conn.close()


def contention(args: argparse.Namespace) -> int:
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-hook-") as tmp:
        base = Path(tmp)
        home, work = base / "home", base / "elsewhere"
        for directory in (home, work):
            directory.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTKEEP_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["AGENTKEEP_HOME"] = str(home)
        env["AGENTKEEP_STORE_SYNCHRONOUS"] = args.synchronous
        os.environ.update({"AGENTKEEP_HOME": str(home)})
        floor_py = base / "floor.py"
        floor_py.write_text(FLOOR)
        counter = iter(range(10**9))
        for round_no in range(args.rounds):
            project = base / f"project-{round_no}"
            project.mkdir()
            agentkeep.init_store(project)
            store_db = project / ".agentkeep" / "state.db"
            floor_db = base / f"floor-{round_no}.db"
            conn = sqlite3.connect(floor_db)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE captures (id INTEGER PRIMARY KEY, payload TEXT)")
            conn.close()
            hook_argv = [console_script(), "hook", "--source", "claude"]
            floor_argv = [sys.executable, str(floor_py), str(floor_db), args.synchronous]
            for _ in range(3):  # warm-up: bytecode caches, the hook's settings cache
                timed(hook_argv, payload(project, next(counter), 300, random.Random(0)), env, work)
            warm = count_rows(store_db)
            floor_walls, floor_made = contention_round(
                floor_argv, floor_db, project, env, work, args, counter
            )
            hook_walls, hook_made = contention_round(
                hook_argv, store_db, project, env, work, args, counter
            )
            # agentkeep's own share: the entry point in one process, lock held, then free.
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(store_db), "3600", "0"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline() == "held\n"
            inner_held = in_process(project, env, work, counter, 40)
            holder.stdin.close()
            holder.wait(timeout=60)
            hook_made += len(inner_held)
            spool_left = (
                len(os.listdir(project / ".agentkeep" / "spool"))
                if (project / ".agentkeep" / "spool").exists()
                else 0
            )
            # For reference, no holder: these hooks also store what the others spooled.
            free_walls, free_made = contention_round(
                hook_argv, store_db, project, env, work, args, counter, held=False
            )
            inner_free = in_process(project, env, work, counter, 40)
            free_made += len(inner_free)
            bare_walls, _ = contention_round(
                floor_argv, floor_db, project, env, work, args, counter, held=False
            )
            agentkeep.open(project).close()  # the next writer: drains what is left
            stored = count_rows(store_db) - warm - free_made
            errors = project / ".agentkeep" / "hook-errors.log"
            logged = errors.read_text().splitlines() if errors.exists() else []
            row = {
                "hook made": hook_made,
                "hook lost": hook_made - stored,
                "left in spool": spool_left,
                "log lines": len(logged),
                "hook p50": percentile(hook_walls, 0.5),
                "hook p99": percentile(hook_walls, 0.99),
                "hook max": max(hook_walls),
                "floor made": floor_made,
                "floor lost": floor_made + len(bare_walls) - count_rows(floor_db),
                "floor p50": percentile(floor_walls, 0.5),
                "floor p99": percentile(floor_walls, 0.99),
                "floor max": max(floor_walls),
                "free hook p50": percentile(free_walls, 0.5),
                "free hook p99": percentile(free_walls, 0.99),
                "free floor p50": percentile(bare_walls, 0.5),
                "free floor p99": percentile(bare_walls, 0.99),
                "in-process held p50": percentile(inner_held, 0.5),
                "in-process held p99": percentile(inner_held, 0.99),
                "in-process free p50": percentile(inner_free, 0.5),
                "in-process free p99": percentile(inner_free, 0.99),
            }
            rows.append(row)
            print(f"round {round_no + 1}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()))
            if logged:
                print("  hook log: " + " | ".join(logged[:3]))
    print(
        f"\n{args.agents} agents' hooks in a loop for {args.seconds:g} s, the writer lock held"
        f" {args.hold:g} s at a time; {args.rounds} rounds, synchronous={args.synchronous}"
    )
    for key in rows[0]:
        values = [row[key] for row in rows]
        print(f"  {key:<14} {min(values):>8.0f} .. {max(values):.0f}")
    lost = sum(row["hook lost"] for row in rows)
    p99 = max(row["hook p99"] for row in rows)
    print(f"hook: {lost:.0f} deliveries lost (target 0), p99 up to {p99:.0f} ms (target <= 100)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per side and payload")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--quick", action="store_true", help="8 runs: a smoke test")
    parser.add_argument("--contention", action="store_true", help="agents vs a held lock")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="per side and round")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds the lock is held")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.contention:
        return contention(args)
    runs = 8 if args.quick else args.runs
    rng = random.Random(1)

    with tempfile.TemporaryDirectory(prefix="bench-hook-") as tmp:
        base = Path(tmp)
        home, project, work = base / "home", base / "project", base / "elsewhere"
        for directory in (home, project, work):
            directory.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTKEEP_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["AGENTKEEP_HOME"] = str(home)
        env["AGENTKEEP_STORE_SYNCHRONOUS"] = args.synchronous
        os.environ.update({"AGENTKEEP_HOME": str(home)})
        agentkeep.init_store(project)
        floor_db = base / "floor.db"
        conn = sqlite3.connect(floor_db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE captures (id INTEGER PRIMARY KEY, payload TEXT)")
        conn.close()
        floor_py, bare_py = base / "floor.py", base / "floor_bare.py"
        floor_py.write_text(FLOOR)
        bare_py.write_text(FLOOR_NO_JSON)

        sides = {
            "floor": [sys.executable, str(floor_py), str(floor_db), args.synchronous],
            "floor without json": [sys.executable, str(bare_py), str(floor_db), args.synchronous],
            "python -c pass": [sys.executable, "-c", "pass"],
            "hook": [console_script(), "hook", "--source", "claude"],
        }
        sizes = {"small": 300, "10 KB": 10_000}
        counter = iter(range(10**9))
        results: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for _ in range(3):  # warm-up: bytecode caches, the hook's settings cache, the page cache
            for size in sizes.values():
                for argv in sides.values():
                    timed(argv, payload(project, next(counter), size, rng), env, work)
        for round_no in range(runs):
            for label, size in sizes.items():
                names = list(sides)
                if round_no % 2:
                    names.reverse()
                for name in names:
                    data = payload(project, next(counter), size, rng)
                    wall, used = timed(sides[name], data, env, work)
                    results.setdefault((label, name), []).append(wall)
                    cpu.setdefault((label, name), []).append(used)

        stored = sqlite3.connect(f"file:{project / '.agentkeep' / 'state.db'}?mode=ro", uri=True)
        rows = stored.execute("SELECT count(*) FROM captures").fetchone()[0]
        stored.close()
        errors = project / ".agentkeep" / "hook-errors.log"
        expected = (3 + runs) * len(sizes)
        if rows != expected or errors.exists():
            logged = errors.read_text() if errors.exists() else ""
            raise SystemExit(f"the hook stored {rows} of {expected} deliveries\n{logged}")

    print(f"agentkeep hook vs a stdlib floor: {runs} runs each, synchronous={args.synchronous}")
    print(f"{'payload':<8} {'side':<20} {'median ms':>10} {'p90 ms':>8} {'CPU ms':>8}")
    ratios = []
    for label in sizes:
        for name in sides:
            values = results[(label, name)]
            print(
                f"{label:<8} {name:<20} {statistics.median(values):>10.1f} {p90(values):>8.1f}"
                f" {statistics.median(cpu[(label, name)]):>8.1f}"
            )
        hook, floor = results[(label, "hook")], results[(label, "floor")]
        ratio = statistics.median(hook) / statistics.median(floor)
        ratios.append(ratio)
        cpu_ratio = statistics.median(cpu[(label, "hook")]) / statistics.median(
            cpu[(label, "floor")]
        )
        print(
            f"{label:<8} hook/floor: {ratio:.2f}x median, {p90(hook) / p90(floor):.2f}x p90,"
            f" {cpu_ratio:.2f}x CPU"
        )
    print(f"hook: {max(ratios):.2f}x the floor (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
