"""Hook payloads of every event type of every source, written from the documented formats
(docs/design.md "Agent tools' formats": Claude Code, Codex hooks and ``notify``, OpenCode
through agentkeep's plugin shim) — never copied from real sessions.

``script(source, session, cwd)`` is one plausible session of a tool, in delivery order;
``recorded(n, cwd)`` is at least ``n`` deliveries over many sessions of every source. Each
:class:`Delivery` carries what the hook should make of it: the normalized columns, the
session it belongs to and what it adds to that session's counters.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

SOURCES = ("claude", "codex", "codex-notify", "opencode")
_serial = itertools.count(1)


@dataclass
class Delivery:
    source: str
    payload: dict[str, Any]
    event: str  # the expected captures.event
    vendor_event: str | None
    session: str | None  # the agentkeep session's external id (a subagent's child id)
    parent: str | None = None  # the parent session's external id, for subagents
    tool_name: str | None = None
    tool_use_id: str | None = None
    turn_id: str | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # prompts/tool_calls/failures/turns
    ends: bool = False  # the session ends with this delivery

    @property
    def session_source(self) -> str:
        return "codex" if self.source == "codex-notify" else self.source

    def body(self) -> bytes:
        return json.dumps(self.payload).encode()

    def argv(self) -> list[str]:
        """The arguments after ``agentkeep`` (codex-notify: the JSON is the last one)."""
        args = ["hook", "--source", self.source]
        return [*args, self.body().decode()] if self.source == "codex-notify" else args

    def stdin(self) -> bytes:
        return b"" if self.source == "codex-notify" else self.body()


def _id(prefix: str) -> str:
    return f"{prefix}{next(_serial):06d}"


# -- Claude Code ---------------------------------------------------------------------------


def claude_script(session: str, cwd: str, *, source: str = "claude") -> list[Delivery]:
    """Every Claude Code event: a session with a prompt, tool calls (one failing), a
    subagent, a parallel batch, compaction, a stop, an API-error stop, notifications,
    unknown events, and its end. ``source="codex"`` gives the same events as Codex hooks
    send them (snake_case, ``turn_id`` and ``model`` on every event)."""
    codex = source == "codex"
    common: dict[str, Any] = {
        "session_id": session,
        "transcript_path": None if codex else f"/home/me/.claude/projects/x/{session}.jsonl",
        "cwd": cwd,
        "permission_mode": "default",
    }
    if codex:
        common["model"] = "gpt-5-codex"
    turn = _id("turn-") if codex else _id("prompt-")
    turn_key = "turn_id" if codex else "prompt_id"
    out: list[Delivery] = []

    def add(name: str, event: str, extra: dict[str, Any], **expect: Any) -> None:
        this_turn = expect.pop("turn", turn)
        payload = {**common, "hook_event_name": name, **extra}
        if name != "SessionStart":
            payload[turn_key] = this_turn
        session_id = expect.pop("session", session)
        out.append(
            Delivery(
                source,
                payload,
                event,
                name,
                session_id,
                turn_id=None if name == "SessionStart" else this_turn,
                **expect,
            )
        )

    add(
        "SessionStart",
        "session_start",
        {"source": "startup", "model": "claude-sonnet-5", "session_title": "uploader retries"},
    )
    add(
        "UserPromptSubmit",
        "prompt",
        {"prompt": f"add retries to the uploader ({session})"},
        counts={"prompts": 1},
    )
    bash = {
        "command": "pytest -q tests/test_upload.py",
        "description": "Run upload tests",
        "timeout": 120000,
        "run_in_background": False,
    }
    t1, t2, t3 = _id("toolu_"), _id("toolu_"), _id("toolu_")
    add(
        "PreToolUse",
        "tool_pre",
        {"tool_name": "Bash", "tool_input": bash, "tool_use_id": t1},
        tool_name="Bash",
        tool_use_id=t1,
    )
    response: Any = (
        "14 passed in 0.8s"
        if codex
        else {"stdout": "14 passed in 0.8s", "stderr": "", "interrupted": False}
    )
    add(
        "PostToolUse",
        "tool_post",
        {"tool_name": "Bash", "tool_input": bash, "tool_response": response, "tool_use_id": t1}
        | ({} if codex else {"duration_ms": 812}),
        tool_name="Bash",
        tool_use_id=t1,
        duration_ms=None if codex else 812,
        counts={"tool_calls": 1},
    )
    edit_tool = "apply_patch" if codex else "Write"
    edit_input = (
        {"patch": "*** Begin Patch\n*** Update File: uploader.py\n+retries = 3\n*** End Patch"}
        if codex
        else {"file_path": f"{cwd}/uploader.py", "content": "retries = 3\n"}
    )
    add(
        "PreToolUse",
        "tool_pre",
        {"tool_name": edit_tool, "tool_input": edit_input, "tool_use_id": t2},
        tool_name=edit_tool,
        tool_use_id=t2,
    )
    add(
        "PostToolUse",
        "tool_post",
        {
            "tool_name": edit_tool,
            "tool_input": edit_input,
            "tool_response": "ok" if codex else {"filePath": f"{cwd}/uploader.py", "success": True},
            "tool_use_id": t2,
        },
        tool_name=edit_tool,
        tool_use_id=t2,
        counts={"tool_calls": 1},
    )
    add(
        "PermissionRequest",
        "other",
        {"tool_name": "Bash", "tool_input": {"command": "rm -rf build"}},
        tool_name="Bash",
    )
    add("PreCompact", "compact", {"trigger": "auto", "custom_instructions": ""})
    add("PostCompact", "compact", {"trigger": "auto", "compact_summary": "Retries added."})
    if not codex:  # Claude only: failures, batches, subagents, notifications
        add(
            "PostToolUseFailure",
            "tool_fail",
            {
                "tool_name": "Bash",
                "tool_input": {"command": "pytest -q"},
                "tool_use_id": t3,
                "error": "Exit code 2\nE   AssertionError: retries != 3",
                "is_interrupt": False,
                "duration_ms": 4120,
            },
            tool_name="Bash",
            tool_use_id=t3,
            exit_code=2,
            duration_ms=4120,
            counts={"tool_calls": 1, "failures": 1},
        )
        add(
            "PostToolBatch",
            "other",
            {
                "tool_calls": [
                    {
                        "tool_name": "Read",
                        "tool_input": {"file_path": f"{cwd}/a.py"},
                        "tool_use_id": _id("toolu_"),
                        "tool_response": "print('a')",
                    }
                ]
            },
        )
        agent = _id("agent-")
        child = f"{session}:{agent}"
        sub = {"agent_id": agent, "agent_type": "Explore"}
        t4 = _id("toolu_")
        add("SubagentStart", "other", sub, session=child, parent=session)
        add(
            "PreToolUse",
            "tool_pre",
            {**sub, "tool_name": "Grep", "tool_input": {"pattern": "retry"}, "tool_use_id": t4},
            session=child,
            parent=session,
            tool_name="Grep",
            tool_use_id=t4,
        )
        add(
            "PostToolUse",
            "tool_post",
            {
                **sub,
                "tool_name": "Grep",
                "tool_input": {"pattern": "retry"},
                "tool_response": {"numFiles": 2, "filenames": ["a.py", "b.py"]},
                "tool_use_id": t4,
                "duration_ms": 33,
            },
            session=child,
            parent=session,
            tool_name="Grep",
            tool_use_id=t4,
            duration_ms=33,
            counts={"tool_calls": 1},
        )
        add(
            "SubagentStop",
            "subagent_end",
            {
                **sub,
                "agent_transcript_path": f"/home/me/.claude/projects/x/subagents/{agent}.jsonl",
                "last_assistant_message": "Found 2 call sites.",
                "stop_hook_active": False,
            },
            session=child,
            parent=session,
            ends=True,
        )
        add(
            "Notification",
            "notification",
            {
                "message": f"Claude needs your permission ({session})",
                "title": "Permission",
                "notification_type": "permission_prompt",
            },
        )
        add(
            "StopFailure",
            "turn_end",
            {
                "error": "rate_limit",
                "error_details": "429",
                "last_assistant_message": "API Error: rate limited",
            },
            turn=_id("prompt-"),  # an earlier turn, which ended on an API error
            counts={"turns": 1, "failures": 1},
        )
        add("TeammateIdle", "other", {"teammate": "t1"})
        t5 = _id("toolu_")
        add(
            "SomethingNew2027",
            "other",
            {"brand_new_field": {"nested": [1, 2, {"x": None}]}, "tool_use_id": t5},
            tool_use_id=t5,
        )
    add(
        "Stop",
        "turn_end",
        {
            "stop_hook_active": False,
            "last_assistant_message": f"Retries added; 14 tests pass ({session}).",
            "background_tasks": [
                {"id": "t1", "type": "shell", "status": "running", "command": "npm run dev"}
            ],
            "session_crons": [],
        },
        counts={"turns": 1},
    )
    if not codex:  # a Stop hook blocked: Claude went on, and stops again in the same turn
        add(
            "Stop",
            "turn_end",
            {"stop_hook_active": True, "last_assistant_message": "Done, for real this time."},
        )
    if codex:
        add("Interrupt", "other", {"reason": "user"})
    add("SessionEnd", "session_end", {"reason": "prompt_input_exit"}, ends=True)
    return out


# -- Codex notify --------------------------------------------------------------------------


def codex_notify_script(
    thread: str, cwd: str, turns: int = 2, *, hooked_turn: str | None = None
) -> list[Delivery]:
    """``notify`` deliveries: turn completions (kebab-case keys) and an unknown type.
    ``hooked_turn``: the first completion is of a turn that Codex's Stop hook reported too
    (the session counts it once)."""
    out = []
    for n in range(turns):
        turn = hooked_turn if n == 0 and hooked_turn else _id("")
        payload = {
            "type": "agent-turn-complete",
            "thread-id": thread,
            "turn-id": turn,
            "cwd": cwd,
            "client": "codex-tui",
            "input-messages": [f"step {n} of {thread}"],
            "last-assistant-message": f"done with step {n}",
        }
        out.append(
            Delivery(
                "codex-notify",
                payload,
                "turn_end",
                "agent-turn-complete",
                thread,
                turn_id=turn,
                counts={} if turn == hooked_turn else {"turns": 1},
            )
        )
    payload = {"type": "approval-requested", "thread-id": thread, "cwd": cwd, "id": _id("")}
    out.append(Delivery("codex-notify", payload, "other", "approval-requested", thread))
    return out


# -- OpenCode through the plugin shim -------------------------------------------------------


def opencode_script(session: str, cwd: str, *, parent: str | None = None) -> list[Delivery]:
    """The shim's deliveries: plugin hooks ``{hook, input, output}`` and bus events
    ``{hook: "event", event: {type, properties}}``; each carries a ``time`` (the shim adds
    one, so identical bus events stay distinct deliveries)."""
    out: list[Delivery] = []

    def hook(
        name: str, event: str, given: dict[str, Any], output: dict[str, Any], **kw: Any
    ) -> None:
        payload = {
            "hook": name,
            "input": given,
            "output": output,
            "directory": cwd,
            "time": next(_serial),
        }
        out.append(Delivery("opencode", payload, event, name, session, **kw))

    def bus(kind: str, event: str, props: dict[str, Any], **kw: Any) -> None:
        payload = {
            "hook": "event",
            "event": {"type": kind, "properties": props},
            "directory": cwd,
            "time": next(_serial),
        }
        kw.setdefault("session", session)
        out.append(Delivery("opencode", payload, event, kind, **kw))

    info = {"id": session, "title": f"fix {session}", "directory": cwd, "version": "1.2.0"}
    if parent:
        info["parentID"] = parent
    bus("session.created", "session_start", {"info": info}, parent=parent)
    message = _id("msg_")
    hook(
        "chat.message",
        "prompt",
        {
            "sessionID": session,
            "messageID": message,
            "agent": "build",
            "model": {"providerID": "anthropic", "modelID": "claude-sonnet-5"},
        },
        {"message": {"id": message, "role": "user"}, "parts": [{"type": "text", "text": "go"}]},
        turn_id=message,
        counts={"prompts": 1},
    )
    call = _id("call_")
    tool_in = {"tool": "bash", "sessionID": session, "callID": call}
    hook(
        "tool.execute.before",
        "tool_pre",
        tool_in,
        {"args": {"command": "npm test"}},
        tool_name="bash",
        tool_use_id=call,
    )
    hook(
        "tool.execute.after",
        "tool_post",
        tool_in,
        {"title": "npm test", "output": "1 failing", "metadata": {"exit": 1}},
        tool_name="bash",
        tool_use_id=call,
        exit_code=1,
        counts={"tool_calls": 1},
    )
    bus("message.updated", "other", {"info": {"id": message, "sessionID": session}})
    bus("file.edited", "other", {"file": f"{cwd}/src/app.ts"}, session=None)
    bus("session.idle", "turn_end", {"sessionID": session}, counts={"turns": 1})
    bus(
        "session.error",
        "turn_end",
        {"sessionID": session, "error": {"name": "APIError", "data": {"message": "overloaded"}}},
        counts={"turns": 1, "failures": 1},
    )
    bus("session.compacted", "compact", {"sessionID": session})
    bus("session.idle", "turn_end", {"sessionID": session}, counts={"turns": 1})
    bus("session.deleted", "session_end", {"info": {"id": session}}, ends=True)
    return out


def script(source: str, session: str, cwd: str) -> list[Delivery]:
    if source == "codex-notify":
        return codex_notify_script(session, cwd)
    if source == "opencode":
        return opencode_script(session, cwd)
    return claude_script(session, cwd, source=source)


def every_source(cwd: str) -> list[Delivery]:
    """One session of each source (a Codex thread fed by hooks and notify, an OpenCode
    session with a child)."""
    thread = _id("019a-")
    parent = _id("ses_")
    codex = claude_script(thread, cwd, source="codex")
    stopped = next(d.turn_id for d in codex if d.vendor_event == "Stop")
    return [
        *claude_script(_id("claude-"), cwd),
        *codex,
        *codex_notify_script(thread, cwd, hooked_turn=stopped),
        *opencode_script(parent, cwd),
        *opencode_script(_id("ses_"), cwd, parent=parent),
    ]


def recorded(n: int, cwd: str, *, seed: int = 7) -> list[Delivery]:
    """At least ``n`` deliveries of every event type over many sessions, shuffled within
    each session's order a little (parallel tool calls arrive in any order)."""
    rng = random.Random(seed)
    out: list[Delivery] = []
    while len(out) < n:
        out += every_source(cwd)
    rng.shuffle(out)
    return out


def totals(deliveries: list[Delivery]) -> dict[tuple[str, str], dict[str, int]]:
    """Expected counters per session (source, external id), each delivery counted once."""
    expected: dict[tuple[str, str], dict[str, int]] = {}
    for d in deliveries:
        if d.session is None:
            continue
        row = expected.setdefault(
            (d.session_source, d.session),
            {"prompts": 0, "tool_calls": 0, "failures": 0, "turns": 0},
        )
        for name, count in d.counts.items():
            row[name] += count
        if d.parent:
            expected.setdefault(
                (d.session_source, d.parent),
                {"prompts": 0, "tool_calls": 0, "failures": 0, "turns": 0},
            )
    return expected
