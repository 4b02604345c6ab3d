"""Agents: running or past coding agents, their process, worktree and liveness."""

from __future__ import annotations

import os
from typing import Any

from agentkeep import lifecycle
from agentkeep._core import UNSET, Tx, check_identifier, diff, limit_clause
from agentkeep.errors import InvalidInput
from agentkeep.models import Agent, Written
from agentkeep.services.base import Service

STATUSES = ("active", "idle", "done", "dead")


def _hostname() -> str:
    import socket

    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class AgentService(Service):
    def register_agent(
        self,
        name: str,
        *,
        kind: str = "custom",
        role: str | None = None,
        pid: int | None = None,
        host: str | None = None,
        worktree_id: int | None = None,
    ) -> Written[Agent]:
        """Create the agent ``name``, or refresh it (status active, new pid) if it exists."""
        check_identifier("the agent name", name)
        if pid is not None and host is None:
            host = _hostname()
        with self.transaction() as tx:
            self._require(worktree_id=worktree_id)
            row = tx.one("SELECT * FROM agents WHERE name = ?", (name,))
            if row is None:
                agent_id = tx.insert(
                    "agents",
                    {
                        "name": name,
                        "kind": kind,
                        "role": role,
                        "status": "active",
                        "pid": pid,
                        "host": host,
                        "worktree_id": worktree_id,
                        "heartbeat_at": tx.now,
                        "created_at": tx.now,
                        "updated_at": tx.now,
                    },
                )
                agent = self._stored_agent(agent_id)
                tx.emit("agent", agent_id, "agent.created", agent.to_dict())
                return Written(agent, "created")
            before: Agent = Agent.from_row(row)
            wanted = {"kind": kind, "status": "active", "pid": pid, "host": host}
            if role is not None:
                wanted["role"] = role
            if worktree_id is not None:
                wanted["worktree_id"] = worktree_id
            agent = self._apply_agent(tx, before, wanted, heartbeat=True)
            return Written(agent, "updated" if agent != before else "unchanged")

    def update_agent(
        self,
        agent: int | str,
        *,
        status: Any = UNSET,
        role: Any = UNSET,
        worktree_id: Any = UNSET,
        heartbeat: bool = False,
    ) -> Agent:
        changes: dict[str, Any] = {}
        if status is not UNSET:
            if status not in STATUSES:
                raise InvalidInput(
                    f"unknown agent status {status!r}", hint=f"use one of: {', '.join(STATUSES)}"
                )
            changes["status"] = status
        if role is not UNSET:
            changes["role"] = role
        if worktree_id is not UNSET:
            changes["worktree_id"] = worktree_id
        with self.transaction() as tx:
            before = self._stored_agent(agent)
            self._require(worktree_id=changes.get("worktree_id"))
            return self._apply_agent(tx, before, changes, heartbeat=heartbeat)

    def get_agent(self, agent: int | str) -> Agent:
        """An agent by id or by name, its status as readers see it (:meth:`list_agents`)."""
        stored = self._stored_agent(agent)
        [shown] = self._agents(" WHERE id = ?", [stored.id])
        return shown

    def list_agents(
        self, *, status: str | None = None, limit: int | None = None, after_id: int | None = None
    ) -> list[Agent]:
        """Agents by id. Their status is the stored one with the idle rule applied on read
        (as `status` counts them): an agent stored active whose sessions are all idle or
        ended shows idle (or done) before a writer ends those sessions; ``status``
        filters on what is shown. ``after_id``: only agents after that one (keyset paging)."""
        conditions: list[str] = []
        params: list[Any] = []
        if after_id is not None:
            conditions.append("id > ?")
            params.append(after_id)
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(
                    f"unknown agent status {status!r}", hint=f"use one of: {', '.join(STATUSES)}"
                )
            conditions.append("shown = ?")
            params.append(status)
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        return self._agents(where + " ORDER BY id" + limit_clause(limit), params)

    def _agents(self, tail: str, params: list[Any]) -> list[Agent]:
        """Agents with their shown status (``tail``: a WHERE on ``shown``/columns, ORDER…)."""
        cutoff = lifecycle.idle_cutoff(int(self.config["sessions.idle_minutes"]))
        rows = self._rows(
            f"SELECT * FROM (SELECT agents.*, {lifecycle.AGENT_STATUS_SQL} AS shown"
            " FROM agents) AS agents" + tail,
            [cutoff, *params],
        )
        return [
            Agent.from_row({**dict(row), "status": row["shown"]})  # type: ignore[arg-type]
            for row in rows
        ]

    def _stored_agent(self, agent: int | str) -> Agent:
        """The agent's row as stored (what writes compare against and record)."""
        column = "id" if isinstance(agent, int) else "name"
        return Agent.from_row(self._record("agent", agent, column=column))  # type: ignore[no-any-return]

    def mark_dead_agents(self) -> list[Agent]:
        """Mark dead the active/idle agents on this host whose process no longer exists."""
        host = _hostname()
        candidates = self._rows(
            "SELECT id, pid FROM agents WHERE status IN ('active', 'idle') "
            "AND pid IS NOT NULL AND host = ?",
            (host,),
        )
        dead = [row["id"] for row in candidates if not pid_alive(row["pid"])]
        marked = []
        for agent_id in dead:
            with self.transaction() as tx:
                before = self._stored_agent(agent_id)
                # Re-check inside the lock: it may have been re-registered meanwhile.
                if before.status in ("active", "idle") and not pid_alive(before.pid or 0):
                    marked.append(self._apply_agent(tx, before, {"status": "dead"}))
        return marked

    def _apply_agent(
        self, tx: Tx, before: Agent, changes: dict[str, Any], *, heartbeat: bool = False
    ) -> Agent:
        delta = diff(before.to_dict(), changes)
        if not delta and not heartbeat:
            return before
        values: dict[str, Any] = {k: changes[k] for k in delta}
        if heartbeat:
            values["heartbeat_at"] = tx.now
        values["updated_at"] = tx.now
        tx.update("agents", before.id, values)
        # A heartbeat alone is still a mutation, so it is an event too (kind agent.heartbeat).
        tx.emit("agent", before.id, "agent.updated" if delta else "agent.heartbeat", delta)
        return self.get_agent(before.id)
