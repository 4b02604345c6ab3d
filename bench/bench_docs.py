"""Documents (issue 13), side by side with plain file and sqlite3 work, in one run.

    python bench/bench_docs.py [--writes 150] [--docs 10000] [--rounds 3] [--quick] [--profile]

1. Document write: ``store.docs.write_doc`` (redact, validate, keep a version as a
   content-addressed object, write temp → fsync → rename → fsync dir, index: parse, links,
   chunks, full text, event; one transaction) vs a plain temp + fsync + rename + fsync dir
   of the same bytes. Realistic documents: 2–20 KB of Markdown with YAML front matter
   (type, title, tags, links), headings, lists, code and ``[[links]]``. Both new documents
   and rewrites of existing ones (a rewrite keeps the previous version). fsyncs per write
   are counted on each side: they set the floor of the ratio on a disk where fsync costs
   milliseconds.
2. Index rebuild of ``--docs`` documents (the same kind, written as plain files):
   ``store.docs.refresh(rebuild=True)`` vs a baseline that reads and hashes every file and
   inserts it into a plain sqlite3 FTS5 table in one transaction (what any index must do
   at least), and vs a *floor*: raw sqlite3 doing agentkeep's index work without
   agentkeep (the same parsing and chunking, tables and FTS5 options, no privacy
   boundary): the difference to the floor is what agentkeep itself adds. Also the rescan
   of the unchanged tree, ``refresh()`` (stat only) vs an ``os.walk`` + ``stat`` of the
   same files.

Rounds alternate which side goes first; each ratio is taken within a round and printed as
the median and the range (min–max) over the rounds, with the load average at the start and
the end. ``--profile`` prints the top of a cProfile of one agentkeep rebuild and one
batch of writes.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:  # PYTHONPATH picks the checkout to measure (bench/compare.py sets it)
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import agentkeep
from agentkeep.documents import format as docformat

_VOCABULARY = (
    "the a of to and in is for that on with as it be by this are or from at an was we",
    "storage index query schema migration writer reader lease lock version etag",
    "namespace document section heading chunk token parser session agent task queue",
    "worker retry backoff commit rollback transaction durable fsync rename journal",
    "snapshot replica latency throughput budget context spec design decision tradeoff",
    "interface module function class method error handler request response server",
    "client config default",
)
WORDS = [word for line in _VOCABULARY for word in line.split()]
CODE = [
    "```python\ndef flatten(items):\n    out = []\n    for item in items:\n"
    "        out.extend(flatten(item) if isinstance(item, list) else [item])\n"
    "    return out\n```",
    "```sql\nCREATE INDEX docs_type ON docs (namespace, type);\n"
    "SELECT path FROM docs WHERE type = 'spec' ORDER BY path;\n```",
    "```sh\nagentkeep doc new specs/storage --type spec\nagentkeep doc ls --json\n```",
]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 24))]
    return " ".join(words).capitalize() + "."


def make_doc(rng: random.Random, n: int) -> tuple[dict[str, Any], str]:
    """Fields and a Markdown body of 2–20 KB."""
    target = rng.randint(2_000, 20_000)
    fields: dict[str, Any] = {
        "type": rng.choice(["spec", "decision", "note", "runbook"]),
        "title": f"{sentence(rng)[:40].rstrip('.')} {n}",
        "status": rng.choice(["draft", "accepted", "superseded"]),
        "tags": sorted(set(rng.sample(WORDS[20:], 3))),
        "links": {"relates": [f"specs/s{rng.randrange(500)}"]},
    }
    parts = [f"# {fields['title']}\n"]
    size = len(parts[0])
    section = 0
    while size < target:
        section += 1
        block = [f"\n## {sentence(rng)[:50].rstrip('.')} {section}\n"]
        for _ in range(rng.randint(1, 4)):
            text = " ".join(sentence(rng) for _ in range(rng.randint(2, 8)))
            if rng.random() < 0.3:
                text += f" See [[specs/s{rng.randrange(500)}]]."
            block.append(text + "\n")
        if rng.random() < 0.4:
            block.append("\n".join(f"- {sentence(rng)}" for _ in range(rng.randint(2, 6))) + "\n")
        if rng.random() < 0.25:
            block.append(rng.choice(CODE) + "\n")
        chunk = "\n".join(block)
        parts.append(chunk)
        size += len(chunk)
    return fields, "".join(parts)


def file_text(fields: dict[str, Any], body: str) -> str:
    return docformat.render(fields, body, "markdown")


# -- helpers -------------------------------------------------------------------------------


def load() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def rng_of(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def med(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


class FsyncCounter:
    def __init__(self) -> None:
        self.count = 0
        self._real = os.fsync

    def __enter__(self) -> FsyncCounter:
        def counted(fd: Any) -> None:
            self.count += 1
            self._real(fd)

        os.fsync = counted
        return self

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real


def new_project(base: Path, name: str) -> Path:
    root = base / name
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    agentkeep.init_store(root)
    return root


def plain_write(path: Path, data: bytes) -> None:
    """The baseline: temp → write → fsync → rename → fsync dir."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# -- 1. writes -----------------------------------------------------------------------------


