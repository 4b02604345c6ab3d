"""What every route of the server shares."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentkeep.store import Store


@dataclass
class ServerContext:
    """The store the server serves and who may talk to it.

    ``store()`` gives the calling thread its own open store: Starlette runs plain ``def``
    endpoints in a thread pool, and a store (its database connection) belongs to one thread
    at a time. The stores are opened on first use and closed by :meth:`close`.
    """

    store_dir: Path
    token: str
    # Host header values the server answers (``host`` and ``host:port``); anything else is
    # refused with 421, which stops DNS rebinding.
    hosts: frozenset[str] = frozenset()
    # Origins whose browsers may send mutations (``http://127.0.0.1:8765`` …).
    origins: frozenset[str] = frozenset()
    actor: str | None = None
    # ``serve --require-auth``: reads need the token too, not only mutations.
    require_auth: bool = False
    # Largest request body, in bytes: JSON bodies, and raw artifact uploads (413 above).
    max_json_bytes: int = 1_048_576
    max_upload_bytes: int = 1024 * 1_048_576
    # Where the access log goes (one line per request); None: stderr.
    access_log: Callable[[str], None] | None = None
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _opened: list[Store] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def store(self) -> Store:
        opened: Store | None = getattr(self._local, "store", None)
        if opened is None:
            import agentkeep

            opened = agentkeep.open(self.store_dir, actor=self.actor)
            self._local.store = opened
            with self._lock:
                self._opened.append(opened)
        return opened

    def close(self) -> None:
        with self._lock:
            stores, self._opened[:] = list(self._opened), []
        for opened in stores:
            # Closing at shutdown: one store that fails to close must not keep others open.
            with contextlib.suppress(Exception):
                opened.close()


def context(request: object) -> ServerContext:
    """The server's context from a request (or websocket/connection) inside the app."""
    ctx: ServerContext = request.app.state.ctx  # type: ignore[attr-defined]
    return ctx
