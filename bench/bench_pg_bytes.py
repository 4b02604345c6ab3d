"""Bulk bytes for teams: storing and fetching artifacts and sealed streams on PostgreSQL
(chunked ``bytea`` rows, ``backends/postgres/blobs.py``), side by side with SQLite (local
files only) and with bare psycopg doing the same database work, in one run.

    python bench/bench_pg_bytes.py [--rounds 5] [--dsn URL] [--sqlite-only]

``--dsn`` (default ``AGENTKEEP_TEST_PG_DSN``, else the dev server at /work/pgdev:54329) is
a ``postgresql://`` URL without ``schema``; each run makes its own schemas and drops them.
``--sqlite-only`` runs the SQLite rows alone: run it on two source trees
(``PYTHONPATH=/other/tree/src``) to compare them.

Rows, each the median of ``--rounds`` (new content every round, so nothing deduplicates):

a. ``add_artifact`` of 1 MiB and 16 MiB of agent-like text (redacted, hashed, stored
   zstd): SQLite vs PostgreSQL, beside bare psycopg inserting the same stored bytes as
   1 MiB ``bytea`` chunks (binary parameters, ``executemany``, one transaction).
b. ``seal_stream`` of a closed 16 MiB stream of that text: SQLite vs PostgreSQL vs the
   bare INSERT of the sealed file's bytes.
c. A teammate's first read: a second project directory on the same schema (a machine
   without the files) reads each artifact and the stream's lines (fetch, verify, publish,
   decompress, read) vs bare psycopg SELECTing the same chunks vs SQLite reading its file.
d. The shared bytes alone, on 1 MiB and 16 MiB of random bytes: ``put`` in a write
   transaction (the time the writer lock is held beyond SQLite's add) and ``fetch`` into
   a new file (digest checked) vs bare psycopg INSERT and SELECT of the same chunks.

Rounds alternate the sides so drift on a shared machine hits all of them. Absolute numbers
vary +-25% between runs; ratios are the result.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep
sys.path.insert(0, str(HERE))

from bench_redact import make_transcript  # noqa: E402

MiB = 1 << 20
DEV_DSN = "postgresql:///postgres?host=/work/pgdev&port=54329&user=postgres"


def text_bytes(size: int, seed: int) -> bytes:
    """``size`` bytes of agent-like output (compresses ~4x), unique per seed."""
    text, _ = make_transcript(size + 4096, seed=seed)
    data = f"round {seed} {os.urandom(8).hex()}\n".encode() + text.encode()
    return data[:size]


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


class Raw:
    """Bare psycopg on the same server: the database work of a put and a fetch, nothing
    else (no hashing, no files, no transaction bookkeeping)."""

    def __init__(self, dsn: str, schema: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f'CREATE SCHEMA "{schema}"')
        self.conn.execute(f'SET search_path = "{schema}"')
        self.conn.execute(
            "CREATE TABLE raw_chunks (name TEXT, n BIGINT, data BYTEA, PRIMARY KEY (name, n))"
        )
        self.conn.execute("ALTER TABLE raw_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
        self.schema = schema

    def insert(self, name: str, data: bytes) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO raw_chunks (name, n, data) VALUES (%s, %s, %b)",
                [(name, i // MiB, data[i : i + MiB]) for i in range(0, len(data), MiB)],
            )

    def select(self, name: str) -> bytes:
        parts: list[bytes] = []
        with self.conn.cursor(binary=True) as cur:
            n = 0
            while True:
                rows = cur.execute(
                    "SELECT n, data FROM raw_chunks WHERE name = %s AND n >= %s ORDER BY n LIMIT 8",
                    (name, n),
                ).fetchall()
                if not rows:
                    break
                parts += [bytes(row[1]) for row in rows]
                n = rows[-1][0] + 1
        return b"".join(parts)

    def close(self) -> None:
        self.conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        self.conn.close()


def stored_file(store: Any, artifact: Any) -> bytes:
    from agentkeep.services.artifacts import object_path

    return object_path(store.store_dir, artifact.sha256, artifact.encoding).read_bytes()


def closed_stream(store: Any, data: bytes) -> int:
    session = store.start_session().item
    writer = store.open_stream(session.id, "stdout")
    for start in range(0, len(data), MiB):
        writer.write(data[start : start + MiB])
    writer.close()
    return int(writer.stream.id)


SIZES = (("1 MiB text", MiB, text_bytes), ("16 MiB text", 16 * MiB, text_bytes))
BLOB_SIZES = (("1 MiB", MiB), ("16 MiB", 16 * MiB))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dsn", default=os.environ.get("AGENTKEEP_TEST_PG_DSN") or DEV_DSN)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    print(f"agentkeep from {Path(agentkeep.__file__).parent}, {args.rounds} rounds")
    print(f"load average at start: {os.getloadavg()}")
    cases = list(SIZES)
    times: dict[str, list[float]] = {}

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        lite = base / "sqlite"
        lite.mkdir()
        agentkeep.init_store(lite)
        pg_a = pg_b = raw = None
        schema = f"bench_{os.urandom(4).hex()}"
        if not args.sqlite_only:
            url = f"{args.dsn}{'&' if '?' in args.dsn else '?'}schema={schema}"
            pg_a, pg_b = base / "a", base / "b"
            for root in (pg_a, pg_b):
                root.mkdir()
                agentkeep.init_store(root, url=url)
            from agentkeep.backends.postgres.url import split_url

            raw = Raw(split_url(url)[0], f"{schema}_raw")
        try:
            for round_no in range(args.rounds):
                one_round(round_no, cases, lite, pg_a, pg_b, raw, record)
        finally:
            if raw is not None:
                raw.close()
                raw.conn.close()
                import psycopg

                with psycopg.connect(raw_dsn(args.dsn), autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"load average at end: {os.getloadavg()}")
    report(times, cases, sqlite_only=args.sqlite_only)


def raw_dsn(dsn: str) -> str:
    from agentkeep.backends.postgres.url import split_url

    return split_url(dsn)[0]


def one_round(
    round_no: int,
    cases: list[Any],
    lite: Path,
    pg_a: Path | None,
    pg_b: Path | None,
    raw: Raw | None,
    record: Callable[[str, float], None],
) -> None:
    seed = 1000 + round_no
    stream_data = text_bytes(16 * MiB, seed + 500)
    for label, size, make in cases:
        data = make(size, seed)
        with agentkeep.open(lite) as store:
            seconds, written = timed(store.add_artifact, data, name="x")
            record(f"add {label} sqlite", seconds)
            seconds, got = timed(store.read_artifact, written.item.id)
            assert len(got) == written.item.size  # the text's planted secrets are redacted
            record(f"read {label} sqlite", seconds)
        if pg_a is None or pg_b is None or raw is None:
            continue
        with agentkeep.open(pg_a) as store:
            seconds, written = timed(store.add_artifact, data, name="x")
            record(f"add {label} postgres", seconds)
            stored = stored_file(store, written.item)
        name = f"r{round_no}-{label}"
        seconds, _ = timed(raw.insert, name, stored)
        record(f"add {label} raw", seconds)
        with agentkeep.open(pg_b) as store:
            seconds, got = timed(store.read_artifact, written.item.id)
            assert hashlib.sha256(got).hexdigest() == written.item.sha256
            record(f"read {label} postgres (fetch)", seconds)
        seconds, got = timed(raw.select, name)
        assert got == stored
        record(f"read {label} raw", seconds)
    with agentkeep.open(lite) as store:
        stream_id = closed_stream(store, stream_data)
        seconds, sealed = timed(lambda: store.seal_stream(stream_id))
        record("seal sqlite", seconds)
        seconds, lines = timed(lambda: store.stream_lines(stream_id))
        record("lines sqlite", seconds)
    if pg_a is None or pg_b is None or raw is None:
        return
    with agentkeep.open(pg_a) as store:
        stream_id = closed_stream(store, stream_data)
        seconds, sealed = timed(lambda: store.seal_stream(stream_id))
        record("seal postgres", seconds)
        sealed_bytes = (store.store_dir / sealed.path).read_bytes()
    seconds, _ = timed(lambda: raw.insert(f"r{round_no}-stream", sealed_bytes))
    record("seal raw", seconds)
    with agentkeep.open(pg_b) as store:
        seconds, got_lines = timed(lambda: store.stream_lines(stream_id))
        assert len(got_lines) == len(lines)
        record("lines postgres (fetch)", seconds)
    seconds, _ = timed(lambda: raw.select(f"r{round_no}-stream"))
    record("lines raw", seconds)
    blob_round(round_no, pg_a, raw, record)


def blob_round(round_no: int, root: Path, raw: Raw, record: Callable[[str, float], None]) -> None:
    """The database work alone: ``put`` of a stored file in a write transaction (what the
    writer lock is held for beyond SQLite's add) and ``fetch`` of it (with its digest
    check, into a new file), vs bare psycopg on the same bytes. Random bytes: stored as is
    (zstd would not shrink them), so the stored size is the size shown."""
    with agentkeep.open(root) as store:
        for label, size in BLOB_SIZES:
            data = random_bytes(size)
            path = root / f"blob-{round_no}"
            path.write_bytes(data)
            name = f"bench/{round_no}/{label}"

            record(f"put {label} postgres", timed(put, store, name, path)[0])
            record(f"put {label} raw", timed(raw.insert, name, data)[0])
            dest = root / f"fetched-{round_no}-{size}"
            seconds, ok = timed(store.backend.blobs.fetch, store._conn, name, dest)
            assert ok and dest.read_bytes() == data
            record(f"fetch {label} postgres", seconds)
            seconds, got = timed(raw.select, name)
            assert got == data
            record(f"fetch {label} raw", seconds)
            path.unlink()
            dest.unlink()
    print(f"round {round_no + 1} done", flush=True)


def put(store: Any, name: str, path: Path) -> None:
    with store.transaction() as tx:
        store.share_bytes(tx, name, path)


def report(times: dict[str, list[float]], cases: list[Any], *, sqlite_only: bool) -> None:
    def cell(key: str) -> str:
        values = times.get(key)
        return f"{median_ms(values):8.1f} ms" if values else "       -   "

    def ratio(top: str, bottom: str) -> str:
        if top not in times or bottom not in times:
            return "  -  "
        return f"{median_ms(times[top]) / median_ms(times[bottom]):5.2f}x"

    print()
    print(
        f"{'operation':<26} {'sqlite':>11} {'postgres':>11} {'raw psycopg':>11} "
        f"{'pg/sqlite':>9} {'pg/raw':>7}"
    )
    rows = [(f"add {label}", f"add {label}") for label, _, _ in cases]
    rows += [("seal 16 MiB stream", "seal")]
    rows += [(f"read {label}", f"read {label}") for label, _, _ in cases]
    rows += [("lines of 16 MiB stream", "lines")]
    for title, key in rows:
        pg = f"{key} postgres" + (" (fetch)" if key.startswith(("read", "lines")) else "")
        print(
            f"{title:<26} {cell(key + ' sqlite')} {cell(pg)} {cell(key + ' raw')} "
            f"{ratio(pg, key + ' sqlite'):>9} {ratio(pg, key + ' raw'):>7}"
        )
    if not sqlite_only:
        print(f"\n{'shared bytes alone':<26} {'postgres':>11} {'raw psycopg':>11} {'pg/raw':>7}")
        for label, _ in BLOB_SIZES:
            for op in ("put", "fetch"):
                key = f"{op} {label}"
                print(
                    f"{key + ' random':<26} {cell(key + ' postgres')} {cell(key + ' raw')} "
                    f"{ratio(key + ' postgres', key + ' raw'):>7}"
                )
    if sqlite_only:
        print("\n(sqlite only: every round, ms)")
        for key, values in sorted(times.items()):
            print(f"  {key:<30} " + " ".join(f"{v * 1000:7.1f}" for v in values))


if __name__ == "__main__":
    main()
