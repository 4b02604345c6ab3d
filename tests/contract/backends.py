"""Per-backend adapters: how the contract suite makes a store and, for the few things the
public API must not offer, lays hands on the backend's storage.

An adapter makes an empty store (``create``), names a place a restore can put a new one
(``vacant``), builds a store as an older agentkeep left it (``create_at_version``), writes
schema versions a newer agentkeep would have written (``set_schema_versions``) and
fingerprints the stored data so a test can prove a refused open changed nothing
(``fingerprint``). Everything else the tests do goes through
``agentkeep.open(handle.target)`` and the CLI (``agentkeep --store TARGET``), in this
process or in children, so the same bodies run against every backend.

The PostgreSQL adapter makes a fresh PostgreSQL schema per store (``?schema=t_…`` in the
URL) in the test server ``scripts/test`` starts (``AGENTKEEP_TEST_PG_DSN``); ``target`` is
the project directory, whose config.toml names that URL. Without a server its tests skip,
and fail under ``AGENTKEEP_REQUIRE_ALL_TESTS=1`` (CI).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import agentkeep

from conftest import Cli, CliResult, git, skip_or_fail
from helpers import pg

BACKENDS = ["sqlite", "postgres"]
PG_DSN = pg.PG_DSN or ""  # one reading of the test server (tests/helpers/pg.py)


@dataclass(frozen=True)
class StoreHandle:
    """One store of the backend under test, reachable from any process."""

    backend: str
    target: str  # what agentkeep.open(), `agentkeep --store` and the workers accept
    root: Path  # a directory of this store's own: the project root, the CLI's cwd

    def open(self, **options: Any) -> agentkeep.Store:
        return agentkeep.open(self.target, **options)

    def cli(self, *args: str, input: str | None = None) -> CliResult:
        """``agentkeep --store TARGET ARGS`` in this process (fast)."""
        return Cli()("--store", self.target, *args, input=input)


class Adapter(Protocol):
    name: str

    def create(self, where: Path) -> StoreHandle:
        """A new, empty, initialised store whose files live under ``where``."""
        ...

    def vacant(self, where: Path) -> StoreHandle:
        """A handle where no store exists yet (a restore's target)."""
        ...

    def create_at_version(self, where: Path, version: int, *, tasks: list[str]) -> StoreHandle:
        """A store as an older agentkeep left it: the schema of migrations 1..``version``
        only, holding ``tasks`` (with their creation events), never opened by this code."""
        ...

    def set_schema_versions(
        self, handle: StoreHandle, *, schema: int, min_reader: int, min_writer: int
    ) -> None:
        """Record the versions a newer agentkeep would have (the store is closed)."""
        ...

    def fingerprint(self, handle: StoreHandle) -> str:
        """A digest of everything the backend stores for ``handle`` (the store is closed)."""
        ...


class SqliteAdapter:
    name = "sqlite"

    def create(self, where: Path) -> StoreHandle:
        where.mkdir(parents=True)
        git(where, "init", "-q", "-b", "main")
        agentkeep.init_store(where)
        return StoreHandle(self.name, str(where), where)

    def vacant(self, where: Path) -> StoreHandle:
        where.mkdir(parents=True)
        return StoreHandle(self.name, str(where), where)

    def create_at_version(self, where: Path, version: int, *, tasks: list[str]) -> StoreHandle:
        from agentkeep.backends.sqlite.connection import connect
        from agentkeep.migrations import MIGRATIONS, migrate

        where.mkdir(parents=True)
        git(where, "init", "-q", "-b", "main")
        store_dir = where / ".agentkeep"
        store_dir.mkdir(mode=0o700)
        conn = connect(store_dir / "state.db")
        try:
            older = [m for m in MIGRATIONS if m.version <= version]
            migrate(conn, backup_dir=None, app_version="older", migrations=older)
            at = "2026-01-01T00:00:00.000Z"
            conn.execute("BEGIN IMMEDIATE")
            for title in tasks:  # SQL the baseline schema (migration 1) already takes
                task_id = conn.execute(
                    "INSERT INTO tasks (title, created_at, updated_at) VALUES (?, ?, ?)",
                    (title, at, at),
                ).lastrowid
                conn.execute(
                    "INSERT INTO events (at, actor, entity, entity_id, kind, data)"
                    " VALUES (?, 'older@test', 'task', ?, 'task.created', json_object('title', ?))",
                    (at, task_id, title),
                )
            conn.execute("COMMIT")
        finally:
            conn.close()
        return StoreHandle(self.name, str(where), where)

    def set_schema_versions(
        self, handle: StoreHandle, *, schema: int, min_reader: int, min_writer: int
    ) -> None:
        conn = sqlite3.connect(_db_path(handle), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE meta SET value = ? WHERE key = ?",
                [
                    (str(schema), "schema_version"),
                    (str(min_reader), "min_reader_version"),
                    (str(min_writer), "min_writer_version"),
                ],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()

    def fingerprint(self, handle: StoreHandle) -> str:
        """sha256 of the database file and its WAL, read by another process (this one's
        audit hook forbids opening live database files with Python file APIs)."""
        db = _db_path(handle)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import hashlib, os, sys\n"
                "digest = hashlib.sha256()\n"
                "for p in sys.argv[1:]:\n"
                "    digest.update(open(p, 'rb').read() if os.path.exists(p) else b'')\n"
                "    digest.update(b'|')\n"
                "print(digest.hexdigest())",
                str(db),
                str(db.with_name(db.name + "-wal")),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()


def _db_path(handle: StoreHandle) -> Path:
    return handle.root / ".agentkeep" / "state.db"


class PostgresAdapter:
    name = "postgres"

    def _url(self) -> str:
        if not PG_DSN:
            skip_or_fail("no PostgreSQL for the contract suite: run `scripts/postgres start`")
        sep = "&" if "?" in PG_DSN else "?"
        return f"{PG_DSN}{sep}schema=t_{os.urandom(6).hex()}"

    def create(self, where: Path) -> StoreHandle:
        where.mkdir(parents=True)
        git(where, "init", "-q", "-b", "main")
        agentkeep.init_store(where, url=self._url())
        return StoreHandle(self.name, str(where), where)

    def vacant(self, where: Path) -> StoreHandle:
        where.mkdir(parents=True)
        return StoreHandle(self.name, str(where), where)

    def create_at_version(self, where: Path, version: int, *, tasks: list[str]) -> StoreHandle:
        from agentkeep.backends.postgres.connection import connect
        from agentkeep.backends.sqlite.connection import write_transaction
        from agentkeep.config import set_in_file
        from agentkeep.migrations import MIGRATIONS, migrate

        where.mkdir(parents=True)
        git(where, "init", "-q", "-b", "main")
        store_dir = where / ".agentkeep"
        store_dir.mkdir(mode=0o700)
        url = self._url()
        set_in_file(store_dir / "config.toml", "store.url", url)
        conn = connect(url)
        try:
            older = [m for m in MIGRATIONS if m.version <= version]
            migrate(conn, backup_dir=None, app_version="older", migrations=older)
            at = "2026-01-01T00:00:00.000Z"
            with write_transaction(conn):  # type: ignore[arg-type]
                for title in tasks:
                    task_id = conn.insert(
                        "INSERT INTO tasks (title, created_at, updated_at) VALUES (?, ?, ?)",
                        (title, at, at),
                    )
                    conn.execute(
                        "INSERT INTO events (at, actor, entity, entity_id, kind, data)"
                        " VALUES (?, 'older@test', 'task', ?, 'task.created', ?)",
                        (at, task_id, json.dumps({"title": title})),
                    )
        finally:
            conn.close()
        return StoreHandle(self.name, str(where), where)

    def set_schema_versions(
        self, handle: StoreHandle, *, schema: int, min_reader: int, min_writer: int
    ) -> None:
        conn = self._connect(handle)
        try:
            conn.execute("BEGIN")
            for key, value in (
                ("schema_version", schema),
                ("min_reader_version", min_reader),
                ("min_writer_version", min_writer),
            ):
                conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(value), key))
            conn.execute("COMMIT")
        finally:
            conn.close()

    def fingerprint(self, handle: StoreHandle) -> str:
        """sha256 over every row of every table in the store's schema, in key order."""
        conn = self._connect(handle)
        digest = hashlib.sha256()
        try:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    " ORDER BY tablename"
                ).fetchall()
            ]
            for table in tables:
                digest.update(table.encode())
                for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall():
                    digest.update(repr(tuple(row)).encode())
        finally:
            conn.close()
        return digest.hexdigest()

    def _connect(self, handle: StoreHandle) -> Any:
        from agentkeep.backends.postgres.connection import connect
        from agentkeep.config import Config

        settings = Config.load(project_file=handle.root / ".agentkeep" / "config.toml")
        return connect(settings["store.url"])


ADAPTERS: dict[str, Adapter] = {"sqlite": SqliteAdapter(), "postgres": PostgresAdapter()}
