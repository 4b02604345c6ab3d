"""What a storage backend provides, as typed protocols.

The layers above the backend (the store and its services, capture, operations) are written
in portable SQL with ``?`` parameters and call these protocols for everything that differs
between databases. ``backends/sqlite/`` implements them today; a second backend implements
the same protocols and must pass ``tests/contract/``.

* :class:`Connection` — statements, and the writer discipline: one writer at a time, queued
  fairly (:meth:`Connection.lock_writers`), inside explicit write transactions.
* :class:`Backend` — one kind of database and its capabilities; the store holds one
  (``store.backend``), and services reach it as ``self.backend``.
* :class:`Dialect` — the few SQL fragments that are spelled differently (scalar
  greatest/least, null-safe equality, JSON access) and inserting a row for its new id.
* :class:`Migrator`, :class:`AfterCommit` — the backend's half of the migration engine
  (:mod:`agentkeep.migrations`); each migration carries its SQL per dialect.
* :class:`Search` — full-text search over the indexed text (``backend.search``).
* :class:`Follow` — noticing other processes' commits, for live followers
  (``backend.follow``); a :class:`Watcher` is one such watch.
* :class:`Maintenance` — checks, sizes, space reclamation, online backups, read
  snapshots and the writer lock, for the operations (``agentkeep.ops``); a
  :class:`Snapshot` is one read transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from agentkeep.backends.indexed import Indexed as Indexed
    from agentkeep.config import Config


class Row(Protocol):
    """A result row: by position, slice or column name (``row[0]``, ``row["id"]``)."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Dialect(Protocol):
    """SQL fragments that differ between backends. Each returns SQL text to embed."""

    name: str

    def greatest(self, *exprs: str) -> str:
        """The largest of the arguments (NULL when any is NULL, as in SQLite)."""
        ...

    def least(self, *exprs: str) -> str:
        """The smallest of the arguments (NULL when any is NULL, as in SQLite)."""
        ...

    def same(self, left: str, right: str) -> str:
        """Null-safe equality: true when both are NULL or both are equal."""
        ...

    def json_get(self, expr: str, key: str) -> str:
        """The value at ``key`` (dotted for nested objects: ``input.command``) of the JSON
        object in ``expr``, as SQL text or number."""
        ...

    def is_json(self, expr: str) -> str:
        """True when the text in ``expr`` is well-formed JSON."""
        ...

    def json_array_has(self, expr: str, value: str) -> str:
        """True when the JSON array in ``expr`` holds the text ``value`` (a parameter)."""
        ...

    def json_array_length(self, expr: str, key: str) -> str:
        """How many elements the array at ``key`` (one top-level key) of the JSON object in
        ``expr`` holds: 0 when it is not an array, NULL when the key is missing."""
        ...


class Backend(Protocol):
    """One kind of database: what the store composes its services on. Capabilities that
    are not statements on a connection (full-text search, following new events,
    maintenance, the hook's fast path) are reached from here."""

    name: str

    @property
    def dialect(self) -> Dialect: ...

    @property
    def migrator(self) -> Migrator:
        """The backend's half of the migration engine (:mod:`agentkeep.migrations`)."""
        ...

    @property
    def search(self) -> Search: ...

    @property
    def follow(self) -> Follow: ...

    def maintenance(self, conn: Connection) -> Maintenance:
        """Checks, sizes, space reclamation, snapshots and locks on ``conn``'s database."""
        ...

    @property
    def blobs(self) -> Blobs:
        """Where sealed streams and artifact objects are shared with other machines."""
        ...


