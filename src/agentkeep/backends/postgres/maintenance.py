"""PostgreSQL's side of :class:`agentkeep.backends.base.Maintenance`: checks, sizes, space
reclamation, read snapshots and the writer lock, over one store's schema
(docs/postgres-maintenance.md says what each means on a shared server).

* **Checks.** The cheap check reads the catalogs: every table, index and trigger the
  store's migrations created (their PostgreSQL scripts, parsed) still exists, no trigger is
  disabled (a disabled foreign-key or bookkeeping trigger silently stops enforcing), no
  index is invalid, no constraint is left unvalidated, and ``meta`` is readable. The full
  check adds amcheck (``verify_heapam`` on every table, ``bt_index_check`` with
  ``heapallindexed`` on every btree index) when the extension is installed or can be
  created, else it reads every row of every table with its TOASTed values; what ran is in
  :attr:`PostgresMaintenance.checked`. PostgreSQL enforces foreign keys itself, but not
  while their triggers are disabled or under ``session_replication_role = replica``, so
  :meth:`~PostgresMaintenance.foreign_key_violations` looks for orphans anyway.
* **Sizes** are the relations of the store's schema (tables with their indexes and TOAST,
  and the identity sequences): ``pg_total_relation_size``, exact and cheap (file sizes,
  not a read of every page). There is no write-ahead log of the store's own: PostgreSQL's
  WAL is the server's, shared by every database on it, so it counts 0 here.
* **Space.** :meth:`~PostgresMaintenance.reclaim` runs ``VACUUM (ANALYZE)`` on the
  schema's tables: dead rows' space goes to PostgreSQL's free space map for new rows, and
  empty pages at a table's end go back to the file system. Never ``VACUUM FULL``: it
  rewrites each table under an exclusive lock that stops every reader and writer of the
  team's store for as long as the copy takes, and needs room for a second copy.
* **Snapshots** are ``REPEATABLE READ READ ONLY`` transactions on a connection of their
  own, so a long read never sits in the store connection's way.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from agentkeep.backends.postgres.connection import (
    Connection,
    _params,
    connect,
    translate,
    translate_error,
)
from agentkeep.backends.reads import ConnectionReads
from agentkeep.errors import AgentkeepError, Corrupt

# Problems listed per kind before "… and N more" (the protocol wants a few lines).
_MAX_LINES = 20
# Orphans listed per foreign key: enough to act on, bounded on a badly broken store.
_MAX_ORPHANS = 100

_cursor_names = itertools.count(1)


class Snapshot(ConnectionReads):
    """One read transaction: every query sees the same committed state (see
    :class:`agentkeep.backends.base.Snapshot`). Reads through the connection's
    translating ``execute``; :meth:`batches` streams through a server-side cursor."""

    __slots__ = ()
    _conn: Connection  # this backend's own

    def batches(self, sql: str, params: Sequence[Any] = (), *, size: int) -> Iterator[list[Any]]:
        # The connection's cursors hold a whole result in memory: a cursor declared in
        # the snapshot's transaction is fetched ``size`` rows at a time instead. Its query
        # is bound client-side first (mogrify), as every statement of the store is.
        conn = self._conn
        raw = conn.raw
        name = f"agentkeep_batches_{next(_cursor_names)}"
        try:
            text, order = translate(sql)
            query = psycopg.ClientCursor(raw).mogrify(text, _params(params, order))
            raw.execute(f'DECLARE "{name}" NO SCROLL CURSOR FOR {query}')
        except psycopg.Error as exc:
            raise translate_error(exc, conn.url) from exc
        fetch = f'FETCH FORWARD {int(size)} FROM "{name}"'
        try:
            while True:
                try:
                    batch = raw.execute(fetch).fetchall()
                except psycopg.Error as exc:
                    raise translate_error(exc, conn.url) from exc
                if not batch:
                    return
                yield batch
        finally:
            with contextlib.suppress(psycopg.Error):
                raw.execute(f'CLOSE "{name}"')

    def columns(self, table: str) -> list[str]:
        """The stored columns of ``table`` in order (generated ones left out, as SQLite's
        ``table_info`` leaves them out: a copy must not carry them)."""
        rows = self._conn.execute(
            "SELECT a.attname FROM pg_attribute a"
            " WHERE a.attrelid = to_regclass(quote_ident(?) || '.' || quote_ident(?))"
            " AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''"
            " ORDER BY a.attnum",
            (self._conn.schema, table),
        ).fetchall()
        return [str(row[0]) for row in rows]


@contextlib.contextmanager
def _read_transaction(conn: Connection) -> Iterator[Snapshot]:
    if conn.in_transaction:
        # Inside a write transaction of the same store: read what it has written so far.
        yield Snapshot(conn)
        return
    own = connect(conn.url, read_only=True, busy_timeout_ms=conn.busy_timeout_ms)
    try:
        own.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        own.execute("SELECT 1")  # the snapshot is taken here, not at the first read
        yield Snapshot(own)
    finally:
        own.rollback()  # a read transaction: nothing to lose
        own.close()


# -- what the migrations created ----------------------------------------------------------


@dataclass
class Expected:
    """The tables, indexes and triggers a store's migration scripts leave behind."""

    tables: set[str] = field(default_factory=set)
    indexes: dict[str, str] = field(default_factory=dict)  # index -> its table
    triggers: set[tuple[str, str]] = field(default_factory=set)  # (trigger, table)


