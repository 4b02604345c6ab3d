"""A child process for tests/test_durability.py: writes through the agentkeep library.

    python tests/helpers/writer.py MODE STORE [options]

Every mode prints one JSON line per *acknowledged* write on stdout, flushed, and only after
the library call returned (a write is acknowledged once the API call returned, i.e. after
COMMIT; docs/design.md "How the guarantees are tested"). Tests redirect stdout to a file,
kill this process at random points and compare the acknowledged writes with what the
database holds.

Modes:

* ``crash``  — a mix of record_event / add_task / add_note, each carrying a payload and its
  sha256; resumes after the highest committed sequence number (the kill loop).
* ``idem``   — the same kinds of writes with idempotency keys; the first write of a run
  re-sends the key that was in doubt; ``--die-after-commit I`` SIGKILLs the process after
  write I returned but before its ack is printed (the in-doubt retry).
* ``mix``    — read-then-write work for the concurrency test: claims, counters, events.
* ``claim``  — waits at a file barrier and races the other children to claim a task.
* ``stream`` — record_event in a loop (backup under load, follow latency).
* ``fork``   — forks; the child uses the inherited store, then exits normally.
* ``team``   — one agent of a team on a shared (PostgreSQL) store, until ``--stop`` exists:
  tasks, notes and events with the idempotency key ``NAME-K``, and claims from the shared
  board. Write K is the same whatever the run (its kind and text come from the seed, the
  name and K), so a run restarted with ``--start K`` after a kill re-sends the write that
  was in doubt. A write that fails with ``Busy`` or ``StorageError`` (the server is away)
  is retried with the same key, with backoff; each failure streak is reported once.
  ``--die-after-commit K``: SIGKILL itself after the first keyed write from K on returned.
* ``follow`` — ``Store.follow()`` from ``--start``, one line per event (seq, kind).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import agentkeep

WORDS = [
    "agent",
    "task",
    "note",
    "handoff",
    "commit",
    "rollback",
    "journal",
    "page",
    "checkpoint",
    "writer",
    "reader",
    "fsync",
    "naïve",
    "café",
    "Zürich",
    "日本語",
    "ключ",
    "λόγος",
    "🙂",
    "emoji",
    "tab\tseparated",
    'quote"d',
    "back\\slash",
]


def ack(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def payload_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 120)))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- crash (the kill loop) ----------------------------------------------------------------

CRASH_KINDS = ("event", "task", "note")


def next_crash_n(store: agentkeep.Store) -> int:
    """One past the highest committed n, found through the library (each n is one write)."""
    highest = -1
    newest = store.events(kind="crash.test", newest_first=True, limit=1)
    if newest:
        highest = max(highest, int(newest[0].data["n"]))
    created = store.events(kind="task.created", newest_first=True, limit=1)
    if created:
        highest = max(highest, int(created[0].data["title"].split()[1]))
    notes = store.list_notes(kind="fact", limit=1)
    if notes:
        highest = max(highest, int(notes[0].data["n"]))
    return highest + 1


def run_crash(store: agentkeep.Store, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    n = next_crash_n(store)
    ack({"start": n})
    end = None if args.count is None else n + args.count
    while end is None or n < end:
        text = payload_text(rng)
        digest = sha256(text)
        kind = CRASH_KINDS[n % 3]
        if kind == "event":
            data = {"n": n, "payload": text, "sha256": digest}
            ident = store.record_event("crash.test", data=data).item.seq
        elif kind == "task":
            ident = store.add_task(f"crash {n} {digest}", body=text, priority=n % 5).item.id
        else:
            ident = store.add_note("fact", text, data={"n": n, "sha256": digest}).item.id
        ack({"n": n, "kind": kind, "id": ident})
        n += 1


# -- idempotent retry ---------------------------------------------------------------------


def run_idem(store: agentkeep.Store, args: argparse.Namespace) -> None:
    i = args.start
    end = None if args.count is None else i + args.count
    while end is None or i < end:
        key = f"idem-{i}"
        kind = CRASH_KINDS[i % 3]
        if kind == "event":
            written: Any = store.record_event("idem.test", data={"i": i}, idempotency_key=key)
            ident = written.item.seq
        elif kind == "task":
            written = store.add_task(f"idem {i}", idempotency_key=key)
            ident = written.item.id
        else:
            written = store.add_note("fact", f"idem {i}", data={"i": i}, idempotency_key=key)
            ident = written.item.id
        if i == args.die_after_commit:
            # COMMIT returned, the ack was never sent: the classic in-doubt write.
            os.kill(os.getpid(), signal.SIGKILL)
        ack({"i": i, "kind": kind, "id": ident, "outcome": written.outcome})
        i += 1


# -- concurrency --------------------------------------------------------------------------


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {path} never appeared")
        time.sleep(0.0005)


def increment_shared(store: agentkeep.Store, counter_id: int) -> int:
    """Read-then-write in one BEGIN IMMEDIATE transaction (what the concurrency test guards)."""
    with store.transaction() as tx:
        row = tx.one("SELECT body FROM tasks WHERE id = ?", (counter_id,))
        assert row is not None
        old = int(row[0])
        tx.update("tasks", counter_id, {"body": str(old + 1), "updated_at": tx.now})
        tx.emit("task", counter_id, "task.updated", {"body": [str(old), str(old + 1)]})
    return old + 1


def run_mix(store: agentkeep.Store, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    name = args.name
    counts = {"attempts": 0, "acked": 0, "conflicts": 0, "no_ready": 0, "locked": 0, "errors": 0}
    errors: list[str] = []
    latencies: list[float] = []
    ops = ("add", "claim", "shared", "own", "event")
    weights = (2, 3, 2, 2, 2)
    ack({"ready": name})
    wait_for(Path(args.barrier))
    deadline = time.monotonic() + args.seconds
    k = 0
    while time.monotonic() < deadline:
        if args.think_ms:
            # Agents work between writes. Back-to-back writers in 4 processes can starve a
            # fifth past busy_timeout under CPU overload: SQLite's busy handler polls with
            # sleeps of up to 100 ms and takes no turns.
            time.sleep(rng.uniform(0, args.think_ms) / 1000)
        op = rng.choices(ops, weights)[0]
        counts["attempts"] += 1
        k += 1
        started = time.perf_counter()
        try:
            if op == "add":
                task = store.add_task(f"{name} task {k}", priority=rng.randint(0, 4)).item
                record: dict[str, Any] = {"op": op, "id": task.id, "title": task.title}
            elif op == "claim":
                ready = store.ready_tasks(limit=3)
                if not ready:
                    counts["no_ready"] += 1
                    continue
                target = rng.choice(ready)
                started = time.perf_counter()
                try:
                    store.claim_task(target.id, name)
                except agentkeep.Conflict:
                    counts["conflicts"] += 1
                    continue
                record = {"op": op, "id": target.id}
            elif op == "shared":
                record = {"op": op, "v": increment_shared(store, args.shared)}
            elif op == "own":
                current = int(store.get_task(args.own).body)
                store.update_task(args.own, body=str(current + 1))
                record = {"op": op, "v": current + 1}
            else:
                seq = store.record_event("mix.event", data={"p": name, "k": k}).item.seq
                record = {"op": op, "seq": seq, "k": k}
        except agentkeep.Busy as exc:
            counts["locked"] += 1
            waited = time.perf_counter() - started
            errors.append(f"{op}: Busy after {waited:.2f}s: {exc}")
            continue
        except Exception as exc:
            if "locked" in str(exc):
                counts["locked"] += 1
            else:
                counts["errors"] += 1
            errors.append(f"{op}: {type(exc).__name__}: {exc}")
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        counts["acked"] += 1
        ack(record)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    ack(
        {
            "summary": counts,
            "errors": errors[:20],
            "p50_ms": statistics.median(latencies) if latencies else 0.0,
            "p99_ms": p99,
            "max_ms": latencies[-1] if latencies else 0.0,
        }
    )


# -- claim race ---------------------------------------------------------------------------


def run_claim(store: agentkeep.Store, args: argparse.Namespace) -> None:
    ack({"ready": args.name})
    barrier = Path(args.barrier)
    for number, task_id in enumerate(args.tasks):
        wait_for(barrier / f"go-{number}")
        try:
            store.claim_task(task_id, args.name)
        except agentkeep.Conflict:
            ack({"round": number, "won": False})
        except Exception as exc:
            ack({"round": number, "error": f"{type(exc).__name__}: {exc}"})
        else:
            ack({"round": number, "won": True})


# -- stream -------------------------------------------------------------------------------


def run_stream(store: agentkeep.Store, args: argparse.Namespace) -> None:
    n = 0
    while args.count is None or n < args.count:
        sent = time.time()
        seq = store.record_event(args.kind, data={"n": n, "sent": sent}).item.seq
        ack({"n": n, "seq": seq})
        n += 1
        if args.interval:
            time.sleep(args.interval)


# -- team (tests/test_pg_torture.py) -----------------------------------------------------

TEAM_OPS = ("task", "note", "event", "claim")
TEAM_WEIGHTS = (3, 2, 3, 3)


def team_write(store: agentkeep.Store, name: str, k: int, rng: random.Random) -> dict[str, Any]:
    """Write ``k`` of writer ``name`` (``rng`` is seeded by both): what to acknowledge."""
    op = rng.choices(TEAM_OPS, TEAM_WEIGHTS)[0]
    key = f"{name}-{k}"
    text = payload_text(rng)
    if op == "task":
        written: Any = store.add_task(
            f"team {key}", body=text, priority=rng.randint(0, 4), idempotency_key=key
        )
        return {"op": op, "k": k, "key": key, "id": written.item.id, "outcome": written.outcome}
    if op == "note":
        written = store.add_note("fact", f"team {key}", data={"key": key}, idempotency_key=key)
        return {"op": op, "k": k, "key": key, "id": written.item.id, "outcome": written.outcome}
    if op == "event":
        data = {"key": key, "text": text}
        written = store.record_event("team.write", data=data, idempotency_key=key)
        return {"op": op, "k": k, "key": key, "id": written.item.seq, "outcome": written.outcome}
    ready = store.ready_tasks(limit=3)
    if not ready:
        return {"op": "idle", "k": k}
    target = rng.choice(ready).id
    try:
        store.claim_task(target, name)
    except agentkeep.Conflict:
        return {"op": "conflict", "k": k, "id": target}
    return {"op": "claim", "k": k, "id": target}


def run_team(store: agentkeep.Store, args: argparse.Namespace) -> None:
    stop = Path(args.stop)
    k = args.start
    counts = {"retries": 0, "streaks": 0}
    while not stop.exists():
        backoff = 0.01
        failing = False
        while True:
            rng = random.Random(f"{args.seed}:{args.name}:{k}")
            try:
                record = team_write(store, args.name, k, rng)
            except (agentkeep.Busy, agentkeep.StorageError) as exc:
                # The server is away, or a lock wait timed out: nothing was acknowledged,
                # so the same write (same key) is sent again.
                counts["retries"] += 1
                if not failing:
                    failing = True
                    counts["streaks"] += 1
                    ack({"failed": k, "error": f"{type(exc).__name__}: {exc}"})
                if stop.exists():
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
                continue
            if args.die_after_commit is not None and k >= args.die_after_commit and "key" in record:
                os.kill(os.getpid(), signal.SIGKILL)  # stored, never acknowledged
            ack(record)
            k += 1
            break
    ack({"summary": counts, "next": k})


def run_follow(store: agentkeep.Store, args: argparse.Namespace) -> None:
    for event in store.follow(after=args.start):
        ack({"seq": event.seq, "kind": event.kind})


# -- fork ---------------------------------------------------------------------------------


def run_fork(store: agentkeep.Store, args: argparse.Namespace) -> None:
    """Fork; the child tries the inherited store, then exits *normally*, running every
    finaliser (the inherited sqlite3 connection is garbage-collected in the child)."""
    store.record_event("fork.parent_before")
    pid = os.fork()
    if pid == 0:
        outcome = "no error"
        try:
            store.record_event("fork.child_inherited")
        except agentkeep.UsedAcrossFork:
            outcome = "UsedAcrossFork"
        except Exception as exc:
            outcome = type(exc).__name__
        with agentkeep.open(args.store) as fresh:
            fresh.record_event("fork.child_fresh")
        ack({"child": outcome})
        sys.exit(0)  # a normal exit: atexit handlers and finalisers run
    _, status = os.waitpid(pid, 0)
    for i in range(50):
        store.record_event("fork.parent_after", data={"i": i})
    ack({"parent": "done", "child_status": os.waitstatus_to_exitcode(status)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "mode", choices=("crash", "idem", "mix", "claim", "stream", "fork", "team", "follow")
    )
    parser.add_argument("store", help="project root or .agentkeep directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=None, help="stop after this many writes")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--die-after-commit", type=int, default=None)
    parser.add_argument("--name", default="writer")
    parser.add_argument("--barrier", default="")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shared", type=int, default=0, help="shared counter task id")
    parser.add_argument("--own", type=int, default=0, help="this writer's counter task id")
    parser.add_argument("--think-ms", type=float, default=0.0, help="max pause between ops")
    parser.add_argument("--tasks", type=int, nargs="*", default=[])
    parser.add_argument("--kind", default="stream.test")
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--synchronous", default=None)
    parser.add_argument("--stop", default="", help="team: stop once this file exists")
    args = parser.parse_args(argv)
    config = {"store.synchronous": args.synchronous} if args.synchronous else None
    runners = {
        "crash": run_crash,
        "idem": run_idem,
        "mix": run_mix,
        "claim": run_claim,
        "stream": run_stream,
        "fork": run_fork,
        "team": run_team,
        "follow": run_follow,
    }
    with agentkeep.open(args.store, config=config) as store:
        runners[args.mode](store, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
