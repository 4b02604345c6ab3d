"""The server's pool of open stores (server/context.py): requests, live streams and
operations check stores out and give them back, so bursts of requests after the worker
threads were retired leave a bounded number open (they used to leak one SQLite connection
per retired thread: 25 → 29 → 33 → 41 fds over four bursts)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from anyio._backends._asyncio import WorkerThread

import agentkeep

from helpers.server import running_server

SAFETY = 60.0


def db_fds(store_dir: Path) -> int:
    """The file descriptors of this process open on the store's database file."""
    db = str(store_dir / "state.db")
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == db:
                count += 1
        except OSError:  # closed meanwhile (the listing's own fd)
            continue
    return count


def workers() -> int:
    return sum(isinstance(thread, WorkerThread) for thread in threading.enumerate())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_bursts_after_the_workers_retire_leave_the_open_stores_bounded(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_dir = project / ".agentkeep"
    with agentkeep.open(store_dir) as store:
        store.add_task("one task to list")
    # anyio retires a worker idle this long when the next call comes: 0 retires every idle
    # worker at once, so each burst runs on new threads (what a 10 s lull does).
    monkeypatch.setattr(WorkerThread, "MAX_IDLE_TIME", 0)
    before = db_fds(store_dir)
    with (
        running_server(store_dir) as server,
        httpx.Client(base_url=server.url + "/api/v1", timeout=SAFETY) as http,
    ):
        server.ctx.max_idle_stores = 3

        def get(_: int) -> int:
            return http.get("/tasks").status_code

        opened: list[int] = []
        for _ in range(6):
            with ThreadPoolExecutor(12) as pool:
                assert set(pool.map(get, range(48))) == {200}
            assert http.get("/status").status_code == 200  # the lull's end: workers retire
            opened.append(db_fds(store_dir) - before)
        # Bounded by what runs at once, not by the bursts: at most a store per request in
        # flight (12), the idle ones (3) and the event follower's, each with at most two
        # fds (SQLite keeps a closed connection's fd while others in the process hold
        # locks on the file). One store per retired thread grew by ~30 fds a burst.
        assert max(opened) <= 2 * (12 + 3 + 1), opened
        assert server.ctx.open_stores() <= 3 + 1  # the idle ones and the follower's
    assert db_fds(store_dir) == before  # stopping closes every one


def test_lease_gives_back_and_the_pool_keeps_at_most_max_idle(project: Path) -> None:
    from agentkeep.server.context import ServerContext

    ctx = ServerContext(store_dir=project / ".agentkeep", token="t", max_idle_stores=1)
    with ctx.lease() as first, ctx.lease() as second:
        assert first is not second and ctx.open_stores() == 2
    assert ctx.open_stores() == 1  # one kept for the next, one closed
    with ctx.lease() as again:
        assert again in (first, second)
    # A thread outside any request keeps its store while it lives; once it has ended,
    # the next checkout takes it back.
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(ctx.store()))
    thread.start()
    thread.join()
    with ctx.lease() as later:
        assert later is seen[0]
    ctx.close()
    assert ctx.open_stores() == 0
