"""Storage backends, behind the protocols in :mod:`agentkeep.backends.base`.

SQLite (:mod:`agentkeep.backends.sqlite`) is the embedded default; PostgreSQL
(:mod:`agentkeep.backends.postgres`) is the team backend. Every SQLite construct (PRAGMAs,
FTS5, ``json_each``, ``data_version`` polling, the hook's fast path) lives under its
package, and ``tests/test_layers.py`` keeps it there.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the hook imports this package and not typing
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from agentkeep.backends.base import Backend, Connection


def backend_of(conn: Connection) -> Backend:
    """The backend a connection belongs to (by its dialect's name)."""
    if conn.dialect.name == "postgres":
        from agentkeep.backends.postgres import BACKEND as POSTGRES

        return POSTGRES
    from agentkeep.backends.sqlite import BACKEND as SQLITE

    return SQLITE
