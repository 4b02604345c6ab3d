"""The SQLite backend: connections and the writer discipline (:mod:`.connection`), the SQL
dialect (:mod:`.dialect`), and the capabilities in :class:`agentkeep.backends.base.Backend`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentkeep.backends.sqlite.dialect import DIALECT, SQLiteDialect

if TYPE_CHECKING:
    from agentkeep.backends.sqlite.migrate import SQLiteMigrator


class SQLiteBackend:
    name = "sqlite"

    @property
    def dialect(self) -> SQLiteDialect:
        return DIALECT

    @property
    def migrator(self) -> SQLiteMigrator:
        from agentkeep.backends.sqlite.migrate import MIGRATOR  # not on the hook's path

        return MIGRATOR


BACKEND = SQLiteBackend()
