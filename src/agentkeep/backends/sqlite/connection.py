"""The SQLite backend: connections, their settings, transactions and error translation.

Every connection agentkeep opens comes from :func:`connect` and gets the same settings
(docs/design.md "Connection settings"):

* ``isolation_level=None`` — the sqlite3 module never issues an implicit DEFERRED BEGIN;
  every write is an explicit ``BEGIN IMMEDIATE … COMMIT`` (:func:`write_transaction`).
  Deferred read-then-write transactions fail with SQLITE_BUSY_SNAPSHOT under concurrent
  writers without waiting for the busy handler; immediate ones wait and succeed.
* ``journal_mode=WAL`` (set once at creation, verified on every open), ``synchronous=FULL``
  by default (``NORMAL`` is an opt-in), ``busy_timeout``, ``foreign_keys=ON``,
  ``secure_delete=ON`` (deleted secrets do not linger in free pages).

The settings are read back after they are set; a connection that does not have them is
refused rather than used.

Writers queue on a lock file (``state.db.lock``) before ``BEGIN IMMEDIATE``. SQLite's own
busy handler retries with sleeps that grow to 100 ms and keeps no queue, so under several
back-to-back writers one process can be locked out past ``busy_timeout`` although each
commit holds the lock for under a millisecond (measured: 4 ``Busy`` errors in 10 s with 6
writers). A writer that does not get the lock file at once waits in the kernel's queue for
it, so the writers take turns; SQLite's locking still provides correctness — the lock file
only adds fairness, and processes that do not take it (other tools) are still safe. The
settings and the queue are implemented once, in :mod:`.discipline`, which the hook's fast
path (:mod:`.fastpath`) shares.

Connections are poisoned in a forked child: SQLite's locks do not survive ``fork()`` and
a child that writes through its parent's connection can corrupt the database. Using one
raises :class:`~agentkeep.errors.UsedAcrossFork`.

Nothing in agentkeep opens database files with ``open()``, copies them, or deletes their
``-wal``/``-shm`` side files: only SQLite touches them (tests enforce this with an audit hook).

Corruption is translated here, for every statement *and every fetch* (a damaged page deep
in a table is only met while rows are read): ``SQLITE_CORRUPT``, ``SQLITE_NOTADB`` and
"malformed" become :class:`~agentkeep.errors.Corrupt` (exit 8). A connection that met
corruption refuses further writes, and records the damage in the store's high-water mark
(``agentkeep/highwater.py``) so that every later open refuses writes too until the user decides.
A connection with a :class:`~agentkeep.highwater.CommitGuard` checks the mark at the
start of each write transaction and advances it after each commit.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

from agentkeep.backends.sqlite.dialect import DIALECT
from agentkeep.backends.sqlite.discipline import (
    SYNCHRONOUS_LEVELS,
    apply_settings,
    open_lock,
    release_lock,
    wait_for_lock,
)
from agentkeep.errors import (
    AgentkeepError,
    Busy,
    Corrupt,
    InvalidInput,
    RollbackDetected,
    StorageError,
    StorageFull,
    UsedAcrossFork,
)
from agentkeep.files import fsync_path, translate_os_error
from agentkeep.highwater import CommitGuard
from agentkeep.timeutil import utc_now

# Bumped in every forked child; a connection remembers the generation it was opened in.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


RESTORE_HINT = (
    "run `agentkeep doctor`; to recover, restore a backup: "
    "`agentkeep restore .agentkeep/backups/<backup> --force` (the damaged store is moved aside)"
)


class _Cursor(sqlite3.Cursor):
    """A cursor whose fetches translate errors like :meth:`Connection.execute` does."""

    _owner: Connection

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise self._owner._translated(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise self._owner._translated(exc) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            raise self._owner._translated(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise self._owner._translated(exc) from exc


class Connection:
    """One SQLite connection with agentkeep's settings, guarded against use after fork."""

    __slots__ = (
        "_conn",
        "_generation",
        "_lock_depth",
        "_lock_fd",
        "busy_timeout_ms",
        "damage",
        "dialect",
        "guard",
        "path",
        "read_only",
    )

    def __init__(
        self, conn: sqlite3.Connection, path: Path, *, read_only: bool, busy_timeout_ms: int
    ) -> None:
        self._conn = conn
        self._generation = _fork_generation
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self.path = path
        self.read_only = read_only
        self.busy_timeout_ms = busy_timeout_ms
        self.dialect = DIALECT
        # The store's high-water mark (None: not checked, e.g. global.db, a backup copy).
        self.guard: CommitGuard | None = None
        # Corruption this connection met: writes are refused from then on.
        self.damage: Corrupt | None = None

    @property
    def raw(self) -> sqlite3.Connection:
        """The underlying connection, after checking it was not inherited across fork()."""
        if self._generation != _fork_generation:
            raise UsedAcrossFork(
                f"this connection to {self.path.name} was opened before fork() and cannot be "
                "used in the child process",
                hint="open the store again in the child (agentkeep.open())",
            )
        return self._conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        raw = self.raw  # UsedAcrossFork in a forked child
        try:
            cursor = raw.cursor(_Cursor)  # ProgrammingError once closed: translated too
            cursor._owner = self
            return cursor.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc
        except OverflowError as exc:
            raise _too_large(exc) from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def begin_writing(self) -> None:
        """Queue for the writer lock, then ``BEGIN IMMEDIATE`` and check the high-water
        mark; on failure nothing is held and no transaction is open."""
        self.lock_writers()
        try:
            self.execute("BEGIN IMMEDIATE")
            if self.guard is not None:
                try:
                    check_mark(self, self.guard)
                except BaseException:
                    _rollback(self)
                    raise
        except BaseException:
            self.unlock_writers()
            raise

    def rollback(self) -> None:
        """Roll back the open transaction, if any (used by :class:`write_transaction`)."""
        raw = self.raw
        if raw.in_transaction:
            # The transaction may already be gone (SQLite rolls back on some errors itself).
            with contextlib.suppress(sqlite3.Error):
                raw.execute("ROLLBACK")

    def now(self) -> str:
        """The time a write transaction stamps (taken under the writer lock): this
        machine's clock, as every writer of a SQLite store runs on it."""
        return utc_now()

    def name_columns(self) -> None:
        """Rows by column name as well as by position (``sqlite3.Row``) from now on."""
        self.raw.row_factory = sqlite3.Row

    def insert(self, sql: str, params: Any = ()) -> int:
        """Run one ``INSERT`` and return the new row's id (``lastrowid``)."""
        row_id = self.execute(sql, params).lastrowid
        assert row_id is not None
        return row_id

    def insert_new(self, sql: str, params: Any = ()) -> int | None:
        """Run one ``INSERT … ON CONFLICT DO NOTHING``: the new row's id, or None when the
        row existed. ``rowcount`` and ``lastrowid`` count the statement's own row, never a
        trigger's; no RETURNING row to step to and fetch."""
        cursor = self.execute(sql, params)
        return cursor.lastrowid if cursor.rowcount else None

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        try:
            return self.raw.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._translated(exc) from exc
        except OverflowError as exc:
            raise _too_large(exc) from exc

    def _translated(self, exc: sqlite3.Error) -> AgentkeepError:
        error = translate_error(exc, self.path)
        if isinstance(error, Corrupt):
            self.note_damage(error)
        return error

    def note_damage(self, error: Corrupt) -> None:
        """Remember corruption: refuse writes on this connection, and record it in the
        store's mark so every later open refuses them too."""
        if self.damage is None:
            self.damage = error
        if self.guard is not None:
            from agentkeep.timeutil import utc_now

            self.guard.record_damage(error.message, utc_now())

    def close(self) -> None:
        # Closing an inherited connection in a child is as unsafe as using it: leave it.
        if self._generation == _fork_generation:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            if self.guard is not None:
                self.guard.close()

    def lock_writers(self) -> None:
        """Take the writer queue lock (see the module docstring), or raise Busy.

        Re-entrant: a migration holds it across its backup and its transactions.
        """
        self.raw  # noqa: B018 - refuses a connection inherited across fork()
        if self._lock_depth:
            self._lock_depth += 1
            return
        if self._lock_fd is None:
            try:
                self._lock_fd = open_lock(str(self.path))
            except OSError as exc:
                raise translate_os_error(exc, f"{self.path}.lock") from exc
        locked = False
        try:
            locked = wait_for_lock(self._lock_fd, self.busy_timeout_ms / 1000)
        finally:
            if not locked:  # or an exception: a waiter may still be queued on this file
                os.close(self._lock_fd)
                self._lock_fd = None
        if not locked:
            raise Busy(
                f"{self.path.name} has been locked by other writers for {self.busy_timeout_ms} ms",
                hint="another process is writing for a long time; retry, or raise "
                "store.busy_timeout_ms",
            )
        self._lock_depth = 1

    def unlock_writers(self) -> None:
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._lock_fd is not None:
            release_lock(self._lock_fd)


