"""The Documents view: the project's documents (``store.docs``), files that are the truth
and the index that finds them.

- ``/docs``: documents by ref, filtered by namespace, type and tag (the namespaces and
  types to pick from are those indexed); a document with problems (its namespace's
  schema refuses it, its front matter does not parse) is marked.
- ``/docs/{ref}``: one document: its fields, its body (Markdown through the Sessions
  view's renderer: raw HTML off, images off, links only to http(s); a JSON or plain text
  file as text), what it links to and what links to it, and its history, each version a
  link to ``?version=N``, which shows that stored content instead. A document deleted
  through agentkeep (its file gone, its versions kept) shows its history, from which a
  version opens the same way.

Stored text is hostile: it reaches the page only through Jinja's autoescaping or through
markdown-it with HTML off; nothing stored is marked safe. Reads only: documents are
written with the CLI, the API or MCP.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agentkeep.documents import format as docformat
from agentkeep.errors import InvalidInput, NotFound
from agentkeep.server.api_input import MAX_ID, whole_number
from agentkeep.server.context import context
from agentkeep.server.dashboard import render
from agentkeep.server.pages.sessions import markdown

NAV: tuple[str, str] | None = ("/docs", "Documents")
LIMIT = 1000  # documents a list shows; the filters narrow it


def routes() -> list[BaseRoute]:
    return [
        Route("/docs", doc_list, methods=["GET"]),
        Route("/docs/{ref:path}", doc_page, methods=["GET"]),
    ]


def doc_url(ref: str, version: int | None = None) -> str:
    """The page of document ``ref`` (or of one of its versions)."""
    url = "/docs/" + quote(ref, safe="/")
    return f"{url}?version={version}" if version is not None else url


# ``[[target]]`` or ``[[target|text]]`` as markdown-it leaves it in its (escaped) HTML: no
# tag can be inside, since every ``<`` of the stored text is ``&lt;`` by then.
_TAG = re.compile(r"(<[^>]*>)")
_WIKI = re.compile(r"\[\[([^\[\]|<>\n]+?)(?:\|([^\[\]<>\n]*))?\]\]")


def wiki_links(rendered: Markup, urls: dict[str, str | None]) -> Markup:
    """``rendered`` with each ``[[target]]`` of its text (not of a tag's attribute, nor
    of code) whose target is a document (``urls``: the document's links, target → page)
    made a link to it; the others stay text. The text shown is the escaped text already
    there; the URL is one :func:`doc_url` made."""

    def link(match: re.Match[str]) -> str:
        url = urls.get(html.unescape(match.group(1)).strip())
        if not url:
            return match.group(0)
        shown = match.group(2) if match.group(2) else match.group(1)
        return f'<a class="wiki" href="{escape(url)}">{shown}</a>'

    parts = _TAG.split(str(rendered))
    in_code = 0
    for index, part in enumerate(parts):
        if index % 2:  # a tag markdown-it wrote: never inside one, nor in code
            if part.startswith(("<code", "<pre")):
                in_code += 1
            elif part.startswith(("</code", "</pre")):
                in_code = max(in_code - 1, 0)
        elif not in_code:
            parts[index] = _WIKI.sub(link, part)
    return Markup("".join(parts))  # escaped by markdown-it; the links made above


def _text(value: Any) -> str:
    """A front matter value as a person reads it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def doc_list(request: Request) -> Response:
    store = context(request).store()
    query = request.query_params
    filters = {k: query.get(k, "").strip() for k in ("namespace", "type", "tag")}
    for name, value in filters.items():
        if "\x00" in value:
            raise InvalidInput(f"{name} contains a NUL byte")
    every = store.docs.list_docs()
    namespaces = sorted({doc.namespace for doc in every})
    types = sorted({doc.type for doc in every if doc.type})
    # One read of the index gives the choices and the documents shown.
    shown = [
        doc
        for doc in every
        if (not filters["namespace"] or doc.namespace == filters["namespace"])
        and (not filters["type"] or doc.type == filters["type"])
        and (not filters["tag"] or filters["tag"] in doc.tags)
    ]
    shown.sort(key=lambda doc: (doc.namespace, doc.name))
    return render(
        request,
        "docs.html",
        {
            "filters": filters,
            "namespaces": namespaces,
            "types": types,
            "docs": [{"doc": doc, "url": doc_url(doc.ref)} for doc in shown[:LIMIT]],
            "total": len(shown),
            "limit": LIMIT,
        },
    )


def doc_page(request: Request) -> Response:
    ref = request.path_params["ref"]
    if not ref.strip("/") or "\x00" in ref:
        raise InvalidInput(f"{ref[:60]!r} is not a document reference")
    version = whole_number(
        request.query_params.get("version"), "version", minimum=1, maximum=MAX_ID
    )
    docs = context(request).store().docs
    try:
        docs.get_doc(ref)
    except NotFound:
        return _deleted_page(request, ref, version)
    content = docs.read_doc(ref, version=version)
    doc = content.doc if content.doc is not None else docs.get_doc(ref)
    kind = doc.format
    links = [
        {**link, "url": doc_url(link["ref"]) if link["ref"] else None} for link in docs.links(ref)
    ]
    body = (
        wiki_links(markdown(content.body), {link["target"]: link["url"] for link in links})
        if kind == "markdown"
        else None
    )
    backlinks = [{**link, "url": doc_url(link["ref"])} for link in docs.backlinks(ref)]
    history = [
        {"version": v, "url": doc_url(doc.ref, v.id) if v.sha256 else None}
        for v in reversed(docs.history(ref))
    ]
    title = doc.title or doc.ref
    if version is not None:  # that version's own title, not the current one's
        parsed = docformat.parse(content.text, PurePosixPath(doc.path).suffix)
        title = parsed.title(doc.ref)
    return render(
        request,
        "doc.html",
        {
            "doc": doc,
            "title": title,
            "url": doc_url(doc.ref),
            "content": content,
            "version": version,
            "fields": [(key, _text(value)) for key, value in content.fields.items()],
            "body": body,
            "text": content.body if kind == "text" else None,
            "json_text": json.dumps(content.fields, indent=2, ensure_ascii=False)
            if kind == "json"
            else None,
            "links": links,
            "backlinks": backlinks,
            "history": history,
        },
    )


def _deleted_page(request: Request, ref: str, version: int | None) -> Response:
    """A document whose file is gone but whose history is kept (deleted through
    agentkeep): its history, and a stored version's content with ``?version=``. One with
    no history is not found (404)."""
    docs = context(request).store().docs
    versions = docs.history(ref)  # NotFound when it never was
    path = versions[-1].path
    content = docs.read_doc(ref, version=version) if version is not None else None
    suffix = PurePosixPath(path).suffix
    kind = docformat.format_of(suffix)
    return render(
        request,
        "doc_deleted.html",
        {
            "ref": ref,
            "path": path,
            "version": version,
            "content": content,
            "body": markdown(content.body) if content and kind == "markdown" else None,
            "text": content.text if content and kind != "markdown" else None,
            "history": [
                {"version": v, "url": doc_url(ref, v.id) if v.sha256 else None}
                for v in reversed(versions)
            ],
        },
    )
