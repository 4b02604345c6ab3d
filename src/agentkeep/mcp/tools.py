"""What each MCP tool does, over an open store: the same library calls as the CLI's
commands, answering in the CLI's ``--json`` shapes (docs/json-output.md).

No MCP SDK here: :mod:`agentkeep.mcp.server` registers these functions with the SDK, gives
them their parameter schemas, descriptions and annotations, and turns an
:class:`~agentkeep.errors.AgentkeepError` into a tool error in the CLI's error shape.
Every function takes the store first and returns a JSON-ready value (``prime`` returns
its Markdown text, the way a SessionStart hook injects it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentkeep.errors import InvalidInput

if TYPE_CHECKING:
    from agentkeep.store import Store

SCHEMA_VERSION = 1
TRANSCRIPT_CHUNK = 50  # entries per session_get call by default
MAX_TRANSCRIPT_CHUNK = 500
MAX_ROWS = 200  # the longest list a read tool returns (its schema says so)
# A transcript entry's ``raw`` is the agent's stored record: everything else the entry
# says, again, in the upstream tool's own shape. It would double what a model reads.
_LEFT_OUT = ("raw",)


def _written(noun: str, item: Any, outcome: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "outcome": outcome, noun: item.to_dict()}


def _rows(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in items]


def _limit(limit: int, ceiling: int = MAX_ROWS) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= ceiling:
        raise InvalidInput(f"limit must be between 1 and {ceiling}")
    return limit


def tasks_ready(store: Store, *, limit: int = 20) -> list[dict[str, Any]]:
    """``tasks ready --json -n LIMIT``."""
    return _rows(store.ready_tasks(limit=_limit(limit)))


def task_claim(
    store: Store, *, task_id: int, assignee: str | None = None, force: bool = False
) -> dict[str, Any]:
    """``tasks claim ID --json``: atomic; a retry by the holder is ``unchanged``."""
    who = assignee or store.actor
    before = store.get_task(task_id)
    task = store.claim_task(task_id, who, force=force)
    retried = before.status == "in_progress" and before.assignee == who
    return _written("task", task, "unchanged" if retried else "updated")


def task_update(
    store: Store,
    *,
    task_id: int,
    title: str | None = None,
    body: str | None = None,
    status: str | None = None,
    priority: int | None = None,
    assignee: str | None = None,
    labels: Sequence[str] | None = None,
    expect_status: str | None = None,
) -> dict[str, Any]:
    """``tasks update ID --json``: only the fields given change (``assignee=""`` clears
    it, ``labels=[]`` removes them); ``expect_status`` makes it a compare-and-set."""
    changes: dict[str, Any] = {}
    for name, value in (
        ("title", title),
        ("body", body),
        ("status", status),
        ("priority", priority),
        ("labels", None if labels is None else list(labels)),
    ):
        if value is not None:
            changes[name] = value
    if assignee is not None:
        changes["assignee"] = assignee or None
    before = store.get_task(task_id)
    task = store.update_task(task_id, expect_status=expect_status, **changes)
    return _written("task", task, "updated" if task != before else "unchanged")


def task_add(
    store: Store,
    *,
    title: str,
    body: str = "",
    priority: int = 2,
    labels: Sequence[str] = (),
    assignee: str | None = None,
    parent_id: int | None = None,
    depends_on: Sequence[int] = (),
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``tasks add --json``; the same ``idempotency_key`` creates one task
    (``already_exists`` on a retry)."""
    written = store.add_task(
        title,
        body=body,
        priority=priority,
        labels=labels,
        assignee=assignee,
        parent_id=parent_id,
        depends_on=depends_on,
        idempotency_key=idempotency_key,
    )
    return _written("task", written.item, written.outcome)


