"""Crash safety of documents and the derived index (issue 13 "What must be shown": kill -9
during document writes; the state rebuilt from files alone equals the index; nothing
half-written is visible; an edit made outside agentkeep is indexed).

A child (tests/helpers/doc_writer.py loop) writes, removes and restores documents through
the library and is killed with SIGKILL: by a failpoint at each step of the write protocol
(``AGENTKEEP_FAILPOINT``), or by the parent after a seeded number of changes. After each
crash:

- every document file parses and holds one of the contents the child meant to write (it
  logs each content's hash before writing it): no half-written file is visible;
- after ``refresh()`` the index equals what ``refresh(rebuild=True)`` makes of the files
  alone (a dump of docs, doc_links and doc_chunks without ids and indexing times).

Random choices come from ``CRASH_SEED``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.documents import format as docformat

HELPERS = Path(__file__).resolve().parent / "helpers"
SEED = int(os.environ.get("CRASH_SEED", "20261205"))
FAILPOINTS = (
    "doc:before_rename",
    "doc:after_rename",
    "doc:before_commit",
    "doc:after_unlink",
    "file:after_fsync",
)
RANDOM_KILLS = 6


def index_dump(store: agentkeep.Store) -> dict[str, list[tuple[Any, ...]]]:
    """The derived index as comparable rows: no ids, no indexing times (nor whether the
    rescan will hash a file again: the sign of its mtime_ns)."""
    return {
        "docs": [  # mtime_ns is negated while a file is racily clean: compared as abs()
            (*tuple(row)[:13], abs(row[13]), row[14])
            for row in store._rows(
                "SELECT path, namespace, name, origin, format, type, title, convention, "
                "fields, tags, problems, etag, size, mtime_ns, updated_at FROM docs ORDER BY path"
            )
        ],
        "links": [
            tuple(row)
            for row in store._rows(
                "SELECT d.path, l.relation, l.target FROM doc_links l "
                "JOIN docs d ON d.id = l.doc_id ORDER BY d.path, l.relation, l.target"
            )
        ],
        "chunks": [
            tuple(row)
            for row in store._rows(
                "SELECT d.path, c.position, c.heading, c.level, c.text, c.updated_at "
                "FROM doc_chunks c JOIN docs d ON d.id = c.doc_id ORDER BY d.path, c.position"
            )
        ],
        "search": [
            (word, len(store.search(word, kinds=["doc"], limit=500)))
            for word in ("storage", "rebuild", "holder", "Section", "zebra")
        ],
    }


def assert_rebuild_equals_index(store: agentkeep.Store) -> dict[str, list[tuple[Any, ...]]]:
    store.docs.refresh()
    live = index_dump(store)
    report = store.docs.refresh(rebuild=True)
    assert report.rebuilt and report.files == len(live["docs"])
    rebuilt = index_dump(store)
    for table in live:
        assert live[table] == rebuilt[table], table
    assert store.docs.check_index() == []
    return live


def intents(log: Path) -> set[str]:
    text = log.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.split("\n")[:-1] if line]
    return {line["intent"] for line in lines if "intent" in line}


def done(log: Path) -> int:
    if not log.exists():
        return 0
    return sum('"done"' in line for line in log.read_text(encoding="utf-8").split("\n")[:-1])


def assert_nothing_half_written(store: agentkeep.Store, meant: set[str]) -> int:
    """Every document file parses and is one of the contents meant; returns how many."""
    files = [
        path
        for path in sorted((store.store_dir / "docs").rglob("*"))
        if path.is_file() and ".tmp-" not in path.name and path.name != ".gitignore"
    ]
    for path in files:
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() in meant, f"{path} holds unknown content"
        parsed = docformat.parse(data.decode(), path.suffix)
        assert parsed.problems == [] and parsed.fields["title"].startswith("Document ")
    return len(files)


def crash_child(project: Path, log: Path, seed: int, failpoint: str | None, after: int) -> str:
    env = {k: v for k, v in os.environ.items() if k != "AGENTKEEP_FAILPOINT"}
    if failpoint:
        env["AGENTKEEP_FAILPOINT"] = failpoint
    start = done(log)
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "doc_writer.py"), "loop", str(project), str(seed), str(log)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        if failpoint is None:
            deadline = time.monotonic() + 120  # a safety net only
            while done(log) < start + after and proc.poll() is None:
                assert time.monotonic() < deadline, "the writer made no progress"
                time.sleep(0.002)
            proc.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (failpoint, proc.returncode, err.decode())
    return err.decode()


def test_kill_9_during_document_writes(store: agentkeep.Store, project: Path) -> None:
    rng = random.Random(SEED)
    log = project.parent / "intents.jsonl"
    runs: list[tuple[str | None, int]] = [
        (f"{name}:{hit}", 0) for name in FAILPOINTS for hit in (1, rng.randint(2, 6))
    ]
    runs += [(None, rng.randint(1, 40)) for _ in range(RANDOM_KILLS)]
    files = 0
    for number, (failpoint, after) in enumerate(runs):
        crash_child(project, log, SEED + number, failpoint, after)
        meant = intents(log)
        files = assert_nothing_half_written(store, meant)
        assert_rebuild_equals_index(store)
    sys.stderr.write(
        f"docs crash: seed {SEED}, {len(runs)} kills, {done(log)} changes, {files} files\n"
    )
    assert done(log) > 0 and files > 0


def outside_edits(store: agentkeep.Store) -> None:
    base = store.store_dir / "docs" / "notes"
    plain = base / "plain.md"
    plain.write_text("# Plain\nfirst words\n")
    store.docs.refresh()
    assert store.docs.get_doc("notes/plain", refresh=False).title == "Plain"
    # a plain rewrite in place
    plain.write_text("# Plain\nthe aardvark arrives\n")
    assert store.docs.refresh().updated == 1
    assert len(store.search("aardvark", kinds=["doc"])) == 1
    assert store.docs.get_doc("notes/plain", refresh=False).etag == _sha(plain)
    # an editor: a swap file, then renamed over the document
    swap = base / ".plain.md.swp"
    swap.write_text("# Plain\nthe badger leaves\n")
    os.replace(swap, plain)
    assert store.docs.refresh().updated == 1
    assert store.search("aardvark", kinds=["doc"]) == []
    assert len(store.search("badger", kinds=["doc"])) == 1
    # an editor creating a new file the same way, and a delete
    (base / "new.md~").write_text("---\ntitle: Fresh\n---\ncapybara\n")
    os.replace(base / "new.md~", base / "new.md")
    plain.unlink()
    report = store.docs.refresh()
    assert (report.added, report.removed) == (1, 1)
    assert [d.ref for d in store.docs.list_docs(namespace="notes", refresh=False)] == ["notes/new"]
    assert store.search("badger", kinds=["doc"]) == []


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_edit_made_outside_agentkeep_is_indexed(store: agentkeep.Store) -> None:
    (store.store_dir / "docs" / "notes").mkdir(parents=True)
    outside_edits(store)
    assert_rebuild_equals_index(store)


def test_rebuild_from_files_alone_equals_the_live_index(
    store: agentkeep.Store, project: Path
) -> None:
    """A long random run mixing writes through agentkeep, removes, restores, outside edits
    and rescans; then the index rebuilt from the files alone equals the live one, and a
    new store over a copy of the files indexes the same documents."""
    sys.path.insert(0, str(HELPERS))
    from doc_writer import document

    rng = random.Random(SEED)
    docs = store.docs
    (project / "handbook").mkdir()
    refs = [f"docs/d{i}" for i in range(12)] + [f"specs/s{i}" for i in range(4)]
    for n in range(int(os.environ.get("DOCS_RANDOM_OPS", "300"))):
        ref = rng.choice(refs)
        roll = rng.random()
        path = store.store_dir / "docs" / f"{ref}.md"
        if roll < 0.55:
            fields, body = document(rng, n)
            docs.write_doc(ref, fields=fields, body=body)
        elif roll < 0.65 and path.exists():
            docs.remove_doc(ref)
        elif roll < 0.7 and _known(docs, ref):
            docs.restore_doc(ref)
        elif roll < 0.8:
            path.parent.mkdir(parents=True, exist_ok=True)
            fields, body = document(rng, n)
            path.write_text(docformat.render(fields, body, "markdown"))
        elif roll < 0.85 and path.exists():
            path.unlink()
        elif roll < 0.9:
            hand = project / "handbook" / f"h{rng.randrange(5)}.md"
            hand.write_text(f"# Handbook {n}\n[[{rng.choice(refs)}]] {rng.random()}\n")
        else:
            docs.refresh()
    live = assert_rebuild_equals_index(store)
    assert len(live["docs"]) > 5 and len(live["links"]) > 5 and len(live["chunks"]) > 10


def _known(docs: Any, ref: str) -> bool:
    try:
        return bool(docs.history(ref))
    except Exception:
        return False


@pytest.mark.sqlite_only("copies a SQLite store's project directory")
def test_a_fresh_store_over_the_files_indexes_the_same(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    import shutil

    sys.path.insert(0, str(HELPERS))
    from doc_writer import document

    rng = random.Random(SEED)
    for n in range(40):
        fields, body = document(rng, n)
        store.docs.write_doc(f"docs/d{n % 15}", fields=fields, body=body)
    live = assert_rebuild_equals_index(store)
    other = tmp_path / "copy"
    other.mkdir()
    agentkeep.init_store(other)
    shutil.copytree(store.store_dir / "docs", other / ".agentkeep" / "docs", dirs_exist_ok=True)
    for name in os.listdir(other / ".agentkeep" / "docs" / "docs"):
        os.utime(other / ".agentkeep" / "docs" / "docs" / name, ns=_mtime(store, name))
    with agentkeep.open(other) as copy:
        copy.docs.refresh()
        assert index_dump(copy)["chunks"] == live["chunks"]
        assert [row[:14] for row in index_dump(copy)["docs"]] == [row[:14] for row in live["docs"]]


def _mtime(store: agentkeep.Store, name: str) -> tuple[int, int]:
    stat = (store.store_dir / "docs" / "docs" / name).stat()
    return (stat.st_atime_ns, stat.st_mtime_ns)
