"""The Stats view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/stats", "Stats")


def routes() -> list[BaseRoute]:
    return []
