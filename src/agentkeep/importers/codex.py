"""Codex CLI rollouts: ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`` (and ``.jsonl.zst``).

Each line is ``{"timestamp", "type", "payload"}`` (docs/design.md "Agent tools' formats").
Codex compresses rollouts older than 7 days to ``.jsonl.zst`` and moves archived threads to
``archived_sessions/``; both are read. A file's cursor key is its path relative to
``$CODEX_HOME`` without ``.zst`` (offsets count decompressed bytes), so a compressed rollout
continues where the plain one stopped; when both exist the plain file is read.

Which files belong to this project: the ``cwd`` of the first ``session_meta`` (else of a
``turn_context``, else the ``<cwd>`` of an ``<environment_context>`` message — the oldest
format) decides; another project's rollout gets a 'foreign' cursor and is skipped by a
stat from then on. Codex has no per-project folders, so every rollout is looked at once.

What becomes what:

======================================  =================================================
line                                    row(s)
======================================  =================================================
session_meta                            the session (external id = ``payload.id``;
                                        a ``{subagent: {thread_spawn: {parent_thread_id}}}``
                                        source links ``parent_id``)
turn_context                            the model (session and following rows)
response_item message user/assistant    role user/assistant, kind text, one row per
                                        content item (images as placeholders)
response_item message developer, or    role system, kind event: a one-line label
user AGENTS.md / <environment_context>  ("injected context: AGENTS.md, 1,234 chars"),
                                        never the injected text itself
response_item reasoning                 kind thinking: the summary text only (never
                                        ``encrypted_content``); nothing if no summary
function_call / custom_tool_call /      kind tool_use (text: the arguments / input / action;
local_shell_call / web_search_call      tool_use_id = call_id)
function_call_output /                  role tool, kind tool_result; is_error when the exit
custom_tool_call_output                 code (``metadata.exit_code``, "Exit code: N", or a
                                        preceding exec_command_end) is not 0
event_msg user_message / agent_message  the same text as the response_item: see below
/ agent_reasoning
event_msg token_count                   one kind 'event' row per distinct cumulative usage
                                        (tokens = ``last_token_usage``) and metrics
                                        ``tokens.input`` / ``.output`` / ``.cache_read`` /
                                        ``.reasoning``; session totals from
                                        ``total_token_usage``
event_msg turn_aborted /                kind event
thread_rolled_back / review mode / error
compacted                               kind summary (its ``message``)
UI noise (deltas, *_begin, task_started) nothing
anything else                           role system, kind raw, the line in ``raw``
======================================  =================================================

The duplicated text rule. Codex writes user and assistant text (and reasoning summaries)
twice, as a ``response_item`` and as an ``event_msg``, in either order. Whichever copy comes
first in the file is stored; a later copy from the *other* channel with the same role, kind
and text is skipped, once — each stored text absorbs at most one duplicate, so a prompt
typed twice is stored twice. A file that only has ``event_msg`` text (or only
``response_item``) loses nothing. The last 64 unmatched texts (hashes) are kept on the
cursor, so the rule holds across runs.

Idempotency. Rows are keyed by a hash of the line's bytes plus the item index (never the
offset), so a file re-read after a rewrite, rotation or archive move adds nothing. Token
metrics are written only when their anchor row (keyed by the cumulative totals) is new, so
they are counted once too.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentkeep.capture import Writer
from agentkeep.files import zstd
from agentkeep.importers import FileOutcome, ImportContext, SourceFile
from agentkeep.importers.files import Cursor, Line, file_key
from agentkeep.importers.transcript import (
    OPEN_TOOLS,
    TranscriptFile,
    as_int,
    clean_name,
    compact_json,
    epoch_of,
    flatten_content,
    import_transcript,
    iso_timestamp,
    line_hash,
    media_placeholder,
    remember,
    scrub_media,
)

SOURCE = "codex"
PENDING_TEXTS = 64
TITLE_CHARS = 80

_RESPONSE_TYPES = frozenset(
    {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "web_search_call",
    }
)
_NOISE_EVENTS = frozenset(
    {
        "task_started",
        "exec_command_begin",
        "exec_command_output_delta",
        "agent_message_delta",
        "agent_message_content_delta",
        "agent_reasoning_delta",
        "agent_reasoning_raw_content",
        "agent_reasoning_raw_content_delta",
        "agent_reasoning_section_break",
        "reasoning_content_delta",
        "reasoning_raw_content_delta",
        "patch_apply_begin",
        "mcp_tool_call_begin",
        "web_search_begin",
        "background_event",
        "session_configured",
        "shutdown_complete",
        "item_started",
        "item_completed",
    }
)
_EVENT_TEXT = {
    "turn_aborted": "turn aborted",
    "entered_review_mode": "entered review mode",
    "exited_review_mode": "exited review mode",
    "error": "error",
    "stream_error": "stream error",
    "warning": "warning",
}
_INJECTED = (
    ("<environment_context>", "environment_context"),
    ("<user_instructions>", "user_instructions"),
    ("# AGENTS.md instructions", "AGENTS.md"),
    ("<permissions instructions>", "permissions"),
    ("<user_shell_command>", "user_shell_command"),
)
_EXIT_CODE = re.compile(r"Exit code: (-?\d+)")
_CWD_TAG = re.compile(r"<cwd>([^<]+)</cwd>")
_ROLLOUT = re.compile(r"rollout-.*?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def codex_home() -> Path:
    """``$CODEX_HOME``, else ``~/.codex``."""
    configured = os.environ.get("CODEX_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".codex"


def _rollouts(directory: Path) -> list[Path]:
    found = list(directory.rglob("rollout-*.jsonl")) + list(directory.rglob("rollout-*.jsonl.zst"))
    return sorted(found)


class CodexImporter:
    source = SOURCE

    def discover(self, ctx: ImportContext) -> Iterable[SourceFile]:
        """Every rollout under sessions/ and archived_sessions/ (or under ``ctx.path``)."""
        if ctx.store.config["capture.policy"] == "off":
            return []
        home = codex_home()
        candidates: list[tuple[Path, Path]] = []  # (file, the root its key is relative to)
        if ctx.path is not None:
            path = ctx.path.expanduser().resolve()
            home = home.resolve()
            if path.is_file():
                base = home if _inside(path, home) else path.parent
                candidates.append((path, base))
            elif (path / "sessions").is_dir() or (path / "archived_sessions").is_dir():
                for sub in ("sessions", "archived_sessions"):
                    candidates += [(p, path) for p in _rollouts(path / sub)]
            else:
                base = home if _inside(path, home) else path
                candidates += [(p, base) for p in _rollouts(path)]
        else:
            for sub in ("sessions", "archived_sessions"):
                if (home / sub).is_dir():
                    candidates += [(p, home) for p in _rollouts(home / sub)]
        since = epoch_of(ctx.since)
        files: dict[str, SourceFile] = {}
        for path, base in candidates:
            try:
                st = path.stat()
            except OSError:
                continue
            mtime = st.st_mtime
            if not stat.S_ISREG(st.st_mode) or (since is not None and mtime < since):
                continue
            key = file_key(path, base)
            if key in files and path.suffix == ".zst":
                continue  # the plain file is the live one
            files[key] = SourceFile(path=path, key=key, hint={"mtime": mtime})
        return list(files.values())

    def import_file(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None
    ) -> FileOutcome:
        try:
            return import_transcript(
                ctx,
                file,
                cursor,
                source=SOURCE,
                find_cwd=_rollout_cwd,
                open_reader=lambda decided, cursor_id, _cwd, _at: _CodexFile(
                    ctx, file, decided, cursor_id
                ),
            )
        except zstd().ZstdError as exc:
            # A damaged .zst fails this file only (batches before the damage are kept).
            return FileOutcome("error", error=f"{file.key}: {exc}")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _unwrap(obj: Any) -> tuple[str | None, Any]:
    """(item type, payload) of a line, for the current format and the oldest one (no
    ``payload`` wrapper: a bare meta object first, then bare response items)."""
    if not isinstance(obj, dict):
        return None, None
    kind = obj.get("type")
    payload = obj.get("payload")
    if isinstance(payload, dict) and isinstance(kind, str):
        return kind, payload
    if kind in _RESPONSE_TYPES:
        return "response_item", obj
    if kind is None and "id" in obj and "timestamp" in obj and "record_type" not in obj:
        return "session_meta", obj
    if "record_type" in obj:
        return "state", obj
    return (kind if isinstance(kind, str) else None), payload


def _rollout_cwd(obj: Any) -> str | None:
    kind, payload = _unwrap(obj)
    if not isinstance(payload, dict):
        return None
    if kind in ("session_meta", "turn_context"):
        cwd = payload.get("cwd")
        return cwd if isinstance(cwd, str) and cwd else None
    if kind == "response_item" and payload.get("type") == "message":
        match = _CWD_TAG.search(flatten_content(payload.get("content")))
        if match:
            return match.group(1).strip()
    return None


def _parent_thread(source: Any) -> str | None:
    """The parent thread id of a subagent's ``session_meta.source``."""
    if not isinstance(source, dict):
        return None
    sub = source.get("subagent")
    stack = [sub]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            value = node.get("parent_thread_id")
            if isinstance(value, str) and value:
                return value
            stack.extend(node.values())
    return None


