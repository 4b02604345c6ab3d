"""The event ledger: one total order, and cursors (``follow()``, ``events(after=)``) that
see every committed event exactly once, in order, while several processes write, and
resume from where they stopped without a gap or a duplicate.

"Gap-free" is about what a reader sees: every event committed after a cursor is returned
after it, none skipped. (A backend whose sequence numbers can become visible out of order
fails these tests: a follower that read past seq N would never see a later-committed N-1.)
"""

from __future__ import annotations

from pathlib import Path

import agentkeep

from .backends import StoreHandle
from .harness import WORKER, WRITER, Child, Children, children, poll, stop_when

STREAMERS = 2
EVENTS_EACH = 30  # single-event commits per streaming writer
BATCHES = 8  # ... plus one writer committing BATCH events at a time
BATCH = 5
EXPECTED = STREAMERS * EVENTS_EACH + BATCHES * BATCH


def start_writers(kids: Children, handle: StoreHandle) -> list[Child]:
    started = [
        kids.start(
            f"s{n}",
            WRITER,
            "stream",
            handle.target,
            "--kind",
            f"contract.follow.s{n}",
            "--count",
            str(EVENTS_EACH),
        )
        for n in range(STREAMERS)
    ]
    started.append(
        kids.start(
            "batcher",
            WORKER,
            "batches",
            handle.target,
            "--name",
            "batcher",
            "--size",
            str(BATCH),
            "--count",
            str(BATCHES),
        )
    )
    return started


def ours(event: agentkeep.Event) -> bool:
    return event.kind.startswith("contract.")


def check_ledger(store: agentkeep.Store, after: int, seen: list[agentkeep.Event]) -> None:
    """``seen`` is exactly the ledger after ``after``, and the ledger is one total order."""
    ledger = store.events(after=after)
    assert [e.seq for e in seen] == [e.seq for e in ledger], "a cursor skipped or repeated"
    assert [e.to_dict() for e in seen] == [e.to_dict() for e in ledger]
    seqs = [e.seq for e in ledger]
    assert seqs == sorted(set(seqs)), "seq is not strictly increasing"
    assert [e.at for e in ledger] == sorted(e.at for e in ledger), "times do not follow seq"
    assert len([e for e in ledger if ours(e)]) == EXPECTED
    # Each writer's own events appear in the order it wrote them.
    by_writer: dict[str, list[int]] = {}
    for event in ledger:
        if event.kind.startswith("contract.follow."):
            by_writer.setdefault(event.kind, []).append(event.data["n"])
        elif event.kind == "contract.batch":
            by_writer.setdefault("batcher", []).append(event.data["b"] * BATCH + event.data["i"])
    assert len(by_writer) == STREAMERS + 1
    for writer, order in by_writer.items():
        assert order == sorted(order) == list(range(len(order))), writer


def check_acks(kids: list[Child], ledger: dict[int, agentkeep.Event]) -> None:
    """Every acknowledged seq holds what its writer wrote."""
    for child in kids:
        for line in child.acks():
            if "seq" in line:
                assert ledger[line["seq"]].data["n"] == line["n"], child.name
            else:
                assert ledger[line["last"]].data == {"w": "batcher", "b": line["b"], "i": BATCH - 1}


def follow_until_quiet(
    store: agentkeep.Store, after: int, writers: list[Child], seen: list[agentkeep.Event]
) -> None:
    """Follow from ``after`` into ``seen`` until every writer exited and the follower
    reached the newest event committed by then."""
    final: list[int] = []

    def done() -> bool:
        if not final and all(c.proc.poll() is not None for c in writers):
            final.append(store.last_seq())
        return bool(final) and bool(seen) and seen[-1].seq >= final[0]

    stop = stop_when(done, "the follower to reach the newest event")
    for event in store.follow(after=after, stop=stop, poll_interval=0.002):
        seen.append(event)


def test_follow_sees_every_event_once_in_order_while_processes_write(
    store: agentkeep.Store, handle: StoreHandle, tmp_path: Path
) -> None:
    start = store.last_seq()
    seen: list[agentkeep.Event] = []
    with children(tmp_path / "logs") as kids:
        writers = start_writers(kids, handle)
        follow_until_quiet(store, start, writers, seen)
        for child in writers:
            child.finish()
        check_acks(writers, {e.seq: e for e in seen})
    check_ledger(store, start, seen)


def test_paging_events_after_a_cursor_while_processes_write(
    store: agentkeep.Store, handle: StoreHandle, tmp_path: Path
) -> None:
    start = cursor = store.last_seq()
    seen: list[agentkeep.Event] = []
    with children(tmp_path / "logs") as kids:
        writers = start_writers(kids, handle)

        def read_a_page() -> bool:
            nonlocal cursor
            page = store.events(after=cursor, limit=7)
            seen.extend(page)
            if page:
                cursor = page[-1].seq
            return not page and all(c.proc.poll() is not None for c in writers)

        poll(read_a_page, "the writers to finish and the pages to run out")
        for child in writers:
            child.finish()
        check_acks(writers, {e.seq: e for e in seen})
    check_ledger(store, start, seen)


def test_follow_resumes_from_a_cursor_without_gap_or_duplicate(
    store: agentkeep.Store, handle: StoreHandle, tmp_path: Path
) -> None:
    start = store.last_seq()
    first: list[agentkeep.Event] = []
    rest: list[agentkeep.Event] = []
    with children(tmp_path / "logs") as kids:
        writers = start_writers(kids, handle)
        # Take a dozen events, then drop the follower (as a crashed consumer would)...
        follower = store.follow(after=start, poll_interval=0.002)
        for event in follower:
            first.append(event)
            if len(first) == 12:
                break
        follower.close()  # type: ignore[attr-defined]  # a generator
        # ...and resume at its cursor on another connection while the writers go on.
        with handle.open() as again:
            follow_until_quiet(again, first[-1].seq, writers, rest)
        for child in writers:
            child.finish()
        check_acks(writers, {e.seq: e for e in first + rest})
    check_ledger(store, start, first + rest)
    # A cursor at the end yields nothing old.
    assert store.events(after=store.last_seq()) == []
