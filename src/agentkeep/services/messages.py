"""Messages between agents (issue 13): documents with a sender, recipients, a thread and a
delivery state per recipient (delivered, read, acked); at-least-once delivery, deduplicated
by id. The user's guide is docs/messages.md.

**Files are the truth**, under ``.agentkeep/mail/`` (machine-local: git ignores it):

- ``messages/<id>.md`` — the message: Markdown with JSON front matter (``---json``: ``id``,
  ``type`` "message", ``thread``, ``from``, ``to``, ``cc``, ``subject``, ``importance``,
  ``ack_required``, ``in_reply_to``, ``sent_at``), then the body. Written once (temp → fsync
  → rename → fsync dir), never changed. One id is one path, so finding a message by id is
  one stat, and two messages can never share an id. Indexed as a document of namespace
  ``mail`` (ref ``mail/<id>``, services/docs.py): search and ``doc show`` find it.
- ``box/<recipient>/{new,cur,acked}/<id>`` — one empty marker per recipient, Maildir's way:
  in ``new/`` the message is delivered, in ``cur/`` read, in ``acked/`` acknowledged. Each
  state change is one rename, so a marker is in exactly one state at any moment, and its
  mtime (set just before the rename) is when it got there.

**Sending** (:meth:`MessageService.send`) is one write transaction; the writer lock
serialises every agentkeep writer, so two sends of one id, or a send and a read, take turns:

1. the subject and body pass the privacy boundary (fail closed); names and the id are
   checked (no paths, no secrets);
2. if ``messages/<id>.md`` exists, the same content (everything but ``sent_at``) makes this
   call a retry: on to step 4; other content is a Conflict;
3. the message file is written (failpoint ``mail:after_message``);
4. each recipient (``to``, then ``cc``) with no marker in any state gets one in ``new/``
   (failpoint ``mail:after_deliver``, hit once per marker);
5. the index rows (``docs``, ``deliveries``) and, unless an earlier transaction recorded it,
   the event ``message.sent`` (entity ``message``, the message's id in its data) with the
   idempotency key ``message.sent:<id>`` that says so; commit. One message has one
   ``message.sent``, whatever the number of tries.

A crash after step 3 leaves a message some recipients have not got. Sending it again (same
id, same content) delivers it to them and to nobody twice: a recipient's marker exists once
whatever the number of tries. That is at-least-once delivery, deduplicated by id.
:meth:`refresh` also completes such a message when nobody retries (its file is the intent).

**The index** (table ``deliveries``: message, recipient, state, at) is derived. Every read
looks at the markers of the copies it shows (``inbox`` lists the reader's mailbox; the
others stat each copy's three possible paths) and rewrites the rows that differ from them,
under the writer lock; ``refresh(rebuild=True)`` (and the document index's rebuild) empties
the table and reads every mailbox again. No read trusts the rows. :meth:`check` says what
differs, read-only. Listing a thread or an outbox reads the document index's ``mail`` rows,
first checked against the message files by name (a file a crashed send left is indexed).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkeep._core import Tx
from agentkeep.boundary import redact_text
from agentkeep.documents import format as docformat
from agentkeep.errors import Conflict, InvalidInput, NotFound, StorageFull
from agentkeep.failpoints import failpoint
from agentkeep.files import (
    check_no_links,
    fsync_path,
    make_dirs,
    open_file,
    staged_file,
    translate_os_error,
    write_chunks,
)
from agentkeep.models import Written
from agentkeep.record import Record
from agentkeep.services.base import Service
from agentkeep.timeutil import stamp, utc_now

MAIL_DIR = "mail"  # inside .agentkeep/
NAMESPACE = "mail"  # the documents' namespace of messages
STATES = ("delivered", "read", "acked")  # in order: a marker only moves forward
STATE_DIRS = {"delivered": "new", "read": "cur", "acked": "acked"}
IMPORTANCE = ("low", "normal", "high", "urgent")
MAX_RECIPIENTS = 100
_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FIELDS = (  # the front matter, in the order it is written
    "id",
    "type",
    "thread",
    "from",
    "to",
    "cc",
    "subject",
    "importance",
    "ack_required",
    "in_reply_to",
    "sent_at",
)


@dataclass(frozen=True)
class Delivery(Record):
    """One recipient's copy of a message: ``state`` delivered, read or acked, since ``at``
    (the time its marker reached that state)."""

    message: str
    recipient: str
    state: str
    at: str


@dataclass(frozen=True)
class Message(Record):
    """A message as its file says, with each recipient's delivery. ``state`` is the
    reader's own (inbox and read only); ``body`` is there when the message is read."""

    id: str
    thread: str
    sender: str  # "from" in the file and in JSON
    to: list[str]
    cc: list[str]
    subject: str
    importance: str
    ack_required: bool
    in_reply_to: str | None
    sent_at: str
    path: str
    deliveries: list[Delivery] = field(default_factory=list)
    state: str | None = None
    body: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "thread": self.thread, "from": self.sender}
        for name in ("to", "cc", "subject", "importance", "ack_required", "in_reply_to"):
            data[name] = getattr(self, name)
        data["sent_at"] = self.sent_at
        data["path"] = self.path
        if self.state is not None:
            data["state"] = self.state
        data["deliveries"] = [
            {"recipient": d.recipient, "state": d.state, "at": d.at} for d in self.deliveries
        ]
        if self.body is not None:
            data["body"] = self.body
        return data


