"""Priming: what a new agent session should know about this project.

:meth:`PrimeService.prime` gathers, with a few indexed queries, the latest handoff notes and
next actions, the tasks ready to claim, the failures of the last 24 hours (failed or
interrupted sessions, failed tool calls reported by hooks) and the active worktrees with
their lease owners, and renders them as compact Markdown of at most ``max_chars``
characters (Claude Code and Codex cap injected context at 10,000). When everything does
not fit, each section gets a fair share of the room (a section needing less than its share
leaves the rest to the others) and says how many items it left out.

:func:`hook_json` is the SessionStart hook (``agentkeep prime --hook-json``): it prints one
JSON envelope and never fails the agent — no store, a damaged store or a bug all give
``{}``, and the error goes to ``.agentkeep/hook-errors.log`` (reported by ``doctor``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.backends.base import Dialect
from agentkeep.errors import AgentkeepError, StoreNotFound
from agentkeep.models import Record
from agentkeep.services.base import Service
from agentkeep.timeutil import iso_utc, utc_now

if TYPE_CHECKING:
    pass

MAX_CHARS = 10_000
FAILURE_WINDOW = timedelta(hours=24)
HOOK_EVENT = "SessionStart"

# How many items of each section are read (the rest are counted) and how long one item
# may be before it is cut. The newest handoff gets the most room: it is usually the one
# the next session needs.
SHOWN = {"handoffs": 5, "next_actions": 5, "ready": 15, "failures": 5, "worktrees": 20}
NEWEST_HANDOFF_CHARS = 3_000
HANDOFF_CHARS = 1_000
LINE_CHARS = 300
FOOTER = (
    "Claim a task: `agentkeep tasks claim ID --as NAME`. Before you stop, leave a handoff: "
    '`agentkeep notes add handoff "what is done, what is next" --task ID`.'
)


@dataclass(frozen=True)
class Prime(Record):
    """What ``agentkeep prime`` shows: the rendered ``text`` and the parts it was made of
    (the parts are complete; only the text is cut to ``max_chars``)."""

    text: str
    chars: int
    truncated: bool
    since: str  # start of the failure window
    handoffs: list[dict[str, Any]]
    handoffs_total: int
    next_actions: list[dict[str, Any]]
    next_actions_total: int
    ready_tasks: list[dict[str, Any]]
    ready_total: int
    failed_sessions: list[dict[str, Any]]
    failed_sessions_total: int
    tool_failures: list[dict[str, Any]]
    tool_failures_total: int
    worktrees: list[dict[str, Any]]
    worktrees_total: int
    specs: list[dict[str, Any]] = field(default_factory=list)  # services/context.py


@dataclass
class _Section:
    title: str
    items: list[str]
    total: int
    more: str  # the command that lists everything

    def heading(self) -> str:
        return f"\n## {self.title} ({self.total})\n"

    def need(self) -> int:
        tail = _more_line(self.total - len(self.items), self.more)
        return len(self.heading()) + sum(len(item) + 1 for item in self.items) + len(tail)


class PrimeService(Service):
    def prime(self, *, max_chars: int = MAX_CHARS, now: datetime | None = None) -> Prime:
        """What a new agent session should know, as Markdown of at most ``max_chars``."""
        store = self._store
        moment = now or datetime.now(UTC)
        since = iso_utc(moment - FAILURE_WINDOW)
        handoffs = [
            n.to_dict() for n in store.notes.list_notes(kind="handoff", limit=SHOWN["handoffs"])
        ]
        actions = [
            n.to_dict()
            for n in store.notes.list_notes(kind="next_action", limit=SHOWN["next_actions"])
        ]
        ready = [t.to_dict() for t in store.tasks.ready_tasks(limit=SHOWN["ready"])]
        from agentkeep.lifecycle import READY_COUNT_SQL

        failed = self._failed_sessions(since)
        tools = self._tool_failures(since)
        worktrees = [w.to_dict() for w in store.worktrees.list_worktrees(limit=SHOWN["worktrees"])]
        parts: dict[str, Any] = {
            "since": since,
            "handoffs": handoffs,
            "handoffs_total": self._count(_NOTES_COUNT, ("handoff",)),
            "next_actions": actions,
            "next_actions_total": self._count(_NOTES_COUNT, ("next_action",)),
            "ready_tasks": ready,
            "ready_total": self._count(READY_COUNT_SQL),
            "failed_sessions": failed,
            "failed_sessions_total": self._count(_FAILED_COUNT, (since,)) if failed else 0,
            "tool_failures": tools,
            "tool_failures_total": self._tool_failure_count(since) if tools else 0,
            "worktrees": worktrees,
            "worktrees_total": self._count(_WORKTREES_COUNT),
        }
        row = self._row("SELECT name FROM projects ORDER BY id LIMIT 1")
        name = str(row[0]) if row is not None else self.root.name
        from agentkeep.services.context import prime_specs

        specs, parts["specs"] = prime_specs(store, parts, budget=max_chars * 2 // 5, since=since)
        text, truncated = render_prime(
            name, parts, max_chars=max_chars, now=iso_utc(moment), extra=specs
        )
        return Prime(text=text, chars=len(text), truncated=truncated, **parts)

    def _recent_failures(self, since: str) -> dict[str, list[dict[str, Any]]]:
        """The failed sessions and tool calls since ``since`` that prime shows."""
        return {
            "failed_sessions": self._failed_sessions(since),
            "tool_failures": self._tool_failures(since),
        }

    def _failed_sessions(self, since: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, source, external_id, status, started_at, ended_at, exit_code, title,"
            " model FROM sessions WHERE status IN ('failed', 'interrupted')"
            " AND coalesce(ended_at, started_at) >= ? ORDER BY id DESC LIMIT ?",
            (since, SHOWN["failures"]),
        )
        return [dict(row) for row in rows]

    def _tool_failures(self, since: str) -> list[dict[str, Any]]:
        try:
            rows = self._rows(
                f"SELECT * FROM ({tool_failures_sql(self.backend.dialect)}) AS failures"
                " ORDER BY at DESC, id DESC LIMIT ?",
                (since, since, SHOWN["failures"]),
            )
        except AgentkeepError:  # a store not yet migrated to schema 3 has no captures
            return []
        return [dict(row) for row in rows]

    def _tool_failure_count(self, since: str) -> int:
        sql = f"SELECT count(*) FROM ({tool_failures_sql(self.backend.dialect)}) AS failures"
        return self._count(sql, (since, since))


# One definition of a failed tool call, the one ``sessions.failures`` (and so ``stats``)
# counts: a tool result marked as an error in an imported transcript, or a hook's
# tool_fail delivery — the same call seen both ways (same tool_use_id) counted once.
def tool_failures_sql(dialect: Dialect) -> str:
    return (
        "SELECT 'message' AS origin, m.id, m.at, s.source, m.session_id,"
        " coalesce(m.tool_name, (SELECT u.tool_name FROM messages u WHERE u.tool_use_id ="
        " m.tool_use_id AND u.kind = 'tool_use' LIMIT 1)) AS tool_name, NULL AS exit_code,"
        " NULL AS duration_ms, substr(m.text, 1, 500) AS error,"
        f" (SELECT {dialect.json_get('u.raw', 'input.command')} FROM messages u"
        " WHERE u.tool_use_id = m.tool_use_id AND u.kind = 'tool_use'"
        f" AND {dialect.is_json('u.raw')} LIMIT 1) AS command"
        " FROM messages m JOIN sessions s ON s.id = m.session_id"
        " WHERE m.kind = 'tool_result' AND m.is_error <> 0 AND m.at >= ?"
        " UNION ALL"
        " SELECT 'capture', c.id, c.at, c.source, c.session_id, c.tool_name, c.exit_code,"
        f" c.duration_ms, {dialect.json_get('c.payload', 'error')},"
        f" {dialect.json_get('c.payload', 'tool_input.command')}"
        " FROM captures c WHERE c.event = 'tool_fail' AND c.at >= ?"
        " AND NOT (c.tool_use_id IS NOT NULL AND EXISTS (SELECT 1 FROM messages m"
        " WHERE m.tool_use_id = c.tool_use_id AND m.kind = 'tool_result' AND m.is_error <> 0))"
    )


_NOTES_COUNT = "SELECT count(*) FROM notes WHERE kind = ?"
_FAILED_COUNT = (
    "SELECT count(*) FROM sessions WHERE status IN ('failed', 'interrupted')"
    " AND coalesce(ended_at, started_at) >= ?"
)
_WORKTREES_COUNT = "SELECT count(*) FROM worktrees WHERE status = 'active'"


# -- rendering -----------------------------------------------------------------------------


def render_prime(
    project: str,
    parts: dict[str, Any],
    *,
    max_chars: int = MAX_CHARS,
    now: str | None = None,
    extra: str = "",
) -> tuple[str, bool]:
    """The Markdown for ``parts`` (see :class:`Prime`), at most ``max_chars`` long, and
    whether anything was left out or cut. ``extra`` (the specs for the work, rendered by
    services/context.py) goes before the footer and takes its length off the budget."""
    now = now or utc_now()
    sections = [
        _Section(
            "Handoff notes, newest first",
            [
                _handoff(note, NEWEST_HANDOFF_CHARS if i == 0 else HANDOFF_CHARS)
                for i, note in enumerate(parts["handoffs"])
            ],
            parts["handoffs_total"],
            "agentkeep notes list -k handoff",
        ),
        _Section(
            "Next actions",
            [_next_action(note) for note in parts["next_actions"]],
            parts["next_actions_total"],
            "agentkeep notes list -k next_action",
        ),
        _Section(
            "Ready tasks",
            [_task(task) for task in parts["ready_tasks"]],
            parts["ready_total"],
            "agentkeep tasks ready",
        ),
        _Section(
            "Failures in the last 24 h",
            [_failed_session(s) for s in parts["failed_sessions"]]
            + [_tool_failure(c) for c in parts["tool_failures"]],
            parts["failed_sessions_total"] + parts["tool_failures_total"],
            "agentkeep sessions -s failed",
        ),
        _Section(
            "Active worktrees",
            [_worktree(w, now) for w in parts["worktrees"]],
            parts["worktrees_total"],
            "agentkeep worktrees",
        ),
    ]
    sections = [s for s in sections if s.total or s.items]
    header = f"# agentkeep: {_one_line(project, 80)}\n"
    if not sections and not extra:
        header += "\nNo handoff notes, ready tasks, recent failures or active worktrees.\n"
    footer = "\n" + FOOTER + "\n"
    if len(header) + len(footer) > max_chars:
        footer = ""
    budget = max_chars - len(header) - len(footer) - len(extra)
    shares = _fair_shares([s.need() for s in sections], budget)
    rendered = [_fit(section, share) for section, share in zip(sections, shares, strict=True)]
    truncated = any(cut for _, cut in rendered) or any(s.total > len(s.items) for s in sections)
    text = header + "".join(body for body, _ in rendered) + extra + footer
    if len(text) > max_chars:  # only when max_chars is smaller than the fixed lines
        text, truncated = text[: max_chars - 1] + "…", True
    return text, truncated


def _fair_shares(needs: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` so that sections needing less than an equal share get what they
    need and the rest is shared equally among the others (water-filling)."""
    shares = [0] * len(needs)
    pending = list(range(len(needs)))
    remaining = max(budget, 0)
    while pending:
        share = remaining // len(pending)
        small = [i for i in pending if needs[i] <= share]
        if not small:
            for i in pending:
                shares[i] = share
            break
        for i in small:
            shares[i] = needs[i]
            remaining -= needs[i]
            pending.remove(i)
    return shares


