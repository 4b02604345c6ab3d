"""What the API accepts: JSON bodies, query parameters, path ids and page cursors, checked
before the store sees them.

Bad input is the caller's error, never the server's: wrong types, unknown fields, bad JSON,
negative limits and non-integer ids raise :class:`InvalidInput` (400 ``invalid_input``).
Each endpoint declares its body as a mapping of field name to :class:`Field`, which is also
what :mod:`.openapi` turns into the request's JSON Schema.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
from starlette.requests import Request
from starlette.responses import Response

from agentkeep.errors import InvalidInput
from agentkeep.server import respond

# SQLite's integers are 64-bit: a larger id is not an id (and must not reach the driver).
MAX_ID = 2**63 - 1
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 1000
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class Field:
    """One field of a JSON body. ``kind``: str, int, number, bool, object, any,
    str_list or int_list."""

    kind: str
    required: bool = False
    nullable: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise InvalidInput(f"{name} must not be null")
        ok = _KINDS[self.kind](value)
        if not ok:
            raise InvalidInput(f"{name} must be {_NAMES[self.kind]}, not {_shown(value)}")
        if self.kind in ("int", "int_list"):
            for number in value if isinstance(value, list) else [value]:
                low = self.minimum if self.minimum is not None else -MAX_ID
                high = self.maximum if self.maximum is not None else MAX_ID
                if not low <= number <= high:
                    raise InvalidInput(f"{name} must be from {low} to {high}, not {number}")
        if self.kind == "number":
            # JSON's integers have no bound: one too large for a float is refused here,
            # not met as an OverflowError later (math.isfinite, the store's REAL column).
            try:
                value = float(value)
            except OverflowError:
                raise InvalidInput(f"{name} must be a number a float holds") from None
        if self.enum and value not in self.enum:
            raise InvalidInput(f"{name} must be one of: {', '.join(self.enum)}")
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KINDS: dict[str, Any] = {
    "str": lambda v: isinstance(v, str),
    "int": _is_int,
    "number": lambda v: _is_int(v) or isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
    "str_list": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "int_list": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
}
_NAMES = {
    "str": "text",
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "object": "a JSON object",
    "any": "any JSON value",
    "str_list": "a list of strings",
    "int_list": "a list of whole numbers",
}


def _shown(value: Any) -> str:
    text = json.dumps(value)[:40]
    return text


def _body_bytes(request: Request) -> bytes:
    """The request's body, read from a plain ``def`` endpoint's worker thread."""
    body: bytes = anyio.from_thread.run(request.body)
    return body


def body(request: Request, fields: Mapping[str, Field]) -> dict[str, Any]:
    """The JSON object of ``request``'s body, checked against ``fields``: only the fields
    that were sent (an absent field means "leave it"), each of the right type."""
    raw = _body_bytes(request)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(
                "the request body is not valid JSON", hint="send a JSON object"
            ) from exc
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInput(
            f"unknown field(s): {', '.join(unknown)[:200]}",
            hint=f"fields: {', '.join(fields)}" if fields else "send an empty body",
        )
    for name, field in fields.items():
        if field.required and name not in data:
            raise InvalidInput(f"{name} is required")
    return {name: fields[name].check(name, value) for name, value in data.items()}


def path_id(request: Request, name: str = "id") -> int:
    """An integer id from the path; anything else is a 400, not a 404."""
    return whole_id(request.path_params[name], name)


def whole_id(text: str, name: str = "id") -> int:
    """``text`` as a stored id: ASCII digits within SQLite's range, else InvalidInput (a
    400) — ``str.isdigit`` also takes ``²`` or ``１``, which ``int`` refuses or reads."""
    if not _DIGITS.fullmatch(text) or int(text) > MAX_ID:
        raise InvalidInput(f"{name} must be a whole number, not {text[:40]!r}")
    return int(text)


def q_str(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL byte")
    return value


def q_list(request: Request, name: str) -> list[str]:
    values = request.query_params.getlist(name)
    for value in values:
        if "\x00" in value:
            raise InvalidInput(f"{name} contains a NUL byte")
    return values


def q_int(
    request: Request,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_ID,
) -> int | None:
    return whole_number(
        request.query_params.get(name), name, default=default, minimum=minimum, maximum=maximum
    )


def whole_number(
    text: str | None,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_ID,
) -> int | None:
    """``text`` (a query parameter's or a header's value) as a whole number from
    ``minimum`` to ``maximum`` (default: what SQLite's integers hold); InvalidInput else."""
    if text is None or text == "":
        return default
    if len(text) > 40:  # no int() of a megabyte of digits
        raise InvalidInput(f"{name} must be from {minimum} to {maximum}, not {text[:40]!r}…")
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {text[:40]!r}") from None
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be from {minimum} to {maximum}, not {value}")
    return value


def q_bool(request: Request, name: str) -> bool:
    text = request.query_params.get(name)
    if text is None:
        return False
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("", "0", "false", "no"):
        return False
    raise InvalidInput(f"{name} must be true or false, not {text[:40]!r}")


def limit(request: Request) -> int:
    """``?limit=``: the page size (default 100, at most 1000)."""
    value = q_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    assert value is not None
    return value


def encode_cursor(key: list[Any]) -> str:
    """An opaque cursor: base64url of the last row's sort key (JSON)."""
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor(request: Request, types: tuple[type, ...]) -> list[Any] | None:
    """The sort key a ``?cursor=`` names, checked against the key's ``types``."""
    text = request.query_params.get("cursor")
    if not text:
        return None
    try:
        if len(text) > MAX_CURSOR:  # ours are a few dozen characters
            raise ValueError(text)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = json.loads(raw)
    except (ValueError, TypeError, RecursionError):  # RecursionError: [[[[...]]]]
        raise InvalidInput("cursor is not one this server gave out") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(
            isinstance(part, kind) and not isinstance(part, bool)
            for part, kind in zip(key, types, strict=True)
        )
        or any(isinstance(part, int) and not -MAX_ID <= part <= MAX_ID for part in key)
        or any(isinstance(part, str) and not _clean_text(part) for part in key)
    ):
        raise InvalidInput("cursor is not one this server gave out")
    return key


