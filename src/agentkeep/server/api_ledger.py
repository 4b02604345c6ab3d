"""``/api/v1``: the event ledger, metrics, agents, worktrees, and the store-wide reads
(search, stats, usage, doctor, status) — each as the matching CLI command does it."""

from __future__ import annotations

import math
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from agentkeep.errors import InvalidInput
from agentkeep.ops.retention import GROUPINGS as USAGE_GROUPINGS
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
    q_bool,
    q_int,
    q_list,
    q_str,
)
from agentkeep.server.context import context
from agentkeep.services.search import KINDS as SEARCH_KINDS
from agentkeep.services.stats import GROUPINGS as STATS_GROUPINGS
from agentkeep.timeutil import parse_since


def since(request: Request) -> str | None:
    """``?since=``: 30m, 2h, 7d (ago) or an ISO date/time, as ``--since``."""
    text = q_str(request, "since")
    return parse_since(text) if text else None


SINCE = Query("since", "str", "30m / 2h / 7d ago, or an ISO date/time")

# -- events -----------------------------------------------------------------------------


def list_events(request: Request) -> Response:
    """Events oldest first (by ``seq``), from ``?after=`` (a seq) or the cursor."""
    size = limit(request)
    start = q_int(request, "after", default=0) or 0
    position = cursor(request, (int,))
    if position is not None:
        start = max(start, position[0])
    found = (
        context(request)
        .store()
        .events(
            after=start,
            entity=q_str(request, "entity"),
            entity_id=q_int(request, "entity_id"),
            kind=q_str(request, "kind"),
            since=since(request),
            limit=size + 1,
        )
    )
    return page(request, found, size, lambda event: [event.seq])


EVENT_ADD = {
    "kind": Field("str", required=True, description="your own kind, e.g. deploy.finished"),
    "entity": Field("str", description="default: custom"),
    "entity_id": Field("int", nullable=True),
    "data": Field("any"),
}


def add_event(request: Request) -> Response:
    fields = body(request, EVENT_ADD)
    if not fields["kind"].strip():
        raise InvalidInput("an event needs a kind")
    written = (
        context(request)
        .store()
        .record_event(fields.pop("kind"), idempotency_key=idempotency_key(request), **fields)
    )
    return respond.written("event", written.item, written.outcome)


# -- metrics ----------------------------------------------------------------------------


def list_metrics(request: Request) -> Response:
    """Observations, newest first."""
    size = limit(request)
    position = cursor(request, (str, int))
    found = (
        context(request)
        .store()
        .list_metrics(
            name=q_str(request, "name"),
            since=since(request),
            limit=size + 1,
            before=(position[0], position[1]) if position else None,
        )
    )
    return page(request, found, size, lambda metric: [metric.at, metric.id])


METRIC_ADD = {
    "name": Field("str", required=True),
    "value": Field("number", required=True),
    "labels": Field("object", nullable=True, description="{str: str}"),
    "at": Field("str", nullable=True, description="ISO time (default: now)"),
    "session_id": Field("int", nullable=True, minimum=1),
    "agent_id": Field("int", nullable=True, minimum=1),
}


def add_metric(request: Request) -> Response:
    fields = body(request, METRIC_ADD)
    if not math.isfinite(fields["value"]):
        raise InvalidInput("value must be a finite number")
    labels = fields.get("labels") or {}
    if not all(isinstance(v, str) for v in labels.values()):
        raise InvalidInput("labels must map names to text")
    if fields.get("at") is not None:
        fields["at"] = _iso(fields["at"])
    metric = (
        context(request).store().record_metric(fields.pop("name"), fields.pop("value"), **fields)
    )
    return respond.written("metric", metric, "created")


def _iso(text: str) -> str:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"at must be an ISO date/time, not {text[:40]!r}") from None
    stamp = parse_since(text)
    assert stamp is not None
    return stamp


# -- agents and worktrees ---------------------------------------------------------------


def list_agents(request: Request) -> Response:
    return id_page(
        request, context(request).store().list_agents, "after_id", status=q_str(request, "status")
    )


def show_agent(request: Request) -> Response:
    """One agent by id or name."""
    ident = request.path_params["id"]
    agent: int | str = path_id(request) if ident.isdigit() else ident
    return respond.one(context(request).store().get_agent(agent))


def list_worktrees(request: Request) -> Response:
    """Worktrees by id: active ones unless ``?status=`` says removed or all."""
    status = q_str(request, "status") or "active"
    if status not in ("active", "removed", "all"):
        raise InvalidInput("status must be active, removed or all")
    store = context(request).store()
    return id_page(
        request, store.list_worktrees, "after_id", status=None if status == "all" else status
    )


