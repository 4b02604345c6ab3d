"""The per-user registry of known projects (``global.db`` in the user data dir).

Unlike a project's store, this file is machine-local, so it records absolute paths. Like
a store, it is private to the user: its directory 0700, its files 0600.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentkeep._version import __version__
from agentkeep.backends.sqlite import migrate as sqlite
from agentkeep.backends.sqlite.connection import Connection, connect, write_transaction
from agentkeep.files import PRIVATE_DIR, make_private
from agentkeep.migrations import Migration, migrate
from agentkeep.models import Record
from agentkeep.paths import DB_NAME, STORE_DIRNAME, global_db_path
from agentkeep.timeutil import utc_now

# The registry's own schema (not a store's): backends/sqlite/schema/global/.
MIGRATIONS = (Migration(1, "baseline", {"sqlite": sqlite.schema("global/0001_baseline.sql")}),)


@dataclass(frozen=True)
class KnownProject(Record):
    root: str
    uid: str
    name: str
    registered_at: str
    last_seen_at: str
    exists: bool = True


def _connect() -> Connection:
    path = global_db_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    make_private(path.parent)  # ours alone, like the files in it (connect makes them 0600)
    conn = connect(path)
    migrate(
        conn, backup_dir=path.parent / "backups", app_version=__version__, migrations=MIGRATIONS
    )
    return conn


def register_project(root: Path, *, uid: str, name: str) -> None:
    conn = _connect()
    try:
        now = utc_now()
        with write_transaction(conn):
            conn.execute(
                "INSERT INTO projects (root, uid, name, registered_at, last_seen_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (root) DO UPDATE SET "
                "uid = excluded.uid, name = excluded.name, last_seen_at = excluded.last_seen_at",
                (str(root), uid, name, now, now),
            )
    finally:
        conn.close()


def list_projects() -> list[KnownProject]:
    if not global_db_path().exists():
        return []
    conn = _connect()
    try:
        rows = conn.execute(
            "SELECT root, uid, name, registered_at, last_seen_at FROM projects ORDER BY name, root"
        ).fetchall()
    finally:
        conn.close()
    return [
        KnownProject(
            root, uid, name, registered, seen, (Path(root) / STORE_DIRNAME / DB_NAME).exists()
        )
        for root, uid, name, registered, seen in rows
    ]