def _fit(section: _Section, room: int) -> tuple[str, bool]:
    """The section in at most ``room`` characters: whole items while they fit (the first
    one cut if even it does not), then a "(N more)" line. Returns (text, cut anything)."""
    heading = section.heading()
    if section.need() <= room:
        tail = _more_line(section.total - len(section.items), section.more)
        return heading + "".join(item + "\n" for item in section.items) + tail, False
    shown: list[str] = []
    used = len(heading)
    for item in section.items:
        # Room for this item and for the line counting everything after it.
        tail = _more_line(section.total - len(shown) - 1, section.more)
        if used + len(item) + 1 + len(tail) <= room:
            shown.append(item)
            used += len(item) + 1
            continue
        left = room - used - len(tail) - 1
        if not shown and left >= 40:  # cut the first item rather than show none
            shown.append(_cut(item, left))
            used += len(shown[-1]) + 1
        break
    tail = _more_line(section.total - len(shown), section.more)
    if used + len(tail) > room:
        return "", True
    return heading + "".join(item + "\n" for item in shown) + tail, True


def _more_line(count: int, command: str) -> str:
    return f"- ({count} more: `{command}`)\n" if count > 0 else ""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def _one_line(text: object, limit: int = LINE_CHARS) -> str:
    return _cut(" ".join(str(text or "").split()), limit)


