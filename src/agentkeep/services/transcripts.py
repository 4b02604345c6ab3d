"""Transcripts: a session's conversation, read the same way whatever captured it.

:meth:`TranscriptService.transcript` reads only this store — never the agent tool's files — so
a session whose upstream file was pruned stays complete. Its entries are the session's
``messages`` (from an importer) in ``seq, id`` order; a session that only hooks saw (no
messages) is read from its ``captures`` instead: prompts, tool calls and their results or
failures, turn ends, compactions, in delivery order. Subagent sessions (``parent_id``)
are linked to the tool call that spawned them where it can be found: the call whose
result names the child's agent id (the suffix of its external id
``<parent id>:<agent id>``), else the latest unclaimed Agent/Task call before the child
started; the others are listed at the end.

Renderers: :func:`render_markdown` (people: turns as headings, tool calls folded to one
line with their result's first line, failures marked ✗, thinking folded, compaction
summaries marked, the blocks of one response under one heading), :func:`render_json` and
:func:`render_jsonl` (programs: every stored field).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from agentkeep.backends.base import Row
from agentkeep.errors import InvalidInput
from agentkeep.models import Record
from agentkeep.services.base import Service

# Tools that spawn a subagent: Claude Code's Agent (formerly Task), OpenCode's task.
SPAWN_TOOLS = frozenset({"agent", "task"})
SUMMARY_WIDTH = 120
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# The input field that says what a tool call did, by the usual tool input shapes.
_INPUT_KEYS = (
    "command",
    "cmd",
    "file_path",
    "filePath",
    "path",
    "pattern",
    "url",
    "query",
    "description",
    "prompt",
)


@dataclass(frozen=True)
class TranscriptEntry(Record):
    """One entry of a transcript. ``origin`` says where it was read from: 'message' (an
    imported transcript entry; ``id`` is messages.id) or 'capture' (a hook delivery;
    ``id`` is captures.id and ``event`` its normalized event). ``child_session_id`` is set
    on the tool call that spawned a subagent session. ``raw`` is the stored raw record
    (decoded JSON), if any."""

    origin: str
    id: int
    session_id: int
    seq: int
    at: str | None
    role: str
    kind: str
    text: str | None
    tool_name: str | None = None
    tool_use_id: str | None = None
    is_error: bool = False
    model: str | None = None
    message_key: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    external_id: str | None = None
    parent_external_id: str | None = None
    event: str | None = None
    child_session_id: int | None = None
    raw: Any = None


@dataclass(frozen=True)
class Transcript:
    """A session (its full row), where its entries came from ('messages', 'captures' or
    'none'), its entries in order, and its subagent sessions (``tool_use_id``: the call
    that spawned each, or None when not found)."""

    session: dict[str, Any]
    origin: str
    entries: list[TranscriptEntry]
    children: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "origin": self.origin,
            "children": self.children,
            "entries": [entry.to_dict() for entry in self.entries],
        }


class TranscriptService(Service):
    def transcript(self, session_id: int) -> Transcript:
        """The conversation of session ``session_id`` (NotFound if there is none)."""
        session = self.session_record(session_id)
        messages = self._rows(
            "SELECT * FROM messages WHERE session_id = ? ORDER BY seq, id", (session_id,)
        )
        if messages:
            origin, entries = "messages", [_message_entry(m) for m in messages]
        else:
            captures = self._rows(
                "SELECT * FROM captures WHERE session_id = ? ORDER BY id", (session_id,)
            )
            origin = "captures" if captures else "none"
            entries = _capture_entries(captures)
        children = self._children(session_id, entries)
        spawned = {c["tool_use_id"]: c["id"] for c in children if c["tool_use_id"]}
        if spawned:
            entries = [
                _replace(e, child_session_id=spawned[e.tool_use_id])
                if e.kind == "tool_use" and e.tool_use_id in spawned
                else e
                for e in entries
            ]
        return Transcript(session, origin, entries, children)

    def transcript_chunk(
        self, session_id: int, *, after: int = 0, limit: int = 100
    ) -> tuple[Transcript, int]:
        """Entries ``after`` to ``after + limit`` of :meth:`transcript` (positions, 0
        first) and how many there are in all. A session of messages that spawned no
        subagent reads only that chunk (from the index on ``session_id, seq, id``); others
        are read whole, since linking subagents to their calls needs every entry."""
        if after < 0 or limit < 1:
            raise InvalidInput("after must be 0 or more and limit 1 or more")
        session = self.session_record(session_id)
        total = self._count("SELECT count(*) FROM messages WHERE session_id = ?", (session_id,))
        spawned = self._row("SELECT 1 FROM sessions WHERE parent_id = ? LIMIT 1", (session_id,))
        if total and spawned is None:
            rows = self._rows(
                "SELECT * FROM messages WHERE session_id = ? ORDER BY seq, id LIMIT ? OFFSET ?",
                (session_id, limit, after),
            )
            return Transcript(session, "messages", [_message_entry(m) for m in rows]), total
        whole = self.transcript(session_id)
        chunk = whole.entries[after : after + limit]
        return Transcript(whole.session, whole.origin, chunk, whole.children), len(whole.entries)

    def session_record(self, session_id: int) -> dict[str, Any]:
        """Every column of a session's row (``command`` decoded), including the capture
        counters (prompts, tool_calls, failures, turns, parent_id…)."""
        session = dict(self._record("session", session_id))
        if isinstance(session.get("command"), str):
            session["command"] = _loads(session["command"])
        return session

    def transcript_size(self, session_id: int) -> int:
        """How many entries :meth:`transcript` would return (cheaply: counted in SQL,
        without reading a payload's text).

        A message is one entry. A hook capture is one, plus one more for a tool result
        whose call was not captured before it (:func:`_capture_entries` reads the call
        from the result's payload) and one for a turn's end that carries its
        ``input-messages``: exactly the rules of :func:`_capture_entries`."""
        count = self._count("SELECT count(*) FROM messages WHERE session_id = ?", (session_id,))
        if count:
            return count
        return self._count(_capture_entries_sql(self.backend.dialect), (session_id,))

    def _children(self, session_id: int, entries: list[TranscriptEntry]) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, external_id, title, status, started_at, ended_at FROM sessions"
            " WHERE parent_id = ? ORDER BY started_at, id",
            (session_id,),
        )
        claimed: set[str] = set()
        calls = {e.tool_use_id for e in entries if e.kind == "tool_use" and e.tool_use_id}
        children = []
        for row in rows:
            child = dict(row)
            # An importer records the spawning call on the child's first event row.
            marker = self._row(
                "SELECT tool_use_id FROM messages WHERE session_id = ? AND kind = 'event'"
                " AND tool_use_id IS NOT NULL ORDER BY seq, id LIMIT 1",
                (child["id"],),
            )
            tool_use_id = marker[0] if marker is not None and marker[0] in calls else None
            agent = (child["external_id"] or "").rpartition(":")[2]
            if tool_use_id is None and len(agent) >= 4:
                tool_use_id = _named_spawn(entries, agent, claimed)
            if tool_use_id is None:
                tool_use_id = _spawn_before(entries, child["started_at"], claimed)
            if tool_use_id is not None:
                claimed.add(tool_use_id)
            child["tool_use_id"] = tool_use_id
            children.append(child)
        return children


def _named_spawn(entries: list[TranscriptEntry], agent: str, claimed: set[str]) -> str | None:
    """The tool call whose use or result mentions the agent id ``agent``."""
    for entry in entries:
        if entry.tool_use_id is None or entry.tool_use_id in claimed:
            continue
        if entry.kind not in ("tool_use", "tool_result"):
            continue
        haystack = (entry.text or "") + (
            json.dumps(entry.raw, ensure_ascii=False) if entry.raw is not None else ""
        )
        if agent in haystack:
            return entry.tool_use_id
    return None


def _spawn_before(
    entries: list[TranscriptEntry], started_at: str | None, claimed: set[str]
) -> str | None:
    """The latest unclaimed Agent/Task call made before ``started_at``."""
    found = None
    for entry in entries:
        if entry.kind != "tool_use" or (entry.tool_name or "").lower() not in SPAWN_TOOLS:
            continue
        if entry.tool_use_id is None or entry.tool_use_id in claimed:
            continue
        if started_at is not None and entry.at is not None and entry.at > started_at:
            break
        found = entry.tool_use_id
    return found


def _replace(entry: TranscriptEntry, **changes: Any) -> TranscriptEntry:
    return TranscriptEntry(**{**entry.to_dict(), **changes})


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _message_entry(row: Row) -> TranscriptEntry:
    return TranscriptEntry(
        origin="message",
        id=row["id"],
        session_id=row["session_id"],
        seq=row["seq"],
        at=row["at"],
        role=row["role"],
        kind=row["kind"],
        text=row["text"],
        tool_name=row["tool_name"],
        tool_use_id=row["tool_use_id"],
        is_error=bool(row["is_error"]),
        model=row["model"],
        message_key=row["message_key"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        external_id=row["external_id"],
        parent_external_id=row["parent_external_id"],
        raw=_loads(row["raw"]),
    )


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# How many entries _capture_entries makes of a session's captures (keep the two together).
def _capture_entries_sql(dialect: Any) -> str:
    return _CAPTURE_ENTRIES.replace(
        "{input_messages}", dialect.json_array_length("payload", "input-messages")
    )


_CAPTURE_ENTRIES = """
WITH mine AS (SELECT id, event, tool_use_id, payload FROM captures WHERE session_id = ?1),
     first_of_call AS (
         SELECT min(id) AS id FROM mine
          WHERE event IN ('tool_pre', 'tool_post', 'tool_fail')
            AND coalesce(tool_use_id, '') <> ''
          GROUP BY tool_use_id)
SELECT (SELECT count(*) FROM mine)
     + (SELECT count(*) FROM mine
         WHERE event IN ('tool_post', 'tool_fail') AND coalesce(tool_use_id, '') = '')
     + (SELECT count(*) FROM first_of_call JOIN mine USING (id)
         WHERE mine.event IN ('tool_post', 'tool_fail'))
     + (SELECT count(*) FROM mine
         WHERE event = 'turn_end'
           AND {input_messages} > 0)
"""


def _capture_entries(rows: list[Row]) -> list[TranscriptEntry]:
    """Hook deliveries read as transcript entries (several may come from one delivery)."""
    entries: list[TranscriptEntry] = []
    used: set[str] = set()
    for row in rows:
        payload = _loads(row["payload"])
        data: dict[str, Any] = payload if isinstance(payload, dict) else {}
        event = row["event"]

        entry = functools.partial(_capture_entry, row, payload)
        tool = {"tool_name": row["tool_name"], "tool_use_id": row["tool_use_id"]}
        if event == "prompt":
            entries.append(entry("user", "text", data.get("prompt")))
        elif event in ("tool_pre", "tool_post", "tool_fail"):
            if event == "tool_pre" or row["tool_use_id"] not in used:
                # A result whose call was not captured: its payload repeats the input.
                entries.append(entry("assistant", "tool_use", data.get("tool_input"), **tool))
                if row["tool_use_id"]:
                    used.add(row["tool_use_id"])
            if event == "tool_post":
                entries.append(entry("tool", "tool_result", data.get("tool_response"), **tool))
            elif event == "tool_fail":
                failure = data.get("error")
                if failure is None and row["exit_code"] is not None:
                    failure = f"Exit code {row['exit_code']}"
                entries.append(entry("tool", "tool_result", failure, is_error=True, **tool))
        elif event == "turn_end":
            asked = data.get("input-messages")
            if isinstance(asked, list) and asked:
                entries.append(entry("user", "text", "\n\n".join(map(str, asked))))
            said = data.get("last_assistant_message", data.get("last-assistant-message"))
            failed = row["vendor_event"] == "StopFailure" or data.get("error") is not None
            if said is not None or failed:
                entries.append(
                    entry("assistant", "text", said or data.get("error"), is_error=failed)
                )
            else:
                entries.append(entry("system", "event", "turn ended"))
        elif event == "compact" and data.get("compact_summary"):
            entries.append(entry("system", "summary", data["compact_summary"]))
        else:
            entries.append(entry("system", "event", _event_text(row, data)))
    return entries


def _capture_entry(
    row: Row, payload: Any, role: str, kind: str, text: Any, **extra: Any
) -> TranscriptEntry:
    return TranscriptEntry(
        origin="capture",
        id=row["id"],
        session_id=row["session_id"],
        seq=row["id"],
        at=row["at"],
        role=role,
        kind=kind,
        text=_as_text(text),
        event=row["event"],
        raw=payload,
        **extra,
    )


def _event_text(row: Row, data: dict[str, Any]) -> str:
    event = row["event"]
    detail = {
        "session_start": data.get("source"),
        "session_end": data.get("reason"),
        "compact": data.get("trigger"),
        "subagent_end": data.get("agent_type"),
        "notification": data.get("message"),
    }.get(event)
    name = {
        "session_start": "session started",
        "session_end": "session ended",
        "compact": "compacting",
        "subagent_end": "subagent finished",
        "notification": "notification",
    }.get(event, row["vendor_event"] or event)
    return f"{name}: {detail}" if isinstance(detail, str) and detail else str(name)


# -- rendering ------------------------------------------------------------------------------


def render_json(transcript: Transcript) -> str:
    """One JSON object: ``{"schema_version", "session", "origin", "children", "entries"}``."""
    return json.dumps({"schema_version": 1, **transcript.to_dict()}, ensure_ascii=False)


def render_jsonl(transcript: Transcript) -> Iterator[str]:
    """One JSON object per entry (each carries its session_id)."""
    for entry in transcript.entries:
        yield json.dumps(entry.to_dict(), ensure_ascii=False)


def clean(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (but newlines
    and tabs): a transcript holds whatever tools printed."""
    return _CONTROL.sub("", text.replace("\r\n", "\n"))


def one_line(text: str | None, width: int = SUMMARY_WIDTH) -> str:
    """The first non-blank line of ``text``, cut to ``width``, with how many more lines."""
    if not text:
        return ""
    lines = [line.strip() for line in clean(text).splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0] if len(lines[0]) <= width else lines[0][: width - 1] + "…"
    return first + (f" (+{len(lines) - 1} lines)" if len(lines) > 1 else "")


def tool_summary(entry: TranscriptEntry) -> str:
    """What a tool call did, on one line: its command, file, pattern… or its input."""
    value: Any = _loads(entry.text) if entry.text else None
    if isinstance(value, dict):
        for key in _INPUT_KEYS:
            found = value.get(key)
            if isinstance(found, list) and all(isinstance(v, str) for v in found):
                found = " ".join(found)
            if isinstance(found, str) and found.strip():
                value = found
                break
        else:
            value = json.dumps(value, ensure_ascii=False)
    elif value is not None and not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    return one_line(value)


def _stamp(at: str | None) -> str:
    return at[:19].replace("T", " ") if at else ""


def _duration(session: dict[str, Any]) -> str | None:
    from datetime import datetime

    ms = session.get("duration_ms")
    if ms is None and session.get("ended_at") and session.get("started_at"):
        try:
            start = datetime.fromisoformat(session["started_at"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(session["ended_at"].replace("Z", "+00:00"))
        except ValueError:
            return None
        ms = int((end - start).total_seconds() * 1000)
    return None if ms is None else human_duration(ms)


def human_duration(ms: int | float) -> str:
    seconds = int(ms // 1000)
    if seconds < 60:
        return f"{ms / 1000:.1f}s" if ms < 10_000 else f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _header(transcript: Transcript) -> list[str]:
    s = transcript.session
    title = s.get("title") or s.get("external_id") or s.get("source")
    out = [f"# Session {s['id']}: {clean(str(title))}", ""]
    facts = [f"source {s.get('source')}", f"status {s.get('status')}"]
    if s.get("external_id"):
        facts.append(f"external id `{s['external_id']}`")
    out.append("- " + " · ".join(facts))
    when = [f"started {_stamp(s.get('started_at'))}"]
    if s.get("ended_at"):
        when.append(f"ended {_stamp(s['ended_at'])}")
    duration = _duration(s)
    if duration:
        when.append(f"duration {duration}")
    out.append("- " + " · ".join(when))
    if s.get("model"):
        out.append(f"- model {s['model']}")
    counts = [
        _plural(s.get(name) or 0, noun)
        for name, noun in (
            ("prompts", "prompt"),
            ("tool_calls", "tool call"),
            ("failures", "failure"),
            ("turns", "turn"),
        )
        if name in s
    ]
    if counts:
        out.append("- " + " · ".join(counts))
    out.append(
        f"- tokens: {s.get('input_tokens', 0):,} in · {s.get('output_tokens', 0):,} out"
        f" · {s.get('cache_read_tokens', 0):,} cache read"
        f" · {s.get('cache_write_tokens', 0):,} cache write"
    )
    if s.get("parent_id"):
        out.append(f"- subagent of session {s['parent_id']}")
    return out


def render_markdown(transcript: Transcript, *, header: bool = True, terminal: bool = False) -> str:
    """The conversation as Markdown. ``terminal``: for reading in a terminal (thinking
    folded to one line instead of a ``<details>`` block, summaries cut to a few lines)."""
    out: list[str] = [*_header(transcript), ""] if header else []
    if transcript.session.get("capture") == "metadata":
        out += ["> captured as metadata only: no prompt, response or tool text was kept", ""]
    if transcript.origin == "captures":
        out += ["> read from hook captures (no transcript was imported for this session)", ""]
    if not transcript.entries:
        out.append("_(no entries recorded for this session)_")
    results: dict[str, TranscriptEntry] = {}
    calls = {e.tool_use_id for e in transcript.entries if e.kind == "tool_use" and e.tool_use_id}
    for entry in transcript.entries:
        if entry.kind == "tool_result" and entry.tool_use_id in calls:
            known = results.get(entry.tool_use_id)
            if known is None or (entry.is_error and not known.is_error):
                results[entry.tool_use_id] = entry
    children = {c["id"]: c for c in transcript.children}
    group: tuple[str, str | None] | None = None  # (speaker, message key) under a heading
    hidden = 0  # text blocks without text (metadata policy) in the current group
    listing = False  # the last lines were tool-call list items

    def emit(lines: list[str], *, items: bool = False) -> None:
        nonlocal listing
        if listing and not items:
            out.append("")  # a list ends before the next block
        out.extend(lines)
        listing = items

    def flush_hidden() -> None:
        nonlocal hidden
        if hidden:
            emit([f"_({_plural(hidden, 'text block')} not captured)_", ""])
            hidden = 0

    for entry in transcript.entries:
        if entry.kind == "tool_result" and entry.tool_use_id in calls:
            continue  # shown under its call
        speaker = _speaker(entry)
        if speaker in ("User", "Assistant"):
            key = entry.message_key
            if (
                group is None
                or group[0] != speaker
                or (key is not None and group[1] is not None and key != group[1])
            ):
                flush_hidden()
                heading = f"## {speaker}"
                if entry.at:
                    heading += f" · {_stamp(entry.at)}"
                if speaker == "Assistant" and entry.model:
                    heading += f" · {entry.model}"
                emit([heading, ""])
                group = (speaker, key)
            elif key is not None and group[1] is None:
                group = (speaker, key)
        elif speaker == "System":
            flush_hidden()
            group = None
        if entry.text is None and entry.kind in ("text", "thinking"):
            hidden += 1  # metadata policy: counted, not shown
            continue
        emit(
            _render_entry(entry, results, children, terminal),
            items=entry.kind in ("tool_use", "tool_result"),
        )
    flush_hidden()
    unlinked = [c for c in transcript.children if not c["tool_use_id"]]
    if unlinked:
        emit(["## Subagents", ""])
        emit([f"- {_child_line(c)}" for c in unlinked], items=True)
    return "\n".join(out).rstrip() + "\n"


def _speaker(entry: TranscriptEntry) -> str:
    if entry.kind in ("summary", "event", "raw") or entry.role == "system":
        return "System"
    if entry.kind == "tool_result":
        return "Tool"
    return "User" if entry.role == "user" else "Assistant"


def _child_line(child: dict[str, Any]) -> str:
    title = f" “{clean(child['title'])}”" if child.get("title") else ""
    return (
        f"subagent session {child['id']}{title} ({child['status']};"
        f" `agentkeep transcript {child['id']}`)"
    )


def _render_entry(
    entry: TranscriptEntry,
    results: dict[str, TranscriptEntry],
    children: dict[int, dict[str, Any]],
    terminal: bool,
) -> list[str]:
    kind = entry.kind
    if kind == "tool_use":
        result = results.get(entry.tool_use_id or "")
        failed = entry.is_error or (result is not None and result.is_error)
        line = f"- {'✗' if failed else '▸'} {entry.tool_name or 'tool'}"
        summary = tool_summary(entry)
        if summary:
            line += f": {summary}"
        lines = [line]
        if entry.child_session_id is not None and entry.child_session_id in children:
            lines.append(f"  → {_child_line(children[entry.child_session_id])}")
        if result is not None:
            lines.append(f"  ⎿ {_result_line(result)}")
        return lines
    if kind == "tool_result":  # a result whose call is not in the transcript
        mark = "✗" if entry.is_error else "▸"
        return [f"- {mark} {entry.tool_name or 'tool'} result", f"  ⎿ {_result_line(entry)}"]
    text = clean(entry.text or "")
    if kind == "thinking":
        if terminal:
            return [f"▹ thinking ({len(text):,} characters, folded)", ""]
        return ["<details><summary>thinking</summary>", "", text, "", "</details>", ""]
    if kind == "summary":
        lines = text.splitlines() or [""]
        if terminal and len(lines) > 6:
            lines = [*lines[:5], f"… (+{len(lines) - 5} lines)"]
        return ["### ⟲ Compaction summary", "", *(f"> {line}".rstrip() for line in lines), ""]
    if kind == "event":
        mark = "✗ " if entry.is_error else ""
        return [f"_· {mark}{one_line(text) or entry.event or 'event'}_", ""]
    if kind == "raw":
        label = entry.raw.get("type") if isinstance(entry.raw, dict) else None
        line = f"_· unrecognised entry{f' ({label})' if label else ''}, kept raw"
        return [f"{line}: {one_line(text)}_" if text else f"{line}_", ""]
    if entry.role == "system":  # injected context, skill bodies…: folded
        return [f"_· {one_line(text) or 'system'}_", ""]
    if entry.is_error:
        return [f"✗ {text}", ""]
    return [text, ""]


def _result_line(result: TranscriptEntry) -> str:
    if result.text is None:
        return "failed" if result.is_error else "(output not captured)"
    summary = one_line(result.text) or "(no output)"
    return f"✗ {summary}" if result.is_error else summary
