"""Model-based stateful test: tasks, notes and events against a dict.

Hypothesis drives random sequences of adds, updates (valid and invalid status
transitions), claims, dependencies, notes, custom events, undos, idempotent retries and
reopens against a real store and a plain-Python model of what the store should hold.
After every step the store must equal the model: the same tasks (fields, dependencies),
the same notes, ``ready_tasks()`` in the same order, and a ledger with exactly one event
per successful mutation — the model's list of (entity, id, kind) — with strictly
increasing seq. A refused operation must raise the documented error and change nothing.
``integrity_check`` runs at teardown.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import agentkeep
from agentkeep import AgentkeepError, Conflict, InvalidInput, NotFound

# The model's own statement of the rules (deliberately not imported from agentkeep.services.tasks,
# so that a changed table in the code is a failing test, not a silently changed model).
STATUSES = ("open", "in_progress", "blocked", "done", "cancelled")
CLOSED = frozenset({"done", "cancelled"})
TRANSITIONS = {
    "open": {"in_progress", "blocked", "done", "cancelled"},
    "in_progress": {"open", "blocked", "done", "cancelled"},
    "blocked": {"open", "in_progress", "done", "cancelled"},
    "done": {"open"},  # closed tasks can only be reopened
    "cancelled": {"open"},
}
KINDS = ("handoff", "decision", "next_action", "validation", "pointer", "health", "fact")
ACTOR = "model@test"
MISSING_IDS = (10**6, 0, -3)
KEYS = ("key-a", "key-b", "key-c")
POINTER_REFS = ("repo", "fork", "pr", "issue", "commit", "doc", "other")
TEXT_KINDS = ("handoff", "decision", "next_action", "fact")  # these need a non-blank body
TASK_FIELDS = ("title", "body", "status", "priority", "assignee", "labels", "parent_id")

# Text without NUL or lone surrogates (test_bad_input covers those), drawn from all of
# Unicode but short, so no redaction rule can plausibly match (asserted: no redactions).
characters = st.characters(codec="utf-8", exclude_characters="\x00")
text = st.text(characters, max_size=12)
nonblank = st.one_of(
    st.sampled_from(["T", "ünïcødé ✓", "𝔘𝔫𝔦", "two\nlines", "  padded  "]),
    st.text(characters, min_size=1, max_size=12).filter(lambda s: s.strip() != ""),
)
labels = st.lists(
    st.one_of(
        st.sampled_from(["bug", "ä", "日本"]), st.text(characters, min_size=1, max_size=6)
    ).filter(lambda s: s.strip() != ""),
    max_size=4,
)
priority = st.integers(min_value=0, max_value=4)
status = st.sampled_from(STATUSES)
new_status = st.sampled_from(["open", "open", *STATUSES])  # more claimable tasks
assignee = st.sampled_from([None, "ana", "bo", "zoë", ""])
key = st.sampled_from([None, None, None, None, *KEYS])
# Values each validated field refuses (InvalidInput, before anything is written).
INVALID: dict[str, list[Any]] = {
    "title": ["", "   ", "\u2003\n\t"],
    "status": ["finished", "OPEN", ""],
    "priority": [-1, 5, 99, True],
    "labels": [[" "], ["ok", ""], ["\t"]],
}
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
# Extra note fields; the names a kind validates are drawn separately (add_note).
KIND_FIELD_NAMES = ("command", "exit_code", "summary", "url", "ref", "subject", "status", "detail")
extra_data = st.dictionaries(
    st.text(characters, min_size=1, max_size=6).filter(lambda k: k not in KIND_FIELD_NAMES),
    json_value,
    max_size=3,
)


@dataclass
class ModelTask:
    title: str
    body: str
    status: str
    priority: int
    assignee: str | None
    labels: list[str]
    parent_id: int | None
    depends_on: set[int] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "status": self.status,
            "priority": self.priority,
            "assignee": self.assignee,
            "labels": self.labels,
            "parent_id": self.parent_id,
            "depends_on": sorted(self.depends_on),
            "closed": self.status in CLOSED,
        }


def task_view(task: agentkeep.Task) -> dict[str, Any]:
    return {
        "title": task.title,
        "body": task.body,
        "status": task.status,
        "priority": task.priority,
        "assignee": task.assignee,
        "labels": task.labels,
        "parent_id": task.parent_id,
        "depends_on": task.depends_on,
        "closed": task.closed_at is not None,
    }


def note_view(note: agentkeep.Note) -> dict[str, Any]:
    return {
        "kind": note.kind,
        "body": note.body,
        "data": note.data,
        "task_id": note.task_id,
        "author": note.author,
    }


class StoreMachine(RuleBasedStateMachine):
    # Per-test directory under pytest's tmp_path, set by the test function.
    base_dir: ClassVar[Path]

    def __init__(self) -> None:
        super().__init__()
        # Function-scoped fixtures do not reset between examples: one store per example.
        # The directory is left for pytest's tmp_path retention to remove: deleting a
        # state.db with Python file APIs would trip conftest's live-database audit hook.
        self.root = Path(tempfile.mkdtemp(prefix="model-", dir=self.base_dir))
        agentkeep.init_store(self.root)
        self.store = agentkeep.open(self.root, actor=ACTOR)
        self.tasks: dict[int, ModelTask] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.retries = 0
        # The ledger as (entity, entity_id, kind); init_store wrote the project's event.
        self.ledger: list[tuple[str, int | None, str]] = [("project", 1, "project.created")]
        # Idempotency keys -> (entity, id).
        self.keys: dict[str, tuple[str, int]] = {}
        # Per task: reversible changes not yet undone, as (ledger index, {field: (old, new)}).
        self.undoable: dict[int, list[tuple[int, dict[str, tuple[Any, Any]]]]] = {}

    # -- helpers --------------------------------------------------------------------------

    def emit(self, entity: str, entity_id: int | None, kind: str) -> int:
        self.ledger.append((entity, entity_id, kind))
        return len(self.ledger) - 1

    def pick_task(self, data: st.DataObject, *, among: list[int] | None = None) -> int:
        """An existing task id (from ``among`` if given), or now and then a missing one."""
        pool = sorted(self.tasks) if among is None else among
        if not pool or data.draw(st.integers(0, 9), label="missing?") == 0:
            return data.draw(st.sampled_from(MISSING_IDS), label="missing id")
        return data.draw(st.sampled_from(pool), label="task id")

    def reaches(self, start: int, goal: int) -> bool:
        """Does ``start`` depend on ``goal``, directly or not?"""
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(self.tasks[node].depends_on)
        return False

    def key_check(self, idem: str | None, entity: str) -> int | None:
        """The id a retry with ``idem`` returns (None: the key is new); raises InvalidInput,
        as the store does, for a key already used for another kind of record."""
        if idem is None or idem not in self.keys:
            return None
        used_for, ident = self.keys[idem]
        if used_for != entity:
            raise InvalidInput(f"key {idem} was used for a {used_for}")
        return ident

    def refused(self, error: type[AgentkeepError], call: Callable[[], object]) -> None:
        """``call`` must raise ``error``; the invariants then check that nothing changed."""
        with pytest.raises(error):
            call()

    def add_task_as_model(
        self,
        *,
        title: str,
        body: str,
        priority: int,
        status: str,
        assignee: str | None,
        labels: list[str],
        parent: int | None,
        idem: str | None,
    ) -> None:
        def call() -> agentkeep.Written[agentkeep.Task]:
            return self.store.add_task(
                title,
                body=body,
                priority=priority,
                status=status,
                assignee=assignee,
                labels=labels,
                parent_id=parent,
                idempotency_key=idem,
            )

        try:
            existing = self.key_check(idem, "task")
        except InvalidInput:
            return self.refused(InvalidInput, call)
        if existing is not None:
            written = call()
            assert written.outcome == "already_exists"
            assert written.item.id == existing
            assert task_view(written.item) == self.tasks[existing].view()
            return None
        if parent is not None and parent not in self.tasks:
            return self.refused(NotFound, call)
        written = call()
        assert written.outcome == "created"
        task_id = written.item.id
        assert task_id > max(self.tasks, default=0)  # a new id, after all existing ones
        self.tasks[task_id] = ModelTask(
            title, body, status, priority, assignee, list(dict.fromkeys(labels)), parent
        )
        self.undoable[task_id] = []
        if idem is not None:
            self.keys[idem] = ("task", task_id)
        self.emit("task", task_id, "task.created")
        assert task_view(written.item) == self.tasks[task_id].view()
        return None

    # -- rules ----------------------------------------------------------------------------

    @initialize(
        seed=st.lists(st.tuples(nonblank, priority, new_status, labels), max_size=5),
    )
    def some_tasks(self, seed: list[tuple[str, int, str, list[str]]]) -> None:
        for title_, priority_, status_, labels_ in seed:
            self.add_task_as_model(
                title=title_,
                body="",
                priority=priority_,
                status=status_,
                assignee=None,
                labels=labels_,
                parent=None,
                idem=None,
            )

    @rule(
        data=st.data(),
        title=nonblank,
        body=text,
        priority=priority,
        status=new_status,
        assignee=assignee,
        labels=labels,
        idem=key,
    )
    def add_task(
        self,
        data: st.DataObject,
        title: str,
        body: str,
        priority: int,
        status: str,
        assignee: str | None,
        labels: list[str],
        idem: str | None,
    ) -> None:
        parent = self.pick_task(data) if data.draw(st.booleans(), label="parent?") else None
        self.add_task_as_model(
            title=title,
            body=body,
            priority=priority,
            status=status,
            assignee=assignee,
            labels=labels,
            parent=parent,
            idem=idem,
        )

    @rule(data=st.data(), bad=st.sampled_from(sorted(INVALID)), idem=key)
    def add_invalid_task(self, data: st.DataObject, bad: str, idem: str | None) -> None:
        values: dict[str, Any] = {"title": "t", "status": "open", "priority": 2, "labels": []}
        values[bad] = data.draw(st.sampled_from(INVALID[bad]), label=bad)
        # Refused before the idempotency key is even looked at.
        self.refused(
            InvalidInput,
            lambda: self.store.add_task(
                values["title"],
                status=values["status"],
                priority=values["priority"],
                labels=values["labels"],
                idempotency_key=idem,
            ),
        )

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def update_task(self, data: st.DataObject) -> None:
        task_id = self.pick_task(data)
        names = data.draw(st.sets(st.sampled_from(TASK_FIELDS), min_size=1), label="fields")
        strategies: dict[str, st.SearchStrategy[Any]] = {
            "title": nonblank,
            "body": text,
            "status": status,
            "priority": priority,
            "assignee": assignee,
            "labels": labels,
            "parent_id": st.one_of(
                st.none(), st.sampled_from(sorted(self.tasks)), st.sampled_from(MISSING_IDS)
            ),
        }
        changes = {name: data.draw(strategies[name], label=name) for name in sorted(names)}
        expect = data.draw(st.sampled_from([None, None, None, *STATUSES]), label="expect")
        self.update_as_model(task_id, changes, expect)

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), to=status, compare_and_set=st.booleans())
    def change_status(self, data: st.DataObject, to: str, compare_and_set: bool) -> None:
        """Every (current, target) pair: allowed transitions apply, the others are Conflict."""
        task_id = self.pick_task(data)
        current = self.tasks[task_id].status if task_id in self.tasks else None
        self.update_as_model(task_id, {"status": to}, current if compare_and_set else None)

    def update_as_model(self, task_id: int, changes: dict[str, Any], expect: str | None) -> None:
        def call() -> agentkeep.Task:
            return self.store.update_task(task_id, expect_status=expect, **changes)

        if task_id not in self.tasks:
            return self.refused(NotFound, call)
        task = self.tasks[task_id]
        if expect is not None and task.status != expect:
            return self.refused(Conflict, call)
        new_status = changes.get("status", task.status)
        if new_status != task.status and new_status not in TRANSITIONS[task.status]:
            return self.refused(Conflict, call)
        parent = changes.get("parent_id")
        if parent is not None:
            if parent not in self.tasks:
                return self.refused(NotFound, call)
            node: int | None = parent
            while node is not None:
                if node == task_id:
                    return self.refused(InvalidInput, call)
                node = self.tasks[node].parent_id
        if "labels" in changes:
            changes["labels"] = list(dict.fromkeys(changes["labels"]))
        delta = {
            name: (getattr(task, name), value)
            for name, value in changes.items()
            if getattr(task, name) != value
        }
        updated = call()
        if delta:
            for name, (_old, new) in delta.items():
                setattr(task, name, new)
            index = self.emit("task", task_id, "task.updated")
            self.undoable[task_id].append((index, delta))
        assert task_view(updated) == task.view()
        return None

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), bad=st.sampled_from(sorted(INVALID)))
    def update_invalid_task(self, data: st.DataObject, bad: str) -> None:
        task_id = self.pick_task(data)
        value = data.draw(st.sampled_from(INVALID[bad]), label=bad)
        self.refused(InvalidInput, lambda: self.store.update_task(task_id, **{bad: value}))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), who=st.sampled_from(["ana", "bo", "zoë", "ana", "", "  "]))
    def claim_task(self, data: st.DataObject, who: str) -> None:
        open_tasks = [i for i, t in self.tasks.items() if t.status == "open"]
        any_task = data.draw(st.booleans(), label="any task?")
        task_id = self.pick_task(data, among=None if any_task or not open_tasks else open_tasks)

        def call() -> agentkeep.Task:
            return self.store.claim_task(task_id, who)

        if not who.strip():
            return self.refused(InvalidInput, call)
        if task_id not in self.tasks:
            return self.refused(NotFound, call)
        task = self.tasks[task_id]
        if task.status == "in_progress" and task.assignee == who:
            # A retry by the holder: the task comes back unchanged, and no event is written.
            assert task_view(call()) == task.view()
            return None
        blocked = any(self.tasks[dep].status != "done" for dep in task.depends_on)
        if task.status != "open" or blocked:
            return self.refused(Conflict, call)
        claimed = call()
        delta = {"status": ("open", "in_progress")}
        if task.assignee != who:
            delta["assignee"] = (task.assignee, who)
        task.status, task.assignee = "in_progress", who
        index = self.emit("task", task_id, "task.claimed")
        self.undoable[task_id].append((index, delta))
        assert task_view(claimed) == task.view()
        return None

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def add_dependency(self, data: st.DataObject) -> None:
        task_id, depends_on = self.pick_task(data), self.pick_task(data)

        def call() -> agentkeep.Task:
            return self.store.add_dependency(task_id, depends_on)

        if task_id == depends_on:
            return self.refused(InvalidInput, call)
        if task_id not in self.tasks or depends_on not in self.tasks:
            return self.refused(NotFound, call)
        if self.reaches(depends_on, task_id):  # the new edge would close a cycle
            return self.refused(InvalidInput, call)
        task = self.tasks[task_id]
        result = call()
        if depends_on not in task.depends_on:  # adding an existing edge is a no-op
            task.depends_on.add(depends_on)
            self.emit("task", task_id, "task.dependency_added")
        assert task_view(result) == task.view()
        return None

    @precondition(lambda self: any(t.depends_on for t in self.tasks.values()))
    @rule(data=st.data())
    def remove_dependency(self, data: st.DataObject) -> None:
        task_id = self.pick_task(data, among=[i for i, t in self.tasks.items() if t.depends_on])
        known = sorted(self.tasks[task_id].depends_on) if task_id in self.tasks else []
        depends_on = data.draw(st.sampled_from([*known, MISSING_IDS[0]]), label="depends_on")

        def call() -> agentkeep.Task:
            return self.store.remove_dependency(task_id, depends_on)

        if task_id not in self.tasks:
            return self.refused(NotFound, call)
        if depends_on not in self.tasks[task_id].depends_on:
            return self.refused(InvalidInput, call)
        result = call()
        self.tasks[task_id].depends_on.discard(depends_on)
        self.emit("task", task_id, "task.dependency_removed")
        assert task_view(result) == self.tasks[task_id].view()
        return None

    @rule(data=st.data(), kind=st.sampled_from(KINDS), extra=extra_data, idem=key)
    def add_note(
        self, data: st.DataObject, kind: str, extra: dict[str, Any], idem: str | None
    ) -> None:
        body = data.draw(nonblank if kind in TEXT_KINDS else st.one_of(text, nonblank))
        fields: dict[str, Any] = {}
        if kind == "validation":
            fields["command"] = data.draw(st.sampled_from(["make test", "pytest -x"]))
            fields["exit_code"] = data.draw(st.one_of(st.none(), st.integers(-1, 255)))
        elif kind == "pointer":
            fields["url"] = data.draw(st.sampled_from(["https://x.test/pr/1", "git://h/r"]))
            fields["ref"] = data.draw(st.one_of(st.none(), st.sampled_from(POINTER_REFS)))
        elif kind == "health":
            fields["subject"] = data.draw(st.sampled_from(["model", "upstream api"]))
            fields["status"] = data.draw(st.sampled_from(["ok", "degraded"]))
        payload = {**extra, **{k: v for k, v in fields.items() if v is not None}}
        task_id = self.pick_task(data) if data.draw(st.booleans(), label="on task?") else None

        def call() -> agentkeep.Written[agentkeep.Note]:
            return self.store.add_note(
                kind, body, data=payload, task_id=task_id, idempotency_key=idem
            )

        try:
            existing = self.key_check(idem, "note")
        except InvalidInput:
            return self.refused(InvalidInput, call)
        if existing is not None:
            written = call()
            assert written.outcome == "already_exists"
            assert note_view(written.item) == self.notes[existing]
            return None
        if task_id is not None and task_id not in self.tasks:
            # The note's task must exist: refused as not found, like every missing reference.
            return self.refused(NotFound, call)
        written = call()
        assert written.outcome == "created"
        note_id = written.item.id
        assert note_id > max(self.notes, default=0)
        self.notes[note_id] = {
            "kind": kind,
            "body": body,
            "data": payload,
            "task_id": task_id,
            "author": ACTOR,
        }
        if idem is not None:
            self.keys[idem] = ("note", note_id)
        self.emit("note", note_id, "note.created")
        assert note_view(written.item) == self.notes[note_id]
        return None

    @rule(
        problem=st.sampled_from(
            [
                ("gossip", "x", {}),
                ("handoff", "  ", {}),
                ("fact", "", {}),
                ("validation", "ran", {"exit_code": 1}),
                ("validation", "ran", {"command": "make", "exit_code": "one"}),
                ("pointer", "", {"url": "not a url"}),
                ("pointer", "", {"url": "https://x.test", "ref": "mr"}),
                ("health", "", {"status": "ok"}),
            ]
        ),
        idem=key,
    )
    def add_invalid_note(self, problem: tuple[str, str, dict[str, Any]], idem: str | None) -> None:
        kind, body, payload = problem
        self.refused(
            InvalidInput,
            lambda: self.store.add_note(kind, body, data=payload, idempotency_key=idem),
        )

    @rule(
        kind=st.one_of(st.sampled_from(["build.finished", "test.run", "", "  "]), nonblank),
        payload=st.one_of(st.none(), json_value),
        entity_id=st.one_of(st.none(), st.integers(-5, 5)),
        idem=key,
    )
    def record_event(
        self, kind: str, payload: Any, entity_id: int | None, idem: str | None
    ) -> None:
        def call() -> agentkeep.Written[agentkeep.Event]:
            return self.store.record_event(
                kind, entity_id=entity_id, data=payload, idempotency_key=idem
            )

        if not kind.strip():
            return self.refused(InvalidInput, call)
        try:
            existing = self.key_check(idem, "event")
        except InvalidInput:
            return self.refused(InvalidInput, call)
        written = call()
        if existing is not None:
            assert written.outcome == "already_exists"
            assert written.item.seq == existing
            return None
        assert written.outcome == "created"
        assert (written.item.kind, written.item.entity_id) == (kind, entity_id)
        assert written.item.data == ({} if payload is None else payload)
        self.emit("custom", entity_id, kind)
        if idem is not None:
            self.keys[idem] = ("event", written.item.seq)
        return None

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def undo_nothing_left(self, data: st.DataObject) -> None:
        unchanged = [i for i, stack in self.undoable.items() if not stack]
        task_id = self.pick_task(data, among=unchanged)
        self.refused(NotFound, lambda: self.store.undo("task", task_id))

    @precondition(lambda self: any(self.undoable.values()))
    @rule(data=st.data())
    def undo_task(self, data: st.DataObject) -> None:
        """Undo reverts the newest change not yet undone; repeated undos walk back."""
        task_id = data.draw(st.sampled_from([i for i, s in self.undoable.items() if s]))
        index, delta = self.undoable[task_id].pop()
        target_seq = self.store.events()[index].seq
        event = self.store.undo("task", task_id)
        task = self.tasks[task_id]
        for name, (old, _new) in delta.items():
            setattr(task, name, old)
        self.emit("task", task_id, "task.updated")
        assert event.undoes == target_seq
        assert (event.entity, event.entity_id, event.kind) == self.ledger[-1]
        reverted = {name: [new, old] for name, (old, new) in delta.items()}
        assert {k: v for k, v in event.data.items() if k != "closed_at"} == reverted
        status_change = delta.get("status")
        closing_changed = status_change is not None and (
            (status_change[0] in CLOSED) != (status_change[1] in CLOSED)
        )
        assert ("closed_at" in event.data) == closing_changed
        return None

    @rule(title=st.sampled_from(["retry me", "ünïcødé retry"]), label=st.sampled_from(["a", "b"]))
    def idempotent_retry(self, title: str, label: str) -> None:
        self.retries += 1
        idem = f"retry-{self.retries}"
        first = self.store.add_task(title, labels=[label], idempotency_key=idem)
        again = self.store.add_task(title, labels=[label], idempotency_key=idem)
        assert (first.outcome, again.outcome) == ("created", "already_exists")
        assert again.item == first.item
        task_id = first.item.id
        assert task_id > max(self.tasks, default=0)
        self.tasks[task_id] = ModelTask(title, "", "open", 2, None, [label], None)
        self.undoable[task_id] = []
        self.keys[idem] = ("task", task_id)
        self.emit("task", task_id, "task.created")

    @rule(title=nonblank)
    def write_fails_midway(self, title: str) -> None:
        """A transaction that raises after its inserts leaves no trace (rolled back)."""
        with pytest.raises(RuntimeError), self.store.transaction() as tx:
            now = tx.now
            task_id = tx.insert("tasks", {"title": title, "created_at": now, "updated_at": now})
            tx.emit("task", task_id, "task.created", {"id": task_id})
            raise RuntimeError("crash between the write and COMMIT")

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = agentkeep.open(self.root, actor=ACTOR)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def tasks_match(self) -> None:
        stored = {t.id: task_view(t) for t in self.store.list_tasks()}
        assert stored == {i: t.view() for i, t in self.tasks.items()}

    @invariant()
    def ready_tasks_match(self) -> None:
        expected = sorted(
            (
                (t.priority, i)
                for i, t in self.tasks.items()
                if t.status == "open" and all(self.tasks[d].status == "done" for d in t.depends_on)
            ),
        )
        assert [t.id for t in self.store.ready_tasks()] == [i for _, i in expected]

    @invariant()
    def notes_match(self) -> None:
        stored = {n.id: note_view(n) for n in self.store.list_notes()}
        assert stored == self.notes

    @invariant()
    def one_event_per_mutation(self) -> None:
        events = self.store.events()
        assert [(e.entity, e.entity_id, e.kind) for e in events] == self.ledger
        seqs = [e.seq for e in events]
        assert all(a < b for a, b in itertools.pairwise(seqs))
        assert self.store.last_seq() == seqs[-1]

    @invariant()
    def nothing_was_redacted(self) -> None:
        assert self.store.redactions(limit=1) == []

    def teardown(self) -> None:
        store = getattr(self, "store", None)
        if store is None:
            return
        try:
            report = store.check()
            assert report.integrity == ["ok"], report
            assert report.foreign_keys == [], report
            assert report.ok, report
        finally:
            store.close()


def test_store_matches_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NORMAL keeps 200 examples fast; durability is tested by the crash tests.
    monkeypatch.setenv("AGENTKEEP_STORE_SYNCHRONOUS", "NORMAL")
    StoreMachine.base_dir = tmp_path
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
