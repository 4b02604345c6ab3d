"""Store writes on PostgreSQL, side by side with raw psycopg, in one run (issue 12).

    python bench/bench_pg_store.py [--events 500] [--batches 20] [--batch 100] [--rounds 3]
                                   [--writers 8] [--seconds 4] [--dsn URL] [--profile]
                                   [--sides raw,raw+lock,agentkeep,agentkeep-6rt]
                                   [--writers-only]

Without ``--dsn`` it starts its own server with ``scripts/postgres`` in a private
``AGENTKEEP_PG_DIR`` and ``AGENTKEEP_PG_FSYNC=on`` (scripts/postgres turns fsync off for the
tests), and stops it at the end; the server's ``fsync``, ``synchronous_commit`` and
``wal_sync_method`` are printed either way. Every side writes the transcript-like payloads of
``bench_store.py`` (200–2,000 bytes, half with "token", "key", "password" or "secret" in
ordinary prose and code) to a fresh store's ``events`` table: agentkeep to one schema, raw
psycopg to another made by the same migrations (same table, indexes, checks and triggers).

1. Durable single event: ``Store.record_event`` on a PostgreSQL store against raw psycopg
   doing the same work — ``json.dumps``, one INSERT of the same row, ``commit()`` — with
   psycopg's defaults (autocommit off, so psycopg sends BEGIN first; server-side binding),
   ``synchronous_commit`` on, same server; and the SQLite store (WAL, synchronous=FULL) for
   reference.
2. Batched: ``Store.record_events`` of ``--batch`` events against raw ``executemany`` + one
   COMMIT.
3. ``--writers`` processes appending single events for ``--seconds`` seconds, all starting
   at once, on one store: agentkeep (writers serialised per store by its advisory lock, what
   keeps the events' seq committing in order: backends/postgres/connection.py), raw psycopg
   with no lock (INSERT + COMMIT, each writer its own connection: commits overlap and share
   WAL flushes), and raw psycopg taking ``pg_advisory_xact_lock`` in each transaction (the
   same serialisation, without agentkeep): the lock's price, apart from agentkeep's own.

Attribution (never a supported mode): ``agentkeep-6rt`` and "6 round trips" are the store
with ``Connection.begin_writing`` removed, i.e. the write path before it (session lock,
BEGIN, clock, …, COMMIT, unlock: six statements against three). Each writer makes one write
before the start line (a process's first write reads the catalog and fills caches; with 8
processes that one-off would be most of the p99).

Rounds alternate the sides so drift on a shared machine hits all of them; ratios are taken
within a round and printed as median (min–max) over rounds. ``--profile`` runs cProfile on
the agentkeep single-event path afterwards and prints where the time goes, with the number
of statements (round trips) per ``record_event``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import platform
import pstats
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agentkeep
import bench_store  # the payloads
import bench_writers  # the writers' start line, Side and spread

HERE = Path(__file__).resolve()

RAW_INSERT = (
    "INSERT INTO events (at, actor, entity, entity_id, kind, data) VALUES (%s, %s, %s, %s, %s, %s)"
)
LOCK_SEED = 0x616B6B70  # the seed agentkeep's writer lock uses (connection.py)


def with_schema(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def raw_connect(dsn: str, schema: str) -> psycopg.Connection[Any]:
    """The baseline: a plain psycopg connection (its defaults) on the raw side's schema."""
    conn = psycopg.connect(dsn, autocommit=False)
    conn.execute("SELECT set_config('search_path', %s, false)", (f'"{schema}"',))
    conn.commit()
    return conn


def raw_single(conn: psycopg.Connection[Any], n: int, payloads: list[dict[str, object]]) -> float:
    start = time.perf_counter()
    for i in range(n):
        data = json.dumps({**payloads[i % len(payloads)], "n": i}, ensure_ascii=False)
        conn.execute(
            RAW_INSERT, (bench_store.now(), "bench", "custom", None, "tool.finished", data)
        )
        conn.commit()
    return n / (time.perf_counter() - start)


def raw_batched(
    conn: psycopg.Connection[Any], batches: int, payloads: list[dict[str, object]], size: int
) -> float:
    start = time.perf_counter()
    for b in range(batches):
        at = bench_store.now()
        rows = [
            (
                at,
                "bench",
                "custom",
                None,
                "tool.finished",
                json.dumps(
                    {**payloads[(b * size + i) % len(payloads)], "n": b * size + i},
                    ensure_ascii=False,
                ),
            )
            for i in range(size)
        ]
        with conn.cursor() as cur:
            cur.executemany(RAW_INSERT, rows)
        conn.commit()
    return batches * size / (time.perf_counter() - start)


