"""Cost against history: each command on a store of size S and on one 10x larger, side by side.

    python bench/bench_scale.py [--sessions N] [--factor 10] [--runs 3] [--cache DIR]
                                [--only NAME,NAME] [--skip-ops] [--cold-only|--warm-only]
    python bench/bench_scale.py --write-cost ROUNDS

The stores are built THROUGH THE LIBRARY, as history accumulates: per session of history
(a simulated clock advances ~5 sessions a day, so the L store is 10x older, not 10x denser)

* its hook deliveries (``Store.capture_writer``: session row, ~20 tool captures, counters),
  one transaction;
* its Claude Code transcript (generated in Claude's JSONL format by bench_import's writer,
  20-200 KB) through ``Store.import_history("claude")``: messages, FTS, token counts;
* ~250 tool events through ``Store.record_events`` (one transaction);
* 2 tasks (``add_task``; one is claimed), 2 notes, 10 metrics; once 40 tasks are waiting,
  one older task is closed per session, so the backlog grows with history (about half the
  tasks stay open or in progress: ``tasks ready`` lists 10x more at L).

S = 500 sessions (~130k events, ~55 MB of transcripts); L = ``--factor`` x S. Building
uses ``store.synchronous = NORMAL`` (the building is not what is measured). Built stores
are kept under ``--cache`` (default: bench/.scale-cache) keyed by their size and the
builder's version, so reruns skip building.

Then each command runs ``--runs`` times per size, warm (just run before) and cold: before
a cold run the database file and its WAL are evicted from the OS page cache with
``os.posix_fadvise(POSIX_FADV_DONTNEED)`` (the interpreter and agentkeep's modules stay
cached: cold means the store's bytes, not Python's). Library calls (``open()``,
``status()``, ``list_tasks(limit=20)``) are timed in this process on a fresh ``Store``;
CLI commands are timed as subprocesses (wall time, start-up included) with their peak RSS
(``os.wait4``). Printed per command: min-max over the runs at S and at L, and the ratio
of the medians L/S. Goal: <= 1.2x for everything a user runs often.

``--write-cost`` times what migration 7's row-counting triggers add to an event append.
"""

from __future__ import annotations

import argparse
import calendar
import importlib
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep
sys.path.insert(0, str(HERE))

from bench_import import SessionWriter  # noqa: E402
from bench_redact import _prose  # noqa: E402

BUILDER_VERSION = 2  # bump when the built store's shape changes: the cache key
S_SESSIONS = 500
EVENTS_PER_SESSION = 250
CAPTURES_PER_SESSION = 20
SESSIONS_PER_DAY = 5
AGENTKEEP = str(Path(sys.executable).with_name("agentkeep"))
TOOLS = ("Bash", "Read", "Edit", "Grep", "Write", "Glob")


# -- building ------------------------------------------------------------------------------


