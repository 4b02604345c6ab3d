"""The nouns, as plain dataclasses. Field names are the JSON contract (docs/json-output.md):
``to_dict()`` is what every ``--json`` output and API response carries.

Defined here: the nouns every write and ``agentkeep run`` build (:class:`Written`,
:class:`Session`, :class:`Event`, :class:`Stream`). The others (:class:`Task`,
:class:`Note`, :class:`Agent`, …) are defined in :mod:`agentkeep._nouns` and imported from
here on first use (a module ``__getattr__``): building a frozen dataclass costs ~1 ms of
start-up, and ``run`` paid for thirteen of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from agentkeep.record import Record as Record  # its home before record.py; still importable here

if TYPE_CHECKING:
    from agentkeep._nouns import Agent as Agent
    from agentkeep._nouns import Artifact as Artifact
    from agentkeep._nouns import Doc as Doc
    from agentkeep._nouns import DocLock as DocLock
    from agentkeep._nouns import DocVersion as DocVersion
    from agentkeep._nouns import Integration as Integration
    from agentkeep._nouns import Metric as Metric
    from agentkeep._nouns import Note as Note
    from agentkeep._nouns import Project as Project
    from agentkeep._nouns import Redaction as Redaction
    from agentkeep._nouns import Task as Task
    from agentkeep._nouns import Worktree as Worktree

T = TypeVar("T")

Outcome = Literal["created", "updated", "unchanged", "already_exists"]


@dataclass(frozen=True)
class Written(Generic[T]):
    """What a create operation returns: the record and whether this call created it.

    ``outcome`` is ``already_exists`` when an idempotency key (or a natural key such as an
    agent's name) matched an earlier write; the earlier record is returned unchanged.
    """

    item: T
    outcome: Outcome


@dataclass(frozen=True)
class Session(Record):
    id: int
    agent_id: int | None
    task_id: int | None
    source: str
    external_id: str | None
    status: str
    started_at: str
    ended_at: str | None
    exit_code: int | None
    model: str | None
    cwd: str | None
    title: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    command: list[str] | None = None
    signal: int | None = None
    duration_ms: int | None = None
    pid: int | None = None
    host: str | None = None
    pinned: int = 0
    parent_id: int | None = None
    prompts: int = 0
    tool_calls: int = 0
    failures: int = 0
    turns: int = 0
    last_seen_at: str | None = None
    capture: str | None = None
    # Computed when read (docs/json-output.md): whether agentkeep holds the session's
    # history, whether the idle rule calls this running session idle, and whether the
    # agent's own files still exist so it can be resumed (None: not checked).
    displayable: bool = False
    idle: bool = False
    resumable: bool | None = None

    JSON_FIELDS = ("command",)


@dataclass(frozen=True)
class Event(Record):
    JSON_FIELDS = ("data",)
    seq: int
    at: str
    actor: str
    entity: str
    entity_id: int | None
    kind: str
    data: Any
    undoes: int | None


@dataclass(frozen=True)
class Stream(Record):
    """An output stream of a session; ``length`` bytes are durable and readable."""

    id: int
    session_id: int
    name: str
    status: str  # live | closed | sealed
    path: str
    length: int
    lines: int
    stored_bytes: int
    sha256: str | None
    created_at: str
    updated_at: str
    sealed_at: str | None


_ELSEWHERE = frozenset(
    (
        "Agent",
        "Artifact",
        "Doc",
        "DocLock",
        "DocVersion",
        "Integration",
        "Metric",
        "Note",
        "Project",
        "Redaction",
        "Task",
        "Worktree",
    )
)


def __getattr__(name: str) -> Any:
    """A noun defined in :mod:`agentkeep._nouns`, imported on first use."""
    if name in _ELSEWHERE:
        from agentkeep import _nouns

        value = getattr(_nouns, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
