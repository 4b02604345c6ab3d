"""OpenCode's own history: its SQLite database (v1.2 on) and the older JSON files (≤ v1.1).

Where: the PATH given (a data directory, one database file, or a ``storage`` directory),
else ``$XDG_DATA_HOME/opencode`` (default ``~/.local/share/opencode``). Only these are
read — an allow-list, because ``auth.json`` with the provider credentials lives in the
same directory and is never opened:

- ``opencode.db`` and the release channels' ``opencode-<channel>.db``: the tables
  ``session``, ``message`` and ``part`` (their ``data`` columns hold the JSON of each
  message and part);
- ``storage/session/<project>/<session>.json``, ``storage/message/<session>/<message>.json``
  and ``storage/part/<message>/<part>.json``.

**The database is never disturbed.** It is opened through SQLite with ``mode=ro`` and
``query_only``: agentkeep never writes it and never checkpoints its WAL (a read-only
connection cannot). Each session is read inside one read transaction, a consistent
snapshot while OpenCode keeps writing. A database locked for longer than
:data:`BUSY_TIMEOUT_S` (OpenCode migrating it, an exclusive lock) is reported as an error
for that file; the import goes on with the others.

**One OpenCode session is one import "file"** (cursor key ``db:<session id>`` or
``json:<session id>``, never a path) and one agentkeep session (source 'opencode',
external_id = OpenCode's id, parent_id from OpenCode's ``parent_id``: subagents). Sessions
are matched to the project by their ``directory`` (the root or one of its worktrees).
Default titles ("New session - …") are not kept, so the generated title wins later. A
session archived in OpenCode is ended at its archive time; others stay 'running' (OpenCode
records no end). Under the capture policy 'off' nothing is read.

**One transcript row per part**, external_id = the part id: text → text (a compaction
summary, in an assistant message marked ``summary``, → summary; a synthetic text OpenCode
injected into a user message → role system), reasoning → thinking, tool → a tool_use row
(the input as JSON) plus, once the call finished, a tool_result row ``<part id>:result``
(is_error when its status is "error"), compaction → summary, file / patch / step-start /
step-finish / snapshot / agent / subtask / retry → event, anything else → raw (the part
kept whole). ``seq`` is the message's creation time (ms) × 2¹⁶ plus the part's rank in its
message (by part id), so rows sort by message time, then part. Each assistant message's
tokens (input, output + reasoning, cache read, cache write) are counted once, on its first
row (message_key = the message id); its cost becomes an ``opencode.cost`` metric (USD,
labels model, provider and message), recorded once.

**Incremental.** A session's cursor keeps a fingerprint (database: the session's
time_updated and its messages' and parts' counts and latest time_updated, found through
the session_id indexes without reading the data columns; JSON: the sizes and mtimes of its
files). Discovery lists the sessions and fingerprints this project's over one connection
(reusing the saved fingerprint when the database files' size and mtime did not change);
an unchanged session is then skipped without opening anything. A changed database session
re-reads only the parts updated since the last import (with :data:`SLACK_MS` to spare);
rows are deduplicated by external_id. ``--since`` skips sessions last updated before it.

**Streaming updates.** OpenCode rewrites a part while the model streams into it (a text
grows; a tool goes pending → running → completed). A part imported mid-stream is updated
when the database shows it changed: its text and error flag are replaced (the FTS
triggers follow). The JSON layout is frozen legacy (OpenCode ≥ 1.2 writes only the
database), so a data directory holding both after the migration is the union of both,
deduplicated by session, message and part ids; JSON rows never overwrite database rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from agentkeep.capture import CaptureError, Writer, relative_path
from agentkeep.importers import BATCH_BYTES, FileOutcome, ImportContext, SourceFile
from agentkeep.importers.files import Cursor, save_cursor
from agentkeep.timeutil import iso_utc

SOURCE = "opencode"
# How long a read waits for a lock OpenCode holds (SQLite's busy handler retries inside),
# and how often the whole read is tried before the file is reported as an error.
BUSY_TIMEOUT_S = 1.0
READ_ATTEMPTS = 2
# Parts updated this long before the last import's newest part are read again (clock
# steps and writes within one millisecond must not hide a part).
SLACK_MS = 10_000
# A JSON file (session, message or part) larger than this is not read.
MAX_JSON_BYTES = 64 * 1024 * 1024
_RANK_SPAN = 1 << 16  # seq = created_ms * 2**16 + rank * 2 + (0 call | 1 result)
_DEFAULT_TITLES = ("New session - ", "Child session - ")
_EVENT_PARTS = (
    "file",
    "patch",
    "step-start",
    "step-finish",
    "snapshot",
    "agent",
    "subtask",
    "retry",
)

T = TypeVar("T")


def default_data_dir() -> Path:
    """OpenCode's data directory: ``$XDG_DATA_HOME/opencode`` or ``~/.local/share/opencode``."""
    base = os.environ.get("XDG_DATA_HOME", "")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "opencode"