class SimClock:
    """The store's clock while building: history spread over months, not minutes.

    Every module that took ``utc_now`` from agentkeep.timeutil gets this clock instead (the
    one seam all writers stamp through)."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.patched: list[tuple[Any, Any]] = []

    def now(self) -> str:
        self.t += 0.001  # strictly increasing: `at` follows commit order
        whole = int(self.t)
        return (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            + f".{int((self.t - whole) * 1000):03d}Z"
        )

    def install(self) -> None:
        from agentkeep import timeutil

        original = timeutil.utc_now
        for module in list(sys.modules.values()):
            if module is not None and getattr(module, "utc_now", None) is original:
                self.patched.append((module, original))
                module.utc_now = self.now  # type: ignore[attr-defined]

    def remove(self) -> None:
        for module, original in self.patched:
            module.utc_now = original


def transcript(rng: random.Random, directory: Path, cwd: str, start: float) -> str:
    """One Claude Code session file (20-200 KB) starting at ``start``; its session id."""
    clock = [start - 1_790_000_000]  # SessionWriter counts from 1_790_000_000
    writer = SessionWriter(rng, cwd, clock)
    target = rng.randint(20_000, 200_000)
    with (directory / f"{writer.session}.jsonl").open("w", encoding="utf-8") as out:
        out.write(writer.user("<command-name>/clear</command-name>", isMeta=True))
        while writer.written < target:
            for line in writer.turn():
                out.write(line)
        title = {"type": "ai-title", "aiTitle": _prose(rng)[:60], "sessionId": writer.session}
        out.write(json.dumps(title) + "\n")
    return writer.session


def hook_deliveries(
    store: Any, rng: random.Random, external_id: str, cwd: str, *, end: bool
) -> int:
    """What the hooks would have stored for the session: its row, tool captures and (when
    ``end``) its end."""
    with store.transaction(actor="hook:claude") as tx:
        writer = store.capture_writer(tx)
        session_id: int = writer.session("claude", external_id, cwd=cwd, started_at=tx.now)
        writer.capture(
            source="claude", event="prompt", dedupe_key=f"{external_id}:p", session_id=session_id
        )
        for n in range(CAPTURES_PER_SESSION):
            tool = rng.choice(TOOLS)
            failed = rng.random() < 0.08
            writer.capture(
                source="claude",
                event="tool_fail" if failed else "tool_post",
                dedupe_key=f"{external_id}:{n}",
                session_id=session_id,
                tool_name=tool,
                tool_use_id=f"toolu_{external_id[:8]}{n:04d}",
                cwd=cwd,
                exit_code=1 if failed else 0,
                duration_ms=rng.randint(5, 30_000),
                payload={"tool_name": tool, "tool_input": {"command": _prose(rng)[:120]}},
            )
            writer.bump(session_id, tool_calls=1, failures=int(failed))
        if end:
            writer.capture(
                source="claude",
                event="session_end",
                dedupe_key=f"{external_id}:end",
                session_id=session_id,
            )
            writer.end_session(session_id, reason="exit")
        return session_id


def tool_events(session_id: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "kind": "tool.finished",
            "entity": "session",
            "entity_id": session_id,
            "data": {
                "tool": rng.choice(TOOLS),
                "command": "pytest -q tests/test_parser.py::test_nested_lists",
                "exit_code": int(rng.random() < 0.1),
                "duration_ms": rng.randint(5, 30_000),
                "summary": _prose(rng)[:160],
                "files": ["src/parser/lists.py", "tests/test_parser.py"],
            },
        }
        for _ in range(EVENTS_PER_SESSION)
    ]


def build(proj: Path, sessions: int, seed: int) -> None:
    """A store with ``sessions`` sessions of history (see the module docstring)."""
    if proj.exists():
        shutil.rmtree(proj)
    proj.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    agentkeep.init_store(proj)
    rng = random.Random(seed)
    span = sessions / SESSIONS_PER_DAY * 86_400.0
    clock = SimClock(time.time() - span)
    step = span / sessions
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix="scale-transcripts-"))
    cwd = str(proj)
    with agentkeep.open(proj, config={"store.synchronous": "NORMAL"}) as store:
        for module in ("agentkeep.capture", "agentkeep.importers"):  # SimClock patches them
            importlib.import_module(module)

        clock.install()
        try:
            open_tasks: list[int] = []
            for i in range(sessions):
                clock.t = max(clock.t, time.time() - span + i * step)
                external_id = transcript(rng, staging, cwd, clock.t)
                session_id = hook_deliveries(store, rng, external_id, cwd, end=i < sessions - 2)
                store.record_events(tool_events(session_id, rng), actor="hook:claude")
                for _ in range(2):
                    task = store.add_task(
                        _prose(rng)[:70], body=_prose(rng), priority=rng.randint(0, 4)
                    ).item
                    open_tasks.append(task.id)
                    store.add_note(
                        rng.choice(("handoff", "decision", "next_action", "fact")),
                        _prose(rng) + " " + _prose(rng),
                        task_id=task.id,
                        session_id=session_id,
                    )
                store.claim_task(open_tasks[-2], f"agent-{i % 7}")
                if len(open_tasks) > 40:  # most work finishes; a backlog stays open
                    done = open_tasks.pop(rng.randrange(len(open_tasks) - 20))
                    store.update_task(done, status="done")
                for _ in range(10):
                    store.record_metric(
                        rng.choice(("tests.duration_s", "tokens.turn", "build.s")),
                        rng.random() * 100,
                        session_id=session_id,
                    )
                if i % 50 == 49 or i == sessions - 1:
                    store.import_history("claude", path=staging, project_dirs=(cwd,))
                    shutil.rmtree(staging)
                    staging.mkdir()
                    rate = (i + 1) / (time.monotonic() - started)
                    print(
                        f"  built {i + 1:,}/{sessions:,} sessions ({rate:.1f}/s)",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            clock.remove()
            shutil.rmtree(staging, ignore_errors=True)
    with agentkeep.open(proj) as store:  # a checkpointed WAL, as a store normally is
        store.status()


def cached_store(cache: Path, sessions: int, seed: int) -> Path:
    proj = cache / f"v{BUILDER_VERSION}-{sessions}-seed{seed}"
    done = proj / ".built"
    if not done.exists():
        print(f"building {proj} ({sessions:,} sessions) …", file=sys.stderr, flush=True)
        started = time.monotonic()
        build(proj, sessions, seed)
        done.write_text(f"{time.monotonic() - started:.0f} s\n")
    return proj


# -- measuring -----------------------------------------------------------------------------


def evict(proj: Path) -> None:
    """Drop the database's pages from the OS page cache (cold runs)."""
    for name in ("state.db", "state.db-wal"):
        path = proj / ".agentkeep" / name
        if not path.exists():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages are not evicted
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)


