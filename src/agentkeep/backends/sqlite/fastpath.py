"""The hook's fast write path on SQLite: connect, queue, ``BEGIN IMMEDIATE``, schema check.

``agentkeep hook`` runs in a cold process on every tool call, so it cannot import the full
backend (:mod:`.connection` pulls in the high-water mark's writer, error translation and
the files layer) and must finish in a few tens of milliseconds (principles 3 and 11 of
docs/design.md). This module gives it the same discipline with the standard library alone:

* :func:`connect` opens an existing ``state.db`` (never creates one, never through a link)
  with the settings every connection gets, read back like :func:`.connection.connect` does
  (:func:`.discipline.apply_settings`).
* :class:`WriterQueue` is the writers' queue lock (:mod:`.discipline`, the one
  implementation), bounded by ``hook.lock_wait_ms``: past it :class:`LockBusy` is raised
  and the hook spools the delivery instead.
* :func:`begin` opens ``BEGIN IMMEDIATE`` on a store of the schema this code writes,
  letting the full library migrate an older one and refusing a newer one
  (:class:`StoreTooNew`); :func:`checked_mark` and :func:`commit` keep the commit
  high-water mark exactly as library writers do.

:class:`FastConnection` offers what :class:`agentkeep.capture.Writer` needs of any
backend connection (:class:`agentkeep.backends.base.Connection`): ``execute``, ``insert_new``,
``insert`` and ``dialect``.
"""

from __future__ import annotations

import os
import sqlite3

from agentkeep.backends.sqlite.dialect import DIALECT
from agentkeep.backends.sqlite.discipline import (
    apply_settings,
    open_lock,
    wait_for_lock,
)
from agentkeep.errors import HookError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Callable
    from typing import Any

    from agentkeep.highwater import CommitGuard

# What a statement the database refuses raises (a delivery's savepoint is rolled back and
# the rest of a spool batch goes on). Other sqlite3 errors (a full disk, ...) stop a drain.
REFUSALS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)


class LockBusy(HookError):
    """The writer lock was not free within ``hook.lock_wait_ms``."""


class StoreTooNew(HookError):
    """The store's schema is newer than this code: it may not write it (an agentkeep that
    can drains what this one spools)."""


class FastConnection:
    """A connection to ``state.db`` for the hook (see the module docstring)."""

    __slots__ = ("dialect", "path", "raw")

    def __init__(self, raw: sqlite3.Connection, path: str) -> None:
        self.raw = raw
        self.path = path
        self.dialect = DIALECT

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    def insert(self, sql: str, params: Any = ()) -> int:
        """Run one ``INSERT`` and return the new row's id."""
        row_id = self.raw.execute(sql, params).lastrowid
        assert row_id is not None
        return row_id

    def insert_new(self, sql: str, params: Any = ()) -> int | None:
        """Run one ``INSERT … ON CONFLICT DO NOTHING``: the new row's id, or None."""
        cursor = self.raw.execute(sql, params)
        return cursor.lastrowid if cursor.rowcount else None

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already."""
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


def connect(store_dir: str, *, synchronous: str, timeout_ms: int) -> FastConnection:
    """A connection to the store's existing database with agentkeep's settings.

    ``timeout_ms`` bounds SQLite's own busy wait: the hook waits ``hook.lock_wait_ms`` at
    most, even for a writer that does not take the queue lock."""
    path = os.path.join(store_dir, "state.db")
    for suffix in ("", "-wal", "-shm", "-journal"):  # SQLite would follow a link
        if os.path.islink(path + suffix):
            raise HookError(f"{path}{suffix} is a symbolic link; agentkeep never follows one")
    uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=rw"
    raw = sqlite3.connect(
        uri,
        uri=True,
        isolation_level=None,
        timeout=timeout_ms / 1000,
        check_same_thread=False,
    )
    try:
        got = apply_settings(raw.execute, synchronous=synchronous, busy_timeout_ms=timeout_ms)
        if got is not None:
            raise HookError(f"SQLite refused agentkeep's connection settings: {got}")
    except BaseException:
        raw.close()
        raise
    return FastConnection(raw, path)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the database."""
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorname", "") or ""
    ).startswith("SQLITE_BUSY")


def schema_version(conn: FastConnection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise HookError("the store has no schema version (not an agentkeep store?)")
    return int(row[0])


class WriterQueue:
    """The writers' queue lock, ``state.db.lock`` (:mod:`.discipline`), held from before
    ``BEGIN IMMEDIATE`` to after ``COMMIT`` like every agentkeep writer does.

    Waits ``timeout_ms`` (``hook.lock_wait_ms``) at most, then raises :class:`LockBusy`:
    the delivery goes to the spool instead."""

    __slots__ = ("fd", "path", "timeout")

    def __init__(self, db_path: str, timeout_ms: int) -> None:
        self.path = db_path
        self.timeout = timeout_ms / 1000
        self.fd: int | None = None

    def acquire(self) -> None:
        self.fd = open_lock(self.path)
        locked = False
        try:
            locked = wait_for_lock(self.fd, self.timeout)
        finally:
            if not locked:  # or an exception: closing the file leaves the queue
                self.release()
        if not locked:
            raise LockBusy(f"other writers held the store for {self.timeout * 1000:g} ms")

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def begin(
    conn: FastConnection, queue: WriterQueue, *, expected: int, migrate: Callable[[], None]
) -> None:
    """``BEGIN IMMEDIATE`` on a store of schema ``expected``: an older one is migrated first
    by ``migrate`` (the full library, which takes a backup and the same lock), a newer one
    refused (:class:`StoreTooNew`). Raises :class:`LockBusy` when the lock is not free in
    time (the queue is then released)."""
    begin_immediate(conn, queue)
    version = schema_version(conn)
    if version == expected:
        return
    conn.execute("ROLLBACK")
    if version > expected:
        raise StoreTooNew(
            f"the store has schema version {version}, newer than this agentkeep's"
            f" {expected}; upgrade agentkeep (the delivery was spooled)"
        )
    queue.release()  # the library takes the same lock to migrate
    migrate()
    begin_immediate(conn, queue)
    version = schema_version(conn)
    if version != expected:
        conn.execute("ROLLBACK")
        raise HookError(f"the store is at schema version {version} after migrating")


def begin_immediate(conn: FastConnection, queue: WriterQueue) -> None:
    queue.acquire()
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        queue.release()
        # A writer that does not take the queue lock (another tool, a test) holds SQLite's.
        if is_busy(exc):
            raise LockBusy(f"the database was locked for {queue.timeout * 1000:g} ms") from exc
        raise
    except BaseException:
        queue.release()
        raise


def checked_mark(conn: FastConnection, store_dir: str, synchronous: str) -> CommitGuard:
    """The store's commit high-water mark (agentkeep/highwater.py), checked inside the
    write transaction like every library writer does: a database that lost commits or is
    known to be damaged is not written (the delivery fails and is logged)."""
    from agentkeep.highwater import MARK_NAME, CommitGuard

    guard = CommitGuard(os.path.join(store_dir, MARK_NAME), synchronous=synchronous)
    verdict = guard.judge(conn.execute)
    if verdict.problem is not None:
        guard.close()
        raise HookError(
            f"not written: {verdict.message}; run `agentkeep doctor` (restore a backup, or "
            "`agentkeep db accept`)"
        )
    return guard


def commit(conn: FastConnection, guard: CommitGuard) -> None:
    """COMMIT, then advance the high-water mark to the newest event it committed."""
    newest = guard.newest(conn.execute)
    conn.execute("COMMIT")
    guard.advance(*newest)
