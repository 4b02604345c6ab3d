"""The library's write transaction (:class:`Tx`) and the store's shared state (:class:`StoreBase`).

Every value that reaches the database passes :meth:`Tx.bind`, inside the write
transaction, which hands it to the one privacy boundary (:mod:`agentkeep.boundary`, in
REFUSE mode: library input is the caller's to fix): text is validated (UTF-8, no NUL, size
cap) and redacted; JSON values are redacted structurally, then serialised (NaN/Infinity
refused). Any failure — including the redactor's own — raises before COMMIT, so nothing is
half-written and nothing unredacted is stored (fail-closed, principle 5 of docs/design.md). Each
redaction is recorded in ``redactions`` (rule, table, row, column, count; never the value)
in the same transaction.

Every mutation writes its event row through :meth:`Tx.emit` in the same transaction
(principle 4).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.backends import backend_of
from agentkeep.backends.base import Backend, Cursor, Row
from agentkeep.backends.sqlite.connection import Connection, write_transaction
from agentkeep.boundary import REFUSE, Boundary
from agentkeep.config import Config
from agentkeep.errors import AgentkeepError, InvalidInput, NotFound

if TYPE_CHECKING:
    from types import TracebackType

    from agentkeep.models import Event


class _Unset:
    """Marks an update argument the caller did not pass (None is a real value)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