def run_cli(proj: Path, args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``agentkeep --store PROJ ARGS``."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [AGENTKEEP, "--store", str(proj), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # doctor/check exit 1 on findings
        raise SystemExit(f"`agentkeep {' '.join(args)}` failed: {err.decode()[-400:]}")
    return seconds, usage.ru_maxrss


def timed_library(proj: Path, call: Callable[[Any], Any]) -> float:
    with agentkeep.open(proj) as store:
        start = time.perf_counter()
        call(store)
        return time.perf_counter() - start


def timed_open(proj: Path) -> float:
    start = time.perf_counter()
    store = agentkeep.open(proj)
    seconds = time.perf_counter() - start
    store.close()
    return seconds


@dataclass
class Command:
    name: str
    measure: Callable[[Path], tuple[float, int | None]]
    often: bool = True  # run by users often: the <= 1.2x goal applies


def library(call: Callable[[Any], Any]) -> Callable[[Path], tuple[float, int | None]]:
    return lambda proj: (timed_library(proj, call), None)


def cli(*args: str) -> Callable[[Path], tuple[float, int | None]]:
    return lambda proj: run_cli(proj, list(args))


@dataclass
class Moments:
    """Times relative to the store's own history (a cached store ages)."""

    tenth_newest_event: str
    week_before_newest_session: str
    recent_events: int  # how many events `events list --since tenth_newest_event` lists


def moments(proj: Path) -> Moments:
    """Ten fresh events (the store's last transactions may each hold hundreds), and the
    times the timed commands ask about."""
    with agentkeep.open(proj) as store:
        first = store.record_event("bench.marker", data={"n": 0}).item
        for n in range(1, 10):
            store.record_event("bench.marker", data={"n": n})
        since = first.at
        taken = len(store.events(since=since))
        session = store.list_sessions(limit=1)[0]
    started = time.strptime(session.started_at[:19], "%Y-%m-%dT%H:%M:%S")
    week = time.gmtime(calendar.timegm(started) - 7 * 86_400)
    return Moments(str(since), time.strftime("%Y-%m-%dT%H:%M:%SZ", week), taken)


def commands(when: dict[Path, Moments], work: Path) -> list[Command]:
    def events_since(proj: Path) -> tuple[float, int | None]:
        return run_cli(proj, ["events", "list", "--since", when[proj].tenth_newest_event, "--json"])

    def stats_week(proj: Path) -> tuple[float, int | None]:
        return run_cli(proj, ["stats", "--since", when[proj].week_before_newest_session, "--json"])

    def backup(proj: Path) -> tuple[float, int | None]:
        dest = work / "backup"
        shutil.rmtree(dest, ignore_errors=True)
        try:
            return run_cli(proj, ["backup", str(dest), "--json"])
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def export(proj: Path) -> tuple[float, int | None]:
        out = work / "export.tar"
        try:
            return run_cli(proj, ["export", "--all", "-o", str(out), "--json"])
        finally:
            out.unlink(missing_ok=True)

    return [
        Command("events list --since (10 recent)", events_since),
        Command("status()", library(lambda s: s.status())),
        Command("list_tasks(limit=20)", library(lambda s: s.list_tasks(limit=20))),
        Command("open()", lambda proj: (timed_open(proj), None)),
        # The same reads in-process: what the CLI rows below cost without start-up.
        Command(
            "events(since=10 recent)",
            lambda proj: (
                timed_library(
                    proj,
                    lambda s: s.events(
                        since=when[proj].tenth_newest_event, newest_first=True, limit=51
                    ),
                ),
                None,
            ),
        ),
        Command("ready_tasks(limit=20)", library(lambda s: s.ready_tasks(limit=20))),
        Command("events(newest 50)", library(lambda s: s.events(newest_first=True, limit=51))),
        Command("list_sessions(limit=20)", library(lambda s: s.list_sessions(limit=20))),
        Command("search()", library(lambda s: s.search("retry timeout"))),
        Command("prime()", library(lambda s: s.prime())),
        Command(
            "stats(since=7 days)",
            lambda proj: (
                timed_library(proj, lambda s: s.stats(since=when[proj].week_before_newest_session)),
                None,
            ),
        ),
        Command("tasks ready (all of them)", cli("tasks", "ready", "--json")),
        Command("tasks ready -n 20", cli("tasks", "ready", "-n", "20", "--json")),
        Command("events (newest 50)", cli("events", "list", "--json")),
        Command("sessions", cli("sessions", "--json")),
        Command("search", cli("search", "retry timeout", "--json")),
        Command("prime", cli("prime", "--json")),
        Command("stats --since (last 7 days)", stats_week),
        Command("stats (all history)", cli("stats", "--json"), often=False),
        Command("status (CLI)", cli("status", "--json")),
        Command("usage", cli("usage", "--json"), often=False),
        Command("doctor", cli("doctor", "--json"), often=False),
        Command("backup", backup, often=False),
        Command("db check", cli("db", "check", "--json"), often=False),
        Command("export --all", export, often=False),
    ]


def write_cost(rounds: int) -> None:
    """What migration 7's counting triggers cost an event append: raw sqlite3 on the full
    schema with and without the events triggers, alternated; CPU time (process_time), so a
    loaded machine's waiting is left out; synchronous=NORMAL, so no fsync hides it."""
    import sqlite3

    from agentkeep.backends.sqlite.migrate import split_statements
    from agentkeep.migrations import MIGRATIONS

    scratch = tempfile.TemporaryDirectory(prefix="bench-scale-")

    def database(triggers: bool) -> sqlite3.Connection:
        path = Path(scratch.name) / f"{'with' if triggers else 'without'}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for migration in MIGRATIONS:
            for statement in split_statements(migration.sql_for("sqlite")):
                if triggers or "ON events BEGIN" not in statement:
                    conn.execute(statement)
        return conn

    insert = (
        "INSERT INTO events (at, actor, entity, entity_id, kind, data) VALUES (?, ?, ?, ?, ?, ?)"
    )
    rng = random.Random(1)
    rows = [
        ("2026-12-03T00:00:00.000Z", "bench", "session", 1, "tool.finished", json.dumps(e["data"]))
        for e in tool_events(1, rng)
    ] * 4
    results: dict[str, dict[str, list[float]]] = {"without": {}, "with": {}}
    conns = {"without": database(False), "with": database(True)}
    for _ in range(rounds):
        for label, conn in conns.items():
            start = time.process_time()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows)
            conn.execute("COMMIT")
            batched = (time.process_time() - start) / len(rows)
            start = time.process_time()
            for row in rows[:200]:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(insert, row)
                conn.execute("COMMIT")
            single = (time.process_time() - start) / 200
            results[label].setdefault("batched", []).append(batched)
            results[label].setdefault("single", []).append(single)
    for conn in conns.values():
        conn.close()
    scratch.cleanup()
    print("event append, raw sqlite3, CPU µs per event (median of rounds; min):")
    for kind in ("batched", "single"):
        without, with_ = results["without"][kind], results["with"][kind]
        added = statistics.median(with_) - statistics.median(without)
        print(
            f"  {kind:8} without triggers {statistics.median(without) * 1e6:6.2f} "
            f"({min(without) * 1e6:.2f}), with {statistics.median(with_) * 1e6:6.2f} "
            f"({min(with_) * 1e6:.2f}): +{added * 1e6:.2f}"
        )


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{fmt(low)}-{fmt(high)}" if len(values) > 1 else fmt(low)


