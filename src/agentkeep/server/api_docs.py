"""``/api/v1/docs``: documents (:mod:`agentkeep.services.docs`, ``store.docs``) over HTTP.

A document is named in the path by its ref, ``namespace/name`` (slashes and all:
``/api/v1/docs/decisions/2026/storage``), or by its file's path in the project
(``/api/v1/docs/docs/adr/0001-storage.md``), which also reaches a document whose name
ends in ``/history`` or ``/restore`` (those two suffixes are the sub-resources).

Reads answer with the document's etag (the sha256 of its file) in ``ETag``; a write
names the etag it started from in ``If-Match`` and is refused with **412**
``stale_write`` when the file changed since, the error's ``details`` saying what the
document is now (``current_etag``, its fields) so the writer can merge and retry.
``If-Match: *`` writes only an existing document, ``If-None-Match: *`` only a new one.
Every write goes through ``store.docs`` as the CLI's does: the privacy boundary, the
namespace's schema and quotas, another live holder's lock (409 ``conflict``), a version
kept of what it replaces, an event. ``DELETE`` is recoverable: ``POST …/restore`` brings
the last content back (``history`` lists every version).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agentkeep.errors import InvalidInput, StaleWrite
from agentkeep.server import respond
from agentkeep.server.api_input import (
    MAX_ID,
    PAGED,
    Endpoint,
    Field,
    Query,
    body,
    cursor,
    limit,
    page,
    q_bool,
    q_int,
    q_list,
    q_str,
)
from agentkeep.server.context import context
from agentkeep.services.docs import ORIGINS, DocContent

REF = "{ref:path}"
REF_TEXT = (
    "the document's ref, namespace/name (its slashes as they are), or its file's path in "
    "the project"
)
FORMATS = ("markdown", "json")
STALE_STATUS = 412  # If-Match named an etag the document no longer has


def _ref(request: Request) -> str:
    ref: str = request.path_params["ref"]
    if not ref.strip("/") or "\x00" in ref:
        raise InvalidInput(
            f"{ref[:60]!r} is not a document reference",
            hint="name a document as NAMESPACE/NAME, e.g. decisions/0001-storage",
        )
    return ref


def _etag_header(etag: str) -> dict[str, str]:
    return {"ETag": f'"{etag}"'}


def _precondition(request: Request, name: str) -> str | None:
    """An ``If-Match``/``If-None-Match`` value: ``*`` or one etag (quotes and a weak
    ``W/`` taken off: a document's etag is its bytes' hash, so weak and strong agree)."""
    value = request.headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value or "," in value or len(value) > 200:
        raise InvalidInput(
            f"{name} must be one etag (as ETag gave it) or *",
            hint="read the document again and send its ETag",
        )
    return value


def _stale(failure: StaleWrite) -> Response:
    """The store's ``stale_write`` error (details included) as a 412."""
    return respond.json_response(failure.shown(), STALE_STATUS)


# -- reads ------------------------------------------------------------------------------


