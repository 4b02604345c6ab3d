"""`agentkeep hook` end to end vs the floor of a stdlib script, side by side in one run.

    python bench/bench_hook.py [--runs 30] [--synchronous FULL|NORMAL] [--quick]

Each measurement is one process, from spawn to exit, with the row durable on exit:

- **hook**: the installed console script, ``agentkeep hook --source claude < payload``, into
  a fresh project store (found from the payload's ``cwd``), with the store's settings:
  WAL, ``synchronous`` as given (default FULL), redaction, dedupe, session counters.
- **floor**: a stdlib Python script run by the same interpreter that reads stdin, parses
  the JSON, connects to a WAL SQLite file with the same ``synchronous``, inserts the
  payload in one row and commits (integrations.md §2.5: "stdlib only (json + sqlite3)").
  The floor without ``json`` and ``python -c pass`` are printed for reference.

Two Claude ``PostToolUse`` payloads: a small Bash call (~0.5 KB) and a 10 KB tool output.
Every run delivers a new ``tool_use_id`` (a repeat would be a no-op and flatter the hook).
Runs are interleaved (floor, hook, hook, floor, ...) so drift on a shared machine hits both;
medians and p90 are reported, and the ratio of medians (target <= 1.3). Bytecode caches
are written as in a real install (PYTHONDONTWRITEBYTECODE is removed from the children's
environment), and a few warm-up runs fill them and the hook's settings cache first.
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
import time
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per side and payload")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--quick", action="store_true", help="8 runs: a smoke test")
    args = parser.parse_args()
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
