"""Following other processes' commits on SQLite (:class:`agentkeep.backends.base.Follow`).

``PRAGMA data_version`` on a dedicated connection changes only when *another* connection
commits, so an idle follower costs one cheap PRAGMA per poll, and it holds no read
transaction between polls (it never blocks a checkpoint). The connection is the watcher's
own: on the store's connection, the store's own commits would not show.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from agentkeep.backends.sqlite.connection import Connection, connect

if TYPE_CHECKING:
    from agentkeep.config import Config


class DataVersionWatcher:
    """A :class:`agentkeep.backends.base.Watcher` polling ``PRAGMA data_version``."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._version: int | None = None

    def changed(self, timeout: float = 0.0) -> bool:
        current = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if current != self._version:
            self._version = current
            return True
        if timeout > 0:
            time.sleep(timeout)  # SQLite cannot wake us: a commit is seen at the next poll
        return False

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> DataVersionWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SQLiteFollow:
    def watch(
        self, db_path: Path, config: Config, *, read_only: bool = False
    ) -> DataVersionWatcher:
        conn = connect(
            db_path,
            synchronous=config["store.synchronous"],
            busy_timeout_ms=config["store.busy_timeout_ms"],
            read_only=read_only,
        )
        return DataVersionWatcher(conn)


FOLLOW = SQLiteFollow()
