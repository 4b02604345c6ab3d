"""Work ``agentkeep serve`` repeats in a thread while it runs: draining the hook spool
(ops/sync.py) and rescanning documents (ops/docwatch.py)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from agentkeep.hooklog import log_failure


@contextlib.contextmanager
def repeating(
    name: str,
    store_dir: Path,
    what: str,
    work: Callable[[], float | None],
    *,
    pause_s: float,
    retry_s: float,
) -> Iterator[None]:
    """While the block runs, a daemon thread calls ``work`` after ``pause_s`` seconds,
    then again after the pause it returns (None: ``pause_s``). A failure goes to the hook
    log (which ``doctor`` reports) once per outage, as ``what``; the thread goes on,
    trying again every ``retry_s``. Leaving the block stops the thread and waits for it."""
    stop = threading.Event()

    def loop() -> None:
        failing = False
        wait = pause_s
        while not stop.wait(wait):
            try:
                pause = work()
            except Exception as exc:  # the thread lives on: the next pass tries again
                if not failing:
                    log_failure(str(store_dir), what, exc)
                failing, wait = True, retry_s
            else:
                failing, wait = False, pause_s if pause is None else pause

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
