"""Writer discipline: many writer processes at once lose no acknowledged write and never
see "database is locked"; a writer killed inside a transaction leaves none of it behind
and does not keep the other writers out."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from .backends import StoreHandle
from .harness import WORKER, children, release, wait_until

WRITERS = 4
WRITES = 30  # per writer: 10 tasks, 10 notes, 10 events
BATCH = 25
KILL_ROUNDS = 3


def test_concurrent_writers_lose_no_acknowledged_write(handle: StoreHandle, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    names = [f"w{n}" for n in range(WRITERS)]
    with children(tmp_path / "logs") as kids:
        started = [
            kids.start(
                name,
                WORKER,
                "write",
                handle.target,
                "--name",
                name,
                "--count",
                str(WRITES),
                "--barrier",
                str(barrier),
            )
            for name in names
        ]
        wait_until(started, lambda acks: bool(acks), "ready")
        release(barrier)
        # Exit 0 and an empty stderr: no Busy, no "database is locked", no other error.
        acked = {child.name: child.finish()[1:] for child in started}

    with handle.open() as store:
        tasks = {t.id: t for t in store.list_tasks()}
        notes = {n.id: n for n in store.list_notes()}
        events = {e.seq: e for e in store.events(kind="contract.write")}
        task_created = Counter(e.entity_id for e in store.events(kind="task.created"))
        note_created = Counter(e.entity_id for e in store.events(kind="note.created"))
        check = store.check()
    lost = []
    for name, lines in acked.items():
        assert [line["i"] for line in lines] == list(range(WRITES)), name
        for line in lines:
            tag = f"{name}-{line['i']}"
            if line["noun"] == "task":
                task = tasks.get(line["id"])
                if task is None or (task.title, task.body) != (f"task {tag}", f"body {tag}"):
                    lost.append(f"task {tag}: {task}")
            elif line["noun"] == "note":
                note = notes.get(line["id"])
                if note is None or note.body != f"note {tag}":
                    lost.append(f"note {tag}: {note}")
            else:
                event = events.get(line["id"])
                if event is None or event.data != {"w": name, "i": line["i"]}:
                    lost.append(f"event {tag}: {event}")
    assert lost == [], lost[:10]
    total = WRITERS * WRITES // 3
    assert len(tasks) == len(notes) == len(events) == total
    # Each row was written with exactly one creation event, in the same transaction.
    assert task_created == Counter(tasks.keys()) and note_created == Counter(notes.keys())
    assert check.ok, check


def test_writer_killed_inside_a_transaction_leaves_nothing_of_it(
    handle: StoreHandle, tmp_path: Path
) -> None:
    with handle.open() as store:
        before = store.last_seq()
        tasks_before = len(store.list_tasks())
    with children(tmp_path / "logs") as kids:
        holder = kids.start("holder", WORKER, "hold", handle.target, "--size", "20", stdin=True)
        wait_until([holder], lambda acks: bool(acks), "its transaction")
        # The transaction is open and has written: kill the process inside it.
        holder.proc.send_signal(signal.SIGKILL)
        assert holder.proc.wait() == -signal.SIGKILL
        # Another process writes at once: the dead writer holds no lock.
        other = kids.start(
            "after", WORKER, "write", handle.target, "--count", "3", "--barrier", str(tmp_path)
        )
        release(tmp_path)
        after = other.finish()[1:]
    with handle.open() as store:
        assert store.events(kind="contract.half") == []
        assert [t.title for t in store.list_tasks() if t.title.startswith("half")] == []
        assert len(store.list_tasks()) == tasks_before + 1  # the other writer's one task
        assert [e.seq for e in store.events(after=before, kind="contract.write")] == [
            line["id"] for line in after if line["noun"] == "event"
        ]
        # This process writes too, and the store checks out.
        store.add_task("written after the kill")
        assert store.check().ok


def test_batches_killed_at_any_point_are_all_or_nothing(
    handle: StoreHandle, tmp_path: Path
) -> None:
    """SIGKILL a writer of BATCH-event transactions after 1..KILL_ROUNDS acknowledged
    batches, KILL_ROUNDS times: every batch is whole or absent, every acked one whole."""
    acked: dict[tuple[str, int], int] = {}
    with children(tmp_path / "logs") as kids:
        for round_no in range(KILL_ROUNDS):
            name = f"r{round_no}"
            child = kids.start(
                name, WORKER, "batches", handle.target, "--name", name, "--size", str(BATCH)
            )
            wait_until([child], lambda acks, n=round_no: len(acks) > n, "batches")
            child.proc.send_signal(signal.SIGKILL)
            assert child.proc.wait() == -signal.SIGKILL
            for line in child.acks():
                acked[name, line["b"]] = line["last"]
    with handle.open() as store:
        batches: Counter[tuple[str, int]] = Counter()
        last: dict[tuple[str, int], int] = {}
        for event in store.events(kind="contract.batch"):
            key = (event.data["w"], event.data["b"])
            batches[key] += 1
            last[key] = max(last.get(key, 0), event.seq)
        check = store.check()
    torn = {key: count for key, count in batches.items() if count != BATCH}
    assert torn == {}, f"half-written batches: {torn}"
    assert {key: last[key] for key in acked if key in last} == acked, "an acked batch is missing"
    assert len(acked) >= sum(range(1, KILL_ROUNDS + 1))
    assert check.ok, check