class Json:
    """Wraps a value to be stored as JSON text (redacted structurally first)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class PreparedJson:
    """A JSON value serialised and redacted ahead of its transaction (:meth:`Tx.prepare_json`):
    the document to store, the redactions made (rule, column, count), and the value as
    stored (the document parsed back)."""

    __slots__ = ("doc", "redactions", "value")

    def __init__(self, doc: str, redactions: list[tuple[str, str, int]], value: Any) -> None:
        self.doc = doc
        self.redactions = redactions
        self.value = value


_INSERT_SQL: dict[tuple[str, tuple[str, ...]], str] = {}
_EVENT: type[Event] | None = None


def _event_class() -> type[Event]:
    """The Event noun, imported when the first one is built (the nouns' module is not
    imported by commands that build none); kept, as an import statement per event costs
    about a microsecond."""
    global _EVENT
    from agentkeep.models import Event

    _EVENT = Event
    return Event


def check_identifier(what: str, value: str | None) -> str | None:
    """Refuse an identifier (idempotency key, external id, name) the redactor would change.

    Identifiers are looked up as given; storing a redacted form would make the retry of a
    write miss its first attempt, and two different secret-shaped keys collide.
    """
    return Boundary(REFUSE).ident(what, value)


# Tables keyed by something other than an integer id: the redaction audit names no row.
_WITHOUT_ROWID = frozenset({"idempotency_keys", "task_deps", "meta"})


class Tx:
    """One write transaction: validated, redacted binds; inserts, updates, events.

    Library input is the caller's, who can fix it: the boundary runs in REFUSE mode
    (NUL, invalid UTF-8, NaN/Infinity, oversize and secret-shaped identifiers raise
    InvalidInput; secrets in text are redacted)."""

    def __init__(self, conn: Connection, *, actor: str, max_field_bytes: int) -> None:
        self.conn = conn
        self.actor = actor
        self.max_field_bytes = max_field_bytes
        self.now = ""  # set when the transaction has begun
        self.boundary = Boundary(REFUSE, max_field_bytes=max_field_bytes)

    # -- binding: the choke point -------------------------------------------------------

    def bind(self, name: str, value: Any) -> Any:
        """Validate and redact one value bound for column ``name``."""
        if isinstance(value, Json):
            return self.boundary.json(name, value.value)
        if value is self.now:
            return value  # this transaction's own timestamp, not input
        return self.boundary.bind(name, value)

    def bind_json_batch(self, name: str, values: Sequence[Any]) -> list[str]:
        """Bind many JSON values, pre-checking all their documents in one pass."""
        return self.boundary.json_batch(name, values)

    def prepare_json(self, name: str, value: Any) -> PreparedJson | None:
        """Serialise and redact a JSON value for :meth:`emit` before the transaction
        begins, so that work is not done while this process holds the writers' queue
        (with 8 writers it was most of the time each held it). None when the value is
        refused: bound inside the transaction, it then raises where it always did."""
        boundary = Boundary(REFUSE, max_field_bytes=self.max_field_bytes)
        try:
            doc = boundary.json(name, value)
            return PreparedJson(doc, boundary.pending, json.loads(doc))
        except Exception:  # raised again, where it always was, by the bind in the transaction
            return None

    def add_redactions(self, column: str, counts: Mapping[str, int]) -> None:
        """Count redactions made outside ``bind`` (file contents) for the next record."""
        self.boundary.add(column, dict(counts))

    def record_redactions(self, table: str, row_id: int | None) -> None:
        self.boundary.record(self.conn, table, row_id, self.now)

    # -- statements ---------------------------------------------------------------------

    def insert(self, table: str, values: Mapping[str, Any]) -> int:
        columns = tuple(values)
        params = [self.bind(column, values[column]) for column in columns]
        sql = _INSERT_SQL.get((table, columns))
        if sql is None:
            sql = _INSERT_SQL[table, columns] = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
        row_id = self.conn.insert(sql, params)
        self.record_redactions(table, None if table in _WITHOUT_ROWID else row_id)
        return row_id

    def update(
        self, table: str, row_id: int, values: Mapping[str, Any], *, key: str = "id"
    ) -> None:
        if not values:
            return
        assignments = ", ".join(f"{column} = ?" for column in values)
        params = [self.bind(column, value) for column, value in values.items()]
        self.conn.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", [*params, row_id])
        self.record_redactions(table, row_id)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run a statement whose parameters are bound through the choke point too."""
        bound = [self.bind("?", value) for value in params]
        cursor = self.conn.execute(sql, bound)
        self.record_redactions("?", None)
        return cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def row(self, table: str, row_id: int) -> Row:
        """The row ``row_id`` of ``table``, which this transaction knows exists."""
        found = self.one(f"SELECT * FROM {table} WHERE id = ?", (row_id,))
        if found is None:
            raise NotFound(f"{table} row {row_id} does not exist")
        return found

    def emit(
        self,
        entity: str,
        entity_id: int | None,
        kind: str,
        data: Any,
        *,
        undoes: int | None = None,
        actor: str | None = None,
        prepared: PreparedJson | None = None,
    ) -> Event:
        """Append the event for a mutation made in this transaction, and return it.
        ``prepared``: ``data`` as :meth:`prepare_json` prepared it."""
        seq, values = self.boundary.event(
            self.conn,
            now=self.now,
            actor=actor or self.actor,
            entity=entity,
            entity_id=entity_id,
            kind=kind,
            data=data,
            undoes=undoes,
            prepared=None if prepared is None else (prepared.doc, prepared.redactions),
        )
        at, bound_actor, bound_entity, _, bound_kind, doc, _ = values
        stored = json.loads(doc) if prepared is None else prepared.value
        return (_EVENT or _event_class())(
            seq, at, bound_actor, bound_entity, entity_id, bound_kind, stored, undoes
        )

    # -- idempotency --------------------------------------------------------------------

    def existing_for_key(self, key: str | None, entity: str) -> int | None:
        if key is None:
            return None
        check_identifier("the idempotency key", key)
        row = self.one("SELECT entity, entity_id FROM idempotency_keys WHERE key = ?", (key,))
        if row is None:
            return None
        if row["entity"] != entity:
            raise InvalidInput(
                f"idempotency key {key!r} was already used for a {row['entity']}, not a {entity}",
                hint="use a distinct key per write",
            )
        return int(row["entity_id"])

    def remember_key(self, key: str | None, entity: str, entity_id: int) -> None:
        if key is not None:
            self.insert(
                "idempotency_keys",
                {"key": key, "entity": entity, "entity_id": entity_id, "created_at": self.now},
            )


