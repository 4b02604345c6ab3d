"""The SQLite backend: connections and the writer discipline (:mod:`.connection`), the SQL
dialect (:mod:`.dialect`), and the capabilities in :class:`agentkeep.backends.base.Backend`."""

from __future__ import annotations

from agentkeep.backends.sqlite.dialect import DIALECT, SQLiteDialect


class SQLiteBackend:
    name = "sqlite"

    @property
    def dialect(self) -> SQLiteDialect:
        return DIALECT


BACKEND = SQLiteBackend()
