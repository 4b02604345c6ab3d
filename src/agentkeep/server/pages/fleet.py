"""The Worktrees & agents view.

TODO(dashboard).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

NAV: tuple[str, str] | None = ("/fleet", "Worktrees & agents")


def routes() -> list[BaseRoute]:
    return []
