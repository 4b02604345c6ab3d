"""Schema migrations: registered, named, transactional, applied on open (principle 8 of
docs/design.md).

Each :class:`Migration` runs in one write transaction together with the update of the
``meta`` table, after re-reading the schema version inside the write lock, so two
processes opening an old database at once migrate it exactly once, and a crash at any step
leaves either the old schema or the new one. Before an *existing* database is migrated, a
consistent backup is written to ``.agentkeep/backups/``.

The engine here is dialect-neutral. A migration's SQL lives in a slot per backend dialect
(:attr:`Migration.sql_by_dialect`); for SQLite that is one annotated file per migration in
``backends/sqlite/schema/`` (``0001_baseline.sql`` …), whose ``--`` comments say why each
table and column exists. ``docs/schema.md`` is generated from those files
(``scripts/gen_docs.py``) and a test fails if it drifts. What differs between backends
(finding the meta table, splitting a script, file-level settings, the backup, reference
checks during a table rebuild) is the backend's :class:`~agentkeep.backends.base.Migrator`.

The registry is append-only: a released migration is never edited (a test pins each
released script's hash). Adding one is one file plus one line: write
``backends/sqlite/schema/0007_<name>.sql`` and append
``Migration(7, "<name>", {"sqlite": sqlite.schema("0007_<name>.sql")})`` to
:data:`MIGRATIONS` (docs/design.md "Migrations and versions").

Compatibility (docs/design.md): ``meta`` records ``schema_version`` and the lowest
schema version of agentkeep code that may read (``min_reader_version``) and write
(``min_writer_version``) the file. Code whose newest migration is older than
``min_writer_version`` refuses to write; older than ``min_reader_version`` refuses to open.
Neither changes a byte of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.backends.postgres import migrate as pg
from agentkeep.backends.sqlite import BACKEND as SQLITE
from agentkeep.backends.sqlite import migrate as sqlite
from agentkeep.errors import AgentkeepError, Busy, Corrupt, SchemaTooNew, StorageError
from agentkeep.failpoints import failpoint
from agentkeep.timeutil import file_stamp, utc_now

if TYPE_CHECKING:
    from agentkeep.backends.base import AfterCommit, Backend, Connection, Migrator


class _Backends(dict[str, "Backend"]):
    """The backends whose databases this engine migrates, by dialect name
    (``conn.dialect.name``); PostgreSQL's module is imported only when asked for."""

    def __missing__(self, name: str) -> Backend:
        if name != "postgres":
            raise KeyError(name)
        from agentkeep.backends.postgres import BACKEND as POSTGRES

        self[name] = POSTGRES
        return POSTGRES

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


BACKENDS: Mapping[str, Backend] = _Backends({SQLITE.name: SQLITE})


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its SQL per dialect, applied in one transaction.

    ``sql_by_dialect`` maps a dialect name to the script's text, or to a loader that
    returns it (:func:`agentkeep.backends.sqlite.migrate.schema` reads a packaged file).
    """

    version: int
    name: str
    sql_by_dialect: Mapping[str, str | Callable[[], str]]
    # The oldest code (by its newest migration) that may still read / write the result.
    min_reader_version: int = 1
    min_writer_version: int = 1
    # A table rebuild (create new, copy, drop old, rename) of a table other tables
    # reference: references are not enforced while the step runs (SQLite: foreign keys
    # off, which cannot change inside a transaction) and are checked before COMMIT.
    foreign_keys_off: bool = False
    # Data changes the SQL cannot express portably, in Python against the backend
    # connection (portable SQL plus ``conn.dialect``): run after the SQL, in the same
    # transaction, so the step still commits whole or not at all.
    backfill: Callable[[Connection], None] | None = None
    # Per dialect, a step that cannot run in a transaction (SQLite's VACUUM); see
    # :class:`~agentkeep.backends.base.AfterCommit`. A dialect without one has none.
    after: Mapping[str, AfterCommit] = field(default_factory=dict)

    def sql_for(self, dialect: str) -> str:
        """This migration's script for ``dialect``, or StorageError when it has none."""
        source = self.sql_by_dialect.get(dialect)
        if source is None:
            raise StorageError(
                f"migration {self.version} ({self.name}) has no SQL for the {dialect} "
                "backend, so this agentkeep cannot create or upgrade such a store",
                hint=f"known for: {', '.join(sorted(self.sql_by_dialect)) or 'no backend'}; "
                "the store was not changed",
            )
        return source if isinstance(source, str) else source()


