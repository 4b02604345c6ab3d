"""The Activity view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/activity", "Activity")


def routes() -> list[BaseRoute]:
    return []
