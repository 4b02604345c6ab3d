"""A process that writes documents through agentkeep, for the concurrency and crash tests
(tests/test_docs_concurrency.py, tests/test_docs_crash.py).

    python tests/helpers/doc_writer.py serve PROJECT
        Reads one command per line on stdin, answers one JSON line on stdout:
        write REF ETAG TEXT   write_doc(REF, body=TEXT, expect=ETAG)
                              -> {"outcome": "won"|"stale"|"locked"|"error", ...}
        lock REF LEASE_S      lock(REF) -> {"holder": "host:pid:start"} or {"error": ...}
        quit

    python tests/helpers/doc_writer.py loop PROJECT SEED LOG
        Writes, removes and restores documents at random forever (the test kills it).
        Before each write it appends {"intent": sha256-of-the-file-text} to LOG, after
        each change {"done": n}: every content a document file may hold is an intent.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys

import agentkeep
from agentkeep.documents import format as docformat
from agentkeep.errors import AgentkeepError, Conflict, NotFound, StaleWrite

WORDS = [
    "storage",
    "index",
    "rebuild",
    "lease",
    "holder",
    "etag",
    "version",
    "namespace",
    "schema",
    "quota",
    "crash",
    "rename",
    "fsync",
    "journal",
    "writer",
    "reader",
    "search",
    "chunk",
    "heading",
    "front",
    "matter",
    "link",
]


def document(rng: random.Random, n: int) -> tuple[dict[str, object], str]:
    """Realistic Markdown: front matter and a few sections of prose (a few KB)."""
    fields: dict[str, object] = {
        "type": rng.choice(["spec", "decision", "note"]),
        "title": f"Document {n}",
        "tags": sorted(rng.sample(WORDS, 3)),
        "revision": n,
    }
    if rng.random() < 0.5:
        fields["links"] = {"relates": [f"docs/d{rng.randrange(8)}"]}
    sections = []
    for s in range(rng.randint(1, 5)):
        prose = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 400)))
        link = f" See [[docs/d{rng.randrange(8)}]]." if rng.random() < 0.3 else ""
        sections.append(f"## Section {s}\n\n{prose}.{link}\n")
    return fields, f"# Document {n}\n\n" + "\n".join(sections)


def file_text(fields: dict[str, object], body: str) -> str:
    return docformat.render(fields, body, "markdown")


def serve(project: str) -> None:
    store = agentkeep.open(project)
    for line in sys.stdin:
        words = line.rstrip("\n").split(" ", 3)
        answer: dict[str, object]
        if words[0] == "write":
            ref, etag, text = words[1], words[2], words[3]
            try:
                written = store.docs.write_doc(ref, body=text + "\n", expect=etag)
                answer = {"outcome": "won", "etag": written.item.etag}
            except StaleWrite as exc:
                answer = {"outcome": "stale", "details": exc.details}
            except Conflict as exc:
                answer = {"outcome": "locked", "error": exc.message}
            except AgentkeepError as exc:
                answer = {"outcome": "error", "error": exc.message}
        elif words[0] == "lock":
            try:
                answer = {"holder": store.docs.lock(words[1], lease_s=float(words[2])).holder}
            except AgentkeepError as exc:
                answer = {"error": exc.message}
        elif words[0] == "quit":
            break
        else:
            answer = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(answer), flush=True)
    store.close()


def loop(project: str, seed: int, log_path: str) -> None:
    rng = random.Random(seed)
    store = agentkeep.open(project)
    with open(log_path, "a", encoding="utf-8") as log:
        n = 0
        while True:
            n += 1
            ref = f"docs/d{rng.randrange(8)}"
            roll = rng.random()
            try:
                if roll < 0.1:
                    store.docs.remove_doc(ref)
                elif roll < 0.15:
                    for version in reversed(store.docs.history(ref)):
                        if version.sha256:
                            log.write(json.dumps({"intent": version.etag}) + "\n")
                            log.flush()
                            store.docs.restore_doc(ref, version=version.id)
                            break
                else:
                    fields, body = document(rng, n)
                    text = file_text(fields, body)
                    digest = hashlib.sha256(text.encode()).hexdigest()
                    log.write(json.dumps({"intent": digest}) + "\n")
                    log.flush()
                    store.docs.write_doc(ref, fields=fields, body=body)
            except NotFound:
                pass
            log.write(json.dumps({"done": n}) + "\n")
            log.flush()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        loop(sys.argv[2], int(sys.argv[3]), sys.argv[4])
