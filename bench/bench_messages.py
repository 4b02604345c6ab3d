"""Messages between agents (services/messages.py), side by side with a bare Maildir in one run.

    python bench/bench_messages.py [--messages 200] [--recipients 3] [--rounds 3] [--backlog 2000]

The payload is generated at run time: message bodies of 300-3,000 characters of transcript
(prose, code, shell output; ``bench_redact.make_transcript``), three recipients each.

a. Sending: ``store.mail.send`` vs the bare file protocol agentkeep's sits on — the message
   written temp → fsync → rename → fsync dir, then an empty marker per recipient in its
   ``new/`` (created, fsynced, directory fsynced) — with no index, no redaction, no dedupe.
b. Reading: ``store.mail.read`` (marks read: one rename) vs the bare rename ``new/`` →
   ``cur/`` with both directories fsynced, plus reading the message file.
c. Listing a mailbox of ``--messages`` messages (``inbox``) vs listing the bare Maildir's
   three directories and parsing each message's front matter.
d. With ``--backlog`` messages already in the store: one send, and ``thread`` /
   ``outbox`` (which read the document index of every message), to see how they grow.

Rounds alternate the bare protocol and agentkeep; medians and ranges of the per-round
ratios are printed. Absolute numbers vary ±25% between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep
sys.path.insert(0, str(HERE))

from bench_redact import make_transcript  # noqa: E402

RECIPIENTS = ["reviewer", "tester", "lead", "builder", "docs", "ops"]


def bodies(count: int) -> list[str]:
    out = []
    for n in range(count):
        text, _ = make_transcript(300 + (n * 977) % 2700, seed=n + 1)
        out.append(text)
    return out


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BareMaildir:
    """The file protocol alone: what a hand-written Maildir of messages costs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "messages").mkdir(parents=True)

    def send(self, message_id: str, to: list[str], subject: str, body: str) -> None:
        head = {"id": message_id, "from": "bench", "to": to, "subject": subject}
        data = f"---json\n{json.dumps(head, indent=2)}\n---\n{body}".encode()
        final = self.root / "messages" / f"{message_id}.md"
        tmp = final.with_name(final.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        fsync_dir(final.parent)
        for name in to:
            new = self.root / "box" / name / "new"
            if not new.is_dir():
                new.mkdir(parents=True)
                (new.parent / "cur").mkdir()
            fd = os.open(new / message_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(new)

    def read(self, name: str, message_id: str) -> str:
        box = self.root / "box" / name
        os.rename(box / "new" / message_id, box / "cur" / message_id)
        fsync_dir(box / "cur")
        fsync_dir(box / "new")
        return (self.root / "messages" / f"{message_id}.md").read_text()

    def inbox(self, name: str) -> list[dict[str, object]]:
        out = []
        for state in ("new", "cur"):
            for entry in os.scandir(self.root / "box" / name / state):
                text = (self.root / "messages" / f"{entry.name}.md").read_text()
                head = text.split("\n---\n", 1)[0].removeprefix("---json\n")
                out.append({**json.loads(head), "state": state})
        return out


def project(base: Path, name: str) -> Path:
    root = base / name
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    agentkeep.init_store(root)
    return root


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--recipients", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args()
    texts = bodies(args.messages)
    to = RECIPIENTS[: args.recipients]
    load = os.getloadavg()
    results: dict[str, list[float]] = {}

    def keep(key: str, seconds: float) -> None:
        results.setdefault(key, []).append(seconds)

    for round_no in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-msg-") as tmp:
            base = Path(tmp)
            bare = BareMaildir(base / "bare")
            ids = [f"r{round_no}-m{n}" for n in range(args.messages)]

            def bare_send(bare: BareMaildir = bare, ids: list[str] = ids) -> None:
                for message_id, body in zip(ids, texts, strict=True):
                    bare.send(message_id, to, "status", body)

            keep("send/bare", timed(bare_send))
            with agentkeep.open(project(base, "ak")) as store:

                def ours_send(store: agentkeep.Store = store, ids: list[str] = ids) -> None:
                    for message_id, body in zip(ids, texts, strict=True):
                        store.mail.send(to, "status", body, sender="bench", id=message_id)

                keep("send/agentkeep", timed(ours_send))
                keep("inbox/bare", timed(lambda bare=bare: bare.inbox(to[0])))
                keep("inbox/agentkeep", timed(lambda store=store: store.mail.inbox(to[0])))
                half = ids[: len(ids) // 2]
                keep(
                    "read/bare",
                    timed(lambda bare=bare, half=half: [bare.read(to[0], i) for i in half]),
                )
                keep(
                    "read/agentkeep",
                    timed(lambda store=store, half=half: [store.mail.read(to[0], i) for i in half]),
                )

    n, half = args.messages, args.messages // 2

    def per(key: str, count: int) -> list[float]:
        return [seconds / count * 1000 for seconds in results[key]]

    def line(label: str, key: str, count: int) -> None:
        bare, ours = per(f"{key}/bare", count), per(f"{key}/agentkeep", count)
        ratios = [o / b for o, b in zip(ours, bare, strict=True)]
        print(
            f"{label:<34} bare {statistics.median(bare):7.2f} ms  agentkeep "
            f"{statistics.median(ours):7.2f} ms ({min(ours):.2f}-{max(ours):.2f})  "
            f"ratio {statistics.median(ratios):.2f}× ({min(ratios):.2f}-{max(ratios):.2f}×)"
        )

    print(
        f"{n} messages of 300-3,000 characters to {len(to)} recipients; {args.rounds} rounds; "
        f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    line("send (per message)", "send", n)
    line("read, marks read (per message)", "read", half)
    line(f"inbox of {n} (whole listing)", "inbox", 1)

    if args.backlog:
        with (
            tempfile.TemporaryDirectory(prefix="bench-msg-") as tmp,
            agentkeep.open(project(Path(tmp), "big")) as store,
        ):
            texts_big = bodies(50)
            start = time.perf_counter()
            for k in range(args.backlog):
                store.mail.send(
                    [RECIPIENTS[k % 6]],
                    f"s{k}",
                    texts_big[k % 50],
                    sender=RECIPIENTS[(k + 1) % 6],
                    thread=f"t{k % 100}",
                    id=f"b{k}",
                )
            filled = time.perf_counter() - start
            sends = [
                timed(
                    lambda k=k, store=store: store.mail.send(
                        to, "x", texts[0], sender="bench", id=f"x{k}"
                    )
                )
                for k in range(20)
            ]
            threads = [timed(lambda store=store: store.mail.thread("t7")) for _ in range(5)]
            outboxes = [
                timed(lambda store=store: store.mail.outbox("lead", limit=20)) for _ in range(5)
            ]
            inboxes = [timed(lambda store=store: store.mail.inbox("lead")) for _ in range(5)]
            print(
                f"backlog of {args.backlog} messages (filled at "
                f"{args.backlog / filled:.0f}/s): send "
                f"{statistics.median(sends) * 1000:.2f} ms, thread "
                f"{statistics.median(threads) * 1000:.1f} ms, outbox "
                f"{statistics.median(outboxes) * 1000:.1f} ms, inbox of "
                f"{args.backlog // 6} {statistics.median(inboxes) * 1000:.1f} ms (medians)"
            )


if __name__ == "__main__":
    main()
