"""A child process for the contract suite: writes through the public library API.

    python tests/contract/worker.py MODE TARGET [options]

TARGET is what ``agentkeep.open()`` accepts for the backend under test (for SQLite a
project root). Every mode prints one JSON line per *acknowledged* write on stdout, flushed,
only after the library call returned. Children wait at a file barrier (``BARRIER/go-N``) so
that they really run at the same time.

Modes:

* ``write``   — ``--count`` writes cycling task / note / event, each tagged with ``--name``
  and its number; any error (``Busy``, "database is locked") ends the process non-zero.
* ``batches`` — ``record_events`` batches of ``--size`` events, forever (the test SIGKILLs
  it); acknowledges each batch with its last seq.
* ``hold``    — opens a write transaction, writes a task row and events in it, says so,
  then waits on stdin with the transaction open (the test SIGKILLs it there).
* ``idem``    — one write per round with the idempotency key ``race-R`` (task, note, event
  in turn), all children at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import agentkeep

NOUNS = ("task", "note", "event")


def ack(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def wait_for(path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {path} never appeared")
        time.sleep(0.0005)


def run_write(store: agentkeep.Store, args: argparse.Namespace) -> None:
    ack({"ready": args.name})
    wait_for(Path(args.barrier) / "go")
    for i in range(args.count):
        noun = NOUNS[i % 3]
        tag = f"{args.name}-{i}"
        if noun == "task":
            ident = store.add_task(f"task {tag}", body=f"body {tag}").item.id
        elif noun == "note":
            ident = store.add_note("fact", f"note {tag}", data={"w": args.name, "i": i}).item.id
        else:
            data = {"w": args.name, "i": i}
            ident = store.record_event("contract.write", data=data).item.seq
        ack({"i": i, "noun": noun, "id": ident})


def run_batches(store: agentkeep.Store, args: argparse.Namespace) -> None:
    batch = 0
    while args.count is None or batch < args.count:
        events = [
            {"kind": "contract.batch", "data": {"w": args.name, "b": batch, "i": i}}
            for i in range(args.size)
        ]
        last = store.record_events(events)
        ack({"b": batch, "last": last})
        batch += 1


def run_hold(store: agentkeep.Store, args: argparse.Namespace) -> None:
    with store.transaction() as tx:
        task_id = tx.insert(
            "tasks", {"title": f"half {args.name}", "created_at": tx.now, "updated_at": tx.now}
        )
        tx.emit("task", task_id, "task.created", {"title": f"half {args.name}"})
        for i in range(args.size):
            tx.emit("custom", None, "contract.half", {"w": args.name, "i": i})
        ack({"holding": args.name, "task": task_id})
        sys.stdin.read()  # the test SIGKILLs this process here, inside the transaction
        raise SystemExit("stdin closed before the kill")


def run_idem(store: agentkeep.Store, args: argparse.Namespace) -> None:
    ack({"ready": args.name})
    for r in range(args.count):
        wait_for(Path(args.barrier) / f"go-{r}")
        key = f"race-{r}"
        noun = NOUNS[r % 3]
        try:
            if noun == "task":
                written: Any = store.add_task(f"raced {r}", idempotency_key=key)
                ident = written.item.id
            elif noun == "note":
                written = store.add_note("fact", f"raced {r}", idempotency_key=key)
                ident = written.item.id
            else:
                data = {"r": r}
                written = store.record_event("contract.idem", data=data, idempotency_key=key)
                ident = written.item.seq
        except Exception as exc:
            ack({"round": r, "error": f"{type(exc).__name__}: {exc}"})
        else:
            ack({"round": r, "noun": noun, "id": ident, "outcome": written.outcome})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("write", "batches", "hold", "idem"))
    parser.add_argument("target", help="what agentkeep.open() accepts for this backend")
    parser.add_argument("--name", default="worker")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--barrier", default="")
    args = parser.parse_args(argv)
    runners = {"write": run_write, "batches": run_batches, "hold": run_hold, "idem": run_idem}
    with agentkeep.open(args.target) as store:
        runners[args.mode](store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
