"""What semantic ranking costs when it is on: embedding chunks and ranking a query by
meaning, beside plain SQLite FTS5 doing the full-text side of the same work, in one run.

    python bench/bench_semantic.py [--chunks 10000] [--queries 200] [--rounds 3]
                                   [--model PATH] [--quick]

The corpus is generated at run time: ``--chunks`` spec sections (default 10k; ``--quick``
2k) of 30–300 words drawn from a Zipf-like vocabulary (s = 1.05) of 30k words, with one
topic's words mixed in (auth, database, cooking, music: the test model's). Queries are 2–4
words, half from one topic, half ordinary vocabulary words.

Models, each measured the same way:

- **tiny-256**: ``tests/helpers/tinymodel.py`` built with 30k words and 256 dimensions,
  the shape of ``potion-base-8M`` (29.5k tokens × 256), so its costs are a real model's;
  its vectors are made up.
- a real potion model, when one is present: ``--model PATH`` (or
  ``AGENTKEEP_BENCH_SEMANTIC_MODEL``), else ``minishlab/potion-base-8M`` if it is already
  in huggingface_hub's cache (looked up with ``HF_HUB_OFFLINE=1``: nothing is downloaded).

Measured:

1. indexing: chunks per second through ``Embedder.encode`` (batches of 256, what
   ``semantic.refresh_vectors`` does per transaction) vs inserting the same chunks into an
   FTS5 table (one transaction per batch), with the ratio;
2. query latency p50/p99 over the chunk vectors, one plain sqlite3 database holding both:
   - **fts**: ``SELECT rowid … WHERE chunks_fts MATCH ? ORDER BY rank LIMIT 20`` (the
     baseline),
   - **semantic**: read every vector of the model (``SELECT chunk_id, vector``), embed the
     query, numpy cosine, best 20 (what ``semantic.rank`` does),
   - **semantic, vectors in memory**: the same without the read (what is left if the
     vectors were cached),
   - **fused**: fts best 100 + semantic best 100, ``semantic.fuse``, best 20 (what a
     context query with semantic ranking on costs in all).

Each side runs its queries in turn, the order rotating between rounds; figures are the
range (min–max) of the per-round p50 and p99 over ``--rounds``, with the ratio to fts.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
try:
    import agentkeep  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests"))

from agentkeep import semantic  # noqa: E402
from agentkeep.config import Config  # noqa: E402

from helpers.tinymodel import TOPICS, build_tiny_model, vocabulary  # noqa: E402

VOCABULARY = 30_000
DIM = 256
BATCH = semantic.REFRESH_BATCH
LIMIT = 20
FUSE_DEPTH = 100


def zipf_weights(count: int) -> list[float]:
    """Cumulative Zipf-like weights (s = 1.05) of ``count`` ranks, for ``rng.choices``."""
    return list(itertools.accumulate(1 / (rank**1.05) for rank in range(1, count + 1)))


def corpus(chunks: int, seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = [w for w in vocabulary(VOCABULARY) if w.startswith("w")]
    rng.shuffle(words)
    topics = list(TOPICS.values())
    weights = zipf_weights(len(words))
    texts = []
    for _ in range(chunks):
        body = rng.choices(words, cum_weights=weights, k=rng.randint(30, 300))
        topic = rng.choice(topics)
        for _ in range(max(1, len(body) // 10)):
            body.insert(rng.randrange(len(body) + 1), rng.choice(topic))
        texts.append(" ".join(body))
    queries = []
    for n in range(400):
        size = rng.randint(2, 4)
        source = list(rng.choice(topics)) if n % 2 else words[:3000]
        queries.append(" ".join(rng.choice(source) for _ in range(size)))
    return texts, queries


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def span(values: list[float], unit: str = "ms", digits: int = 2) -> str:
    low, high = min(values), max(values)
    return (
        f"{low:.{digits}f}–{high:.{digits}f} {unit}" if high != low else f"{low:.{digits}f} {unit}"
    )


def load_embedder(model: str) -> semantic.Embedder:
    return semantic.Embedder.load(Config.load(overrides={"semantic.model": model}, env={}))


def real_model(argument: str | None) -> str | None:
    chosen = argument or os.environ.get("AGENTKEEP_BENCH_SEMANTIC_MODEL")
    if chosen:
        return chosen
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download("minishlab/potion-base-8M", local_files_only=True)
    except Exception:
        return None


class Database:
    """A plain sqlite3 database with the chunks' text, their FTS5 index and vectors."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        self.conn.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id')"
        )
        self.conn.execute(
            "CREATE TABLE vectors (chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id), "
            "model TEXT NOT NULL, vector BLOB NOT NULL)"
        )

    def index_text(self, texts: list[str]) -> float:
        """Insert the chunks and their FTS5 rows, a transaction per batch: seconds."""
        start = time.perf_counter()
        for first in range(0, len(texts), BATCH):
            rows = list(enumerate(texts[first : first + BATCH], first + 1))
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT INTO chunks (id, text) VALUES (?, ?)", rows)
            self.conn.executemany("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", rows)
            self.conn.execute("COMMIT")
        return time.perf_counter() - start

    def index_vectors(self, embedder: semantic.Embedder, texts: list[str]) -> float:
        """Embed the chunks and store their vectors, a transaction per batch: seconds."""
        self.conn.execute("DELETE FROM vectors")
        start = time.perf_counter()
        for first in range(0, len(texts), BATCH):
            vectors = embedder.encode(texts[first : first + BATCH])
            rows = [(first + 1 + i, embedder.model_id, v) for i, v in enumerate(vectors)]
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO vectors (chunk_id, model, vector) VALUES (?, ?, ?)", rows
            )
            self.conn.execute("COMMIT")
        return time.perf_counter() - start

    def fts(self, query: str, limit: int = LIMIT) -> list[int]:
        match = " OR ".join(f'"{word}"' for word in query.split())
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
                (match, limit),
            )
        ]

    def vectors(self, model_id: str) -> list[tuple[int, bytes]]:
        return list(
            self.conn.execute(
                "SELECT chunk_id, vector FROM vectors WHERE model = ? ORDER BY chunk_id",
                (model_id,),
            )
        )