def bench_writes(base: Path, writes: int, rounds: int, profile: bool) -> None:
    print(f"\n## 1. document write: {writes} new + {writes} rewrites per round, {rounds} rounds")
    rng = random.Random(7)
    docs = [make_doc(rng, n) for n in range(writes)]
    again = [make_doc(rng, n) for n in range(writes)]
    sizes = [len(file_text(*doc).encode()) for doc in docs]
    print(
        f"documents: {min(sizes):,}–{max(sizes):,} bytes, mean {statistics.mean(sizes):,.0f}; "
        f"load {load()}"
    )
    results: dict[str, list[float]] = {}
    for r in range(rounds):
        project = new_project(base, f"writes{r}")
        plain_dir = base / f"plain{r}"
        plain_dir.mkdir()
        sides: dict[str, Callable[[], tuple[list[float], list[float], int]]] = {}

        def baseline(plain_dir: Path = plain_dir) -> tuple[list[float], list[float], int]:
            out: list[list[float]] = [[], []]
            with FsyncCounter() as fsyncs:
                for phase, batch in enumerate((docs, again)):
                    for n, (fields, body) in enumerate(batch):
                        data = file_text(fields, body).encode()
                        start = time.perf_counter()
                        plain_write(plain_dir / f"d{n}.md", data)
                        out[phase].append(time.perf_counter() - start)
            return out[0], out[1], fsyncs.count

        def ours(
            project: Path = project, profiled: bool = profile and r == 0
        ) -> tuple[list[float], list[float], int]:
            out: list[list[float]] = [[], []]
            with agentkeep.open(project) as store, FsyncCounter() as fsyncs:
                profiler = cProfile.Profile() if profiled else None
                for phase, batch in enumerate((docs, again)):
                    for n, (fields, body) in enumerate(batch):
                        start = time.perf_counter()
                        if profiler:
                            profiler.enable()
                        store.docs.write_doc(f"specs/d{n}", fields=fields, body=body)
                        if profiler:
                            profiler.disable()
                        out[phase].append(time.perf_counter() - start)
                if profiler:
                    print("\nprofile of agentkeep's writes:")
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            return out[0], out[1], fsyncs.count

        sides = {"plain": baseline, "agentkeep": ours}
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        got = {name: sides[name]() for name in order}
        for name, (new, rewrite, fsyncs) in got.items():
            results.setdefault(f"{name} new p50", []).append(med(new) * 1000)
            results.setdefault(f"{name} new p99", []).append(pct(new, 0.99) * 1000)
            results.setdefault(f"{name} rewrite p50", []).append(med(rewrite) * 1000)
            results.setdefault(f"{name} rewrite p99", []).append(pct(rewrite, 0.99) * 1000)
            results.setdefault(f"{name} fsyncs/write", []).append(fsyncs / (2 * writes))
        for kind in ("new", "rewrite"):
            results.setdefault(f"ratio {kind} p50", []).append(
                med(got["agentkeep"][0 if kind == "new" else 1])
                / med(got["plain"][0 if kind == "new" else 1])
            )
        shutil.rmtree(project)
        shutil.rmtree(plain_dir)
    print("\n| measurement | plain temp+fsync+rename | agentkeep write_doc | agentkeep ÷ plain |")
    print("| --- | --- | --- | --- |")
    for kind in ("new", "rewrite"):
        print(
            f"| {kind} document, p50 ms | {rng_of(results[f'plain {kind} p50'])} | "
            f"{rng_of(results[f'agentkeep {kind} p50'])} | "
            f"{med(results[f'ratio {kind} p50']):.1f}× "
            f"({rng_of(results[f'ratio {kind} p50'], '{:.1f}')}) |"
        )
        print(
            f"| {kind} document, p99 ms | {rng_of(results[f'plain {kind} p99'])} | "
            f"{rng_of(results[f'agentkeep {kind} p99'])} | |"
        )
    print(
        f"| fsyncs per write | {med(results['plain fsyncs/write']):.1f} | "
        f"{med(results['agentkeep fsyncs/write']):.1f} | |"
    )
    print(f"load {load()}")


