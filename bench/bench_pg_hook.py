"""`agentkeep hook` on a PostgreSQL project: the hook's own latency next to a SQLite
project's, and how long a delivery takes to become visible to a teammate.

    python bench/bench_pg_hook.py [--dsn URL] [--runs 30] [--deliveries 60] [--rounds 3]

``--dsn`` (or ``AGENTKEEP_TEST_PG_DSN``): a PostgreSQL to use, e.g.
``postgresql:///postgres?host=/tmp/pg&port=54329&user=postgres``; each run makes a schema of
its own there and drops it afterwards.

1. **Hook latency**: the installed console script, ``agentkeep hook --source claude <
   payload``, one process per delivery (a new ``tool_use_id`` each, so none is a repeat),
   interleaved between a SQLite project (stores the row: WAL, synchronous=FULL) and a
   PostgreSQL project (writes the redacted delivery to the local spool, two fsyncs, and
   exits: it never connects). Wall time from spawn to exit; p50/p90/p99.
2. **Delivery → visible to a teammate**: machine A (a project directory) runs
   ``agentkeep sync --watch``; machine B (another project directory, same URL) polls its
   own ``Store.events()`` every 2 ms for the ``session.started`` event of the delivery's new
   session. For each delivery: the time from the hook's exit to B seeing it, and from the
   hook's spawn (what an agent's tool call sees end to end is the hook's part only: the
   rest happens after it returned). ``sync --watch`` looks at the spool every 100 ms, so
   about half of that is expected on average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def console_script() -> str:
    script = Path(sys.executable).parent / "agentkeep"
    if not script.exists():
        raise SystemExit(f"no console script at {script}; install agentkeep into this venv")
    return str(script)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTKEEP_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("CLAUDE_PROJECT_DIR", None)
    return env


def with_params(dsn: str, **params: str) -> str:
    sep = "&" if "?" in dsn else "?"
    return dsn + sep + "&".join(f"{k}={v}" for k, v in params.items())


def project(where: Path, url: str | None) -> Path:
    where.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(where)], check=True)
    agentkeep.init_store(where, url=url)
    return where


def payload(cwd: Path, n: int, *, new_session: bool) -> bytes:
    session = f"bench-{n:06d}" if new_session else "bench-session"
    doc = {
        "session_id": session,
        "cwd": str(cwd),
        "hook_event_name": "UserPromptSubmit" if new_session else "PostToolUse",
        "prompt": "run the upload tests",
        "tool_name": "Bash",
        "tool_input": {"command": "pytest -q tests/test_upload.py"},
        "tool_response": {"stdout": "14 passed in 0.81s", "stderr": ""},
        "tool_use_id": f"toolu_bench_{n:06d}",
    }
    return json.dumps(doc).encode()


def run_hook(
    script: str, root: Path, data: bytes, env: dict[str, str]
) -> tuple[float, float, float]:
    """(start, end) perf_counter of one hook process, and its CPU ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [script, "hook", "--source", "claude"], input=data, env=env, cwd=root, capture_output=True
    )
    end = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode or done.stdout or done.stderr:
        raise SystemExit(f"the hook failed: {done.returncode} {done.stderr[-500:]!r}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return start, end, cpu


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float]) -> str:
    return (
        f"  {name:<34} n={len(values):<4} p50 {statistics.median(values):7.1f}"
        f"  p90 {pct(values, 0.9):7.1f}  p99 {pct(values, 0.99):7.1f}  max {max(values):7.1f} ms"
    )


def hook_latency(script: str, tmp: Path, url: str, runs: int, env: dict[str, str]) -> None:
    lite = project(tmp / "lite", None)
    pg = project(tmp / "pg", url)
    times: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    cpu: dict[str, list[float]] = {"sqlite": [], "postgres": []}
    for n in range(-3, runs):  # 3 warm-up runs each: bytecode and settings caches
        for name, root in (("sqlite", lite), ("postgres", pg))[:: 1 if n % 2 else -1]:
            data = payload(root, n + 1000, new_session=False)
            start, end, used = run_hook(script, root, data, env)
            if n >= 0:
                times[name].append((end - start) * 1000)
                cpu[name].append(used)
    print("hook latency (spawn to exit), interleaved:")
    print(line("SQLite project (stores the row)", times["sqlite"]))
    print(line("PostgreSQL project (spools)", times["postgres"]))
    print(line("CPU: SQLite project", cpu["sqlite"]))
    print(line("CPU: PostgreSQL project", cpu["postgres"]))
    with agentkeep.open(pg) as store:  # what the PostgreSQL project's hook left: drain it
        result = store.sync_spool()
    print(f"  then one sync stored {result.stored} spooled deliveries ({result.waiting} left)")


def visibility(
    script: str, tmp: Path, url: str, deliveries: int, env: dict[str, str], round_: int
) -> tuple[list[float], list[float]]:
    a = project(tmp / f"a{round_}", url)
    b = project(tmp / f"b{round_}", url)
    watcher = subprocess.Popen(
        [script, "sync", "--watch", "--json"],
        cwd=a,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    after_exit: list[float] = []
    after_spawn: list[float] = []
    try:
        with agentkeep.open(b) as teammate:
            seen = teammate.last_seq()
            for n in range(deliveries):
                data = payload(a, round_ * 100_000 + n, new_session=True)
                start, end, _ = run_hook(script, a, data, env)
                deadline = time.monotonic() + 30
                while True:
                    events = teammate.events(after=seen, kind="session.started")
                    if events:
                        now = time.perf_counter()
                        seen = events[-1].seq
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit("a delivery did not arrive within 30 s")
                    time.sleep(0.002)
                after_exit.append((now - end) * 1000)
                after_spawn.append((now - start) * 1000)
    finally:
        watcher.terminate()
        _, err = watcher.communicate(timeout=30)
        if watcher.returncode != 0:
            print(f"sync --watch exited {watcher.returncode}: {err[-500:]!r}", file=sys.stderr)
    return after_exit, after_spawn


def drop_schema(dsn: str, schema: str) -> None:
    from agentkeep.backends.postgres.connection import connect

    conn = connect(dsn)
    try:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("AGENTKEEP_TEST_PG_DSN", ""))
    parser.add_argument("--runs", type=int, default=30, help="hook runs per project")
    parser.add_argument("--deliveries", type=int, default=60, help="per visibility round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.dsn:
        raise SystemExit("give --dsn (or AGENTKEEP_TEST_PG_DSN): a PostgreSQL to use")
    script = console_script()
    env = child_env()
    schemas = [f"bench_{os.urandom(4).hex()}" for _ in range(args.rounds + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-pg-hook-") as tmp:
        os.environ["AGENTKEEP_HOME"] = env["AGENTKEEP_HOME"] = str(Path(tmp) / "home")
        try:
            hook_latency(
                script, Path(tmp), with_params(args.dsn, schema=schemas[0]), args.runs, env
            )
            print(
                "\ndelivery -> visible to a teammate (machine B's Store.events(), "
                "machine A running `sync --watch`):"
            )
            exits: list[float] = []
            spawns: list[float] = []
            for r in range(args.rounds):
                url = with_params(args.dsn, schema=schemas[r + 1])
                after_exit, after_spawn = visibility(
                    script, Path(tmp), url, args.deliveries, env, r
                )
                print(line(f"round {r + 1}: hook exit -> visible", after_exit))
                exits += after_exit
                spawns += after_spawn
            print(line("all rounds: hook exit -> visible", exits))
            print(line("all rounds: hook spawn -> visible", spawns))
        finally:
            for schema in schemas:
                drop_schema(args.dsn, schema)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