_NAME = r'(?:"?\w+"?\.)?"?(\w+)"?'  # a name, maybe quoted or schema-qualified
_NOISE = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|(\$\w*\$).*?\1", re.DOTALL
)  # comments, string literals and dollar-quoted bodies: never DDL of their own
_I = re.IGNORECASE | re.DOTALL
_CREATE_TABLE = re.compile(
    r"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME, _I
)
_DROP_TABLE = re.compile(
    r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([^;]*?)\s*(?:CASCADE|RESTRICT)?\s*$", _I
)
_RENAME = re.compile(
    r"ALTER\s+(TABLE|INDEX)\s+(?:IF\s+EXISTS\s+)?" + _NAME + r"\s+RENAME\s+TO\s+" + _NAME, _I
)
_CREATE_INDEX = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    + _NAME
    + r"\s+ON\s+(?:ONLY\s+)?"
    + _NAME,
    _I,
)
_DROP_INDEX = re.compile(r"DROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?" + _NAME, _I)
_CREATE_TRIGGER = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+" + _NAME + r"\s.*?\bON\s+" + _NAME,
    _I,
)
_DROP_TRIGGER = re.compile(
    r"DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?" + _NAME + r"\s+ON\s+" + _NAME, _I
)


def expected_objects(scripts: Iterable[str]) -> Expected:
    """What running ``scripts`` in order leaves behind (tables, named indexes, triggers),
    read from their DDL statement by statement. Constraint indexes (primary keys, UNIQUE)
    are not listed: their table's presence stands for them."""
    out = Expected()
    for script in scripts:
        for statement in _NOISE.sub(" ", script).split(";"):
            _apply(out, statement.strip())
    return out


def _apply(out: Expected, statement: str) -> None:
    if match := _CREATE_TABLE.match(statement):
        out.tables.add(match[1].lower())
    elif match := _DROP_TABLE.match(statement):
        for part in match[1].split(","):
            table = part.strip().rsplit(".", 1)[-1].strip('"').lower()
            out.tables.discard(table)
            out.indexes = {i: t for i, t in out.indexes.items() if t != table}
            out.triggers = {(n, t) for n, t in out.triggers if t != table}
    elif match := _RENAME.match(statement):
        old, new = match[2].lower(), match[3].lower()
        if match[1].upper() == "INDEX":
            if old in out.indexes:
                out.indexes[new] = out.indexes.pop(old)
        elif old in out.tables:
            out.tables = (out.tables - {old}) | {new}
            out.indexes = {i: new if t == old else t for i, t in out.indexes.items()}
            out.triggers = {(n, new if t == old else t) for n, t in out.triggers}
    elif match := _CREATE_INDEX.match(statement):
        out.indexes[match[1].lower()] = match[2].lower()
    elif match := _DROP_INDEX.match(statement):
        out.indexes.pop(match[1].lower(), None)
    elif match := _CREATE_TRIGGER.match(statement):
        out.triggers.add((match[1].lower(), match[2].lower()))
    elif match := _DROP_TRIGGER.match(statement):
        out.triggers.discard((match[1].lower(), match[2].lower()))


