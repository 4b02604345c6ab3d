"""The PostgreSQL backend: connections, the writer discipline and error translation.

Every connection comes from :func:`connect` and gets the same settings:

* autocommit at the driver level; every write is an explicit ``BEGIN … COMMIT``
  (the same :class:`~agentkeep.backends.sqlite.connection.write_transaction` as on SQLite,
  which sends ``BEGIN IMMEDIATE``; here it means ``BEGIN``).
* ``search_path`` set to the store's schema (:mod:`.url`), so the portable SQL names its
  tables unqualified; ``lock_timeout`` from ``store.busy_timeout_ms``.
* client-side parameter binding (psycopg's ``ClientCursor``): the portable SQL's ``?`` are
  turned into ``%s`` and the values are quoted as literals, which PostgreSQL types from
  their context as SQLite would (server-side binding cannot type ``? IS NULL``). Python
  booleans are sent as 0/1 (the schema stores flags as integers, as on SQLite); ``numeric``
  results (``sum()`` of integers) come back as ``int`` when whole, else ``float``.
* ``prepare_threshold=None``: no server-side prepared statements, so the store works
  through a transaction-mode pooler (docs/team.md).

The writer discipline. Writers queue on a session-level advisory lock keyed by the store's
schema (:meth:`Connection.lock_writers`), taken before ``BEGIN`` and released after
``COMMIT``, exactly where SQLite's writers take their lock file. It serialises write
transactions per store, and that is what keeps the events ledger totally ordered: an
identity value is allocated at insert, so two concurrent transactions could commit seq 11
before seq 10, and a follower that had read up to 11 would never see 10. With one writer
at a time, seq values commit in order. Readers never take the lock.

A lost connection (the server restarted, a network drop) is reconnected on the next
statement outside a transaction; inside one, the statement fails with :class:`Busy`
(retryable: the transaction was rolled back by the server) — with idempotency keys, a
retry stores the write once. While the server is still away the reconnect fails with
:class:`Busy` too, and the next statement tries again.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path, PosixPath
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus

from agentkeep.backends.postgres.dialect import DIALECT
from agentkeep.backends.postgres.url import redacted, split_url
from agentkeep.errors import (
    AgentkeepError,
    Busy,
    Corrupt,
    InvalidInput,
    StorageError,
    StorageFull,
    UsedAcrossFork,
)
from agentkeep.timeutil import _text as _time_text

# The writer lock is the advisory lock whose key is the store's schema name hashed with
# this seed (``hashtextextended(schema, seed)``): one lock per store in a database.
_LOCK_SEED = 0x616B6B70  # "akkp"


def writer_lock_key_sql() -> tuple[str, int]:
    """SQL for the writer lock's key, with its one ``?`` for the schema name, and the seed
    parameter after it (for maintenance's ``writer_lock``)."""
    return "hashtextextended(?, ?)", _LOCK_SEED


class Location(PosixPath):
    """Where a PostgreSQL store lives, for messages: ``str()`` is its URL (no password).
    A path because the ``Connection`` protocol's ``path`` is one."""

    _url: str

    def __str__(self) -> str:
        return self._url

    @property
    def name(self) -> str:
        return self._url


def location(url: str) -> Location:
    place = Location("/postgresql")
    place._url = redacted(url)
    return place


class _BoolAsInt(Dumper):
    """Python booleans as 0/1: flags are integer columns, as on SQLite."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: Any) -> bytes:
        return self.dump(obj)


class _IntAsBigint(Dumper):
    """Python ints as ``bigint`` literals: the schema's integers are all bigint, and an
    untyped ``2`` is an ``integer`` that a recursive query's ``UNION`` refuses to mix."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return str(int(obj)).encode()

    def quote(self, obj: Any) -> bytes:
        value = int(obj)
        if not -(2**63) <= value < 2**63:
            raise InvalidInput(f"the number {value} is too large to store (at most 2^63 - 1)")
        return b"(%d::int8)" % value


class _Numeric(Loader):
    """``numeric`` results (``sum()`` over integers) as int when whole, else float — what
    SQLite returns, and what JSON output can hold."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if text.lstrip("-").isdigit():
            return int(text)
        return float(text)


class _Row(tuple):  # type: ignore[type-arg]
    """A result row like ``sqlite3.Row``: by position, slice or column name, with keys()."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


_ROW_CLASSES: dict[tuple[str, ...], type[_Row]] = {}


def _row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    names = tuple(column.name for column in description)
    cls = _ROW_CLASSES.get(names)
    if cls is None:
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)
        cls = type("Row", (_Row,), {"__slots__": (), "_index": index})
        _ROW_CLASSES[names] = cls
    return cls