def fmt(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=S_SESSIONS, help="sessions in S")
    parser.add_argument("--factor", type=int, default=10, help="L = factor x S")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=HERE / ".scale-cache")
    parser.add_argument("--only", help="comma-separated command names (prefixes)")
    parser.add_argument("--skip-ops", action="store_true", help="leave out usage … export")
    parser.add_argument("--cold-only", action="store_true")
    parser.add_argument("--warm-only", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument(
        "--write-cost", type=int, metavar="ROUNDS", help="only time the counting triggers"
    )
    args = parser.parse_args()
    if args.write_cost:
        write_cost(args.write_cost)
        return

    args.cache.mkdir(parents=True, exist_ok=True)
    sizes = {
        "S": cached_store(args.cache, args.sessions, args.seed),
        "L": cached_store(args.cache, args.sessions * args.factor, args.seed),
    }
    for label, proj in sizes.items():
        with agentkeep.open(proj) as store:  # migrated now if this code is newer, not timed
            status = store.status()
        size = (proj / ".agentkeep" / "state.db").stat().st_size
        print(f"{label}: {proj.name}  {size / 1e6:,.0f} MB  {status_line(status)}")
    if args.build_only:
        return
    modes = ["warm", "cold"]
    if args.cold_only:
        modes = ["cold"]
    if args.warm_only:
        modes = ["warm"]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        when = {proj: moments(proj) for proj in sizes.values()}
        recent = ", ".join(f"{when[p].recent_events} at {label}" for label, p in sizes.items())
        print(f"events list --since lists {recent}")
        chosen = commands(when, work)
        if args.skip_ops:
            chosen = [c for c in chosen if c.often]
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            chosen = [c for c in chosen if any(c.name.startswith(w) for w in wanted)]
        print(
            "\ncold: state.db and state.db-wal evicted from the page cache"
            " (posix_fadvise DONTNEED) before each run; Python and agentkeep stay cached."
        )
        print(f"{args.runs} runs per cell; ratio = median L / median S\n")
        header = f"{'command':34} {'mode':5} {'S':>17} {'L':>17} {'L/S':>6}  peak RSS S/L"
        print(header)
        print("-" * len(header))
        for command in chosen:
            for mode in modes:
                results = {label: Result() for label in sizes}
                for _ in range(args.runs):
                    for label, proj in sizes.items():  # interleaved: drift hits both
                        if mode == "cold":
                            evict(proj)
                        else:
                            command.measure(proj)  # warm it
                        seconds, rss = command.measure(proj)
                        results[label].seconds.append(seconds)
                        if rss is not None:
                            results[label].rss_kib.append(rss)
                s, big = results["S"], results["L"]
                ratio = statistics.median(big.seconds) / statistics.median(s.seconds)
                rss = ""
                if s.rss_kib:
                    rss = f"{max(s.rss_kib) / 1024:.0f}/{max(big.rss_kib) / 1024:.0f} MiB"
                flag = " *" if command.often and ratio > 1.2 else ""
                print(
                    f"{command.name:34} {mode:5} {spread(s.seconds):>17} "
                    f"{spread(big.seconds):>17} {ratio:5.2f}x{flag}  {rss}",
                    flush=True,
                )
        print("\n* above the 1.2x goal for a command users run often")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def status_line(status: Any) -> str:
    data = status.to_dict() if hasattr(status, "to_dict") else dict(vars(status))
    counts = data.get("counts", data)
    keep = ("events", "sessions", "messages", "tasks", "notes", "captures", "metrics")
    return ", ".join(f"{k} {counts[k]:,}" for k in keep if isinstance(counts.get(k), int))


if __name__ == "__main__":
    main()