def _clean_text(text: str) -> bool:
    """No NUL and no lone surrogate (which no store query can encode)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: the store's ``idempotency_key`` for a create."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key.strip() or len(key) > 200:
        raise InvalidInput("Idempotency-Key must be 1 to 200 characters")
    return key


def page(
    request: Request, found: Sequence[Any], size: int, key: Callable[[Any], list[Any]]
) -> Response:
    """A page of ``size`` rows from ``found`` (fetched with ``size + 1``): ``next`` is the
    cursor of the last row shown when more matched, else null."""
    rows = list(found[:size])
    following = encode_cursor(key(rows[-1])) if len(found) > size and rows else None
    return respond.rows(request, rows, following)


def id_page(
    request: Request, lister: Callable[..., Sequence[Any]], position: str, **filters: Any
) -> Response:
    """A page of a list ordered by id: ``lister`` (a store method) called with ``filters``,
    one row more than the page (``limit``), and the cursor's id as ``position`` —
    ``before_id`` for a list newest first, ``after_id`` for one oldest first."""
    size = limit(request)
    found = cursor(request, (int,))
    rows = lister(**filters, limit=size + 1, **{position: found[0] if found else None})
    return page(request, rows, size, lambda item: [item.id])


@dataclass(frozen=True)
class Query:
    """One query parameter of an endpoint (for the OpenAPI document and the docs)."""

    name: str
    kind: str  # str | int | bool
    description: str = ""
    repeat: bool = False
    enum: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One endpoint under ``/api/v1``: what the routes and the OpenAPI document are made
    from. ``shape``: one, rows, written, bytes, accepted (202: a background operation
    started, the noun's object) or file (a download); ``noun`` names the record (a
    dataclass of agentkeep.models, or a schema of server/openapi.py). ``text_id``, when
    set, describes the path's id, which is then text rather than a number (a ``{name:path}``
    one takes slashes)."""

    method: str
    path: str
    func: Callable[[Request], Any]  # a plain def, or async (an upload's stream)
    shape: str
    noun: str
    fields: Mapping[str, Field] | None = None
    query: tuple[Query, ...] = ()
    idempotent: bool = False
    raw_body: bool = False  # the body is the bytes themselves (artifact upload)
    text_id: str = ""
    conditional: bool = False  # takes If-Match (a stale etag is 412 stale_write)


PAGED = (
    Query("limit", "int", "page size: 1 to 1000, default 100"),
    Query("cursor", "str", "where the page starts: the previous page's `next`"),
)