# -- concurrent writers ------------------------------------------------------------------


def raw_writer(
    target: str, index: int, sync: tuple[Any, ...], seconds: float, locked: bool
) -> None:
    dsn, schema = target.split("\n")
    payloads = bench_store.transcript_payloads(500)
    conn = raw_connect(dsn, schema)
    conn.execute(RAW_INSERT, (bench_store.now(), f"w{index}", "custom", None, "bench.warmup", "{}"))
    conn.commit()
    latencies: list[float] = []
    errors = 0
    i = index * 1_000_000
    ready, go, shared_start, out = sync
    start = bench_writers._wait_for_start(ready, go, shared_start)
    cpu = time.process_time()
    end = start + seconds
    clock = time.perf_counter
    while time.time() < end:
        t0 = clock()
        data = json.dumps({**payloads[i % len(payloads)], "n": i}, ensure_ascii=False)
        try:
            if locked:
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (schema, LOCK_SEED)
                )
            conn.execute(
                RAW_INSERT, (bench_store.now(), f"w{index}", "custom", None, "tool.finished", data)
            )
            conn.commit()
        except psycopg.Error:
            errors += 1
            conn.rollback()
            continue
        latencies.append(clock() - t0)
        i += 1
    cpu = time.process_time() - cpu
    conn.close()
    out.put((index, latencies, errors, cpu))


def agentkeep_writer(
    root: str, index: int, sync: tuple[Any, ...], seconds: float, one_trip: bool
) -> None:
    from agentkeep import redact
    from agentkeep.errors import AgentkeepError

    if not one_trip:
        six_round_trips(True)
    payloads = bench_store.transcript_payloads(500)
    store = agentkeep.open(Path(root), actor=f"w{index}")
    for payload in payloads:  # a warm redaction engine, as in bench_writers.py
        redact.redact_text(json.dumps(payload, ensure_ascii=False))
    # one write before the start: a process's first write reads the catalog and fills
    # caches (a one-off that, with 8 processes, would be most of the p99)
    store.record_event("bench.warmup", data={"n": -1})
    latencies: list[float] = []
    errors = 0
    i = index * 1_000_000
    ready, go, shared_start, out = sync
    start = bench_writers._wait_for_start(ready, go, shared_start)
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


def run_writers(side: str, target: str, writers: int, seconds: float) -> bench_writers.Side:
    ctx = multiprocessing.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start = ctx.Value("d", 0.0)
    sync = (ready, go, start, out)
    procs = []
    for index in range(writers):
        if side.startswith("agentkeep"):
            args = (target, index, sync, seconds, side == "agentkeep")
            proc = ctx.Process(target=agentkeep_writer, args=args)
        else:
            args = (target, index, sync, seconds, side == "raw+lock")
            proc = ctx.Process(target=raw_writer, args=args)
        proc.start()
        procs.append(proc)
    waiting = len(procs)
    while waiting:
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
    return bench_writers.Side(results, seconds)


def six_round_trips(on: bool) -> None:
    """Attribution only: the write path before ``begin_writing`` (connection.py), which
    sent the session lock, BEGIN and the clock as three statements and the unlock after
    COMMIT — the store's connection without its ``begin_writing``."""
    from agentkeep.backends.postgres import connection

    if on:
        connection.Connection.begin_writing = None  # type: ignore[assignment,method-assign]
    else:
        connection.Connection.begin_writing = _BEGIN_WRITING  # type: ignore[method-assign]


def _original_begin_writing() -> Any:
    from agentkeep.backends.postgres import connection

    return connection.Connection.begin_writing


_BEGIN_WRITING = _original_begin_writing()


def single_six(store: agentkeep.Store, n: int, payloads: list[dict[str, object]]) -> float:
    six_round_trips(True)
    try:
        return bench_store_single(store, n, payloads)
    finally:
        six_round_trips(False)


# -- the server --------------------------------------------------------------------------


