"""The backend's watcher (``store.backend.follow.watch()``), which tells ``follow()`` when to
read: the first call says "read", every commit of another connection or process is
reported, and an idle store reports nothing (an idle follower then reads nothing)."""

from __future__ import annotations

import agentkeep

from .backends import StoreHandle
from conftest import run_agentkeep


def test_a_watcher_reports_every_commit_of_another_connection_or_process(
    handle: StoreHandle, store: agentkeep.Store
) -> None:
    with store.backend.follow.watch(store.db_path, store.config) as watcher:
        assert watcher.changed() is True  # the first call: read what is there
        assert watcher.changed() is False  # nothing was committed since
        store.record_event("contract.watch.here")  # the store's own connection
        assert watcher.changed() is True
        assert watcher.changed() is False
        done = run_agentkeep(
            "--store", handle.target, "tasks", "add", "from another process", cwd=handle.root
        )
        assert done.returncode == 0, done.stderr
        assert watcher.changed() is True
        assert watcher.changed(0.001) is False  # idle: it may wait, then says no change
