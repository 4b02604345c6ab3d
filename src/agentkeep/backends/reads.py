"""Reads through a backend connection, shared by the backends' read snapshots
(:class:`agentkeep.backends.base.Snapshot`): each backend adds how it streams a large
result (``batches``) and lists a table's columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkeep.backends.base import Connection


class ConnectionReads:
    """``rows``, ``one`` and ``scalar`` through the connection's (translating) ``execute``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._conn.execute(sql, params).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self.one(sql, params)
        return int(row[0]) if row is not None and row[0] is not None else 0
