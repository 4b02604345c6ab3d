"""Shared bytes on SQLite: none. A SQLite store lives on one machine, where the files of
sealed streams and artifact objects under ``.agentkeep/`` are the truth
(:class:`agentkeep.backends.base.Blobs`); there is nothing to copy into the database and
nothing to fetch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agentkeep.backends.base import Connection


class SQLiteBlobs:
    shared = False

    def put(self, conn: Connection, name: str, path: Path) -> bool:
        return False

    def fetch(self, conn: Connection, name: str, dest: Path) -> bool:
        return False

    def exists(self, conn: Connection, names: Sequence[str]) -> set[str]:
        return set()

    def delete(self, conn: Connection, names: Sequence[str]) -> int:
        return 0

    def sizes(self, conn: Connection) -> tuple[int, int]:
        return 0, 0


BLOBS = SQLiteBlobs()
