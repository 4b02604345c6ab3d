"""Store write path, side by side with raw sqlite3, in one run.

    python bench/bench_store.py [--events N] [--batches N] [--rounds R]

1. Durable single-event append: ``Store.record_event`` vs raw sqlite3 doing the same work
   (json.dumps + INSERT in BEGIN IMMEDIATE … COMMIT) on an identical schema with the same
   settings (WAL, synchronous=FULL, foreign_keys, secure_delete, auto_vacuum=INCREMENTAL).
   Target ≥ 0.9×, and CPU (user + system, measured per side) ≤ 1.3×.
2. Batched recording, 1,000 events per transaction: ``Store.record_events`` vs raw sqlite3
   ``executemany`` in one transaction. Target ≥ 0.8×.

Both run with two payloads: a short tool result without any credential word (meant as the
privacy boundary's best case; the output says whether the redactor's keyword gate lets it
through all the same), and transcript-like text (prose and code, 200–2,000 bytes)
of which about half uses ordinary words such as "token", "key", "password" and "secret"
the way agent transcripts do — no secrets, but every such event passes the redactor's
keyword gate and is scanned by its rules.
(Start-up is measured by ``bench_startup.py``; concurrent writers by ``bench_writers.py``.)

For attribution only, the same store calls are also timed with the redactor stubbed out
(never a supported mode): the difference is what the privacy boundary costs. And the commit
high-water mark (highwater.py: a pread, two primary-key lookups and a pwrite per
write transaction) is timed on and off with ``synchronous=NORMAL``, where no fsync hides
CPU costs: the difference is its cost per transaction in microseconds.

Rounds alternate baseline and agentkeep so drift on a shared machine hits both; each
ratio is taken within a round and printed as the median and the range (min–max) over the
rounds, with the load average before and after. Absolute numbers vary ±25% between runs;
the ratios are the result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:  # PYTHONPATH picks the checkout to measure (bench/compare.py sets it)
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import agentkeep
from agentkeep import redact
from agentkeep.backends.sqlite.migrate import split_statements
from agentkeep.migrations import MIGRATIONS

PAYLOAD = {
    "tool": "Bash",
    "command": "pytest -q tests/test_parser.py::test_nested_lists",
    "exit_code": 1,
    "duration_ms": 1834,
    "cwd": "src/parser",
    "summary": "1 failed, 41 passed in 1.83s; AssertionError: expected 3 nested items, got 2",
    "files": ["src/parser/lists.py", "tests/test_parser.py"],
}
# Transcript-like pieces. The keyword ones read the way agents write about credentials and
# lookups: ordinary words, never a value a rule should remove.
PROSE = [
    "The failing test builds the list before the parser sees the closing bracket.",
    "I will run the suite again after moving the fixture into conftest.py.",
    "That import is only needed for type checking, so it can go under TYPE_CHECKING.",
    "The migration adds an index on events.at; queries by time no longer scan the table.",
    "Reading src/parser/lists.py to see where nested items are flattened.",
    "All 42 tests pass now; the remaining warning comes from a deprecated argument.",
    "The retry loop sleeps with exponential backoff and gives up after five attempts.",
    "Next I'll update the changelog and open the pull request against main.",
]
CODE = [
    "def flatten(items):\n    out = []\n    for item in items:\n"
    "        out.extend(flatten(item) if isinstance(item, list) else [item])\n    return out\n",
    "$ pytest -q tests/test_parser.py\n..F.....\nFAILED tests/test_parser.py::test_nested"
    " - assert 2 == 3\n1 failed, 7 passed in 0.41s\n",
    "with open(path, encoding='utf-8') as handle:\n    rows = [line.split('\\t') for line in"
    " handle]\n",
    "@@ -12,7 +12,8 @@ class Parser:\n-        self.depth = 0\n+        self.depth = 0\n"
    "+        self.stack: list[int] = []\n",
]
KEYWORD_PROSE = [
    "The token count is over the model's limit, so I will trim the context first.",
    "Each key in the cache maps to a parsed file; a missing key means we read it again.",
    "The password field on the login form is only validated on the client side.",
    "Don't log the secret; the handler should read it from the environment instead.",
    "The API key comes from settings, never from the source; the test uses a stub key.",
    "Rotating the access token is the auth service's job, not this module's.",
]
KEYWORD_CODE = [
    "def refresh_token(self) -> str:\n    response = self.session.post(self.token_url)\n"
    "    return response.json()['access_token']\n",
    "for key, value in sorted(config.items()):\n    print(f'{key} = {value}')\n",
    "if not check_password(user, password):\n    raise AuthError('wrong password')\n",
    "secret_name = os.environ['APP_SECRET_NAME']\nclient = vault.Client(secret_name)\n",
    "tokens = tokenizer.encode(text)\nif len(tokens) > max_tokens:\n"
    "    tokens = tokens[-max_tokens:]\n",
]
INSERT = "INSERT INTO events (at, actor, entity, entity_id, kind, data) VALUES (?, ?, ?, ?, ?, ?)"


def raw_connection(path: Path) -> sqlite3.Connection:
    """The baseline: stdlib sqlite3 with agentkeep's settings and schema, nothing else."""
    conn = sqlite3.connect(path, isolation_level=None)
    # As every store is created (backends/sqlite/migrate.py): the pointer-map pages it
    # keeps cost a few µs per event in a batch, so a baseline without it is not the same
    # work (measured: 12.9 against 16.1 µs CPU per event, one SQL on either database).
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    for pragma in ("synchronous=FULL", "busy_timeout=5000", "foreign_keys=ON", "secure_delete=ON"):
        conn.execute(f"PRAGMA {pragma}")
    for migration in MIGRATIONS:
        for statement in split_statements(migration.sql_for("sqlite")):
            conn.execute(statement)
    return conn