# PostgreSQL stores begin at this schema: migration 1's slot creates what SQLite's 1–7 built
# (backends/postgres/migrate.py), and 2–7 have nothing to do there.
_PG_DONE = ""
_PG_BASELINE = pg.schema(
    "0001_functions.sql", "0001_baseline.sql", "0001_follow.sql", "0001_blobs.sql"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "baseline", {"sqlite": sqlite.schema("0001_baseline.sql"), "postgres": _PG_BASELINE}
    ),
    Migration(
        2,
        "streams_and_artifacts",
        {"sqlite": sqlite.schema("0002_streams_and_artifacts.sql"), "postgres": _PG_DONE},
        after={"sqlite": sqlite.INCREMENTAL_VACUUM},
    ),
    Migration(3, "capture", {"sqlite": sqlite.schema("0003_capture.sql"), "postgres": _PG_DONE}),
    Migration(
        4, "import_truth", {"sqlite": sqlite.schema("0004_import_truth.sql"), "postgres": _PG_DONE}
    ),
    Migration(
        5,
        "search_everywhere",
        {"sqlite": sqlite.schema("0005_search_everywhere.sql"), "postgres": _PG_DONE},
    ),
    Migration(
        6,
        "sessions_by_agent",
        {"sqlite": sqlite.schema("0006_sessions_by_agent.sql"), "postgres": _PG_DONE},
    ),
    Migration(
        7,
        "cost_flat_with_history",
        {"sqlite": sqlite.schema("0007_cost_flat_with_history.sql"), "postgres": _PG_DONE},
    ),
    # Older code would search without catching the index up, missing the newest messages.
    Migration(
        8,
        "search_after_capture",
        {
            "sqlite": sqlite.schema("0008_search_after_capture.sql"),
            "postgres": pg.schema("0008_search.sql"),
        },
        min_reader_version=8,
    ),
    Migration(
        9,
        "documents",
        {
            "sqlite": sqlite.schema("0009_documents.sql"),
            "postgres": pg.schema("0009_documents.sql"),
        },
    ),
)

# The newest schema this code knows; it is also "this code's version" in the checks.
SCHEMA_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True)
class SchemaState:
    schema_version: int
    min_reader_version: int
    min_writer_version: int

    def readable_by(self, code_version: int) -> bool:
        return self.min_reader_version <= code_version

    def writable_by(self, code_version: int) -> bool:
        return self.min_writer_version <= code_version


def migrator_for(conn: Connection) -> Migrator:
    """The backend half of the engine for ``conn``'s dialect."""
    backend = BACKENDS.get(conn.dialect.name)
    if backend is None:
        raise StorageError(
            f"agentkeep cannot migrate a {conn.dialect.name} database",
            hint=f"known backends: {', '.join(sorted(BACKENDS))}",
        )
    return backend.migrator


def read_state(conn: Connection) -> SchemaState | None:
    """The file's schema state, or None for an empty (new) database."""
    migrator = migrator_for(conn)
    if not migrator.table_exists(conn, "meta"):
        if not migrator.is_empty(conn):
            raise Corrupt(
                f"{conn.path} has tables but no agentkeep meta table",
                hint="this file is not an agentkeep store; pass the right --store",
            )
        return None
    values = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    try:
        return SchemaState(
            int(values["schema_version"]),
            int(values["min_reader_version"]),
            int(values["min_writer_version"]),
        )
    except (KeyError, ValueError) as exc:
        raise Corrupt(f"{conn.path} has an unreadable meta table ({exc!r})") from exc


def too_new_error(conn: Connection, state: SchemaState, *, for_writing: bool) -> SchemaTooNew:
    action = "write to" if for_writing else "read"
    return SchemaTooNew(
        f"{conn.path} has schema version {state.schema_version}, written by a newer agentkeep; "
        f"this agentkeep (schema {SCHEMA_VERSION}) cannot {action} it",
        hint="upgrade agentkeep (pip install -U agentkeep); the file was not changed",
    )


def check_readable(conn: Connection, state: SchemaState) -> None:
    """Raise SchemaTooNew when this code may not even read the file."""
    if not state.readable_by(SCHEMA_VERSION):
        raise too_new_error(conn, state, for_writing=False)


