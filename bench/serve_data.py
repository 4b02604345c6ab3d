"""The store bench_serve.py serves: 1M events, 100k tasks, 200k transcript messages.

    python bench/serve_data.py [--quick] [--cache DIR]     # build (or find) it, print its path

Built THROUGH THE LIBRARY from the corpora earlier benches already build, not a new
generator:

* the transcript messages, their sessions and the notes and tasks agents leave beside
  them are ``bench_search``'s corpus (``capture.Writer`` in transactions of 20k messages;
  sessions of 100 messages; 2 tasks and 2 notes per session), taken from its cache in the
  temp directory (built there if missing) and copied;
* the task backlog is topped up to ``tasks`` with ``Store.add_task`` (a transaction each,
  as agents add them): ``bench_redact``'s prose for titles and bodies, priorities 0-4, labels
  from a small set, most tasks done, a quarter open, some claimed, blocked or cancelled,
  one in ten depending on an earlier task;
* the event ledger is topped up to ``events`` with ``Store.record_events`` (1,000 per
  transaction) of ``bench_scale``'s tool events (``tool.finished`` with a tool, command,
  exit code, duration and summary) spread over the corpus's sessions.

``store.synchronous = NORMAL`` while building (the building is not what is measured).
The store is kept under ``--cache`` keyed by its sizes and this builder's version.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep
sys.path.insert(0, str(HERE))

import bench_search  # noqa: E402
from bench_redact import _prose  # noqa: E402
from bench_scale import tool_events  # noqa: E402

BUILDER_VERSION = 1  # bump when the built store's shape changes: the cache key
FULL = {"messages": 200_000, "tasks": 100_000, "events": 1_000_000}
QUICK = {"messages": 20_000, "tasks": 5_000, "events": 50_000}
BATCH = 1_000
LABELS = ("bug", "feature", "docs", "tests", "perf", "refactor", "security", "ui", "cli")
# status of a topped-up task, with its weight: most work is finished, a backlog stays
STATUS_MIX = (("done", 55), ("open", 25), ("in_progress", 10), ("blocked", 4), ("cancelled", 6))
SEED = 11


def build(proj: Path, messages: int, tasks: int, events: int) -> None:
    base = bench_search.corpus(messages, rebuild=False)
    if proj.exists():
        shutil.rmtree(proj)
    shutil.copytree(base, proj)
    rng = random.Random(SEED)
    statuses = [s for s, _ in STATUS_MIX]
    weights = [w for _, w in STATUS_MIX]
    started = time.monotonic()
    with agentkeep.open(proj, config={"store.synchronous": "NORMAL"}) as store:
        counts = counted(store)
        sessions = [s.id for s in store.list_sessions()]
        made = counts["tasks"]
        while made < tasks:
            for _ in range(min(BATCH, tasks - made)):
                status = rng.choices(statuses, weights)[0]
                depends = [rng.randint(1, made)] if made and rng.random() < 0.1 else []
                store.add_task(
                    _prose(rng)[:70],
                    body=_prose(rng) + " " + _prose(rng),
                    priority=rng.randint(0, 4),
                    status=status,
                    assignee=f"agent-{rng.randint(0, 11)}"
                    if status in ("in_progress", "done")
                    else None,
                    labels=rng.sample(LABELS, rng.randint(0, 2)),
                    depends_on=depends,
                )
                made += 1
            if made % 10_000 < BATCH:
                progress(f"tasks {made:,}/{tasks:,}", started)
        have = counted(store)["events"]
        n = 0
        while have < events:
            session = sessions[n % len(sessions)]
            n += 1
            batch = tool_events(session, rng)[: events - have]
            while len(batch) < min(BATCH, events - have):
                batch += tool_events(session, rng)[: min(BATCH, events - have) - len(batch)]
            store.record_events(batch, actor="hook:claude")
            have += len(batch)
            if have % 50_000 < BATCH:
                progress(f"events {have:,}/{events:,}", started)
    with agentkeep.open(proj) as store:  # a checkpointed WAL, as a store normally is
        progress(f"built: {counted(store)}", started)


def counted(store: object) -> dict[str, int]:
    status = store.status()  # type: ignore[attr-defined]
    data = status.to_dict()
    counts = data.get("counts", data)
    return {k: int(counts.get(k) or 0) for k in ("events", "tasks", "notes", "sessions")}


def progress(what: str, started: float) -> None:
    print(f"  {what} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)


def cached_store(cache: Path, quick: bool) -> Path:
    sizes = QUICK if quick else FULL
    key = "-".join(f"{v}" for v in sizes.values())
    proj = cache / f"serve-v{BUILDER_VERSION}-{key}"
    done = proj / ".built"
    if not done.exists():
        print(f"building {proj} …", file=sys.stderr, flush=True)
        started = time.monotonic()
        build(proj, **sizes)
        done.write_text(f"{time.monotonic() - started:.0f} s\n")
    return proj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cache", type=Path, default=HERE / ".scale-cache")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    print(cached_store(args.cache, args.quick))


if __name__ == "__main__":
    main()
