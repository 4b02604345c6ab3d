"""The event ledger: custom events, queries, live following and undo.

Every mutation in agentkeep writes its event in the same transaction (see ``_core.Tx.emit``);
this module reads the ledger and lets callers append their own events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from agentkeep._core import Json, Tx, limit_clause
from agentkeep.errors import Busy, Conflict, InvalidInput, NotFound
from agentkeep.models import Event, Written
from agentkeep.services.base import Service
from agentkeep.services.tasks import check_parent

# Entities whose change events carry {field: [old, new]} and can be undone:
# entity -> (table, event kinds, the only columns undo may write).
REVERSIBLE: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    "task": (
        "tasks",
        frozenset({"task.updated", "task.claimed"}),
        frozenset(
            {"title", "body", "status", "priority", "assignee", "labels", "parent_id", "closed_at"}
        ),
    ),
    "agent": (
        "agents",
        frozenset({"agent.updated"}),
        frozenset({"status", "role", "worktree_id", "kind", "pid", "host"}),
    ),
    "worktree": (
        "worktrees",
        frozenset({"worktree.leased", "worktree.released"}),
        frozenset({"lease_owner", "lease_expires_at"}),
    ),
}
# Event kinds agentkeep writes itself; callers may not forge them (undo trusts them).
RESERVED_PREFIXES = tuple(
    f"{noun}."
    for noun in ("project", "task", "note", "session", "agent", "worktree", "metric", "integration")
)
_JSON_COLUMNS = {"labels", "settings", "data"}
FOLLOW_OUTAGE_SECONDS = 60.0
"""How long follow() keeps reading again after its reads fail with Busy (a lost
connection) before it raises."""


class EventService(Service):
    def record_event(
        self,
        kind: str,
        *,
        entity: str = "custom",
        entity_id: int | None = None,
        data: Any = None,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> Written[Event]:
        """Append a caller-defined event to the ledger (one durable transaction)."""
        _check_caller_event(kind, entity_id)
        data = {} if data is None else data
        transaction = self.transaction(actor=actor)
        prepared = transaction.tx.prepare_json("data", data)  # outside the writers' queue
        with transaction as tx:
            existing = tx.existing_for_key(idempotency_key, "event")
            if existing is not None:
                return Written(self._event(tx, existing), "already_exists")
            event = tx.emit(entity, entity_id, kind, data, prepared=prepared)
            tx.remember_key(idempotency_key, "event", event.seq)
            return Written(event, "created")

    def record_events(
        self, events: Sequence[Mapping[str, Any]], *, actor: str | None = None
    ) -> int:
        """Append many events in one transaction; returns the last seq.

        Each mapping has ``kind`` and optionally ``entity``, ``entity_id``, ``data``.
        """
        for event in events:
            _check_caller_event(event.get("kind"), event.get("entity_id"))
        with self.transaction(actor=actor) as tx:
            bound_actor = tx.bind("actor", tx.actor)
            docs = tx.bind_json_batch("data", [event.get("data") or {} for event in events])
            bind = _BatchBinds(tx).bind
            rows = [
                (
                    tx.now,
                    bound_actor,
                    bind("entity", event.get("entity", "custom")),
                    event.get("entity_id"),
                    bind("kind", event["kind"]),
                    doc,
                )
                for event, doc in zip(events, docs, strict=True)
            ]
            tx.conn.executemany(
                "INSERT INTO events (at, actor, entity, entity_id, kind, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            tx.record_redactions("events", None)
            row = tx.one("SELECT max(seq) FROM events")
            return int(row[0]) if row and row[0] is not None else 0

    def events(
        self,
        *,
        after: int = 0,
        entity: str | None = None,
        entity_id: int | None = None,
        kind: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Events with ``seq > after``, oldest first (or newest first), filtered."""
        where: list[str] = ["seq > ?"]
        params: list[Any] = [after]
        if entity is not None:
            where.append("entity = ?")
            params.append(entity)
        if entity_id is not None:
            where.append("entity_id = ?")
            params.append(entity_id)
        if kind is not None:
            if kind.endswith("*"):
                where.append("kind >= ? AND kind < ?")
                prefix = kind[:-1]
                params += [prefix, prefix + "\U0010ffff"]
            else:
                where.append("kind = ?")
                params.append(kind)
        if since is not None:
            # A seek, not a scan: the first seq at or after `since` comes from the index
            # on `at` (its matching entries only, no row read); the rows are then read
            # from there by seq. `at >= ?` stays, so the answer is exact even where `at`
            # does not follow seq (a clock set back). `seq + 0`: a bare min(seq) would
            # walk the table from its first row until `at` matches.
            first = self._row("SELECT min(seq + 0) FROM events WHERE at >= ?", (since,))
            if first is None or first[0] is None:
                return []
            params[0] = max(after, int(first[0]) - 1)  # one bound on seq: the scan's start
            where.append("at >= ?")
            params.append(since)
        order = "DESC" if newest_first else ""
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY seq {order}"
        return [Event.from_row(r) for r in self._rows(sql + limit_clause(limit), params)]

    def last_seq(self) -> int:
        return self._count("SELECT max(seq) FROM events")

    def follow(
        self,
        *,
        after: int | None = None,
        entity: str | None = None,
        entity_id: int | None = None,
        kind: str | None = None,
        poll_interval: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[Event]:
        """Yield events as other processes commit them (from ``after``; default: now on).

        The backend's watcher (``backend.follow``; SQLite polls ``PRAGMA data_version`` on a
        dedicated connection) says when another connection may have committed, every
        ``poll_interval`` seconds (``events.follow_poll_ms``); only then are the new events
        read, in batches, until none is left. An idle follower holds no read transaction.
        ``stop()`` returning True ends the loop. The starting point is taken when
        ``follow()`` is called, not at the first ``next()``, so nothing committed in
        between is skipped. A read that fails with :class:`Busy` (the connection to a
        database server was lost) is tried again from the same event after the watcher's
        next wait, for up to ``FOLLOW_OUTAGE_SECONDS``.
        """
        start = self.last_seq() if after is None else after
        return self._follow_from(
            start,
            entity=entity,
            entity_id=entity_id,
            kind=kind,
            poll_interval=poll_interval,
            stop=stop,
        )

    def _follow_from(
        self,
        cursor: int,
        *,
        entity: str | None,
        entity_id: int | None,
        kind: str | None,
        poll_interval: float | None,
        stop: Callable[[], bool] | None,
    ) -> Iterator[Event]:
        interval = (
            poll_interval
            if poll_interval is not None
            else self.config["events.follow_poll_ms"] / 1000
        )
        watch = self.backend.follow.watch(self.db_path, self.config, read_only=self._conn.read_only)
        unread = False  # a read failed: read again even if the watcher reports nothing
        failing_since: float | None = None
        with watch as watcher:
            while stop is None or not stop():
                if not watcher.changed(interval) and not unread:  # waits when idle
                    continue
                unread = False
                while True:
                    try:
                        batch = self.events(
                            after=cursor, entity=entity, entity_id=entity_id, kind=kind, limit=500
                        )
                    except Busy:
                        # The connection was lost (a database server restarting): read
                        # again after the watcher's next wait, from the same cursor, so
                        # nothing is skipped; give up after FOLLOW_OUTAGE_SECONDS.
                        now = time.monotonic()
                        failing_since = failing_since or now
                        if now - failing_since > FOLLOW_OUTAGE_SECONDS:
                            raise
                        unread = True
                        break
                    failing_since = None
                    for event in batch:
                        cursor = event.seq
                        yield event
                    if len(batch) < 500:
                        break
                # Our own reads may have raced a commit: the loop checks again (without
                # waiting) before it waits.

    def undo(self, entity: str, entity_id: int) -> Event:
        """Revert the last reversible change to an entity; returns the undo event.

        Reversible: field updates of tasks, agents and worktree leases. Undo events point
        at what they reverted (``undoes``), and repeated undos walk further back.
        """
        if entity not in REVERSIBLE:
            raise InvalidInput(
                f"changes to a {entity} cannot be undone",
                hint=f"undo works on: {', '.join(REVERSIBLE)}",
            )
        table, kinds, columns = REVERSIBLE[entity]
        marks = ", ".join("?" for _ in kinds)
        with self.transaction() as tx:
            row = tx.one(
                f"SELECT * FROM events e WHERE entity = ? AND entity_id = ? AND kind IN ({marks})"
                " AND undoes IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.seq)"
                " ORDER BY seq DESC LIMIT 1",
                (entity, entity_id, *sorted(kinds)),
            )
            if row is None:
                raise NotFound(f"{entity} {entity_id} has no change left to undo")
            target: Event = Event.from_row(row)
            current = tx.one(f"SELECT * FROM {table} WHERE id = ?", (entity_id,))
            if current is None:
                raise NotFound(f"{entity} {entity_id} does not exist")
            restore: dict[str, Any] = {}
            changes = target.data if isinstance(target.data, dict) else {}
            if (
                not changes
                or not set(changes) <= columns
                or not all(isinstance(pair, list) and len(pair) == 2 for pair in changes.values())
            ):
                raise Conflict(f"event {target.seq} does not describe a change undo can revert")
            for column, (old, new) in changes.items():
                now_value = current[column]
                if column in _JSON_COLUMNS and isinstance(now_value, str):
                    now_value = json.loads(now_value)
                if now_value != new:
                    raise Conflict(
                        f"{entity} {entity_id}'s {column} changed after event {target.seq}; "
                        "undo would overwrite that change",
                        hint="`agentkeep events list --entity` shows its history",
                    )
                restore[column] = Json(old) if column in _JSON_COLUMNS else old
            if entity == "task" and restore.get("parent_id") is not None:
                check_parent(tx, entity_id, restore["parent_id"])  # no cycles via undo
            restore["updated_at"] = tx.now
            tx.update(table, entity_id, restore)
            reverted = {column: [new, old] for column, (old, new) in target.data.items()}
            return tx.emit(entity, entity_id, f"{entity}.updated", reverted, undoes=target.seq)

    def _event(self, tx: Tx, seq: int) -> Event:
        row = tx.one("SELECT * FROM events WHERE seq = ?", (seq,))
        if row is None:
            raise NotFound(f"event {seq} does not exist")
        return Event.from_row(row)  # type: ignore[no-any-return]


class _BatchBinds:
    """:meth:`Tx.bind` for the kinds and entities of a batch, each distinct text bound
    once: a text the boundary let through unchanged, with no redaction, is the same for
    every event that repeats it (a batch repeats a few kinds a thousand times)."""

    __slots__ = ("memo", "pending", "tx")

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.pending = tx.boundary.pending
        self.memo: dict[tuple[str, str], str] = {}

    def bind(self, column: str, value: Any) -> Any:
        if type(value) is not str:
            return self.tx.bind(column, value)
        found = self.memo.get((column, value))
        if found is not None:
            return found
        before = len(self.pending)
        bound = self.tx.bind(column, value)
        if bound == value and len(self.pending) == before:
            self.memo[column, value] = bound
        return bound


def _check_caller_event(kind: Any, entity_id: Any) -> None:
    if not isinstance(kind, str) or not kind.strip() or len(kind) > 200:
        raise InvalidInput("an event needs a kind (short text such as 'build.finished')")
    if kind.startswith(RESERVED_PREFIXES):
        raise InvalidInput(
            f"event kinds starting with {kind.split('.')[0]}. are agentkeep's own",
            hint="use your own prefix, such as 'ci.passed' (entity='task' links it to a task)",
        )
    if entity_id is not None and (isinstance(entity_id, bool) or not isinstance(entity_id, int)):
        raise InvalidInput(f"entity_id must be a whole number, not {entity_id!r}")
