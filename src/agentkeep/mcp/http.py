"""The MCP tools mounted on ``agentkeep serve`` at ``/mcp``.

TODO(mcp): mount the SDK's streamable HTTP app (stateless) when the ``mcp`` extra is
installed; nothing when it is not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from agentkeep.server.context import ServerContext


def routes(ctx: ServerContext) -> list[BaseRoute]:
    return []


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[None]:
    yield
