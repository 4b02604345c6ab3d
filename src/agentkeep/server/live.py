"""Live streams: ``/api/v1/events/stream`` (SSE, resumable by event sequence number) and
the live log tail of a running session (``/api/v1/sessions/{id}/follow``).

One follower feeds every event stream: :func:`running` starts a thread that waits for new
commits with the store's own mechanism (:meth:`agentkeep.store.Store.follow`; on SQLite a
``PRAGMA data_version`` poll on one connection) and hands each new event to the server's
event loop, which puts it on the bounded queue of every subscriber whose filters match.
An idle client costs a parked coroutine and nothing else: no client polls.

Resume (``Last-Event-ID`` or ``?after=``): the client subscribes first, then the events
after its id are replayed from the store, then the live ones follow; a live event whose seq
is at or below the last one sent is dropped. Anything committed before the subscription is
in the store when the replay reads it and anything after comes through the queue, so
there is no gap and no duplicate however the commits interleave with the replay.

Publishing never waits for a client. Each client's queue holds at most ``queue_events``
events; when an event finds it full, the client is switched to catching up from the store:
its queue is let go (memory never grows with it) and its sender reads on with
``Store.events(after=<the last seq it sent>)`` in batches until it has caught up, then
listens again (subscribe first, read the store once more, then the queue: no gap, no
duplicate). A replay that live events outrun does the same.

A client that reads nothing is found by its own timer, not by the follower: when one send
to it has been blocked (its socket full) for ``stall_seconds``, it is taken off the hub and,
when it next reads, gets a last ``event: reset`` frame whose data says why and the last seq
it was sent; reconnecting with that seq as ``Last-Event-ID`` resumes without a gap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import Busy
from agentkeep.server.api_input import MAX_ID, path_id, q_int, whole_number
from agentkeep.server.context import ServerContext, context

if TYPE_CHECKING:
    from agentkeep.models import Event
    from agentkeep.services.streams import Line

log = logging.getLogger("agentkeep.server.live")

REPLAY_BATCH = 500


@dataclass(frozen=True)
class LiveOptions:
    """How the live streams behave; ``app.state.live_options`` overrides the defaults
    (tests shorten the ping and the queue)."""

    # A ``: ping`` comment this often on every stream, so proxies and clients see life.
    ping_seconds: float = 15.0
    # Events a client may have waiting; one more and it reads on from the store instead.
    # A client one of whose sends stays blocked for ``stall_seconds`` is reset and dropped.
    queue_events: int = 1000
    stall_seconds: float = 2.0
    # The reconnection delay the browser's EventSource is told (``retry:``).
    retry_ms: int = 3000
    # How often the follower checks for commits (None: the store's events.follow_poll_ms).
    poll_seconds: float | None = None
    # How often a log tail checks for commits to its session's streams.
    tail_poll_seconds: float = 0.1
    # Lines a log tail may have waiting for its client before its reader waits.
    tail_queue_lines: int = 1000
    # Log tails open at once (each has a reader thread polling the store); one more is
    # 503 busy, so a page opening tails in a loop cannot exhaust the server's threads.
    # The Live view opens one per running session it shows (at most 20).
    max_tails: int = 64


def options_of(app: Starlette) -> LiveOptions:
    found = getattr(app.state, "live_options", None)
    return found if isinstance(found, LiveOptions) else LiveOptions()


# --------------------------------------------------------------------------- the hub


@dataclass(frozen=True)
class EventFilter:
    kind: str | None = None  # exact, or a prefix ending in ``*`` (as ``events --kind``)
    entity: str | None = None
    entity_id: int | None = None
    # Several entities (``?entity=task&entity=note``): any of them. Set, not ``entity``.
    entities: frozenset[str] = frozenset()

    def matches(self, event: Event) -> bool:
        if self.entity is not None and event.entity != self.entity:
            return False
        if self.entities and event.entity not in self.entities:
            return False
        if self.entity_id is not None and event.entity_id != self.entity_id:
            return False
        if self.kind is not None:
            if self.kind.endswith("*"):
                return event.kind.startswith(self.kind[:-1])
            return event.kind == self.kind
        return True


class _Signal:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


DROPPED = _Signal("dropped")  # the client read nothing for stall_seconds: reset
BEHIND = _Signal("behind")  # its queue overflowed: read on from the store
STOPPED = _Signal("stopped")  # the server is stopping: end the stream


@dataclass(eq=False)
class Subscriber:
    """One client of the event stream, for as long as it is connected."""

    filter: EventFilter
    queue: asyncio.Queue[Event | _Signal]
    start: int  # the hub's last seq when it last subscribed
    listening: bool = False  # on the hub: live events go to its queue
    dropped: bool = False  # reset for reading nothing
    peak: int = 0  # the most events it ever had waiting
    behind: int = 0  # times its queue overflowed (it then read on from the store)
    sent: int = 0  # event frames its sender handed to the connection
    sending_since: float | None = None  # when the send under way began (None: none)
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Hub:
    """The one follower's fan-out; it lives on the event loop (the follower thread hands
    it events with ``run_coroutine_threadsafe``). Nothing in it ever waits for a client."""

    loop: asyncio.AbstractEventLoop
    options: LiveOptions
    last_seq: int = 0  # the last event handed to subscribers
    subscribers: set[Subscriber] = field(default_factory=set)  # listening now
    clients: set[Subscriber] = field(default_factory=set)  # connected (listening or not)
    dropped_total: int = 0  # clients reset for reading nothing
    behind_total: int = 0  # queue overflows: those clients read on from the store
    peak: int = 0  # the deepest any subscriber's queue ever was
    closed: bool = False

    def connect(self, event_filter: EventFilter) -> Subscriber:
        queue: asyncio.Queue[Event | _Signal] = asyncio.Queue(self.options.queue_events + 1)
        sub = Subscriber(event_filter, queue, self.last_seq)
        self.clients.add(sub)
        self.listen(sub)
        return sub

    def listen(self, sub: Subscriber) -> None:
        """(Again) queue the live events after ``last_seq`` for ``sub``: everything up to
        it is in the store already."""
        _replace_queue(sub.queue, None)
        sub.start = self.last_seq
        if self.closed:
            sub.queue.put_nowait(STOPPED)
        elif not sub.dropped:
            sub.listening = True
            self.subscribers.add(sub)

    def disconnect(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self.clients.discard(sub)
        sub.listening = False
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None

    async def publish(self, event: Event) -> None:
        """Queue ``event`` for every subscriber it matches, in seq order, without waiting:
        a subscriber whose queue is full stops listening and reads on from the store."""
        self.last_seq = max(self.last_seq, event.seq)
        limit = self.options.queue_events
        for sub in list(self.subscribers):
            if sub.filter.matches(event):
                if sub.queue.qsize() < limit:
                    self._put(sub, event)
                else:
                    self._stop_listening(sub, BEHIND)
                    sub.behind += 1
                    self.behind_total += 1

    def _put(self, sub: Subscriber, event: Event) -> None:
        sub.queue.put_nowait(event)
        depth = sub.queue.qsize()
        if depth > sub.peak:
            sub.peak = depth
            self.peak = max(self.peak, depth)

    def _stop_listening(self, sub: Subscriber, signal: _Signal) -> None:
        sub.listening = False
        self.subscribers.discard(sub)
        _replace_queue(sub.queue, signal)  # what it had waiting is in the store

    # A send to a client is timed by the client's own timer: ``sending`` before it,
    # ``sent`` after. The timer is armed once per ``stall_seconds`` at most, and only
    # while the client has something to send.

    def sending(self, sub: Subscriber) -> None:
        sub.sending_since = self.loop.time()
        if sub.timer is None:
            sub.timer = self.loop.call_later(self.options.stall_seconds, self._check, sub)

    def sent(self, sub: Subscriber) -> None:
        sub.sending_since = None

    def _check(self, sub: Subscriber) -> None:
        sub.timer = None
        since = sub.sending_since
        if since is None or sub.dropped or sub not in self.clients:
            return
        due = since + self.options.stall_seconds
        if self.loop.time() >= due:
            sub.dropped = True
            self.dropped_total += 1
            self._stop_listening(sub, DROPPED)
        else:
            sub.timer = self.loop.call_at(due, self._check, sub)

    def close(self) -> None:
        self.closed = True
        for sub in list(self.clients):
            sub.listening = False
            _replace_queue(sub.queue, STOPPED)
        self.subscribers.clear()


def _replace_queue(queue: asyncio.Queue[Any], signal: _Signal | None) -> None:
    while not queue.empty():
        queue.get_nowait()
    if signal is not None:
        queue.put_nowait(signal)


def _follow(
    ctx: ServerContext,
    hub: Hub,
    start: int,
    stop: threading.Event,
    poll_seconds: float | None,
) -> None:
    """The follower thread: new events, from the store, to the hub's loop."""
    cursor = start
    while not stop.is_set():
        try:
            with ctx.lease() as store:
                for event in store.follow(
                    after=cursor, poll_interval=poll_seconds, stop=stop.is_set
                ):
                    # Handed over one at a time, and waited for (a burst waits in the
                    # store, not in memory); the fan-out itself never waits for a client.
                    handed = asyncio.run_coroutine_threadsafe(hub.publish(event), hub.loop)
                    while not stop.is_set():
                        try:
                            handed.result(timeout=0.5)
                            break
                        except concurrent.futures.TimeoutError:
                            continue
                    else:
                        handed.cancel()
                        return
                    # Only now: a failed hand-over is retried (a subscriber drops what
                    # it was sent already).
                    cursor = event.seq
        except RuntimeError:  # the loop closed under us: the server is gone
            return
        except Exception:  # a store error must not end live streams for good
            log.exception("the event follower failed; restarting after seq %d", cursor)
            stop.wait(1.0)


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[None]:
    """What runs while the server does: the event follower that feeds every stream."""
    ctx: ServerContext = app.state.ctx
    opts = options_of(app)

    def last_seq() -> int:
        with ctx.lease() as store:
            return store.last_seq()

    start = await anyio.to_thread.run_sync(last_seq)
    hub = Hub(asyncio.get_running_loop(), opts, last_seq=start)
    stop = threading.Event()
    thread = threading.Thread(
        target=_follow,
        args=(ctx, hub, start, stop, opts.poll_seconds),
        name="agentkeep-event-follower",
        daemon=True,
    )
    app.state.live_hub = hub
    app.state.live_stop = stop
    thread.start()
    try:
        yield
    finally:
        stop.set()
        hub.close()
        await anyio.to_thread.run_sync(thread.join, 5.0)


