"""What the migration engine needs from PostgreSQL (:class:`agentkeep.backends.base.Migrator`).

PostgreSQL stores start at today's schema: migration 1's PostgreSQL slot creates the end
state of SQLite's migrations 1–7 (``schema/0001_*.sql``), 2–7 have nothing to do there, and
later migrations carry their own PostgreSQL SQL. A store's schema version therefore means
the same on both backends, and the version and refusal rules (``meta``) are the same code.

Migrations run under the writer lock (the store's advisory lock, taken by the engine
through ``conn.lock_writers()``), so two machines opening an old store at once migrate it
once. PostgreSQL's DDL is transactional: each step commits whole or not at all. There is no
file to back up before a step; the team's own backups (``pg_dump``) cover the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentkeep.errors import StorageError

if TYPE_CHECKING:
    from agentkeep.backends import base
    from agentkeep.backends.sqlite.connection import write_transaction

SCHEMA_DIR = "schema"


@dataclass(frozen=True)
class SchemaFiles:
    """A migration's PostgreSQL script: package data files read and joined when it runs."""

    names: tuple[str, ...]

    @property
    def path(self) -> str:
        return ", ".join(f"src/agentkeep/backends/postgres/{SCHEMA_DIR}/{n}" for n in self.names)

    def __call__(self) -> str:
        from importlib.resources import files

        texts = []
        for name in self.names:
            try:
                texts.append(files(__package__).joinpath(SCHEMA_DIR, name).read_text("utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise StorageError(
                    f"agentkeep's schema file {name} cannot be read ({exc})",
                    hint="this installation of agentkeep is incomplete; reinstall it",
                ) from exc
        return "\n".join(texts)


def schema(*names: str) -> SchemaFiles:
    """The PostgreSQL slot of a migration (several files run in order as one script)."""
    return SchemaFiles(names)


def split_statements(script: str) -> list[str]:
    """Statements of a script: split on ``;`` at the end of a line, outside ``$$`` bodies
    and quotes (the scripts are ours: one statement ends each such line)."""
    statements: list[str] = []
    current: list[str] = []
    in_body = False
    for line in script.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and stripped.endswith(";") and not stripped.startswith("--"):
            statements.append("\n".join(current).strip())
            current = []
    if any(ln.strip() and not ln.strip().startswith("--") for ln in current):
        statements.append("\n".join(current).strip())
    return statements


class PostgresMigrator:
    """PostgreSQL's half of the migration engine; stateless (one instance, :data:`MIGRATOR`)."""

    dialect = "postgres"

    def table_exists(self, conn: base.Connection, name: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?",
            (name,),
        ).fetchone()
        return row is not None

    def is_empty(self, conn: base.Connection) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema()"
        ).fetchone()
        return int(row[0]) == 0

    def prepare(self, conn: base.Connection, *, new: bool) -> None:
        schema = getattr(conn, "schema", None)
        if new and schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

    def backup(self, conn: base.Connection, dest: Path) -> None:
        """Nothing to copy: the DDL of a step is transactional (see the module docstring)."""

    def transaction(self, conn: base.Connection) -> write_transaction:
        from agentkeep.backends.sqlite.connection import write_transaction

        return write_transaction(conn)  # type: ignore[arg-type]

    def statements(self, script: str) -> list[str]:
        return split_statements(script)

    @contextmanager
    def references_unchecked(self, conn: base.Connection) -> Iterator[None]:
        # Rebuilds of referenced tables are SQLite's way to alter a table; PostgreSQL's
        # slots use ALTER TABLE, so nothing needs relaxing.
        yield

    def dangling_references(self, conn: base.Connection) -> int:
        return 0  # PostgreSQL checks every reference at statement end


MIGRATOR = PostgresMigrator()
