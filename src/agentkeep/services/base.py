"""What every service shares: the store that composes it.

A service holds no state of its own. It reads through the store's one connection, writes
through :meth:`Store.transaction` (the write choke point, ``_core.Tx``), and calls the other
nouns through the store (``self._store.sessions.get_session(…)``), so each noun can be read,
used and tested as one module, and a new noun is a new attribute rather than a base class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.backends.base import Backend, Connection, Row
from agentkeep.config import Config

if TYPE_CHECKING:
    from agentkeep._core import Tx, _Transaction
    from agentkeep.store import Store


class Service:
    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _conn(self) -> Connection:
        return self._store._conn

    @property
    def backend(self) -> Backend:
        return self._store.backend

    @property
    def config(self) -> Config:
        return self._store.config

    @property
    def store_dir(self) -> Path:
        return self._store.store_dir

    @property
    def root(self) -> Path:
        return self._store.root

    @property
    def actor(self) -> str:
        return self._store.actor

    @property
    def db_path(self) -> Path:
        return self._store.db_path

    @property
    def writable(self) -> bool:
        return self._store.writable

    def transaction(self, *, actor: str | None = None) -> _Transaction:
        return self._store.transaction(actor=actor)

    def capture_writer(self, tx: Tx, *, policy: str | None = None) -> Any:
        return self._store.capture_writer(tx, policy=policy)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._store._rows(sql, params)

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self._store._row(sql, params)

    def _record(self, noun: str, ident: object, *, column: str = "id") -> Row:
        return self._store._record(noun, ident, column=column)

    def _require(self, **ids: int | None) -> None:
        self._store._require(**ids)

    def _count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._store._count(sql, params)
