"""The OpenAPI 3.1 document of ``/api/v1``, made from the endpoint table
(:func:`agentkeep.server.api.endpoints`) and the record dataclasses (their field names and
types become JSON Schema), so that it cannot drift from what the server does.

Served at ``/openapi.json`` and checked in as ``docs/openapi.json`` by
``scripts/gen_docs.py`` (``--check`` fails on drift; tests/test_server_openapi.py too).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import types
import typing
from typing import Any

from agentkeep.server.api_input import Endpoint, Field, Query

# Record name in the document -> "module:Class" of its dataclass.
RECORDS = {
    "task": "agentkeep.models:Task",
    "note": "agentkeep.models:Note",
    "session": "agentkeep.models:Session",
    "agent": "agentkeep.models:Agent",
    "worktree": "agentkeep.models:Worktree",
    "event": "agentkeep.models:Event",
    "metric": "agentkeep.models:Metric",
    "artifact": "agentkeep.models:Artifact",
    "stream": "agentkeep.models:Stream",
    "search_hit": "agentkeep.services.search:SearchHit",
    "stats_row": "agentkeep.services.stats:StatsRow",
    "status": "agentkeep.store:StoreStatus",
    "transcript_entry": "agentkeep.services.transcripts:TranscriptEntry",
    "pin": "agentkeep.ops.retention:PinResult",
    "doc": "agentkeep.models:Doc",
    "doc_version": "agentkeep.models:DocVersion",
    "doc_content": "agentkeep.services.docs:DocContent",
    "queue_summary": "agentkeep.services.queues:QueueSummary",
    "item": "agentkeep.services.queues:QueueItem",
}
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "object": {"type": "object"},
    "any": {},
    "str_list": {"type": "array", "items": {"type": "string"}},
    "int_list": {"type": "array", "items": {"type": "integer"}},
}
_ERROR_STATUSES = {
    "400": "invalid input (`invalid_input`): wrong types, unknown fields, bad JSON, bad id",
    "404": "no such record (`not_found`)",
    "409": "the state changed under you (`conflict`): a lost claim, a refused transition",
}


# What a write answers: a document's DELETE is ``deleted`` (docs/http-api.md).
OUTCOMES = ["created", "updated", "unchanged", "already_exists", "deleted"]
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def template(path: str) -> str:
    """A route's path as an OpenAPI path template: ``{ref:path}`` is ``{ref}``."""
    return _CONVERTER.sub(r"{\1}", path)


# A background operation (server/operations.py ``Operation.to_dict``).
OPERATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A background gc, backup, export or import and where it has got to.",
    "properties": {
        "id": {"type": "string"},
        "kind": {"enum": ["gc", "backup", "export", "import"]},
        "params": {"type": "object"},
        "status": {"enum": ["running", "done", "failed"]},
        "phase": {"type": "string"},
        "done": {"type": "integer"},
        "total": {"type": "integer"},
        "started_at": {"type": "string"},
        "ended_at": {"type": ["null", "string"]},
        "result": {"type": ["null", "object"]},
        "error": {"type": ["null", "object"], "description": "why it failed: error, code"},
        "download": {"type": "string", "description": "a finished export's file"},
    },
    "required": [
        "id",
        "kind",
        "params",
        "status",
        "phase",
        "done",
        "total",
        "started_at",
        "ended_at",
        "result",
        "error",
    ],
}