@dataclass
class MailReport(Record):
    """What :meth:`MessageService.refresh` found: ``messages`` files, ``deliveries`` markers,
    rows ``changed`` in the index, the messages it ``completed`` (a recipient had no marker:
    a send that crashed) and ``problems`` (markers of no message, a marker in two states)."""

    messages: int = 0
    deliveries: int = 0
    changed: int = 0
    completed: list[str] = field(default_factory=list)
    rebuilt: bool = False
    problems: list[str] = field(default_factory=list)


Box = dict[str, tuple[str, str]]  # message id → (state, at) in one mailbox


def check_agent(name: str, what: str = "agent name") -> str:
    """``name`` if it may name a mailbox (no path, no secret), else InvalidInput."""
    if not isinstance(name, str) or not _AGENT.match(name) or name.endswith("."):
        raise InvalidInput(
            f"{what} {name!r} is not valid",
            hint="use letters, digits, '.', '_', '@', '+' or '-' (at most 64), starting "
            "with a letter or digit",
        )
    _no_secret(name, what)
    return name


def check_id(message_id: str) -> str:
    """``message_id`` if it may name a message file, else InvalidInput."""
    if (
        not isinstance(message_id, str)
        or not _ID.match(message_id)
        or ".tmp-" in message_id
        or message_id.endswith(".")
    ):
        raise InvalidInput(
            f"message id {message_id!r} is not valid",
            hint="use letters, digits, '.', '_' or '-' (at most 128), starting with a "
            "letter or digit",
        )
    _no_secret(message_id, "message id")
    return message_id


def _no_secret(text: str, what: str) -> None:
    clean, counts = redact_text(text)
    if counts or clean != text:
        raise InvalidInput(
            f"the {what} looks like a secret and would be stored in file names",
            hint="choose another name",
        )


