"""``/api/v1``: reads and writes of every noun, in the CLI's JSON shapes.

Each endpoint is a plain ``def`` (Starlette runs it in a worker thread) that checks its
input (:mod:`.api_input`), calls the store's public methods as the matching CLI command
does and answers with a shape from :mod:`.respond`. An ``AgentkeepError`` raised anywhere
becomes the CLI's error shape with its HTTP status (server/app.py).

The endpoints are declared in :data:`ENDPOINTS` (method, path, body fields, query
parameters, response shape); the routes and the OpenAPI document (server/openapi.py) are
both made from it, so they cannot disagree. This module holds the tasks and notes;
:mod:`.api_sessions` sessions, streams and artifacts; :mod:`.api_docs` documents;
:mod:`.api_queues` work queues; :mod:`.api_ledger` the rest.
"""

from __future__ import annotations

import inspect
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.errors import InvalidInput
from agentkeep.server import respond
from agentkeep.server.api_input import (
    PAGED,
    Endpoint,
    Field,
    Query,
    body,
    cursor,
    id_page,
    idempotency_key,
    limit,
    page,
    path_id,
    q_int,
    q_list,
    q_str,
)
from agentkeep.server.context import context
from agentkeep.services.notes import KINDS as NOTE_KINDS
from agentkeep.services.tasks import STATUSES

# -- tasks ------------------------------------------------------------------------------

TASK_KEY = (int, int)  # (priority, id): the order of task lists


def _task_key(task: Any) -> list[Any]:
    return [task.priority, task.id]


def list_tasks(request: Request) -> Response:
    """Tasks, most urgent first, filtered as `agentkeep tasks list`."""
    size = limit(request)
    after = cursor(request, TASK_KEY)
    found = (
        context(request)
        .store()
        .list_tasks(
            status=q_list(request, "status") or None,
            assignee=q_str(request, "assignee"),
            label=q_str(request, "label"),
            limit=size + 1,
            after=(after[0], after[1]) if after else None,
        )
    )
    return page(request, found, size, _task_key)


def ready_tasks(request: Request) -> Response:
    """Open tasks whose dependencies are all done, most urgent first."""
    size = limit(request)
    after = cursor(request, TASK_KEY)
    found = (
        context(request)
        .store()
        .ready_tasks(limit=size + 1, after=(after[0], after[1]) if after else None)
    )
    return page(request, found, size, _task_key)


def show_task(request: Request) -> Response:
    return respond.one(context(request).store().get_task(path_id(request)))


TASK_ADD = {
    "title": Field("str", required=True),
    "body": Field("str"),
    "priority": Field("int", minimum=0, maximum=4, description="0 is the most urgent"),
    "labels": Field("str_list"),
    "assignee": Field("str", nullable=True),
    "parent_id": Field("int", nullable=True, minimum=1),
    "depends_on": Field("int_list", minimum=1),
}


def add_task(request: Request) -> Response:
    fields = body(request, TASK_ADD)
    written = (
        context(request)
        .store()
        .add_task(fields.pop("title"), idempotency_key=idempotency_key(request), **fields)
    )
    return respond.written("task", written.item, written.outcome)


TASK_UPDATE = {
    "title": Field("str"),
    "body": Field("str"),
    "status": Field("str", enum=STATUSES),
    "priority": Field("int", minimum=0, maximum=4),
    "assignee": Field("str", nullable=True, description="null (or '') clears it"),
    "labels": Field("str_list", description="replaces the labels"),
    "parent_id": Field("int", nullable=True, minimum=1),
    "expect_status": Field(
        "str", enum=STATUSES, description="compare-and-set: 409 unless the task has it"
    ),
}


def update_task(request: Request) -> Response:
    """Change a task's fields (`agentkeep tasks update`); status changes follow the
    allowed transitions (409 otherwise)."""
    task_id = path_id(request)
    fields = body(request, TASK_UPDATE)
    if fields.get("assignee") == "":
        fields["assignee"] = None
    expect = fields.pop("expect_status", None)
    store = context(request).store()
    before = store.get_task(task_id)
    task = store.update_task(task_id, expect_status=expect, **fields)
    return respond.written("task", task, "updated" if task != before else "unchanged")