def type_schema(hint: Any) -> dict[str, Any]:
    """JSON Schema for a Python type annotation of a record's field."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [type_schema(arg) for arg in typing.get_args(hint)]
        kinds = [o.get("type") for o in options]
        if all(isinstance(k, str) for k in kinds) and all(len(o) == 1 for o in options):
            return {"type": sorted(set(typing.cast(list[str], kinds)))}
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        return {"type": "array", "items": type_schema(args[0]) if args else {}}
    if origin is dict or hint is dict:
        args = typing.get_args(hint)
        if len(args) == 2:
            return {"type": "object", "additionalProperties": type_schema(args[1])}
        return {"type": "object"}
    return {}  # Any, and anything else: any JSON value


def record_schema(spec: str) -> dict[str, Any]:
    """The JSON Schema of a record dataclass: every field, required, typed."""
    module, name = spec.split(":")
    cls = getattr(importlib.import_module(module), name)
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    return {
        "type": "object",
        "description": (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
        "properties": {field: type_schema(hints[field]) for field in fields},
        "required": fields,
    }


def field_schema(field: Field) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(json.dumps(_KIND_SCHEMAS[field.kind]))  # a copy
    numbers = schema["items"] if field.kind == "int_list" else schema
    if field.kind in ("int", "int_list"):
        numbers["minimum"] = field.minimum if field.minimum is not None else -(2**63 - 1)
        numbers["maximum"] = field.maximum if field.maximum is not None else 2**63 - 1
    if field.enum:
        schema["enum"] = list(field.enum)
    if field.nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"].append(None)
    if field.description:
        schema["description"] = field.description
    return schema


def body_schema(fields: dict[str, Field]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: field_schema(f) for name, f in fields.items()},
        "additionalProperties": False,
    }
    required = [name for name, f in fields.items() if f.required]
    if required:
        schema["required"] = required
    return schema


def query_parameter(query: Query) -> dict[str, Any]:
    schema: dict[str, Any] = dict(_KIND_SCHEMAS[query.kind])
    if query.kind == "int":
        schema["minimum"] = 1 if query.name == "limit" else 0
        if query.name == "limit":
            schema["maximum"] = 1000
    if query.enum:
        schema["enum"] = list(query.enum)
    if query.repeat:
        schema = {"type": "array", "items": schema}
    parameter: dict[str, Any] = {"name": query.name, "in": "query", "schema": schema}
    if query.description:
        parameter["description"] = query.description
    if query.required:
        parameter["required"] = True
    return parameter


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok_schema(endpoint: Endpoint) -> dict[str, Any]:
    noun = _ref(endpoint.noun)
    version = {"type": "integer", "const": 1}
    if endpoint.shape in ("one", "accepted"):
        return {"allOf": [noun, {"properties": {"schema_version": version}}]}
    if endpoint.shape == "rows":
        return {
            "type": "object",
            "properties": {
                "schema_version": version,
                "rows": {"type": "array", "items": noun},
                "next": {"type": ["string", "null"], "description": "the next page's cursor"},
            },
            "required": ["schema_version", "rows", "next"],
        }
    return {
        "type": "object",
        "properties": {
            "schema_version": version,
            "outcome": {"enum": OUTCOMES},
            endpoint.noun: noun,
        },
        "required": ["schema_version", "outcome", endpoint.noun],
    }


def _path_parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    found = []
    path = template(endpoint.path)
    for part in path.split("/"):
        if part.startswith("{"):
            name = part.strip("{}")
            text = endpoint.text_id or ("an id or a name" if path.startswith("/agents/") else "")
            schema: dict[str, Any] = (
                {"type": "string", "description": text}
                if text
                else {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
            )
            found.append({"name": name, "in": "path", "required": True, "schema": schema})
    return found


def operation(endpoint: Endpoint) -> dict[str, Any]:
    doc = (endpoint.func.__doc__ or "").strip()
    summary = doc.split("\n\n")[0].replace("\n", " ") if doc else ""
    op: dict[str, Any] = {
        "operationId": endpoint.func.__name__,
        "summary": summary or f"{endpoint.method} {endpoint.path}",
        "parameters": _path_parameters(endpoint) + [query_parameter(q) for q in endpoint.query],
    }
    if endpoint.idempotent:
        op["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "retry-safe: the same key creates one record",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
        )
    if endpoint.conditional:
        op["parameters"] += [
            {
                "name": "If-Match",
                "in": "header",
                "description": "the etag the write starts from (412 when the document "
                "changed since); * : only an existing document",
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
        ]
        if endpoint.method == "PUT":
            op["parameters"].append(
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "description": "* : only a new document",
                    "schema": {"const": "*"},
                }
            )
    if endpoint.fields is not None:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body_schema(dict(endpoint.fields))}},
        }
    elif endpoint.raw_body:
        op["requestBody"] = {
            "required": True,
            "description": _RAW_BODIES[endpoint.noun],
            "content": {"application/octet-stream": {"schema": _BYTES}, "*/*": {"schema": _BYTES}},
        }
    responses: dict[str, Any] = {}
    if endpoint.shape == "bytes":
        responses["200"] = {
            "description": "the stored bytes (text/plain for anything a browser would run)",
            "content": {"*/*": {"schema": {}}},
        }
        responses["206"] = {
            "description": "the single byte range asked for (Range)",
            "content": {"*/*": {"schema": {}}},
        }
        responses["304"] = {"description": "unchanged since the ETag given (If-None-Match)"}
        responses["416"] = {"description": "the range is outside the bytes", **_error_content()}
    elif endpoint.shape == "file":
        tar: dict[str, Any] = {"application/x-tar": {"schema": {}}}
        responses["200"] = {"description": "the file, as an attachment", "content": tar}
        responses["206"] = {"description": "the byte range(s) asked for (Range)"}
        responses["416"] = {"description": "the range is outside the file"}
    elif endpoint.shape == "accepted":
        content = {"application/json": {"schema": _ok_schema(endpoint)}}
        responses["202"] = {
            "description": "started in the background: poll the operation for its state",
            "content": content,
        }
    else:
        created = endpoint.shape == "written" and endpoint.method in ("POST", "PUT")
        content = {"application/json": {"schema": _ok_schema(endpoint)}}
        responses["200"] = {"description": "OK", "content": content}
        if created:
            responses["201"] = {"description": "created", "content": content}
    for status, text in _ERROR_STATUSES.items():
        responses[status] = {"description": text, **_error_content()}
    if endpoint.conditional:
        responses["412"] = {
            "description": "If-Match named an etag the document no longer has "
            "(`stale_write`; `details`: current_etag, fields)",
            **_error_content(),
        }
    if endpoint.method != "GET":
        responses["401"] = {"description": "no token", **_error_content()}
        responses["403"] = {
            "description": "a wrong token, or a cross-origin request",
            **_error_content(),
        }
        op["security"] = [{"bearer": []}, {"cookie": []}]
    op["responses"] = responses
    return op


# Bytes, not a JSON value: a fuzzer sends bytes (an empty schema would have it build
# arbitrary JSON, a recursive strategy, for every upload).
_BYTES = {"type": "string", "format": "binary"}
_RAW_BODIES = {
    "artifact": "the artifact's bytes; Content-Type is stored as its type",
    "operation": "the bundle to import: a tar as `agentkeep export` writes it",
}


def _error_content() -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref("error")}}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    from agentkeep.server.api import endpoints

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints():
        paths.setdefault("/api/v1" + template(endpoint.path), {})[endpoint.method.lower()] = (
            operation(endpoint)
        )
    schemas: dict[str, Any] = {name: record_schema(spec) for name, spec in RECORDS.items()}
    schemas["session_shown"] = {
        "allOf": [
            _ref("session"),
            {
                "properties": {
                    "entries": {"type": "integer"},
                    "resume_reason": {"type": ["string", "null"]},
                },
                "required": ["entries", "resume_reason"],
            },
        ]
    }
    schemas["operation"] = OPERATION_SCHEMA
    schemas["queue_take"] = {
        "type": "object",
        "description": "What a take claimed: a queue item, or null when nothing was ready.",
        "properties": {"item": {"anyOf": [_ref("item"), {"type": "null"}]}},
        "required": ["item"],
    }
    schemas["usage"] = {"type": "object", "required": ["total_bytes", "areas", "tables"]}
    schemas["doctor"] = {"type": "object", "required": ["ok", "fix", "findings"]}
    schemas["error"] = {
        "type": "object",
        "properties": {
            "schema_version": {"type": "integer", "const": 1},
            "error": {"type": "string"},
            "code": {"type": "string"},
            "hint": {"type": "string"},
        },
        "required": ["schema_version", "error", "code"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "agentkeep",
            "version": "1",
            "description": "The agentkeep store over HTTP (docs/http-api.md): the CLI's "
            "JSON shapes (docs/json-output.md), cursor pages, the store's errors.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "agentkeep_token"},
            },
        },
    }


def document_text() -> str:
    """The document as checked in (docs/openapi.json): stable, sorted keys."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
