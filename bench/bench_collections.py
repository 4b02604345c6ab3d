"""Collections: querying a directory of user input records, side by side with the script a
project would otherwise write (read every JSON file, filter, sort).

    .venv/bin/python bench/bench_collections.py [--records 10000] [--rounds 5] [--changed 100]

Payload: ``--records`` campaign records as JSON files of ~10 fields (text, numbers, a
boolean, an ISO date, a list, a nested object) in ``input/campaigns/``, declared as a
collection with a JSON Schema. Each round measures, on the same files:

- query (status=active, budget>2500, sorted by -budget, first 20): agentkeep's
  ``records()`` with its rescan (stat of every file: rescan_ms=0) and without it (the
  index as it is), vs the baseline reading and parsing every file each time;
- rescan after ``--changed`` files were rewritten outside agentkeep: ``docs.refresh()``
  (stat every file, read the changed ones) vs the baseline reading every file.

The one-time cost of indexing every file (with schema validation) is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import agentkeep

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "paused", "done"]},
        "budget": {"type": "number"},
        "live": {"type": "boolean"},
        "starts": {"type": "string"},
        "channels": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["status", "budget"],
}
WORDS = [
    "spring",
    "summer",
    "launch",
    "retarget",
    "email",
    "social",
    "search",
    "video",
    "partner",
    "promo",
]


def record(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "title": " ".join(rng.choices(WORDS, k=4)) + f" #{i}",
        "status": rng.choice(["active", "paused", "done"]),
        "budget": rng.randrange(100, 10_000),
        "live": rng.random() < 0.5,
        "starts": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "channels": rng.sample(["email", "social", "search", "video"], k=2),
        "owner": {"name": rng.choice(["ada", "bob", "cy"]), "team": "growth"},
        "notes": " ".join(rng.choices(WORDS, k=30)),
        "ctr": round(rng.random(), 4),
        "region": rng.choice(["emea", "amer", "apac"]),
    }


def baseline_query(directory: Path) -> list[str]:
    found = []
    for path in directory.iterdir():
        data = json.loads(path.read_bytes())
        if data.get("status") == "active" and data.get("budget", 0) > 2500:
            found.append((-data["budget"], path.stem))
    found.sort()  # by budget, descending, then by name (as records() breaks ties)
    return [name for _, name in found[:20]]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def spread(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{statistics.median(ms):8.1f} ms  [{ms[0]:.1f}–{ms[-1]:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--changed", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(13)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["AGENTKEEP_HOME"] = str(root / "home")
        directory = root / "input" / "campaigns"
        directory.mkdir(parents=True)
        old = time.time() - 3600
        for i in range(args.records):
            path = directory / f"c{i:06d}.json"
            path.write_text(json.dumps(record(rng, i)))
            os.utime(path, (old, old))
        agentkeep.init_store(root)
        with agentkeep.open(root, config={"docs.rescan_ms": 0}) as store:
            first, _ = timed(
                lambda: store.collections.declare(
                    "campaigns", SCHEMA, type="campaign", root="input/campaigns"
                )
            )
            print(f"{args.records:,} records, {args.rounds} rounds (median [min–max])")
            print(f"index every file once (declare, validated): {first:.2f} s")
            query = {"where": ["status=active", "budget>2500"], "sort": "-budget", "limit": 20}
            rows: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                seconds, expected = timed(lambda: baseline_query(directory))
                rows.setdefault("query, baseline: read + parse every file", []).append(seconds)
                seconds, got = timed(lambda: store.collections.records("campaigns", **query))
                assert [r.name for r in got] == expected
                rows.setdefault("query, agentkeep records() + rescan (stat)", []).append(seconds)
                with agentkeep.open(root, config={"docs.rescan_ms": 86_400_000}) as warm:
                    warm.docs.refresh_if_due()
                    seconds, got = timed(lambda w=warm: w.collections.records("campaigns", **query))
                assert [r.name for r in got] == expected
                rows.setdefault("query, agentkeep records(), index as is", []).append(seconds)
                for path in rng.sample(sorted(directory.iterdir()), args.changed):
                    data = json.loads(path.read_bytes())
                    data["budget"] = rng.randrange(100, 10_000)
                    path.write_text(json.dumps(data))
                    os.utime(path, (old + 60, old + 60))  # not racily clean: stat decides
                seconds, report = timed(store.docs.refresh)
                assert report.updated <= args.changed, report
                rows.setdefault(f"rescan, {args.changed} changed: agentkeep refresh()", []).append(
                    seconds
                )
                seconds, _ = timed(
                    lambda: [json.loads(p.read_bytes()) for p in directory.iterdir()]
                )
                rows.setdefault(f"rescan, {args.changed} changed: baseline reads all", []).append(
                    seconds
                )
            width = max(len(name) for name in rows)
            for name, values in rows.items():
                print(f"{name.ljust(width)}  {spread(values)}")
            base = statistics.median(rows["query, baseline: read + parse every file"])
            for name in ("query, agentkeep records() + rescan (stat)",
                         "query, agentkeep records(), index as is"):  # fmt: skip
                print(f"ratio baseline / {name.split(', ', 1)[1]}: "
                      f"{base / statistics.median(rows[name]):.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