def new_id() -> str:
    """A fresh message id: its time (so ids sort as they were sent) and 40 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(5)


class MessageService(Service):
    # -- where messages are ----------------------------------------------------------------

    @property
    def mail_dir(self) -> Path:
        return self.store_dir / MAIL_DIR

    def message_path(self, message_id: str) -> Path:
        return self.mail_dir / "messages" / f"{check_id(message_id)}.md"

    def _box(self, recipient: str) -> Path:
        return self.mail_dir / "box" / recipient

    def _scan_box(self, recipient: str, problems: list[str] | None = None) -> Box:
        """What one mailbox holds: message id → (state, at), from its markers alone. A
        marker in two states (only a hand-made copy does that) counts in the later one."""
        box: Box = {}
        base = self._box(recipient)
        for state in STATES:
            directory = base / STATE_DIRS[state]
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                name = entry.name
                if name.startswith(".") or ".tmp-" in name or not _ID.match(name):
                    continue
                try:
                    at = stamp(entry.stat(follow_symlinks=False).st_mtime)
                except FileNotFoundError:  # moved on meanwhile: a later state has it
                    continue
                if name in box and problems is not None:
                    problems.append(f"{recipient}: message {name} is in two states")
                box[name] = (state, at)
        return box

    def _marker_state(self, recipient: str, message_id: str) -> tuple[str, str] | None:
        """(state, at) of one recipient's copy from its marker, or None. The directories
        are looked at in the order a marker moves, so one moved meanwhile is still found."""
        found = None
        base = self._box(recipient)
        for state in STATES:
            try:
                info = os.stat(base / STATE_DIRS[state] / message_id, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            found = (state, stamp(info.st_mtime))
        return found

    def _recipients_on_disk(self) -> list[str]:
        try:
            names = os.listdir(self.mail_dir / "box")
        except FileNotFoundError:
            return []
        return sorted(name for name in names if _AGENT.match(name))

    # -- sending ---------------------------------------------------------------------------

    def send(
        self,
        to: Sequence[str] | str,
        subject: str = "",
        body: str = "",
        *,
        sender: str | None = None,
        thread: str | None = None,
        cc: Sequence[str] = (),
        id: str | None = None,
        ack_required: bool = False,
        in_reply_to: str | None = None,
        importance: str = "normal",
    ) -> Written[Message]:
        """Send a message (see the module doc). ``id``: the caller's, to retry safely (the
        same id and content again is ``already_exists``, or ``created`` when this call
        is the first to commit it: a crashed one's retry); by default a fresh one. ``thread``: by
        default the replied-to message's thread, else the message's own id."""
        self._store.check_writable()
        recipients_to = [to] if isinstance(to, str) else list(to)
        if not recipients_to:
            raise InvalidInput("a message needs at least one recipient", hint="pass --to NAME")
        for name in (*recipients_to, *cc):
            check_agent(name, "recipient")
        sender = check_agent(sender or self.actor, "sender")
        recipients = list(dict.fromkeys((*recipients_to, *cc)))
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidInput(f"a message goes to at most {MAX_RECIPIENTS} recipients")
        if importance not in IMPORTANCE:
            raise InvalidInput(
                f"importance {importance!r} is not one of {', '.join(IMPORTANCE)}",
            )
        message_id = check_id(id) if id is not None else new_id()
        parent: Message | None = None
        if in_reply_to is not None:
            check_id(in_reply_to)
            parent = self._load(in_reply_to)
        if thread is not None:
            check_id(thread)
        else:
            thread = (parent.thread if parent else in_reply_to) or message_id
        if not subject and parent is not None:
            subject = (
                parent.subject if parent.subject.startswith("Re: ") else f"Re: {parent.subject}"
            )
        clean_subject = redact_text(" ".join(subject.split()))[0]
        clean_body = redact_text(body)[0]
        self._check_size(clean_body)
        fields: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "thread": thread,
            "from": sender,
            "to": list(dict.fromkeys(recipients_to)),
            "cc": [name for name in dict.fromkeys(cc) if name not in recipients_to],
            "subject": clean_subject,
            "importance": importance,
            "ack_required": bool(ack_required),
            "in_reply_to": in_reply_to,
            "sent_at": utc_now(),
        }
        path = self.message_path(message_id)
        with self.transaction() as tx:
            current = _read(path)
            if current is not None:
                fields["sent_at"] = _sent_at(current) or fields["sent_at"]
                data = _render(fields, clean_body)
                if data != current:
                    raise Conflict(
                        f"message {message_id} was already sent with other content",
                        hint="a retry must send the same message; a new message needs a new "
                        "--id (or none)",
                    )
            else:
                data = _render(fields, clean_body)
                self._check_quota(tx, len(data), fields)
                self._write_message(path, data)
                failpoint("mail:after_message")
            self._store.docs.index_file(tx, path)
            delivered = self._deliver(message_id, recipients)
            pairs = {
                (name, message_id): self._marker_state(name, message_id) for name in recipients
            }
            self._write_pairs(tx, pairs)
            # One message.sent per message, ever: the first transaction to commit it (a send
            # cut short before its commit recorded nothing, even if every marker is there).
            sent = self._record_sent(tx, message_id)
            if sent:
                event = tx.emit(
                    "message",
                    None,
                    "message.sent",
                    {
                        "id": message_id,
                        "ref": f"{NAMESPACE}/{message_id}",
                        "thread": thread,
                        "from": sender,
                        "to": fields["to"],
                        "cc": fields["cc"],
                        "delivered": delivered,
                        "retry": current is not None,
                    },
                )
                tx.remember_key(_sent_key(message_id), "message", event.seq)
            failpoint("mail:before_commit")
        message = _message(fields, _rel(self.root, path), pairs)
        return Written(message, "created" if sent else "already_exists")

    @staticmethod
    def _record_sent(tx: Tx, message_id: str) -> bool:
        """Whether ``message.sent`` of this message is still to be recorded."""
        return tx.existing_for_key(_sent_key(message_id), "message") is None

    def _check_size(self, body: str) -> None:
        limit = int(self.config["store.max_field_bytes"])
        size = len(body.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise InvalidInput(
                f"the message body is {size:,} bytes, over the {limit:,} a field may hold",
                hint="attach large output as an artifact and send its id",
            )

    def _check_quota(self, tx: Tx, size: int, fields: dict[str, Any]) -> None:
        """The ``mail`` namespace's schema of type ``message`` and its quotas, if the
        project declares them (``.agentkeep/schemas/mail/``)."""
        namespace = self._store.docs.namespace(NAMESPACE)
        problems = namespace.validate("message", fields)
        if problems:
            raise InvalidInput(
                "the message does not match the mail namespace's schema: "
                + "; ".join(problems[:5]),
                hint="the schemas of namespace 'mail' are in .agentkeep/schemas/mail/",
            )
        if not (namespace.max_docs or namespace.max_bytes):
            return
        row = tx.one(
            "SELECT count(*), coalesce(sum(size), 0) FROM docs WHERE namespace = ?", (NAMESPACE,)
        )
        count, total = (int(row[0]), int(row[1])) if row else (0, 0)
        if namespace.max_docs and count + 1 > namespace.max_docs:
            raise StorageFull(
                f"the mail holds {count:,} messages, its quota",
                hint="raise max_docs in .agentkeep/schemas/mail/namespace.toml",
            )
        if namespace.max_bytes and total + size > namespace.max_bytes:
            raise StorageFull(
                f"the mail would hold {total + size:,} bytes, over its quota of "
                f"{namespace.max_bytes:,}",
                hint="raise max_bytes in .agentkeep/schemas/mail/namespace.toml",
            )

    def _write_message(self, path: Path, data: bytes) -> None:
        make_dirs(path.parent, within=self.store_dir)
        with staged_file(path) as tmp:
            fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, within=self.store_dir)
            try:
                write_chunks(fd, [data])
            finally:
                os.close(fd)

    def _deliver(self, message_id: str, recipients: Iterable[str]) -> list[str]:
        """A marker in ``new/`` for each recipient who has none in any state; returns
        those who got one."""
        delivered = []
        for name in recipients:
            if any(
                os.path.lexists(self._box(name) / STATE_DIRS[state] / message_id)
                for state in STATES
            ):
                continue
            directory = self._box(name) / STATE_DIRS["delivered"]
            make_dirs(directory, within=self.store_dir)
            try:
                fd = open_file(
                    directory / message_id,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                    within=self.store_dir,
                )
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                fsync_path(directory, directory=True)
            except FileExistsError:
                continue
            except OSError as exc:
                raise translate_os_error(exc, str(directory / message_id)) from exc
            failpoint("mail:after_deliver")
            delivered.append(name)
        return delivered

    # -- reading and acknowledging -----------------------------------------------------------

    def inbox(
        self,
        recipient: str,
        *,
        state: str | None = None,
        thread: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """The messages in ``recipient``'s mailbox, newest first, each with its ``state``
        there; ``state`` keeps one state (``unread`` is ``delivered``)."""
        check_agent(recipient)
        if state == "unread":
            state = "delivered"
        if state is not None and state not in STATES:
            raise InvalidInput(f"state {state!r} is not one of unread, {', '.join(STATES)}")
        box = self._scan_box(recipient)
        self._refresh_rows({recipient: box})
        ids = [mid for mid, (st, _at) in box.items() if state is None or st == state]
        messages = [m for m in self._messages(ids).values() if thread is None or m.thread == thread]
        messages.sort(key=lambda m: (m.sent_at, m.id), reverse=True)
        messages = messages[:limit] if limit else messages
        return self._with_deliveries(messages, known={recipient: box}, reader=recipient)

    def read(self, recipient: str, message_id: str) -> Message:
        """The message with its body; marks it read in ``recipient``'s mailbox (a
        delivered one: ``message.read``). NotFound when it is not in that mailbox."""
        check_agent(recipient)
        check_id(message_id)
        self._advance(recipient, message_id, "read")
        message = self._load(message_id, body=True)
        (message,) = self._with_deliveries([message], reader=recipient)
        return message

    def ack(self, recipient: str, message_id: str) -> Written[Message]:
        """Acknowledge a message in ``recipient``'s mailbox (``message.acked``); ``updated``,
        or ``unchanged`` when it already was."""
        check_agent(recipient)
        check_id(message_id)
        moved = self._advance(recipient, message_id, "acked")
        message = self._load(message_id)
        (message,) = self._with_deliveries([message], reader=recipient)
        return Written(message, "updated" if moved else "unchanged")

    def _advance(self, recipient: str, message_id: str, target: str) -> bool:
        """Move the recipient's marker forward to ``target`` (one rename), with its row and
        event, in one write transaction; False when it is there or beyond already."""
        self._store.check_writable()
        base = self._box(recipient)
        with self.transaction() as tx:
            found = self._marker_state(recipient, message_id)
            if found is None:
                raise NotFound(
                    f"message {message_id} is not in {recipient}'s mailbox",
                    hint=f"`agentkeep msg inbox {recipient}` lists it",
                )
            current = found[0]
            if STATES.index(current) >= STATES.index(target):
                self._write_pairs(tx, {(recipient, message_id): found})
                return False
            source = base / STATE_DIRS[current] / message_id
            destination = base / STATE_DIRS[target] / message_id
            make_dirs(destination.parent, within=self.store_dir)
            check_no_links(self.store_dir, source.parent)
            try:
                os.utime(source, follow_symlinks=False)  # its mtime: when it got there
                os.rename(source, destination)
                failpoint("mail:after_move")
                fsync_path(destination.parent, directory=True)
                fsync_path(source.parent, directory=True)
            except OSError as exc:
                raise translate_os_error(exc, str(destination)) from exc
            self._write_pairs(
                tx, {(recipient, message_id): self._marker_state(recipient, message_id)}
            )
            tx.emit(
                "message",
                None,
                f"message.{target}",
                {"id": message_id, "recipient": recipient, "from_state": current},
            )
        return True

    def thread(self, thread_id: str) -> list[Message]:
        """Every message of a thread (the message that started it too), oldest first."""
        check_id(thread_id)
        found = self._select("thread", thread_id)
        if not found:
            raise NotFound(f"thread {thread_id} has no messages")
        messages = sorted(self._with_deliveries(found), key=lambda m: (m.sent_at, m.id))
        return messages

    def outbox(self, sender: str, *, limit: int | None = None) -> list[Message]:
        """The messages ``sender`` sent, newest first, with their deliveries."""
        check_agent(sender, "sender")
        found = self._select("from", sender)
        found.sort(key=lambda m: (m.sent_at, m.id), reverse=True)
        return self._with_deliveries(found[:limit] if limit else found)

    def get_message(self, message_id: str) -> Message:
        """A message (with its body) and its deliveries, marking nothing."""
        message = self._load(check_id(message_id), body=True)
        (message,) = self._with_deliveries([message])
        return message

    # -- the messages' metadata ---------------------------------------------------------------

    def _load(self, message_id: str, *, body: bool = False) -> Message:
        """A message from its file (the truth); NotFound."""
        path = self.message_path(message_id)
        data = _read(path)
        if data is None:
            raise NotFound(f"message {message_id} does not exist")
        parsed = docformat.parse(data.decode("utf-8", "replace"), ".md")
        return _message(
            parsed.fields, _rel(self.root, path), {}, body=parsed.body if body else None
        )

    def _messages(self, ids: Iterable[str]) -> dict[str, Message]:
        """The messages of ``ids`` from the document index; one it lacks (a crashed send's)
        is read from its file. A marker whose message file is gone is skipped."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Message] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ", ".join("?" for _ in part)
            for row in self._rows(
                f"SELECT name, path, fields FROM docs WHERE namespace = ? AND name IN ({marks})",
                (NAMESPACE, *part),
            ):
                fields = (
                    json.loads(row["fields"]) if isinstance(row["fields"], str) else row["fields"]
                )
                found[row["name"]] = _message(fields, row["path"], {})
        for message_id in wanted:
            if message_id not in found:
                try:
                    found[message_id] = self._load(message_id)
                except NotFound:
                    continue
        return found

    def _select(self, field_name: str, value: str) -> list[Message]:
        """The messages whose front matter ``field_name`` is ``value`` (``thread`` also
        takes the message that started it), from the document index. Its ``mail`` rows
        are checked against the message files by name first (a message file is written
        once): one a send cut short left unindexed is indexed, one whose file is gone is
        left out; the rescan of every document root is not needed for that."""
        files = _message_files(self.mail_dir / "messages")
        indexed = {
            row[0] for row in self._rows("SELECT name FROM docs WHERE namespace = ?", (NAMESPACE,))
        }
        missing = [Path(path) for name, path in files.items() if name not in indexed]
        if missing and self.writable and not self._conn.in_transaction:
            with self.transaction() as tx:
                for path in missing:
                    self._store.docs.index_file(tx, path)
        # Names and ids hold no '%' and no quote: the JSON text of the value, inside LIKE's
        # wildcards, finds every row holding it (and a few more: '_' matches any character,
        # and another field may hold the same text), which the exact test below sorts out.
        rows = self._rows(
            "SELECT name, path, fields FROM docs WHERE namespace = ? AND fields LIKE ? "
            "ORDER BY name",
            (NAMESPACE, f"%{json.dumps(value)}%"),
        )
        found = []
        for row in rows:
            if row["name"] not in files:
                continue
            fields = json.loads(row["fields"]) if isinstance(row["fields"], str) else row["fields"]
            if fields.get("type") != "message":
                continue
            if fields.get(field_name) == value or (field_name == "thread" and row["name"] == value):
                found.append(_message(fields, row["path"], {}))
        return found

    def _with_deliveries(
        self,
        messages: Sequence[Message],
        *,
        known: dict[str, Box] | None = None,
        reader: str | None = None,
    ) -> list[Message]:
        """``messages`` with each recipient's delivery, read from the markers (``known``:
        mailboxes listed already), and the index rows of those copies refreshed; with
        ``reader``, the reader's own state too."""
        known = known or {}
        pairs: dict[tuple[str, str], tuple[str, str] | None] = {}
        for message in messages:
            for name in dict.fromkeys((*message.to, *message.cc)):
                if name in known:
                    pairs[(name, message.id)] = known[name].get(message.id)
                elif _AGENT.match(name):
                    pairs[(name, message.id)] = self._marker_state(name, message.id)
        self._refresh_pairs({key: value for key, value in pairs.items() if key[0] not in known})
        out = []
        for message in messages:
            own = pairs.get((reader, message.id)) if reader is not None else None
            out.append(
                _replace(
                    message,
                    deliveries=_deliveries(message, pairs),
                    state=own[0] if own else None,
                )
            )
        return out

    # -- the index ------------------------------------------------------------------------------

    def deliveries(self, *, recipient: str | None = None) -> list[Delivery]:
        """The index rows as they are (for doctor and tests): no mailbox is read."""
        sql = "SELECT message, recipient, state, at FROM deliveries"
        params: tuple[Any, ...] = ()
        if recipient is not None:
            sql += " WHERE recipient = ?"
            params = (recipient,)
        return [Delivery.from_row(row) for row in self._rows(sql + " ORDER BY 2, 1", params)]

    def _refresh_rows(self, boxes: dict[str, Box]) -> None:
        """Rewrite the rows of these mailboxes that differ from their markers (a read on a
        writable store; nothing when they agree, so a read does not write)."""
        if not boxes or not self.writable or self._conn.in_transaction:
            return
        if self._rows_of(boxes) == _wanted(boxes):
            return
        with self.transaction() as tx:  # read again under the writer lock: no marker moves
            fresh = {name: self._scan_box(name) for name in boxes}
            self._write_rows(tx, fresh)

    def _rows_of(self, boxes: dict[str, Box]) -> dict[tuple[str, str], tuple[str, str]]:
        """The index rows of these mailboxes (inside a transaction: its own state)."""
        names = list(boxes)
        have: dict[tuple[str, str], tuple[str, str]] = {}
        for start in range(0, len(names), 500):
            part = names[start : start + 500]
            marks = ", ".join("?" for _ in part)
            sql = (
                f"SELECT message, recipient, state, at FROM deliveries WHERE recipient IN ({marks})"
            )
            for row in self._rows(sql, part):
                have[(row[1], row[0])] = (row[2], row[3])
        return have

    def _write_rows(self, tx: Tx, boxes: dict[str, Box]) -> int:
        """Make the rows of ``boxes`` what the boxes say, inside ``tx``; returns the rows
        changed."""
        want = _wanted(boxes)
        have = self._rows_of(boxes)
        changed = 0
        for recipient, message in have:
            if (recipient, message) not in want:
                tx.execute(
                    "DELETE FROM deliveries WHERE message = ? AND recipient = ?",
                    (message, recipient),
                )
                changed += 1
        for (recipient, message), (state, at) in want.items():
            if have.get((recipient, message)) != (state, at):
                _upsert(tx, message, recipient, state, at)
                changed += 1
        return changed

    def _refresh_pairs(self, pairs: dict[tuple[str, str], tuple[str, str] | None]) -> None:
        """:meth:`_refresh_rows` for single copies ((recipient, message) → its marker)."""
        if not pairs or not self.writable or self._conn.in_transaction:
            return
        want = {key: value for key, value in pairs.items() if value is not None}
        if self._pair_rows(pairs) == want:
            return
        with self.transaction() as tx:  # read again under the writer lock: no marker moves
            self._write_pairs(tx, {key: self._marker_state(*key) for key in pairs})

    def _pair_rows(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, str]]:
        keys = set(pairs)
        messages = sorted({message for _recipient, message in keys})
        have: dict[tuple[str, str], tuple[str, str]] = {}
        for start in range(0, len(messages), 500):
            part = messages[start : start + 500]
            marks = ", ".join("?" for _ in part)
            for row in self._rows(
                f"SELECT message, recipient, state, at FROM deliveries WHERE message IN ({marks})",
                part,
            ):
                if (row[1], row[0]) in keys:
                    have[(row[1], row[0])] = (row[2], row[3])
        return have

    def _write_pairs(self, tx: Tx, pairs: dict[tuple[str, str], tuple[str, str] | None]) -> None:
        """Make the rows of these copies what their markers say (None: no marker)."""
        have = self._pair_rows(pairs)
        for (recipient, message), value in pairs.items():
            if value is None and (recipient, message) in have:
                tx.execute(
                    "DELETE FROM deliveries WHERE message = ? AND recipient = ?",
                    (message, recipient),
                )
            elif value is not None and have.get((recipient, message)) != value:
                _upsert(tx, message, recipient, *value)

    def check(self) -> list[str]:
        """What differs between the mail files and the index, read-only (for ``doctor``):
        a copy indexed in another state or not at all, a row whose marker is gone, a
        recipient who never got a message (a send cut short: ``refresh`` delivers it), a
        marker of no message. ``refresh`` corrects all but the last."""
        found: list[str] = []
        files = _message_files(self.mail_dir / "messages")
        boxes = {name: self._scan_box(name, found) for name in self._recipients_on_disk()}
        want = _wanted(boxes)
        have = {
            (row[1], row[0]): (row[2], row[3])
            for row in self._rows("SELECT message, recipient, state, at FROM deliveries")
        }
        for (recipient, message), (state, _at) in sorted(want.items()):
            if message not in files:
                found.append(f"{recipient}: message {message} has no file")
            got = have.get((recipient, message))
            if got is None:
                found.append(f"{recipient}: message {message} is not indexed ({state})")
            elif got != want[(recipient, message)]:
                found.append(f"{recipient}: message {message} is indexed as {got[0]}, not {state}")
        for recipient, message in sorted(set(have) - set(want)):
            found.append(f"{recipient}: message {message} is indexed but has no marker")
        for message, path in files.items():
            data = _read(Path(path))
            if data is None:
                continue
            fields = docformat.parse(data.decode("utf-8", "replace"), ".md").fields
            for name in dict.fromkeys((*_names(fields.get("to")), *_names(fields.get("cc")))):
                if _AGENT.match(name) and message not in boxes.get(name, {}):
                    found.append(f"{name}: message {message} was never delivered")
        return found

    def refresh(self, *, rebuild: bool = False, complete: bool = True) -> MailReport:
        """Bring the ``deliveries`` rows up to date with every mailbox (``rebuild``: empty
        the table first) and, with ``complete``, deliver each message file to its
        recipients who have no marker (a send that crashed after writing it: the file is
        the sender's intent; the marker is made once, so this never delivers twice)."""
        self._store.check_writable()
        report = MailReport(rebuilt=rebuild)
        messages_dir = self.mail_dir / "messages"
        with self.transaction() as tx:
            if rebuild:
                tx.execute("DELETE FROM deliveries")
            files = _message_files(messages_dir)
            report.messages = len(files)
            for message_id, path in files.items() if complete else ():
                data = _read(Path(path))
                if data is None:
                    continue
                fields = docformat.parse(data.decode("utf-8", "replace"), ".md").fields
                wanted = [*_names(fields.get("to")), *_names(fields.get("cc"))]
                delivered = self._deliver(message_id, [n for n in wanted if _AGENT.match(n)])
                if not delivered:
                    continue
                self._store.docs.index_file(tx, Path(path))
                report.completed.append(message_id)
                if self._record_sent(tx, message_id):
                    event = tx.emit(
                        "message",
                        None,
                        "message.sent",
                        {
                            "id": message_id,
                            "ref": f"{NAMESPACE}/{message_id}",
                            "delivered": delivered,
                            "completed": True,
                        },
                    )
                    tx.remember_key(_sent_key(message_id), "message", event.seq)
            boxes = {
                name: self._scan_box(name, report.problems) for name in self._recipients_on_disk()
            }
            report.deliveries = sum(len(box) for box in boxes.values())
            for name, box in boxes.items():
                for message_id in box:
                    if message_id not in files:
                        report.problems.append(f"{name}: message {message_id} has no file")
            gone = [
                (row[0], row[1])
                for row in self._rows("SELECT message, recipient FROM deliveries")
                if row[1] not in boxes
            ]
            for message, recipient in gone:
                tx.execute(
                    "DELETE FROM deliveries WHERE message = ? AND recipient = ?",
                    (message, recipient),
                )
            report.changed = len(gone) + self._write_rows(tx, boxes)
            if rebuild:
                tx.emit("message", None, "message.reindexed", report.to_dict())
        return report


