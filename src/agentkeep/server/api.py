"""``/api/v1``: reads and writes of every noun, in the CLI's JSON shapes.

TODO(serve-api): every noun. The one route below shows the pattern: a plain ``def``
endpoint (Starlette runs it in a worker thread), the store from the context, the shapes
from :mod:`.respond`; an ``AgentkeepError`` raised anywhere becomes the CLI's error shape
with its HTTP status (server/app.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.server import respond
from agentkeep.server.context import context


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/tasks", list_tasks, methods=["GET"])]


def list_tasks(request: Request) -> Response:
    store = context(request).store()
    return respond.rows(request, store.list_tasks())