def note_write(
    store: Store,
    *,
    kind: str,
    body: str = "",
    task_id: int | None = None,
    session_id: int | None = None,
    agent_id: int | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``notes add KIND BODY --json``; ``data`` holds the kind's fields (validation:
    command, exit_code, summary; pointer: url, ref; health: subject, status, detail)."""
    written = store.add_note(
        kind,
        body,
        data=dict(data or {}),
        task_id=task_id,
        session_id=session_id,
        agent_id=agent_id,
        idempotency_key=idempotency_key,
    )
    return _written("note", written.item, written.outcome)


def notes_latest(
    store: Store, *, kind: str = "handoff", task_id: int | None = None
) -> list[dict[str, Any]]:
    """``notes latest KIND --json``: an array of 0 or 1 notes."""
    note = store.latest_note(kind, task_id=task_id)
    return [] if note is None else [note.to_dict()]


def search(
    store: Store,
    *,
    query: str,
    kinds: Sequence[str] | None = None,
    session_id: int | None = None,
    since: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """``search QUERY --json``: best matches first, each match marked « » in its snippet."""
    from agentkeep.services.search import KINDS
    from agentkeep.timeutil import parse_since

    hits = store.search(
        query,
        kinds=kinds or KINDS,
        session=session_id,
        since=parse_since(since),
        limit=_limit(limit),
    )
    return _rows(hits)


def session_get(
    store: Store, *, session_id: int, after: int = 0, limit: int = TRANSCRIPT_CHUNK
) -> dict[str, Any]:
    """``sessions show ID --json`` plus a chunk of its transcript: the entries after the
    first ``after`` (0-based position), at most ``limit``; ``transcript.next`` is the
    ``after`` of the next chunk (null at the end) and ``transcript.total`` the number of
    entries (as ``GET /api/v1/sessions/ID/transcript`` pages them)."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InvalidInput("after must be 0 or more (a position in the transcript)")
    limit = _limit(limit, MAX_TRANSCRIPT_CHUNK)
    plan = store.resume_plan(session_id)
    session = {
        "schema_version": SCHEMA_VERSION,
        **store.get_session(session_id).to_dict(),
        "resumable": plan.resumable,
        "resume_reason": plan.reason,
    }
    # Only the chunk is read (from the index) when the store can; as the API pages it.
    found, total = store.transcript_chunk(session_id, after=after, limit=limit)
    end = after + len(found.entries)
    entries = [
        {k: v for k, v in entry.to_dict().items() if k not in _LEFT_OUT} for entry in found.entries
    ]
    session["entries"] = total  # what `sessions show --json` counts (transcript_size)
    session["transcript"] = {
        "origin": found.origin,
        "after": after,
        "entries": entries,
        "children": found.children,
        "next": end if end < total else None,
        "total": total,
    }
    return session


def prime(store: Store, *, max_chars: int = 10_000) -> str:
    """``agentkeep prime``: handoffs, next actions, ready tasks, recent failures and
    worktrees as Markdown of at most ``max_chars`` (200–10,000) characters."""
    from agentkeep.services.prime import MAX_CHARS

    if isinstance(max_chars, bool) or not isinstance(max_chars, int):
        raise InvalidInput("max_chars must be a whole number")
    record = store.prime(max_chars=min(max(max_chars, 200), MAX_CHARS))
    return record.text


# -- documents ---------------------------------------------------------------------------