@functools.lru_cache(maxsize=4)
def _expected_at(version: int) -> Expected:
    """What the migrations a store at ``version`` has run leave behind (their PostgreSQL
    scripts, parsed once per process)."""
    from agentkeep.migrations import MIGRATIONS

    scripts = []
    for migration in MIGRATIONS:
        source = migration.sql_by_dialect.get("postgres")
        if migration.version <= version and source is not None:
            scripts.append(source if isinstance(source, str) else source())
    return expected_objects(scripts)


# -- the maintenance API ------------------------------------------------------------------


class PostgresMaintenance:
    """:class:`agentkeep.backends.base.Maintenance` over one store connection.

    ``expected``: the objects the cheap check requires (default: parsed from the
    migrations the store's ``meta`` says ran)."""

    __slots__ = ("_conn", "_expected", "checked")

    def __init__(self, conn: Connection, *, expected: Expected | None = None) -> None:
        self._conn = conn
        self._expected = expected
        # What the last integrity() ran or skipped, in words (for reports and tests).
        self.checked: list[str] = []

    # -- checks -------------------------------------------------------------------------

    def integrity(self, *, full: bool) -> list[str]:
        self.checked = []
        problems = self._structure()
        if full and not problems:
            problems = self._contents()
        if not problems:
            return ["ok"]
        if len(problems) > _MAX_LINES:
            problems = [*problems[:_MAX_LINES], f"… and {len(problems) - _MAX_LINES} more"]
        return problems

    def _structure(self) -> list[str]:
        schema = self._conn.schema
        if self._scalar("SELECT count(*) FROM pg_namespace WHERE nspname = ?", (schema,)) == 0:
            return [f"the schema {schema} does not exist"]
        problems = []
        try:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
            version = int(row[0]) if row is not None else 0
        except Corrupt as exc:  # a damaged page: the result of the check
            return [f"meta: {exc.message}"]
        except (AgentkeepError, ValueError) as exc:
            problems.append(f"meta cannot be read ({_message(exc)})")
            version = 0
        expected = self._expected
        if expected is None:
            expected = _expected_at(version)
        self.checked.append(
            f"catalog: {len(expected.tables)} tables, {len(expected.indexes)} indexes, "
            f"{len(expected.triggers)} triggers expected at schema version {version}"
        )
        tables = {str(r[0]) for r in self._rows(_TABLES, (schema,))}
        problems += [f"table {t} is missing" for t in sorted(expected.tables - tables)]
        indexes = {str(r[0]): r for r in self._rows(_INDEXES, (schema,))}
        for name, table in sorted(expected.indexes.items()):
            if name not in indexes and table in tables:
                problems.append(f"index {name} on {table} is missing")
        for name, table, valid, ready, _ in indexes.values():
            if not (valid and ready):
                problems.append(f"index {name} on {table} is invalid (REINDEX it)")
        triggers = self._rows(_TRIGGERS, (schema,))
        present = {(str(r[0]), str(r[1])) for r in triggers}
        for name, table in sorted(expected.triggers - present):
            if table in tables:
                problems.append(f"trigger {name} on {table} is missing")
        unenforced = set()
        for name, table, enabled, internal in triggers:
            if enabled in ("O", "A"):
                continue
            if internal:  # a constraint's own trigger (ALTER TABLE … DISABLE TRIGGER ALL)
                unenforced.add(table)
            else:
                problems.append(f"trigger {name} on {table} is disabled")
        problems += [
            f"the constraints of {t} are not enforced (their triggers are disabled)"
            for t in sorted(unenforced)
        ]
        for name, table in self._rows(_UNVALIDATED, (schema,)):
            problems.append(f"constraint {name} on {table} is not validated")
        return problems

    def _contents(self) -> list[str]:
        """Every page: amcheck when it can be used, else every row read whole."""
        schema = self._conn.schema
        tables = sorted(str(r[0]) for r in self._rows(_TABLES, (schema,)))
        amcheck = self._amcheck()
        problems: list[str] = []
        if amcheck is None:
            for table in tables:
                # Every column of every row, TOASTed values fetched and decompressed.
                problems += self._damage(
                    f"table {table}",
                    f"SELECT sum(octet_length(t::text)) FROM {_qualified(schema, table)} t",
                )
            self.checked.append(
                f"contents: read every row of {len(tables)} tables (amcheck unavailable)"
            )
            return problems
        for table in tables:
            rows = self._damage_rows(
                f"table {table}",
                f"SELECT blkno, offnum, msg FROM {amcheck}.verify_heapam("
                "to_regclass(?), check_toast => true) LIMIT 5",
                (_qualified(schema, table),),
            )
            problems += rows
        btrees = [
            (str(r[0]), str(r[1]))
            for r in self._rows(_INDEXES, (schema,))
            if r[2] and r[3] and r[4] == "btree"
        ]
        for index, table in btrees:
            problems += self._damage(
                f"index {index} on {table}",
                f"SELECT {amcheck}.bt_index_check(to_regclass(?), true)",
                (_qualified(schema, index),),
            )
        self.checked.append(
            f"contents: amcheck verify_heapam on {len(tables)} tables, bt_index_check "
            f"(heapallindexed) on {len(btrees)} btree indexes"
        )
        return problems

    def _amcheck(self) -> str | None:
        """The schema of a usable amcheck, creating the extension when this role may
        (a superuser: it is not a trusted extension); None when it cannot be used."""
        find = (
            "SELECT quote_ident(n.nspname) FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'"
        )
        row = self._conn.execute(find).fetchone()
        if row is None and not self._conn.read_only:
            with contextlib.suppress(AgentkeepError):
                # In public, not in the store's schema: one per database, shared by stores.
                self._conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA public")
            row = self._conn.execute(find).fetchone()
        if row is None:
            self.checked.append("amcheck: not installed, and this role cannot create it")
            return None
        # to_regprocedure: NULL (not an error) for a function this version lacks
        # (verify_heapam is PostgreSQL 14+).
        usable = self._scalar(
            "SELECT coalesce(has_function_privilege(to_regprocedure(? || '.bt_index_check("
            "regclass, boolean)'), 'EXECUTE') AND has_function_privilege(to_regprocedure("
            "? || '.verify_heapam(regclass, boolean, boolean, text, bigint, bigint)'),"
            " 'EXECUTE'), false)::int",
            (row[0], row[0]),
        )
        if not usable:
            self.checked.append("amcheck: installed, but this role may not execute it")
            return None
        return str(row[0])

    def _damage(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[str]:
        try:
            self._conn.execute(sql, params).fetchall()
        except Corrupt as exc:
            return [f"{what}: {exc.message}"]
        except AgentkeepError as exc:
            if _is_damage(exc):
                return [f"{what}: {_message(exc)}"]
            raise
        return []

    def _damage_rows(self, what: str, sql: str, params: Sequence[Any]) -> list[str]:
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except Corrupt as exc:
            return [f"{what}: {exc.message}"]
        return [f"{what}: block {r[0]}, item {r[1]}: {r[2]}" for r in rows]

    def foreign_key_violations(self) -> list[tuple[str, int, str]]:
        """Rows whose reference has no parent row, found by query for every foreign key
        of the schema (at most :data:`_MAX_ORPHANS` per key); the row id is the table's
        single-column integer primary key, 0 for a table without one."""
        out = []
        for table, parent, child_cols, parent_cols, row_key in self._rows(
            _FOREIGN_KEYS, (self._conn.schema,)
        ):
            pairs = list(zip(child_cols, parent_cols, strict=True))
            joined = " AND ".join(f"p.{_ident(pc)} = c.{_ident(cc)}" for cc, pc in pairs)
            present = " AND ".join(f"c.{_ident(cc)} IS NOT NULL" for cc, _ in pairs)
            key = f"c.{_ident(row_key)}" if row_key else "0"
            sql = (
                f"SELECT {key} FROM {_ident(table)} c WHERE {present}"
                f" AND NOT EXISTS (SELECT 1 FROM {_ident(parent)} p WHERE {joined})"
                f" ORDER BY 1 LIMIT {_MAX_ORPHANS}"
            )
            try:
                orphans = self._conn.execute(sql).fetchall()
            except Corrupt:  # integrity() reports the damage
                continue
            out += [(str(table), int(r[0]), str(parent)) for r in orphans]
        return out

    def search_index_gap(self) -> int:
        """Rows with text that their ``<table>_fts`` side table lacks, else (negative) the
        side tables' rows for no such row. The triggers of schema/0008_search.sql keep
        them in the row's own transaction, so there is no catch-up to wait for: any gap
        is a trigger that did not run (disabled, dropped, or bypassed by a copy). A
        vector left stale by an update made while its trigger was disabled is not
        counted here; integrity() reports the disabled trigger. O(rows)."""
        present = {str(r[0]) for r in self._rows(_TABLES, (self._conn.schema,))}
        missing = extra = 0
        for table, indexed in _INDEXED:
            fts = f"{table}_fts"
            if table not in present or fts not in present:
                continue  # a store from before the search step (read-only, unmigrated)
            row = self._conn.execute(
                f"SELECT (SELECT count(*) FROM {table} t WHERE {indexed}"
                f" AND NOT EXISTS (SELECT 1 FROM {fts} f WHERE f.id = t.id)),"
                f" (SELECT count(*) FROM {fts} f WHERE NOT EXISTS"
                f" (SELECT 1 FROM {table} t WHERE t.id = f.id AND {indexed}))"
            ).fetchone()
            missing += int(row[0])
            extra += int(row[1])
        return missing if missing else -extra

    # -- sizes --------------------------------------------------------------------------

    def pages(self) -> tuple[int, int, int]:
        """``(block size, the schema's relations in blocks, 0)``: PostgreSQL keeps a
        table's free space inside its files, for new rows (the free space map); what is
        free there is not counted (it needs the pg_freespacemap extension)."""
        block = self._scalar("SELECT current_setting('block_size')::int")
        return block, self.file_bytes()[0] // block, 0

    def table_bytes(self) -> dict[str, int]:
        sizes = {
            str(r[0]): int(r[1])
            for r in self._rows(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = ? AND c.relkind IN ('r', 'p', 'm')",
                (self._conn.schema,),
            )
        }
        return dict(sorted(sizes.items(), key=lambda item: (-item[1], item[0])))

    def journal_mode(self) -> str:
        return "wal"  # every change goes through PostgreSQL's write-ahead log

    def synchronous(self) -> str:
        """``FULL`` when a commit is flushed to disk before it is acknowledged
        (``synchronous_commit`` on, local, remote_*), ``NORMAL`` when the last commits
        may be lost in a crash but the database stays consistent (``off``), ``OFF`` when
        the server does not flush at all (``fsync = off``: a test server)."""
        row = self._conn.execute(
            "SELECT current_setting('fsync'), current_setting('synchronous_commit')"
        ).fetchone()
        if row[0] == "off":
            return "OFF"
        return "NORMAL" if row[1] == "off" else "FULL"

    def file_bytes(self) -> tuple[int, int]:
        """``(bytes of the schema's relations, 0)``: tables with their indexes and TOAST,
        and the identity sequences. The WAL is the server's, not the store's."""
        total = self._scalar(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ? AND c.relkind IN ('r', 'p', 'm', 'S')",
            (self._conn.schema,),
        )
        return total, 0

    # -- space --------------------------------------------------------------------------

    def reclaim(self) -> None:
        """``VACUUM (ANALYZE, SKIP_LOCKED)`` of the schema's tables (see the module
        docstring). Rows deleted are reclaimed once no transaction that began before the
        delete is still open (another machine's long read keeps them). A table another
        VACUUM holds (another machine's gc, a manual one) is left to it rather than
        waited for: the space is returned either way, and gc's rows are committed."""
        schema = self._conn.schema
        tables = sorted(str(r[0]) for r in self._rows(_TABLES, (schema,)))
        if tables:
            names = ", ".join(_qualified(schema, t) for t in tables)
            self._conn.execute(f"VACUUM (ANALYZE, SKIP_LOCKED) {names}")

    def checkpoint(self) -> None:
        """Nothing: PostgreSQL checkpoints on its own schedule, its WAL is the server's,
        and ``CHECKPOINT`` is for superusers."""

    # -- copies, snapshots, locks -------------------------------------------------------

    def backup_to(self, dest: Path) -> None:
        """A consistent copy of the store as a new SQLite database at ``dest`` (what
        ``restore`` and a full backup read): every row as one snapshot saw it, written
        into SQLite's schema at the same version in reference order, then published by
        SQLite's own online backup (private, fsynced, renamed into place). Writers keep
        writing. Row counts and the full-text index are rebuilt by SQLite's triggers
        (messages by its next search catch-up), not copied. O(rows); ``agentkeep db
        copy`` is the resumable, verified way for a large store."""
        from agentkeep.backends.sqlite import connection as sqlite
        from agentkeep.files import check_database_files, translate_os_error
        from agentkeep.migrations import MIGRATIONS, migrate

        check_database_files(dest)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        build = dest.with_name(f"{dest.name}.build-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with self.snapshot() as read:
                version = read.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
                target = sqlite.connect(build)
                try:
                    steps = [m for m in MIGRATIONS if m.version <= version]
                    migrate(target, backup_dir=None, app_version="backup", migrations=steps)
                    with sqlite.write_transaction(target):
                        for table in _copy_order(read, self._conn.schema):
                            _copy_table(read, target, table)
                    sqlite.backup_to(target, dest)
                finally:
                    target.close()
        finally:
            # Our own work files, finished or failed: the database (its WAL went with
            # the clean close) and its writer lock file.
            for path in (build, build.with_name(build.name + ".lock")):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise translate_os_error(exc, str(path)) from exc

    def snapshot(self) -> contextlib.AbstractContextManager[Snapshot]:
        return _read_transaction(self._conn)

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """The store's writer lock: the advisory lock every write transaction takes."""
        self._conn.lock_writers()
        try:
            yield
        finally:
            self._conn.unlock_writers()

    def note_damage(self, error: Any) -> None:
        self._conn.note_damage(error if isinstance(error, Corrupt) else Corrupt(str(error)))

    # -- helpers ------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._conn.execute(sql, params).fetchall())

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self._conn.execute(sql, params).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0


# Each indexed table and which of its rows the index holds: what the triggers of
# schema/0008_search.sql insert (a row whose indexed text is not NULL; every task).
_INDEXED = (
    ("messages", "t.text IS NOT NULL"),
    ("notes", "t.body IS NOT NULL"),
    ("tasks", "TRUE"),
    ("captures", "t.search_text IS NOT NULL"),
    ("artifacts", "t.name IS NOT NULL"),
)
_TABLES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ? AND c.relkind IN ('r', 'p')"
)
_INDEXES = (
    "SELECT ic.relname, c.relname, i.indisvalid, i.indisready, am.amname FROM pg_index i"
    " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = ic.relam"
    " WHERE n.nspname = ?"
)
_TRIGGERS = (
    "SELECT t.tgname, c.relname, t.tgenabled, t.tgisinternal FROM pg_trigger t"
    " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ?"
)
_UNVALIDATED = (
    "SELECT co.conname, c.relname FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND NOT co.convalidated"
)
# Each foreign key: (table, parent, its columns, the parent's columns, the table's single
# integer primary key column or NULL).
_FOREIGN_KEYS = (
    "SELECT c.relname, p.relname,"
    " ARRAY(SELECT a.attname FROM unnest(co.conkey) WITH ORDINALITY k(n, i)"
    "  JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n ORDER BY k.i)::text[],"
    " ARRAY(SELECT a.attname FROM unnest(co.confkey) WITH ORDINALITY k(n, i)"
    "  JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n ORDER BY k.i)::text[],"
    " (SELECT a.attname::text FROM pg_constraint pk JOIN pg_attribute a"
    "  ON a.attrelid = pk.conrelid AND a.attnum = pk.conkey[1]"
    "  WHERE pk.conrelid = co.conrelid AND pk.contype = 'p' AND cardinality(pk.conkey) = 1"
    "  AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))"
    " FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid"
    " JOIN pg_class p ON p.oid = co.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ? AND co.contype = 'f' ORDER BY c.relname, co.conname"
)


# Not copied into a SQLite backup: kept there by its own triggers (row_counts), this
# backend's search side tables (SQLite's FTS tables of the same names are its own), or its
# shared copies of files (blobs: SQLite has no such tables; a backup carries the files).
_NOT_COPIED = {"row_counts", "blobs", "blob_chunks", *(f"{table}_fts" for table, _ in _INDEXED)}


def _copy_order(read: Snapshot, schema: str) -> list[str]:
    """The schema's tables, each after the tables it references (rows referring to their
    own table come in id order, after their parent)."""
    tables = sorted(str(r[0]) for r in read.rows(_TABLES, (schema,)))
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for table, parent, *_ in read.rows(_FOREIGN_KEYS, (schema,)):
        if table != parent and table in parents:
            parents[table].add(str(parent))
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, p in parents.items() if not p - set(ordered))
        if not ready:  # a cycle: no schema of ours has one; copy the rest as it comes
            ready = sorted(parents)
        ordered += ready
        for table in ready:
            del parents[table]
    return [t for t in ordered if t not in _NOT_COPIED]