def _when(stamp: object) -> str:
    """``2026-11-22T10:04:05.123Z`` → ``2026-11-22 10:04Z``."""
    text = str(stamp or "")
    return f"{text[:10]} {text[11:16]}Z" if len(text) >= 16 else text


def _handoff(note: dict[str, Any], limit: int) -> str:
    meta = [f"#{note['id']}", _when(note["created_at"])]
    if note.get("author"):
        meta.append(str(note["author"]))
    if note.get("task_id") is not None:
        meta.append(f"task {note['task_id']}")
    body = _cut(str(note.get("body") or "").strip(), limit)
    lines = [f"- {' · '.join(meta)}"]
    lines += [f"  {line}".rstrip() for line in body.splitlines()]
    return "\n".join(lines)


def _next_action(note: dict[str, Any]) -> str:
    task = f" (task {note['task_id']})" if note.get("task_id") is not None else ""
    return f"- #{note['id']}{task}: {_one_line(note.get('body'))}"


def _task(task: dict[str, Any]) -> str:
    labels = f" [{', '.join(task['labels'])}]" if task.get("labels") else ""
    return f"- #{task['id']} P{task['priority']} {_one_line(task['title'], 200)}{labels}"


def _failed_session(session: dict[str, Any]) -> str:
    ident = f"{session['source']}"
    if session.get("external_id"):
        ident += f" {_one_line(session['external_id'], 12)}"
    exit_code = f", exit {session['exit_code']}" if session.get("exit_code") is not None else ""
    title = f": {_one_line(session['title'], 160)}" if session.get("title") else ""
    when = _when(session.get("ended_at") or session.get("started_at"))
    return f"- session {session['id']} ({ident}) {session['status']} at {when}{exit_code}{title}"


