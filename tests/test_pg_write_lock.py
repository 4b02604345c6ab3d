"""The PostgreSQL write transaction's round trips and its writer lock
(backends/postgres/connection.py, ``Connection.begin_writing``): a store write takes the
writer lock, BEGIN and the clock in one round trip, holds the lock as a transaction lock
that COMMIT releases, queues behind another session holding the writer lock, and leaves
neither a transaction nor a lock behind when the lock times out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.backends.postgres.connection import connect, writer_lock_key_sql
from agentkeep.errors import Busy

from conftest import git
from helpers.pg import PgUrl


def _store_dir(tmp_path: Path, url: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    agentkeep.init_store(root, url=url)
    return root


def _holder(url: str) -> Any:
    """Another session holding the store's writer lock (session level, as a migration)."""
    other = connect(url)
    key, seed = writer_lock_key_sql()
    other.execute(f"SELECT pg_advisory_lock({key})", (other.schema, seed))
    return other


def _lock_free(url: str) -> bool:
    probe = connect(url)
    try:
        key, seed = writer_lock_key_sql()
        row = probe.execute(f"SELECT pg_try_advisory_lock({key})", (probe.schema, seed))
        free = bool(row.fetchone()[0])
        if free:
            probe.execute(f"SELECT pg_advisory_unlock({key})", (probe.schema, seed))
        return free
    finally:
        probe.close()


def test_a_write_is_three_round_trips_and_commit_releases_the_lock(
    tmp_path: Path, pg_url: PgUrl
) -> None:
    root = _store_dir(tmp_path, pg_url)
    with agentkeep.open(root, actor="t") as store:
        store.record_event("t.warm", data={})  # the first write reads the catalog once
        raw = store._conn.raw
        sent: list[str] = []
        original = raw.execute

        def counting(query: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(query))
            return original(query, *args, **kwargs)

        raw.execute = counting  # type: ignore[method-assign]
        try:
            written = store.record_event("t.one", data={"n": 1})
        finally:
            del raw.execute
        assert [s.split()[0] for s in sent] == ["BEGIN;", "INSERT", "COMMIT"], sent
        assert "pg_advisory_xact_lock" in sent[0]
        assert not store._conn.in_transaction
        assert _lock_free(pg_url)  # released by COMMIT, no unlock statement needed
        # the clock read with BEGIN stamped the event (the store's timestamp format)
        assert written.item.at.endswith("Z") and len(written.item.at) == 24


def test_a_write_waits_for_another_writer_and_a_lock_timeout_leaves_nothing_held(
    tmp_path: Path, pg_url: PgUrl
) -> None:
    root = _store_dir(tmp_path, pg_url)
    holder = _holder(pg_url)
    try:
        with agentkeep.open(root, actor="t", config={"store.busy_timeout_ms": 200}) as store:
            with pytest.raises(Busy):
                store.record_event("t.blocked", data={})
            assert not store._conn.in_transaction
            assert store._conn._lock_depth == 0
            holder.execute(
                f"SELECT pg_advisory_unlock({writer_lock_key_sql()[0]})",
                (holder.schema, writer_lock_key_sql()[1]),
            )
            store.record_event("t.after", data={})
            kinds = [e.kind for e in store.events()]
            assert "t.after" in kinds and "t.blocked" not in kinds
            assert _lock_free(pg_url)
    finally:
        holder.close()


def test_inside_a_held_session_lock_a_write_keeps_it_until_unlocked(
    tmp_path: Path, pg_url: PgUrl
) -> None:
    """A migration holds the session lock across transactions: a write inside it must not
    release it at COMMIT."""
    root = _store_dir(tmp_path, pg_url)
    with agentkeep.open(root, actor="t") as store:
        conn = store._conn
        conn.lock_writers()
        try:
            store.record_event("t.inside", data={})
            assert not conn.in_transaction
            assert not _lock_free(pg_url)  # still held after the write's COMMIT
        finally:
            conn.unlock_writers()
        assert _lock_free(pg_url)