TASK_CLAIM = {
    "assignee": Field("str", description="who claims it (default: the server's actor)"),
    "force": Field("bool", description="claim even if its dependencies are not done"),
}


def claim_task(request: Request) -> Response:
    """Atomically claim an open task: exactly one concurrent claimer wins, the others
    get 409 ``conflict``. A retry by the holder is ``unchanged``."""
    task_id = path_id(request)
    fields = body(request, TASK_CLAIM)
    store = context(request).store()
    who = fields.get("assignee") or store.actor
    before = store.get_task(task_id)
    task = store.claim_task(task_id, who, force=fields.get("force", False))
    retried = before.status == "in_progress" and before.assignee == who
    return respond.written("task", task, "unchanged" if retried else "updated")


TASK_CLOSE = {"status": Field("str", enum=("done", "cancelled"), description="default: done")}


def close_task(request: Request) -> Response:
    task_id = path_id(request)
    fields = body(request, TASK_CLOSE)
    store = context(request).store()
    before = store.get_task(task_id)
    task = store.update_task(task_id, status=fields.get("status", "done"))
    return respond.written("task", task, "updated" if task != before else "unchanged")


def add_dependency(request: Request) -> Response:
    task_id, dep = path_id(request), path_id(request, "dep")
    body(request, {})
    store = context(request).store()
    before = store.get_task(task_id)
    task = store.add_dependency(task_id, dep)
    return respond.written("task", task, "updated" if task != before else "unchanged")


def remove_dependency(request: Request) -> Response:
    task_id, dep = path_id(request), path_id(request, "dep")
    return respond.written(
        "task", context(request).store().remove_dependency(task_id, dep), "updated"
    )


# -- notes ------------------------------------------------------------------------------


def list_notes(request: Request) -> Response:
    """Notes, newest first, filtered as `agentkeep notes list`."""
    return id_page(
        request,
        context(request).store().list_notes,
        "before_id",
        kind=q_str(request, "kind"),
        task_id=q_int(request, "task_id"),
        session_id=q_int(request, "session_id"),
        agent_id=q_int(request, "agent_id"),
    )


def latest_note(request: Request) -> Response:
    """The newest note of ``kind`` (default handoff), for a task if given: a list of
    zero or one, as `agentkeep notes latest --json`."""
    kind = q_str(request, "kind") or "handoff"
    if kind not in NOTE_KINDS:
        raise InvalidInput(
            f"unknown note kind {kind!r}", hint=f"use one of: {', '.join(NOTE_KINDS)}"
        )
    note = context(request).store().latest_note(kind, task_id=q_int(request, "task_id"))
    return respond.rows(request, [note] if note is not None else [])


def show_note(request: Request) -> Response:
    return respond.one(context(request).store().get_note(path_id(request)))


NOTE_ADD = {
    "kind": Field("str", required=True, enum=NOTE_KINDS),
    "body": Field("str"),
    "data": Field("object", nullable=True, description="the kind's fields"),
    "task_id": Field("int", nullable=True, minimum=1),
    "session_id": Field("int", nullable=True, minimum=1),
    "agent_id": Field("int", nullable=True, minimum=1),
    "author": Field("str", nullable=True),
}


def add_note(request: Request) -> Response:
    fields = body(request, NOTE_ADD)
    written = (
        context(request)
        .store()
        .add_note(fields.pop("kind"), idempotency_key=idempotency_key(request), **fields)
    )
    return respond.written("note", written.item, written.outcome)


# -- the table --------------------------------------------------------------------------

