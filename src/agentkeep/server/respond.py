"""The JSON shapes of docs/json-output.md as HTTP responses.

The API speaks the CLI's ``--json`` contract: single objects and mutations exactly as the
CLI prints them, errors in the same shape with the same codes (and the HTTP status of the
error class). Lists, which the CLI prints as a bare array, come as
``{"schema_version": 1, "rows": [...], "next": CURSOR|null}`` so that a page can say where
the next one starts; with ``?_nl=1`` they are NDJSON, one record per line, and the cursor is
in the ``X-Next-Cursor`` header (and a ``Link: <…>; rel="next"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agentkeep.errors import AgentkeepError

SCHEMA_VERSION = 1
JSON = "application/json"
NDJSON = "application/x-ndjson"


def _dict(item: Any) -> dict[str, Any]:
    return item.to_dict() if hasattr(item, "to_dict") else dict(item)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str).encode()


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(data), status_code=status, media_type=JSON, headers=headers)


def one(item: Any, status: int = 200) -> Response:
    """A single object: ``{"schema_version": 1, ...fields}``."""
    return json_response({"schema_version": SCHEMA_VERSION, **_dict(item)}, status)


def written(noun: str, item: Any, outcome: str) -> Response:
    """A mutation: ``{"schema_version": 1, "outcome": O, noun: {...}}``; 201 when created."""
    status = 201 if outcome == "created" else 200
    body = {"schema_version": SCHEMA_VERSION, "outcome": outcome, noun: _dict(item)}
    return json_response(body, status)


def rows(
    request: Request,
    items: Iterable[Any],
    next_cursor: str | None = None,
    *,
    param: str = "cursor",
) -> Response:
    """A page of a list, as JSON or (``?_nl=1``) NDJSON. ``param`` is the query
    parameter the endpoint pages by: the ``Link`` to the next page sets it."""
    records = [_dict(item) for item in items]
    headers: dict[str, str] = {}
    if next_cursor is not None:
        headers["X-Next-Cursor"] = next_cursor
        link = request.url.include_query_params(**{param: next_cursor})
        headers["Link"] = f'<{link}>; rel="next"'
    if request.query_params.get("_nl") in ("1", "true"):
        body = b"".join(dumps(record) + b"\n" for record in records)
        return Response(body, media_type=NDJSON, headers=headers)
    page = {"schema_version": SCHEMA_VERSION, "rows": records, "next": next_cursor}
    return json_response(page, headers=headers)


def error(failure: AgentkeepError) -> Response:
    """The CLI's JSON error shape (redacted) with the error class's HTTP status."""
    return json_response(failure.shown(), failure.http_status)


def problem(
    status: int,
    code: str,
    message: str,
    hint: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error the HTTP layer itself refuses with (bad Host, missing token, too large)."""
    body: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "error": message, "code": code}
    if hint:
        body["hint"] = hint
    return json_response(body, status, headers)
