"""The Live view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/live", "Live")


def routes() -> list[BaseRoute]:
    return []
