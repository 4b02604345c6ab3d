"""The dashboard at ``/``: server-rendered pages (the board first), no build step.

TODO(serve-dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