# -- helpers ------------------------------------------------------------------------------------


def _sent_key(message_id: str) -> str:
    """The idempotency key that says the message's ``message.sent`` is recorded."""
    return f"message.sent:{message_id}"


def _render(fields: dict[str, Any], body: str) -> bytes:
    ordered = {name: fields[name] for name in _FIELDS}
    return docformat.render(ordered, body, "markdown", front="json").encode("utf-8")


def _read(path: Path) -> bytes | None:
    # The documents' reader: None when gone, and a link is never followed out of the store.
    from agentkeep.services.docs import read_document_file

    return read_document_file(path)


def _sent_at(data: bytes) -> str | None:
    value = docformat.parse(data.decode("utf-8", "replace"), ".md").fields.get("sent_at")
    return value if isinstance(value, str) else None


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, str)]
    return []


def _message(
    fields: dict[str, Any],
    path: str,
    pairs: dict[tuple[str, str], tuple[str, str] | None],
    *,
    body: str | None = None,
) -> Message:
    message_id = str(fields.get("id") or Path(path).stem)
    reply = fields.get("in_reply_to")
    message = Message(
        id=message_id,
        thread=str(fields.get("thread") or message_id),
        sender=str(fields.get("from") or ""),
        to=_names(fields.get("to")),
        cc=_names(fields.get("cc")),
        subject=str(fields.get("subject") or ""),
        importance=str(fields.get("importance") or "normal"),
        ack_required=bool(fields.get("ack_required")),
        in_reply_to=str(reply) if reply else None,
        sent_at=str(fields.get("sent_at") or ""),
        path=path,
        body=body,
    )
    return _replace(message, deliveries=_deliveries(message, pairs)) if pairs else message


