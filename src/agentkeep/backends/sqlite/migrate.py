"""What the migration engine needs from SQLite (:class:`agentkeep.backends.base.Migrator`).

The engine (:mod:`agentkeep.migrations`) is dialect-neutral: it decides what runs, in
which transaction, after which backup. This module holds the SQLite side of it:

* the annotated schema scripts, one file per migration in ``schema/`` (package data,
  read with :mod:`importlib.resources`, so they load from a wheel as from a checkout);
* splitting a script into statements (``executescript`` would COMMIT the migration's
  transaction halfway);
* the file-level settings a new database gets before its first table (incremental
  auto-vacuum, WAL), and the pre-migration backup;
* a table rebuild with foreign keys off, checked with ``foreign_key_check`` before COMMIT;
* :data:`INCREMENTAL_VACUUM`, migration 2's step after commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentkeep.backends.sqlite.connection import (
    Connection,
    backup_to,
    ensure_wal,
    write_transaction,
)
from agentkeep.errors import StorageError

if TYPE_CHECKING:
    from agentkeep.backends import base

SCHEMA_DIR = "schema"


@dataclass(frozen=True)
class SchemaFile:
    """A migration script shipped as package data: ``backends/sqlite/schema/<name>``
    (``global/…`` for the per-user registry's own database).

    Called, it returns the script's text. It is read only when a migration runs (or the
    docs are generated), so opening an up-to-date store reads no schema file.
    """

    name: str

    @property
    def path(self) -> str:
        """Where the file lives in the source tree (for people reading docs/schema.md)."""
        return f"src/agentkeep/backends/sqlite/{SCHEMA_DIR}/{self.name}"

    def __call__(self) -> str:
        from importlib.resources import files

        try:
            resource = files(__package__).joinpath(SCHEMA_DIR, *self.name.split("/"))
            return resource.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(
                f"agentkeep's schema file {self.name} cannot be read ({exc})",
                hint="this installation of agentkeep is incomplete; reinstall it "
                "(pip install --force-reinstall agentkeep)",
            ) from exc


def schema(name: str) -> SchemaFile:
    """The SQLite slot of a migration: ``Migration(7, "x", {"sqlite": schema("0007_x.sql")})``."""
    return SchemaFile(name)


def split_statements(sql: str) -> list[str]:
    """Split a script into statements (``executescript`` would COMMIT our transaction).

    Comment lines before a statement stay with it; a trailing run of comments is dropped.
    """
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        statements.append(current.strip())
    return statements


def _sqlite(conn: base.Connection) -> Connection:
    if not isinstance(conn, Connection):
        raise StorageError(f"the SQLite migrator was given a {type(conn).__name__} connection")
    return conn


class SQLiteMigrator:
    """SQLite's half of the migration engine; stateless (one instance, :data:`MIGRATOR`)."""

    dialect = "sqlite"

    def table_exists(self, conn: base.Connection, name: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def is_empty(self, conn: base.Connection) -> bool:
        return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0

    def prepare(self, conn: base.Connection, *, new: bool) -> None:
        if new:
            # An empty file can still choose its auto_vacuum mode without a VACUUM.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        ensure_wal(_sqlite(conn))

    def backup(self, conn: base.Connection, dest: Path) -> None:
        backup_to(_sqlite(conn), dest)

    def transaction(self, conn: base.Connection) -> write_transaction:
        return write_transaction(_sqlite(conn))

    def statements(self, script: str) -> list[str]:
        return split_statements(script)

    @contextmanager
    def references_unchecked(self, conn: base.Connection) -> Iterator[None]:
        # PRAGMA foreign_keys cannot change inside a transaction: this wraps it.
        conn.execute("PRAGMA foreign_keys=OFF")
        try:
            yield
        finally:
            conn.execute("PRAGMA foreign_keys=ON")

    def dangling_references(self, conn: base.Connection) -> int:
        return len(conn.execute("PRAGMA foreign_key_check").fetchall())


class IncrementalVacuum:
    """Migration 2's step after commit: switch the file to incremental auto-vacuum.

    SQLite applies a new auto_vacuum mode only through a full VACUUM, which cannot run
    inside a transaction. A crash between the migration's COMMIT and the VACUUM leaves a
    correct store that simply does not shrink yet; the next open finishes it. (A file
    created by this code chose the mode while empty, so it never needs the VACUUM.)
    """

    def needed(self, conn: base.Connection) -> bool:
        return int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2

    def run(self, conn: base.Connection) -> None:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")


MIGRATOR = SQLiteMigrator()
INCREMENTAL_VACUUM = IncrementalVacuum()