def pending(state: SchemaState | None, migrations: Sequence[Migration]) -> list[Migration]:
    current = state.schema_version if state else 0
    return [m for m in migrations if m.version > current]


def migrate(
    conn: Connection,
    *,
    backup_dir: Path | None,
    app_version: str,
    migrations: Sequence[Migration] | None = None,
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction. Returns those applied.

    A backup of an existing database is written to ``backup_dir`` first. ``migrations``
    defaults to this module's :data:`MIGRATIONS`, looked up at call time. Every pending
    migration's SQL is loaded before anything changes, so a migration without SQL for this
    backend (or a missing schema file) leaves the store as it was.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    migrator = migrator_for(conn)
    if not pending(read_state(conn), migrations):
        if _unfinished_after_steps(conn, migrator, migrations):
            conn.lock_writers()
            try:
                _finish_after_steps(conn, migrator, migrations)
            finally:
                conn.unlock_writers()
        return []  # the common case: no lock taken
    # Hold the writer lock across the backup and every step, so a second process opening
    # the same old store waits, then finds nothing left to do (and takes no backup).
    conn.lock_writers()
    try:
        state = read_state(conn)
        todo = pending(state, migrations)
        if not todo:
            return []
        scripts = {m.version: m.sql_for(migrator.dialect) for m in todo}
        migrator.prepare(conn, new=state is None)
        if state is not None and backup_dir is not None:
            migrator.backup(conn, backup_dir / f"state.db.pre-v{todo[0].version}-{file_stamp()}")
        applied = []
        for migration in todo:
            if _apply_one(conn, migrator, migration, scripts[migration.version], app_version):
                applied.append(migration)
        _finish_after_steps(conn, migrator, migrations)
        return applied
    finally:
        conn.unlock_writers()


def _unfinished_after_steps(
    conn: Connection, migrator: Migrator, migrations: Sequence[Migration]
) -> list[AfterCommit]:
    steps = (m.after.get(migrator.dialect) for m in migrations)
    return [step for step in steps if step is not None and step.needed(conn)]


def _finish_after_steps(
    conn: Connection, migrator: Migrator, migrations: Sequence[Migration]
) -> None:
    """Run the after-commit steps of the applied migrations that are not done yet, in
    version order (under the writer lock, outside any transaction)."""
    for step in _unfinished_after_steps(conn, migrator, migrations):
        step.run(conn)


def _apply_one(
    conn: Connection, migrator: Migrator, migration: Migration, script: str, app_version: str
) -> bool:
    try:
        if migration.foreign_keys_off:
            with migrator.references_unchecked(conn):
                return _apply_in_transaction(conn, migrator, migration, script, app_version)
        return _apply_in_transaction(conn, migrator, migration, script, app_version)
    except (SchemaTooNew, Busy):
        raise
    except AgentkeepError as exc:
        raise StorageError(
            f"migration {migration.version} ({migration.name}) failed and was rolled back: "
            f"{exc.message}",
            hint="the store is unchanged; please report this with `agentkeep db status`",
        ) from exc


def _apply_in_transaction(
    conn: Connection, migrator: Migrator, migration: Migration, script: str, app_version: str
) -> bool:
    with migrator.transaction(conn):
        # Re-read inside the write lock: another process may have migrated meanwhile.
        state = read_state(conn)
        current = state.schema_version if state else 0
        if current >= migration.version:
            return False
        if current != migration.version - 1:
            raise Corrupt(f"{conn.path} is at schema {current}; cannot apply {migration.version}")
        failpoint("migrate:begin")
        for statement in migrator.statements(script):
            conn.execute(statement)
            failpoint("migrate:statement")
        if migration.backfill is not None:
            migration.backfill(conn)
        if migration.foreign_keys_off:
            broken = migrator.dangling_references(conn)
            if broken:
                raise Corrupt(f"the migration left {broken} dangling reference(s)")
        now = utc_now()
        rows = {
            "schema_version": str(migration.version),
            "min_reader_version": str(migration.min_reader_version),
            "min_writer_version": str(migration.min_writer_version),
            f"migration.{migration.version}": f"{migration.name} applied {now} by {app_version}",
        }
        if state is None:
            rows["created_at"] = now
            rows["created_by"] = app_version
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(rows.items()),
        )
        failpoint("migrate:before_commit")
    failpoint("migrate:after_commit")
    return True
