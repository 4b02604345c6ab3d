"""What every JSONL-transcript importer shares (Claude Code, Codex): the neutral part.

A tool's transcript is a file of JSON lines that grows (or is rewritten) while the tool
runs. Reading one has the same skeleton whatever the format (:func:`import_transcript`):

1. a file whose size and mtime match its cursor is skipped by that stat alone;
2. which project it belongs to is decided once, from the first ``cwd`` in its head
   (:func:`prescan_cwd`; a file without one yet is left for later), and kept on the cursor;
3. the cursor of a file of this project is saved before its rows, in the first batch's
   transaction (``import_lines``'s ``named``), so rows can name it (``source_ref``);
4. the new complete lines go through the format's reader (a :class:`TranscriptFile`) in
   :func:`agentkeep.importers.import_lines` batches, each committed with its cursor.

:class:`TranscriptFile` holds what readers share per line: the project gate, decoding, and a
line that cannot be read kept as a 'raw' entry (never dropped, never fatal). The helpers
below read vendor values the same way for every format (timestamps, token counts, media
placeholders, content blocks). Each tool's module keeps only its own format.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentkeep.capture import CaptureError, Writer
from agentkeep.importers import FileOutcome, ImportContext, SourceFile, import_lines
from agentkeep.importers.files import (
    Cursor,
    Line,
    decode_object,
    open_source,
    read_lines,
)

# How far into a file the project decision looks for a cwd before calling it foreign.
PRESCAN_BYTES = 8 * 1024 * 1024
PRESCAN_LINES = 2000
# Open tool calls remembered per file on the cursor (a call and its result are close).
OPEN_TOOLS = 256
BAD_LINE_PREVIEW = 2000
_ISO_FAST = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


# -- reading vendor values ------------------------------------------------------------------


def iso_timestamp(value: Any) -> str | None:
    """A vendor timestamp as agentkeep's ISO UTC text (``…T14:02:11.512Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    if _ISO_FAST.match(value):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_of(iso: str | None) -> float | None:
    """Seconds since the epoch of an ISO timestamp (for comparing with file mtimes)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def as_int(value: Any) -> int:
    """A token count from a vendor's JSON: ints as they are, anything else (None, NaN,
    strings) as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return max(int(value), 0)
    return 0


def line_hash(data: bytes | None, offset: int) -> str:
    """A stable id for a line that has none of its own (its content, not its position)."""
    if data is None:
        return f"@{offset}"
    return hashlib.sha256(data.strip()).hexdigest()[:20]


def compact_json(value: Any) -> str:
    """``value`` as compact JSON text (NaN kept as the token JSON.parse would refuse: it
    is text here, not stored JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def media_placeholder(block: dict[str, Any]) -> str:
    """A short stand-in for an image or document block (the base64 is never stored)."""
    kind = str(block.get("type") or "media")
    source = block.get("source")
    if isinstance(source, dict):
        media = source.get("media_type") or source.get("type") or ""
        data = source.get("data")
        if isinstance(data, str):
            return f"[{kind} {media}, {len(data) * 3 // 4 // 1024:,} KB]".replace(" ,", ",")
        return f"[{kind} {media}]".replace(" ]", "]")
    for key in ("image_url", "url", "file_id"):
        if key in block:
            return f"[{kind}]"
    return f"[{kind}]"


def scrub_media(value: Any, depth: int = 0) -> Any:
    """``value`` with base64 image/document payloads replaced by placeholders (for rows
    kept whole in ``raw``)."""
    if depth > 64:
        return value
    if isinstance(value, dict):
        if value.get("type") in ("image", "document", "input_image") and (
            isinstance(value.get("source"), dict) or "image_url" in value
        ):
            url = value.get("image_url")
            if isinstance(url, str) and not url.startswith("data:"):
                return value
            return {"type": value.get("type"), "placeholder": media_placeholder(value)}
        return {k: scrub_media(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_media(v, depth + 1) for v in value]
    return value


def flatten_content(content: Any) -> str:
    """A tool result's or message's content (a string or a list of blocks) as one text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict):
                kind = item.get("type")
                if isinstance(item.get("text"), str):
                    parts.append(item["text"])
                elif kind in ("image", "document", "input_image"):
                    parts.append(media_placeholder(item))
                else:
                    parts.append(compact_json(scrub_media(item)))
            elif item is not None:
                parts.append(compact_json(item))
        return "\n".join(parts)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        return compact_json(scrub_media(content))
    return str(content)


def clean_name(writer: Writer, cache: dict[str, str], name: str) -> str:
    """A tool name as the Writer would store it (redacted): cursor state is saved as is,
    so nothing goes there unredacted. Names repeat, so they are redacted once per file."""
    clean = cache.get(name)
    if clean is None:
        clean = cache[name] = writer.text("tool_name", name, content=False) or ""
    return clean


def remember(table: dict[str, Any], key: str, value: Any, limit: int) -> None:
    """Put ``key`` last in a bounded insertion-ordered dict (the oldest falls out)."""
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]


