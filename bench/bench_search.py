"""Full-text search over transcript messages, notes and tasks (or hook captures): raw FTS5
doing the same work vs ``Store.search``, side by side, in one run.

    python bench/bench_search.py [--messages 200000] [--rounds 3] [--quick] [--rebuild]
                                 [--captures]

``--captures``: the same texts stored as hook deliveries instead of transcript messages —
half prompts (``{"prompt": text}``), half tool calls (``{"tool_input": {"command": …},
"tool_response": {"stdout": text}}``) — written through ``capture.Writer.capture`` (the
messages index is then empty, so this measures the search box over what hooks captured).

The corpus is generated at run time: ``--messages`` transcript messages (default 200k,
~80 MB of text; ``--quick``: 20k) of 50–2,000 characters, words drawn from a Zipf-like
vocabulary (s = 1.05) of 40k code and agent terms — English function words and common
programming words first, then made-up identifiers, snake_case compounds and numbered
names — in sessions of 100 messages, one minute apart. It is written through
``capture.Writer`` (redaction included) in transactions of 20k messages; the FTS index is
kept by the schema's triggers. Beside each session's messages agents leave 2 tasks (a title
and a body) and 2 notes (``add_task``/``add_note``; ``bench_scale``'s proportions), drawn
from the same text. The built store is cached in the temp directory
(``agentkeep-bench-search-<n>-notes``) and reused by later runs (``--rebuild`` forces a
build).

Queries (each term quoted, as ``Store.search`` sends it):

a. 50 ordinary words (vocabulary ranks 50–5,000: each in ~0.1–10% of the messages);
b. the most common word (in nearly every message), 50 times;
c. 30 three-letter prefixes (``abc*``) and d. 20 two-letter prefixes, drawn from the
   text's own words, so frequent prefixes come up as often as they would be typed.

Run output (kind ``output``) is scanned, not indexed: the last part of the run prints
``Store.search(q, kinds=["output"])`` over 3 sealed streams of ~2.2 MB of generated log
lines each (built in a fresh temporary store), cold (the tail cache cleared before each
query) and warm (a search box asking again), with no FTS5 baseline (there is no index).

Three sides, on the same queries, taking turns to go first (:func:`raw_search`), all over
the kinds ``Store.search`` searches by default (messages, notes, tasks, captures,
artifacts; run output is scanned, and these corpora hold none):

- windowed (the baseline): raw FTS5 on a plain read-only sqlite3 connection doing the work
  ``Store.search`` does — per table, bm25 over its newest ``RANK_WINDOW`` matches (``ORDER
  BY rowid DESC LIMIT N`` inside, ``ORDER BY bm25`` outside), the best 20 of all tables,
  then ``snippet()`` and the hit's columns for those 20 only;
- exact (for reference): the same with bm25 over every match — what ``ORDER BY rank``
  costs;
- agentkeep: ``Store.search(q)`` with its default kinds.

Each figure is printed as the range (min–max) of the per-round p50 or p99 over
``--rounds``, and the ratio agentkeep ÷ windowed likewise; the load average is printed at
the start and at the end. Targets (issue 4): p99 <= 20 ms for ordinary words, <= 50 ms for
the most common word and for 3-letter prefixes. The run also checks that agentkeep's hits
are the windowed query's (same kinds and ids, same order), and for (a) how often its top
20 scores equal exact FTS5's (ranking only the newest matches changes the result only for
words matching more than ``backends.sqlite.search.RANK_WINDOW`` rows of one table).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep

from agentkeep.backends.sqlite import search as sqlite_search  # noqa: E402
from agentkeep.backends.sqlite.search import RANK_WINDOW  # noqa: E402
from agentkeep.services.search import parse_terms  # noqa: E402


def fts_query(query: str) -> str | None:
    """The FTS5 expression ``Store.search`` sends for ``query``."""
    return sqlite_search.fts_query(parse_terms(query))


SEED = 7
PER_SESSION = 100
BATCH = 20_000
TASKS_PER_SESSION = 2  # and as many notes
NOTE_KINDS = ("handoff", "decision", "next_action", "fact")
START = 1_767_225_600  # 2026-01-01T00:00:00Z


def _words(text: str) -> list[str]:
    return text.split()


HEAD = _words(
    "the to of and a in is it that for you this with on be not as are we can if have or "
    "file test error function return value run build import class def self result output "
    "command tool input check update config module package version commit branch merge "
    "review change fix add remove refactor cache store session task agent worker event "
    "stream note artifact query index schema migration backup restore verify hash token "
    "context window key author password access api server client request response header "
    "status retry timeout lock write read transaction path source tests line now let me "
    "will should need first then use used using see here also all but from by at an which "
    "failed passed pytest assert expected got none true false null string int list dict "
    "json yaml toml python rust go node npm pip git diff log trace stack exception raise "
    "main src lib docs readme make install setup script shell bash edit grep glob todo "
    "done next step plan think look found looks like issue bug works working fixed "
    "type types typed mypy ruff lint format black sort order group limit offset "
    "page user users admin role permission auth login logout cookie jwt oauth database "
    "sqlite postgres table column row rows insert select delete where join count sum max "
    "min avg http https url route handler middleware router app service deploy docker "
    "image container kube pod node memory cpu disk io async await thread process signal"
)
SYLLABLES = _words(
    "ka ze ri po mu ta ne shi lo vu ba de gi fo ru sa te ni mo ku pa le ti da go bu ra se "
    "qua ex pro con in ter ment ing ed er ly al ic ous ive ize ate ion tor str cl br tr sp"
)


# -- corpus ---------------------------------------------------------------------------------


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct words, most frequent first."""
    words = list(dict.fromkeys(HEAD))
    seen = set(words)
    while len(words) < size:
        r = rng.random()
        if r < 0.6:
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        elif r < 0.85:
            word = "_".join(rng.choice(words[:400]) for _ in range(2))
        else:
            word = rng.choice(words[:200]) + str(rng.randint(0, 999))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def messages(count: int, vocab: list[str], rng: random.Random) -> Iterator[str]:
    """``count`` texts of 50–2,000 characters (log-normal lengths, mean ~400)."""
    weights = list(itertools.accumulate(1.0 / rank**1.05 for rank in range(1, len(vocab) + 1)))
    for _ in range(count):
        length = int(min(2000, max(50, math.exp(rng.gauss(5.65, 0.75)))))
        words = rng.choices(vocab, cum_weights=weights, k=max(8, length // 6))
        text = " ".join(words)
        if rng.random() < 0.3:
            text = text.capitalize() + "."
        yield text[:2000]


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def build(root: Path, count: int, captures: bool = False) -> tuple[float, int]:
    """Write the corpus into a new store at ``root``: (seconds, bytes of text)."""
    rng = random.Random(SEED)
    vocab = vocabulary(40_000, rng)
    sessions = -(-count // PER_SESSION)
    texts = messages(count + sessions * TASKS_PER_SESSION * 3, vocab, rng)
    root.mkdir(parents=True)
    agentkeep.init_store(root)
    size = 0
    started = time.perf_counter()
    # NORMAL, as bench_scale builds: the notes and tasks are a transaction each.
    with agentkeep.open(root, config={"store.synchronous": "NORMAL"}) as store:
        for first in range(0, count, BATCH):
            with store.transaction() as tx:
                writer = store.capture_writer(tx)
                session = 0
                for i in range(first, min(count, first + BATCH)):
                    if i == first or i % PER_SESSION == 0:
                        session = writer.session(
                            "claude",
                            f"bench-{i // PER_SESSION:06d}",
                            started_at=stamp(START + (i // PER_SESSION) * PER_SESSION * 60),
                        )
                    text = next(texts)
                    size += len(text)
                    if captures:
                        tool = i % 2 == 1
                        writer.capture(
                            source="claude",
                            event="tool_post" if tool else "prompt",
                            dedupe_key=f"c{i}",
                            session_id=session,
                            tool_name="Bash" if tool else None,
                            tool_use_id=f"t{i}" if tool else None,
                            payload={
                                "tool_input": {"command": f"make step{i % 50}"},
                                "tool_response": {"stdout": text},
                            }
                            if tool
                            else {"prompt": text},
                            at=stamp(START + i * 60),
                        )
                        continue
                    writer.message(
                        session,
                        seq=i,
                        external_id=f"m{i}",
                        role="assistant" if i % 2 else "user",
                        kind="text",
                        text=text,
                        at=stamp(START + i * 60),
                    )
            size += agent_records(store, first, min(count, first + BATCH), texts)
            print(f"  built {min(count, first + BATCH):,} rows", flush=True)
        store.catch_up_search()  # messages are indexed after they are stored (schema 8)
    return time.perf_counter() - started, size


def agent_records(store: Any, first: int, end: int, texts: Iterator[str]) -> int:
    """The notes and tasks agents leave beside their transcripts: per session of
    PER_SESSION messages, TASKS_PER_SESSION tasks (a title and a body) and as many notes,
    each on one of them (``bench_scale``'s proportions). Returns the characters written."""
    size = 0
    for index in range(first // PER_SESSION, -(-end // PER_SESSION)):
        for n in range(TASKS_PER_SESSION):
            title, body, note = next(texts), next(texts), next(texts)
            task = store.add_task(title[:70], body=body, priority=n % 5).item
            store.add_note(NOTE_KINDS[(index + n) % len(NOTE_KINDS)], note, task_id=task.id)
            size += len(title[:70]) + len(body) + len(note)
    return size


def corpus(count: int, rebuild: bool, captures: bool = False) -> Path:
    kind = "captures-" if captures else ""
    # "-notes": corpora of earlier versions of this script hold no notes or tasks; "-s8":
    # schema 8 (opening an older corpus would migrate it, and older code could not read it).
    root = Path(tempfile.gettempdir()) / f"agentkeep-bench-search-{kind}{count}-notes-s8"
    done = root / "built.txt"
    if rebuild or not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"building {count:,} messages in {root} (cached for later runs)", flush=True)
        seconds, size = build(root, count, captures)
        done.write_text(f"{seconds:.1f} {size}\n")
    seconds, size = (float(x) for x in done.read_text().split())
    print(
        f"corpus: {count:,} {'captures' if captures else 'messages'}, {size / 1e6:.1f} MB of"
        " text; built and indexed through "
        f"capture.Writer in {seconds:.1f} s ({size / 1e6 / seconds:.1f} MB/s)"
    )
    return root


# -- queries --------------------------------------------------------------------------------


def queries(rng: random.Random) -> dict[str, list[str]]:
    vocab = vocabulary(40_000, random.Random(SEED))
    ordinary = rng.sample([w for w in vocab[50:5000] if w.isalpha()], 50)
    sample = list(itertools.islice(messages(400, vocab, rng), 400))
    words = [w.lower() for text in sample for w in text.split() if w.isalpha()]

    def prefixes(n: int, size: int) -> list[str]:
        counts = Counter(w[:size] for w in words if len(w) >= size)
        pool = list(counts)
        chosen: list[str] = []
        while len(chosen) < n and len(chosen) < len(pool):
            pick = rng.choices(pool, weights=[counts[p] for p in pool])[0]
            if pick not in chosen:
                chosen.append(pick)
        return [p + "*" for p in chosen]

    return {
        "a. ordinary words (50)": ordinary,
        "b. most common word": [vocab[0]] * 50,
        "c. 3-letter prefixes (30)": prefixes(30, 3),
        "d. 2-letter prefixes (20)": prefixes(20, 2),
    }


TARGETS = {
    "a. ordinary words (50)": 20.0,
    "b. most common word": 50.0,
    "c. 3-letter prefixes (30)": 50.0,
}
# The raw baseline's tables: every kind ``Store.search`` searches by default but ``output``
# (scanned, not indexed; these corpora hold no run output), with its bm25 call (a task's
# title weighs twice its body) and the columns a hit shows.
RAW_TABLES = {
    "message": ("messages", "bm25(messages_fts)", "t.at, t.session_id, t.role"),
    "note": ("notes", "bm25(notes_fts)", "t.created_at, t.session_id, t.task_id"),
    "task": ("tasks", "bm25(tasks_fts, 2.0, 1.0)", "t.updated_at, t.title"),
    "capture": ("captures", "bm25(captures_fts)", "t.at, t.session_id, t.event"),
    "artifact": ("artifacts", "bm25(artifacts_fts)", "t.created_at, t.session_id, t.kind"),
}
LIMIT = 20


def raw_search(
    conn: sqlite3.Connection, expression: str, *, window: int | None
) -> list[tuple[str, int, float, str]]:
    """The best LIMIT rows of every indexed table for an FTS5 expression, with snippets:
    (kind, rowid, -bm25, snippet), best first, among equals the newer row.

    ``window=None`` is FTS5's exact ranking: bm25 over every match. ``window=N`` ranks only
    each table's newest N matches (rowid order, which FTS5 streams cheaply) — the work
    ``Store.search`` does. Either way snippets are built for the final rows only.
    """
    candidates: list[tuple[float, int, str, int]] = []
    for kind, (table, bm25, _) in RAW_TABLES.items():
        fts = f"{table}_fts"
        if window is None:
            sql = f"SELECT rowid, {bm25} AS r FROM {fts} WHERE {fts} MATCH ?"
        else:
            sql = (
                f"SELECT rowid, r FROM (SELECT rowid, {bm25} AS r FROM {fts} WHERE {fts} MATCH ?"
                f" ORDER BY rowid DESC LIMIT {window})"
            )
        sql += f" ORDER BY r, rowid DESC LIMIT {LIMIT}"
        candidates += [(r, -rowid, kind, rowid) for rowid, r in conn.execute(sql, (expression,))]
    chosen = sorted(candidates)[:LIMIT]
    snippets: dict[tuple[str, int], str] = {}
    for kind, (table, _, columns) in RAW_TABLES.items():
        ids = [rowid for _, _, k, rowid in chosen if k == kind]
        if not ids:
            continue
        fts = f"{table}_fts"
        sql = (
            f"SELECT f.rowid, snippet({fts}, -1, '«', '»', '…', 16), {columns}"
            f" FROM {fts} f JOIN {table} t ON t.id = f.rowid"
            f" WHERE {fts} MATCH ? AND f.rowid IN ({', '.join('?' for _ in ids)})"
        )
        for row in conn.execute(sql, (expression, *ids)):
            snippets[kind, row[0]] = row[1]
    return [(kind, rowid, -r, snippets[kind, rowid]) for r, _, kind, rowid in chosen]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def span(values: list[float], digits: int = 1) -> str:
    """``min–max`` of per-round figures."""
    low, high = min(values), max(values)
    if f"{low:.{digits}f}" == f"{high:.{digits}f}":
        return f"{low:.{digits}f}"
    return f"{low:.{digits}f}–{high:.{digits}f}"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def load() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"


SIDES = ("exact", "windowed", "agentkeep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20k messages, 2 rounds")
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached corpus")
    parser.add_argument("--captures", action="store_true", help="hook captures, not messages")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 20_000, 2
    print(
        f"bench_search: python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{platform.machine()}, {os.cpu_count()} cpus; RANK_WINDOW={RANK_WINDOW}; {load()}"
    )
    root = corpus(args.messages, args.rebuild, args.captures)
    raw = sqlite3.connect(f"file:{root / '.agentkeep' / 'state.db'}?mode=ro", uri=True)
    counts = {
        kind: raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for kind, (table, _, _) in RAW_TABLES.items()
    }
    print("rows: " + ", ".join(f"{n:,} {kind}s" for kind, n in counts.items()))
    rng = random.Random(SEED + 1)
    classes = queries(rng)
    print(
        f"\nms, each figure the range (min–max) of the per-round figure over {args.rounds}"
        " rounds. exact: raw FTS5, bm25 over every match; windowed: raw FTS5 ranking each"
        f" table's newest {RANK_WINDOW:,} matches, as Store.search does (the baseline);"
        " ratio: agentkeep ÷ windowed (above 1: agentkeep slower)"
    )
    header = (
        f"{'queries':26} {'exact p50':>11} {'p99':>11} {'windowed p50':>13} {'p99':>11}"
        f" {'agentkeep p50':>14} {'p99':>11} {'ratio p50':>10} {'p99':>10} {'target p99':>12}"
    )
    print(header)
    print("-" * len(header))
    same_window = total_window = same_exact = total_exact = 0
    broad = sum(
        raw.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (fts_query(word),)
        ).fetchone()[0]
        > RANK_WINDOW
        for word in classes["a. ordinary words (50)"]
    )
    with agentkeep.open(root, read_only=True) as store:
        for name, terms in classes.items():
            # per side, per round: the times of every query of that round
            times = {side: [[] for _ in range(args.rounds)] for side in SIDES}
            for round_no in range(args.rounds):
                order = SIDES[round_no % 3 :] + SIDES[: round_no % 3]  # take turns going first
                for term in terms:
                    expression = fts_query(term)
                    assert expression is not None
                    results: dict[str, Any] = {}
                    for side in order:
                        if side == "agentkeep":
                            run: Callable[[], object] = lambda t=term: store.search(t)  # noqa: E731
                        else:
                            window = RANK_WINDOW if side == "windowed" else None
                            run = lambda e=expression, w=window: raw_search(raw, e, window=w)  # noqa: E731
                        ms, results[side] = timed(run)
                        times[side][round_no].append(ms)
                    if round_no == 0:
                        mine = [(hit.kind, hit.id) for hit in results["agentkeep"]]
                        total_window += 1
                        same_window += mine == [row[:2] for row in results["windowed"]]
                    if name.startswith("a.") and round_no == 0:
                        # Compare scores, not ids: rows with equal scores tie in any order.
                        theirs = sorted(row[2] for row in results["exact"])
                        scores = sorted(hit.score for hit in results["agentkeep"])
                        total_exact += 1
                        same_exact += len(theirs) == len(scores) and all(
                            abs(x - y) < 1e-3 for x, y in zip(theirs, scores, strict=True)
                        )
            p50 = {side: [statistics.median(r) for r in times[side]] for side in SIDES}
            p99 = {side: [pct(r, 99) for r in times[side]] for side in SIDES}
            ratio50 = [a / w for a, w in zip(p50["agentkeep"], p50["windowed"], strict=True)]
            ratio99 = [a / w for a, w in zip(p99["agentkeep"], p99["windowed"], strict=True)]
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                met = max(p99["agentkeep"]) <= target
                verdict = f"<= {target:.0f} {'ok' if met else 'MISSED'}"
            print(
                f"{name:26} {span(p50['exact']):>11} {span(p99['exact']):>11}"
                f" {span(p50['windowed']):>13} {span(p99['windowed']):>11}"
                f" {span(p50['agentkeep']):>14} {span(p99['agentkeep']):>11}"
                f" {span(ratio50, 2) + '×':>10} {span(ratio99, 2) + '×':>10} {verdict:>12}"
            )
        print()
        print(
            f"same hits: agentkeep's top {LIMIT} (kind, id, in order) equals the windowed raw"
            f" query's for {same_window}/{total_window} queries of round 1"
        )
        print(
            f"ordinary words: agentkeep's top-{LIMIT} scores equal exact FTS5's for"
            f" {same_exact}/{total_exact} queries; {broad} of them match more than"
            f" RANK_WINDOW = {RANK_WINDOW:,} messages (only those are ranked among their newest"
            " matches)"
        )
        # Filters, for information: a session, and a recent window (messages narrow it
        # by the index on messages.at; captures have none and filter the joined rows).
        print("filters (agentkeep only):")
        session = raw.execute("SELECT max(id) FROM sessions").fetchone()[0]
        common = classes["b. most common word"][0]
        recent = {"since": stamp(START + args.messages * 60 - 86400)}
        for label, kwargs in (
            ("most common word, --session", {"session": session}),
            ("most common word, --since (last 24h)", recent),
            ("ordinary word, --since (last 24h)", recent),
        ):
            term = common if label.startswith("most") else classes["a. ordinary words (50)"][0]
            filtered = [
                timed(lambda t=term, k=kwargs: store.search(t, **k))[0]  # type: ignore[misc]
                for _ in range(20)
            ]
            print(
                f"{label:40} p50 {statistics.median(filtered):7.2f} ms"
                f"  p99 {pct(filtered, 99):7.2f} ms"
            )
    output_scan(args.rounds)
    print(f"\nat the end: {load()}")


def output_scan(rounds: int) -> None:
    """Search over run output: a scan of the newest OUTPUT_SCAN_BYTES, cold and warm."""
    import agentkeep.services.search as search_module

    rng = random.Random(SEED + 2)
    vocab = HEAD[:40] + [f"ident{i}" for i in range(5000)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        agentkeep.init_store(root)
        with agentkeep.open(root) as store:
            for _ in range(3):
                session = store.start_session(source="run").item.id
                writer = store.open_stream(session, "stdout")
                text = "\n".join(
                    " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 14)))
                    for _ in range(25_000)
                )
                data = (text + "\n").encode()
                for start in range(0, len(data), 65536):
                    writer.write(data[start : start + 65536])
                store.seal_stream(writer.close().id)
        window = search_module.OUTPUT_SCAN_BYTES
        print()
        print(f"run output ({window >> 20} MiB scanned of 3 x ~2.2 MB sealed streams), ms:")
        with agentkeep.open(root, read_only=True) as store:
            for query in ("the", "ident42", "ident4*", "error failed", "zzzz"):
                cold: list[float] = []
                warm: list[float] = []
                for _ in range(rounds * 5):
                    search_module._CACHE.clear()
                    cold.append(timed(lambda q=query: store.search(q, kinds=["output"]))[0])
                    warm.append(timed(lambda q=query: store.search(q, kinds=["output"]))[0])
                print(
                    f"  {query:14} cold p50 {statistics.median(cold):6.1f} p99 {pct(cold, 99):6.1f}"
                    f"   warm p50 {statistics.median(warm):6.1f} p99 {pct(warm, 99):6.1f}"
                )


if __name__ == "__main__":
    main()
