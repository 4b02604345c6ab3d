"""The Usage view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/usage", "Usage")


def routes() -> list[BaseRoute]:
    return []
