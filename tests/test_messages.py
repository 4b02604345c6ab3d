"""Messages between agents (issue 13, services/messages.py): files are the truth, the
deliveries index is rebuilt from them, delivery is at-least-once and deduplicated by id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import agentkeep
from agentkeep.errors import Conflict, InvalidInput, NotFound, StorageError
from agentkeep.services.messages import Delivery

from conftest import Cli, run_agentkeep
from helpers.dump import store_dump
from secretgen import fragments, generate, leaks


def mail(store: agentkeep.Store) -> Path:
    return store.store_dir / "mail"


def markers(store: agentkeep.Store, message_id: str) -> dict[str, list[str]]:
    """recipient → the state directories holding a marker of ``message_id``."""
    found: dict[str, list[str]] = {}
    for marker in sorted((mail(store) / "box").glob(f"*/*/{message_id}")):
        found.setdefault(marker.parent.parent.name, []).append(marker.parent.name)
    return found


def kinds(store: agentkeep.Store, message_id: str | None = None) -> list[str]:
    return [
        event.kind
        for event in store.events(entity="message")
        if message_id is None or event.data.get("id") == message_id
    ]


# -- the life of a message ----------------------------------------------------------------------


def test_send_inbox_read_ack_thread(store: agentkeep.Store) -> None:
    sent = store.mail.send(
        ["bob", "carol"], "Parser", "Branch parser-v2 is green.\n", sender="alice", cc=["dave"]
    )
    assert sent.outcome == "created"
    message = sent.item
    assert (message.to, message.cc, message.sender) == (["bob", "carol"], ["dave"], "alice")
    assert message.thread == message.id
    file = store.root / message.path
    assert file == mail(store) / "messages" / f"{message.id}.md"
    assert file.read_text().startswith("---json\n")
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    assert markers(store, message.id) == {"bob": ["new"], "carol": ["new"], "dave": ["new"]}

    inbox = store.mail.inbox("bob")
    assert [(m.id, m.state, m.subject) for m in inbox] == [(message.id, "delivered", "Parser")]
    assert store.mail.inbox("bob", state="unread") == inbox
    assert store.mail.inbox("alice") == []

    read = store.mail.read("bob", message.id)
    assert (read.state, read.body) == ("read", "Branch parser-v2 is green.\n")
    assert markers(store, message.id)["bob"] == ["cur"]
    assert store.mail.inbox("bob", state="unread") == []
    assert store.mail.read("bob", message.id).state == "read"  # reading again: no change

    acked = store.mail.ack("bob", message.id)
    assert (acked.outcome, acked.item.state) == ("updated", "acked")
    assert store.mail.ack("bob", message.id).outcome == "unchanged"
    assert store.mail.ack("carol", message.id).item.state == "acked"  # unread, then acked
    assert markers(store, message.id) == {
        "bob": ["acked"],
        "carol": ["acked"],
        "dave": ["new"],
    }

    reply = store.mail.send("alice", "", "Merged.", sender="bob", in_reply_to=message.id)
    assert (reply.item.thread, reply.item.subject) == (message.id, "Re: Parser")
    thread = store.mail.thread(message.id)
    assert [m.id for m in thread] == [message.id, reply.item.id]
    assert {d.recipient: d.state for d in thread[0].deliveries} == {
        "bob": "acked",
        "carol": "acked",
        "dave": "delivered",
    }
    assert [m.id for m in store.mail.outbox("alice")] == [message.id]
    assert kinds(store, message.id) == [
        "message.sent",
        "message.read",
        "message.acked",
        "message.acked",
    ]
    assert {row.recipient: row.state for row in store.mail.deliveries()} == {
        "alice": "delivered",
        "bob": "acked",
        "carol": "acked",
        "dave": "delivered",
    }
    # Indexed as a document of namespace mail: search and doc show find it.
    doc = store.docs.get_doc(f"mail/{message.id}")
    assert (doc.type, doc.fields["from"], doc.fields["to"]) == (
        "message",
        "alice",
        ["bob", "carol"],
    )


def test_read_and_ack_need_the_message_in_that_mailbox(store: agentkeep.Store) -> None:
    message = store.mail.send("bob", "hi", "x", sender="alice").item
    with pytest.raises(NotFound):
        store.mail.read("carol", message.id)
    with pytest.raises(NotFound):
        store.mail.ack("carol", message.id)
    with pytest.raises(NotFound):
        store.mail.read("bob", "no-such-message")
    with pytest.raises(NotFound):
        store.mail.thread("no-such-thread")
    assert markers(store, message.id) == {"bob": ["new"]}
    assert kinds(store, message.id) == ["message.sent"]


# -- deduplication by id ---------------------------------------------------------------------


def test_the_same_id_is_one_message(store: agentkeep.Store) -> None:
    first = store.mail.send(["bob", "carol"], "s", "body", sender="alice", id="run-812")
    again = store.mail.send(["bob", "carol"], "s", "body", sender="alice", id="run-812")
    assert (first.outcome, again.outcome) == ("created", "already_exists")
    assert again.item.sent_at == first.item.sent_at
    store.mail.read("bob", "run-812")
    # A retry after a read delivers nothing again: bob's copy stays read.
    assert store.mail.send(["bob", "carol"], "s", "body", sender="alice", id="run-812").outcome == (
        "already_exists"
    )
    assert markers(store, "run-812") == {"bob": ["cur"], "carol": ["new"]}
    before = (mail(store) / "messages" / "run-812.md").read_bytes()
    for other in (
        dict(to=["bob", "carol"], subject="s", body="another body"),
        dict(to=["bob"], subject="s", body="body"),
        dict(to=["bob", "carol"], subject="other", body="body"),
    ):
        with pytest.raises(Conflict):
            store.mail.send(
                other["to"], str(other["subject"]), str(other["body"]), sender="alice", id="run-812"
            )
    assert (mail(store) / "messages" / "run-812.md").read_bytes() == before
    assert kinds(store, "run-812") == ["message.sent", "message.read"]


# -- at-least-once: kill -9 inside a send ----------------------------------------------------


def _send(project: Path, failpoint: str | None) -> int:
    done = run_agentkeep(
        "msg",
        "send",
        "--to",
        "bob",
        "--to",
        "carol",
        "--cc",
        "dave",
        "--from",
        "alice",
        "--id",
        "m-crash",
        "-s",
        "deploy",
        "ship it",
        "--json",
        cwd=project,
        env={"AGENTKEEP_FAILPOINT": failpoint or ""},
    )
    if failpoint is None:
        assert done.returncode == 0, done.stderr
        return 0
    return done.returncode


@pytest.mark.parametrize(
    "point, delivered_before",
    [
        ("mail:after_message", 0),  # the file written, nobody delivered
        ("mail:after_deliver:2", 2),  # two of three delivered
        ("mail:before_commit", 3),  # every marker there, the transaction lost
    ],
)
def test_a_send_killed_midway_is_completed_by_its_retry_exactly_once(
    store: agentkeep.Store, project: Path, point: str, delivered_before: int
) -> None:
    assert _send(project, point) == -signal.SIGKILL
    assert (mail(store) / "messages" / "m-crash.md").exists()
    assert sum(len(v) for v in markers(store, "m-crash").values()) == delivered_before
    assert kinds(store, "m-crash") == []  # the transaction never committed
    # Its file is the truth: listed (and indexed) before anyone retries.
    assert [m.id for m in store.mail.outbox("alice")] == ["m-crash"]
    assert [m.id for m in store.mail.thread("m-crash")] == ["m-crash"]

    done = run_agentkeep(
        "msg",
        "send",
        "--to",
        "bob",
        "--to",
        "carol",
        "--cc",
        "dave",
        "--from",
        "alice",
        "--id",
        "m-crash",
        "-s",
        "deploy",
        "ship it",
        "--json",
        cwd=project,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "created"
    assert markers(store, "m-crash") == {"bob": ["new"], "carol": ["new"], "dave": ["new"]}
    assert kinds(store, "m-crash") == ["message.sent"]
    again = store.mail.send(
        ["bob", "carol"], "deploy", "ship it", sender="alice", cc=["dave"], id="m-crash"
    )
    assert again.outcome == "already_exists"
    assert markers(store, "m-crash") == {"bob": ["new"], "carol": ["new"], "dave": ["new"]}
    assert len(store.mail.deliveries()) == 3
    assert [m.id for m in store.mail.inbox("carol")] == ["m-crash"]


def test_refresh_completes_a_send_nobody_retried(store: agentkeep.Store, project: Path) -> None:
    assert _send(project, "mail:after_deliver:1") == -signal.SIGKILL
    assert markers(store, "m-crash") == {"bob": ["new"]}
    report = store.mail.refresh()
    assert report.completed == ["m-crash"]
    assert markers(store, "m-crash") == {"bob": ["new"], "carol": ["new"], "dave": ["new"]}
    assert store.mail.refresh().completed == []
    assert _send(project, None) == 0  # the sender's retry now finds it done
    assert markers(store, "m-crash") == {"bob": ["new"], "carol": ["new"], "dave": ["new"]}
    assert kinds(store, "m-crash") == ["message.sent"]


def test_a_read_killed_after_its_rename_is_seen_from_the_files(
    store: agentkeep.Store, project: Path
) -> None:
    store.mail.send("bob", "s", "b", sender="alice", id="m-read")
    done = run_agentkeep(
        "msg",
        "read",
        "m-read",
        "--as",
        "bob",
        cwd=project,
        env={"AGENTKEEP_FAILPOINT": "mail:after_move"},
    )
    assert done.returncode == -signal.SIGKILL
    assert markers(store, "m-read") == {"bob": ["cur"]}  # the rename is the state change
    assert [m.state for m in store.mail.inbox("bob")] == ["read"]
    assert [(d.recipient, d.state) for d in store.mail.deliveries()] == [("bob", "read")]


# -- the index is derived -------------------------------------------------------------------


def test_the_index_rebuilt_from_the_files_equals_the_live_one(store: agentkeep.Store) -> None:
    for n in range(6):
        store.mail.send(["bob", "carol"], f"s{n}", f"body {n}", sender="alice", id=f"m{n}")
    store.mail.read("bob", "m1")
    store.mail.ack("bob", "m2")
    store.mail.read("carol", "m2")
    store.mail.ack("carol", "m2")
    store.mail.send("alice", "", "ok", sender="carol", in_reply_to="m2", id="r2")
    live = store.mail.deliveries()
    docs_live = {d.ref: (d.etag, d.fields) for d in store.docs.list_docs(namespace="mail")}
    assert len(live) == 13 and len(docs_live) == 7

    report = store.mail.refresh(rebuild=True)
    assert (report.messages, report.deliveries, report.problems) == (7, 13, [])
    assert store.mail.deliveries() == live
    with store.transaction() as tx:
        tx.execute("DELETE FROM deliveries")
    store.docs.refresh(rebuild=True)  # `doc reindex --rebuild`: the deliveries too
    assert {d.ref: (d.etag, d.fields) for d in store.docs.list_docs(namespace="mail")} == docs_live
    assert store.mail.deliveries() == live
    assert store.mail.refresh().changed == 0


def test_reads_correct_rows_that_differ_from_the_mailboxes(store: agentkeep.Store) -> None:
    store.mail.send("bob", "s", "b", sender="alice", id="m1")
    store.mail.send("bob", "s", "b", sender="alice", id="m2")
    with store.transaction() as tx:  # a stale index: a row lost, a row wrong
        tx.execute("DELETE FROM deliveries WHERE message = ?", ("m1",))
        tx.execute("UPDATE deliveries SET state = 'acked' WHERE message = ?", ("m2",))
    # Another program moves a marker the Maildir way.
    box = mail(store) / "box" / "bob"
    (box / "cur").mkdir(mode=0o700, exist_ok=True)
    os.rename(box / "new" / "m1", box / "cur" / "m1")
    assert {m.id: m.state for m in store.mail.inbox("bob")} == {"m1": "read", "m2": "delivered"}
    assert {(d.message, d.state) for d in store.mail.deliveries()} == {
        ("m1", "read"),
        ("m2", "delivered"),
    }


# -- the privacy boundary and names -----------------------------------------------------------


def test_secrets_in_messages_never_reach_disk(store: agentkeep.Store) -> None:
    secrets = generate()
    needles = [piece for _text, secret in secrets.values() for piece in fragments(secret)]
    body = "\n".join(f"{name}: {text}" for name, (text, _secret) in secrets.items())
    subject = "key " + secrets["github-classic"][0]
    message = store.mail.send(["bob"], subject, body, sender="alice").item
    assert secrets["github-classic"][1] not in message.subject and "key " in message.subject
    read = store.mail.read("bob", message.id)
    assert read.body and "aws:" in read.body
    assert leaks(mail(store), needles) == []
    assert leaks(store.store_dir, needles) == []
    dumped = store_dump(store)
    assert [n for n in needles if n in dumped] == []


@pytest.mark.parametrize(
    "bad", ["../x", "a/b", "", ".hidden", "x" * 65, "a b", "bob/../../etc", "-rf", "a\x00b"]
)
def test_bad_recipient_names_are_refused_and_write_nothing(
    store: agentkeep.Store, bad: str
) -> None:
    with pytest.raises(InvalidInput):
        store.mail.send(["bob", bad], "s", "b", sender="alice")
    with pytest.raises(InvalidInput):
        store.mail.send(["bob"], "s", "b", sender=bad or "/")
    with pytest.raises(InvalidInput):
        store.mail.inbox(bad or "..")
    assert not (mail(store) / "messages").exists()
    assert kinds(store) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "x.tmp-1-abcd", ".m", "m:2,S"])
def test_bad_message_ids_are_refused(store: agentkeep.Store, bad: str) -> None:
    with pytest.raises(InvalidInput):
        store.mail.send(["bob"], "s", "b", sender="alice", id=bad)
    with pytest.raises(InvalidInput):
        store.mail.read("bob", bad)
    assert not (mail(store) / "messages").exists()


def test_a_secret_as_a_name_is_refused(store: agentkeep.Store) -> None:
    token = generate()["github-classic"][0]
    with pytest.raises(InvalidInput):
        store.mail.send([token], "s", "b", sender="alice")
    with pytest.raises(InvalidInput):
        store.mail.send(["bob"], "s", "b", sender="alice", id=token)
    assert leaks(store.store_dir, fragments(token)) == []


def test_a_mailbox_that_is_a_symlink_is_never_followed(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (mail(store) / "box").mkdir(parents=True)
    (mail(store) / "box" / "eve").symlink_to(outside)
    with pytest.raises(StorageError):
        store.mail.send(["eve"], "s", "b", sender="alice", id="m-link")
    assert list(outside.iterdir()) == []
    assert kinds(store) == []


# -- the command line ------------------------------------------------------------------------


def test_cli_json_shapes(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = cli("msg", "send", "--to", "bob", "--from", "alice", "-s", "hi", "hello", "--json")
    assert sent.exit_code == 0, sent.stderr
    data = sent.json()
    assert data["outcome"] == "created"
    message = data["message"]
    assert {"id", "thread", "from", "to", "cc", "subject", "sent_at", "deliveries"} <= set(message)
    assert message["deliveries"][0]["recipient"] == "bob"
    again = cli("msg", "send", "--to", "bob", "--from", "alice", "-s", "hi", "hello", "--json",
                "--id", message["id"])  # fmt: skip
    assert again.json()["outcome"] == "already_exists"

    monkeypatch.setenv("AGENTKEEP_AGENT", "bob")
    inbox = cli("msg", "inbox", "--unread", "--json")
    assert [(m["id"], m["state"]) for m in inbox.json()] == [(message["id"], "delivered")]
    assert cli("msg", "inbox", "nobody", "--json").json() == []
    read = cli("msg", "read", message["id"], "--json").json()
    assert (read["body"], read["state"], read["from"]) == ("hello", "read", "alice")
    assert cli("msg", "inbox", "--unread", "--json").json() == []
    acked = cli("msg", "ack", message["id"], "--json").json()
    assert (acked["outcome"], acked["message"]["state"]) == ("updated", "acked")
    thread = cli("msg", "thread", message["thread"], "--json").json()
    assert [m["id"] for m in thread] == [message["id"]]
    assert cli("msg", "outbox", "alice", "--json").json()[0]["deliveries"] == [
        {"recipient": "bob", "state": "acked", "at": thread[0]["deliveries"][0]["at"]}
    ]
    stdin = cli("msg", "send", "--to", "carol", "-", "--json", input="from stdin\n")
    assert stdin.json()["message"]["from"] == "bob"  # $AGENTKEEP_AGENT sends too
    assert (
        cli("msg", "read", stdin.json()["message"]["id"], "--as", "carol", "--json").json()["body"]
        == "from stdin\n"
    )

    missing = cli("msg", "read", "nope", "--json")
    assert missing.exit_code == 4 and missing.error()["code"] == "not_found"
    bad = cli("msg", "send", "--to", "../x", "hi", "--json")
    assert bad.exit_code == 3 and bad.error()["code"] == "invalid_input"
    clash = cli("msg", "send", "--to", "bob", "--id", message["id"], "other", "--json")
    assert clash.exit_code == 5 and clash.error()["code"] == "conflict"
    table = cli("msg", "inbox", "bob")
    assert table.exit_code == 0 and "acked" in table.stdout
    human = cli("msg", "read", message["id"])
    assert "From:     alice" in human.stdout and human.stdout.rstrip().endswith("hello")
    report = cli("msg", "reindex", "--rebuild", "--json").json()
    assert (report["messages"], report["deliveries"], report["problems"]) == (2, 2, [])


def test_deliveries_are_records(store: agentkeep.Store) -> None:
    store.mail.send("bob", "s", "b", sender="alice", id="m1")
    (row,) = store.mail.deliveries(recipient="bob")
    assert isinstance(row, Delivery) and (row.message, row.state) == ("m1", "delivered")


def test_the_mail_namespace_quota_and_schema_are_checked_before_writing(
    store: agentkeep.Store,
) -> None:
    declared = store.store_dir / "schemas" / "mail"
    declared.mkdir(parents=True)
    (declared / "namespace.toml").write_text("max_docs = 2\n")
    store.mail.send("bob", "one", "b", sender="alice", id="q1")
    store.mail.send("bob", "two", "b", sender="alice", id="q2")
    with pytest.raises(agentkeep.StorageFull):
        store.mail.send("bob", "three", "b", sender="alice", id="q3")
    assert not (mail(store) / "messages" / "q3.md").exists()
    assert store.mail.send("bob", "two", "b", sender="alice", id="q2").outcome == "already_exists"

    (declared / "namespace.toml").write_text("")
    (declared / "message.json").write_text(
        json.dumps({"type": "object", "properties": {"subject": {"minLength": 3}}})
    )
    with pytest.raises(InvalidInput, match="schema"):
        store.mail.send("bob", "no", "b", sender="alice", id="q4")
    assert store.mail.send("bob", "long enough", "b", sender="alice", id="q5").outcome == "created"
    assert not (mail(store) / "messages" / "q4.md").exists()


# -- concurrent writers ---------------------------------------------------------------------


def _agentkeep(project: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentkeep", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "AGENTKEEP_FAILPOINT"},
    )


def test_concurrent_sends_of_one_id_deliver_once_and_concurrent_reads_mark_once(
    store: agentkeep.Store, project: Path
) -> None:
    send = ("msg", "send", "--to", "bob", "--cc", "carol", "--from", "alice", "--id", "m-race")
    procs = [_agentkeep(project, *send, "-s", "race", "same body", "--json") for _ in range(4)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        outcomes.append(json.loads(out)["outcome"])
    assert sorted(outcomes) == ["already_exists"] * 3 + ["created"]
    assert markers(store, "m-race") == {"bob": ["new"], "carol": ["new"]}
    assert kinds(store, "m-race") == ["message.sent"]

    readers = [
        _agentkeep(project, "msg", "read", "m-race", "--as", "bob", "--json") for _ in range(4)
    ]
    for proc in readers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["state"] == "read"
    assert markers(store, "m-race") == {"bob": ["cur"], "carol": ["new"]}
    assert kinds(store, "m-race") == ["message.sent", "message.read"]

    other = _agentkeep(project, *send, "-s", "race", "another body", "--json")
    _out, err = other.communicate(timeout=120)
    assert other.returncode == 5 and json.loads(err)["code"] == "conflict"


def test_check_reports_what_refresh_corrects(store: agentkeep.Store, project: Path) -> None:
    store.mail.send("bob", "s", "b", sender="alice", id="m1")
    assert store.mail.check() == []
    assert _send(project, "mail:after_deliver:1") == -signal.SIGKILL
    with store.transaction() as tx:
        tx.execute("UPDATE deliveries SET state = 'acked' WHERE message = ?", ("m1",))
    problems = store.mail.check()
    assert "bob: message m1 is indexed as acked, not delivered" in problems
    assert "carol: message m-crash was never delivered" in problems
    assert "dave: message m-crash was never delivered" in problems
    assert "bob: message m-crash is not indexed (delivered)" in problems
    store.mail.refresh()
    assert store.mail.check() == []


def test_doctor_reports_a_send_cut_short_and_fix_delivers_it(
    store: agentkeep.Store, project: Path, cli: Cli
) -> None:
    assert _send(project, "mail:after_deliver:1") == -signal.SIGKILL
    report = cli("doctor", "--json")
    mail = [f for f in report.json()["findings"] if f["check"] == "mail"]
    assert "carol: message m-crash was never delivered" in {f["message"] for f in mail}
    assert report.exit_code == 1 and not any(f["fixed"] for f in mail)
    fixed = cli("doctor", "--fix", "--json")
    mail = [f for f in fixed.json()["findings"] if f["check"] == "mail"]
    assert mail and all(f["fixed"] for f in mail), mail
    assert store.mail.check() == []
    assert [m.id for m in store.mail.inbox("carol")] == ["m-crash"]


def test_the_message_json_is_what_json_output_md_documents(store: agentkeep.Store) -> None:
    from test_json_contract import documented_records

    message = store.mail.send("bob", "s", "b", sender="alice").item
    read = store.mail.read("bob", message.id)
    assert list(read.to_dict()) == documented_records()["message"]


def test_random_kills_leave_files_that_rebuild_the_index_exactly(
    store: agentkeep.Store, project: Path
) -> None:
    """Sends, reads and acks killed at random steps, each retried: every copy exists once,
    in the state its last completed step gave it, and the index rebuilt from the files
    alone equals the one the live operations and reads left."""
    import random

    rng = random.Random(int(os.environ.get("CRASH_SEED", "1313")))
    points = ["mail:after_message", "mail:after_deliver:1", "mail:after_deliver:2"]
    points += ["mail:before_commit", "file:after_fsync", "file:after_rename"]
    expected: dict[tuple[str, str], str] = {}
    kills = 0
    for n in range(8):
        message_id = f"k{n}"
        send = ["msg", "send", "--to", "bob", "--to", "carol", "--from", "alice"]
        send += ["--id", message_id, f"body {n}"]
        point = rng.choice(points)
        crashed = run_agentkeep(*send, cwd=project, env={"AGENTKEEP_FAILPOINT": point})
        kills += crashed.returncode == -signal.SIGKILL
        retried = run_agentkeep(*send, cwd=project)
        assert retried.returncode == 0, retried.stderr
        expected[("bob", message_id)] = expected[("carol", message_id)] = "delivered"
        for verb, state in (("read", "read"), ("ack", "acked")):
            if rng.random() < 0.5:
                continue
            args = ["msg", verb, message_id, "--as", "bob"]
            crashed = run_agentkeep(
                *args, cwd=project, env={"AGENTKEEP_FAILPOINT": "mail:after_move"}
            )
            kills += crashed.returncode == -signal.SIGKILL
            assert run_agentkeep(*args, cwd=project).returncode == 0
            expected[("bob", message_id)] = state
    assert kills >= 8  # the kills happened (each send's failpoint is on its path)
    for message_id in {m for _r, m in expected}:
        assert markers(store, message_id) == {
            "bob": [
                {"delivered": "new", "read": "cur", "acked": "acked"}[expected[("bob", message_id)]]
            ],
            "carol": ["new"],
        }
        assert kinds(store, message_id).count("message.sent") == 1
    store.mail.inbox("bob")
    store.mail.inbox("carol")
    live = store.mail.deliveries()
    assert {(d.recipient, d.message): d.state for d in live} == expected
    assert store.mail.check() == []
    store.mail.refresh(rebuild=True)
    assert store.mail.deliveries() == live
