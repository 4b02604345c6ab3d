"""The SQLite backend: connections and the writer discipline (:mod:`.connection`), the SQL
dialect (:mod:`.dialect`), and the capabilities in :class:`agentkeep.backends.base.Backend`:
migrations (:mod:`.migrate`), full-text search with FTS5 (:mod:`.search`) and following
commits by ``data_version`` (:mod:`.follow`), and maintenance: checks, sizes, snapshots,
backups (:mod:`.maintenance`)."""

from __future__ import annotations

from agentkeep.backends.sqlite.dialect import DIALECT, SQLiteDialect

# Not `from typing import TYPE_CHECKING`: the hook imports this package (for .fastpath)
# and may not import typing (tests/test_hook.py).
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from agentkeep.backends.base import Connection
    from agentkeep.backends.sqlite.blobs import SQLiteBlobs
    from agentkeep.backends.sqlite.follow import SQLiteFollow
    from agentkeep.backends.sqlite.maintenance import SQLiteMaintenance
    from agentkeep.backends.sqlite.migrate import SQLiteMigrator
    from agentkeep.backends.sqlite.search import SQLiteSearch


class SQLiteBackend:
    name = "sqlite"

    @property
    def dialect(self) -> SQLiteDialect:
        return DIALECT

    # The capabilities are imported when first asked for: the hook imports this package
    # for its fast path and must not pay for modules it never uses.

    @property
    def migrator(self) -> SQLiteMigrator:
        from agentkeep.backends.sqlite.migrate import MIGRATOR

        return MIGRATOR

    @property
    def search(self) -> SQLiteSearch:
        from agentkeep.backends.sqlite.search import SEARCH

        return SEARCH

    @property
    def follow(self) -> SQLiteFollow:
        from agentkeep.backends.sqlite.follow import FOLLOW

        return FOLLOW

    @property
    def blobs(self) -> SQLiteBlobs:
        from agentkeep.backends.sqlite.blobs import BLOBS

        return BLOBS

    def maintenance(self, conn: Connection) -> SQLiteMaintenance:
        from agentkeep.backends.sqlite.connection import Connection as SQLiteConnection
        from agentkeep.backends.sqlite.maintenance import SQLiteMaintenance

        assert isinstance(conn, SQLiteConnection)  # a SQLite backend's own connection
        return SQLiteMaintenance(conn)


BACKEND = SQLiteBackend()