# -- 2. rebuild ----------------------------------------------------------------------------


def write_tree(root: Path, count: int) -> int:
    rng = random.Random(11)
    total = 0
    for n in range(count):
        fields, body = make_doc(rng, n)
        directory = root / f"ns{n % 10}"
        directory.mkdir(parents=True, exist_ok=True)
        data = file_text(fields, body).encode()
        (directory / f"doc{n:05d}.md").write_bytes(data)
        total += len(data)
    return total


def baseline_rebuild(root: Path, db: Path) -> int:
    """Read and hash every file, insert it into a plain FTS5 table, one transaction."""
    if db.exists():
        db.unlink()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, path TEXT UNIQUE, sha256 TEXT)")
    conn.execute("CREATE VIRTUAL TABLE docs_fts USING fts5 (text)")
    conn.execute("BEGIN IMMEDIATE")
    count = 0
    for directory, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(directory) / name
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            row = conn.execute(
                "INSERT INTO docs (path, sha256) VALUES (?, ?)", (str(path), digest)
            ).lastrowid
            conn.execute("INSERT INTO docs_fts (rowid, text) VALUES (?, ?)", (row, data.decode()))
            count += 1
    conn.execute("COMMIT")
    conn.close()
    return count


FLOOR_SCHEMA = """
CREATE TABLE docs (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, etag TEXT NOT NULL,
    title TEXT, fields TEXT NOT NULL, tags TEXT NOT NULL);
CREATE TABLE doc_links (doc_id INTEGER NOT NULL REFERENCES docs (id) ON DELETE CASCADE,
    relation TEXT NOT NULL, target TEXT NOT NULL, PRIMARY KEY (doc_id, relation, target));
CREATE TABLE doc_chunks (id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES docs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL, heading TEXT NOT NULL, level INTEGER NOT NULL,
    text TEXT NOT NULL, UNIQUE (doc_id, position));
CREATE VIRTUAL TABLE doc_chunks_fts USING fts5 (heading, text, content="doc_chunks",
    content_rowid="id", prefix='2 3', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER doc_chunks_fts_insert AFTER INSERT ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts (rowid, heading, text) VALUES (new.id, new.heading, new.text);
END;
"""


def floor_rebuild(root: Path, db: Path) -> int:
    """agentkeep's index work without agentkeep: read, hash, parse the front matter, links
    and chunks (documents/format.py), insert into the same tables and full-text index
    (same FTS5 options), 200 files per transaction. No privacy boundary, no validation."""
    import json

    if db.exists():
        db.unlink()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(FLOOR_SCHEMA)
    paths = [
        Path(directory) / name
        for directory, _dirs, files in os.walk(root)
        for name in sorted(files)
    ]
    for start in range(0, len(paths), 200):
        conn.execute("BEGIN IMMEDIATE")
        for path in paths[start : start + 200]:
            data = path.read_bytes()
            parsed = docformat.parse(data.decode("utf-8", "replace"), path.suffix)
            doc_id = conn.execute(
                "INSERT INTO docs (path, etag, title, fields, tags) VALUES (?, ?, ?, ?, ?)",
                (
                    str(path),
                    hashlib.sha256(data).hexdigest(),
                    parsed.title(path.stem),
                    json.dumps(parsed.fields),
                    json.dumps(parsed.tags()),
                ),
            ).lastrowid
            conn.executemany(
                "INSERT OR IGNORE INTO doc_links VALUES (?, ?, ?)",
                [(doc_id, *link) for link in docformat.links(parsed.fields, parsed.body)],
            )
            conn.executemany(
                "INSERT INTO doc_chunks (doc_id, position, heading, level, text) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (doc_id, c.position, c.heading, c.level, c.text)
                    for c in docformat.chunks(parsed)
                ],
            )
        conn.execute("COMMIT")
    conn.close()
    return len(paths)