@dataclass(frozen=True)
class _Ref:
    """What discovery learnt about one session (the SourceFile's hint)."""

    layout: str  # 'db' | 'json'
    id: str
    directory: str | None = None
    parent: str | None = None  # OpenCode id of the parent, when it belongs to the project
    created: int | None = None  # ms
    updated: int | None = None  # ms
    signature: str | None = None  # the database files' sizes and mtimes (db layout)
    fingerprint: list[Any] | None = None  # what the session looked like (db layout)
    storage: Path | None = None  # the storage directory (json layout)
    error: str | None = None  # the file could not be listed: reported by import_file


@dataclass
class _Message:
    id: str
    created: int | None
    updated: int | None
    info: dict[str, Any]

    @property
    def role(self) -> str:
        role = self.info.get("role")
        return role if role in ("user", "assistant") else "assistant"

    @property
    def model(self) -> str | None:
        if self.role == "assistant":
            return _str(self.info.get("modelID"))
        model = self.info.get("model")
        return _str(model.get("modelID")) if isinstance(model, dict) else None

    def tokens(self) -> tuple[int, int, int, int] | None:
        tokens = self.info.get("tokens")
        if self.role != "assistant" or not isinstance(tokens, dict):
            return None
        cache = _dict(tokens.get("cache"))
        counts = (
            _int(tokens.get("input")),
            _int(tokens.get("output")) + _int(tokens.get("reasoning")),
            _int(cache.get("read")),
            _int(cache.get("write")),
        )
        return counts if any(counts) else None


@dataclass
class _Part:
    id: str
    message_id: str
    created: int | None
    data: Any  # the part's JSON (a dict), or None when it was unreadable
    size: int  # bytes read, for batching


@dataclass
class _Conversation:
    session: dict[str, Any]  # id, directory, title, created, updated, archived
    messages: dict[str, _Message]
    ranks: dict[str, int]  # part id -> its position in its message
    firsts: dict[str, str]  # message id -> its first part's id
    parts: Iterable[_Part]
    changed: set[str] | None  # ids of messages that changed since the last import (None: all)
    refresh: bool  # update rows whose text changed (the database); JSON rows only insert
    state: dict[str, Any] = field(default_factory=dict)  # the cursor's new state


class _Unreadable(Exception):
    """An OpenCode file that cannot be read now (locked, not a database, …)."""


