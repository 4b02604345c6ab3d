"""The dashboard at ``/``: server-rendered pages (the board first), no build step.

Each view is a module of :mod:`agentkeep.server.pages` with a ``routes()``; they render
templates/ (Jinja2, autoescaped: agent output is hostile and must never run in the page)
through :func:`render`, and serve the vendored scripts in static/ (static/VENDORED.md says
which, at which version and licence).
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
# The views, in the order of the navigation bar. Each module has routes() and NAV
# ((path, label) or None when it is not in the bar).
PAGES = (
    "board",
    "sessions",
    "live",
    "activity",
    "search",
    "docs",
    "queues",
    "usage",
    "stats",
    "fleet",
)


def _pages() -> list[Any]:
    return [importlib.import_module(f"agentkeep.server.pages.{name}") for name in PAGES]


@cache
def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=HERE / "templates")
    assert found.env.autoescape, "templates must autoescape: stored text is hostile"
    found.env.globals["nav"] = [page.NAV for page in _pages() if page.NAV]
    return found


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page from templates/``name`` (it extends base.html)."""
    return templates().TemplateResponse(request, name, context, status_code=status)


def routes() -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for page in _pages():
        found += page.routes()
    found.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    return found
