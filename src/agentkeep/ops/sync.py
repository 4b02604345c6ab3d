"""Sending the hook spool to the database: ``agentkeep sync`` and the server's drainer.

On a PostgreSQL project the hook never connects to the database (principle 3 of
docs/design.md: no agent waits on the network): every delivery goes to the project's local
spool (:mod:`agentkeep.spool`), and a drainer stores it. Drainers are any write through the
library (:meth:`Store.transaction <agentkeep.store.Store.transaction>` drains first),
``agentkeep sync`` (:func:`watch_spool` with ``--watch``) and ``agentkeep serve``
(:func:`draining_in_background`). Each machine drains its own spool; a delivery is stored
once however many drainers run, here or on other machines (the writer lock and the
capture's dedupe key: :func:`agentkeep.hook.drain_spool_on`).

Watching is polling: one ``stat`` of ``.agentkeep/spool`` per interval (the directory
exists only while it holds a record), which costs nothing measurable and needs no
third-party file-watching package.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from agentkeep.errors import AgentkeepError, Busy, StorageError
from agentkeep.ops.background import repeating
from agentkeep.paths import names_server
from agentkeep.spool import pending

if TYPE_CHECKING:
    from agentkeep._store_results import SpoolSync
    from agentkeep.store import Store

WATCH_INTERVAL_S = 0.1  # how often `sync --watch` looks at the spool
RETRY_S = 1.0  # how often it retries while the database is unreachable
SERVER_INTERVAL_S = 0.25  # how often `agentkeep serve` looks at the spool


def watch_spool(
    open_store: Callable[[], Store],
    store_dir: Path,
    *,
    on_sync: Callable[[SpoolSync], None],
    on_trouble: Callable[[AgentkeepError], None],
    stop: threading.Event,
    interval_s: float = WATCH_INTERVAL_S,
    retry_s: float = RETRY_S,
) -> None:
    """Store the spool's deliveries as they arrive until ``stop`` is set. ``on_sync`` is
    told of every sync that stored or quarantined something; ``on_trouble`` once each time
    the database becomes unreachable (the watch goes on and retries every ``retry_s``;
    the deliveries wait in the spool meanwhile). Any other error is raised."""
    store: Store | None = None
    retry_at = 0.0
    troubled = False
    try:
        while True:
            due = store is None or pending(str(store_dir))
            if due and time.monotonic() >= retry_at:
                try:
                    if store is None:
                        store = open_store()  # opening drains what is waiting
                    result = store.sync_spool()
                except (Busy, StorageError) as exc:
                    if not troubled:
                        on_trouble(exc)
                    troubled = True
                    retry_at = time.monotonic() + retry_s
                else:
                    troubled = False
                    if result.stored or result.quarantined:
                        on_sync(result)
            if stop.wait(interval_s):
                return
    finally:
        if store is not None:
            store.close()


@contextlib.contextmanager
def draining_in_background(
    lease: Callable[[], AbstractContextManager[Store]],
    store_dir: Path,
    *,
    interval_s: float = SERVER_INTERVAL_S,
) -> Iterator[None]:
    """While the block runs, a thread stores the spool's deliveries as they arrive, on a
    PostgreSQL store (on SQLite the hook itself, or the next writer, drains). ``lease``
    lends a store of the server's pool. A failure (the database unreachable) goes to the
    hook log once, and the thread tries again every ``RETRY_S`` until it succeeds."""
    if not names_server(str(store_dir)):  # SQLite
        yield
        return

    def drain() -> None:
        if pending(str(store_dir)):
            with lease() as store:
                store.sync_spool()

    with repeating(
        "agentkeep-spool-drainer", store_dir, "spool", drain, pause_s=interval_s, retry_s=RETRY_S
    ):
        yield