def stopping(app: Starlette) -> threading.Event:
    """Set once the server stops (log tails watch it)."""
    found = getattr(app.state, "live_stop", None)
    return found if isinstance(found, threading.Event) else threading.Event()


# --------------------------------------------------------------------------- routes


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/events/stream", events_stream),
        Route("/api/v1/sessions/{id}/follow", session_follow),
    ]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _sse(data: str | None = None, **fields: Any) -> ServerSentEvent:
    return ServerSentEvent(data, sep="\n", **fields)


def _frame(event: Event, named: bool = True) -> ServerSentEvent:
    kind = event.kind if named else None
    return _sse(_json(event.to_dict()), id=str(event.seq), event=kind)


def _ping() -> ServerSentEvent:
    return _sse(comment="ping")


def _response(request: Request, frames: AsyncIterator[ServerSentEvent]) -> Response:
    opts = options_of(request.app)
    return EventSourceResponse(
        frames,
        ping=opts.ping_seconds,
        ping_message_factory=_ping,
        sep="\n",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def events_stream(request: Request) -> Response:
    """``GET /api/v1/events/stream``: the event ledger as Server-Sent Events.

    ``id:`` is the event's seq, ``event:`` its kind, ``data:`` its JSON. ``Last-Event-ID``
    (or ``?after=SEQ``) replays every event after SEQ first; without either the stream
    starts at the current end. ``?kind=`` (``task.*`` for a prefix), ``?entity=``
    (repeatable: any of them), ``?entity_id=`` filter it. ``?unnamed=1`` leaves out the
    ``event:`` line (the kind is in ``data``), so a browser's EventSource delivers events of
    every kind, custom ones included, as ``message``.
    """
    params = request.query_params
    # Bounded as the API's are: an id past 2**63 is a 400 here, before the stream starts
    # (not an error mid-stream that the browser would reconnect into forever).
    after = whole_number(request.headers.get("last-event-id"), "Last-Event-ID")
    if after is None:
        after = q_int(request, "after")
    entities = frozenset(entity for entity in params.getlist("entity") if entity)
    event_filter = EventFilter(
        kind=params.get("kind") or None,
        entity=next(iter(entities)) if len(entities) == 1 else None,
        entities=entities if len(entities) > 1 else frozenset(),
        entity_id=q_int(request, "entity_id", minimum=-MAX_ID),
    )
    hub = getattr(request.app.state, "live_hub", None)
    if not isinstance(hub, Hub):
        raise Busy("live streams are not running", hint="the server is starting or stopping")
    ctx = context(request)
    named = params.get("unnamed") not in ("1", "true")
    return _response(request, _event_frames(hub, ctx, after, event_filter, named))


def _replay(
    ctx: ServerContext, after: int, event_filter: EventFilter
) -> tuple[list[Event], int, bool]:
    """The events after ``after`` of the next batch that the filter keeps, the seq the
    batch read up to, and whether it was full (more may follow). Several entities are
    filtered here, not by the store, so a batch may keep fewer than it read."""
    with ctx.lease() as store:  # a stream holds no store between its batches
        batch = store.events(
            after=after,
            kind=event_filter.kind,
            entity=event_filter.entity,
            entity_id=event_filter.entity_id,
            limit=REPLAY_BATCH,
        )
    kept = [event for event in batch if event_filter.matches(event)]
    return kept, batch[-1].seq if batch else after, len(batch) == REPLAY_BATCH


async def _event_frames(
    hub: Hub, ctx: ServerContext, after: int | None, event_filter: EventFilter, named: bool = True
) -> AsyncIterator[ServerSentEvent]:
    # First: whatever commits from now on is queued.
    sub = hub.connect(event_filter)
    try:
        yield _sse(retry=hub.options.retry_ms)
        last = sub.start if after is None else after
        from_store = after is not None
        while True:
            if from_store:
                # Read on from the store (which has everything) until caught up; then
                # listen again, and read once more what came in between.
                batch, read_to, full = await anyio.to_thread.run_sync(
                    _replay, ctx, last, event_filter
                )
                for n, event in enumerate(batch, 1):
                    hub.sending(sub)
                    yield _frame(event, named)
                    hub.sent(sub)
                    last = event.seq
                    sub.sent += 1
                    if sub.dropped:
                        yield _reset(hub, last)
                        return
                    if n % 50 == 0:
                        # A send that does not block does not yield to the loop: let it
                        # see a client that went away before the whole batch is sent.
                        await anyio.lowlevel.checkpoint()
                last = read_to
                if full:
                    continue
                if not sub.listening:
                    if hub.closed:
                        return
                    hub.listen(sub)
                    continue
                from_store = False
            item = await sub.queue.get()
            if item is STOPPED:
                return
            if item is DROPPED:
                yield _reset(hub, last)
                return
            if item is BEHIND:
                from_store = True
                continue
            assert not isinstance(item, _Signal)
            if item.seq <= last:
                continue  # sent from the store already
            hub.sending(sub)
            yield _frame(item, named)
            hub.sent(sub)
            last = item.seq
            sub.sent += 1
            if sub.dropped:
                yield _reset(hub, last)
                return
    finally:
        hub.disconnect(sub)


def _reset(hub: Hub, last: int) -> ServerSentEvent:
    reason = (
        f"the client read nothing for {hub.options.stall_seconds:g} s; "
        "reconnect with Last-Event-ID to resume"
    )
    data = {"reason": reason, "last_seq": last, "queue_limit": hub.options.queue_events}
    return _sse(_json(data), event="reset", id=str(last))


# --------------------------------------------------------------------------- log tail


async def session_follow(request: Request) -> Response:
    """``GET /api/v1/sessions/{id}/follow``: a running session's output as it is written.

    ``data:`` is ``{"stream","line","offset","text"}`` per line, in the order the lines
    were written; ``?last=N`` lines of history come first (default 0), ``?stream=`` keeps
    one stream. ``event: end`` once the session's streams are closed and read to the end.
    """
    session_id = path_id(request)
    last = q_int(request, "last", default=0) or 0
    name = request.query_params.get("stream") or None
    ctx = context(request)

    def check() -> bool:
        with ctx.lease() as store:  # not the request's: that would be held for the stream
            session = store.get_session(session_id)  # NotFound: 404
            # A finished session without output has nothing to wait for.
            return session.status != "running" and not store.session_streams(session_id, name)

    nothing = await anyio.to_thread.run_sync(check)
    slot = _TailSlot.take(request.app) if not nothing else None
    frames = _tail_frames(request, ctx, session_id, name, last, nothing, slot)
    if slot is not None:
        # Given back when the stream ends, or when it is dropped before it ever started.
        weakref.finalize(frames, slot.give_back)
    return _response(request, frames)


class _TailSlot:
    """One of the ``max_tails`` log tails a server runs at once."""

    _lock = threading.Lock()

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.held = True

    @classmethod
    def take(cls, app: Starlette) -> _TailSlot:
        limit = options_of(app).max_tails
        with cls._lock:
            open_now = getattr(app.state, "live_tails", 0)
            if open_now >= limit:
                raise Busy(
                    f"{limit} log tails are open already",
                    hint="close a Live view (or another client's tail) and retry",
                )
            app.state.live_tails = open_now + 1
        return cls(app)

    def give_back(self) -> None:
        with self._lock:
            if self.held:
                self.held = False
                self.app.state.live_tails -= 1


async def _tail_frames(
    request: Request,
    ctx: ServerContext,
    session_id: int,
    name: str | None,
    last: int,
    nothing: bool,
    slot: _TailSlot | None = None,
) -> AsyncIterator[ServerSentEvent]:
    try:
        opts = options_of(request.app)
        yield _sse(retry=opts.retry_ms)
        if nothing:
            yield _sse(_json({"session_id": session_id}), event="end")
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Line | _Signal | BaseException] = asyncio.Queue(opts.tail_queue_lines)
        gone = threading.Event()
        server_stop = stopping(request.app)

        def stop() -> bool:
            return gone.is_set() or server_stop.is_set()

        def put(item: Line | _Signal | BaseException) -> bool:
            # Waits while the client's queue is full (the reader then reads nothing more).
            while not stop():
                future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
                try:
                    future.result(timeout=1.0)
                    return True
                except concurrent.futures.TimeoutError:
                    if not future.cancel():
                        return True
                except (concurrent.futures.CancelledError, RuntimeError):
                    return False
            return False

        def read() -> None:
            try:
                with ctx.lease() as store:
                    for line in store.follow_stream(
                        session_id,
                        name=name,
                        last=last,
                        poll_seconds=opts.tail_poll_seconds,
                        stop=stop,
                    ):
                        if not put(line):
                            return
                if not stop():
                    put(STOPPED)
            except BaseException as exc:  # handed to the stream, which ends with it
                put(exc)

        reader = threading.Thread(target=read, name=f"agentkeep-tail-{session_id}", daemon=True)
        reader.start()
        try:
            while True:
                item = await queue.get()
                if item is STOPPED:
                    yield _sse(_json({"session_id": session_id}), event="end")
                    return
                if isinstance(item, BaseException):
                    log.error("log tail of session %d failed", session_id, exc_info=item)
                    data = {"session_id": session_id, "error": "the log tail failed"}
                    yield _sse(_json(data), event="error")
                    return
                assert not isinstance(item, _Signal)
                yield _sse(_json(item.to_dict()))
        finally:
            gone.set()
    finally:
        if slot is not None:
            slot.give_back()


__all__ = [
    "EventFilter",
    "Hub",
    "LiveOptions",
    "Subscriber",
    "routes",
    "running",
]
