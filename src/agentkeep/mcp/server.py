"""The MCP server: agentkeep's tools (:mod:`agentkeep.mcp.tools`) registered with the
official SDK (``mcp`` 2.x, ``MCPServer``), for stdio (``agentkeep mcp``) and for the
``/mcp`` endpoint of ``agentkeep serve`` (:mod:`agentkeep.mcp.http`).

Each tool carries the four annotations. None is destructive: every change a tool makes is
an event in the ledger (``agentkeep undo`` reverts it), and there is no delete. None is
open-world: a tool touches only this project's store. A tool's result is one text block
holding the CLI's ``--json`` output; a failure is a tool error (``isError``) whose text is
the CLI's JSON error shape, ``{"schema_version": 1, "error", "code", "hint"?}``, with the
same codes (``conflict`` for a lost claim, ``not_found``, ``invalid_input`` …).

This module imports the SDK; only ``agentkeep mcp`` and ``serve`` import it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from agentkeep import _version
from agentkeep.errors import AgentkeepError
from agentkeep.mcp import tools
from agentkeep.server.context import ServerContext

if TYPE_CHECKING:
    from agentkeep.store import Store

NAME = "agentkeep"
INSTRUCTIONS = (
    "agentkeep is this project's durable memory of agent work: tasks, handoff notes, "
    "decisions, sessions and their transcripts, and its documents (specs, decisions as "
    "files: `doc_list`, `doc_read`, `doc_write`). Start with `prime`; pick work with "
    "`tasks_ready` and `task_claim` (or `queue_take`), and ask `context` what to read for "
    "it; before you stop, leave a handoff with `note_write`."
)

NoteKind = Literal["handoff", "decision", "next_action", "validation", "pointer", "health", "fact"]
TaskStatus = Literal["open", "in_progress", "blocked", "done", "cancelled"]
SearchKind = Literal["message", "note", "task", "capture", "artifact", "doc", "output"]
TaskId = Annotated[int, Field(description="The task's id.")]
Priority = Annotated[int, Field(ge=0, le=4, description="0 is the most urgent, 4 the least.")]
Agent = Annotated[str | None, Field(description="Whose mailbox; default: this server's actor.")]
IdempotencyKey = Annotated[
    str | None,
    Field(description="Retry-safe key: a retry with the same key returns the first write."),
]


class StoreSource(Protocol):
    """Where a tool call gets its store (a store of the server's pool: server/context.py)."""

    def store(self) -> Store: ...


class ProjectStores:
    """The stores of ``agentkeep mcp``: the project's store, found when the first tool
    call needs it (and again on each call until it exists, so ``agentkeep init`` after
    the agent started works), from a pool of open stores as the server's (a store used
    outside a request goes back to the pool when its thread ends)."""

    def __init__(self, path: Path | None, actor: str | None) -> None:
        self.path = path
        self.actor = actor
        self._context: ServerContext | None = None
        self._lock = threading.Lock()

    def store(self) -> Store:
        with self._lock:
            if self._context is None:
                from agentkeep.store import resolve_store_dir

                found = resolve_store_dir(self.path)  # StoreNotFound: a tool error
                self._context = ServerContext(store_dir=found, token="", actor=self.actor)
            context = self._context
        return context.store()

    def close(self) -> None:
        if self._context is not None:
            self._context.close()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _answer(source: StoreSource, call: Callable[[Store], Any]) -> CallToolResult:
    """Run one tool call; an AgentkeepError becomes a tool error in the CLI's shape (its
    text redacted like every error agentkeep shows). Anything else is a bug: the SDK
    answers with a generic message and logs the traceback on stderr."""
    try:
        value = call(source.store())
    except AgentkeepError as failure:
        error = TextContent(type="text", text=_text(failure.shown()))
        return CallToolResult(content=[error], is_error=True)
    return CallToolResult(content=[TextContent(type="text", text=_text(value))])


def _hints(*, read_only: bool, idempotent: bool, title: str) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


READ = {"read_only": True, "idempotent": True}


@contextlib.contextmanager
def _root_logging_kept() -> Iterator[None]:
    """The SDK configures the root logger when a server is built (``basicConfig``); in a
    process that is not ours to configure (``serve``) that is undone."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def build_server(source: StoreSource, *, keep_logging: bool = False) -> MCPServer[Any]:
    """An MCPServer whose tools run against ``source``'s store. ``keep_logging`` leaves
    the process's logging as it was (the mount in ``serve``)."""
    with _root_logging_kept() if keep_logging else contextlib.nullcontext():
        server: MCPServer[Any] = MCPServer(
            NAME,
            title="agentkeep",
            instructions=INSTRUCTIONS,
            version=_version.__version__,
            log_level="WARNING",
            subscriptions=False,
        )

    @server.tool(annotations=_hints(title="Prime context", **READ))
    def prime(
        max_chars: Annotated[int, Field(ge=200, le=10_000)] = 10_000,
    ) -> CallToolResult:
        """What a new session should know, as Markdown: latest handoffs and next actions,
        ready tasks, failures of the last 24 h, active worktrees."""
        return _answer(source, lambda store: tools.prime(store, max_chars=max_chars))

    @server.tool(annotations=_hints(title="Ready tasks", **READ))
    def tasks_ready(
        limit: Annotated[int, Field(ge=1, le=tools.MAX_ROWS)] = 20,
    ) -> CallToolResult:
        """Open tasks whose dependencies are all done, most urgent first (JSON array)."""
        return _answer(source, lambda store: tools.tasks_ready(store, limit=limit))

    @server.tool(annotations=_hints(title="Claim a task", read_only=False, idempotent=True))
    def task_claim(
        task_id: TaskId,
        assignee: Annotated[
            str | None, Field(description="Who claims it; default: the actor.")
        ] = None,
        force: Annotated[bool, Field(description="Claim even if dependencies are open.")] = False,
    ) -> CallToolResult:
        """Atomically claim an open task (status in_progress). Exactly one claimer wins;
        the others get error code "conflict". A retry by the holder is "unchanged"."""
        return _answer(
            source,
            lambda store: tools.task_claim(store, task_id=task_id, assignee=assignee, force=force),
        )

    @server.tool(annotations=_hints(title="Update a task", read_only=False, idempotent=True))
    def task_update(
        task_id: TaskId,
        title: str | None = None,
        body: str | None = None,
        status: TaskStatus | None = None,
        priority: Priority | None = None,
        assignee: Annotated[str | None, Field(description='"" clears it.')] = None,
        labels: Annotated[list[str] | None, Field(description="Replaces them; [] clears.")] = None,
        expect_status: Annotated[
            TaskStatus | None, Field(description="Update only if the status is this (CAS).")
        ] = None,
    ) -> CallToolResult:
        """Change a task's fields (only those given). Status changes follow the allowed
        transitions; a refused one is error code "conflict"."""
        return _answer(
            source,
            lambda store: tools.task_update(
                store,
                task_id=task_id,
                title=title,
                body=body,
                status=status,
                priority=priority,
                assignee=assignee,
                labels=labels,
                expect_status=expect_status,
            ),
        )

    @server.tool(annotations=_hints(title="Add a task", read_only=False, idempotent=False))
    def task_add(
        title: str,
        body: str = "",
        priority: Priority = 2,
        labels: list[str] | None = None,
        assignee: str | None = None,
        parent_id: int | None = None,
        depends_on: Annotated[list[int] | None, Field(description="Tasks it waits for.")] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> CallToolResult:
        """Record a new task (outcome "created", or "already_exists" for a known key)."""
        return _answer(
            source,
            lambda store: tools.task_add(
                store,
                title=title,
                body=body,
                priority=priority,
                labels=labels or (),
                assignee=assignee,
                parent_id=parent_id,
                depends_on=depends_on or (),
                idempotency_key=idempotency_key,
            ),
        )

    @server.tool(annotations=_hints(title="Write a note", read_only=False, idempotent=False))
    def note_write(
        kind: NoteKind,
        body: str,
        task_id: int | None = None,
        session_id: int | None = None,
        agent_id: int | None = None,
        data: Annotated[
            dict[str, Any] | None,
            Field(
                description="The kind's fields: validation {command, exit_code, summary}; "
                "pointer {url, ref}; health {subject, status, detail}."
            ),
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> CallToolResult:
        """Leave a note: a handoff for the next session, a decision and why, a next
        action, a validation result, a pointer (PR, issue), a health finding, a fact."""
        return _answer(
            source,
            lambda store: tools.note_write(
                store,
                kind=kind,
                body=body,
                task_id=task_id,
                session_id=session_id,
                agent_id=agent_id,
                data=data,
                idempotency_key=idempotency_key,
            ),
        )

    @server.tool(annotations=_hints(title="Latest note", **READ))
    def notes_latest(kind: NoteKind = "handoff", task_id: int | None = None) -> CallToolResult:
        """The newest note of a kind (on a task, if given): a JSON array of 0 or 1."""
        return _answer(source, lambda store: tools.notes_latest(store, kind=kind, task_id=task_id))

    @server.tool(annotations=_hints(title="Search", **READ))
    def search(
        query: Annotated[
            str, Field(description='Words are AND-ed; "a phrase"; prefix* (2+ letters).')
        ],
        kinds: list[SearchKind] | None = None,
        session_id: int | None = None,
        since: Annotated[str | None, Field(description="30m, 2h, 7d ago or ISO time.")] = None,
        limit: Annotated[int, Field(ge=1, le=tools.MAX_ROWS)] = 20,
    ) -> CallToolResult:
        """Search transcripts, notes, tasks, hook captures, artifact names, documents
        (kind doc: their sections) and run output; best first, matches marked « » in each
        snippet."""
        return _answer(
            source,
            lambda store: tools.search(
                store, query=query, kinds=kinds, session_id=session_id, since=since, limit=limit
            ),
        )

    @server.tool(annotations=_hints(title="List documents", **READ))
    def doc_list(
        namespace: str | None = None,
        type: Annotated[str | None, Field(description="The front matter's type.")] = None,
        tag: str | None = None,
        where: Annotated[
            dict[str, str] | None,
            Field(
                description="Front matter fields that must equal these values (a list: hold it)."
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=tools.MAX_ROWS)] = 50,
    ) -> CallToolResult:
        """The project's documents (specs, decisions, notes as files), by ref
        namespace/name, filtered; each with its etag. Read one with doc_read."""
        return _answer(
            source,
            lambda store: tools.doc_list(
                store, namespace=namespace, type=type, tag=tag, where=where, limit=limit
            ),
        )

    @server.tool(annotations=_hints(title="Read a document", **READ))
    def doc_read(
        ref: Annotated[str, Field(description="namespace/name, or the file's path.")],
        version: Annotated[
            int | None, Field(ge=1, description="A version id from its history.")
        ] = None,
    ) -> CallToolResult:
        """A document's front matter (fields), body, etag, links and backlinks. Pass the
        etag as doc_write's expect so that a change made since is not overwritten."""
        return _answer(source, lambda store: tools.doc_read(store, ref=ref, version=version))

    @server.tool(annotations=_hints(title="Write a document", read_only=False, idempotent=True))
    def doc_write(
        ref: Annotated[str, Field(description="namespace/name, e.g. decisions/0001-storage.")],
        body: Annotated[str | None, Field(description="Markdown text; omitted: kept.")] = None,
        fields: Annotated[
            dict[str, Any] | None,
            Field(description="The whole front matter (type, tags, links…); omitted: kept."),
        ] = None,
        expect: Annotated[
            str | None,
            Field(description="The etag you read: refused (stale_write) if it changed since."),
        ] = None,
        create: Annotated[
            bool | None,
            Field(description="true: only a new document; false: only an existing one."),
        ] = None,
        format: Annotated[
            Literal["markdown", "json"] | None, Field(description="A new document's file.")
        ] = None,
    ) -> CallToolResult:
        """Create or change a document (a file, the truth; the previous content is kept
        as a version). Outcome created, updated, unchanged or already_exists; a stale
        expect is error code "stale_write" with details (current_etag), a document
        locked by another live process is "conflict"."""
        return _answer(
            source,
            lambda store: tools.doc_write(
                store,
                ref=ref,
                body=body,
                fields=fields,
                expect=expect,
                create=create,
                format=format,
            ),
        )

    @server.tool(annotations=_hints(title="Context for a piece of work", **READ))
    def context(
        task_id: Annotated[int | None, Field(description="The task being worked on.")] = None,
        files: Annotated[
            list[str] | None, Field(description="Files being worked on, from the project root.")
        ] = None,
        query: Annotated[str | None, Field(description="What the work is about.")] = None,
        budget: Annotated[int, Field(ge=200, le=100_000)] = 10_000,
    ) -> CallToolResult:
        """What to read for this work, as Markdown within budget characters: the specs
        and spec sections that apply, the task's latest handoffs and decisions, recent
        failures on the files; each with the reason it was picked."""
        return _answer(
            source,
            lambda store: tools.context(
                store, task_id=task_id, files=files or (), query=query, budget=budget
            ),
        )

    @server.tool(annotations=_hints(title="Put a queue item", read_only=False, idempotent=False))
    def queue_put(
        queue: Annotated[str, Field(description="The queue's name: a-z, 0-9, '.', '_', '-'.")],
        body: str,
        delay: Annotated[
            float, Field(ge=0, le=7 * 86400, description="Seconds before it may be taken.")
        ] = 0.0,
        idempotency_key: IdempotencyKey = None,
    ) -> CallToolResult:
        """Add an item to a work queue (outcome "created", or "already_exists" for a
        known key). A worker (`agentkeep queue work`) runs it as soon as it appears."""
        return _answer(
            source,
            lambda store: tools.queue_put(
                store, queue=queue, body=body, delay=delay, idempotency_key=idempotency_key
            ),
        )

    @server.tool(annotations=_hints(title="Take a queue item", read_only=False, idempotent=False))
    def queue_take(
        queue: str,
        lease: Annotated[
            float, Field(gt=0, le=7 * 86400, description="Seconds it is yours unless acked.")
        ] = 300.0,
    ) -> CallToolResult:
        """Claim the oldest ready item of a queue (exactly one taker gets it): its id,
        body and attempts, or null when nothing is ready. Ack it when done, nack it to
        give it back; unacked, it returns to the queue when the lease expires."""
        return _answer(source, lambda store: tools.queue_take(store, queue=queue, lease=lease))

    @server.tool(annotations=_hints(title="Ack a queue item", read_only=False, idempotent=False))
    def queue_ack(
        queue: str,
        item_id: str,
        attempt: Annotated[
            int | None, Field(ge=1, description="The attempts queue_take gave: only if still held.")
        ] = None,
    ) -> CallToolResult:
        """Mark a taken item done; error "conflict" once it is not taken any more."""
        return _answer(
            source,
            lambda store: tools.queue_ack(store, queue=queue, item_id=item_id, attempt=attempt),
        )

    @server.tool(annotations=_hints(title="Nack a queue item", read_only=False, idempotent=False))
    def queue_nack(
        queue: str,
        item_id: str,
        delay: Annotated[float, Field(ge=0, le=7 * 86400)] = 0.0,
        max_attempts: Annotated[int | None, Field(ge=1)] = None,
        attempt: Annotated[int | None, Field(ge=1)] = None,
        reason: str | None = None,
    ) -> CallToolResult:
        """Give a taken item back: ready again after delay seconds, or failed once it
        has had max_attempts takes; error "conflict" once it is not taken any more."""
        return _answer(
            source,
            lambda store: tools.queue_nack(
                store,
                queue=queue,
                item_id=item_id,
                delay=delay,
                max_attempts=max_attempts,
                attempt=attempt,
                reason=reason,
            ),
        )

    @server.tool(annotations=_hints(title="Send a message", read_only=False, idempotent=True))
    def msg_send(
        to: Annotated[list[str], Field(min_length=1, description="The recipients (agents).")],
        body: str = "",
        subject: str = "",
        cc: list[str] | None = None,
        reply_to: Annotated[str | None, Field(description="The message this answers.")] = None,
        thread: str | None = None,
        message_id: Annotated[
            str | None, Field(description="Your id for it: a retry delivers to nobody twice.")
        ] = None,
        ack_required: bool = False,
        importance: Literal["low", "normal", "high", "urgent"] = "normal",
        sender: Annotated[str | None, Field(description="Default: this server's actor.")] = None,
    ) -> CallToolResult:
        """Send a message to other agents (outcome "created", or "already_exists" for a
        message_id sent already). Each recipient finds it with msg_inbox."""
        return _answer(
            source,
            lambda store: tools.msg_send(
                store,
                to=to,
                body=body,
                subject=subject,
                cc=cc or (),
                reply_to=reply_to,
                thread=thread,
                message_id=message_id,
                ack_required=ack_required,
                importance=importance,
                sender=sender,
            ),
        )

    @server.tool(annotations=_hints(title="Inbox", **READ))
    def msg_inbox(
        agent: Agent = None,
        state: Literal["unread", "delivered", "read", "acked"] | None = None,
        limit: Annotated[int, Field(ge=1, le=tools.MAX_ROWS)] = 50,
    ) -> CallToolResult:
        """The messages in a mailbox, newest first, each with its state there (unread:
        delivered, not read yet). Read one with msg_read."""
        return _answer(
            source, lambda store: tools.msg_inbox(store, agent=agent, state=state, limit=limit)
        )

    @server.tool(annotations=_hints(title="Read a message", read_only=False, idempotent=True))
    def msg_read(message_id: str, agent: Agent = None) -> CallToolResult:
        """A message with its body; marks it read in the mailbox."""
        return _answer(
            source, lambda store: tools.msg_read(store, message_id=message_id, agent=agent)
        )

    @server.tool(
        annotations=_hints(title="Acknowledge a message", read_only=False, idempotent=True)
    )
    def msg_ack(message_id: str, agent: Agent = None) -> CallToolResult:
        """Acknowledge a message (asked for by ack_required): "updated", or "unchanged"
        when it already was."""
        return _answer(
            source, lambda store: tools.msg_ack(store, message_id=message_id, agent=agent)
        )

    @server.tool(annotations=_hints(title="Session and transcript", **READ))
    def session_get(
        session_id: int,
        after: Annotated[int, Field(ge=0, description="Entries to skip (from next).")] = 0,
        limit: Annotated[int, Field(ge=1, le=tools.MAX_TRANSCRIPT_CHUNK)] = 50,
    ) -> CallToolResult:
        """A session's fields and a chunk of its transcript; call again with
        after=transcript.next for the following chunk (null at the end)."""
        return _answer(
            source,
            lambda store: tools.session_get(store, session_id=session_id, after=after, limit=limit),
        )

    return server


def run_stdio(path: Path | None, actor: str | None) -> None:
    """Serve the project's store over stdio until the client closes stdin. Stdout is the
    JSON-RPC channel: logs (warnings and worse) go to stderr, one plain line each."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="agentkeep mcp: %(levelname)s %(message)s"
    )
    stores = ProjectStores(path, actor)
    try:
        build_server(stores).run("stdio")
    finally:
        stores.close()
