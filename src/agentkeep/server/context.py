"""What every route of the server shares."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkeep.store import Store

# How many open stores the server keeps for the next request (more are opened while more
# requests run at once, and closed when they are given back beyond this many).
MAX_IDLE_STORES = 8


class _Lease:
    """The stores one HTTP request has checked out: one per thread that asked (a store
    belongs to one thread at a time), given back when the response has been sent."""

    __slots__ = ("stores",)

    def __init__(self) -> None:
        self.stores: dict[int, Store] = {}


_REQUEST_LEASE: contextvars.ContextVar[_Lease | None] = contextvars.ContextVar(
    "agentkeep_request_lease", default=None
)


@dataclass
class ServerContext:
    """The store the server serves and who may talk to it.

    The server's open stores are one pool. ``store()`` gives a request (in the thread
    that asks: Starlette runs plain ``def`` endpoints in a thread pool) a store of its own
    until its response has been sent (:class:`StoreLeases`, the app's outermost
    middleware, gives it back); :meth:`lease` checks one out for a block (the live
    streams, background operations). At most ``max_idle_stores`` stay open between uses;
    :meth:`close` closes them all.
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
    max_idle_stores: int = MAX_IDLE_STORES
    _idle: list[Store] = field(default_factory=list, repr=False)
    _in_use: set[int] = field(default_factory=set, repr=False)  # id() of checked-out stores
    # Stores of threads outside any request (``agentkeep mcp``'s tool calls): the thread
    # keeps its store while it lives; a later checkout gives back those of ended threads.
    _threads: dict[threading.Thread, Store] = field(default_factory=dict, repr=False)
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- the pool ----------------------------------------------------------------------

    def _checkout(self) -> Store:
        with self._lock:
            ended = [thread for thread in self._threads if not thread.is_alive()]
            orphans = [self._threads.pop(thread) for thread in ended]
        for orphan in orphans:
            self._give_back(orphan)
        with self._lock:
            found = self._idle.pop() if self._idle else None
            if found is not None:
                self._in_use.add(id(found))
                return found
        import agentkeep

        opened = agentkeep.open(self.store_dir, actor=self.actor)
        with self._lock:
            self._in_use.add(id(opened))
        return opened

    def _give_back(self, store: Store) -> None:
        with self._lock:
            self._in_use.discard(id(store))
            keep = not self._closed and len(self._idle) < self.max_idle_stores
            if keep:
                self._idle.append(store)
        if not keep:
            with contextlib.suppress(Exception):  # one that fails to close keeps no other
                store.close()

    @contextlib.contextmanager
    def lease(self) -> Iterator[Store]:
        """A store of the pool for the block (then given back): what long-lived work
        outside a request's endpoint uses (event followers, log tails, operations)."""
        store = self._checkout()
        try:
            yield store
        finally:
            self._give_back(store)

    def store(self) -> Store:
        """The calling thread's store for the current request (the same one for every
        call of that thread in that request), given back once the response is sent."""
        lease = _REQUEST_LEASE.get()
        key = threading.get_ident()
        if lease is not None:
            found = lease.stores.get(key)
            if found is None:
                found = lease.stores[key] = self._checkout()
            return found
        thread = threading.current_thread()
        with self._lock:
            owned = self._threads.get(thread)
        if owned is None:
            owned = self._checkout()
            with self._lock:
                self._threads[thread] = owned
        return owned

    def open_stores(self) -> int:
        """How many stores are open now: checked out, and idle in the pool."""
        with self._lock:
            return len(self._in_use) + len(self._idle)

    def close(self) -> None:
        """Close the idle stores, and those given back from now on."""
        with self._lock:
            self._closed = True
            stores = [*self._idle, *self._threads.values()]
            self._in_use.difference_update(id(store) for store in self._threads.values())
            self._idle.clear()
            self._threads.clear()
        for opened in stores:
            with contextlib.suppress(Exception):
                opened.close()


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class StoreLeases:
    """ASGI middleware: each HTTP request's stores (:meth:`ServerContext.store`) go back
    to the pool once its response has been sent, a streamed body included."""

    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lease = _Lease()
        token = _REQUEST_LEASE.set(lease)
        try:
            await self.app(scope, receive, send)
        finally:
            _REQUEST_LEASE.reset(token)
            for store in lease.stores.values():
                self.ctx._give_back(store)


def context(request: object) -> ServerContext:
    """The server's context from a request (or websocket/connection) inside the app."""
    ctx: ServerContext = request.app.state.ctx  # type: ignore[attr-defined]
    return ctx