_INSERT_INTO = re.compile(r"\s*INSERT\s+INTO\s+([A-Za-z_][A-Za-z0-9_]*)", re.I)
_KEYS: dict[str, str] = {}  # table -> its primary key column (the same in every store)
_TRANSLATED: dict[str, tuple[str, tuple[int, ...] | None]] = {}
_SPECIAL = {"BEGIN IMMEDIATE": "BEGIN"}
# Tokens the translation looks at: quoted strings and identifiers and comments (kept as
# they are), placeholders, `%`, and the column name `offset` (lower case; the keyword is
# written OFFSET), which PostgreSQL reserves and the schema quotes.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?\d*|%|\boffset\b")


def translate(sql: str) -> tuple[str, tuple[int, ...] | None]:
    """The portable SQL's placeholders as psycopg's ``%s`` (and ``%`` as ``%%``), and for
    numbered ones (``?1``, ``?2``: SQLite's) the order of the parameters they take; ``?``
    inside quotes and comments is left alone. Cached: the statements are few."""
    done = _TRANSLATED.get(sql)
    if done is None:
        special = _SPECIAL.get(sql)
        if special is not None:
            done = (special, None)
        else:
            order: list[int] = []

            def swap(match: re.Match[str]) -> str:
                token = match.group(0)
                if token.startswith("?"):
                    if len(token) > 1:
                        order.append(int(token[1:]) - 1)
                    return "%s"
                if token == "%":
                    return "%%"
                if token == "offset":
                    return '"offset"'
                return token.replace("%", "%%")

            text = _TOKENS.sub(swap, sql)
            done = (text, tuple(order) if order else None)
        if len(_TRANSLATED) < 4096:
            _TRANSLATED[sql] = done
    return done


def _params(params: Any, order: tuple[int, ...] | None) -> Any:
    if isinstance(params, dict):
        raise InvalidInput("named parameters are not portable SQL; use ?")
    values = tuple(params)
    if order is not None:
        return tuple(values[i] for i in order)
    return values