def show_worktree(request: Request) -> Response:
    return respond.one(context(request).store().get_worktree(path_id(request)))


# -- store-wide reads -------------------------------------------------------------------


def search(request: Request) -> Response:
    """Everything stored matching ``q``, best first (ranked: one page, ``next`` null)."""
    from agentkeep.services.search import HIGHLIGHT

    query = q_str(request, "q")
    if not query or not query.strip():
        raise InvalidInput("search needs a query: ?q=…")
    kinds = q_list(request, "kind")
    for kind in kinds:
        if kind not in SEARCH_KINDS:
            raise InvalidInput(
                f"unknown kind {kind!r}", hint=f"use one of: {', '.join(SEARCH_KINDS)}"
            )
    size = q_int(request, "limit", default=20, minimum=1, maximum=1000)
    assert size is not None
    hits = (
        context(request)
        .store()
        .search(
            query,
            kinds=kinds or SEARCH_KINDS,
            session=q_int(request, "session"),
            since=since(request),
            limit=size,
            highlight=HIGHLIGHT,
        )
    )
    return respond.rows(request, hits)


def stats(request: Request) -> Response:
    by = q_str(request, "by") or "day"
    if by not in STATS_GROUPINGS:
        raise InvalidInput(f"by must be one of: {', '.join(STATS_GROUPINGS)}")
    return respond.rows(request, context(request).store().stats(by=by, since=since(request)))


def usage(request: Request) -> Response:
    """Where the store's bytes are (`agentkeep usage --json`)."""
    from agentkeep.ops.retention import usage as store_usage

    by = q_str(request, "by") or None
    if by is not None and by not in USAGE_GROUPINGS:
        raise InvalidInput(f"by must be one of: {', '.join(USAGE_GROUPINGS)}")
    report = store_usage(context(request).store(), by=by, full=q_bool(request, "full"))
    return respond.one(report)


def doctor(request: Request) -> Response:
    """The doctor's findings (`agentkeep doctor --json`, never ``--fix``: a read)."""
    from agentkeep.ops.doctor import doctor as run_doctor

    report = run_doctor(context(request).store(), fix=False, full=False)
    return respond.one(report)


def status(request: Request) -> Response:
    return respond.one(context(request).store().status())


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        "/events",
        list_events,
        "rows",
        "event",
        query=(
            Query("after", "int", "only events with seq > N"),
            Query("kind", "str", "a trailing * matches a prefix"),
            Query("entity", "str"),
            Query("entity_id", "int"),
            SINCE,
            *PAGED,
        ),
    ),
    Endpoint("POST", "/events", add_event, "written", "event", fields=EVENT_ADD, idempotent=True),
    Endpoint(
        "GET",
        "/metrics",
        list_metrics,
        "rows",
        "metric",
        query=(Query("name", "str"), SINCE, *PAGED),
    ),
    Endpoint("POST", "/metrics", add_metric, "written", "metric", fields=METRIC_ADD),
    Endpoint(
        "GET",
        "/agents",
        list_agents,
        "rows",
        "agent",
        query=(
            Query("status", "str", enum=("active", "idle", "done", "dead")),
            *PAGED,
        ),
    ),
    Endpoint("GET", "/agents/{id}", show_agent, "one", "agent"),
    Endpoint(
        "GET",
        "/worktrees",
        list_worktrees,
        "rows",
        "worktree",
        query=(
            Query("status", "str", "default: active", enum=("active", "removed", "all")),
            *PAGED,
        ),
    ),
    Endpoint("GET", "/worktrees/{id}", show_worktree, "one", "worktree"),
    Endpoint(
        "GET",
        "/search",
        search,
        "rows",
        "search_hit",
        query=(
            Query("q", "str", 'the query (words AND-ed, "phrases", prefix*)', required=True),
            Query("kind", "str", repeat=True, enum=tuple(SEARCH_KINDS)),
            Query("session", "int"),
            SINCE,
            Query("limit", "int", "1–1000, default 20"),
        ),
    ),
    Endpoint(
        "GET",
        "/stats",
        stats,
        "rows",
        "stats_row",
        query=(Query("by", "str", "default: day", enum=tuple(STATS_GROUPINGS)), SINCE),
    ),
    Endpoint(
        "GET",
        "/usage",
        usage,
        "one",
        "usage",
        query=(
            Query("by", "str", enum=tuple(USAGE_GROUPINGS)),
            Query("full", "bool", "measure every table again"),
        ),
    ),
    Endpoint("GET", "/doctor", doctor, "one", "doctor"),
    Endpoint("GET", "/status", status, "one", "status"),
]
