"""The Worktrees & agents view: worktrees with their lease and owner, agents with their
status and last heartbeat; dead agents and expired leases are marked.

Reads only: the page does not mark agents dead itself (``agentkeep agents`` and the
doctor do); it shows what the store says.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.server.context import context
from agentkeep.server.dashboard import render
from agentkeep.timeutil import utc_now

NAV: tuple[str, str] | None = ("/fleet", "Worktrees & agents")
LIMIT = 500


def routes() -> list[BaseRoute]:
    return [Route("/fleet", fleet_page, methods=["GET"])]


def fleet_page(request: Request) -> Response:
    store = context(request).store()
    now = utc_now()
    worktrees = store.list_worktrees(status=None, limit=LIMIT)
    agents = store.list_agents(limit=LIMIT)
    by_worktree: dict[int, list[Any]] = {}
    for agent in agents:
        if agent.worktree_id is not None:
            by_worktree.setdefault(agent.worktree_id, []).append(agent)
    rows = [
        {
            "worktree": tree,
            "agents": by_worktree.get(tree.id, []),
            "expired": tree.lease_expires_at is not None and tree.lease_expires_at < now,
        }
        for tree in worktrees
    ]
    dead = sum(1 for agent in agents if agent.status == "dead")
    return render(
        request,
        "fleet.html",
        {
            "worktrees": rows,
            "agents": agents,
            "dead": dead,
            "names": {a.id: a.name for a in agents},
        },
    )
