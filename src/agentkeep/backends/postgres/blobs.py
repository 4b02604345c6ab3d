"""Shared bytes on PostgreSQL: the files of sealed streams and artifact objects, in
chunked ``bytea`` rows (``schema/0001_blobs.sql``), so a teammate's machine can read
what another machine sealed or stored (:class:`agentkeep.backends.base.Blobs`).

Why rows in the store's own database and not an object store: nothing more to run,
secure, back up or grant (the store's role and schema cover it), and a blob commits in
the transaction of the row that refers to it, so no row is ever without its bytes.
The cost, measured in ``bench/bench_pg_bytes.py`` (bench/README.md), is the upload time
inside the write transaction, within ~1.1x of a bare psycopg ``INSERT`` of the same
chunks.

The bytes travel in PostgreSQL's binary format (server-side parameters on a plain
psycopg cursor: the store's connection quotes parameters as literals, which would send
1 MiB of bytea as 2 MiB of hex). Every fetch re-hashes what it received against the
digest recorded at ``put``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from agentkeep.backends.base import Connection
from agentkeep.errors import Corrupt, StorageError
from agentkeep.files import READ_ONLY_FILE, open_file, remove_quietly, translate_os_error
from agentkeep.timeutil import utc_now

CHUNK_BYTES = 1 << 20
FETCH_CHUNKS = 8  # chunks a fetch asks for at a time (and holds in memory)


def _raw(conn: Connection) -> psycopg.Connection[Any]:
    raw = getattr(conn, "raw", None)
    if raw is None:
        raise StorageError("shared bytes need a PostgreSQL connection")
    return raw  # type: ignore[no-any-return]


def _translated(conn: Connection, exc: psycopg.Error) -> Exception:
    from agentkeep.backends.postgres.connection import translate_error

    return translate_error(exc, str(getattr(conn, "url", "")))


class PostgresBlobs:
    shared = True

    def put(self, conn: Connection, name: str, path: Path) -> bool:
        raw = _raw(conn)
        try:
            with psycopg.Cursor(raw) as cur:
                cur.execute(
                    "INSERT INTO blobs (name, size, sha256, chunks, created_at)"
                    " VALUES (%s, 0, '', 0, %s) ON CONFLICT (name) DO NOTHING",
                    (name, utc_now()),
                )
                if cur.rowcount == 0:
                    return False  # stored already, by this machine or another
                digest = hashlib.sha256()
                totals = [0, 0]  # bytes, chunks

                def chunks() -> Iterator[tuple[str, int, bytes]]:
                    with path.open("rb") as handle:
                        while data := handle.read(CHUNK_BYTES):
                            digest.update(data)
                            yield name, totals[1], data
                            totals[0] += len(data)
                            totals[1] += 1

                cur.executemany(
                    "INSERT INTO blob_chunks (name, n, data) VALUES (%s, %s, %b)", chunks()
                )
                cur.execute(
                    "UPDATE blobs SET size = %s, sha256 = %s, chunks = %s WHERE name = %s",
                    (totals[0], digest.hexdigest(), totals[1], name),
                )
        except psycopg.Error as exc:
            raise _translated(conn, exc) from exc
        except OSError as exc:
            raise translate_os_error(exc, str(path)) from exc
        return True

    def fetch(self, conn: Connection, name: str, dest: Path) -> bool:
        raw = _raw(conn)
        try:
            with psycopg.Cursor(raw) as cur:
                head = cur.execute(
                    "SELECT size, sha256, chunks FROM blobs WHERE name = %s", (name,)
                ).fetchone()
                if head is None:
                    return False
                size, expected, count = int(head[0]), str(head[1]), int(head[2])
                fd = open_file(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=READ_ONLY_FILE)
                try:
                    digest, total, n = hashlib.sha256(), 0, 0
                    while n < count:
                        rows = cur.execute(
                            "SELECT n, data FROM blob_chunks WHERE name = %s AND n >= %s"
                            " ORDER BY n LIMIT %s",
                            (name, n, FETCH_CHUNKS),
                            binary=True,
                        ).fetchall()
                        if not rows:
                            break
                        for number, data in rows:
                            if number != n:
                                break
                            digest.update(data)
                            total += len(data)
                            view = memoryview(data)
                            while view:
                                view = view[os.write(fd, view) :]
                            n += 1
                        else:
                            continue
                        break
                finally:
                    os.close(fd)
                if n != count or total != size or digest.hexdigest() != expected:
                    gone = cur.execute("SELECT 1 FROM blobs WHERE name = %s", (name,)).fetchone()
                    remove_quietly(dest)
                    if gone is None:
                        return False  # deleted (gc) while it was read
                    raise Corrupt(
                        f"the shared copy of {name} is damaged: its bytes do not match the "
                        "digest recorded when it was stored",
                        hint="run `agentkeep doctor` on the machine that wrote it; "
                        "`doctor --fix` there stores it again from its file",
                    )
        except psycopg.Error as exc:
            remove_quietly(dest)
            raise _translated(conn, exc) from exc
        except OSError as exc:
            remove_quietly(dest)
            raise translate_os_error(exc, str(dest)) from exc
        return True

    def exists(self, conn: Connection, names: Sequence[str]) -> set[str]:
        if not names:
            return set()
        try:
            with psycopg.Cursor(_raw(conn)) as cur:
                rows = cur.execute(
                    "SELECT name FROM blobs WHERE name = ANY(%s)", (list(names),)
                ).fetchall()
        except psycopg.Error as exc:
            raise _translated(conn, exc) from exc
        return {str(row[0]) for row in rows}

    def delete(self, conn: Connection, names: Sequence[str]) -> int:
        if not names:
            return 0
        try:
            with psycopg.Cursor(_raw(conn)) as cur:
                cur.execute("DELETE FROM blobs WHERE name = ANY(%s)", (list(names),))
                return int(cur.rowcount)
        except psycopg.Error as exc:
            raise _translated(conn, exc) from exc

    def sizes(self, conn: Connection) -> tuple[int, int]:
        try:
            with psycopg.Cursor(_raw(conn)) as cur:
                row = cur.execute("SELECT count(*), coalesce(sum(size), 0) FROM blobs").fetchone()
        except psycopg.Error as exc:
            raise _translated(conn, exc) from exc
        return (int(row[0]), int(row[1])) if row else (0, 0)


BLOBS = PostgresBlobs()
