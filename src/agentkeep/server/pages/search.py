"""The Search view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/search", "Search")


def routes() -> list[BaseRoute]:
    return []