def transcript_payloads(count: int, seed: int = 14) -> list[dict[str, object]]:
    """Event data holding transcript-like text of 200–2,000 bytes; every other one uses
    keyword words (``token``, ``key``, ``password``, ``secret``) in ordinary prose and code."""
    rng = random.Random(seed)
    payloads: list[dict[str, object]] = []
    for i in range(count):
        target = rng.randint(200, 2000)
        keyword = rng.choice(KEYWORD_PROSE + KEYWORD_CODE) if i % 2 == 0 else ""
        pieces: list[str] = []
        size = len(keyword)
        while size < target:
            piece = rng.choice(PROSE) if rng.random() < 0.6 else rng.choice(CODE)
            pieces.append(piece)
            size += len(piece) + 1
        if keyword:
            pieces.insert(rng.randint(0, len(pieces)), keyword)
        text = "\n".join(pieces)[:2000]
        if i % 4 < 2:
            payloads.append({"role": "assistant", "text": text})
        else:
            payloads.append({"tool": "Bash", "command": "pytest -q", "output": text})
    return payloads


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def raw_single(conn: sqlite3.Connection, n: int, payloads: list[dict[str, object]]) -> float:
    start = time.perf_counter()
    for i in range(n):
        data = json.dumps({**payloads[i % len(payloads)], "n": i}, ensure_ascii=False)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, (now(), "bench", "custom", None, "tool.finished", data))
        conn.execute("COMMIT")
    return n / (time.perf_counter() - start)


def store_single(
    store: agentkeep.Store, n: int, payloads: list[dict[str, object]] | None = None
) -> float:
    payloads = payloads or [PAYLOAD]
    start = time.perf_counter()
    for i in range(n):
        store.record_event("tool.finished", data={**payloads[i % len(payloads)], "n": i})
    return n / (time.perf_counter() - start)