def _copy_table(read: Snapshot, target: Any, table: str) -> None:
    """Every row of ``table`` into the same table of the SQLite ``target``: the columns
    both have (a generated column is the target's to compute), in key order."""
    present = target.execute(f"SELECT * FROM {table} LIMIT 0").description
    if present is None:
        return
    theirs = {column[0] for column in present}
    columns = [c for c in read.columns(table) if c in theirs]
    if not columns:
        return
    names = ", ".join(_ident(c) for c in columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    if table == "meta":  # the migrations wrote their rows: the store's values win
        insert += " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    for batch in read.batches(f"SELECT {names} FROM {table} ORDER BY 1", size=1000):
        target.executemany(insert, [tuple(row) for row in batch])


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, name: str) -> str:
    return f"{_ident(schema)}.{_ident(name)}"


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, AgentkeepError) else str(exc)


def _is_damage(exc: AgentkeepError) -> bool:
    """amcheck reports what it finds as errors of the "data corrupted" class (XX001,
    XX002), which connection.py translates into Corrupt; older servers raise plain
    internal errors (XX000) worded so."""
    cause = exc.__cause__
    state = getattr(getattr(cause, "diag", None), "sqlstate", None) or ""
    return state.startswith("XX")


__all__ = ["Expected", "PostgresMaintenance", "Snapshot", "expected_objects"]