def _too_large(exc: OverflowError) -> InvalidInput:
    return InvalidInput(
        "a number is outside the range SQLite stores (64-bit signed integers)",
        hint=f"use a smaller value ({exc})",
    )


def connect(
    path: Path,
    *,
    synchronous: str = "FULL",
    busy_timeout_ms: int = 5000,
    read_only: bool = False,
    immutable: bool = False,
) -> Connection:
    """Open ``path`` with agentkeep's settings (see the module docstring).

    ``immutable`` (read-only) tells SQLite the file cannot change, so it needs no ``-shm``:
    only for a database no process holds and whose WAL is empty (a full disk, where not
    even the ``-shm`` can be created).

    Does not change the file: setting WAL mode (which writes the header) is left to
    :func:`ensure_wal`, called only once the caller knows it may write.
    """
    level = synchronous.upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise InvalidInput(
            f"synchronous must be FULL or NORMAL, not {synchronous!r}",
            hint="agentkeep config set store.synchronous FULL",
        )
    from agentkeep.files import check_database_files, make_database_private

    check_database_files(path)  # a link is refused: SQLite would follow it
    target = f"file:{path}?mode=ro{_immutable_suffix(path)}" if read_only else str(path)
    if read_only and immutable and "immutable=1" not in target:
        target += "&immutable=1"
    try:
        raw = sqlite3.connect(
            target,
            uri=read_only,
            isolation_level=None,
            timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc
    if not read_only:  # before the first write; -wal/-shm take the database file's mode
        make_database_private(path)
    conn = Connection(raw, path, read_only=read_only, busy_timeout_ms=busy_timeout_ms)
    try:
        got = apply_settings(conn.execute, synchronous=level, busy_timeout_ms=busy_timeout_ms)
        if got is not None:
            raise StorageError(f"SQLite refused agentkeep's connection settings: {got}")
    except BaseException:
        raw.close()
        raise
    return conn


def _immutable_suffix(path: Path) -> str:
    """``&immutable=1`` for a WAL database this user may read but cannot open normally.

    A WAL reader needs the ``-shm`` file, and SQLite creates it on open. In a directory the
    user cannot write (another user's project, a read-only mount) with no ``-shm`` there,
    the open fails. No ``-shm`` and no ``-wal`` means nobody has the database open and every
    commit is in the main file, so reading it as immutable is exact. With a non-empty
    ``-wal`` (a writer is live, or crashed) the open is left to fail: skipping the WAL would
    show a stale store.
    """
    shm = path.with_name(path.name + "-shm")
    wal = path.with_name(path.name + "-wal")
    if os.access(path.parent, os.W_OK) or shm.exists():
        return ""
    try:
        if wal.stat().st_size > 0:
            return ""
    except OSError:
        pass
    return "&immutable=1"


def ensure_wal(conn: Connection) -> None:
    """Put the database in WAL mode (persistent; a no-op when it already is) and verify it."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "wal":
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise StorageError(
            f"{conn.path} could not be put in WAL mode (journal_mode={mode})",
            hint="WAL needs a local filesystem; network filesystems are not supported",
        )


def journal_mode(conn: Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


class write_transaction:  # lower case: used like a function, `with write_transaction(c):`
    """``BEGIN IMMEDIATE … COMMIT``, queued behind the writer lock; rolls back on any
    exception and re-raises it. (A class rather than a generator: it runs on every write.)

    Backend-neutral: a PostgreSQL connection (``backends/postgres/connection.py``) reads
    ``BEGIN IMMEDIATE`` as ``BEGIN``, takes its advisory lock in ``lock_writers`` and has
    no high-water ``guard``."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        conn = self.conn
        if conn.damage is not None:
            raise conn.damage
        conn.begin_writing()  # PostgreSQL's takes the lock and BEGIN in one round trip
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self.conn
        try:
            if exc_type is not None:
                _rollback(conn)
                return
            guard = conn.guard
            try:
                newest = guard.newest(conn.raw.execute) if guard is not None else None
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            if guard is not None and newest is not None:
                guard.advance(*newest)
        finally:
            conn.unlock_writers()


def check_mark(conn: Connection, guard: CommitGuard) -> None:
    """Raise when the high-water mark says the database lost commits or is damaged."""
    verdict = guard.judge(conn.execute)
    if verdict.problem == "damaged":
        raise Corrupt(
            f"{conn.path} is damaged: {verdict.message}; writes are refused",
            hint=RESTORE_HINT
            + "; or, if `agentkeep db check` passes, accept it as it is: `agentkeep db accept`",
        )
    if verdict.problem == "rollback":
        raise RollbackDetected(
            f"{conn.path} lost commits ({verdict.message}); writes are refused",
            hint="restore a backup (`agentkeep restore .agentkeep/backups/<backup> --force`), "
            "or accept the database as it is now: `agentkeep db accept`",
        )


def _rollback(conn: Connection) -> None:
    conn.rollback()


_FULL_NAMES = {
    "SQLITE_FULL",
    "SQLITE_IOERR_WRITE",
    "SQLITE_IOERR_FSYNC",
    "SQLITE_IOERR_TRUNCATE",
    "SQLITE_IOERR_SHMSIZE",  # the -shm could not grow: no room on the disk
}
_CORRUPT_NAMES = {"SQLITE_NOTADB"}


def translate_error(exc: sqlite3.Error, path: Path) -> AgentkeepError:
    """Map a sqlite3 exception to agentkeep's error tree (classified by SQLite's error name)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    where = path.name
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
        return Busy(
            f"{where} is locked by another process ({name})",
            hint="another agentkeep command is writing; retry, or raise store.busy_timeout_ms",
        )
    if name in _FULL_NAMES:
        return StorageFull(
            f"no space left to write {where} ({name or exc})",
            hint="free disk space, then retry",
        )
    if (
        name in _CORRUPT_NAMES
        or name.startswith("SQLITE_CORRUPT")
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    ):
        return Corrupt(
            f"{path} is damaged or is not an agentkeep database ({name or 'corrupt'}: {exc})",
            hint=RESTORE_HINT,
        )
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return InvalidInput(f"a referenced record does not exist ({exc})")
    if name.startswith("SQLITE_CONSTRAINT"):
        return InvalidInput(f"the record breaks a rule of the schema ({exc})")
    if name == "SQLITE_READONLY_ROLLBACK":
        return StorageError(
            f"{where} has a hot rollback journal left by a crashed write, and this process "
            "may not write the store to roll it back",
            hint="run any agentkeep command once as a user who can write .agentkeep/",
        )
    if name.startswith("SQLITE_READONLY"):
        return StorageError(
            f"{where} is read-only ({name})",
            hint="check the file permissions of the .agentkeep directory",
        )
    if name == "SQLITE_CANTOPEN":
        return StorageError(f"cannot open {path} ({exc})", hint="check the path and permissions")
    return StorageError(f"database error on {where}: {name or type(exc).__name__}: {exc}")


def backup_to(conn: Connection, dest: Path) -> None:
    """Consistent online snapshot of ``conn``'s database into ``dest`` (made durable).

    Uses the backup API in one step (``pages=-1``): a stepped backup restarts whenever
    another connection writes, so under continuous writes it might never finish. The
    copy is written through SQLite (never a file copy), fsynced, then its directory.
    """
    import random  # here: its import (math, bisect, hashlib's sha512) is no start-up cost

    from agentkeep.files import check_database_files

    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_database_files(dest)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}-{random.getrandbits(32):08x}")
    try:
        target = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            os.chmod(tmp, 0o600)  # private before the first page is written
            conn.raw.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        fsync_path(tmp)
        os.replace(tmp, dest)
        fsync_path(dest.parent, directory=True)
    except (sqlite3.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()  # our own unfinished copy, never a live database file
        if isinstance(exc, sqlite3.Error):
            raise translate_error(exc, dest) from exc
        raise translate_os_error(exc, str(dest)) from exc


def roll_back_hot_journal(db_path: Path, **options: Any) -> None:
    """A write killed while the database was in rollback-journal mode (a migration's
    journal-mode switch, a file restored in DELETE mode) leaves a hot ``-journal``. A
    read-only connection cannot roll it back (SQLITE_READONLY_ROLLBACK: every command
    failed); a writable one does so on its first read, and deletes the journal. Left to
    SQLite: agentkeep never deletes a database's side files itself."""
    if not db_path.with_name(db_path.name + "-journal").exists():
        return
    try:
        conn = connect(db_path, **options)
    except AgentkeepError:
        return  # not writable here: the probe reports it
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except AgentkeepError:
        pass  # the probe reports what is wrong
    finally:
        conn.close()
