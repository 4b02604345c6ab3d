"""``/api/v1/queues``: work queues (:mod:`agentkeep.services.queues`, ``store.queues``) over
HTTP, as ``agentkeep queue put|take|ack|nack|ls|show`` do them.

An item is a file and its state is the directory it is in; every change is one rename, so
``take`` claims exactly one item for exactly one caller, and two callers racing for the
last item get it and ``{"item": null}``. A take over HTTP names no holder process (the
caller is elsewhere): its item comes back when the lease expires, unless acked or nacked
before (``attempt``: only if this take still holds it; else 409 ``conflict``).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agentkeep.errors import InvalidInput
from agentkeep.server import respond
from agentkeep.server.api_input import (
    Endpoint,
    Field,
    Query,
    body,
    idempotency_key,
    q_int,
    q_str,
)
from agentkeep.server.context import context
from agentkeep.services.queues import DEFAULT_LEASE_SECONDS, STATES

NAMES = "the queue's name (or the item's id)"
MAX_SECONDS = 7 * 86400.0  # the longest delay or lease the API takes


def _seconds(fields: dict[str, Any], name: str, default: float, *, zero: bool) -> float:
    value = fields.get(name, default)
    if not math.isfinite(value) or value > MAX_SECONDS or value < 0 or (value == 0 and not zero):
        low = "0" if zero else "more than 0"
        raise InvalidInput(f"{name} must be {low} to {MAX_SECONDS:,.0f} seconds")
    return float(value)


def list_queues(request: Request) -> Response:
    """Every queue with its counts by state and the age of its oldest ready item."""
    return respond.rows(request, context(request).store().queues.list_queues())


def list_items(request: Request) -> Response:
    """A queue's items, oldest first: ready, delayed, taken, failed, done (or one
    ``state``'s)."""
    state = q_str(request, "state")
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of: {', '.join(STATES)}")
    size = q_int(request, "limit", default=100, minimum=1, maximum=1000)
    found = (
        context(request).store().queues.items(request.path_params["queue"], state=state, limit=size)
    )
    return respond.rows(request, found)


def show_item(request: Request) -> Response:
    params = request.path_params
    return respond.one(context(request).store().queues.get(params["queue"], params["item"]))


ITEM_PUT = {
    "body": Field("str", required=True, description="the item's text (redacted first)"),
    "delay": Field("number", description="not taken before this many seconds (default 0)"),
}


def put_item(request: Request) -> Response:
    """Add an item; the same ``Idempotency-Key`` adds one (``already_exists``)."""
    fields = body(request, ITEM_PUT)
    written = (
        context(request)
        .store()
        .queues.put(
            request.path_params["queue"],
            fields["body"],
            idempotency_key=idempotency_key(request),
            delay=_seconds(fields, "delay", 0.0, zero=True),
        )
    )
    return respond.written("item", written.item, written.outcome)


TAKE = {
    "lease": Field(
        "number", description=f"seconds it is held (default {DEFAULT_LEASE_SECONDS:.0f})"
    )
}


def take_item(request: Request) -> Response:
    """Claim the oldest ready item for ``lease`` seconds: ``{"item": {…}}``, or
    ``{"item": null}`` when nothing is ready."""
    fields = body(request, TAKE)
    item = (
        context(request)
        .store()
        .queues.take(
            request.path_params["queue"],
            lease=_seconds(fields, "lease", DEFAULT_LEASE_SECONDS, zero=False),
        )
    )
    answer = {"schema_version": respond.SCHEMA_VERSION, "item": item.to_dict() if item else None}
    return respond.json_response(answer)


ACK = {"attempt": Field("int", minimum=1, description="only if this take still holds it")}


def ack_item(request: Request) -> Response:
    """Mark a taken item done; 409 when it is not taken any more (its lease expired)."""
    fields = body(request, ACK)
    params = request.path_params
    item = (
        context(request)
        .store()
        .queues.ack(params["queue"], params["item"], attempt=fields.get("attempt"))
    )
    return respond.written("item", item, "updated")


NACK = {
    "delay": Field("number", description="ready again after this many seconds (default 0)"),
    "max_attempts": Field("int", minimum=1, description="failed once it had this many takes"),
    "attempt": Field("int", minimum=1, description="only if this take still holds it"),
    "reason": Field("str", nullable=True, description="why (recorded in its event)"),
}


def nack_item(request: Request) -> Response:
    """Give a taken item back (ready again, or failed after ``max_attempts`` takes); 409
    when it is not taken any more."""
    fields = body(request, NACK)
    params = request.path_params
    item = (
        context(request)
        .store()
        .queues.nack(
            params["queue"],
            params["item"],
            delay=_seconds(fields, "delay", 0.0, zero=True),
            max_attempts=fields.get("max_attempts"),
            attempt=fields.get("attempt"),
            reason=fields.get("reason"),
        )
    )
    return respond.written("item", item, "updated")


ITEM = "/queues/{queue}/items/{item}"

ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/queues", list_queues, "rows", "queue_summary"),
    Endpoint(
        "GET",
        "/queues/{queue}/items",
        list_items,
        "rows",
        "item",
        query=(
            Query("state", "str", enum=STATES),
            Query("limit", "int", "1–1000, default 100"),
        ),
        text_id=NAMES,
    ),
    Endpoint(
        "POST",
        "/queues/{queue}/items",
        put_item,
        "written",
        "item",
        fields=ITEM_PUT,
        idempotent=True,
        text_id=NAMES,
    ),
    Endpoint(
        "POST", "/queues/{queue}/take", take_item, "one", "queue_take", fields=TAKE, text_id=NAMES
    ),
    Endpoint("GET", ITEM, show_item, "one", "item", text_id=NAMES),
    Endpoint("POST", f"{ITEM}/ack", ack_item, "written", "item", fields=ACK, text_id=NAMES),
    Endpoint("POST", f"{ITEM}/nack", nack_item, "written", "item", fields=NACK, text_id=NAMES),
]
