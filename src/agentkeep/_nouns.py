"""The nouns that neither a write nor ``agentkeep run`` builds, apart from
:mod:`agentkeep.models` so that those commands do not build their dataclasses at start-up.
:mod:`agentkeep.models` names them all (import them from there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentkeep.record import Record


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
class Redaction(Record):
    id: int
    at: str
    rule: str
    entity: str
    entity_id: int | None
    field: str
    count: int


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


@dataclass(frozen=True)
class Doc(Record):
    """An indexed document (docs/documents.md). ``ref`` is ``namespace/name``; ``path`` is
    the file, relative to the project root; ``etag`` the sha256 of its bytes (name it to
    write without overwriting someone else's change); ``fields`` its front matter."""

    JSON_FIELDS = ("fields", "tags", "problems")
    id: int
    ref: str
    path: str
    namespace: str
    name: str
    origin: str
    format: str
    type: str | None
    title: str | None
    convention: str | None
    fields: dict[str, Any]
    tags: list[str]
    problems: list[str]
    etag: str
    size: int
    updated_at: str
    indexed_at: str


@dataclass(frozen=True)
class DocVersion(Record):
    """One change of a document's file: ``change`` is created, edited, outside (a content
    changed by another program, kept before agentkeep replaced it), deleted or restored;
    ``sha256`` names the stored content (None for a deletion)."""

    id: int
    path: str
    sha256: str | None
    etag: str | None
    size: int
    change: str
    actor: str
    created_at: str


@dataclass(frozen=True)
class DocLock(Record):
    """An advisory lock on a document: ``holder`` is ``host:pid:start`` of the process
    holding it, ``expires_at`` when its lease ends unless renewed."""

    path: str
    holder: str
    owner: str
    acquired_at: str
    expires_at: str
