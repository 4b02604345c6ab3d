"""Live streams: ``/api/v1/events/stream`` (SSE, resumable by event sequence number) and
the live log tail of a running session.

TODO(serve-live).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[None]:
    """What runs while the server does (the event follower that feeds every stream)."""
    yield
