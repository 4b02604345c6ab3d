"""Idempotency keys: a retry returns the first write's record and writes nothing (no
second row, no second event); a key belongs to one noun; concurrent retries of one key
from several processes create exactly one record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import InvalidInput

from .backends import StoreHandle
from .harness import WORKER, children, release, wait_until

RACERS = 4
ROUNDS = 3  # task, note, event


def write_task(store: agentkeep.Store, key: str, text: str) -> agentkeep.Written[Any]:
    return store.add_task(text, body=text, idempotency_key=key)


def write_note(store: agentkeep.Store, key: str, text: str) -> agentkeep.Written[Any]:
    return store.add_note("fact", text, idempotency_key=key)


def write_event(store: agentkeep.Store, key: str, text: str) -> agentkeep.Written[Any]:
    return store.record_event("contract.idem", data={"text": text}, idempotency_key=key)


WRITES: dict[str, Callable[[agentkeep.Store, str, str], agentkeep.Written[Any]]] = {
    "task": write_task,
    "note": write_note,
    "event": write_event,
}


def counts(store: agentkeep.Store) -> tuple[int, int, int, int]:
    return (
        len(store.list_tasks()),
        len(store.list_notes()),
        len(store.events(kind="contract.idem")),
        store.last_seq(),
    )


@pytest.mark.parametrize("noun", list(WRITES))
def test_a_retry_returns_the_first_record_and_writes_nothing(
    store: agentkeep.Store, noun: str
) -> None:
    write = WRITES[noun]
    first = write(store, "key-1", "the first write")
    assert first.outcome == "created"
    before = counts(store)
    # The same call again, and a call with other content: the first record, unchanged.
    for text in ("the first write", "a different text"):
        again = write(store, "key-1", text)
        assert again.outcome == "already_exists"
        assert again.item == first.item
    assert counts(store) == before, "a retry wrote a row or an event"
    # Another key is another record.
    other = write(store, "key-2", "the first write")
    assert other.outcome == "created" and other.item != first.item


def test_a_key_used_for_one_noun_is_refused_for_another(store: agentkeep.Store) -> None:
    used = {noun: WRITES[noun](store, f"key-{noun}", f"a {noun}").item for noun in WRITES}
    before = counts(store)
    for noun, write in WRITES.items():
        for owner in WRITES:
            if owner != noun:
                with pytest.raises(InvalidInput, match=f"key-{owner}"):
                    write(store, f"key-{owner}", "reused")
    assert counts(store) == before, "a refused write wrote something"
    # The keys still name their first records.
    for noun, write in WRITES.items():
        assert write(store, f"key-{noun}", "again").item == used[noun]


def test_concurrent_retries_of_one_key_create_exactly_one_record(
    handle: StoreHandle, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with children(tmp_path / "logs") as kids:
        racers = [
            kids.start(
                f"racer-{n}",
                WORKER,
                "idem",
                handle.target,
                "--name",
                f"racer-{n}",
                "--count",
                str(ROUNDS),
                "--barrier",
                str(barrier),
            )
            for n in range(RACERS)
        ]
        wait_until(racers, lambda acks: bool(acks), "ready")
        for r in range(ROUNDS):
            release(barrier, f"go-{r}")
            wait_until(racers, lambda acks, r=r: len(acks) >= r + 2, f"round {r}")
        results = [child.finish()[1:] for child in racers]

    with handle.open() as store:
        tasks = store.list_tasks()
        notes = store.list_notes()
        events = store.events(kind="contract.idem")
        created = [e.entity_id for e in store.events(kind="task.created")] + [
            e.entity_id for e in store.events(kind="note.created")
        ]
        check = store.check()
    for r in range(ROUNDS):
        outcomes = [result[r] for result in results]
        assert [o.get("error") for o in outcomes] == [None] * RACERS, outcomes
        assert sorted(o["outcome"] for o in outcomes) == ["already_exists"] * (RACERS - 1) + [
            "created"
        ], f"round {r}: {outcomes}"
        assert len({o["id"] for o in outcomes}) == 1, f"round {r}: {outcomes}"
    per_noun = ROUNDS // 3
    assert sorted(t.title for t in tasks) == [f"raced {r}" for r in range(0, ROUNDS, 3)]
    assert sorted(n.body for n in notes) == [f"raced {r}" for r in range(1, ROUNDS, 3)]
    assert sorted(e.data["r"] for e in events) == list(range(2, ROUNDS, 3))
    # One creation event per record: the losers wrote none.
    assert sorted(created) == sorted([t.id for t in tasks] + [n.id for n in notes])
    assert len(tasks) == len(notes) == len(events) == per_noun
    assert check.ok, check