def measure(
    sides: dict[str, Callable[[str], Any]], queries: list[str], rounds: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per side, the per-round p50s and p99s (ms)."""
    names = list(sides)
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            run = sides[name]
            run(queries[0])  # warm
            times = []
            for query in queries:
                start = time.perf_counter()
                run(query)
                times.append((time.perf_counter() - start) * 1000)
            out[name][0].append(statistics.median(times))
            out[name][1].append(pct(times, 0.99))
    return out


def bench_model(
    label: str, model: str, db: Database, texts: list[str], queries: list[str], args: Any
) -> None:
    start = time.perf_counter()
    embedder = load_embedder(model)
    loaded = time.perf_counter() - start
    print(f"\n## {label}: {embedder.model_id}, {embedder.dim} dimensions, loaded in {loaded:.2f} s")
    text_rates, vector_rates = [], []
    for _ in range(args.rounds):
        db.conn.execute("DELETE FROM chunks_fts")
        db.conn.execute("DELETE FROM vectors")
        db.conn.execute("DELETE FROM chunks")
        text_rates.append(len(texts) / db.index_text(texts))
        vector_rates.append(len(texts) / db.index_vectors(embedder, texts))
    ratios = [v / t for v, t in zip(vector_rates, text_rates, strict=True)]
    print(f"indexing {len(texts):,} chunks (rounds: {args.rounds}), chunks/s:")
    print(f"  fts5 insert (baseline)   {span(text_rates, '/s', 0)}")
    print(f"  embed + store vectors    {span(vector_rates, '/s', 0)}")
    print(f"  ratio embed ÷ fts5       {span(ratios, '×', 2)}")

    in_memory = db.vectors(embedder.model_id)

    def semantic_read(query: str) -> list[tuple[int, float]]:
        return embedder.similar(query, db.vectors(embedder.model_id), LIMIT)

    def semantic_cached(query: str) -> list[tuple[int, float]]:
        return embedder.similar(query, in_memory, LIMIT)

    def fused(query: str) -> list[tuple[int, float]]:
        by_text = db.fts(query, FUSE_DEPTH)
        by_meaning = [c for c, _ in embedder.similar(query, db.vectors(embedder.model_id), 100)]
        return semantic.fuse([by_text, by_meaning])[:LIMIT]

    sides = {
        "fts": db.fts,
        "semantic": semantic_read,
        "semantic, vectors in memory": semantic_cached,
        "fused (fts + semantic)": fused,
    }
    results = measure(sides, queries[: args.queries], args.rounds)
    base50, base99 = results["fts"]
    print(f"query over {len(texts):,} chunk vectors ({args.queries} queries × {args.rounds}):")
    print(f"  {'side':30} {'p50':>18} {'p99':>18} {'p50 ÷ fts':>16} {'p99 ÷ fts':>16}")
    for name, (p50, p99) in results.items():
        r50 = [a / b for a, b in zip(p50, base50, strict=True)]
        r99 = [a / b for a, b in zip(p99, base99, strict=True)]
        print(
            f"  {name:30} {span(p50):>18} {span(p99):>18} "
            f"{span(r50, '×', 1):>16} {span(r99, '×', 1):>16}"
        )


def bench_store(
    label: str, model: str, texts: list[str], queries: list[str], args: Any, tmp: Path
) -> None:
    """The same through agentkeep: documents on disk, indexed by ``store.docs.refresh()``,
    embedded by ``semantic.refresh_vectors``, ranked by ``semantic.rank``; the baseline is
    raw FTS5 over the store's own ``doc_chunks_fts`` on a plain read-only connection."""
    import agentkeep

    root = tmp / f"project-{label.split()[0]}"
    folder = root / ".agentkeep" / "docs" / "bench"
    root.mkdir()
    agentkeep.init_store(root)
    folder.mkdir(parents=True)
    per_doc = 10
    for first in range(0, len(texts), per_doc):
        sections = [
            f"## Section {n}\n\n{text}\n"
            for n, text in enumerate(texts[first : first + per_doc], first)
        ]
        (folder / f"spec-{first // per_doc:05d}.md").write_text(
            f"# Spec {first // per_doc}\n\n" + "\n".join(sections), encoding="utf-8"
        )
    print(
        f"\n## through a store ({label}): {len(texts):,} chunks in {len(texts) // per_doc:,} files"
    )
    with agentkeep.open(root, config={"semantic.model": model}) as store:
        start = time.perf_counter()
        store.docs.refresh()
        indexed = time.perf_counter() - start
        with store.maintenance.snapshot() as read:
            chunks = read.scalar("SELECT count(*) FROM doc_chunks")
        start = time.perf_counter()
        written = semantic.refresh_vectors(store)
        embedded = time.perf_counter() - start
        start = time.perf_counter()
        again = semantic.refresh_vectors(store)
        nothing = time.perf_counter() - start
        print(f"  docs.refresh (index + FTS)  {chunks / indexed:,.0f} chunks/s ({indexed:.1f} s)")
        print(
            f"  semantic.refresh_vectors            {written / embedded:,.0f} chunks/s "
            f"({embedded:.1f} s; ratio to docs.refresh {indexed / embedded:.2f}×)"
        )
        print(f"  refresh_vectors, nothing to do     {nothing * 1000:.1f} ms ({again} written)")
        raw = sqlite3.connect(f"file:{root / '.agentkeep' / 'state.db'}?mode=ro", uri=True)

        def fts(query: str, limit: int = LIMIT) -> list[int]:
            match = " OR ".join(f'"{word}"' for word in query.split())
            return [
                row[0]
                for row in raw.execute(
                    "SELECT rowid FROM doc_chunks_fts WHERE doc_chunks_fts MATCH ? "
                    "ORDER BY rank LIMIT ?",
                    (match, limit),
                )
            ]

        def ranked(query: str) -> list[tuple[int, float]]:
            return semantic.rank(store, query, limit=LIMIT)

        def fused(query: str) -> list[tuple[int, float]]:
            by_meaning = [c for c, _ in semantic.rank(store, query, limit=FUSE_DEPTH)]
            return semantic.fuse([fts(query, FUSE_DEPTH), by_meaning])[:LIMIT]

        sides = {"fts (raw, store's index)": fts, "semantic.rank": ranked, "fused": fused}
        results = measure(sides, queries[: args.queries], args.rounds)
        raw.close()
    base50, base99 = results["fts (raw, store's index)"]
    print(f"  {'side':30} {'p50':>18} {'p99':>18} {'p50 ÷ fts':>16} {'p99 ÷ fts':>16}")
    for name, (p50, p99) in results.items():
        r50 = [a / b for a, b in zip(p50, base50, strict=True)]
        r99 = [a / b for a, b in zip(p99, base99, strict=True)]
        print(
            f"  {name:30} {span(p50):>18} {span(p99):>18} "
            f"{span(r50, '×', 1):>16} {span(r99, '×', 1):>16}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", help="a real model2vec model folder (or id, if cached)")
    parser.add_argument("--quick", action="store_true", help="2k chunks, 50 queries, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.queries, args.rounds = 2_000, 50, 2
    print(
        f"bench_semantic: python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    texts, queries = corpus(args.chunks)
    average = sum(len(t) for t in texts) / len(texts)
    print(f"{len(texts):,} chunks of {average:,.0f} characters on average")
    with tempfile.TemporaryDirectory(prefix="agentkeep-bench-semantic-") as tmp:
        folder = build_tiny_model(Path(tmp) / "tiny-256", dim=DIM, extra_words=VOCABULARY)
        db = Database(Path(tmp) / "bench.db")
        bench_model("tiny-256 (potion-base-8M's shape)", str(folder), db, texts, queries, args)
        bench_store("tiny-256", str(folder), texts, queries, args, Path(tmp))
        real = real_model(args.model)
        if real is None:
            print("\n(no real potion model here: --model PATH measures one; none is downloaded)")
        else:
            bench_model("real model", real, db, texts, queries, args)
            bench_store("real model", real, texts, queries, args, Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
