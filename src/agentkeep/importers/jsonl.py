"""Generic JSONL into the store: ``agentkeep import jsonl PATH --as metric|event|message``.

PATH is a JSONL file (one JSON object per line: a proxy's ``usage.jsonl``, a bot's chat
log), read incrementally like the agent tools' transcripts (:func:`import_lines`: complete
lines only, from the cursor on), or a directory of ``*.json`` / ``*.jsonl`` files — "state
snapshot directories", where each ``.json`` file is one record (an array: one per element)
and is imported again only when its content changed (cursor state ``{"sha256": …}``). A
``.json`` file given directly is such a snapshot too. Cursor keys are
``<kind>:<name>/<file name>``: never a path, and the same file imported ``--as metric`` and
``--as event`` keeps two cursors.

``--name`` names the import; the default is the file's stem (a directory's name).

- **metric**: every number in a record (nested objects flattened with dots:
  ``usage.input_tokens``; booleans are not numbers; at most :data:`MAX_METRICS` per record)
  becomes a metric ``<name>.<field>``. Its time comes from the first of the fields
  :data:`TIME_FIELDS` (ISO 8601, or epoch seconds / ms / µs / ns), else the snapshot file's
  mtime, else now; that field is not a metric. Labels are the record's short texts (strings
  and booleans of at most 100 characters, known names such as model and provider first, at
  most 8). A metric with its own time is stored once: one already stored with the same name,
  time, value and labels is not added again (a rewritten file re-read from its start adds
  nothing).
- **event**: each record is kept whole as a capture (source ``jsonl:<name>``, event 'other',
  vendor_event from its ``type`` / ``event`` / ``kind`` field), deduplicated by the SHA-256
  of its bytes: an identical line is the same event delivered again, wherever it appears
  (records that must count twice carry a time or an id, as event logs do).
- **message**: the file is one conversation: session (source 'jsonl', external_id = the
  name); records with a ``role`` and ``content`` / ``text`` / ``message`` become its
  messages (content blocks of the Anthropic and OpenAI shapes one row each: text,
  thinking, tool_use, tool_result; ``tool_calls``; ``tool_name`` / ``tool`` fields make a
  tool call or result), seq = the line's byte offset, external_id = the record's ``id``
  (or ``@<offset>``); ``usage`` gives its tokens. Other objects are kept as 'raw' rows.

A bad line — not JSON, not an object, longer than 32 MiB, nested too deeply, refused by
the writer — never aborts an import: it is skipped and counted in the cursor's state
(``skipped``, ``skipped_by_reason``). Only a file in which no line at all is a JSON object
is reported as an error (that file is not JSONL). Invalid UTF-8 becomes U+FFFD; NaN and
infinities are not numbers (no metric) and are stored as null.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentkeep.capture import CaptureError, Writer, dedupe_key
from agentkeep.errors import InvalidInput
from agentkeep.importers import FileOutcome, ImportContext, SourceFile, import_lines
from agentkeep.importers.files import MAX_LINE_BYTES, Cursor, Line, save_cursor
from agentkeep.timeutil import iso_utc

SOURCE = "jsonl"
KINDS = ("metric", "event", "message")
TIME_FIELDS = ("timestamp", "ts", "time", "created_at", "date")
PREFERRED_LABELS = ("model", "provider", "endpoint", "route", "method", "status", "agent")
MAX_LABELS = 8
MAX_LABEL_CHARS = 100
MAX_METRICS = 256  # numeric fields taken from one record
MAX_DEPTH = 32  # nesting followed when flattening
_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


@dataclass(frozen=True)
class _Job:
    kind: str  # metric | event | message
    name: str


class JsonlImporter:
    source = SOURCE

    def discover(self, ctx: ImportContext) -> Iterable[SourceFile]:
        kind = ctx.options.get("kind")
        if kind not in KINDS:
            raise InvalidInput(
                f"import jsonl needs --as {'|'.join(KINDS)} (got {kind!r})",
                hint="e.g. agentkeep import jsonl usage.jsonl --as metric",
            )
        path = ctx.path
        if path is None:
            raise InvalidInput(
                "import jsonl needs a PATH: a .jsonl file or a directory of .json/.jsonl files",
                hint="e.g. agentkeep import jsonl ~/.proxy/usage.jsonl --as metric",
            )
        if not path.exists():
            raise InvalidInput(f"{path} does not exist", hint="check the path")
        name = str(ctx.options.get("name") or (path.stem if path.is_file() else path.name))
        name = name.strip()
        if not name or len(name) > 200 or any(c in name for c in "\x00\n\r"):
            raise InvalidInput(f"--name {name!r} is not a usable name", hint="e.g. --name proxy")
        if path.is_dir():
            if kind == "message":
                raise InvalidInput(
                    f"--as message reads one JSONL file (one conversation); {path} is a directory",
                    hint="pass the .jsonl file, or use --as event / --as metric for a "
                    "directory of JSON snapshots",
                )
            files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl")
            )
            if not files:
                raise InvalidInput(
                    f"{path} holds no .json or .jsonl files",
                    hint="a snapshot directory holds one JSON object per .json file",
                )
        elif path.is_file():
            files = [path]
        else:
            raise InvalidInput(f"{path} is neither a file nor a directory")
        if ctx.store.config["capture.policy"] == "off":
            return []
        job = _Job(kind, name)
        return [SourceFile(p, f"{kind}:{name}/{p.name}", job) for p in files]

    def import_file(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None
    ) -> FileOutcome:
        job: _Job = file.hint
        records = _Records(ctx, job)
        earlier = int(cursor.state.get("records", 0)) if cursor is not None else 0
        if file.path.suffix == ".json":
            outcome = self._import_snapshot(ctx, file, cursor, records)
        else:
            outcome = import_lines(
                ctx, file, cursor, records.line, source=SOURCE, finish=records.finish
            )
        if records.bad and not records.good and not earlier and outcome.status == "imported":
            outcome.status = "error"
            outcome.error = (
                f"{file.key}: no line is a JSON object ({records.bad:,} skipped, the first "
                f"because: {records.first_problem}); is it JSONL?"
            )
        return outcome

    def _import_snapshot(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None, records: _Records
    ) -> FileOutcome:
        """One ``.json`` file: imported again only when its content hash changed."""
        path = file.path
        if cursor is not None and cursor.unchanged(path):
            return FileOutcome("unchanged")
        size = path.stat().st_size
        data = path.read_bytes() if size <= MAX_LINE_BYTES else None
        digest = hashlib.sha256(data).hexdigest() if data is not None else f"size:{size}"
        outcome = FileOutcome("unchanged")
        with ctx.store.transaction() as tx:
            writer: Writer = ctx.store.capture_writer(tx)
            state: dict[str, Any] = dict(cursor.state) if cursor is not None else {}
            if state.get("sha256") != digest:
                outcome.status = "imported"
                outcome.bytes = size
                records.default_at = _mtime_iso(path)
                outcome.messages = records.snapshot(writer, Line(0, size, data), state)
                state["sha256"] = digest
            if cursor is None:
                cursor = Cursor(source=SOURCE, file_key=file.key)
            cursor.advance(path, size)  # a touched but identical file is skipped by stat next
            cursor.state = state
            save_cursor(tx.conn, cursor, tx.now)
        return outcome


@dataclass
class _Records:
    """Turns decoded records into metrics, captures or messages, and counts bad lines."""

    ctx: ImportContext
    job: _Job
    default_at: str | None = None  # a snapshot file's mtime
    good: int = 0
    bad: int = 0
    first_problem: str = ""

    # -- entry points ----------------------------------------------------------------------

    def line(self, writer: Writer, line: Line, state: dict[str, Any]) -> int:
        """The :data:`LineHandler` of :func:`import_lines`."""
        if line.data is None:
            return self._skip(state, "line is over 32 MiB")
        if not line.data.strip():
            return 0  # a blank line
        try:
            value = line.json()
        except RecursionError:
            return self._skip(state, "nested too deeply")
        except ValueError:
            return self._skip(state, "not JSON")
        if not isinstance(value, dict):
            return self._skip(state, "not an object")
        return self._record(writer, value, line.data.strip(), line.offset, state)

    def snapshot(self, writer: Writer, line: Line, state: dict[str, Any]) -> int:
        """A whole ``.json`` file: one object, or an array of them."""
        if line.data is None:
            return self._skip(state, "file is over 32 MiB")
        try:
            value = line.json()
        except RecursionError:
            return self._skip(state, "nested too deeply")
        except ValueError:
            return self._skip(state, "not JSON")
        items = value if isinstance(value, list) else [value]
        added = 0
        for number, item in enumerate(items):
            if not isinstance(item, dict):
                self._skip(state, "not an object")
                continue
            data = line.data if len(items) == 1 else _canonical(item)
            added += self._record(writer, item, data, number, state)
        return added

    def finish(self, writer: Writer, state: dict[str, Any]) -> None:
        if self.job.kind == "message" and state.get("session_id"):
            writer.session_totals_from_messages(int(state["session_id"]))

    # -- one record ------------------------------------------------------------------------

    def _record(
        self,
        writer: Writer,
        record: dict[str, Any],
        data: bytes,
        offset: int,
        state: dict[str, Any],
    ) -> int:
        at, time_key = _timestamp(record)
        if at is not None and self.ctx.since and at < self.ctx.since:
            self.good += 1
            state["records"] = int(state.get("records", 0)) + 1
            return 0
        try:
            if self.job.kind == "metric":
                added = self._metrics(writer, record, at, time_key)
            elif self.job.kind == "event":
                added = self._event(writer, record, data, at)
            else:
                added = self._message(writer, record, offset, at, state)
        except CaptureError as exc:
            return self._skip(state, f"refused ({exc})")
        except RecursionError:
            return self._skip(state, "nested too deeply")
        self.good += 1
        state["records"] = int(state.get("records", 0)) + 1
        return added

    def _skip(self, state: dict[str, Any], reason: str) -> int:
        self.bad += 1
        self.first_problem = self.first_problem or reason
        state["skipped"] = int(state.get("skipped", 0)) + 1
        reasons = state.setdefault("skipped_by_reason", {})
        key = reason.split(" (")[0]
        reasons[key] = int(reasons.get(key, 0)) + 1
        return 0

    def _metrics(
        self, writer: Writer, record: dict[str, Any], at: str | None, time_key: str | None
    ) -> int:
        own_time = at is not None
        at = at or self.default_at
        skip = {time_key, *TIME_FIELDS}
        labels = _labels(record, skip)
        added = 0
        for name, value in _numbers(record, skip):
            metric = f"{self.job.name}.{name}"
            # Observations with a time are recorded once (a rewritten file adds nothing).
            once = bool(own_time or self.default_at)
            if writer.metric(metric, value, at=at, labels=labels, once=once) is not None:
                added += 1
        return added

    def _event(self, writer: Writer, record: dict[str, Any], data: bytes, at: str | None) -> int:
        source = f"{SOURCE}:{self.job.name}"
        vendor = next((record[k] for k in ("type", "event", "kind") if _text(record.get(k))), None)
        tool = next((record[k] for k in ("tool_name", "tool") if _text(record.get(k))), None)
        row = writer.capture(
            source=source,
            event="other",
            dedupe_key=dedupe_key(source, None, "other", None, data),
            vendor_event=vendor or None,  # cut by the writer, after redaction
            tool_name=tool or None,
            payload=record,
            at=at or self.default_at,
        )
        return 1 if row is not None else 0

    def _message(
        self,
        writer: Writer,
        record: dict[str, Any],
        offset: int,
        at: str | None,
        state: dict[str, Any],
    ) -> int:
        inner = record.get("message")
        if isinstance(inner, dict) and "role" in inner and "role" not in record:
            record = {**record, **inner}  # {"type": ..., "message": {"role", "content"}}
        if not state.get("session_id"):
            state["session_id"] = writer.session(
                SOURCE, self.job.name, started_at=at, agent_kind=SOURCE
            )
        session_id = int(state["session_id"])
        ident = _text(record.get("id")) or _text(record.get("uuid")) or f"@{offset}"
        rows = _message_rows(record, ident)
        model = _text(record.get("model"))
        tokens = _usage(record.get("usage"))
        added = 0
        for number, row in enumerate(rows):
            stored = writer.message(
                session_id,
                seq=offset,
                at=at,
                model=model,
                message_key=ident,
                tokens=tokens if number == 0 else None,
                **row,
            )
            added += stored is not None
        return added


# -- messages -------------------------------------------------------------------------------


def _message_rows(record: dict[str, Any], ident: str) -> list[dict[str, Any]]:
    """The rows of one record (keyword arguments of :meth:`Writer.message` besides the
    session, seq, time, model and tokens)."""
    role = _ROLES.get(str(record.get("role", "")).lower())
    content = next(
        (record[k] for k in ("content", "text", "message") if record.get(k) is not None), None
    )
    tool = _text(record.get("tool_name")) or _text(record.get("tool"))
    is_error = bool(record.get("is_error")) or bool(record.get("error"))
    if role is None or (content is None and tool is None and not record.get("tool_calls")):
        return [{"external_id": ident, "role": "system", "kind": "raw", "raw": record}]
    rows: list[dict[str, Any]] = []

    def add(**row: Any) -> None:
        suffix = f"#{len(rows)}" if rows else ""
        rows.append({"external_id": f"{ident}{suffix}", "role": role, **row})

    call_id = _text(record.get("tool_call_id")) or _text(record.get("tool_use_id"))
    if tool is not None or role == "tool":
        # A result: role tool, or an output / result field; else a call with its input.
        if role == "tool" or "output" in record or "result" in record:
            output = next((record[k] for k in ("output", "result") if k in record), content)
            add(kind="tool_result", text=_as_text(output), tool_name=tool,
                tool_use_id=call_id, is_error=is_error)  # fmt: skip
        else:
            arguments = next(
                (record[k] for k in ("input", "arguments", "args") if k in record), content
            )
            add(kind="tool_use", text=_as_text(arguments), tool_name=tool, tool_use_id=call_id)
        return rows
    if isinstance(content, list):
        for block in content:
            add(**_block(block))
    elif content is not None:
        add(kind="text", text=_as_text(content))
    for call in record.get("tool_calls") or []:
        if isinstance(call, dict):
            function: dict[str, Any] = _dict(call.get("function")) or call
            add(
                kind="tool_use",
                text=_as_text(function.get("arguments")),
                tool_name=_text(function.get("name")),
                tool_use_id=_text(call.get("id")),
            )
    return rows


def _block(block: Any) -> dict[str, Any]:
    """One content block (Anthropic / OpenAI message shapes)."""
    if isinstance(block, str):
        return {"kind": "text", "text": block}
    if not isinstance(block, dict):
        return {"kind": "raw", "raw": {"block": block}}
    kind = block.get("type")
    if kind in ("text", "input_text", "output_text"):
        return {"kind": "text", "text": _as_text(block.get("text"))}
    if kind in ("thinking", "reasoning"):
        return {"kind": "thinking", "text": _as_text(block.get("thinking") or block.get("text"))}
    if kind in ("tool_use", "function_call"):
        return {
            "kind": "tool_use",
            "text": _as_text(block.get("input", block.get("arguments"))),
            "tool_name": _text(block.get("name")),
            "tool_use_id": _text(block.get("id")) or _text(block.get("call_id")),
        }
    if kind in ("tool_result", "function_call_output"):
        return {
            "kind": "tool_result",
            "role": "tool",
            "text": _as_text(block.get("content", block.get("output"))),
            "tool_use_id": _text(block.get("tool_use_id")) or _text(block.get("call_id")),
            "is_error": bool(block.get("is_error")),
        }
    return {"kind": "raw", "raw": block}


def _usage(usage: Any) -> tuple[int, int, int, int] | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None

    def first(*values: Any) -> int:
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return 0

    counts = (
        first(usage.get("input_tokens"), usage.get("prompt_tokens")),
        first(usage.get("output_tokens"), usage.get("completion_tokens")),
        first(usage.get("cache_read_input_tokens"), cached),
        first(usage.get("cache_creation_input_tokens")),
    )
    return counts if any(counts) else None


# -- metrics --------------------------------------------------------------------------------


def _numbers(record: dict[str, Any], skip: set[str | None]) -> list[tuple[str, float]]:
    """(dotted field, value) for every finite number in ``record`` (not booleans)."""
    out: list[tuple[str, float]] = []

    def walk(value: dict[str, Any], prefix: str, depth: int) -> None:
        for key, item in value.items():
            if len(out) >= MAX_METRICS:
                return
            name = f"{prefix}{key}"
            if not prefix and key in skip:
                continue
            if isinstance(item, bool):
                continue
            if isinstance(item, int | float):
                try:
                    number = float(item)
                except OverflowError:
                    continue
                if number == number and number not in (float("inf"), float("-inf")):
                    out.append((name, number))
            elif isinstance(item, dict) and depth < MAX_DEPTH:
                walk(item, f"{name}.", depth + 1)

    walk(record, "", 0)
    return out


def _labels(record: dict[str, Any], skip: set[str | None]) -> dict[str, str]:
    """Up to MAX_LABELS short texts of ``record`` (known names first, then in order)."""
    found: dict[str, str] = {}

    def walk(value: dict[str, Any], prefix: str, depth: int) -> None:
        for key, item in value.items():
            name = f"{prefix}{key}"
            if not prefix and key in skip:
                continue
            if isinstance(item, bool):
                found.setdefault(name, "true" if item else "false")
            elif isinstance(item, str) and 0 < len(item) <= MAX_LABEL_CHARS:
                found.setdefault(name, item)
            elif isinstance(item, dict) and depth < 2:
                walk(item, f"{name}.", depth + 1)

    walk(record, "", 0)
    ordered = [k for k in PREFERRED_LABELS if k in found] + [
        k for k in found if k not in PREFERRED_LABELS
    ]
    return {k: found[k] for k in ordered[:MAX_LABELS]}


# -- small conversions ----------------------------------------------------------------------


def _timestamp(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(ISO UTC time, the field it came from) from the first usable time field."""
    for key in TIME_FIELDS:
        if key in record:
            at = parse_time(record[key])
            if at is not None:
                return at, key
    return None, None


def parse_time(value: Any) -> str | None:
    """ISO 8601 text or epoch seconds / ms / µs / ns (by magnitude) as ISO UTC, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return iso_utc(moment)
    if not isinstance(value, int | float) or value != value or value <= 0:
        return None
    for scale in (1e9, 1e6, 1e3):  # ns, µs, ms: anything past the year 5138 in seconds
        if value > 1e11 * scale / 1e3:
            value = value / scale
            break
    try:
        return iso_utc(datetime.fromtimestamp(value, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def _mtime_iso(path: Path) -> str | None:
    try:
        return iso_utc(datetime.fromtimestamp(path.stat().st_mtime, UTC))
    except (OSError, OverflowError, ValueError):
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):
        return str(value)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
