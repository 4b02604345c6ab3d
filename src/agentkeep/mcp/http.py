"""The MCP tools mounted on ``agentkeep serve`` at ``/mcp``: the SDK's streamable HTTP
transport, stateless (no ``Mcp-Session-Id``, no session store: the hijack class of
CVE-2026-52869 does not apply) with plain JSON responses (no SSE stream to hold shutdown).
Only POST is routed: GET (a server-to-client SSE stream) and DELETE (end a session) are a
405.

The route sits behind the server's own middleware (server/security.py: the Host check and
the token every mutation needs; an MCP call is a POST). The SDK's DNS-rebinding check is
kept on as well, with the hosts and origins the server answers.

Without the ``mcp`` extra installed, :func:`routes` returns nothing and ``/mcp`` is a 404.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from agentkeep.server.context import ServerContext

PATH = "/mcp"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def available() -> bool:
    """Whether the ``mcp`` extra (the official SDK) is installed."""
    import importlib.util

    return importlib.util.find_spec("mcp") is not None


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """The ``/mcp`` route for ``ctx``'s store (none without the SDK)."""
    if not available():
        return []
    from mcp.server.transport_security import TransportSecuritySettings

    from agentkeep.mcp.server import build_server

    hosts = set(ctx.hosts) or set(LOOPBACK)
    allowed_hosts = sorted({*hosts, *(f"{h}:*" for h in hosts if not _has_port(h))})
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=sorted(ctx.origins),
    )
    inner = build_server(ctx, keep_logging=True).streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        transport_security=security,
    )
    # The SDK's app is one route plus a lifespan; the route joins ours and
    # :func:`running` runs the lifespan's session manager inside serve's. POST only: in
    # stateless mode GET would hold an endless SSE stream open (no token needed on
    # loopback) and DELETE has no session to end, so both are a 405.
    return [
        Route(PATH, endpoint=route.endpoint, methods=["POST"])
        for route in inner.routes
        if isinstance(route, Route) and route.path == PATH
    ]


def _has_port(host: str) -> bool:
    return host.rsplit("]", 1)[-1].count(":") == 1


def _session_manager(app: Starlette) -> Any:
    for route in app.routes:
        if isinstance(route, Route) and route.path == PATH:
            return getattr(route.app, "session_manager", None) or getattr(
                route.endpoint, "session_manager", None
            )
    return None


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[None]:
    """The SDK's session manager (its task group) for as long as ``app`` runs."""
    manager = _session_manager(app)
    if manager is None:
        yield
        return
    async with manager.run():
        yield