ID = "{id}"

ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        "/tasks",
        list_tasks,
        "rows",
        "task",
        query=(
            Query("status", "str", "only these statuses", repeat=True, enum=STATUSES),
            Query("assignee", "str"),
            Query("label", "str"),
            *PAGED,
        ),
    ),
    Endpoint("POST", "/tasks", add_task, "written", "task", fields=TASK_ADD, idempotent=True),
    Endpoint("GET", "/tasks/ready", ready_tasks, "rows", "task", query=PAGED),
    Endpoint("GET", f"/tasks/{ID}", show_task, "one", "task"),
    Endpoint("PATCH", f"/tasks/{ID}", update_task, "written", "task", fields=TASK_UPDATE),
    Endpoint("POST", f"/tasks/{ID}/claim", claim_task, "written", "task", fields=TASK_CLAIM),
    Endpoint("POST", f"/tasks/{ID}/close", close_task, "written", "task", fields=TASK_CLOSE),
    Endpoint("POST", f"/tasks/{ID}/dependencies/{{dep}}", add_dependency, "written", "task"),
    Endpoint("DELETE", f"/tasks/{ID}/dependencies/{{dep}}", remove_dependency, "written", "task"),
    Endpoint(
        "GET",
        "/notes",
        list_notes,
        "rows",
        "note",
        query=(
            Query("kind", "str", enum=NOTE_KINDS),
            Query("task_id", "int"),
            Query("session_id", "int"),
            Query("agent_id", "int"),
            *PAGED,
        ),
    ),
    Endpoint("POST", "/notes", add_note, "written", "note", fields=NOTE_ADD, idempotent=True),
    Endpoint(
        "GET",
        "/notes/latest",
        latest_note,
        "rows",
        "note",
        query=(Query("kind", "str", "default: handoff", enum=NOTE_KINDS), Query("task_id", "int")),
    ),
    Endpoint("GET", f"/notes/{ID}", show_note, "one", "note"),
]


def endpoints() -> list[Endpoint]:
    """Every endpoint under ``/api/v1``, in the order of the OpenAPI document."""
    from agentkeep.server import api_docs, api_ledger, api_queues, api_sessions, operations

    return [
        *ENDPOINTS,
        *api_sessions.ENDPOINTS,
        *api_ledger.ENDPOINTS,
        *api_docs.ENDPOINTS,
        *api_queues.ENDPOINTS,
        *operations.ENDPOINTS,
    ]


def routes() -> list[BaseRoute]:
    """The routes of :func:`endpoints`, one per path (its methods together), and
    ``/openapi.json``."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints():
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    found: list[BaseRoute] = [Route("/openapi.json", openapi_json, methods=["GET"])]
    for path, methods in by_path.items():
        found.append(Route("/api/v1" + path, _dispatch(methods), methods=list(methods)))
    return found


def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document (docs/openapi.json)."""
    from agentkeep.server.openapi import document_text

    return Response(document_text(), media_type="application/json")


# Raw uploads run at most this many at once: each holds a worker thread while its body
# streams in, and a slow one must not take the threads every other request needs.
UPLOADS_AT_ONCE = 4


def _dispatch(methods: dict[str, Endpoint]) -> Any:
    """One route's endpoint: its method's function in a worker thread (an ``async def``
    one on the event loop). A JSON body is read first, on the event loop, so a client that
    sends it slowly holds no thread."""

    async def endpoint(request: Request) -> Response:
        found = methods["GET" if request.method == "HEAD" else request.method]
        if inspect.iscoroutinefunction(found.func):  # it reads its body on the loop itself
            result: Response = await found.func(request)
            return result
        if found.raw_body:
            async with _upload_limiter(request):
                return await run_in_threadpool(found.func, request)
        if found.method != "GET":
            await request.body()  # kept by the request: the endpoint's body() reads it
        return await run_in_threadpool(found.func, request)

    return endpoint


def _upload_limiter(request: Request) -> anyio.CapacityLimiter:
    state = request.app.state
    limiter = getattr(state, "upload_limiter", None)
    if limiter is None:
        limiter = state.upload_limiter = anyio.CapacityLimiter(UPLOADS_AT_ONCE)
    assert isinstance(limiter, anyio.CapacityLimiter)
    return limiter