def _injected(role: str, text: str) -> str | None:
    """The label of a message Codex injected (instructions, environment), else None."""
    if role in ("developer", "system"):
        return f"{role} instructions"
    head = text.lstrip()[:64]
    for prefix, label in _INJECTED:
        if head.startswith(prefix):
            return label
    return None


def _output(value: Any) -> tuple[str, int | None, bool]:
    """(text, exit code if known, failed) of a tool call's output in any of its shapes."""
    failed = False
    if isinstance(value, dict):
        failed = value.get("success") is False
        body = value.get("content", value.get("output"))
        text = flatten_content(body) if body is not None else compact_json(value)
        return text, None, failed
    if isinstance(value, list):
        return flatten_content(value), None, failed
    if not isinstance(value, str):
        return ("" if value is None else str(value)), None, failed
    if value.startswith("{") and '"metadata"' in value:
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("metadata"), dict):
            code = decoded["metadata"].get("exit_code")
            code = code if isinstance(code, int) and not isinstance(code, bool) else None
            out = decoded.get("output")
            return (out if isinstance(out, str) else flatten_content(out)), code, failed
    match = _EXIT_CODE.match(value)
    return value, (int(match.group(1)) if match else None), failed


class _CodexFile(TranscriptFile):
    """Reads one rollout: the line handler and batch finisher given to import_lines.

    Cursor state: ``project``, ``thread`` (the session's external id), ``model``,
    ``pending`` (unmatched [channel, hash] texts for the duplicate rule), ``tools``
    (call_id → tool name), ``exits`` (call_id → exit code from exec_command_end),
    ``totals`` (the last total_token_usage), ``turns``, ``titled``.
    """

    def __init__(self, ctx: ImportContext, file: SourceFile, decided: str, cursor_id: Any):
        super().__init__(ctx, decided, cursor_id)
        match = _ROLLOUT.search(file.path.name)
        self.default_thread = match.group(1) if match else file.path.name.split(".")[0]
        self.session_id: int | None = None
        self.model_set = False
        self.names: dict[str, str] = {}

    def _session(self, writer: Writer, state: dict[str, Any], at: str | None = None) -> int:
        if self.session_id is None:
            thread = state.get("thread") or self.default_thread
            state["thread"] = thread
            self.session_id = writer.session(SOURCE, thread, started_at=at, agent_kind="codex")
            state["session_id"] = self.session_id
        return self.session_id

    # -- lines ------------------------------------------------------------------------

    def finish(self, writer: Writer, state: dict[str, Any]) -> None:
        if self.session_id is None:
            return
        writer.session_totals_from_messages(self.session_id)
        totals = state.get("totals") or [0, 0, 0]
        writer.raise_counts(
            self.session_id,
            input_tokens=totals[0],
            output_tokens=totals[1],
            cache_read_tokens=totals[2],
            turns=int(state.get("turns") or 0),
        )

    def _bad_line_session(self, writer: Writer, state: dict[str, Any]) -> int:
        return self._session(writer, state)

    def _row(
        self,
        writer: Writer,
        line: Line,
        index: int,
        *,
        role: str,
        kind: str,
        at: str | None,
        state: dict[str, Any],
        **fields: Any,
    ) -> int:
        added = writer.message(
            self._session(writer, state, at),
            seq=line.offset * 16 + index,
            external_id=f"{line_hash(line.data, line.offset)}:{index}",
            role=role,
            kind=kind,
            at=at,
            source_ref=self._ref(line),
            **fields,
        )
        return 1 if added else 0

    def _line(self, writer: Writer, line: Line, obj: dict[str, Any], state: dict[str, Any]) -> int:
        kind, payload = _unwrap(obj)
        at = iso_timestamp(obj.get("timestamp"))
        if kind == "session_meta":
            return self._meta(writer, payload, state, at)
        if kind == "turn_context":
            cwd = payload.get("cwd") if isinstance(payload, dict) else None
            if isinstance(cwd, str) and cwd and not state.get("cwd_set"):
                # a rollout without session_meta: the first turn's directory (the
                # session_meta's, when there is one, is kept: set once, never moved)
                writer.session(SOURCE, self._thread(writer, state, at), cwd=cwd)
                state["cwd_set"] = True
            model = payload.get("model") if isinstance(payload, dict) else None
            if isinstance(model, str) and model:
                state["model"] = model
                if not self.model_set:
                    writer.session(SOURCE, self._thread(writer, state, at), model=model)
                    self.model_set = True
            return 0
        if kind == "state":
            return 0
        if self.since and at and at < self.since:
            return 0
        if not isinstance(payload, dict):
            payload = {}
        if kind == "response_item":
            return self._item(writer, line, payload, state, at)
        if kind == "event_msg":
            return self._event(writer, line, payload, state, at)
        if kind == "compacted":
            message = payload.get("message")
            text = message if isinstance(message, str) and message.strip() else None
            return self._row(
                writer,
                line,
                0,
                role="system",
                kind="summary" if text else "event",
                at=at,
                state=state,
                text=text or "compacted",
            )
        return self._row(
            writer, line, 0, role="system", kind="raw", at=at, state=state, raw=scrub_media(obj)
        )

    def _thread(self, writer: Writer, state: dict[str, Any], at: str | None) -> str:
        self._session(writer, state, at)
        return str(state["thread"])

    def _meta(self, writer: Writer, payload: Any, state: dict[str, Any], at: str | None) -> int:
        if not isinstance(payload, dict):
            return 0
        thread = payload.get("id")
        if self.session_id is not None or not isinstance(thread, str) or not thread:
            return 0  # only the first session_meta names the session
        started = iso_timestamp(payload.get("timestamp")) or at
        parent_thread = _parent_thread(payload.get("source"))
        parent_id = None
        if parent_thread:
            parent_id = writer.session(
                SOURCE, parent_thread, started_at=started, agent_kind="codex"
            )
        role = payload.get("agent_role") or payload.get("agent_nickname")
        cwd = payload.get("cwd")
        self.session_id = writer.session(
            SOURCE,
            thread,
            started_at=started,
            cwd=cwd if isinstance(cwd, str) else None,
            parent_id=parent_id,
            agent_kind="codex",
            agent_role=role if isinstance(role, str) else ("subagent" if parent_id else None),
        )
        state["thread"] = thread
        state["session_id"] = self.session_id
        return 0

    def _duplicate(
        self, state: dict[str, Any], channel: str, role: str, kind: str, text: str
    ) -> bool:
        """Whether ``text`` is the other channel's copy of a text already stored (then it
        is consumed); otherwise it is remembered as stored."""
        digest = line_hash(f"{role}|{kind}|{text.strip()}".encode(), 0)
        pending: list[list[str]] = state.setdefault("pending", [])
        for number, (other, seen) in enumerate(pending):
            if seen == digest and other != channel:
                del pending[number]
                return True
        pending.append([channel, digest])
        del pending[:-PENDING_TEXTS]
        return False

    def _title(self, writer: Writer, state: dict[str, Any], text: str, at: str | None) -> None:
        if state.get("titled") or not text.strip():
            return
        first = " ".join(text.split())  # cut by the writer, after redaction
        thread = self._thread(writer, state, at)
        writer.session(SOURCE, thread, title=first, title_chars=TITLE_CHARS)
        state["titled"] = True

    def _item(
        self,
        writer: Writer,
        line: Line,
        item: dict[str, Any],
        state: dict[str, Any],
        at: str | None,
    ) -> int:
        itype = item.get("type")
        model = state.get("model")
        if itype == "message":
            role = str(item.get("role") or "user")
            content = item.get("content")
            parts = content if isinstance(content, list) else [content]
            whole = flatten_content(content)
            label = _injected(role, whole) if role != "assistant" else None
            if label is not None:
                return self._row(
                    writer,
                    line,
                    0,
                    role="system",
                    kind="event",
                    at=at,
                    state=state,
                    text=f"injected context: {label} ({len(whole):,} chars)",
                )
            role = "assistant" if role == "assistant" else "user"
            added = 0
            for index, part in enumerate(parts):
                if isinstance(part, dict) and part.get("type") in ("input_image", "image"):
                    text = media_placeholder(part)
                else:
                    text = flatten_content(part)
                    if self._duplicate(state, "item", role, "text", text):
                        continue
                    if role == "user":
                        self._title(writer, state, text, at)
                added += self._row(
                    writer,
                    line,
                    index,
                    role=role,
                    kind="text",
                    at=at,
                    state=state,
                    text=text,
                    model=model if role == "assistant" else None,
                )
            return added
        if itype == "reasoning":
            summary = item.get("summary")
            added = 0
            for index, part in enumerate(summary if isinstance(summary, list) else []):
                value = part.get("text") if isinstance(part, dict) else part
                if not isinstance(value, str) or not value.strip():
                    continue
                text = value
                if self._duplicate(state, "item", "assistant", "thinking", text):
                    continue
                added += self._row(
                    writer,
                    line,
                    index,
                    role="assistant",
                    kind="thinking",
                    at=at,
                    state=state,
                    text=text,
                    model=model,
                )
            return added
        if itype in ("function_call", "custom_tool_call", "local_shell_call", "web_search_call"):
            if itype == "function_call":
                name, body = item.get("name"), item.get("arguments")
            elif itype == "custom_tool_call":
                name, body = item.get("name"), item.get("input")
            elif itype == "local_shell_call":
                name, body = "local_shell", item.get("action")
            else:
                name, body = "web_search", item.get("action")
            call_id = item.get("call_id") or item.get("id")
            call_id = call_id if isinstance(call_id, str) and call_id else None
            name = name if isinstance(name, str) and name else str(itype)
            if call_id:
                clean = clean_name(writer, self.names, name)
                remember(state.setdefault("tools", {}), call_id, clean, OPEN_TOOLS)
            return self._row(
                writer,
                line,
                0,
                role="assistant",
                kind="tool_use",
                at=at,
                state=state,
                text=compact_json(body if body is not None else {}),
                tool_name=name,
                tool_use_id=call_id,
                model=model,
                is_error=item.get("status") in ("failed", "incomplete"),
            )
        if itype in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            call_id = item.get("call_id")
            call_id = call_id if isinstance(call_id, str) and call_id else None
            text, code, failed = _output(item.get("output"))
            exits = state.get("exits") or {}
            if code is None and call_id in exits:
                code = exits.pop(call_id)
            tools = state.get("tools") or {}
            return self._row(
                writer,
                line,
                0,
                role="tool",
                kind="tool_result",
                at=at,
                state=state,
                text=text,
                tool_use_id=call_id,
                tool_name=tools.pop(call_id, None) if call_id else None,
                is_error=failed or (code is not None and code != 0),
            )
        if itype in ("compaction", "compaction_summary"):
            return self._row(
                writer, line, 0, role="system", kind="event", at=at, state=state, text="compacted"
            )
        return self._row(
            writer, line, 0, role="system", kind="raw", at=at, state=state, raw=scrub_media(item)
        )

    def _event(
        self,
        writer: Writer,
        line: Line,
        event: dict[str, Any],
        state: dict[str, Any],
        at: str | None,
    ) -> int:
        etype = event.get("type")
        if etype in _NOISE_EVENTS:
            return 0
        if etype in ("user_message", "agent_message", "agent_reasoning"):
            text = event.get("message") if etype != "agent_reasoning" else event.get("text")
            if not isinstance(text, str) or not text.strip():
                return 0
            role = "user" if etype == "user_message" else "assistant"
            kind = "thinking" if etype == "agent_reasoning" else "text"
            if self._duplicate(state, "event", role, kind, text):
                return 0
            if role == "user":
                self._title(writer, state, text, at)
            return self._row(
                writer,
                line,
                0,
                role=role,
                kind=kind,
                at=at,
                state=state,
                text=text,
                model=state.get("model") if role == "assistant" else None,
            )
        if etype == "token_count":
            return self._tokens(writer, line, event, state, at)
        if etype == "task_complete":
            state["turns"] = int(state.get("turns") or 0) + 1
            return 0
        if etype in ("exec_command_end", "patch_apply_end", "mcp_tool_call_end"):
            call_id = event.get("call_id")
            code = event.get("exit_code")
            if etype == "patch_apply_end":
                code = 0 if event.get("success") else 1
            if isinstance(call_id, str) and isinstance(code, int):
                remember(state.setdefault("exits", {}), call_id, code, OPEN_TOOLS)
            return 0
        if etype == "thread_rolled_back":
            turns = as_int(event.get("num_turns"))
            return self._row(
                writer,
                line,
                0,
                role="system",
                kind="event",
                at=at,
                state=state,
                text=f"rolled back {turns} turn{'s' if turns != 1 else ''}",
            )
        if etype in _EVENT_TEXT:
            detail = event.get("reason") or event.get("message")
            text = _EVENT_TEXT[str(etype)]
            if isinstance(detail, str) and detail:
                text += f": {detail}"
            return self._row(
                writer,
                line,
                0,
                role="system",
                kind="event",
                at=at,
                state=state,
                text=text,
                is_error=etype in ("error", "stream_error"),
            )
        return self._row(
            writer, line, 0, role="system", kind="raw", at=at, state=state, raw=scrub_media(event)
        )

    def _tokens(
        self,
        writer: Writer,
        line: Line,
        event: dict[str, Any],
        state: dict[str, Any],
        at: str | None,
    ) -> int:
        info = event.get("info")
        if not isinstance(info, dict):
            return 0
        total = info.get("total_token_usage")
        last = info.get("last_token_usage")
        total = total if isinstance(total, dict) else {}
        last = last if isinstance(last, dict) else {}
        if total:
            old = state.get("totals") or [0, 0, 0]
            state["totals"] = [
                max(old[0], as_int(total.get("input_tokens"))),
                max(old[1], as_int(total.get("output_tokens"))),
                max(old[2], as_int(total.get("cached_input_tokens"))),
            ]
        used = [
            as_int(last.get("input_tokens")),
            as_int(last.get("output_tokens")),
            as_int(last.get("cached_input_tokens")),
            as_int(last.get("reasoning_output_tokens")),
        ]
        if not any(used):
            return 0  # a repeat (rate-limit update) or an empty count
        if total:
            anchor = "tokens:" + ":".join(
                str(as_int(total.get(k)))
                for k in ("total_tokens", "input_tokens", "output_tokens", "cached_input_tokens")
            )
        else:
            anchor = f"tokens:{line_hash(line.data, line.offset)}"
        session_id = self._session(writer, state, at)
        model = state.get("model")
        row = writer.message(
            session_id,
            seq=line.offset * 16,
            external_id=anchor,
            role="system",
            kind="event",
            at=at,
            model=model,
            tokens=(used[0], used[1], used[2], 0),
            source_ref=self._ref(line),
        )
        if not row:
            return 0
        labels = {"source": SOURCE}
        if isinstance(model, str):
            labels["model"] = model
        for name, value in zip(
            ("tokens.input", "tokens.output", "tokens.cache_read", "tokens.reasoning"),
            used,
            strict=True,
        ):
            writer.metric(name, value, at=at, labels=labels, session_id=session_id)
        return 1
