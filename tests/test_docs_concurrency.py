"""Two writers on one document (issue 13 "What must be shown"): optimistic concurrency
between processes, and advisory locks whose holders are judged by (host, pid, process
start time) and lease expiry, never by mtime.

Writers are real processes (tests/helpers/doc_writer.py) going through the library; a
"dead holder" is a child killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.documents.leases import Holder, process_start
from agentkeep.errors import Conflict
from agentkeep.files import HOST
from agentkeep.services.docs import etag_of

HELPER = Path(__file__).resolve().parent / "helpers" / "doc_writer.py"
ROUNDS = int(os.environ.get("DOCS_RACE_ROUNDS", "60"))


class Writer:
    """A child process serving write/lock commands (doc_writer.py serve)."""

    def __init__(self, project: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPER), "serve", str(project)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the writer exited ({self.proc.poll()})"
        found: dict[str, Any] = json.loads(line)
        return found

    def ask(self, line: str) -> dict[str, Any]:
        self.send(line)
        return self.answer()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("quit")
            self.proc.wait(timeout=60)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def test_two_writer_processes_exactly_one_wins(store: agentkeep.Store, project: Path) -> None:
    path = store.store_dir / "docs" / "shared" / "plan.md"
    writers = [Writer(project), Writer(project)]
    tally: Counter[str] = Counter()
    try:
        for r in range(ROUNDS):
            base = store.docs.write_doc("shared/plan", body=f"base {r}\n").item.etag
            for number, writer in enumerate(writers):  # both start from the same etag
                writer.send(f"write shared/plan {base} writer {number} round {r}")
            answers = [writer.answer() for writer in writers]
            outcomes = sorted(a["outcome"] for a in answers)
            assert outcomes == ["stale", "won"], answers
            winner = next(i for i, a in enumerate(answers) if a["outcome"] == "won")
            loser = answers[1 - winner]
            tally[f"writer {winner}"] += 1
            assert path.read_text() == f"writer {winner} round {r}\n"
            assert answers[winner]["etag"] == etag_of(path.read_bytes())
            assert loser["details"]["expected_etag"] == base
            assert loser["details"]["current_etag"] == answers[winner]["etag"]
    finally:
        for writer in writers:
            writer.close()
    sys.stderr.write(f"two writers, {ROUNDS} rounds: {dict(tally)}\n")
    assert sum(tally.values()) == ROUNDS
    # every won write is a version; no refused one is
    edits = [v for v in store.docs.history("shared/plan") if v.change == "edited"]
    assert len(edits) == 2 * ROUNDS - 1  # each base after the first, and each winner


def set_expiry(store: agentkeep.Store, path: str, when: str) -> None:
    with store.transaction() as tx:
        tx.execute("UPDATE doc_locks SET expires_at = ? WHERE path = ?", (when, path))


PAST = "2000-01-01T00:00:00.000000Z"


def test_a_dead_holders_lock_is_reclaimed(store: agentkeep.Store, project: Path) -> None:
    store.docs.write_doc("shared/a", body="1\n")
    child = Writer(project)
    taken = child.ask("lock shared/a 3600")
    holder = Holder.parse(taken["holder"])
    assert holder.pid == child.proc.pid and holder.alive() is True
    with pytest.raises(Conflict, match="locked by"):
        store.docs.write_doc("shared/a", body="2\n")
    with pytest.raises(Conflict):
        store.docs.lock("shared/a")
    child.kill()  # SIGKILL: its lease (an hour) is still running
    assert child.proc.returncode == -signal.SIGKILL
    assert holder.alive() is False
    assert store.docs.write_doc("shared/a", body="2\n").outcome == "updated"
    kinds = [e.kind for e in store.events(entity="doc") if e.kind.startswith("doc.lock")]
    assert kinds == ["doc.locked", "doc.lock_reclaimed"]
    mine = store.docs.lock("shared/a")
    assert mine.holder == str(Holder.me())


def test_a_live_holders_lock_is_never_taken(store: agentkeep.Store, project: Path) -> None:
    store.docs.write_doc("shared/a", body="1\n")
    child = Writer(project)
    try:
        child.ask("lock shared/a 1")
        rel = ".agentkeep/docs/shared/a.md"
        for _ in range(2):  # before its lease expires, and after (this host: it runs)
            with pytest.raises(Conflict, match="locked by"):
                store.docs.lock("shared/a")
            with pytest.raises(Conflict):
                store.docs.write_doc("shared/a", body="2\n")
            with pytest.raises(Conflict):
                store.docs.remove_doc("shared/a")
            # nor by the file's mtime: an old file is not an abandoned lock
            os.utime(store.store_dir / "docs" / "shared" / "a.md", (0, 0))
            set_expiry(store, rel, PAST)
        assert [lock.holder for lock in store.docs.locks()] == [
            f"{HOST}:{child.proc.pid}:" + process_start(child.proc.pid)
        ]
        assert store.docs.read_doc("shared/a").body == "1\n"
        # the holder itself renews and writes
        assert "holder" in child.ask("lock shared/a 60")
        assert (
            child.ask(f"write shared/a {etag_of(b'1' + bytes([10]))} by the holder")["outcome"]
            == "won"
        )
    finally:
        child.close()


def test_a_holder_on_another_host_is_judged_by_expiry(store: agentkeep.Store) -> None:
    store.docs.write_doc("shared/a", body="1\n")
    rel = ".agentkeep/docs/shared/a.md"
    # a fabricated holder: another host's pid that happens to run here (ours)
    other = Holder("build-box-7.example", os.getpid(), process_start(os.getpid()))
    assert other.alive() is None
    store.docs.lock("shared/a", holder=other, lease_s=3600)
    with pytest.raises(Conflict, match="build-box-7"):
        store.docs.write_doc("shared/a", body="2\n")
    with pytest.raises(Conflict):
        store.docs.lock("shared/a")
    set_expiry(store, rel, PAST)
    assert store.docs.write_doc("shared/a", body="2\n").outcome == "updated"
    assert store.docs.locks() == []
    # and a holder text that is not one (hand-edited) is judged by expiry as well
    store.docs.lock("shared/a", holder=other, lease_s=3600)
    with store.transaction() as tx:
        tx.execute("UPDATE doc_locks SET holder = 'garbage' WHERE path = ?", (rel,))
    with pytest.raises(Conflict):
        store.docs.lock("shared/a")
    set_expiry(store, rel, PAST)
    assert store.docs.lock("shared/a").holder == str(Holder.me())


def test_a_reused_pid_is_not_the_holder(store: agentkeep.Store, project: Path) -> None:
    store.docs.write_doc("shared/a", body="1\n")
    child = Writer(project)
    try:
        real = process_start(child.proc.pid)
        assert real
        # the lock's holder had the child's pid, but started at another time: it is dead,
        # and the live process with its pid now is someone else
        boot, _, ticks = real.partition(".")
        impostor = Holder(HOST, child.proc.pid, f"{boot}.{int(ticks) - 5}")
        assert impostor.alive() is False
        store.docs.lock("shared/a", holder=impostor, lease_s=3600)
        assert child.ask("lock shared/a 60")["holder"] == f"{HOST}:{child.proc.pid}:{real}"
        with pytest.raises(Conflict):  # now the real process holds it
            store.docs.write_doc("shared/a", body="2\n")
    finally:
        child.close()


def test_holder_text_round_trips() -> None:
    me = Holder.me()
    assert Holder.parse(str(me)) == me and me.alive() is True
    assert Holder.parse("my:host:with:colons:12:abc.5").host == "my:host:with:colons"
    for bad in ("", "host:notapid:x", ":12:x", "nothing"):
        with pytest.raises(ValueError):
            Holder.parse(bad)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert Holder(HOST, dead.pid, "x.1").alive() is False
