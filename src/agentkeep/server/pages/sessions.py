"""The Sessions views: the list (filters, and a search of what was said), a session's
transcript, and its "direct from store" view.

- ``/sessions``: sessions newest first, ``LIST_LIMIT`` a page, filtered by status, source,
  agent (name or id) and ``since`` (``2h``, ``7d`` or an ISO date, as ``--since``); an
  "older" link pages on with the API's keyset cursor (``?cursor=``, the last id shown);
  ``q`` searches the messages (Store.search, kind ``message``) instead.
- ``/sessions/{id}``: the transcript (TranscriptService) as turns: text through
  markdown-it-py with raw HTML off, images off and links only to http(s); tool calls folded
  (``<details>``) with their input and result, failures marked; thinking folded; subagent
  sessions nested under the call that spawned them; the session's usage and counters, and
  whether it can be resumed (Store.resume_plan).
- ``/sessions/{id}/raw``: each entry's stored text in a ``<pre>`` whose text content is
  exactly the stored string, control characters included (a carriage return is written
  as ``&#13;``, which the HTML parser would otherwise turn into a line feed).

Stored text is hostile: it reaches the page only through Jinja's autoescaping or through
markdown-it (which escapes everything when ``html`` is off); nothing stored is marked safe.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import AgentkeepError, InvalidInput
from agentkeep.server.api_input import cursor, encode_cursor, whole_id
from agentkeep.server.context import context
from agentkeep.server.dashboard import render

NAV: tuple[str, str] | None = ("/sessions", "Sessions")
LIST_LIMIT = 100
SEARCH_LIMIT = 50
# Subagents nest this deep in one page; deeper ones are links.
NEST_DEPTH = 3
# Search highlight marks: control characters, which snippets never contain.
_MARKS = ("\x02", "\x03")
SESSION_STATUSES = ("running", "idle", "ended", "failed", "interrupted")


def routes() -> list[BaseRoute]:
    return [
        Route("/sessions", session_list, methods=["GET"]),
        Route("/sessions/{session_id:int}", transcript_page, methods=["GET"]),
        Route("/sessions/{session_id:int}/raw", raw_page, methods=["GET"]),
    ]


# -- the list ---------------------------------------------------------------------------


def session_list(request: Request) -> Response:
    store = context(request).store()
    query = request.query_params
    filters = {k: query.get(k, "").strip() for k in ("status", "source", "agent", "since", "q")}
    found: dict[str, Any] = {"filters": filters, "statuses": SESSION_STATUSES, "limit": LIST_LIMIT}
    try:
        from agentkeep.timeutil import parse_since

        since = parse_since(filters["since"] or None)
        if filters["q"]:
            found["hits"] = _search(store, filters["q"], since)
        else:
            agent_id = None
            if filters["agent"]:
                wanted = filters["agent"]
                # As GET /api/v1/agents/{id-or-name}: digits are an id, checked (² is a 400).
                agent_id = store.get_agent(
                    whole_id(wanted, "agent") if wanted.isdigit() else wanted
                ).id
            before = cursor(request, (int,))
            shown = store.list_sessions(
                status=filters["status"] or None,
                source=filters["source"] or None,
                agent_id=agent_id,
                since=since,
                limit=LIST_LIMIT + 1,
                before_id=before[0] if before else None,
            )
            found["sessions"] = shown[:LIST_LIMIT]
            found["paged"] = before is not None
            found["newest_url"] = _url(request.url.remove_query_params("cursor"))
            if len(shown) > LIST_LIMIT:
                older = encode_cursor([shown[LIST_LIMIT - 1].id])
                found["older_url"] = _url(request.url.include_query_params(cursor=older))
    except AgentkeepError as failure:
        found["error"] = failure.shown()
        return render(request, "sessions.html", found, status=failure.http_status)
    return render(request, "sessions.html", found)


def _url(url: Any) -> str:
    """A link to this page with other parameters: its path and query, no origin."""
    return f"{url.path}?{url.query}" if url.query else str(url.path)


@dataclass(frozen=True)
class Hit:
    hit: Any
    parts: list[tuple[str, bool]]  # the snippet: (text, is it a match)
    session: Any


def _search(store: Any, text: str, since: str | None) -> list[Hit]:
    hits = store.search(text, kinds=["message"], since=since, limit=SEARCH_LIMIT, highlight=_MARKS)
    sessions: dict[int, Any] = {}
    for hit in hits:
        if hit.session_id is not None and hit.session_id not in sessions:
            sessions[hit.session_id] = store.get_session(hit.session_id)
    return [Hit(hit, _marked(hit.snippet), sessions.get(hit.session_id)) for hit in hits]


def _marked(snippet: str) -> list[tuple[str, bool]]:
    parts: list[tuple[str, bool]] = []
    for n, piece in enumerate(snippet.split(_MARKS[0])):
        match, _, rest = piece.partition(_MARKS[1]) if n else ("", "", piece)
        if match:
            parts.append((match, True))
        if rest:
            parts.append((rest, False))
    return parts


# -- the transcript ---------------------------------------------------------------------


@dataclass
class Item:
    """One shown entry of a turn. ``kind``: text, thinking, tool, summary, event, raw,
    system, hidden (text the capture policy did not keep)."""

    kind: str
    entry: Any
    html: Markup | None = None
    text: str = ""
    failed: bool = False
    summary: str = ""
    tool_input: str = ""
    result: Any = None
    child: Nested | None = None


@dataclass
class Turn:
    speaker: str  # User, Assistant, Tool, System
    at: str | None
    model: str | None
    items: list[Item] = field(default_factory=list)


@dataclass
class Nested:
    """A subagent session under the call that spawned it (``turns`` None: not expanded)."""

    session: dict[str, Any]
    turns: list[Turn] | None
    unlinked: list[Nested] = field(default_factory=list)


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")  # a stored image URL would be fetched by every viewer
    md.validateLink = _http_link  # type: ignore[method-assign]  # its documented hook

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        result: str = renderer.renderToken(tokens, idx, options, env)
        return result

    md.add_render_rule("link_open", link_open)
    return md


def _http_link(url: str) -> bool:
    """Links only to http(s): a ``javascript:`` (or data:, file:…) link stays text."""
    return url.strip().lower().startswith(("http://", "https://"))


def markdown(text: str) -> Markup:
    """``text`` as HTML: markdown-it with raw HTML off escapes every character of it."""
    return Markup(_markdown().render(text))


def _pretty(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return text


def _speaker(entry: Any) -> str:
    if entry.kind in ("summary", "event", "raw") or entry.role == "system":
        return "System"
    if entry.kind == "tool_result":
        return "Tool"
    return "User" if entry.role == "user" else "Assistant"


def turns(store: Any, transcript: Any, depth: int = 0) -> tuple[list[Turn], list[Nested]]:
    """The transcript's entries as turns of one speaker (an assistant response's blocks
    under one turn), tool results under their calls; and the subagent sessions no call is
    known to have spawned."""
    entries = transcript.entries
    calls = {e.tool_use_id for e in entries if e.kind == "tool_use" and e.tool_use_id}
    results: dict[str, Any] = {}
    for entry in entries:
        if entry.kind == "tool_result" and entry.tool_use_id in calls:
            known = results.get(entry.tool_use_id)
            if known is None or (entry.is_error and not known.is_error):
                results[entry.tool_use_id] = entry
    children = {c["id"]: c for c in transcript.children}
    shown: list[Turn] = []
    group: tuple[str, str | None] | None = None
    for entry in entries:
        if entry.kind == "tool_result" and entry.tool_use_id in calls:
            continue  # shown under its call
        speaker = _speaker(entry)
        key = entry.message_key
        if (
            group is None
            or not shown
            or group[0] != speaker
            or speaker == "System"
            or (key is not None and group[1] is not None and key != group[1])
        ):
            shown.append(Turn(speaker, entry.at, entry.model if speaker == "Assistant" else None))
            group = (speaker, key)
        elif key is not None and group[1] is None:
            group = (speaker, key)
        shown[-1].items.append(_item(store, entry, results, children, depth))
    unlinked = [
        _nested(store, child, depth) for child in transcript.children if not child["tool_use_id"]
    ]
    return shown, unlinked


def _item(
    store: Any, entry: Any, results: dict[str, Any], children: dict[int, Any], depth: int
) -> Item:
    from agentkeep.services.transcripts import clean, one_line, tool_summary

    kind = entry.kind
    if kind in ("tool_use", "tool_result"):
        result = results.get(entry.tool_use_id or "") if kind == "tool_use" else entry
        failed = entry.is_error or (result is not None and result.is_error)
        child = None
        if entry.child_session_id is not None and entry.child_session_id in children:
            child = _nested(store, children[entry.child_session_id], depth)
        return Item(
            "tool",
            entry,
            failed=failed,
            summary=tool_summary(entry) if kind == "tool_use" else "result",
            tool_input=_pretty(entry.text) if kind == "tool_use" else "",
            result=result,
            child=child,
        )
    if entry.text is None and kind in ("text", "thinking"):
        return Item("hidden", entry)
    text = clean(entry.text or "")
    if kind == "thinking":
        return Item("thinking", entry, html=markdown(text), text=text)
    if kind in ("summary", "raw"):
        return Item(kind, entry, text=text)
    if kind == "event":
        return Item("event", entry, text=one_line(text) or entry.event or "event")
    if entry.role == "system":
        return Item("system", entry, text=text, summary=one_line(text) or "system")
    return Item("text", entry, html=markdown(text), text=text, failed=entry.is_error)


def _nested(store: Any, child: dict[str, Any], depth: int) -> Nested:
    if depth + 1 >= NEST_DEPTH:
        return Nested(child, None)
    inner, unlinked = turns(store, store.transcript(child["id"]), depth + 1)
    return Nested(child, inner, unlinked)


def _session_or_404(store: Any, session_id: int) -> Any:
    return store.get_session(session_id)  # NotFound -> 404


def transcript_page(request: Request) -> Response:
    store = context(request).store()
    session_id = request.path_params["session_id"]
    session = _session_or_404(store, session_id)
    transcript = store.transcript(session_id)
    shown, unlinked = turns(store, transcript)
    plan = store.resume_plan(session_id)
    entries = transcript.entries
    counted = {
        "entries": len(entries),
        "tool_calls": sum(1 for e in entries if e.kind == "tool_use"),
        "failures": sum(1 for e in entries if e.is_error),
        "input_tokens": sum(e.input_tokens for e in entries),
        "output_tokens": sum(e.output_tokens for e in entries),
    }
    return render(
        request,
        "transcript.html",
        {
            "session": session,
            "record": transcript.session,
            "origin": transcript.origin,
            "turns": shown,
            "unlinked": unlinked,
            "plan": plan,
            "counted": counted,
            "resume_command": shlex.join(plan.command) if plan.command else None,
        },
    )


# -- direct from store ------------------------------------------------------------------


def raw_text(text: str) -> Markup:
    """``text`` escaped for a ``<pre>`` so that its text content is ``text`` exactly: the
    HTML parser keeps every other character as written but turns a carriage return into a
    line feed, so each is written as a character reference."""
    if "\x00" in text:  # the parser drops U+0000; the store never keeps one (redaction)
        raise InvalidInput("a stored text holds U+0000, which HTML cannot carry")
    return Markup(str(escape(text)).replace("\r", "&#13;"))


def raw_page(request: Request) -> Response:
    store = context(request).store()
    session_id = request.path_params["session_id"]
    session = _session_or_404(store, session_id)
    transcript = store.transcript(session_id)
    entries = [
        (entry, raw_text(entry.text) if entry.text is not None else None)
        for entry in transcript.entries
    ]
    return render(
        request,
        "transcript_raw.html",
        {"session": session, "origin": transcript.origin, "entries": entries},
    )