def baseline_stat(root: Path) -> int:
    count = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            os.stat(Path(directory) / name)
            count += 1
    return count


def bench_rebuild(base: Path, count: int, rounds: int, profile: bool) -> None:
    print(f"\n## 2. index rebuild of {count:,} documents, {rounds} rounds")
    project = new_project(base, "rebuild")
    docs_dir = project / ".agentkeep" / "docs"
    total = write_tree(docs_dir, count)
    print(f"{count:,} files, {total / 1e6:.1f} MB; load {load()}")
    db = base / "baseline.db"
    results: dict[str, list[float]] = {}
    with agentkeep.open(project) as store:
        first = store.docs.refresh()
        assert first.added == count, first.to_dict()
        for r in range(rounds):
            sides: dict[str, Callable[[], Any]] = {
                "baseline": lambda: baseline_rebuild(docs_dir, db),
                "floor": lambda: floor_rebuild(docs_dir, db),
                "agentkeep": lambda: store.docs.refresh(rebuild=True),
            }
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            times: dict[str, float] = {}
            for name in order:
                profiler = (
                    cProfile.Profile() if profile and r == 0 and name == "agentkeep" else None
                )
                start = time.perf_counter()
                if profiler:
                    profiler.enable()
                sides[name]()
                if profiler:
                    profiler.disable()
                times[name] = time.perf_counter() - start
                if profiler:
                    print("\nprofile of agentkeep's rebuild:")
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            for name, seconds in times.items():
                results.setdefault(f"{name} rebuild s", []).append(seconds)
            results.setdefault("ratio rebuild", []).append(times["agentkeep"] / times["baseline"])
            results.setdefault("ratio floor", []).append(times["agentkeep"] / times["floor"])
            start = time.perf_counter()
            baseline_stat(docs_dir)
            stat_s = time.perf_counter() - start
            start = time.perf_counter()
            report = store.docs.refresh()
            rescan_s = time.perf_counter() - start
            assert report.unchanged == count and report.updated == 0, report.to_dict()
            results.setdefault("baseline rescan ms", []).append(stat_s * 1000)
            results.setdefault("agentkeep rescan ms", []).append(rescan_s * 1000)
            results.setdefault("ratio rescan", []).append(rescan_s / stat_s)
    print("\n| measurement | baseline | agentkeep | agentkeep ÷ baseline |")
    print("| --- | --- | --- | --- |")
    print(
        f"| rebuild, s (docs/s) | {rng_of(results['baseline rebuild s'])} "
        f"({count / med(results['baseline rebuild s']):,.0f}/s) | "
        f"{rng_of(results['agentkeep rebuild s'])} "
        f"({count / med(results['agentkeep rebuild s']):,.0f}/s) | "
        f"{med(results['ratio rebuild']):.1f}× ({rng_of(results['ratio rebuild'], '{:.1f}')}) |"
    )
    print(
        f"| rebuild vs the floor (same parse, chunks, tables and FTS5 options, raw sqlite3, "
        f"no privacy boundary), s | {rng_of(results['floor rebuild s'])} "
        f"({count / med(results['floor rebuild s']):,.0f}/s) | | "
        f"{med(results['ratio floor']):.1f}× ({rng_of(results['ratio floor'], '{:.1f}')}) |"
    )
    print(
        f"| rescan of the unchanged tree, ms | {rng_of(results['baseline rescan ms'], '{:.0f}')} "
        f"(walk + stat) | {rng_of(results['agentkeep rescan ms'], '{:.0f}')} | "
        f"{med(results['ratio rescan']):.1f}× ({rng_of(results['ratio rescan'], '{:.1f}')}) |"
    )
    print(f"load {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=150)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 writes, 1,000 documents")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=["writes", "rebuild"])
    args = parser.parse_args()
    if args.quick:
        args.writes, args.docs = 40, 1_000
    print(f"bench_docs: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-docs-") as tmp:
        base = Path(tmp)
        os.environ.setdefault("AGENTKEEP_HOME", str(base / "home"))
        if args.only != "rebuild":
            bench_writes(base, args.writes, args.rounds, args.profile)
        if args.only != "writes":
            bench_rebuild(base, args.docs, args.rounds, args.profile)


if __name__ == "__main__":
    main()
