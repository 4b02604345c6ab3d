"""The Board view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/", "Board")


def routes() -> list[BaseRoute]:
    return []
