"""Localhost security (docs/server.md): Host allowlist on every route, a token
for every mutation, Origin / Sec-Fetch-Site checks, no CORS, bounded bodies, an access log.

TODO(serve-core): the middleware. Until it lands nothing is checked.
"""

from __future__ import annotations

from starlette.middleware import Middleware

from agentkeep.server.context import ServerContext


def middleware(ctx: ServerContext) -> list[Middleware]:
    return []
