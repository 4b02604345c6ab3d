"""SQLite's side of :class:`agentkeep.backends.base.Maintenance`: checks, sizes, space
reclamation, online backups, read snapshots — every PRAGMA, ``dbstat`` and
``sqlite_master`` read and every raw ``sqlite3.connect`` the operations (gc, doctor,
backup, restore, bundles, ``db check``) need, with errors translated.

Two kinds of callers:

* :class:`SQLiteMaintenance` works on an open store's connection (``store.maintenance``);
* the module functions work on database *files* no store has open: a backup's snapshot
  (:func:`read_file`), a single-file backup to verify (:func:`inspect_file`), a database
  copied into a store being restored (:func:`copy_database`). They open the file read-only
  (the source) or create a new private file (the copy); nothing opens a live store's
  database with ``open()`` or copies it as bytes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentkeep.backends.reads import ConnectionReads
from agentkeep.backends.sqlite.connection import (
    Connection,
    backup_to,
    journal_mode,
    translate_error,
)
from agentkeep.backends.sqlite.migrate import MIGRATOR
from agentkeep.errors import AgentkeepError, Corrupt, InvalidInput
from agentkeep.files import fsync_path

_SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


class Snapshot(ConnectionReads):
    """One read transaction on a connection (``BEGIN`` … ``COMMIT``): a consistent view.

    Reads through the connection's translating ``execute``; a snapshot on a connection
    that is already inside a transaction (a write transaction of the same store) reads
    that transaction's state and leaves it to its owner.
    """

    __slots__ = ()
    _conn: Connection  # this backend's own

    def batches(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Iterator[list[Any]]:
        cursor = self._conn.execute(sql, params)
        while batch := cursor.fetchmany(size):
            yield batch

    def columns(self, table: str) -> list[str]:
        # table_info lists the stored columns only (not generated ones such as
        # captures.search_text, which a copy must not carry).
        return [str(row[1]) for row in self._conn.execute(f"PRAGMA table_info({table})")]


@contextlib.contextmanager
def _read_transaction(conn: Connection) -> Iterator[Snapshot]:
    if conn.raw.in_transaction:
        yield Snapshot(conn)
        return
    conn.execute("BEGIN")
    try:
        yield Snapshot(conn)
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.raw.execute("COMMIT")  # a read transaction: nothing to lose


class SQLiteMaintenance:
    """:class:`agentkeep.backends.base.Maintenance` over one store connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- checks -------------------------------------------------------------------------

    def integrity(self, *, full: bool) -> list[str]:
        pragma = "integrity_check" if full else "quick_check"
        try:
            return [str(row[0]) for row in self._conn.execute(f"PRAGMA {pragma}")]
        except Corrupt as exc:  # the check itself can fail on a damaged page
            return [exc.message]

    def foreign_key_violations(self) -> list[tuple[str, int, str]]:
        try:
            rows = self._conn.execute("PRAGMA foreign_key_check").fetchall()
        except Corrupt:  # integrity() reports the damage
            return []
        return [(str(row[0]), int(row[1]), str(row[2])) for row in rows]

    def search_index_gap(self) -> int:
        """Messages at or below the search watermark (schema 8) that ``messages_fts`` lacks
        (one ``messages_fts_docsize`` row per indexed message); those above it wait for a
        catch-up and are no gap. A store of an older schema, read before it is migrated
        (``doctor`` opens read-only), has no watermark: nothing to count."""
        if not MIGRATOR.table_exists(self._conn, "search_index"):
            return 0
        row = self._conn.execute(
            "SELECT (SELECT count(*) FROM messages WHERE id <= w.indexed_to"
            " AND text IS NOT NULL) - (SELECT count(*) FROM messages_fts_docsize"
            " WHERE id <= w.indexed_to) FROM search_index w WHERE w.name = 'messages'"
        ).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    # -- sizes --------------------------------------------------------------------------

    def pages(self) -> tuple[int, int, int]:
        return (
            self._pragma("page_size"),
            self._pragma("page_count"),
            self._pragma("freelist_count"),
        )

    def table_bytes(self) -> dict[str, int]:
        """Bytes per table with its indexes, from ``dbstat`` in aggregate mode: one row per
        b-tree, summed by SQLite while it walks the pages, instead of a row per page joined
        with ``sqlite_master`` (what made ``usage`` slow on a large store). Still reads
        every page: O(size)."""
        try:
            trees = self._conn.execute(
                "SELECT name, pgsize FROM dbstat WHERE aggregate = TRUE"
            ).fetchall()
            owners = dict(self._conn.execute("SELECT name, tbl_name FROM sqlite_master"))
        except AgentkeepError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
            return {}
        out: dict[str, int] = {}
        for name, size in trees:
            table = owners.get(name, name)
            out[table] = out.get(table, 0) + int(size)
        return dict(sorted(out.items(), key=lambda item: (-item[1], item[0])))

    def journal_mode(self) -> str:
        return journal_mode(self._conn)

    def synchronous(self) -> str:
        return _SYNCHRONOUS_NAMES[self._pragma("synchronous")]

    def file_bytes(self) -> tuple[int, int]:
        path = self._conn.path
        return _size(path), _size(path.with_name(path.name + "-wal"))

    # -- space --------------------------------------------------------------------------

    def reclaim(self) -> None:
        # sqlite3's execute() steps a statement that returns no rows only once, and
        # incremental_vacuum frees one page per step: executescript() steps it to the end.
        try:
            self._conn.raw.executescript("PRAGMA incremental_vacuum;")
        except sqlite3.Error as exc:
            raise translate_error(exc, self._conn.path) from exc
        self.checkpoint()

    def checkpoint(self) -> None:
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- copies, snapshots, locks -------------------------------------------------------

    def backup_to(self, dest: Path) -> None:
        backup_to(self._conn, dest)

    def snapshot(self) -> contextlib.AbstractContextManager[Snapshot]:
        return _read_transaction(self._conn)

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        self._conn.lock_writers()
        try:
            yield
        finally:
            self._conn.unlock_writers()

    def note_damage(self, error: Any) -> None:
        self._conn.note_damage(error)

    def _pragma(self, name: str) -> int:
        row = self._conn.execute(f"PRAGMA {name}").fetchone()
        return int(row[0]) if row is not None else 0


