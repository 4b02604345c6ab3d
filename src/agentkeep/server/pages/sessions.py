"""The Sessions view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/sessions", "Sessions")


def routes() -> list[BaseRoute]:
    return []