def raw_batched(
    conn: sqlite3.Connection, batches: int, payloads: list[dict[str, object]], size: int = 1000
) -> float:
    start = time.perf_counter()
    for b in range(batches):
        at = now()
        rows = [
            (
                at,
                "bench",
                "custom",
                None,
                "tool.finished",
                json.dumps(
                    {**payloads[(b * size + i) % len(payloads)], "n": b * size + i},
                    ensure_ascii=False,
                ),
            )
            for i in range(size)
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    return batches * size / (time.perf_counter() - start)


def store_batched(
    store: agentkeep.Store, batches: int, payloads: list[dict[str, object]], size: int = 1000
) -> float:
    start = time.perf_counter()
    for b in range(batches):
        store.record_events(
            [
                {
                    "kind": "tool.finished",
                    "data": {**payloads[(b * size + i) % len(payloads)], "n": b * size + i},
                }
                for i in range(size)
            ]
        )
    return batches * size / (time.perf_counter() - start)


@contextlib.contextmanager
def mark_detached(store: agentkeep.Store) -> Iterator[None]:
    """The store's connection without its high-water mark guard (attribution only)."""
    guard = store._conn.guard
    store._conn.guard = None
    try:
        yield
    finally:
        store._conn.guard = guard


def mark_cost_us(store: agentkeep.Store, n: int, rounds: int) -> tuple[float, float]:
    """Median µs per single-event transaction with and without the mark (NORMAL sync)."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(rounds):
        on.append(1e6 / store_single(store, n))
        with mark_detached(store):
            off.append(1e6 / store_single(store, n))
    return statistics.median(on), statistics.median(off)


@contextlib.contextmanager
def redaction_stubbed() -> Iterator[None]:
    saved = redact.redact_text, redact.may_contain_secret
    redact.redact_text = lambda text: (text, {})  # type: ignore[assignment]
    redact.may_contain_secret = lambda text: False  # type: ignore[assignment]
    try:
        yield
    finally:
        redact.redact_text, redact.may_contain_secret = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="single appends per round")
    parser.add_argument("--batches", type=int, default=20, help="1,000-event batches per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agentkeep-bench-"))
    os.environ["AGENTKEEP_HOME"] = str(work / "home")
    (work / "proj").mkdir()
    subprocess.run(["git", "init", "-q", str(work / "proj")], check=True)
    agentkeep.init_store(work / "proj")
    store = agentkeep.open(work / "proj", actor="bench")
    raw = raw_connection(work / "raw.db")

    plain = [PAYLOAD]
    transcript = transcript_payloads(500)
    gated = [redact.may_contain_secret(json.dumps(p)) for p in transcript]
    load_before = os.getloadavg()
    keys = (
        "raw1",
        "ak1",
        "free1",
        "rawN",
        "akN",
        "freeN",
        "rawT1",
        "akT1",
        "freeT1",
        "rawTN",
        "akTN",
        "freeTN",
    )
    results: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}  # user + system us per event

    def timed(key: str, work: Callable[[], float], events: int) -> None:
        started = time.process_time()
        results[key].append(work())
        cpu[key].append((time.process_time() - started) / events * 1e6)

    single, batched = args.events, args.batches * 1000
    for _ in range(args.rounds):
        timed("raw1", lambda: raw_single(raw, single, plain), single)
        timed("ak1", lambda: store_single(store, single, plain), single)
        timed("rawN", lambda: raw_batched(raw, args.batches, plain), batched)
        timed("akN", lambda: store_batched(store, args.batches, plain), batched)
        timed("rawT1", lambda: raw_single(raw, single, transcript), single)
        timed("akT1", lambda: store_single(store, single, transcript), single)
        timed("rawTN", lambda: raw_batched(raw, args.batches, transcript), batched)
        timed("akTN", lambda: store_batched(store, args.batches, transcript), batched)
        with redaction_stubbed():
            timed("free1", lambda: store_single(store, single, plain), single)
            timed("freeN", lambda: store_batched(store, args.batches, plain), batched)
            timed("freeT1", lambda: store_single(store, single, transcript), single)
            timed("freeTN", lambda: store_batched(store, args.batches, transcript), batched)
    med = {k: statistics.median(v) for k, v in results.items()}
    fast = agentkeep.open(work / "proj", actor="bench", config={"store.synchronous": "NORMAL"})
    with_mark, without_mark = mark_cost_us(fast, args.events, max(3, args.rounds))
    fast.close()

    store.close()
    raw.close()

    def ratios(ours: str, base: str, table: dict[str, list[float]] = results) -> str:
        """Median and range of the per-round ratios ours/base."""
        per_round = [o / b for o, b in zip(table[ours], table[base], strict=True)]
        low, high = min(per_round), max(per_round)
        return f"{statistics.median(per_round):.2f}× (rounds {low:.2f}-{high:.2f}×)"

    def line(label: str, base: str, ours: str, target: str) -> None:
        print(
            f"{label:<22} raw sqlite3 {med[base]:,.0f}/s, agentkeep {med[ours]:,.0f}/s "
            f"-> ratio {ratios(ours, base)} (target >= {target})"
        )

    def cpu_line(label: str, base: str, ours: str) -> None:
        print(
            f"{label:<22} CPU raw sqlite3 {statistics.median(cpu[base]):.0f} us/event, "
            f"agentkeep {statistics.median(cpu[ours]):.0f} -> {ratios(ours, base, cpu)} "
            "(target <= 1.3)"
        )

    print(
        f"{args.rounds} rounds; load average {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after the appends ({os.cpu_count()} cores)"
    )
    line("durable single append:", "raw1", "ak1", "0.9")
    cpu_line("", "raw1", "ak1")
    line("batched 1000/txn:", "rawN", "akN", "0.85")
    print(
        f"transcript payload ({len(transcript)} texts, 200-2,000 bytes; the redactor's keyword "
        f"gate passes {sum(gated[0::2])} of the {len(gated[0::2])} with keyword words, "
        f"{sum(gated[1::2])} of the {len(gated[1::2])} without; the short tool result above: "
        f"{'passes' if redact.may_contain_secret(json.dumps(PAYLOAD)) else 'skipped'}):"
    )
    line("  durable single:", "rawT1", "akT1", "0.9")
    cpu_line("", "rawT1", "akT1")
    line("  batched 1000/txn:", "rawTN", "akTN", "0.85")
    print(
        f"  attribution, redactor stubbed out: single {ratios('free1', 'raw1')}, "
        f"CPU {ratios('free1', 'raw1', cpu)}; transcript single {ratios('freeT1', 'rawT1')}, "
        f"CPU {ratios('freeT1', 'rawT1', cpu)}; batched {ratios('freeN', 'rawN')}, "
        f"transcript batched {ratios('freeTN', 'rawTN')} (the gap to these is the privacy "
        "boundary)"
    )
    print(
        f"  high-water mark, synchronous=NORMAL: {with_mark:.1f} us/txn with it, "
        f"{without_mark:.1f} us/txn without -> +{with_mark - without_mark:.1f} us per write "
        "transaction"
    )


if __name__ == "__main__":
    main()
