"""The ASGI application: every route, behind the security middleware."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep import _version
from agentkeep.errors import AgentkeepError
from agentkeep.ops.docwatch import refreshing_in_background
from agentkeep.ops.sync import draining_in_background
from agentkeep.server import api, dashboard, live, respond, security
from agentkeep.server.context import ServerContext, StoreLeases, context


def create_app(ctx: ServerContext) -> Starlette:
    """The server for ``ctx``'s store. ``uvicorn.Server`` runs it (server/process.py);
    tests run it on a free port the same way (tests/helpers/server.py)."""
    from agentkeep.mcp import http as mcp_http

    routes: list[BaseRoute] = [
        Route("/-/health", health),
        *api.routes(),
        *live.routes(),
        *mcp_http.routes(ctx),
        *dashboard.routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(live.running(app))
            await stack.enter_async_context(mcp_http.running(app))
            # On PostgreSQL the hook only spools: the server sends the deliveries.
            stack.enter_context(draining_in_background(ctx.lease, ctx.store_dir))
            # Documents edited with any editor are indexed within about a second.
            stack.enter_context(refreshing_in_background(ctx.lease, ctx.store_dir))
            try:
                yield
            finally:
                running = getattr(app.state, "operations", None)
                if running is not None:  # a bounded wait; what is left is logged
                    await anyio.to_thread.run_sync(running.shutdown)
                ctx.close()

    app = Starlette(
        routes=routes,
        # Outermost: a request's stores go back to the pool after everything else.
        middleware=[Middleware(StoreLeases, ctx=ctx), *security.middleware(ctx)],
        exception_handlers={
            AgentkeepError: _agentkeep_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def health(request: Request) -> Response:
    """Anonymous liveness: the version, and whether the store opens. No data."""
    store = context(request).store()
    return respond.json_response(
        {
            "schema_version": respond.SCHEMA_VERSION,
            "ok": True,
            "version": _version.__version__,
            "store_schema": store.schema_status().db_schema_version,
        }
    )


async def _agentkeep_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AgentkeepError)
    return respond.error(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return respond.problem(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug: the client gets the error shape without the exception's text (which could
    # echo stored data); the server's log has the traceback.
    return respond.problem(500, "error", "internal error; the server's log has the details")
