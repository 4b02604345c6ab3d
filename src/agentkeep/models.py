"""The nouns, as plain dataclasses. Field names are the JSON contract (docs/json-output.md):
``to_dict()`` is what every ``--json`` output and API response carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from agentkeep.record import Record as Record  # its home before record.py; still importable here

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
class Project(Record):
    id: int
    uid: str
    name: str
    created_at: str


@dataclass(frozen=True)
class Task(Record):
    JSON_FIELDS = ("labels",)
    id: int
    title: str
    body: str
    status: str
    priority: int
    assignee: str | None
    labels: list[str]
    parent_id: int | None
    created_at: str
    updated_at: str
    closed_at: str | None
    depends_on: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Note(Record):
    JSON_FIELDS = ("data",)
    id: int
    kind: str
    body: str
    data: dict[str, Any]
    task_id: int | None
    session_id: int | None
    agent_id: int | None
    author: str | None
    created_at: str


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
class Agent(Record):
    id: int
    name: str
    kind: str
    role: str | None
    status: str
    pid: int | None
    host: str | None
    worktree_id: int | None
    heartbeat_at: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Worktree(Record):
    id: int
    path: str
    branch: str | None
    base_commit: str | None
    lease_owner: str | None
    lease_expires_at: str | None
    status: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Metric(Record):
    JSON_FIELDS = ("labels",)
    id: int
    name: str
    value: float
    labels: dict[str, str]
    at: str
    session_id: int | None
    agent_id: int | None


@dataclass(frozen=True)
class Integration(Record):
    JSON_FIELDS = ("settings",)
    id: int
    name: str
    kind: str
    settings: dict[str, Any]
    credential_ref: str | None
    created_at: str
    updated_at: str


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
class Redaction(Record):
    id: int
    at: str
    rule: str
    entity: str
    entity_id: int | None
    field: str
    count: int


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


@dataclass(frozen=True)
class Artifact(Record):
    """A named reference to a content-addressed object."""

    id: int
    sha256: str
    kind: str
    name: str | None
    content_type: str
    size: int
    session_id: int | None
    task_id: int | None
    agent_id: int | None
    pinned: int
    data: dict[str, Any]
    created_at: str
    encoding: str = "identity"
    stored_bytes: int = 0

    JSON_FIELDS = ("data",)
