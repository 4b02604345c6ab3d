"""The Search view: ``/search?q=`` across everything stored (Store.search, every kind).

Snippets come with each match between two control characters (the search service strips
control characters from stored text before it puts them in, so stored text cannot fake a
highlight); :func:`highlighted` escapes the snippet and only then turns the marks into
``<mark>``.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import InvalidInput
from agentkeep.server.context import context
from agentkeep.server.dashboard import render
from agentkeep.server.pages.activity import entity_url
from agentkeep.server.pages.docs import doc_url

NAV: tuple[str, str] | None = ("/search", "Search")
KINDS = ("message", "note", "task", "capture", "artifact", "doc", "output")
MARKS = ("\x02", "\x03")
LIMIT = 50
_MARKED = re.compile(re.escape(MARKS[0]) + "(.*?)" + re.escape(MARKS[1]), re.S)


def routes() -> list[BaseRoute]:
    return [Route("/search", search_page, methods=["GET"])]


def highlighted(snippet: str) -> Markup:
    """``snippet`` as HTML: escaped first, then each marked match in ``<mark>``; a stray
    mark (never expected) is dropped."""
    safe = str(escape(snippet))
    safe = _MARKED.sub(r"<mark>\1</mark>", safe)
    return Markup(safe.replace(MARKS[0], "").replace(MARKS[1], ""))  # escaped above


def hit_url(hit: Any) -> str | None:
    """Where a hit is shown: its session (the line of output, the message), else its
    task, else its own record."""
    if hit.kind == "task":
        return entity_url("task", hit.id)
    if hit.kind == "note":
        return entity_url("note", hit.id)
    if hit.kind == "doc" and hit.label:  # "namespace/name › heading"
        return doc_url(hit.label.split(" › ", 1)[0])
    if hit.session_id is not None:
        return entity_url("session", hit.session_id)
    if hit.kind == "artifact":
        return entity_url("artifact", hit.id)
    if hit.task_id is not None:
        return entity_url("task", hit.task_id)
    return None


def search_page(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()
    kind = request.query_params.get("kind") or ""
    if kind and kind not in KINDS:
        raise InvalidInput(f"unknown kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    hits: list[dict[str, Any]] = []
    problem = None
    if query:
        store = context(request).store()
        try:
            found = store.search(
                query, kinds=(kind,) if kind else KINDS, limit=LIMIT, highlight=MARKS
            )
        except InvalidInput as exc:  # a query the index cannot take: say why on the page
            problem = exc.message
            found = []
        hits = [
            {"hit": hit, "url": hit_url(hit), "snippet": highlighted(hit.snippet)} for hit in found
        ]
    return render(
        request,
        "search.html",
        {
            "q": query,
            "kind": kind,
            "kinds": KINDS,
            "hits": hits,
            "problem": problem,
            "limit": LIMIT,
        },
    )