class StoreBase:
    """The store's state (connection, backend, settings, actor) and the read plumbing
    its services share (:class:`~agentkeep.services.base.Service`); see
    :class:`agentkeep.store.Store`."""

    def __init__(
        self,
        conn: Connection,
        *,
        store_dir: Path,
        config: Config,
        actor: str,
        refusal: AgentkeepError | None = None,
    ) -> None:
        conn.name_columns()
        self._conn = conn
        self.backend: Backend = backend_of(conn)
        self.store_dir = store_dir
        self.root = store_dir.parent
        self.config = config
        self.actor = actor
        # Why writes are refused (a newer schema, or opened read-only); None: writable.
        self._refusal = refusal
        self._max_field: int = config["store.max_field_bytes"]
        self._joined: Tx | None = None  # the transaction _joined_writes() holds open

    @property
    def writable(self) -> bool:
        return self._refusal is None

    @property
    def db_path(self) -> Path:
        return self._conn.path

    @property
    def db_files(self) -> tuple[Path, ...]:
        """The local files holding the database (SQLite's file and its WAL), for caches
        keyed on their stat; none for a database on a server."""
        path = self._conn.path
        if self.backend.name != "sqlite":
            return ()
        return (path, path.with_name(path.name + "-wal"))

    def check_writable(self) -> None:
        """Raise why this store refuses writes (read-only, a newer schema, damage), if it
        does: for work that must not start at all on such a store."""
        if self._refusal is not None:
            raise self._refusal

    def capture_writer(self, tx: Tx, *, policy: str | None = None) -> Any:
        """A :class:`agentkeep.capture.Writer` inside ``tx``: the one way captured agent
        data (hook deliveries, transcripts, import cursors) is written."""
        from agentkeep.capture import Writer

        return Writer(
            tx.conn,
            str(self.root),
            policy=policy or self.config["capture.policy"],
            actor=tx.actor,
            max_field_bytes=tx.max_field_bytes,
            now=tx.now,
        )

    def transaction(self, *, actor: str | None = None) -> _Transaction:
        """A ``BEGIN IMMEDIATE`` write transaction yielding a :class:`Tx`; commits on
        success, rolls back on error."""
        self.check_writable()
        joined = self._joined
        if joined is not None and (actor is None or actor == joined.actor):
            return _Joined(self._conn, joined)
        return _Transaction(
            self._conn, Tx(self._conn, actor=actor or self.actor, max_field_bytes=self._max_field)
        )

    def _joined_writes(self) -> _JoinedWrites:
        """One write transaction for every :meth:`transaction` opened inside (same actor):
        several writes that belong together cost one commit (one WAL fsync) instead of one
        each, and all of them are stored or none."""
        return _JoinedWrites(self)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._conn.execute(sql, params).fetchall())

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def _record(self, noun: str, ident: object, *, column: str = "id") -> Row:
        """The row of a ``noun`` by id (or another unique column), or NotFound.

        Inside a transaction this reads the transaction's own state: Tx shares the
        connection.
        """
        table, listing = _NOUNS[noun]
        row = self._row(f"SELECT * FROM {table} WHERE {column} = ?", (ident,))
        if row is None:
            raise NotFound(
                f"{noun} {ident} does not exist", hint=f"`agentkeep {listing}` shows the {table}"
            )
        return row

    def _require(self, **ids: int | None) -> None:
        """Raise NotFound for a referenced id (task_id=…, session_id=…) that does not exist."""
        for column, value in ids.items():
            if value is not None:
                self._record(column.removesuffix("_id"), value)

    def _count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The first column of the first row of a query returning one number."""
        row = self._row(sql, params)
        return int(row[0]) if row is not None and row[0] is not None else 0


# noun -> (table, the command that lists them)
_NOUNS = {
    "task": ("tasks", "tasks list"),
    "note": ("notes", "notes list"),
    "session": ("sessions", "sessions"),
    "agent": ("agents", "agents"),
    "worktree": ("worktrees", "worktrees"),
    "integration": ("integrations", "status"),
    "artifact": ("artifacts", "artifacts list"),
    "stream": ("streams", "logs"),
}


class _Transaction(write_transaction):
    __slots__ = ("tx",)

    def __init__(self, conn: Connection, tx: Tx) -> None:
        super().__init__(conn)
        self.tx = tx

    def __enter__(self) -> Tx:  # type: ignore[override]
        super().__enter__()
        try:
            # Stamped inside the write lock, so `at` follows commit order (seq) across
            # processes.
            self.tx.now = self.conn.now()
        except BaseException as exc:  # e.g. Ctrl-C: __exit__ would not run otherwise
            super().__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self.tx


class _JoinedWrites:
    """:meth:`StoreBase._joined_writes`: the enclosing transaction."""

    __slots__ = ("outer", "previous", "store")

    def __init__(self, store: StoreBase) -> None:
        self.store = store
        self.outer = store.transaction()
        self.previous: Tx | None = None

    def __enter__(self) -> Tx:
        tx = self.outer.__enter__()
        self.previous, self.store._joined = self.store._joined, tx
        return tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store._joined = self.previous
        self.outer.__exit__(exc_type, exc, tb)


class _Joined(_Transaction):
    """A transaction inside :meth:`StoreBase._joined_writes`: a savepoint in the enclosing
    one, with its Tx. An exception undoes this one's writes (all or none, as on its own);
    the enclosing transaction commits the rest."""

    __slots__ = ()

    def __enter__(self) -> Tx:  # type: ignore[override]
        self.conn.execute("SAVEPOINT joined")
        return self.tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK TO joined")
        if self.conn.in_transaction:
            self.conn.execute("RELEASE joined")


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the fields whose value changes (an update event's data)."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def limit_clause(limit: int | None) -> str:
    if limit is None or limit <= 0:
        return ""
    return f" LIMIT {int(limit)}"
