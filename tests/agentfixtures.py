"""Writers of agent-tool history files in their documented formats (docs/design.md "Agent
tools' formats"),
for the importer tests and the benchmark. Everything is generated here; nothing is copied
from a real user's files.

- :class:`ClaudeSession` writes a Claude Code transcript
  (``$CLAUDE_CONFIG_DIR/projects/<encoded cwd>/<session>.jsonl``): user and assistant
  lines (assistant responses split one block per line, sharing ``message.id`` and
  ``requestId``), tool calls with ``toolUseResult``, thinking, images, compaction,
  titles, the UI line types, unknown types, subagent transcripts
  (``<session>/subagents/agent-<id>.jsonl``) and raw bytes.
- :class:`CodexRollout` writes a Codex rollout
  (``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``): ``session_meta``,
  ``turn_context``, ``response_item`` and ``event_msg`` (text written twice, as Codex
  does), tool calls of each kind, reasoning, token counts, compaction, and ``.zst``.
"""

from __future__ import annotations

import json
import os
import re
import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import agentkeep
from agentkeep.files import zstd

BASE_TIME = datetime(2026, 8, 20, 14, 2, 11, 512000, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_dir(path: str | Path) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class _Clock:
    def __init__(self, start: datetime | None) -> None:
        self.now = start or BASE_TIME

    def tick(self, ms: int = 700) -> str:
        self.now += timedelta(milliseconds=ms)
        return stamp(self.now)


# -- reading the store back ---------------------------------------------------------------


def rows(store: agentkeep.Store, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in store._rows(sql, params)]


def session_row(store: agentkeep.Store, source: str, external_id: str) -> dict[str, Any]:
    found = rows(
        store, "SELECT * FROM sessions WHERE source = ? AND external_id = ?", (source, external_id)
    )
    assert len(found) == 1, f"no {source} session {external_id}"
    return found[0]


def session_messages(store: agentkeep.Store, source: str, external_id: str) -> list[dict[str, Any]]:
    session = session_row(store, source, external_id)
    return rows(
        store, "SELECT * FROM messages WHERE session_id = ? ORDER BY seq, id", (session["id"],)
    )


def counts(store: agentkeep.Store) -> dict[str, int]:
    """Row counts of every table an import writes (a re-import must not change them)."""
    tables = ("sessions", "messages", "metrics", "events", "agents", "redactions", "import_cursors")
    return {t: int(store._rows(f"SELECT count(*) FROM {t}")[0][0]) for t in tables}


# -- Claude Code ------------------------------------------------------------------------------


def claude_projects() -> Path:
    return Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects"


class ClaudeSession:
    """One Claude Code transcript file, appended to line by line."""

    def __init__(
        self,
        cwd: str | Path,
        *,
        session_id: str | None = None,
        projects: Path | None = None,
        start: datetime | None = None,
        agent_id: str | None = None,
        path: Path | None = None,
        version: str = "2.1.230",
        sidechain: bool = False,
    ) -> None:
        self.sidechain = sidechain
        self.cwd = str(cwd)
        self.session_id = session_id or str(uuidlib.uuid4())
        self.agent_id = agent_id
        self.version = version
        self.dir = (projects or claude_projects()) / encode_dir(self.cwd)
        self.path = path or self.dir / f"{self.session_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = _Clock(start)
        self.last_uuid: str | None = None
        self.requests = 0

    # raw writing --------------------------------------------------------------------

    def write(self, obj: Any) -> None:
        with self.path.open("ab") as f:
            f.write(_dump(obj))

    def write_bytes(self, data: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(data)

    def envelope(self, kind: str, **fields: Any) -> dict[str, Any]:
        uuid = str(uuidlib.uuid4())
        line: dict[str, Any] = {
            "parentUuid": self.last_uuid,
            "isSidechain": self.agent_id is not None or self.sidechain,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": self.version,
            "gitBranch": "main",
            "type": kind,
            "uuid": uuid,
            "timestamp": self.clock.tick(),
        }
        if self.agent_id is not None:
            line["agentId"] = self.agent_id
        line.update(fields)
        self.last_uuid = uuid
        return line

    # conversation -------------------------------------------------------------------

    def user(self, content: str | list[Any], **fields: Any) -> dict[str, Any]:
        line = self.envelope(
            "user", message={"role": "user", "content": content}, permissionMode="default"
        )
        line.update(fields)
        self.write(line)
        return line

    def assistant(
        self,
        *blocks: dict[str, Any],
        model: str = "claude-sonnet-4-5-20250929",
        usage: dict[str, Any] | None = None,
        split: bool = True,
        grow_output: bool = True,
    ) -> list[dict[str, Any]]:
        """One model response. ``split`` writes one line per block (as Claude Code does),
        sharing the message id and request id; the usage repeats on each line, its
        output_tokens growing to the final count on the last one when ``grow_output``."""
        self.requests += 1
        message_id = f"msg_{uuidlib.uuid4().hex[:20]}"
        request_id = f"req_{uuidlib.uuid4().hex[:20]}"
        usage = usage or {
            "input_tokens": 12,
            "cache_creation_input_tokens": 2048,
            "cache_read_input_tokens": 14336,
            "output_tokens": 96,
        }
        groups = [[b] for b in blocks] if split else [list(blocks)]
        lines = []
        for number, group in enumerate(groups, 1):
            line_usage = dict(usage)
            if grow_output and split and number < len(groups):
                line_usage["output_tokens"] = max(1, usage["output_tokens"] * number // len(groups))
            line = self.envelope(
                "assistant",
                message={
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": group,
                    "stop_reason": "tool_use" if group[-1].get("type") == "tool_use" else None,
                    "stop_sequence": None,
                    "usage": line_usage,
                },
                requestId=request_id,
            )
            self.write(line)
            lines.append(line)
        return lines

    def text(self, text: str, **kw: Any) -> list[dict[str, Any]]:
        return self.assistant({"type": "text", "text": text}, **kw)

    def tool_call(
        self,
        name: str,
        tool_input: dict[str, Any],
        output: str,
        *,
        is_error: bool = False,
        tool_result: Any = None,
        thinking: str | None = None,
        preface: str | None = None,
    ) -> str:
        """An assistant response ending in a tool_use, and the user line with its result."""
        tool_use_id = f"toolu_{uuidlib.uuid4().hex[:24]}"
        blocks: list[dict[str, Any]] = []
        if thinking:
            blocks.append({"type": "thinking", "thinking": thinking, "signature": "c2lnbmF0dXJl"})
        if preface:
            blocks.append({"type": "text", "text": preface})
        blocks.append({"type": "tool_use", "id": tool_use_id, "name": name, "input": tool_input})
        self.assistant(*blocks)
        result = {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "content": output,
            "is_error": is_error,
        }
        fields: dict[str, Any] = {}
        if tool_result is not None:
            fields["toolUseResult"] = tool_result
        self.user([result], **fields)
        return tool_use_id

    def bash(self, command: str, stdout: str, stderr: str = "", *, is_error: bool = False) -> str:
        return self.tool_call(
            "Bash",
            {"command": command, "description": "Run a command"},
            stdout + ("\n" + stderr if stderr else ""),
            is_error=is_error,
            tool_result={
                "stdout": stdout,
                "stderr": stderr,
                "interrupted": False,
                "isImage": False,
            },
        )

    def image_prompt(self, text: str, data: bytes) -> dict[str, Any]:
        import base64

        return self.user(
            [
                {"type": "text", "text": text},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(data).decode(),
                    },
                },
            ]
        )

    def task(self, prompt: str, agent_id: str, result: str = "done") -> str:
        """A Task tool call whose result names the subagent (newer versions)."""
        return self.tool_call(
            "Task",
            {"description": "Investigate", "prompt": prompt, "subagent_type": "general-purpose"},
            result,
            tool_result={
                "status": "completed",
                "prompt": prompt,
                "agentId": agent_id,
                "content": [{"type": "text", "text": result}],
                "totalDurationMs": 1234,
                "totalTokens": 999,
            },
        )

    def subagent(self, agent_id: str) -> ClaudeSession:
        """The transcript of a subagent of this session (``<session>/subagents/``)."""
        return ClaudeSession(
            self.cwd,
            session_id=self.session_id,
            agent_id=agent_id,
            path=self.path.parent / self.session_id / "subagents" / f"agent-{agent_id}.jsonl",
            start=self.clock.now,
        )

    # other line types ---------------------------------------------------------------

    def compact(self, summary: str, *, trigger: str = "auto", pre_tokens: int = 120_345) -> None:
        """A compaction: the boundary line, then the summary as a user line."""
        boundary = self.envelope(
            "system",
            subtype="compact_boundary",
            content="Conversation compacted",
            level="info",
            compactMetadata={"trigger": trigger, "preTokens": pre_tokens},
            logicalParentUuid=self.last_uuid,
        )
        boundary["parentUuid"] = None
        self.write(boundary)
        self.user(summary, isCompactSummary=True, isVisibleInTranscriptOnly=True)

    def system(self, subtype: str, content: str, **fields: Any) -> None:
        self.write(
            self.envelope("system", subtype=subtype, content=content, level="info", **fields)
        )

    def ai_title(self, title: str) -> None:
        self.write({"type": "ai-title", "aiTitle": title, "sessionId": self.session_id})

    def summary(self, text: str, leaf: str | None = None) -> None:
        """An older version's summary line: the title of the conversation ending at
        ``leaf`` (this file's last line by default; another file's in a resumed one)."""
        self.write({"type": "summary", "summary": text, "leafUuid": leaf or self.last_uuid})

    def custom_title(self, title: str) -> None:
        self.write({"type": "custom-title", "customTitle": title, "sessionId": self.session_id})

    def task_inline(
        self,
        prompt: str,
        agent_id: str,
        work: Any,
        result: str = "done",
        *,
        also_file: bool = False,
    ) -> str:
        """A Task call whose subagent's lines are written inline as ``progress`` lines
        (``data.type`` 'agent_progress'; 2.x when no subagents/ file is written), then the
        result naming the agent. ``work(sub)`` writes the subagent's lines; with
        ``also_file`` they also go to ``<session>/subagents/agent-<id>.jsonl``."""
        tool_use_id = f"toolu_{uuidlib.uuid4().hex[:24]}"
        task_input = {"description": "Investigate", "prompt": prompt, "subagent_type": "Explore"}
        self.assistant({"type": "tool_use", "id": tool_use_id, "name": "Task", "input": task_input})
        sub = InlineSubagent(self, agent_id, tool_use_id, prompt, also_file=also_file)
        sub.user(prompt)
        work(sub)
        self.clock.now = sub.clock.now
        block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": result}
        self.user(
            [block],
            toolUseResult={
                "status": "completed",
                "prompt": prompt,
                "agentId": agent_id,
                "content": [{"type": "text", "text": result}],
                "totalDurationMs": 1234,
            },
        )
        return tool_use_id

    def task_sidechain(self, prompt: str, work: Any, result: str = "done") -> str:
        """A Task call as Claude Code 1.0.x wrote it: the subagent's turns are sidechain
        lines (``isSidechain: true``, no agentId, a chain of their own from a root
        line) in the main file, and the result does not name an agent."""
        tool_use_id = f"toolu_{uuidlib.uuid4().hex[:24]}"
        task_input = {"description": "Investigate", "prompt": prompt}
        self.assistant({"type": "tool_use", "id": tool_use_id, "name": "Task", "input": task_input})
        sub = ClaudeSession(
            self.cwd,
            session_id=self.session_id,
            path=self.path,
            start=self.clock.now,
            version=self.version,
            sidechain=True,
        )
        sub.user(prompt)
        work(sub)
        self.clock.now = sub.clock.now
        block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": result}
        self.user(
            [block],
            toolUseResult={"content": [{"type": "text", "text": result}], "totalTokens": 10},
        )
        return tool_use_id

    def progress(self) -> None:
        self.write(
            {
                "type": "progress",
                "data": {"type": "hook_progress", "hookEvent": "PostToolUse"},
                "sessionId": self.session_id,
                "cwd": self.cwd,
                "timestamp": self.clock.tick(),
                "uuid": str(uuidlib.uuid4()),
            }
        )

    def queue_operation(self, content: str) -> None:
        self.write(
            {
                "type": "queue-operation",
                "operation": "enqueue",
                "timestamp": self.clock.tick(),
                "sessionId": self.session_id,
                "content": content,
            }
        )

    def file_history_snapshot(self) -> None:
        self.write(
            {
                "type": "file-history-snapshot",
                "messageId": str(uuidlib.uuid4()),
                "snapshot": {"trackedFileBackups": {}, "timestamp": self.clock.tick()},
                "isSnapshotUpdate": False,
            }
        )

    def attachment(self, content: str) -> None:
        self.write(
            self.envelope(
                "attachment",
                attachment={"type": "hook_additional_context", "content": [content]},
            )
        )

    def unknown(self, kind: str, **fields: Any) -> dict[str, Any]:
        line = self.envelope(kind, **fields)
        self.write(line)
        return line


class InlineSubagent(ClaudeSession):
    """A subagent whose lines go into its parent's file wrapped in ``progress`` lines (the
    shape Claude Code 2.x writes: the envelope of a parent line, ``toolUseID``,
    ``parentToolUseID`` naming the Task call, and ``data`` holding the agent id, the
    prompt and the subagent's own line under ``message``)."""

    def __init__(
        self,
        parent: ClaudeSession,
        agent_id: str,
        tool_use_id: str,
        prompt: str,
        *,
        also_file: bool,
    ) -> None:
        super().__init__(
            parent.cwd,
            session_id=parent.session_id,
            agent_id=agent_id,
            path=parent.path.parent / parent.session_id / "subagents" / f"agent-{agent_id}.jsonl",
            start=parent.clock.now,
            version=parent.version,
        )
        self.parent = parent
        self.tool_use_id = tool_use_id
        self.prompt = prompt
        self.also_file = also_file

    def write(self, obj: Any) -> None:
        if self.also_file:
            super().write(obj)
        inner = {
            k: obj[k] for k in ("type", "message", "uuid", "timestamp", "requestId") if k in obj
        }
        line = self.parent.envelope(
            "progress",
            data={
                "type": "agent_progress",
                "agentId": self.agent_id,
                "prompt": self.prompt,
                "message": inner,
                "normalizedMessages": [],
            },
            toolUseID=f"agent_msg_{uuidlib.uuid4().hex[:16]}",
            parentToolUseID=self.tool_use_id,
        )
        line["timestamp"] = obj.get("timestamp", line["timestamp"])
        self.parent.write(line)


# -- Codex ----------------------------------------------------------------------------------


def codex_home() -> Path:
    return Path(os.environ["CODEX_HOME"])


class CodexRollout:
    """One Codex rollout file (``session_meta`` written on creation)."""

    def __init__(
        self,
        cwd: str | Path,
        *,
        thread_id: str | None = None,
        home: Path | None = None,
        start: datetime | None = None,
        source: Any = "cli",
        archived: bool = False,
        model: str = "gpt-5-codex",
        meta: bool = True,
    ) -> None:
        self.cwd = str(cwd)
        self.thread_id = (
            thread_id
            or f"019cc1a2-{uuidlib.uuid4().hex[:4]}-7d5e-8f60-" + (uuidlib.uuid4().hex[:12])
        )
        self.clock = _Clock(start)
        self.model = model
        when = self.clock.now
        folder = (home or codex_home()) / ("archived_sessions" if archived else "sessions")
        if not archived:
            folder = folder / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"rollout-{when:%Y-%m-%dT%H-%M-%S}-{self.thread_id}.jsonl"
        self.totals = {
            "input_tokens": 0,
            "cached_input_tokens": 0,
            "output_tokens": 0,
            "reasoning_output_tokens": 0,
            "total_tokens": 0,
        }
        if meta:
            self.line(
                "session_meta",
                {
                    "id": self.thread_id,
                    "timestamp": stamp(self.clock.now),
                    "cwd": self.cwd,
                    "originator": "codex_cli_rs",
                    "cli_version": "0.150.0",
                    "source": source,
                    "model_provider": "openai",
                    "git": {"commit_hash": "9f1c2ab", "branch": "main"},
                },
            )

    def write_bytes(self, data: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(data)

    def line(self, kind: str, payload: Any) -> None:
        self.write_bytes(_dump({"timestamp": self.clock.tick(), "type": kind, "payload": payload}))

    def item(self, payload: dict[str, Any]) -> None:
        self.line("response_item", payload)

    def event(self, payload: dict[str, Any]) -> None:
        self.line("event_msg", payload)

    def turn_context(self, model: str | None = None) -> None:
        self.line(
            "turn_context",
            {
                "cwd": self.cwd,
                "approval_policy": "on-request",
                "sandbox_policy": {"type": "workspace-write"},
                "model": model or self.model,
                "effort": "medium",
                "summary": "auto",
            },
        )

    def injected_context(self) -> None:
        self.item(
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions instructions>…"}],
            }
        )
        self.item(
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": f"# AGENTS.md instructions for {self.cwd}\n\nUse pytest.",
                    }
                ],
            }
        )
        self.item(
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": f"<environment_context>\n  <cwd>{self.cwd}</cwd>\n"
                        "</environment_context>",
                    }
                ],
            }
        )

    def user(self, text: str, *, item: bool = True, event: bool = True) -> None:
        if item:
            self.item(
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
            )
        if event:
            self.event({"type": "user_message", "message": text, "images": []})

    def assistant(
        self, text: str, *, item: bool = True, event: bool = True, event_first: bool = False
    ) -> None:
        def write_item() -> None:
            self.item(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text}],
                }
            )

        def write_event() -> None:
            self.event({"type": "agent_message", "message": text})

        order = (
            [(event, write_event), (item, write_item)]
            if event_first
            else [
                (item, write_item),
                (event, write_event),
            ]
        )
        for wanted, write in order:
            if wanted:
                write()

    def reasoning(
        self, summary: str, *, encrypted: str = "gAAAAABencrypted", event: bool = True
    ) -> None:
        self.item(
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": summary}],
                "content": None,
                "encrypted_content": encrypted,
            }
        )
        if event:
            self.event({"type": "agent_reasoning", "text": summary})

    def function_call(
        self, command: list[str], output: str, *, exit_code: int = 0, style: str = "text"
    ) -> str:
        call_id = f"call_{uuidlib.uuid4().hex[:12]}"
        self.item(
            {
                "type": "function_call",
                "name": "shell",
                "arguments": json.dumps({"command": command, "workdir": self.cwd}),
                "call_id": call_id,
            }
        )
        if style == "json":
            body = json.dumps(
                {"output": output, "metadata": {"exit_code": exit_code, "duration_seconds": 0.4}}
            )
        else:
            body = f"Exit code: {exit_code}\nWall time: 0.4 seconds\nOutput:\n{output}"
        self.item({"type": "function_call_output", "call_id": call_id, "output": body})
        return call_id

    def apply_patch(self, patch: str, output: str = "Success. Updated the following files") -> str:
        call_id = f"call_{uuidlib.uuid4().hex[:12]}"
        self.item(
            {
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": call_id,
                "name": "apply_patch",
                "input": patch,
            }
        )
        self.item(
            {
                "type": "custom_tool_call_output",
                "call_id": call_id,
                "output": json.dumps({"output": output, "metadata": {"exit_code": 0}}),
            }
        )
        return call_id

    def local_shell(self, command: list[str]) -> str:
        call_id = f"call_{uuidlib.uuid4().hex[:12]}"
        self.item(
            {
                "type": "local_shell_call",
                "call_id": call_id,
                "status": "completed",
                "action": {"type": "exec", "command": command, "timeout_ms": 10000},
            }
        )
        return call_id

    def web_search(self, query: str) -> None:
        self.item(
            {
                "type": "web_search_call",
                "status": "completed",
                "action": {"type": "search", "query": query},
            }
        )

    def token_count(self, input_tokens: int, cached: int, output: int, reasoning: int = 0) -> None:
        last = {
            "input_tokens": input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output,
            "reasoning_output_tokens": reasoning,
            "total_tokens": input_tokens + output,
        }
        for key, value in last.items():
            self.totals[key] += value
        self.event(
            {
                "type": "token_count",
                "info": {
                    "total_token_usage": dict(self.totals),
                    "last_token_usage": last,
                    "model_context_window": 272000,
                },
                "rate_limits": {"primary": {"used_percent": 12.0}},
            }
        )

    def repeat_token_count(self) -> None:
        """A token_count that repeats the totals (Codex sends these on rate-limit updates)."""
        self.event(
            {
                "type": "token_count",
                "info": {
                    "total_token_usage": dict(self.totals),
                    "last_token_usage": {
                        "input_tokens": 0,
                        "cached_input_tokens": 0,
                        "output_tokens": 0,
                        "reasoning_output_tokens": 0,
                        "total_tokens": 0,
                    },
                    "model_context_window": 272000,
                },
            }
        )

    def task_complete(self, message: str | None = None) -> None:
        self.event({"type": "task_complete", "last_agent_message": message})

    def compacted(self, summary: str) -> None:
        self.line("compacted", {"message": summary, "replacement_history": []})

    def rolled_back(self, turns: int) -> None:
        self.event({"type": "thread_rolled_back", "num_turns": turns})

    def compress(self, *, keep_plain: bool = False) -> Path:
        """Compress the rollout to ``.jsonl.zst`` (as Codex does after 7 days)."""
        target = self.path.with_name(self.path.name + ".zst")
        target.write_bytes(zstd().compress(self.path.read_bytes()))
        stat = self.path.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        if not keep_plain:
            self.path.unlink()
        return target