# -- database files no store has open -----------------------------------------------------


@contextlib.contextmanager
def read_file(path: Path) -> Iterator[Snapshot]:
    """Read the database file ``path`` (a backup's snapshot) in one read transaction."""
    try:
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc
    conn = Connection(raw, path, read_only=True, busy_timeout_ms=0)
    try:
        with _read_transaction(conn) as snapshot:
            yield snapshot
    finally:
        raw.close()


def inspect_file(path: Path) -> tuple[list[str], int | None]:
    """A database file's ``integrity_check`` result and its ``meta.schema_version`` (None
    when it has none). Raises Corrupt when SQLite finds the file damaged, InvalidInput
    when it is not a database at all; both carry SQLite's own message."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            integrity = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_CORRUPT"):
            raise Corrupt(str(exc)) from exc
        raise InvalidInput(str(exc)) from exc
    return integrity, None if row is None else int(row[0])


def copy_database(src: Path, dest: Path) -> None:
    """Copy the database file ``src`` to the new file ``dest`` through SQLite (never as
    bytes), in WAL mode, private (0600) before the first page is written, and fsynced."""
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(str(dest), isolation_level=None)
            try:
                os.chmod(dest, 0o600)
                source.backup(target, pages=-1)
                target.execute("PRAGMA journal_mode=WAL")
            finally:
                target.close()  # a clean close checkpoints and removes the -wal
        finally:
            source.close()
    except sqlite3.Error as exc:  # a damaged source database
        raise translate_error(exc, src) from exc
    fsync_path(dest)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


__all__ = ["SQLiteMaintenance", "Snapshot", "copy_database", "inspect_file", "read_file"]
