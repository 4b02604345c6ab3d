"""Tasks: units of work with validated status transitions, dependencies and atomic claims."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agentkeep._core import UNSET, Json, Tx, diff, limit_clause
from agentkeep.errors import Conflict, InvalidInput
from agentkeep.lifecycle import TASK_READY_SQL
from agentkeep.models import Task, Written
from agentkeep.services.base import Service

STATUSES = ("open", "in_progress", "blocked", "done", "cancelled")

# status -> the statuses it may move to. Closed tasks can only be reopened.
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress", "blocked", "done", "cancelled"}),
    "in_progress": frozenset({"open", "blocked", "done", "cancelled"}),
    "blocked": frozenset({"open", "in_progress", "done", "cancelled"}),
    "done": frozenset({"open"}),
    "cancelled": frozenset({"open"}),
}
CLOSED = frozenset({"done", "cancelled"})
UPDATABLE = ("title", "body", "status", "priority", "assignee", "labels", "parent_id")


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise InvalidInput(
            f"unknown task status {status!r}",
            hint=f"use one of: {', '.join(STATUSES)}",
        )
    return status


def check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
        raise InvalidInput(
            f"priority must be a whole number from 0 (most urgent) to 4, not {priority!r}"
        )
    return priority


def check_labels(labels: Iterable[str]) -> list[str]:
    if isinstance(labels, str):
        raise InvalidInput("labels must be a list of names, not one string")
    out = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise InvalidInput(f"labels must be non-empty text, not {label!r}")
        if "\x00" in label:  # a JSON escape, but the label filter hands it to SQL as a raw NUL
            raise InvalidInput("a label contains a NUL byte, which agentkeep does not store")
        if label not in out:
            out.append(label)
    return out


def check_assignee(assignee: str | None) -> str | None:
    if assignee is not None and not isinstance(assignee, str):
        raise InvalidInput(f"an assignee is a name (text), not {assignee!r}")
    return assignee


def check_title(title: str) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("a task needs a non-empty title")
    return title


class TaskService(Service):
    def add_task(
        self,
        title: str,
        *,
        body: str = "",
        priority: int = 2,
        status: str = "open",
        assignee: str | None = None,
        labels: Sequence[str] = (),
        parent_id: int | None = None,
        depends_on: Sequence[int] = (),
        idempotency_key: str | None = None,
    ) -> Written[Task]:
        """Create a task. With ``idempotency_key``, a repeated call returns the first task."""
        values = {
            "title": check_title(title),
            "body": body,
            "status": check_status(status),
            "priority": check_priority(priority),
            "assignee": check_assignee(assignee),
            "labels": Json(check_labels(labels)),
            "parent_id": parent_id,
        }
        with self.transaction() as tx:
            existing = tx.existing_for_key(idempotency_key, "task")
            if existing is not None:
                return Written(self.get_task(existing), "already_exists")
            if parent_id is not None:
                self.get_task(parent_id)
            now = tx.now
            closed_at = now if status in CLOSED else None
            task_id = tx.insert(
                "tasks", {**values, "created_at": now, "updated_at": now, "closed_at": closed_at}
            )
            for dependency in depends_on:
                # Part of the created record (depends_on), not events of their own: a
                # follower must never see a dependency of a task it has not seen created.
                self._add_dep(tx, task_id, dependency, emit=False)
            tx.remember_key(idempotency_key, "task", task_id)
            task = self.get_task(task_id)
            tx.emit("task", task_id, "task.created", task.to_dict())
            return Written(task, "created")

    def get_task(self, task_id: int) -> Task:
        row = self._record("task", task_id)
        return _task_from(row, [r[0] for r in self._rows(_DEPS_SQL, (task_id,))])

    def list_tasks(
        self,
        *,
        status: str | Sequence[str] | None = None,
        assignee: str | None = None,
        label: str | None = None,
        limit: int | None = None,
        after: tuple[int, int] | None = None,
    ) -> list[Task]:
        """Tasks, most urgent first (``priority, id``). ``after``: only those after this
        ``(priority, id)`` in that order (keyset paging: stable while tasks are added)."""
        where: list[str] = []
        params: list[Any] = []
        if after is not None:
            where.append(_AFTER_SQL)
            params.extend([after[0], after[0], after[1]])
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                check_status(s)
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if assignee is not None:
            where.append("assignee = ?")
            params.append(assignee)
        if label is not None:
            where.append(self.backend.dialect.json_array_has("tasks.labels", "?"))
            params.append(label)
        sql = "SELECT * FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY priority, id" + limit_clause(limit)
        return self._with_deps(self._rows(sql, params))

    def update_task(
        self,
        task_id: int,
        *,
        title: Any = UNSET,
        body: Any = UNSET,
        status: Any = UNSET,
        priority: Any = UNSET,
        assignee: Any = UNSET,
        labels: Any = UNSET,
        parent_id: Any = UNSET,
        expect_status: str | None = None,
    ) -> Task:
        """Change fields of a task; status changes must follow :data:`TRANSITIONS`.

        ``expect_status`` makes the update a compare-and-set on the current status.
        """
        changes: dict[str, Any] = {}
        if title is not UNSET:
            changes["title"] = check_title(title)
        if body is not UNSET:
            changes["body"] = body
        if status is not UNSET:
            changes["status"] = check_status(status)
        if priority is not UNSET:
            changes["priority"] = check_priority(priority)
        if assignee is not UNSET:
            changes["assignee"] = check_assignee(assignee)
        if labels is not UNSET:
            changes["labels"] = check_labels(labels)
        if parent_id is not UNSET:
            changes["parent_id"] = parent_id
        with self.transaction() as tx:
            before = self.get_task(task_id)
            if expect_status is not None and before.status != expect_status:
                raise Conflict(
                    f"task {task_id} is {before.status}, not {expect_status}",
                    hint="re-read the task and retry",
                )
            if "status" in changes and changes["status"] != before.status:
                _check_transition(task_id, before.status, changes["status"])
                closing = changes["status"] in CLOSED
                changes["closed_at"] = tx.now if closing else None
            if changes.get("parent_id") is not None:
                self._check_parent(tx, task_id, changes["parent_id"])
            return self._apply_update(tx, before, changes)

    def claim_task(self, task_id: int, assignee: str, *, force: bool = False) -> Task:
        """Atomically take an open task: status → in_progress, assignee set.

        A compare-and-set: exactly one of several concurrent claimers wins; the others get
        :class:`Conflict`. A task whose dependencies are not done cannot be claimed unless
        ``force``. Claiming a task the same assignee already holds (in progress) is a retry,
        not a conflict: the task is returned unchanged and no event is written.
        """
        if not check_assignee(assignee) or not assignee.strip():
            raise InvalidInput("claiming a task needs an assignee name")
        with self.transaction() as tx:
            before = self.get_task(task_id)
            if before.status == "in_progress" and before.assignee == assignee:
                return before
            if before.status != "open":
                owner = f" by {before.assignee}" if before.assignee else ""
                raise Conflict(
                    f"task {task_id} is {before.status}{owner}, so it cannot be claimed",
                    hint="`agentkeep tasks ready` lists tasks that can be claimed",
                )
            if not force:
                blockers = [
                    r[0] for r in tx.conn.execute(_OPEN_BLOCKERS_SQL, (task_id,)).fetchall()
                ]
                if blockers:
                    raise Conflict(
                        f"task {task_id} waits on unfinished task(s) "
                        f"{', '.join(map(str, blockers))}",
                        hint="finish those first, or claim with --force",
                    )
            return self._apply_update(
                tx, before, {"status": "in_progress", "assignee": assignee}, kind="task.claimed"
            )

    def ready_tasks(
        self, *, limit: int | None = None, after: tuple[int, int] | None = None
    ) -> list[Task]:
        """Open tasks whose dependencies are all done, most urgent first. ``after``: as
        :meth:`list_tasks`."""
        sql = f"SELECT * FROM tasks t WHERE {TASK_READY_SQL}"
        params: list[Any] = []
        if after is not None:
            sql += " AND (t.priority > ? OR (t.priority = ? AND t.id > ?))"
            params.extend([after[0], after[0], after[1]])
        sql += " ORDER BY t.priority, t.id"
        return self._with_deps(self._rows(sql + limit_clause(limit), params))

    def add_dependency(self, task_id: int, depends_on: int) -> Task:
        """Record that ``task_id`` cannot start before ``depends_on`` is done."""
        with self.transaction() as tx:
            self._add_dep(tx, task_id, depends_on)
            return self.get_task(task_id)

    def remove_dependency(self, task_id: int, depends_on: int) -> Task:
        with self.transaction() as tx:
            self.get_task(task_id)
            removed = tx.conn.execute(
                "DELETE FROM task_deps WHERE task_id = ? AND depends_on = ?",
                (task_id, depends_on),
            ).rowcount
            if not removed:
                raise InvalidInput(f"task {task_id} does not depend on task {depends_on}")
            tx.emit("task", task_id, "task.dependency_removed", {"depends_on": depends_on})
            return self.get_task(task_id)

    # -- helpers ------------------------------------------------------------------------

    def _with_deps(self, rows: list[Any]) -> list[Task]:
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        deps: dict[int, list[int]] = {i: [] for i in ids}
        marks = ", ".join("?" for _ in ids)
        for task_id, dep in self._rows(
            f"SELECT task_id, depends_on FROM task_deps WHERE task_id IN ({marks}) "
            "ORDER BY depends_on",
            ids,
        ):
            deps[task_id].append(dep)
        return [_task_from(row, deps[row["id"]]) for row in rows]

    def _apply_update(
        self, tx: Tx, before: Task, changes: dict[str, Any], *, kind: str = "task.updated"
    ) -> Task:
        old = before.to_dict()
        delta = diff(old, changes)
        if not delta:
            return before
        values = {k: Json(v) if k == "labels" else v for k, v in changes.items() if k in delta}
        values["updated_at"] = tx.now
        tx.update("tasks", before.id, values)
        tx.emit("task", before.id, kind, delta)
        return self.get_task(before.id)

    def _add_dep(self, tx: Tx, task_id: int, depends_on: int, *, emit: bool = True) -> None:
        if task_id == depends_on:
            raise InvalidInput(f"task {task_id} cannot depend on itself")
        self.get_task(task_id)
        self.get_task(depends_on)
        cycle = tx.one(_REACHES_SQL, (depends_on, task_id))
        if cycle:
            raise InvalidInput(
                f"task {depends_on} already depends (directly or not) on task {task_id}; "
                "adding this dependency would make a cycle"
            )
        exists = tx.one(
            "SELECT 1 FROM task_deps WHERE task_id = ? AND depends_on = ?", (task_id, depends_on)
        )
        if exists:
            return
        tx.insert("task_deps", {"task_id": task_id, "depends_on": depends_on, "created_at": tx.now})
        if emit:
            tx.emit("task", task_id, "task.dependency_added", {"depends_on": depends_on})

    def _check_parent(self, tx: Tx, task_id: int, parent_id: int) -> None:
        self.get_task(parent_id)
        check_parent(tx, task_id, parent_id)


def check_parent(tx: Tx, task_id: int, parent_id: int) -> None:
    """Refuse a parent that is the task itself or one of its descendants."""
    node: int | None = parent_id
    seen: set[int] = set()
    while node is not None and node not in seen:  # `seen`: never loop on a damaged chain
        if node == task_id:
            raise InvalidInput(f"task {parent_id} cannot be the parent of task {task_id}")
        seen.add(node)
        row = tx.one("SELECT parent_id FROM tasks WHERE id = ?", (node,))
        node = row["parent_id"] if row else None


def _check_transition(task_id: int, current: str, new: str) -> None:
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        raise Conflict(
            f"task {task_id} cannot go from {current} to {new}",
            hint=f"from {current} a task can go to: {allowed}",
        )


def _task_from(row: Any, deps: list[int]) -> Task:
    task: Task = Task.from_row(row)
    return Task(**{**task.__dict__, "depends_on": deps})


# Keyset paging on (priority, id): the rows after ?1 = priority, ?2 = priority, ?3 = id.
_AFTER_SQL = "(priority > ? OR (priority = ? AND id > ?))"
_DEPS_SQL = "SELECT depends_on FROM task_deps WHERE task_id = ? ORDER BY depends_on"
_OPEN_BLOCKERS_SQL = (
    "SELECT d.depends_on FROM task_deps d JOIN tasks b ON b.id = d.depends_on "
    "WHERE d.task_id = ? AND b.status != 'done' ORDER BY d.depends_on"
)
# Does ?1 (transitively) depend on ?2?
_REACHES_SQL = (
    "WITH RECURSIVE reach(id) AS (SELECT ?1 UNION "
    "SELECT d.depends_on FROM task_deps d JOIN reach r ON d.task_id = r.id) "
    "SELECT 1 FROM reach WHERE id = ?2"
)
