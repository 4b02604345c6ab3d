"""Claim races: of several processes claiming one task at the same moment exactly one
wins, the others get Conflict, and the ledger holds the winner's claim event once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import agentkeep
from agentkeep import Conflict

from .backends import StoreHandle
from .harness import WRITER, children, release, wait_until

CLAIMERS = 4
ROUNDS = 3


def test_claimers_racing_for_one_task_have_exactly_one_winner(
    handle: StoreHandle, tmp_path: Path
) -> None:
    with handle.open() as store:
        task_ids = [store.add_task(f"contested {r}").item.id for r in range(ROUNDS)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    names = [f"claimer-{n}" for n in range(CLAIMERS)]
    with children(tmp_path / "logs") as kids:
        claimers = [
            kids.start(
                name,
                WRITER,  # tests/helpers/writer.py's claim mode: acks won / Conflict / error
                "claim",
                handle.target,
                "--name",
                name,
                "--barrier",
                str(barrier),
                "--tasks",
                *map(str, task_ids),
            )
            for name in names
        ]
        wait_until(claimers, lambda acks: bool(acks), "ready")
        for r in range(ROUNDS):
            release(barrier, f"go-{r}")
            wait_until(claimers, lambda acks, r=r: len(acks) >= r + 2, f"round {r}")
        results = [child.finish()[1:] for child in claimers]

    with handle.open() as store:
        tasks = {t.id: t for t in store.list_tasks()}
        claimed = Counter(e.entity_id for e in store.events(kind="task.claimed"))
        claim_events = {e.entity_id: e for e in store.events(kind="task.claimed")}
    for r, task_id in enumerate(task_ids):
        outcomes = [result[r] for result in results]
        assert [o.get("error") for o in outcomes] == [None] * CLAIMERS, outcomes
        winners = [name for name, o in zip(names, outcomes, strict=True) if o["won"]]
        assert len(winners) == 1, f"round {r}: winners {winners}"
        task = tasks[task_id]
        assert (task.status, task.assignee) == ("in_progress", winners[0])
        assert claimed[task_id] == 1, f"round {r}: {claimed[task_id]} claim events"
        assert claim_events[task_id].data["assignee"] == [None, winners[0]]
    assert sum(claimed.values()) == ROUNDS


def test_a_claim_is_a_compare_and_set(store: agentkeep.Store) -> None:
    task = store.add_task("one task").item
    claimed = store.claim_task(task.id, "agent-1")
    assert (claimed.status, claimed.assignee) == ("in_progress", "agent-1")
    seq = store.last_seq()
    # The holder claiming again is a retry: the same task, no event.
    assert store.claim_task(task.id, "agent-1") == claimed
    with pytest.raises(Conflict):
        store.claim_task(task.id, "agent-2")
    assert store.last_seq() == seq, "a retry or a lost claim wrote an event"
    assert store.get_task(task.id) == claimed
    # A task waiting on an unfinished one cannot be claimed (unless forced).
    first = store.add_task("first").item
    second = store.add_task("second", depends_on=[first.id]).item
    with pytest.raises(Conflict, match=str(first.id)):
        store.claim_task(second.id, "agent-2")
    assert store.claim_task(second.id, "agent-2", force=True).assignee == "agent-2"
    assert [e.entity_id for e in store.events(kind="task.claimed")] == [task.id, second.id]