def prescan_cwd(
    path: Path, find: Any, *, limit_bytes: int = PRESCAN_BYTES, limit_lines: int = PRESCAN_LINES
) -> tuple[str | None, bool, str | None]:
    """(the first cwd ``find(obj)`` returns in the file's head, whether the head was read
    to its end, the first timestamp seen on the way). Reads at most ``limit_bytes`` /
    ``limit_lines`` complete lines; lines without ``cwd`` in their bytes are not parsed."""
    first_at: str | None = None
    with open_source(path) as stream:
        for number, line in enumerate(read_lines(stream, 0)):
            if number >= limit_lines or line.offset >= limit_bytes:
                return None, False, first_at
            if line.data is None or (b"cwd" not in line.data and first_at is not None):
                continue
            try:
                obj = line.json()
            except (ValueError, RecursionError):
                continue
            if first_at is None and isinstance(obj, dict):
                first_at = iso_timestamp(obj.get("timestamp"))
            cwd = find(obj)
            if cwd:
                return cwd, True, first_at
    return None, True, first_at


# -- the skeleton ---------------------------------------------------------------------------


def import_transcript(
    ctx: ImportContext,
    file: SourceFile,
    cursor: Cursor | None,
    *,
    source: str,
    find_cwd: Callable[[Any], str | None],
    open_reader: Callable[[str, Any, str | None, str | None], TranscriptFile],
    head_cwd: bool = False,
) -> FileOutcome:
    """Read ``file`` from its cursor on (the steps in the module docstring).

    ``find_cwd(obj)`` finds a line's working directory. ``open_reader(decided, cursor_id,
    cwd, first_at)`` makes the format's reader: ``decided`` is 'ok' or 'foreign', ``cwd``
    the first cwd in the file's head (when it was read), ``first_at`` the file's first
    timestamp (kept on the cursor as ``first_at`` by readers that want it). ``head_cwd``:
    read the head's cwd again on a resumed file of this project (a cursor keeps no
    absolute path, principle 9 of docs/design.md; the head is a few lines)."""
    if cursor is not None and cursor.unchanged(file.path):
        return FileOutcome("unchanged")
    decided = cursor.state.get("project") if cursor is not None else None
    first_at = cursor.state.get("first_at") if cursor is not None else None
    cwd: str | None = None
    if decided is None or cursor is None or cursor.resume_offset(file.path) == 0:
        cwd, complete, first_at = prescan_cwd(file.path, find_cwd)
        if cwd is None and complete:
            return FileOutcome("unchanged")  # no cwd yet: decide when one is written
        decided = "ok" if cwd is not None and ctx.belongs(cwd) else "foreign"
    elif decided == "ok" and head_cwd:
        cwd, _, _ = prescan_cwd(file.path, find_cwd)
    reader = open_reader(decided, cursor.id if cursor else None, cwd, first_at)

    def named(cursor_id: int) -> None:
        reader.cursor_id = cursor_id

    return import_lines(
        ctx,
        file,
        cursor,
        reader.handle,
        source=source,
        finish=reader.finish,
        # a new file's cursor is saved in the transaction of its first rows: one commit
        # (and fsync) a file fewer than a transaction of its own
        named=named if decided == "ok" else None,
    )


class TranscriptFile(ABC):
    """One transcript file's reader (see the module docstring): :meth:`handle` is the line
    handler and :meth:`finish` the batch finisher given to ``import_lines``; a format
    implements :meth:`_line` and :meth:`_bad_line_session`."""

    def __init__(self, ctx: ImportContext, decided: str, cursor_id: Any) -> None:
        self.ctx = ctx
        self.since = ctx.since
        self.decided = decided
        self.cursor_id = cursor_id

    def handle(self, writer: Writer, line: Line, state: dict[str, Any]) -> int:
        if "project" not in state:
            state["project"] = self.decided
            self._start(state)
        if state["project"] != "ok":
            state["foreign"] = True
            return 0
        obj, problem = decode_object(line)
        if problem is not None:
            return self._unreadable(writer, line, state, problem)
        if obj is None:
            return 0
        self._before(writer, obj, state)
        try:
            return self._line(writer, line, obj, state)
        except (CaptureError, RecursionError, ValueError, TypeError, AttributeError) as exc:
            reason = str(exc) if isinstance(exc, CaptureError) else type(exc).__name__
            return self._unreadable(writer, line, state, f"unreadable ({reason})")

    def _start(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Called once, on a file's first line."""

    def _before(  # noqa: B027 - optional
        self, writer: Writer, obj: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """Called before each readable line."""

    def finish(self, writer: Writer, state: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Called after each batch, before it commits."""

    @abstractmethod
    def _line(self, writer: Writer, line: Line, obj: dict[str, Any], state: dict[str, Any]) -> int:
        """Store one readable line; returns the number of messages it added."""

    @abstractmethod
    def _bad_line_session(self, writer: Writer, state: dict[str, Any]) -> int:
        """The session an unreadable line is kept in."""

    def _ref(self, line: Line) -> str | None:
        return f"{self.cursor_id}:{line.offset}" if self.cursor_id is not None else None

    def _unreadable(self, writer: Writer, line: Line, state: dict[str, Any], reason: str) -> int:
        text = reason
        if line.data is not None:
            text += ": " + line.data.decode("utf-8", "replace")  # cut by the writer
        added = writer.message(
            self._bad_line_session(writer, state),
            seq=line.offset * 16,
            external_id=f"bad:{line_hash(line.data, line.offset)}",
            role="system",
            kind="raw",
            text=text,
            text_chars=BAD_LINE_PREVIEW,
            source_ref=self._ref(line),
        )
        return 1 if added else 0
