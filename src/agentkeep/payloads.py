"""What each agent tool's hook payload looks like: its shape, normalized to one Delivery.

A hook delivery is the JSON one agent tool sends ``agentkeep hook`` (docs/design.md
"Agent tools' formats"); :class:`Delivery` holds the columns agentkeep pulls out of it, and each
function here reads one tool's shape (unknown fields are ignored; the whole payload is
kept as it came). :data:`agentkeep.tools.TOOLS` says which function reads which
``--source``.

On the hook's fast path: standard library only, and not even ``typing`` at runtime.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from typing import Any

# Claude Code and Codex hook events (same names) -> captures.event.
HOOK_EVENTS = {
    "SessionStart": "session_start",
    "UserPromptSubmit": "prompt",
    "PreToolUse": "tool_pre",
    "PostToolUse": "tool_post",
    "PostToolUseFailure": "tool_fail",
    "Stop": "turn_end",
    "StopFailure": "turn_end",
    "SubagentStop": "subagent_end",
    "PreCompact": "compact",
    "PostCompact": "compact",
    "SessionEnd": "session_end",
    "Notification": "notification",
}
# OpenCode plugin hooks and bus events -> captures.event.
OPENCODE_EVENTS = {
    "tool.execute.before": "tool_pre",
    "tool.execute.after": "tool_post",
    "chat.message": "prompt",
    "session.created": "session_start",
    "session.idle": "turn_end",
    "session.error": "turn_end",
    "session.compacted": "compact",
    "session.deleted": "session_end",
}
CODEX_NOTIFY_EVENTS = {"agent-turn-complete": "turn_end"}
# Turns that ended on an error: counted as a turn and a failure.
FAILED_TURNS = ("StopFailure", "session.error")


class Delivery:
    """The columns pulled out of one payload (everything else stays in the payload)."""

    __slots__ = (
        "agent_type",
        "cwd",
        "duration_ms",
        "event",
        "exit_code",
        "failed",
        "model",
        "parent_session",
        "reason",
        "session",
        "title",
        "tool_name",
        "tool_use_id",
        "turn_id",
        "vendor_event",
    )

    def __init__(self) -> None:
        self.event = "other"
        self.vendor_event: str | None = None
        self.session: str | None = None
        self.parent_session: str | None = None
        self.tool_name: str | None = None
        self.tool_use_id: str | None = None
        self.turn_id: str | None = None
        self.cwd: str | None = None
        self.exit_code: int | None = None
        self.duration_ms: int | None = None
        self.model: str | None = None
        self.title: str | None = None
        self.reason: str | None = None
        self.agent_type: str | None = None
        self.failed = False


def hook_event(doc: dict[str, Any]) -> Delivery:
    """Claude Code and Codex hooks (docs/design.md "Agent tools' formats")."""
    found = Delivery()
    found.vendor_event = _text(doc.get("hook_event_name"))
    found.event = HOOK_EVENTS.get(found.vendor_event or "", "other")
    found.session = _text(doc.get("session_id"))
    agent = _text(doc.get("agent_id"))
    if found.session and agent:  # inside a subagent: its own child session
        found.parent_session = found.session
        found.session = f"{found.session}:{agent}"
        found.agent_type = _text(doc.get("agent_type"))
    found.tool_name = _text(doc.get("tool_name"))
    found.tool_use_id = _text(doc.get("tool_use_id"))
    found.turn_id = _text(doc.get("turn_id")) or _text(doc.get("prompt_id"))
    found.cwd = _text(doc.get("cwd"))
    found.duration_ms = _whole(doc.get("duration_ms"))
    found.model = _text(doc.get("model"))
    found.title = _text(doc.get("session_title"))
    found.reason = _text(doc.get("reason"))
    found.failed = found.vendor_event in FAILED_TURNS
    if found.event == "tool_fail":
        found.exit_code = exit_code_of(doc.get("error"))
    return found


def codex_notify(doc: dict[str, Any]) -> Delivery:
    """Codex's legacy ``notify`` JSON (kebab-case keys)."""
    found = Delivery()
    found.vendor_event = _text(doc.get("type"))
    found.event = CODEX_NOTIFY_EVENTS.get(found.vendor_event or "", "other")
    found.session = _text(doc.get("thread-id"))
    found.turn_id = _text(doc.get("turn-id"))
    found.cwd = _text(doc.get("cwd"))
    return found


def opencode_event(doc: dict[str, Any]) -> Delivery:
    """What the OpenCode plugin shim sends (see the module docstring of agentkeep.hook)."""
    found = Delivery()
    hook = _text(doc.get("hook"))
    event = _mapping(doc.get("event"))
    props: dict[str, Any] = {}
    if event and (hook in (None, "event")):
        found.vendor_event = _text(event.get("type"))
        props = _mapping(event.get("properties"))
    else:
        found.vendor_event = hook
    found.event = OPENCODE_EVENTS.get(found.vendor_event or "", "other")
    given = _mapping(doc.get("input"))
    output = _mapping(doc.get("output"))
    info = _mapping(props.get("info"))
    found.session = (
        _text(given.get("sessionID"))
        or _text(props.get("sessionID"))
        or _text(info.get("sessionID"))  # message.updated: the message's session
        or _text(_mapping(props.get("part")).get("sessionID"))  # message.part.updated
        or (_text(info.get("id")) if (found.vendor_event or "").startswith("session.") else None)
        or _text(doc.get("sessionID"))
    )
    parent = _text(info.get("parentID"))
    if parent and found.session and parent != found.session:
        found.parent_session = parent
    found.tool_name = _text(given.get("tool"))
    found.tool_use_id = _text(given.get("callID"))
    found.turn_id = _text(given.get("messageID"))
    found.cwd = _text(doc.get("cwd")) or _text(doc.get("directory")) or _text(info.get("directory"))
    found.title = _text(info.get("title"))
    model = given.get("model")
    found.model = _text(model.get("modelID")) if isinstance(model, dict) else _text(model)
    found.failed = found.vendor_event in FAILED_TURNS
    if found.event == "tool_post":
        metadata = _mapping(output.get("metadata"))
        for key in ("exit", "exitCode", "exit_code"):
            found.exit_code = _whole(metadata.get(key))
            if found.exit_code is not None:
                break
    return found


def exit_code_of(error: object) -> int | None:
    """N from a failure's ``Exit code N`` first line (Claude's Bash failures)."""
    if not isinstance(error, str) or not error.startswith("Exit code "):
        return None
    first = error[10:].split("\n", 1)[0].strip()
    if first.lstrip("-").isdigit() and len(first) < 12:
        return int(first)
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    if not text:
        return None
    # Not cut here: the writer cuts ids after redacting them (a cut first could leave
    # most of a secret the redactor no longer recognises).
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (invalid UTF-8 on stdin)
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or not -(2**62) < value < 2**62:
        return None
    return int(value)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