def _tool_failure(capture: dict[str, Any]) -> str:
    tool = capture.get("tool_name") or "a tool"
    where = f" in session {capture['session_id']}" if capture.get("session_id") else ""
    exit_code = f", exit {capture['exit_code']}" if capture.get("exit_code") is not None else ""
    command = f" `{_one_line(capture['command'], 80)}`" if capture.get("command") else ""
    error = ""
    if capture.get("error"):
        lines = [line for line in str(capture["error"]).splitlines() if line.strip()]
        if lines and lines[0].startswith("Exit code"):
            lines = lines[1:]
        if lines:
            error = f": {_one_line(' / '.join(lines[:3]), 160)}"
    when = _when(capture["at"])
    return f"- {tool}{command} failed{where} at {when}{exit_code}{error}"


def _worktree(worktree: dict[str, Any], now: str) -> str:
    branch = f" on {worktree['branch']}" if worktree.get("branch") else ""
    owner = worktree.get("lease_owner")
    expires = worktree.get("lease_expires_at") or ""
    if owner and expires > now:
        lease = f"leased by {owner} until {_when(expires)}"
    elif owner:
        lease = f"free (the lease of {owner} expired {_when(expires)})"
    else:
        lease = "free"
    return f"- #{worktree['id']} {_one_line(worktree['path'], 120)}{branch}: {lease}"


# -- the SessionStart hook -------------------------------------------------------------------


def hook_json(store: str | Path | None = None, *, max_chars: int = MAX_CHARS) -> str:
    """The SessionStart hook's stdout: exactly one JSON object, whatever happens.

    Drains stdin first (the hook payload arrives there; it is not needed) and never reads a
    terminal. Without a store the answer is ``{}``; on any error too, and the error is
    appended to the store's hook log when there is a store directory to put it in.
    """
    _drain_stdin()
    try:
        import agentkeep

        with agentkeep.open(store, read_only=True) as opened:
            text = opened.prime(max_chars=max_chars).text
    except StoreNotFound:
        return "{}"
    except Exception as exc:  # the agent must never see a failure of ours
        _log_hook_error(store, exc)
        return "{}"
    envelope = {"hookSpecificOutput": {"hookEventName": HOOK_EVENT, "additionalContext": text}}
    # ASCII only: a hook's stdout encoding follows the agent's locale, which may not be UTF-8.
    return json.dumps(envelope, ensure_ascii=True)


def _drain_stdin() -> None:
    try:
        stream = sys.stdin
        if stream is None or stream.closed or stream.isatty():
            return
        source = getattr(stream, "buffer", stream)
        while source.read(65536):
            pass
    except Exception:  # nothing to drain, or a stdin that cannot be read
        return


def _log_hook_error(store: str | Path | None, exc: BaseException) -> None:
    """One redacted line in the store's hook log (agentkeep.hooklog; best effort)."""
    try:
        from agentkeep import hooklog
        from agentkeep.paths import find_store
        from agentkeep.store import resolve_store_dir

        store_dir = resolve_store_dir(store) if store is not None else find_store()
        if store_dir is None or not store_dir.is_dir():
            return
        hooklog.log_failure(store_dir, "prime --hook-json", exc)
    except Exception:  # logging is best effort; the hook's answer is already decided
        return


def hook_json_main(argv: Sequence[str]) -> int:
    """``agentkeep prime --hook-json [--max-chars N]`` without the CLI framework (for the
    console script's fast path): unknown arguments are ignored, the exit code is always 0."""
    max_chars = MAX_CHARS
    try:
        args = list(argv)
        for index, arg in enumerate(args):
            name, has_value, value = arg.partition("=")
            if name == "--max-chars":
                text = value if has_value else (args[index + 1] if index + 1 < len(args) else "")
                max_chars = max(int(text), 200) if text.strip().isdigit() else MAX_CHARS
        line = hook_json(None, max_chars=max_chars)
    except Exception:  # hook_json does not raise; this guards the parsing above
        line = "{}"
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except Exception:  # the reader went away: nothing to tell it
        pass
    return 0