def _where(values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        key, equals, expected = value.partition("=")
        if not equals or not key.strip():
            raise InvalidInput(
                f"where must be FIELD=VALUE, not {value[:40]!r}", hint="e.g. where=status=draft"
            )
        found[key.strip()] = expected
    return found


def list_docs(request: Request) -> Response:
    """Indexed documents by ref (namespace, then name), filtered as `agentkeep doc ls`."""
    size = limit(request)
    after = cursor(request, (str, str))
    origin = q_str(request, "origin")
    if origin is not None and origin not in ORIGINS:
        raise InvalidInput(f"origin must be one of: {', '.join(ORIGINS)}")
    problems = q_str(request, "problems")
    found = (
        context(request)
        .store()
        .docs.list_docs(
            namespace=q_str(request, "namespace"),
            type=q_str(request, "type"),
            tag=q_str(request, "tag"),
            where=_where(q_list(request, "where")),
            origin=origin,
            problems=q_bool(request, "problems") if problems is not None else None,
        )
    )
    # Ordered here, by code point, so that a cursor means the same on both backends
    # (PostgreSQL's ORDER BY follows the database's collation).
    found.sort(key=lambda doc: (doc.namespace, doc.name))
    if after is not None:
        found = [doc for doc in found if (doc.namespace, doc.name) > (after[0], after[1])]
    return page(request, found[: size + 1], size, lambda doc: [doc.namespace, doc.name])


def _content(content: DocContent) -> Response:
    return respond.json_response(
        {"schema_version": respond.SCHEMA_VERSION, **content.to_dict()},
        headers=_etag_header(content.etag),
    )


def show_doc(request: Request) -> Response:
    """A document's content — ``fields`` (its front matter), ``body``, ``text`` (the whole
    file), ``etag`` and the indexed record as ``doc`` — or, with ``?version=``, a stored
    version of it (an id from its history)."""
    version = q_int(request, "version", minimum=1, maximum=MAX_ID)
    return _content(context(request).store().docs.read_doc(_ref(request), version=version))


def doc_history(request: Request) -> Response:
    """Every recorded version of a document, oldest first (a deleted one's too)."""
    return respond.rows(request, context(request).store().docs.history(_ref(request)))


# -- writes -----------------------------------------------------------------------------

DOC_WRITE = {
    "fields": Field(
        "object", nullable=True, description="the front matter (replaces it); absent: kept"
    ),
    "body": Field(
        "str", nullable=True, description="the text after the front matter; absent: kept"
    ),
    "format": Field(
        "str", enum=FORMATS, description="a new document's file: markdown (default) or json"
    ),
    "force": Field("bool", description="write over a stale If-Match and another holder's lock"),
}
DOC_CREATE = {"ref": Field("str", required=True, description="namespace/name"), **DOC_WRITE}
DOC_RESTORE = {
    "version": Field("int", minimum=1, description="a version id (default: the last content)"),
    "force": Field("bool", description="restore over another holder's lock"),
}


def _write(
    request: Request, ref: str, fields: dict[str, Any], *, create: bool | None, expect: str | None
) -> Response:
    fmt = fields.get("format")
    try:
        written = (
            context(request)
            .store()
            .docs.write_doc(
                ref,
                fields=fields.get("fields"),
                body=fields.get("body"),
                fmt="json" if fmt == "json" else None,
                expect=expect,
                create=create,
                force=fields.get("force", False),
            )
        )
    except StaleWrite as failure:
        return _stale(failure)
    status = 201 if written.outcome == "created" else 200
    answer = {
        "schema_version": respond.SCHEMA_VERSION,
        "outcome": written.outcome,
        "doc": written.item.to_dict(),
    }
    return respond.json_response(answer, status, headers=_etag_header(written.item.etag))


def put_doc(request: Request) -> Response:
    """Write a document: its fields and body (those sent; the others kept). ``If-Match``
    (its etag) refuses the write with 412 ``stale_write`` when the file changed since;
    ``If-Match: *`` only if it exists, ``If-None-Match: *`` only if it does not."""
    ref = _ref(request)
    fields = body(request, DOC_WRITE)
    match = _precondition(request, "if-match")
    none_match = _precondition(request, "if-none-match")
    if none_match is not None and none_match != "*":
        raise InvalidInput("If-None-Match on a write must be *", hint="it means: only a new one")
    create: bool | None = None
    if match == "*":
        create, match = False, None
    if none_match == "*":
        if create is False:
            raise InvalidInput("If-Match: * and If-None-Match: * contradict each other")
        create = True
    return _write(request, ref, fields, create=create, expect=match)


def create_doc(request: Request) -> Response:
    """Create a document (201). The same content again is ``already_exists``; another
    content under that ref is 409 ``conflict`` (PUT changes it)."""
    fields = body(request, DOC_CREATE)
    ref = fields.pop("ref")
    if not ref.strip():
        raise InvalidInput("ref is required: namespace/name")
    return _write(request, ref, fields, create=True, expect=None)


def delete_doc(request: Request) -> Response:
    """Delete a document's file, recoverably (``outcome: deleted``): its content is kept
    as a version, ``POST …/restore`` brings it back. ``If-Match`` as for PUT;
    ``?force=1`` deletes over another holder's lock."""
    ref = _ref(request)
    expect = _precondition(request, "if-match")
    try:
        doc = (
            context(request)
            .store()
            .docs.remove_doc(
                ref, expect=None if expect == "*" else expect, force=q_bool(request, "force")
            )
        )
    except StaleWrite as failure:
        return _stale(failure)
    return respond.written("doc", doc, "deleted")


def restore_doc(request: Request) -> Response:
    """Bring back a stored version of a document (by default the last content it had)
    as its current content: a new version, and the file written again."""
    ref = _ref(request)
    fields = body(request, DOC_RESTORE)
    written = (
        context(request)
        .store()
        .docs.restore_doc(ref, version=fields.get("version"), force=fields.get("force", False))
    )
    answer = {
        "schema_version": respond.SCHEMA_VERSION,
        "outcome": written.outcome,
        "doc": written.item.to_dict(),
    }
    status = 201 if written.outcome == "created" else 200
    return respond.json_response(answer, status, headers=_etag_header(written.item.etag))


# -- the table --------------------------------------------------------------------------

# The sub-resources come first: a route's {ref:path} takes slashes, so /docs/{ref:path}
# would also match .../history.
ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        "/docs",
        list_docs,
        "rows",
        "doc",
        query=(
            Query("namespace", "str"),
            Query("type", "str"),
            Query("tag", "str"),
            Query("where", "str", "FIELD=VALUE: a front matter field (a list: holds it)", True),
            Query("origin", "str", enum=ORIGINS),
            Query("problems", "bool", "true: only invalid ones; false: only valid ones"),
            *PAGED,
        ),
    ),
    Endpoint("POST", "/docs", create_doc, "written", "doc", fields=DOC_CREATE),
    Endpoint("GET", f"/docs/{REF}/history", doc_history, "rows", "doc_version", text_id=REF_TEXT),
    Endpoint(
        "POST",
        f"/docs/{REF}/restore",
        restore_doc,
        "written",
        "doc",
        fields=DOC_RESTORE,
        text_id=REF_TEXT,
    ),
    Endpoint(
        "GET",
        f"/docs/{REF}",
        show_doc,
        "one",
        "doc_content",
        query=(Query("version", "int", "a version id from its history"),),
        text_id=REF_TEXT,
    ),
    Endpoint(
        "PUT",
        f"/docs/{REF}",
        put_doc,
        "written",
        "doc",
        fields=DOC_WRITE,
        text_id=REF_TEXT,
        conditional=True,
    ),
    Endpoint(
        "DELETE",
        f"/docs/{REF}",
        delete_doc,
        "written",
        "doc",
        query=(Query("force", "bool", "delete over another holder's lock"),),
        text_id=REF_TEXT,
        conditional=True,
    ),
]
