"""Keeping the document index fresh while something runs: ``agentkeep doc watch`` and the
watcher thread of ``agentkeep serve``.

Watching is polling: every interval, :meth:`DocService.refresh
<agentkeep.services.docs.DocService.refresh>` stats the document files and re-reads only
those whose size or mtime changed (then compares their hash), adds new ones and drops
vanished ones. One ``stat`` per file per second costs little next to what a directory
of documents holds, needs no third-party file-watching package, and sees what inotify
misses (network file systems, edits made while nothing was running, a rename from
another directory). The index stays derived: a pass writes only the index, never a file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from agentkeep.errors import AgentkeepError, ReadOnly
from agentkeep.hooklog import log_failure

if TYPE_CHECKING:
    from agentkeep.services.docs import IndexReport
    from agentkeep.store import Store

WATCH_INTERVAL_S = 1.0  # how often `doc watch` and `serve` rescan the documents


def changed(report: IndexReport) -> bool:
    """Whether a rescan changed the index (a file added, updated or removed)."""
    return bool(report.added or report.updated or report.removed)


def watch_docs(
    open_store: Callable[[], Store],
    *,
    on_change: Callable[[IndexReport], None],
    on_trouble: Callable[[AgentkeepError], None],
    stop: threading.Event,
    interval_s: float = WATCH_INTERVAL_S,
) -> None:
    """Rescan the documents every ``interval_s`` until ``stop`` is set. ``on_change`` is
    told of every rescan that changed the index; ``on_trouble`` once each time rescans
    start failing (a namespace.toml being edited, the database busy or unreachable): the
    watch goes on, and the next pass tries again. A read-only store is raised."""
    store: Store | None = None
    troubled = False
    try:
        while True:
            try:
                if store is None:
                    store = open_store()
                report = store.docs.refresh()
            except ReadOnly:
                raise  # no pass will ever succeed
            except AgentkeepError as exc:
                if not troubled:
                    on_trouble(exc)
                troubled = True
            else:
                troubled = False
                if changed(report):
                    on_change(report)
            if stop.wait(interval_s):
                return
    finally:
        if store is not None:
            store.close()


@contextlib.contextmanager
def refreshing_in_background(
    lease: Callable[[], AbstractContextManager[Store]],
    store_dir: Path,
    *,
    interval_s: float = WATCH_INTERVAL_S,
) -> Iterator[None]:
    """While the block runs, a thread rescans the documents every ``interval_s`` with a
    store ``lease`` lends (``agentkeep serve``'s pool), so edits made with any editor are
    indexed within about a second. A failure goes to the hook log (which ``doctor``
    reports) once per outage; the thread goes on."""
    stop = threading.Event()

    def refresh() -> None:
        failing = False
        while not stop.wait(interval_s):
            try:
                with lease() as store:
                    store.docs.refresh()
            except Exception as exc:  # the thread lives on: the next pass tries again
                if not failing:
                    log_failure(str(store_dir), "docs", exc)
                failing = True
            else:
                failing = False

    thread = threading.Thread(target=refresh, name="agentkeep-doc-watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