class Connection(Protocol):
    """One connection to a store's database, with agentkeep's settings applied."""

    path: Path
    read_only: bool

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Any) -> Any: ...

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one ``INSERT`` and return the new row's id."""
        ...

    def insert_new(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """Run one ``INSERT … ON CONFLICT DO NOTHING``: the new row's id, or None when the
        row existed (nothing was inserted)."""
        ...

    def lock_writers(self) -> None:
        """Queue for the store's writer lock (fair, bounded by the busy timeout)."""
        ...

    def begin_writing(self) -> None:
        """Take the writer lock and begin a write transaction (what ``write_transaction``
        enters with); on failure nothing is held and no transaction is open."""
        ...

    def unlock_writers(self) -> None: ...

    @property
    def in_transaction(self) -> bool: ...

    def now(self) -> str:
        """The time a write transaction stamps, in the store's format (taken under the
        writer lock): the local clock on SQLite, the database's on PostgreSQL."""
        ...

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        ...

    def close(self) -> None: ...


class Migrator(Protocol):
    """What the migration engine (:mod:`agentkeep.migrations`) needs from a backend.

    The engine is dialect-neutral: it picks the pending migrations, takes the writer lock,
    the backup and one transaction per step, and records the step in ``meta``. Each
    migration's SQL comes from its slot for :attr:`dialect`.
    """

    dialect: str

    def table_exists(self, conn: Connection, name: str) -> bool: ...

    def is_empty(self, conn: Connection) -> bool:
        """True for a new database: no table, index, view or trigger at all."""
        ...

    def prepare(self, conn: Connection, *, new: bool) -> None:
        """File-level settings before the first pending step (outside any transaction,
        under the writer lock); ``new``: the database is empty."""
        ...

    def backup(self, conn: Connection, dest: Path) -> None:
        """A consistent, durable copy of the database at ``dest`` (before migrating)."""
        ...

    def transaction(self, conn: Connection) -> AbstractContextManager[Connection]:
        """One write transaction with the writer discipline; rolls back on an exception."""
        ...

    def statements(self, script: str) -> list[str]:
        """A migration script split into statements, each run with ``conn.execute``."""
        ...

    def references_unchecked(self, conn: Connection) -> AbstractContextManager[None]:
        """Entered outside the transaction of a step that rebuilds a referenced table:
        references are not enforced while it runs (the step checks them before COMMIT)."""
        ...

    def dangling_references(self, conn: Connection) -> int:
        """How many rows reference a missing row (inside the step's transaction)."""
        ...


class AfterCommit(Protocol):
    """A migration's step that cannot run inside a transaction (SQLite's VACUUM). It runs
    after the pending steps commit, under the writer lock, and on any later open that
    finds it unfinished (a crash in between): it must be idempotent."""

    def needed(self, conn: Connection) -> bool:
        """Cheap: asked on every open of an up-to-date store."""
        ...

    def run(self, conn: Connection) -> None: ...


# -- full-text search -----------------------------------------------------------------------


class SearchTerm(NamedTuple):
    """One term of a search query, parsed by the search service."""

    text: str  # as typed, without its quotes and trailing ``*``
    tokens: tuple[str, ...]  # its words (runs of letters and digits), in order
    prefix: bool  # the last token matches any word it begins


class Search(Protocol):
    """Full-text search over the indexed tables (messages, notes, tasks, captures,
    artifacts: the :class:`Indexed` the search service declares).

    What every backend gives (``tests/contract/test_search_semantics.py``): a row matches
    when it holds every term; a term matches when its tokens appear in order as whole
    words — the last one as the beginning of a word when the term is a prefix — with case
    and diacritics ignored; nothing in a term is the engine's query syntax, so no input
    is a syntax error. A search finds every row stored before it began: the index follows
    every insert, update and delete in the same transaction, or (a backend that indexes
    some rows after they are stored) :meth:`catch_up` brings it up to date and
    :meth:`rank` looks at whatever it has not indexed yet. Errors are translated into
    :mod:`agentkeep.errors`.
    """

    def behind(self, conn: Connection) -> bool:
        """Whether rows stored are not in the index yet (:meth:`catch_up` has work)."""
        ...

    def catch_up(self, conn: Connection, *, rows: int | None = None) -> int:
        """Index the rows stored since the last catch-up (the oldest ``rows`` of them, or
        all), inside the caller's write transaction; returns how many. Backends that index
        every row in its own transaction return 0."""
        ...

    def rank(
        self,
        conn: Connection,
        source: Indexed,
        terms: Sequence[SearchTerm],
        *,
        session: int | None,
        since: str | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        """``(id, score)`` of the best ``limit`` rows of ``source`` matching ``terms``
        (at least one), best first: a higher score is a better match, and among equal
        scores the newer row (the higher id) comes first. Scores compare only within one
        source. ``session`` keeps that session's rows, ``since`` those whose time column
        is at or after it. When very many rows match, a backend may rank only the newest
        of them (documented where it does)."""
        ...

    def snippets(
        self,
        conn: Connection,
        source: Indexed,
        terms: Sequence[SearchTerm],
        ids: Sequence[int],
        *,
        columns: Sequence[str],
        marks: tuple[str, str],
        ellipsis: str,
        tokens: int,
    ) -> list[Row]:
        """``(id, snippet, *columns)`` for each of ``ids`` that still matches ``terms``
        (a row changed since :meth:`rank` may be missing), in no particular order.
        ``columns`` are portable SQL expressions over the row, aliased ``t``. A snippet is
        the best-matching part of the indexed text, about ``tokens`` words, with each
        match between ``marks`` and ``ellipsis`` where the text was cut; it is not
        cleaned (control characters and escape sequences are the caller's to remove)."""
        ...


# -- bulk bytes shared between machines ------------------------------------------------------


class Blobs(Protocol):
    """Content-addressed bytes every machine of a store can read: the files of sealed
    streams and artifact objects, as stored (compressed).

    The local file under ``.agentkeep/`` stays the first place a reader looks. A backend
    whose database is shared (PostgreSQL) also keeps each such file's bytes in the
    database, written in the same transaction as the row that refers to them, so that a
    machine without the file fetches it into its local copy. A backend whose database is
    local (SQLite) keeps nothing more: its files are the truth, and every method is a
    no-op (``shared`` is False).

    A blob is named by its content: ``objects/<sha256>[.zst]`` for an object,
    ``streams/<sha256>.zst`` for a sealed stream (:func:`agentkeep.services.artifacts.
    blob_name`); the sha256 is the one the row records (of the uncompressed bytes). The
    backend also records the digest of the stored bytes when it stores them and checks
    it on every fetch.
    """

    shared: bool

    def put(self, conn: Connection, name: str, path: Path) -> bool:
        """Store the file at ``path`` under ``name``, inside the caller's write
        transaction. Idempotent: False (nothing written) when ``name`` is stored."""
        ...

    def fetch(self, conn: Connection, name: str, dest: Path) -> bool:
        """Write the bytes stored under ``name`` to the new file ``dest`` (created 0600,
        not fsynced: the caller publishes it). False when nothing is stored under
        ``name``; :class:`~agentkeep.errors.Corrupt` (and ``dest`` removed) when the
        bytes do not match the digest recorded when they were stored."""
        ...

    def exists(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are stored."""
        ...

    def delete(self, conn: Connection, names: Sequence[str]) -> int:
        """Forget ``names`` (inside the caller's write transaction); how many were
        stored. The caller checks that no row refers to them any more."""
        ...

    def sizes(self, conn: Connection) -> tuple[int, int]:
        """``(blobs, stored bytes)`` held in the database."""
        ...


# -- following new events -------------------------------------------------------------------


class Watcher(Protocol):
    """A watch on a store's database for commits made by other connections. It holds no
    read transaction between calls (writers and checkpoints are never held up by it).
    Used as a context manager, or closed with :meth:`close`."""

    def changed(self, timeout: float = 0.0) -> bool:
        """Whether another connection may have added events since the previous call:
        True at the first call; never False when one did (every commit that finished
        before this call began is reported by it or an earlier call); False when nothing
        at all was committed. A commit that added no event may be reported (SQLite's
        watcher sees every commit).

        When nothing changed, it may wait up to ``timeout`` seconds first — for a change
        to arrive, or only to pace a polling caller; a change it waits through is
        reported by this call or the next."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Watcher: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Follow(Protocol):
    """How live followers (``Store.follow``) learn that new events may have been committed
    (SQLite: polling ``PRAGMA data_version``; PostgreSQL: ``LISTEN``/``NOTIFY``)."""

    def watch(self, db_path: Path, config: Config, *, read_only: bool = False) -> Watcher:
        """A new watch on the store's database at ``db_path``, with its own connection
        (the store's settings in ``config``; ``read_only`` for a store opened so: the
        watch then needs no more access than the store has)."""


class Snapshot(Protocol):
    """One read transaction: every query sees the same committed state.

    Held only as long as one operation reads (gc's plan, doctor's listing, an export's
    rows); never across user interaction, so writers and checkpoints are not held up.
    """

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The first column of the first row as an int (0 for no row or NULL)."""
        ...

    def batches(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Iterator[list[Row]]:
        """The result in lists of at most ``size`` rows, never more in memory at once."""
        ...

    def columns(self, table: str) -> list[str]:
        """The stored (not generated) columns of ``table``, in order."""
        ...


class Maintenance(Protocol):
    """What operations (gc, doctor, backup, bundles, ``db check``) need from a backend
    beyond statements: checks, sizes, space reclamation, snapshots and locks.

    Every method translates the driver's errors into :mod:`agentkeep.errors`.
    """

    def integrity(self, *, full: bool) -> list[str]:
        """``["ok"]`` when the database is healthy, else what is wrong (at most a few
        lines). ``full``: every byte (O(size)); otherwise the cheaper structural check.
        A check that cannot even run on a damaged page reports that as its result."""
        ...

    def foreign_key_violations(self) -> list[tuple[str, int, str]]:
        """``(table, row id, missing parent table)`` for every broken reference."""
        ...

    def search_index_gap(self) -> int:
        """How many rows the full-text index should hold but does not (negative: holds
        rows it should not). Rows a backend indexes after capture and has not caught up
        with yet are not a gap. O(rows)."""
        ...

    def pages(self) -> tuple[int, int, int]:
        """``(page_size, page_count, free pages)``."""
        ...

    def table_bytes(self) -> dict[str, int]:
        """Bytes per table, its indexes included (exact); ``{}`` when the backend cannot
        tell. Reads every page, O(size)."""
        ...

    def journal_mode(self) -> str: ...

    def synchronous(self) -> str:
        """The durability level in force (``FULL``, ``NORMAL``…)."""
        ...

    def file_bytes(self) -> tuple[int, int]:
        """``(database file, write-ahead log)`` bytes on disk."""
        ...

    def reclaim(self) -> None:
        """Return free pages to the file system (incremental vacuum, then a checkpoint
        that lets the file shrink)."""
        ...

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database and truncate it."""
        ...

    def backup_to(self, dest: Path) -> None:
        """A consistent online copy of the database to the new file ``dest`` (durable;
        writers keep writing)."""
        ...

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """A read transaction (see :class:`Snapshot`)."""
        ...

    def writer_lock(self) -> AbstractContextManager[None]:
        """Hold the writer queue lock: no write transaction starts until it is left."""
        ...

    def note_damage(self, error: Any) -> None:
        """Record corruption met by an operation: writes are refused from then on."""
        ...


def __getattr__(name: str) -> Any:
    """:class:`~agentkeep.backends.indexed.Indexed`, defined apart so that the commands
    that do not search (``status``) do not build its dataclass at start-up."""
    if name == "Indexed":
        from agentkeep.backends.indexed import Indexed

        return Indexed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