class OpenCodeImporter:
    source = SOURCE

    # -- discovery --------------------------------------------------------------------------

    def discover(self, ctx: ImportContext) -> Iterable[SourceFile]:
        if ctx.store.config["capture.policy"] == "off":
            return []
        databases, storage = _locate(ctx.path)
        errors: list[SourceFile] = []
        by_id: dict[str, SourceFile] = {}
        known = _cursor_states(ctx) if databases else {}
        for db in databases:
            signature = _signature(db)  # before reading: a write after it shows next time
            try:
                listed = _read(
                    db, partial(_list_sessions, ctx=ctx, known=known, signature=signature)
                )
            except _Unreadable as exc:
                message = f"{db.name}: {exc}"
                errors.append(SourceFile(db, db.name, _Ref("db", db.name, error=message)))
                continue
            for row, fingerprint in listed:
                ref = _Ref(
                    "db",
                    row["id"],
                    directory=row["directory"],
                    parent=row["parent_id"],
                    created=_int_or_none(row["time_created"]),
                    updated=_int_or_none(row["time_updated"]),
                    signature=signature,
                    fingerprint=fingerprint,
                )
                seen = by_id.get(ref.id)  # the same session in two channels' databases
                if seen is None or (ref.updated or 0) > (seen.hint.updated or 0):
                    by_id[ref.id] = SourceFile(db, f"db:{ref.id}", ref)
        files = list(by_id.values())
        if storage is not None:
            for path in sorted(storage.glob("session/*/*.json")):
                key = f"json:{path.stem}"
                try:
                    info = _load_json(path)
                except _Unreadable as exc:
                    rel = path.relative_to(storage).as_posix()
                    errors.append(
                        SourceFile(path, key, _Ref("json", path.stem, error=f"{rel}: {exc}"))
                    )
                    continue
                sid = _str(info.get("id")) or path.stem
                times = _dict(info.get("time"))
                ref = _Ref(
                    "json",
                    sid,
                    directory=_str(info.get("directory")),
                    parent=_str(info.get("parentID")),
                    created=_int_or_none(times.get("created")),
                    updated=_int_or_none(times.get("updated")),
                    storage=storage,
                )
                files.append(SourceFile(path, f"json:{sid}", ref))
        # A parent is linked only when it belongs to the project too (it is imported
        # first: sessions are ordered by creation, and a subagent starts after its parent).
        belonging = {f.hint.id for f in files if ctx.belongs(f.hint.directory)}
        files = [
            f if f.hint.parent in belonging else replace(f, hint=replace(f.hint, parent=None))
            for f in files
        ]
        files.sort(key=lambda f: (f.hint.created or 0, f.hint.layout != "db", f.hint.id))
        return errors + files

    # -- one session ------------------------------------------------------------------------

    def import_file(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None
    ) -> FileOutcome:
        ref: _Ref = file.hint
        if ref.error is not None:
            return FileOutcome("error", error=ref.error)
        if not ctx.belongs(ref.directory):
            return FileOutcome("foreign")
        if ctx.since and ref.updated is not None and (_iso(ref.updated) or "") < ctx.since:
            return FileOutcome("unchanged")
        try:
            if ref.layout == "db":
                if cursor is not None and cursor.state.get("fingerprint") == ref.fingerprint:
                    return FileOutcome("unchanged")  # not even opened
                return _read(file.path, lambda conn: self._import_db(ctx, file, conn, cursor))
            return self._import_json(ctx, file, cursor)
        except _Unreadable as exc:
            return FileOutcome("error", error=f"{file.key}: {exc}")

    def _import_db(
        self, ctx: ImportContext, file: SourceFile, conn: sqlite3.Connection, cursor: Cursor | None
    ) -> FileOutcome:
        ref: _Ref = file.hint
        row = conn.execute("SELECT * FROM session WHERE id = ?", (ref.id,)).fetchone()
        if row is None:
            return FileOutcome("unchanged")  # deleted since discovery
        session = dict(row)
        fingerprint = _fingerprint(conn, ref.id, session.get("time_updated"))
        counts = fingerprint[1:]
        state = cursor.state if cursor is not None else {}
        if state.get("fingerprint") == fingerprint:
            return FileOutcome("unchanged")
        part_cutoff = int(state.get("part_updated") or 0) - SLACK_MS if cursor else None
        message_cutoff = int(state.get("message_updated") or 0) - SLACK_MS if cursor else None
        messages: dict[str, _Message] = {}
        changed: set[str] = set()
        for m in conn.execute(
            "SELECT id, time_created, time_updated, data FROM message WHERE session_id = ?"
            " ORDER BY time_created, id",
            (ref.id,),
        ):
            message = _Message(
                m["id"], _int_or_none(m["time_created"]), _int_or_none(m["time_updated"]),
                _dict(_decode(m["data"])),
            )  # fmt: skip
            messages[message.id] = message
            if message_cutoff is None or (message.updated or 0) >= message_cutoff:
                changed.add(message.id)
        ranks, firsts = _ranks(
            conn.execute(
                "SELECT id, message_id FROM part WHERE session_id = ? ORDER BY message_id, id",
                (ref.id,),
            )
        )
        query = conn.execute(
            "SELECT id, message_id, time_created, data FROM part"
            " WHERE session_id = ? AND time_updated >= ?",
            (ref.id, part_cutoff if part_cutoff is not None else -(2**62)),
        )
        parts = (
            _Part(p["id"], p["message_id"], _int_or_none(p["time_created"]),
                  _decode(p["data"]), len(p["data"] or ""))
            for p in query
        )  # fmt: skip
        conversation = _Conversation(
            session={
                "id": ref.id,
                "directory": session.get("directory"),
                "title": session.get("title"),
                "created": _int_or_none(session.get("time_created")),
                "archived": _int_or_none(session.get("time_archived")),
            },
            messages=messages,
            ranks=ranks,
            firsts=firsts,
            parts=parts,
            changed=changed,
            refresh=True,
            state={
                "fingerprint": fingerprint,
                "signature": ref.signature,
                "message_updated": counts[1] or 0,
                "part_updated": counts[3] or 0,
            },
        )
        return self._store(ctx, file, conversation)

    def _import_json(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None
    ) -> FileOutcome:
        ref: _Ref = file.hint
        assert ref.storage is not None
        message_files = _json_files(ref.storage / "message" / ref.id)
        part_files = {
            path.stem: _json_files(ref.storage / "part" / path.stem) for path in message_files
        }
        stats = [_stat_line(file.path, ref.storage)]
        stats += [_stat_line(p, ref.storage) for p in message_files]
        stats += [_stat_line(p, ref.storage) for files in part_files.values() for p in files]
        fingerprint = hashlib.sha256("\n".join(stats).encode()).hexdigest()
        if cursor is not None and cursor.state.get("fingerprint") == fingerprint:
            return FileOutcome("unchanged")
        info = _load_json(file.path)
        times = _dict(info.get("time"))
        messages: dict[str, _Message] = {}
        for path in message_files:
            try:
                data = _dict(_load_json(path))
            except _Unreadable:
                data = {}
            created = _int_or_none(_dict(data.get("time")).get("created"))
            messages[path.stem] = _Message(path.stem, created, None, data)
        ordered = sorted(messages.values(), key=lambda m: (m.created or 0, m.id))
        ranks = {p.stem: rank for files in part_files.values() for rank, p in enumerate(files)}
        firsts = {message_id: files[0].stem for message_id, files in part_files.items() if files}

        def parts() -> Iterator[_Part]:
            for message_id, files in part_files.items():
                for path in files:
                    try:
                        data: Any = _load_json(path)
                        size = path.stat().st_size
                    except (_Unreadable, OSError):
                        data, size = None, 0
                    yield _Part(path.stem, message_id, None, data, size)

        conversation = _Conversation(
            session={
                "id": ref.id,
                "directory": info.get("directory"),
                "title": info.get("title"),
                "created": _int_or_none(times.get("created")),
                "archived": _int_or_none(times.get("archived")),
            },
            messages={m.id: m for m in ordered},
            ranks=ranks,
            firsts=firsts,
            parts=parts(),
            changed=None,
            refresh=False,
            state={"fingerprint": fingerprint},
        )
        return self._store(ctx, file, conversation)

    # -- writing ----------------------------------------------------------------------------

    def _store(self, ctx: ImportContext, file: SourceFile, conv: _Conversation) -> FileOutcome:
        """Write one conversation in batches of ~BATCH_BYTES; the cursor commits with the
        last batch (a crash re-reads the session, and external ids make that a no-op)."""
        ref: _Ref = file.hint
        outcome = FileOutcome("imported")
        placed: set[str] = set()  # messages whose tokens went onto their first row now
        skipped = 0
        session_id: int | None = None
        parts = iter(conv.parts)
        done = False
        while not done:
            with ctx.store.transaction() as tx:
                writer: Writer = ctx.store.capture_writer(tx)
                if session_id is None:
                    session_id = self._session(writer, ref, conv)
                    outcome.sessions.add(session_id)
                batch = 0
                for part in parts:
                    batch += part.size
                    message = conv.messages.get(part.message_id)
                    if message is None:  # a part whose message is gone
                        message = _Message(part.message_id, part.created, None, {})
                    rank = conv.ranks.get(part.id, _RANK_SPAN // 2 - 1)
                    rows = _part_rows(part, message, rank, ctx.root)
                    tokens = message.tokens() if rank == 0 else None
                    for number, row in enumerate(rows):
                        if number == 0 and tokens is not None:
                            row["tokens"] = tokens
                        try:
                            added = writer.message(session_id, **row)
                        except CaptureError:
                            skipped += 1
                            continue
                        if added is not None:
                            outcome.messages += 1
                            if "tokens" in row:
                                placed.add(message.id)
                        elif conv.refresh:
                            _refresh(writer, session_id, row)
                    if batch >= BATCH_BYTES:
                        break
                else:
                    done = True
                outcome.bytes += batch
                if done:
                    self._finish(writer, session_id, conv, placed)
                    state = dict(conv.state)
                    if skipped:
                        state["skipped"] = skipped
                    cursor = Cursor(
                        source=SOURCE, file_key=file.key, session_id=session_id, state=state
                    )
                    save_cursor(tx.conn, cursor, tx.now)
        return outcome

    def _session(self, writer: Writer, ref: _Ref, conv: _Conversation) -> int:
        parent_id = writer.session(SOURCE, ref.parent) if ref.parent else None
        title = _str(conv.session.get("title"))
        if title is not None and title.startswith(_DEFAULT_TITLES):
            title = None  # OpenCode's placeholder; its generated title comes later
        first = next(iter(conv.messages.values()), None)
        model = next((m.model for m in conv.messages.values() if m.role == "assistant"), None)
        return writer.session(
            SOURCE,
            ref.id,
            started_at=_iso(conv.session.get("created")),
            cwd=_str(conv.session.get("directory")),
            model=model,
            title=title,
            parent_id=parent_id,
            agent_kind=SOURCE,
            agent_role=_str(first.info.get("agent")) if first is not None else None,
        )

    def _finish(
        self, writer: Writer, session_id: int, conv: _Conversation, placed: set[str]
    ) -> None:
        for message in conv.messages.values():
            if conv.changed is not None and message.id not in conv.changed:
                continue
            tokens = message.tokens()
            if (
                tokens is not None
                and message.id not in placed
                and not _has_tokens(writer, session_id, conv.firsts.get(message.id), tokens)
            ):
                writer.message_tokens(session_id, message.id, tokens)
            _cost_metric(writer, session_id, message)
        writer.session_totals_from_messages(session_id)
        turns = sum(1 for m in conv.messages.values() if m.role == "user")
        writer.raise_counts(session_id, turns=turns)
        archived = _iso(conv.session.get("archived"))
        if archived is not None:
            writer.end_session(session_id, at=archived, reason="archived in OpenCode")


# -- parts to rows --------------------------------------------------------------------------


def _part_rows(part: _Part, message: _Message, rank: int, root: str) -> list[dict[str, Any]]:
    """The transcript rows of one part (keyword arguments of :meth:`Writer.message`)."""
    data = part.data if isinstance(part.data, dict) else None
    role = message.role
    seq = (message.created or 0) * _RANK_SPAN + min(rank, _RANK_SPAN // 2 - 1) * 2
    at = _iso(part.created) or _iso(message.created)
    base: dict[str, Any] = {
        "seq": seq,
        "external_id": part.id,
        "role": role,
        "at": at,
        "message_key": message.id,
        "model": message.model if role == "assistant" else None,
    }
    if data is None:
        return [{**base, "kind": "raw"}]
    kind = data.get("type")
    times = _dict(data.get("time"))
    if kind in ("text", "reasoning"):
        row = {**base, "text": _str(data.get("text")) or ""}
        row["at"] = _iso(times.get("start")) or at
        if kind == "reasoning":
            row["kind"] = "thinking"
        elif role == "assistant" and message.info.get("summary") is True:
            row["kind"] = "summary"  # the compaction summary the model wrote
        else:
            row["kind"] = "text"
            if role == "user" and data.get("synthetic") is True:
                row["role"] = "system"  # injected by OpenCode, not typed by the user
        return [row]
    if kind == "tool":
        state = _dict(data.get("state"))
        status = state.get("status")
        state_times = _dict(state.get("time"))
        name = _str(data.get("tool"))
        call_id = _str(data.get("callID")) or part.id
        rows = [
            {
                **base,
                "kind": "tool_use",
                "text": _dumps(state.get("input", {})),
                "tool_name": name,
                "tool_use_id": call_id,
                "at": _iso(state_times.get("start")) or at,
            }
        ]
        if status in ("completed", "error"):
            failed = status == "error"
            output = state.get("error") if failed else state.get("output")
            rows.append(
                {
                    **base,
                    "seq": seq + 1,
                    "external_id": f"{part.id}:result",
                    "role": "tool",
                    "kind": "tool_result",
                    "text": output if isinstance(output, str) else _dumps(output),
                    "tool_name": name,
                    "tool_use_id": call_id,
                    "is_error": failed,
                    "at": _iso(state_times.get("end")) or at,
                    "parent_external_id": part.id,
                }
            )
        return rows
    if kind == "compaction":
        how = "automatically" if data.get("auto") else "on request"
        return [
            {**base, "role": "system", "kind": "summary",
             "text": f"Conversation compacted ({how})", "raw": data}
        ]  # fmt: skip
    if kind in _EVENT_PARTS:
        return [{**base, "kind": "event", "text": _event_text(kind, data, root),
                 "raw": _event_raw(kind, data, root)}]  # fmt: skip
    return [{**base, "kind": "raw", "raw": data}]


def _event_text(kind: str, data: dict[str, Any], root: str) -> str:
    if kind == "file":
        source = _dict(data.get("source"))
        name = relative_path(root, _str(source.get("path"))) or _str(data.get("filename")) or ""
        return f"file {name} ({_str(data.get('mime')) or 'unknown type'})".replace("  ", " ")
    if kind == "patch":
        files = [
            relative_path(root, f) or "" for f in data.get("files") or [] if isinstance(f, str)
        ]
        return f"patch: {', '.join(files)}" if files else "patch"
    if kind == "step-finish":
        return f"step finished: {_str(data.get('reason')) or 'unknown'}"
    if kind == "agent":
        return f"agent @{_str(data.get('name')) or '?'}"
    if kind == "subtask":
        return (
            f"subtask for @{_str(data.get('agent')) or '?'}: {_str(data.get('description')) or ''}"
        )
    if kind == "retry":
        error = _dict(data.get("error"))
        detail = _str(_dict(error.get("data")).get("message")) or _str(error.get("name")) or ""
        return f"retry {data.get('attempt')}: {detail}".rstrip(": ")
    return kind.replace("-", " ")


def _event_raw(kind: str, data: dict[str, Any], root: str) -> dict[str, Any]:
    """The part kept as the event's raw record, without inline file contents or absolute
    paths (a file part's ``url`` may be a data: URL of a whole image)."""
    raw = dict(data)
    if kind == "file":
        url = _str(raw.get("url")) or ""
        if url.startswith("data:"):
            raw["url"] = f"{url.split(',', 1)[0]},… ({len(url):,} characters not kept)"
        elif url.startswith("file://"):
            raw["url"] = relative_path(root, url.removeprefix("file://"))
        source = _dict(raw.get("source"))
        if "path" in source:
            raw["source"] = {**source, "path": relative_path(root, _str(source["path"]))}
            raw["source"].pop("text", None)
    if kind == "patch" and isinstance(raw.get("files"), list):
        raw["files"] = [relative_path(root, f) if isinstance(f, str) else f for f in raw["files"]]
    return raw


def _refresh(writer: Writer, session_id: int, row: dict[str, Any]) -> None:
    """Replace the text and error flag of a row imported earlier whose part changed since
    (a streamed text that grew, a tool call that finished). The FTS triggers follow."""
    writer.update_message(
        session_id, row["external_id"], text=row.get("text"), is_error=bool(row.get("is_error"))
    )


def _has_tokens(
    writer: Writer, session_id: int, part_id: str | None, tokens: tuple[int, int, int, int]
) -> bool:
    """Whether the message's first row already carries at least ``tokens`` (a cheap check by
    the unique (session, external_id) index before the scan message_tokens does)."""
    if part_id is None:
        return False
    row = writer.conn.execute(
        "SELECT input_tokens, output_tokens, cache_read_tokens, cache_write_tokens"
        " FROM messages WHERE session_id = ? AND external_id = ?",
        (session_id, part_id),
    ).fetchone()
    return row is not None and all(have >= want for have, want in zip(row, tokens, strict=True))


def _cost_metric(writer: Writer, session_id: int, message: _Message) -> None:
    """One ``opencode.cost`` observation per finished assistant message (USD), once."""
    cost = message.info.get("cost")
    at = _iso(_dict(message.info.get("time")).get("completed"))
    if message.role != "assistant" or at is None or not isinstance(cost, int | float):
        return
    if isinstance(cost, bool) or not cost or cost != cost or cost in (float("inf"), -float("inf")):
        return
    labels = {
        "model": _str(message.info.get("modelID")) or "",
        "provider": _str(message.info.get("providerID")) or "",
        "message": message.id,
    }
    writer.metric(
        "opencode.cost", float(cost), at=at, labels=labels, session_id=session_id, once=True
    )


# -- reading --------------------------------------------------------------------------------


def _locate(path: Path | None) -> tuple[list[Path], Path | None]:
    """(database files, storage directory) under ``path`` (or OpenCode's data directory)."""
    root = path if path is not None else default_data_dir()
    if root.is_file():
        return [root], None
    if root.name == "storage" and (root / "session").is_dir():
        return [], root
    if not root.is_dir():
        return [], None
    databases = sorted(
        (p for p in root.glob("opencode*.db") if _is_database_name(p.name) and p.is_file()),
        key=lambda p: (p.name != "opencode.db", p.name),
    )
    storage = root / "storage"
    return databases, storage if (storage / "session").is_dir() else None


def _is_database_name(name: str) -> bool:
    return name == "opencode.db" or (name.startswith("opencode-") and name.endswith(".db"))


def _signature(db: Path) -> str:
    """The database files' sizes and mtimes: unchanged means OpenCode wrote nothing."""
    parts = []
    for suffix in ("", "-wal"):
        try:
            st = os.stat(f"{db}{suffix}")
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append("-")
    return "/".join(parts)


def _read(db: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` on a read-only connection to ``db``, inside one read transaction."""
    uri = f"{db.resolve().as_uri()}?mode=ro"
    for attempt in range(READ_ATTEMPTS):
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise _Unreadable(_why(exc)) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
            return work(conn)
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or attempt + 1 == READ_ATTEMPTS:
                raise _Unreadable(_why(exc)) from exc
            time.sleep(0.05)
        except sqlite3.Error as exc:
            raise _Unreadable(_why(exc)) from exc
        finally:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            conn.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _why(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            f"the OpenCode database stayed locked for {BUSY_TIMEOUT_S:g} s (OpenCode may be "
            "migrating it); nothing was changed, try again"
        )
    if "no such table" in text or "no such column" in text:
        return f"not an OpenCode database this version knows ({text})"
    if "not a database" in text:
        return "not a SQLite database"
    return f"cannot read the OpenCode database: {text}"


def _cursor_states(ctx: ImportContext) -> dict[str, dict[str, Any]]:
    """The saved state of every OpenCode session cursor, by file key."""
    rows = ctx.store._rows(
        "SELECT file_key, state FROM import_cursors WHERE source = ? AND file_key LIKE 'db:%'",
        (SOURCE,),
    )
    return {row["file_key"]: json.loads(row["state"]) for row in rows}


def _list_sessions(
    conn: sqlite3.Connection,
    *,
    ctx: ImportContext,
    known: dict[str, dict[str, Any]],
    signature: str,
) -> list[tuple[sqlite3.Row, list[Any] | None]]:
    """Every session, with the fingerprint of those of this project: the one its cursor
    saved if the database files have not changed since, else computed (by the indexes on
    session_id, reading no message or part data)."""
    listed = []
    for row in conn.execute(
        "SELECT id, directory, parent_id, time_created, time_updated FROM session"
    ).fetchall():
        fingerprint = None
        if ctx.belongs(row["directory"]):
            state = known.get(f"db:{row['id']}", {})
            if state.get("signature") == signature:
                fingerprint = state.get("fingerprint")
            else:
                fingerprint = _fingerprint(conn, row["id"], row["time_updated"])
        listed.append((row, fingerprint))
    return listed


def _fingerprint(conn: sqlite3.Connection, session_id: str, updated: Any) -> list[Any]:
    """[session time_updated, message count, latest message time_updated, part count,
    latest part time_updated]: any write OpenCode makes to the session changes it."""
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM message WHERE session_id = :id),"
        " (SELECT max(time_updated) FROM message WHERE session_id = :id),"
        " (SELECT count(*) FROM part WHERE session_id = :id),"
        " (SELECT max(time_updated) FROM part WHERE session_id = :id)",
        {"id": session_id},
    ).fetchone()
    return [updated, *counts]


def _ranks(rows: Iterable[sqlite3.Row]) -> tuple[dict[str, int], dict[str, str]]:
    """(part id -> rank in its message, message id -> first part id) from rows ordered by
    message id, part id."""
    ranks: dict[str, int] = {}
    firsts: dict[str, str] = {}
    current, rank = None, 0
    for row in rows:
        rank = rank + 1 if row["message_id"] == current else 0
        current = row["message_id"]
        ranks[row["id"]] = rank
        if rank == 0:
            firsts[current] = row["id"]
    return ranks, firsts


def _json_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file())
    except OSError:
        return []


def _stat_line(path: Path, root: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path.relative_to(root).as_posix()} -"
    return f"{path.relative_to(root).as_posix()} {st.st_size} {st.st_mtime_ns}"


def _load_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise _Unreadable(f"larger than {MAX_JSON_BYTES:,} bytes; not read")
        value = json.loads(path.read_bytes().decode("utf-8", "replace"))
    except (OSError, ValueError, RecursionError) as exc:
        raise _Unreadable(f"not readable JSON ({type(exc).__name__})") from exc
    if not isinstance(value, dict):
        raise _Unreadable("not a JSON object")
    return value


def _decode(text: Any) -> Any:
    if not isinstance(text, str | bytes):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# -- small conversions ----------------------------------------------------------------------


def _iso(ms: Any) -> str | None:
    """Epoch milliseconds (OpenCode's timestamps) as agentkeep's ISO UTC text."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms <= 0:
        return None
    try:
        return iso_utc(datetime.fromtimestamp(ms / 1000, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    try:
        return max(0, int(value))
    except (OverflowError, ValueError):
        return 0


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    try:
        return int(value)
    except (OverflowError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return str(value)