def _deliveries(
    message: Message, pairs: dict[tuple[str, str], tuple[str, str] | None]
) -> list[Delivery]:
    out = []
    for name in dict.fromkeys((*message.to, *message.cc)):
        got = pairs.get((name, message.id))
        if got is not None:
            out.append(Delivery(message.id, name, got[0], got[1]))
    return out


def _upsert(tx: Tx, message: str, recipient: str, state: str, at: str) -> None:
    tx.execute(
        "INSERT INTO deliveries (message, recipient, state, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (message, recipient) DO UPDATE SET state = excluded.state, "
        "at = excluded.at",
        (message, recipient, state, at),
    )


def _replace(message: Message, **changes: Any) -> Message:
    import dataclasses

    return dataclasses.replace(message, **changes)


def _wanted(boxes: dict[str, Box]) -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (recipient, message): value
        for recipient, box in boxes.items()
        for message, value in box.items()
    }


def _message_files(directory: Path) -> dict[str, str]:
    """Message id → its file's path (text: a Path for each of thousands costs more than
    the listing), sorted by id."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return {}
    found = {}
    for entry in entries:
        stem, dot, suffix = entry.name.rpartition(".")
        if dot and suffix == "md" and _ID.match(stem) and ".tmp-" not in entry.name:
            found[stem] = entry.path
    return dict(sorted(found.items()))