class Connection:
    """One PostgreSQL connection with agentkeep's settings (see the module docstring)."""

    backend_name = "postgres"

    def __init__(self, url: str, *, read_only: bool, busy_timeout_ms: int) -> None:
        self.url = url
        self.conninfo, self.schema = split_url(url)
        self.path: Path = location(url)
        self.read_only = read_only
        self.busy_timeout_ms = busy_timeout_ms
        self.dialect = DIALECT
        self.guard: Any = None  # no high-water file: PostgreSQL keeps its own WAL
        self.damage: Corrupt | None = None
        self._lock_depth = 0
        self._failed: AgentkeepError | None = None  # the first error of the open transaction
        self._xact_lock = False  # the writer lock held is begin_writing's transaction lock
        self._clock: str | None = None  # begin_writing's clock reading, for the next now()
        self._pid = os.getpid()
        self._closed = False  # close() was called: never reconnect
        self._conn = self._connect()

    # -- the connection ----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                prepare_threshold=None,
                cursor_factory=psycopg.ClientCursor,
                row_factory=_row_factory,
                application_name="agentkeep",
                connect_timeout=10,
                # A machine that vanishes (sleep, a network drop) must not hold the writer
                # lock for ever: the server notices a dead peer within about a minute …
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot connect to the store's PostgreSQL at {redacted(self.url)}: "
                f"{_first_line(exc)}",
                hint="check the server is up and the URL; passwords come from PGPASSWORD or "
                "~/.pgpass",
            ) from exc
        conn.adapters.register_dumper(bool, _BoolAsInt)
        conn.adapters.register_dumper(int, _IntAsBigint)
        conn.adapters.register_loader("numeric", _Numeric)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('search_path', %s, false),"
                    " set_config('lock_timeout', %s, false),"
                    " set_config('default_transaction_read_only', %s, false),"
                    " set_config('client_min_messages', 'warning', false),"
                    # … and ends a session idle inside a transaction (a stopped process
                    # holding the lock) after a minute; agentkeep's transactions take ms.
                    " set_config('idle_in_transaction_session_timeout', '60s', false)",
                    (
                        f'"{self.schema}"',
                        f"{self.busy_timeout_ms}ms",
                        "on" if self.read_only else "off",
                    ),
                )
        except psycopg.Error as exc:
            conn.close()
            raise self._translated(exc) from exc
        return conn

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection, reconnected if it was lost outside a transaction."""
        if self._pid != os.getpid():
            raise UsedAcrossFork(
                "this connection to the store's PostgreSQL was opened before fork() and "
                "cannot be used in the child process",
                hint="open the store again in the child (agentkeep.open())",
            )
        conn = self._conn
        # Closed here means lost (psycopg found the session gone, or unlock_writers gave
        # up on it), unless close() was called.
        if conn.closed and self._lock_depth == 0 and not self._closed:
            try:
                self._conn = conn = self._connect()
            except StorageError as exc:  # still away: retryable, and tried again next time
                raise Busy(
                    f"lost the connection to the store's PostgreSQL and cannot reconnect yet: "
                    f"{exc.message}",
                    hint="the server may be restarting; retry once it is reachable",
                ) from exc
        return conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    # -- statements --------------------------------------------------------------------

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._clock = None
        raw = self.raw
        if sql.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            if sql == "BEGIN IMMEDIATE" and self.in_transaction:
                # PostgreSQL only warns, and the inner COMMIT would then commit the outer
                # transaction's work so far: refuse, as SQLite does.
                raise StorageError(
                    "cannot start a transaction within a transaction",
                    hint="write inside the open transaction, or after it ends",
                )
            self._failed = None
        # A session lost while idle (a server restart) is found by its next statement: a
        # read or BEGIN outside any transaction and writer lock is sent once more on a new
        # session, so a follower's catch-up read after a restart does not fail with Busy.
        resend = self._lock_depth == 0 and raw.info.transaction_status == TransactionStatus.IDLE
        try:
            text, order = translate(sql)
            try:
                return raw.execute(text, _params(params, order))
            except psycopg.OperationalError:
                if not (resend and raw.broken and _RESENDABLE.match(text)):
                    raise
                return self.raw.execute(text, _params(params, order))
        except psycopg.Error as exc:
            raise self._failure(exc) from exc
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"text that is not valid Unicode cannot be stored ({exc})") from exc

    def _failure(self, exc: psycopg.Error) -> AgentkeepError:
        """The error to raise for ``exc``. A failed statement aborts a PostgreSQL
        transaction and every later statement fails with InFailedSqlTransaction (SQLite
        carries on): those report the first failure instead, which is the one to fix."""
        if isinstance(exc, pg_errors.InFailedSqlTransaction) and self._failed is not None:
            return self._failed
        error = self._translated(exc)
        if self.in_transaction:
            self._failed = error
        return error

    def executemany(self, sql: str, rows: Any) -> Any:
        raw = self.raw
        try:
            cursor = raw.cursor()
            text, order = translate(sql)
            cursor.executemany(text, [_params(r, order) for r in rows])
            return cursor
        except psycopg.Error as exc:
            raise self._failure(exc) from exc
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"text that is not valid Unicode cannot be stored ({exc})") from exc

    def insert(self, sql: str, params: Any = ()) -> int:
        row = self.execute(f"{sql} RETURNING {self._key_of(sql)}", params).fetchone()
        return int(row[0])

    def insert_new(self, sql: str, params: Any = ()) -> int | None:
        row = self.execute(f"{sql} RETURNING {self._key_of(sql)}", params).fetchone()
        return None if row is None else int(row[0])

    def _key_of(self, sql: str) -> str:
        """The integer primary key of the table an INSERT names (SQLite's rowid: ``id``
        for most tables, ``seq`` for events), read from the catalog once."""
        match = _INSERT_INTO.match(sql)
        if match is None:
            raise StorageError(f"not an INSERT statement: {sql[:60]!r}")
        table = match.group(1)
        key = _KEYS.get(table)
        if key is None:
            rows = self.execute(
                "SELECT a.attname, a.atttypid = 'int8'::regtype FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
                " WHERE i.indrelid = to_regclass(?) AND i.indisprimary",
                (table,),
            ).fetchall()
            # A table keyed otherwise (idempotency_keys, task_deps): SQLite's rowid is
            # meaningless there and callers only ask whether a row was inserted.
            key = str(rows[0][0]) if len(rows) == 1 and rows[0][1] else "1"
            _KEYS[table] = key
        return key

    def name_columns(self) -> None:
        """Rows are always addressable by name here (sqlite3 needs a row factory)."""

    def now(self) -> str:
        """The database's clock in the store's timestamp format: every machine writing to
        one PostgreSQL stamps (and judges leases) by the same clock."""
        if self._clock is not None:  # read by begin_writing, and no statement since
            now, self._clock = self._clock, None
            return now
        row = self.execute(f"SELECT {_CLOCK}").fetchone()
        return _time_text(int(row[0]))

    def rollback(self) -> None:
        self._failed = None
        conn = self._conn
        if not conn.closed and self.in_transaction:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    def close(self) -> None:
        self._closed = True
        if self._pid == os.getpid():
            self._conn.close()

    # -- the writer discipline ---------------------------------------------------------

    def lock_writers(self) -> None:
        """Queue for the store's writer lock (a session advisory lock), or raise Busy.
        Re-entrant: a migration holds it across its transactions."""
        if self._lock_depth:
            self._lock_depth += 1
            return
        self.execute("SELECT pg_advisory_lock(hashtextextended(?, ?))", (self.schema, _LOCK_SEED))
        self._lock_depth = 1

    def begin_writing(self) -> None:
        """``lock_writers()`` + ``BEGIN`` (what ``write_transaction`` does) in one round trip,
        reading the database's clock for the transaction's first :meth:`now` in it too.

        Outside any lock, the writer lock is taken as a transaction-level advisory lock
        (``pg_advisory_xact_lock``, the same key, so it queues with the session-level one)
        right after ``BEGIN``: COMMIT or ROLLBACK releases it, after the commit is visible,
        so seq still commits in order — and a write costs three round trips (this, its
        statements, COMMIT) instead of six (lock, BEGIN, clock, …, COMMIT, unlock). Each one
        is held under the lock, so with many writers on a loaded machine they are what
        the store's throughput is divided by. Holding the session lock already (a
        migration), it is ``lock_writers()`` and ``BEGIN`` as before. On failure nothing is
        held and no transaction is open."""
        if self._lock_depth:
            self.lock_writers()
            try:
                self.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.unlock_writers()
                raise
            return
        # as execute("BEGIN IMMEDIATE") refuses it (self.raw first: a lost session, whose
        # status is unknown, is replaced here)
        if self.raw.info.transaction_status != TransactionStatus.IDLE:
            raise StorageError(
                "cannot start a transaction within a transaction",
                hint="write inside the open transaction, or after it ends",
            )
        try:
            cursor = self.execute(
                f"BEGIN; SELECT pg_advisory_xact_lock(hashtextextended(?, ?)); SELECT {_CLOCK}",
                (self.schema, _LOCK_SEED),
            )
            cursor.nextset()
            cursor.nextset()
            clock = _time_text(int(cursor.fetchone()[0]))
        except BaseException:
            self.rollback()  # a lock timeout leaves the transaction aborted
            raise
        self._lock_depth = 1
        self._xact_lock = True
        self._clock = clock

    def unlock_writers(self) -> None:
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._xact_lock:
            self._xact_lock = False
            conn = self._conn
            if not conn.closed and self.in_transaction:
                conn.close()  # COMMIT/ROLLBACK did not end it: the session holds the lock
            return
        if self._lock_depth == 0:
            conn = self._conn
            if conn.closed:
                return  # the server released it with the session
            try:
                conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, %s))",
                    (self.schema, _LOCK_SEED),
                )
            except psycopg.Error:
                conn.close()  # a session whose lock state is unknown is not reused

    def note_damage(self, error: Corrupt) -> None:
        self.damage = error

    # -- errors ------------------------------------------------------------------------

    def _translated(self, exc: psycopg.Error) -> AgentkeepError:
        return translate_error(exc, self.url)


_CLOCK = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"  # ms since the epoch
_RESENDABLE = re.compile(r"\s*(SELECT|BEGIN)\b", re.IGNORECASE)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def translate_error(exc: psycopg.Error, url: str) -> AgentkeepError:
    """Map a psycopg exception to agentkeep's error tree (by SQLSTATE class)."""
    where = redacted(url)
    text = _first_line(exc)
    if isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
        return Busy(
            f"the store at {where} is locked by other writers ({text})",
            hint="another agentkeep command is writing; retry, or raise store.busy_timeout_ms",
        )
    if isinstance(
        exc,
        pg_errors.SerializationFailure | pg_errors.DeadlockDetected | pg_errors.AdminShutdown,
    ):
        return Busy(f"the write to {where} was interrupted ({text})", hint="retry it")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return Busy(
            f"lost the connection to the store's PostgreSQL at {where} ({text})",
            hint="the transaction was not stored; retry once the server is reachable",
        )
    if isinstance(exc, pg_errors.DiskFull | pg_errors.OutOfMemory):
        return StorageFull(f"PostgreSQL at {where} is out of space ({text})", hint="free space")
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return InvalidInput(f"a referenced record does not exist ({text})")
    if isinstance(exc, pg_errors.IntegrityConstraintViolation):
        return InvalidInput(f"the record breaks a rule of the schema ({text})")
    if isinstance(exc, pg_errors.DataError):
        return InvalidInput(f"a value does not fit the schema ({text})")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction | pg_errors.InsufficientPrivilege):
        return StorageError(
            f"the store at {where} cannot be written by this role ({text})",
            hint="ask the database owner for write privileges on agentkeep's schema",
        )
    if isinstance(exc, pg_errors.DataCorrupted | pg_errors.IndexCorrupted):
        return Corrupt(f"PostgreSQL reports damage in the store at {where} ({text})")
    return StorageError(f"database error on {where}: {type(exc).__name__}: {text}")


def connect(url: str, *, read_only: bool = False, busy_timeout_ms: int = 5000) -> Connection:
    """A new connection to the store at ``url`` (see the module docstring)."""
    return Connection(url, read_only=read_only, busy_timeout_ms=busy_timeout_ms)