def start_server(work: Path) -> tuple[str, dict[str, str]]:
    env = {**os.environ, "AGENTKEEP_PG_DIR": str(work / "pg"), "AGENTKEEP_PG_FSYNC": "on"}
    if os.geteuid() == 0:
        os.chmod(work, 0o755)  # the server runs as `postgres` and must reach its directory
    out = subprocess.run(
        [str(HERE.parent.parent / "scripts" / "postgres"), "start"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return lines["AGENTKEEP_TEST_PG_DSN"], env


def stop_server(env: dict[str, str]) -> None:
    subprocess.run(
        [str(HERE.parent.parent / "scripts" / "postgres"), "stop"],
        env=env,
        check=False,
        capture_output=True,
    )


def settings(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        values = [
            f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
        ]
    return ", ".join(values)


# -- the profile -------------------------------------------------------------------------


def profile(store: agentkeep.Store, n: int, payloads: list[dict[str, object]]) -> None:
    """cProfile of ``record_event`` and the statements it sends per event."""
    conn = store._conn
    raw = conn.raw
    sent: list[str] = []
    original = raw.execute

    def counting(query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query).split()[0:3].__str__())
        return original(query, *args, **kwargs)

    raw.execute = counting  # type: ignore[method-assign]
    try:
        store.record_event("tool.finished", data=payloads[0])
    finally:
        del raw.execute
    print(f"statements per record_event ({len(sent)} round trips):")
    for text in sent:
        print(f"    {text}")
    prof = cProfile.Profile(time.process_time)  # CPU: the waits are the round trips above
    prof.enable()
    bench_store_single(store, n, payloads)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(12)


def bench_store_single(store: agentkeep.Store, n: int, payloads: list[dict[str, object]]) -> float:
    return bench_store.store_single(store, n, payloads)


def store_batched(
    store: agentkeep.Store, batches: int, payloads: list[dict[str, object]], size: int
) -> float:
    return bench_store.store_batched(store, batches, payloads, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500, help="single events per round")
    parser.add_argument("--batches", type=int, default=20, help="batches per round")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="per writers side and round")
    parser.add_argument("--dsn", default="", help="an existing server (default: start one)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--sides",
        default="raw,raw+lock,agentkeep,agentkeep-6rt",
        help="the writers' sides (agentkeep-6rt: the write path before begin_writing)",
    )
    parser.add_argument(
        "--writers-only", action="store_true", help="skip the single and batched events"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agentkeep-bench-pg-"))
    os.environ["AGENTKEEP_HOME"] = str(work / "home")
    env: dict[str, str] | None = None
    dsn = args.dsn
    if not dsn:
        dsn, env = start_server(work)
    ours, theirs = f"bench_ak_{os.getpid()}", f"bench_raw_{os.getpid()}"
    roots = {"postgres": work / "pg-store", "raw": work / "raw-store", "sqlite": work / "sq"}
    for name, root in roots.items():
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        url = {"postgres": with_schema(dsn, ours), "raw": with_schema(dsn, theirs)}.get(name)
        agentkeep.init_store(root, url=url)
    try:
        run(args, dsn, roots, theirs)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in (ours, theirs):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if env is not None:
            stop_server(env)
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, dsn: str, roots: dict[str, Path], theirs: str) -> None:
    pg = agentkeep.open(roots["postgres"], actor="bench")
    sq = agentkeep.open(roots["sqlite"], actor="bench")
    raw = raw_connect(dsn, theirs)
    payloads = bench_store.transcript_payloads(500)
    from agentkeep import redact

    for payload in payloads:  # warm the redaction engine, as bench_writers does
        redact.redact_text(json.dumps(payload, ensure_ascii=False))
    print(
        f"bench_pg_store: python {platform.python_version()}, psycopg {psycopg.__version__}, "
        f"{os.cpu_count()} cpus; server: {settings(dsn)}; {args.rounds} rounds; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    keys = ("raw1", "ak1", "sq1", "rawN", "akN", "sqN", "old1")
    rate: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}

    def timed(key: str, work: Callable[[], float], events: int) -> None:
        started = time.process_time()
        rate[key].append(work())
        cpu[key].append((time.process_time() - started) / events * 1e6)

    n, size = args.events, args.batch
    many = args.batches * size
    sides: dict[str, list[bench_writers.Side]] = {name: [] for name in args.sides.split(",")}
    targets = {
        "raw": f"{dsn}\n{theirs}",
        "raw+lock": f"{dsn}\n{theirs}",
        "agentkeep": str(roots["postgres"]),
        "agentkeep-6rt": str(roots["postgres"]),
    }
    for number in range(args.rounds):
        order = [0, 1, 2] if number % 2 == 0 else [2, 1, 0]
        single = [
            ("raw1", lambda: raw_single(raw, n, payloads)),
            ("ak1", lambda: bench_store_single(pg, n, payloads)),
            ("sq1", lambda: bench_store_single(sq, n, payloads)),
            ("old1", lambda: single_six(pg, n, payloads)),
        ]
        batched = [
            ("rawN", lambda: raw_batched(raw, args.batches, payloads, size)),
            ("akN", lambda: store_batched(pg, args.batches, payloads, size)),
            ("sqN", lambda: store_batched(sq, args.batches, payloads, size)),
        ]
        if not args.writers_only:
            for i in [0, 3, 1, 2] if number % 2 == 0 else [2, 1, 3, 0]:
                timed(*single[i], n)
            for i in order:
                timed(*batched[i], many)
            print(
                f"round {number + 1}: single "
                f"{' '.join(f'{k} {rate[k][-1]:,.0f}/s' for k in keys[:3])}"
                f" (6 round trips {rate['old1'][-1]:,.0f}/s)"
                f"; batched {' '.join(f'{k} {rate[k][-1]:,.0f}/s' for k in keys[3:6])}; "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        if args.writers:
            names = list(sides) if number % 2 == 0 else list(reversed(sides))
            for name in names:
                side = run_writers(name, targets[name], args.writers, args.seconds)
                sides[name].append(side)
                print("  " + side.line(name), flush=True)

    def ratio(ours: str, base: str, table: dict[str, list[float]]) -> str:
        per = [o / b for o, b in zip(table[ours], table[base], strict=True)]
        return f"{statistics.median(per):.2f}× ({min(per):.2f}-{max(per):.2f})"

    def rng(key: str, table: dict[str, list[float]], fmt: str = "{:,.0f}") -> str:
        return f"{fmt.format(min(table[key]))}-{fmt.format(max(table[key]))}"

    print(f"\nload average after {os.getloadavg()[0]:.2f}")
    if args.writers:
        agg = {name: [s.rate for s in runs] for name, runs in sides.items()}
        p99 = {name: [s.p99 for s in runs] for name, runs in sides.items()}
        for name in sides:
            print(
                f"{args.writers} writers {name}: {rng(name, agg)} events/s, "
                f"p99 {rng(name, p99, '{:.1f}')} ms"
            )
        if "agentkeep" in sides and "agentkeep-6rt" in sides:
            print(
                "  agentkeep 3 round trips / 6 round trips (before begin_writing): "
                f"{ratio('agentkeep', 'agentkeep-6rt', agg)}"
            )
    if args.writers_only:
        return
    print("| measurement | raw psycopg | agentkeep PostgreSQL | ratio | SQLite store |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| durable single event, events/s | {rng('raw1', rate)} | {rng('ak1', rate)} | "
        f"{ratio('ak1', 'raw1', rate)} | {rng('sq1', rate)} |"
    )
    print(
        f"| single event, 6 round trips (before begin_writing), events/s | {rng('raw1', rate)} "
        f"| {rng('old1', rate)} | {ratio('old1', 'raw1', rate)}; 3 trips/6 trips "
        f"{ratio('ak1', 'old1', rate)} | |"
    )
    print(
        f"| CPU per single event, us | {rng('raw1', cpu)} | {rng('ak1', cpu)} "
        f"(6 trips {rng('old1', cpu)}) | "
        f"{ratio('ak1', 'raw1', cpu)} | {rng('sq1', cpu)} |"
    )
    print(
        f"| batched {size}/txn, events/s | {rng('rawN', rate)} | {rng('akN', rate)} | "
        f"{ratio('akN', 'rawN', rate)} | {rng('sqN', rate)} |"
    )
    print(
        f"| CPU per batched event, us | {rng('rawN', cpu)} | {rng('akN', cpu)} | "
        f"{ratio('akN', 'rawN', cpu)} | {rng('sqN', cpu)} |"
    )
    if args.writers and len(sides) == 4:
        print(
            f"| {args.writers} writers, events/s | {rng('raw', agg)} (no lock); "
            f"{rng('raw+lock', agg)} (xact lock) | {rng('agentkeep', agg)} | "
            f"{ratio('agentkeep', 'raw', agg)} of raw; {ratio('agentkeep', 'raw+lock', agg)} "
            f"of raw+lock; raw+lock/raw {ratio('raw+lock', 'raw', agg)} | |"
        )
        print(
            f"| {args.writers} writers, 6 round trips (before), events/s | | "
            f"{rng('agentkeep-6rt', agg)} | {ratio('agentkeep-6rt', 'raw+lock', agg)} of "
            f"raw+lock; 3 trips/6 trips {ratio('agentkeep', 'agentkeep-6rt', agg)} | |"
        )
        print(
            f"| {args.writers} writers, p99 ms | {rng('raw', p99, '{:.1f}')} (no lock); "
            f"{rng('raw+lock', p99, '{:.1f}')} (xact lock) | "
            f"{rng('agentkeep', p99, '{:.1f}')} (6 trips "
            f"{rng('agentkeep-6rt', p99, '{:.1f}')}) | | |"
        )
    if args.profile:
        profile(pg, n, payloads)
    pg.close()
    sq.close()
    raw.close()


if __name__ == "__main__":
    main()
