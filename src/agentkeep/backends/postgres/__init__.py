"""The PostgreSQL backend (psycopg 3): connections and the writer discipline
(:mod:`.connection`), store URLs (:mod:`.url`), the SQL dialect (:mod:`.dialect`), and the
capabilities in :class:`agentkeep.backends.base.Backend`: migrations (:mod:`.migrate`),
full-text search (:mod:`.search`), following commits by LISTEN/NOTIFY (:mod:`.follow`) and
maintenance (:mod:`.maintenance`) and the shared bytes of sealed streams and
artifacts (:mod:`.blobs`).

psycopg is an optional dependency (the ``postgres`` extra): nothing imports it until a
store with a PostgreSQL URL is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentkeep.backends.postgres.dialect import DIALECT, PostgresDialect

if TYPE_CHECKING:
    from agentkeep.backends.base import Connection, Follow, Maintenance, Search
    from agentkeep.backends.postgres.blobs import PostgresBlobs
    from agentkeep.backends.postgres.migrate import PostgresMigrator


class PostgresBackend:
    name = "postgres"

    @property
    def dialect(self) -> PostgresDialect:
        return DIALECT

    @property
    def migrator(self) -> PostgresMigrator:
        from agentkeep.backends.postgres.migrate import MIGRATOR

        return MIGRATOR

    # Imported by name when first asked for (as on SQLite): a command that never searches
    # or follows does not load those modules.

    @property
    def search(self) -> Search:
        return _capability("search", "SEARCH")  # type: ignore[no-any-return]

    @property
    def follow(self) -> Follow:
        return _capability("follow", "FOLLOW")  # type: ignore[no-any-return]

    @property
    def blobs(self) -> PostgresBlobs:
        return _capability("blobs", "BLOBS")  # type: ignore[no-any-return]

    def maintenance(self, conn: Connection) -> Maintenance:
        return _capability("maintenance", "PostgresMaintenance")(conn)  # type: ignore[no-any-return]


def _capability(module: str, name: str) -> Any:
    from importlib import import_module

    return getattr(import_module(f"agentkeep.backends.postgres.{module}"), name)


BACKEND = PostgresBackend()