def doc_list(
    store: Store,
    *,
    namespace: str | None = None,
    type: str | None = None,
    tag: str | None = None,
    where: Mapping[str, str] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """``doc ls --json``: indexed documents by ref (namespace, then name), filtered by
    namespace, type, tag and front matter fields (``where``: field → value)."""
    found = store.docs.list_docs(
        namespace=namespace, type=type, tag=tag, where={k: str(v) for k, v in (where or {}).items()}
    )
    found.sort(key=lambda doc: (doc.namespace, doc.name))
    return _rows(found[: _limit(limit)])


def doc_read(store: Store, *, ref: str, version: int | None = None) -> dict[str, Any]:
    """``doc show REF --json``: the document's ``fields``, ``body``, whole ``text`` and
    ``etag`` (name it as ``expect`` to write without overwriting someone else's change),
    its indexed record as ``doc``, and — for its current content — ``links`` (what it
    links to, each resolved to a ref when one matches) and ``backlinks`` (who links to it)."""
    if version is not None and (isinstance(version, bool) or version < 1):
        raise InvalidInput("version must be a version id from the document's history")
    content = store.docs.read_doc(ref, version=version)
    found = {"schema_version": SCHEMA_VERSION, **content.to_dict()}
    if version is None:
        found["links"] = store.docs.links(ref)
        found["backlinks"] = store.docs.backlinks(ref)
    return found


def doc_write(
    store: Store,
    *,
    ref: str,
    body: str | None = None,
    fields: Mapping[str, Any] | None = None,
    expect: str | None = None,
    create: bool | None = None,
    format: str | None = None,
) -> dict[str, Any]:
    """``doc new|edit --json``: write the given ``fields`` (the whole front matter) and/or
    ``body``, keeping what is not given. ``expect``: the etag read (a changed document is
    error ``stale_write``, whose ``details`` say what it is now); ``create`` True: only a
    new one (the same content again is ``already_exists``), False: only an existing one."""
    if format not in (None, "markdown", "json"):
        raise InvalidInput("format must be markdown or json")
    written = store.docs.write_doc(
        ref,
        body=body,
        fields=fields,
        fmt="json" if format == "json" else None,
        expect=expect,
        create=create,
    )
    return _written("doc", written.item, written.outcome)


# -- context -----------------------------------------------------------------------------


def context(
    store: Store,
    *,
    task_id: int | None = None,
    files: Sequence[str] = (),
    query: str | None = None,
    budget: int = 10_000,
) -> str:
    """``agentkeep context``: the specs and sections, handoffs, decisions and recent
    failures to read for a task, files (relative to the project root) and/or a query, as
    Markdown of at most ``budget`` characters, each item with why it was picked."""
    assembled = store.context.assemble(task=task_id, files=list(files), query=query, budget=budget)
    return assembled.markdown()


# -- queues ------------------------------------------------------------------------------


def queue_put(
    store: Store,
    *,
    queue: str,
    body: str,
    delay: float = 0.0,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """``queue put QUEUE BODY --json``: the same ``idempotency_key`` adds one item."""
    written = store.queues.put(queue, body, idempotency_key=idempotency_key, delay=delay)
    return _written("item", written.item, written.outcome)


def queue_take(store: Store, *, queue: str, lease: float = 300.0) -> dict[str, Any] | None:
    """``queue take QUEUE --json``: the claimed item, or None when nothing is ready. The
    item comes back when the lease expires unless acked or nacked before."""
    item = store.queues.take(queue, lease=lease)
    return None if item is None else {"schema_version": SCHEMA_VERSION, **item.to_dict()}


def queue_ack(
    store: Store, *, queue: str, item_id: str, attempt: int | None = None
) -> dict[str, Any]:
    """``queue ack QUEUE ID --json``: a conflict once the item is not taken any more."""
    return _written("item", store.queues.ack(queue, item_id, attempt=attempt), "updated")


def queue_nack(
    store: Store,
    *,
    queue: str,
    item_id: str,
    delay: float = 0.0,
    max_attempts: int | None = None,
    attempt: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """``queue nack QUEUE ID --json``: ready again after ``delay`` seconds, or failed
    after ``max_attempts`` takes."""
    item = store.queues.nack(
        queue, item_id, delay=delay, max_attempts=max_attempts, attempt=attempt, reason=reason
    )
    return _written("item", item, "updated")


# -- messages ----------------------------------------------------------------------------


def msg_send(
    store: Store,
    *,
    to: Sequence[str],
    body: str = "",
    subject: str = "",
    cc: Sequence[str] = (),
    reply_to: str | None = None,
    thread: str | None = None,
    message_id: str | None = None,
    ack_required: bool = False,
    importance: str = "normal",
    sender: str | None = None,
) -> dict[str, Any]:
    """``msg send --json``: the same ``message_id`` and content again is
    ``already_exists`` and delivers to nobody twice."""
    written = store.mail.send(
        list(to),
        subject,
        body,
        sender=sender,
        thread=thread,
        cc=list(cc),
        id=message_id,
        ack_required=ack_required,
        in_reply_to=reply_to,
        importance=importance,
    )
    return _written("message", written.item, written.outcome)


def msg_inbox(
    store: Store, *, agent: str | None = None, state: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """``msg inbox --json``: ``agent``'s mailbox (default: the actor), newest first."""
    found = store.mail.inbox(agent or str(store.actor), state=state, limit=_limit(limit))
    return _rows(found)


def msg_read(store: Store, *, message_id: str, agent: str | None = None) -> dict[str, Any]:
    """``msg read ID --json``: the message with its body, marked read in the mailbox."""
    message = store.mail.read(agent or str(store.actor), message_id)
    return {"schema_version": SCHEMA_VERSION, **message.to_dict()}


def msg_ack(store: Store, *, message_id: str, agent: str | None = None) -> dict[str, Any]:
    """``msg ack ID --json``: ``updated``, or ``unchanged`` when it already was acked."""
    written = store.mail.ack(agent or str(store.actor), message_id)
    return _written("message", written.item, written.outcome)
