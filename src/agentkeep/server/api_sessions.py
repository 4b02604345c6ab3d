"""``/api/v1``: sessions (with their transcript in chunks and their streams), stream logs
and artifacts — the stored bytes, served so that a browser never runs them.

Bytes come with the stored content type only when a browser cannot execute it: HTML, SVG,
XML, scripts and every text type not known to be inert are served as
``text/plain; charset=utf-8``; anything not text is ``attachment`` (and an unknown binary
type is ``application/octet-stream``). Every byte response says ``nosniff`` and carries a
``sandbox`` CSP. Sealed streams and artifacts have an ``ETag`` (their sha256) and answer a
single HTTP Range with 206 (an unsatisfiable one with 416); a range of a sealed stream
decompresses only the zstd frames it touches (services/streams.py ``SealedReader``).
"""

from __future__ import annotations

import io
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agentkeep.errors import InvalidInput
from agentkeep.server import respond
from agentkeep.server.api_input import (
    PAGED,
    Endpoint,
    Field,
    Query,
    body,
    id_page,
    idempotency_key,
    limit,
    path_id,
    q_int,
    q_str,
)
from agentkeep.server.api_ledger import SINCE, since
from agentkeep.server.context import context
from agentkeep.services.artifacts import KINDS as ARTIFACT_KINDS
from agentkeep.services.sessions import LIST_STATUSES

CHUNK = 1 << 16
TEXT_PLAIN = "text/plain; charset=utf-8"
OCTETS = "application/octet-stream"
# Text a browser shows and never runs: served with its own type.
INERT_TEXT = frozenset(
    {
        "text/plain",
        "text/markdown",
        "text/csv",
        "text/tab-separated-values",
        "text/x-diff",
        "text/x-patch",
        "text/x-log",
        "application/json",
        "application/x-ndjson",
    }
)
# What counts as text (shown inline): every text/* and these; the risky ones among them
# (HTML, SVG, XML, scripts) are served as text/plain.
TEXTUAL = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/xhtml+xml",
        "application/javascript",
        "application/ecmascript",
        "image/svg+xml",
    }
)
# Binary types served under their own name (always as an attachment).
KNOWN_BINARY = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/zip",
        "application/gzip",
        "application/zstd",
        "application/x-tar",
        "application/pdf",
    }
)
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

# -- sessions ---------------------------------------------------------------------------


def list_sessions(request: Request) -> Response:
    """Sessions, newest first, filtered as `agentkeep sessions list` (resumable checked)."""
    return id_page(
        request,
        context(request).store().list_sessions,
        "before_id",
        status=q_str(request, "status"),
        agent_id=q_int(request, "agent_id"),
        task_id=q_int(request, "task_id"),
        source=q_str(request, "source"),
        since=since(request),
        resumable=True,
    )


def show_session(request: Request) -> Response:
    """One session as `agentkeep sessions show --json`: its fields (tokens and the
    counters included), ``entries`` and ``resume_reason``."""
    session_id = path_id(request)
    store = context(request).store()
    plan = store.resume_plan(session_id)
    shown = {
        **store.get_session(session_id).to_dict(),
        "resumable": plan.resumable,
        "resume_reason": plan.reason,
        "entries": store.transcript_size(session_id),
    }
    return respond.one(shown)


def session_transcript(request: Request) -> Response:
    """A chunk of a session's transcript: the entries after position ``after`` (0: from
    the start), at most ``limit``; ``next`` is the position to ask for next."""
    session_id = path_id(request)
    start = q_int(request, "after", default=0) or 0
    size = limit(request)
    found, total = context(request).store().transcript_chunk(session_id, after=start, limit=size)
    chunk = found.entries
    following = str(start + size) if start + size < total else None
    if request.query_params.get("_nl") in ("1", "true"):
        return respond.rows(request, chunk, following, param="after")
    # The rows shape, plus what a viewer needs to draw the chunk.
    return respond.json_response(
        {
            "schema_version": respond.SCHEMA_VERSION,
            "rows": [entry.to_dict() for entry in chunk],
            "next": following,
            "origin": found.origin,
            "children": found.children,
            "total": total,
        }
    )


def session_streams(request: Request) -> Response:
    return respond.rows(request, context(request).store().session_streams(path_id(request)))


SESSION_START = {
    "source": Field("str", description="default: agentkeep"),
    "external_id": Field("str", nullable=True, description="with source: a natural key"),
    "agent_id": Field("int", nullable=True, minimum=1),
    "task_id": Field("int", nullable=True, minimum=1),
    "model": Field("str", nullable=True),
    "cwd": Field("str", nullable=True),
    "title": Field("str", nullable=True),
    "command": Field("str_list", nullable=True),
}


def start_session(request: Request) -> Response:
    fields = body(request, SESSION_START)
    written = context(request).store().start_session(**fields)
    return respond.written("session", written.item, written.outcome)


SESSION_END = {
    "status": Field("str", enum=("ended", "failed", "interrupted"), description="default: ended"),
    "exit_code": Field("int", nullable=True, minimum=-(2**31), maximum=2**31 - 1),
}


def end_session(request: Request) -> Response:
    session_id = path_id(request)
    fields = body(request, SESSION_END)
    session = context(request).store().end_session(session_id, **fields)
    return respond.written("session", session, "updated")


# -- bytes ------------------------------------------------------------------------------


def served_type(stored: str | None) -> tuple[str, bool]:
    """The Content-Type to serve stored bytes with, and whether they are text (inline)."""
    media = (stored or "").split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media):
        return OCTETS, False
    if media in INERT_TEXT:
        return (f"{media}; charset=utf-8" if media.startswith("text/") else media), True
    if media.startswith("text/") or media in TEXTUAL or media.endswith(("+xml", "+json")):
        return TEXT_PLAIN, True
    return (media if media in KNOWN_BINARY else OCTETS), False


def _disposition(name: str | None, text: bool) -> dict[str, str]:
    if text:
        return {}
    value = "attachment"
    if name:
        plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "download"
        quoted = urllib.parse.quote(name[:200], safe="")
        value += f"; filename=\"{plain}\"; filename*=UTF-8''{quoted}"
    return {"Content-Disposition": value}


def _byte_range(request: Request, size: int, etag: str | None) -> tuple[int, int] | None:
    """The single byte range asked for, as ``(start, end)`` (end exclusive), or None for
    the whole. A malformed or multi-range header is ignored (the whole is served), as RFC
    9110 allows; an unsatisfiable one raises :class:`_Unsatisfiable`."""
    header = request.headers.get("range")
    if header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and (etag is None or if_range != etag):
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    # Leading zeros dropped, the numbers compare as (length, digits): no int() of a
    # thousand-digit position.
    first = match.group(1) and (match.group(1).lstrip("0") or "0")
    last = match.group(2) and (match.group(2).lstrip("0") or "0")
    if first and last and (len(first), first) > (len(last), last):
        return None  # last-pos before first-pos: not a valid range (RFC 9110 §14.1.1)
    if not first:  # the last N bytes
        if size == 0 or last == "0":
            raise _Unsatisfiable  # an empty body has no last bytes; zero bytes is no range
        return (max(size - int(last), 0) if len(last) <= 19 else 0), size
    if len(first) > 19 or int(first) >= size:
        raise _Unsatisfiable
    end = size if not last or len(last) > 19 else min(int(last) + 1, size)
    return int(first), end


class _Unsatisfiable(Exception):
    pass


def serve_bytes(
    request: Request,
    *,
    size: int,
    read: Any,
    close: Any,
    content_type: str,
    text: bool,
    etag: str | None,
    name: str | None = None,
) -> Response:
    """``size`` bytes that ``read(offset, n)`` returns, whole or the asked-for range."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-cache",
        **_disposition(name, text),
    }
    if etag is not None:
        headers["ETag"] = etag
        headers["Accept-Ranges"] = "bytes"
        if request.headers.get("if-none-match") == etag:
            close()
            return Response(status_code=304, headers=headers)
    try:
        wanted = _byte_range(request, size, etag) if etag is not None else None
    except _Unsatisfiable:
        close()
        headers["Content-Range"] = f"bytes */{size}"
        return respond.problem(
            416, "range_not_satisfiable", f"the range is outside the {size} bytes", headers=headers
        )
    start, end = wanted if wanted is not None else (0, size)
    status = 206 if wanted is not None else 200
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        close()
        return Response(status_code=status, headers=headers, media_type=content_type)

    def chunks() -> Iterator[bytes]:
        try:
            position = start
            while position < end:
                piece = read(position, min(CHUNK, end - position))
                if not piece:
                    break
                position += len(piece)
                yield piece
        finally:
            close()

    return StreamingResponse(chunks(), status_code=status, headers=headers, media_type=content_type)


def stream_log(request: Request) -> Response:
    """A stream's stored bytes as text (whatever was printed: never run, never sniffed);
    sealed streams have an ETag and answer Range."""
    store = context(request).store()
    stream, reader = store.open_stream_reader(path_id(request))
    sealed = stream.status == "sealed" and stream.sha256 is not None
    size = stream.length if not sealed else reader.size
    return serve_bytes(
        request,
        size=size,
        read=reader.read,
        close=reader.close,
        content_type=TEXT_PLAIN,
        text=True,
        etag=f'"{stream.sha256}"' if sealed else None,
    )


# -- artifacts --------------------------------------------------------------------------


def list_artifacts(request: Request) -> Response:
    return id_page(
        request,
        context(request).store().list_artifacts,
        "before_id",
        kind=q_str(request, "kind"),
        session_id=q_int(request, "session_id"),
        task_id=q_int(request, "task_id"),
        agent_id=q_int(request, "agent_id"),
    )


def show_artifact(request: Request) -> Response:
    return respond.one(context(request).store().get_artifact(path_id(request)))


def artifact_content(request: Request) -> Response:
    """The artifact's bytes (decompressed) under a content type a browser will not run."""
    store = context(request).store()
    artifact = store.get_artifact(path_id(request))
    chunks = iter(store.artifact_chunks(artifact.id))
    # The first chunk is read here, before any byte is sent: a missing object, or a link
    # planted in its place, is then the error it is, not a 200 cut short.
    content = _Seeker(chunks, next(chunks, b""))
    content_type, text = served_type(artifact.content_type)
    return serve_bytes(
        request,
        size=artifact.size,
        read=content.read,
        close=content.close,
        content_type=content_type,
        text=text,
        etag=f'"{artifact.sha256}"',
        name=artifact.name,
    )


class _Seeker:
    """``read(offset, n)`` over the artifact's chunks, read front to back (a compressed
    object cannot seek: a range of it is decompressed from the start, and skipped)."""

    def __init__(self, chunks: Iterator[bytes], first: bytes = b"") -> None:
        self.chunks, self.position, self.pending = chunks, 0, first

    def read(self, offset: int, size: int) -> bytes:
        while self.position + len(self.pending) <= offset:  # skip whole chunks
            self.position += len(self.pending)
            self.pending = next(self.chunks, b"")
            if not self.pending:
                return b""
        if offset > self.position:
            self.pending = self.pending[offset - self.position :]
            self.position = offset
        if not self.pending:
            self.pending = next(self.chunks, b"")
        data, self.pending = self.pending[:size], self.pending[size:]
        self.position += len(data)
        return data

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class _RequestBody(io.RawIOBase):
    """The request's body as a readable binary file, pulled chunk by chunk from the
    event loop (never all in memory), for a plain ``def`` endpoint's thread."""

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream().__aiter__()
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            chunk: bytes = await self._chunks.__anext__()
        except StopAsyncIteration:
            return None
        return chunk

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
            else:
                self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def upload_artifact(request: Request) -> Response:
    """Store the raw request body as an artifact (redacted, content-addressed)."""
    kind = q_str(request, "kind") or "file"
    if kind not in ARTIFACT_KINDS:
        raise InvalidInput(
            f"unknown artifact kind {kind!r}", hint=f"use one of: {', '.join(ARTIFACT_KINDS)}"
        )
    content_type = request.headers.get("content-type")
    if content_type is not None and not _MEDIA_TYPE.fullmatch(
        content_type.split(";", 1)[0].strip().lower()
    ):
        raise InvalidInput("Content-Type is not a media type")
    reader = io.BufferedReader(_RequestBody(request), CHUNK)
    written = (
        context(request)
        .store()
        .add_artifact(
            reader,
            kind=kind,
            name=q_str(request, "name"),
            content_type=content_type,
            session_id=q_int(request, "session_id"),
            task_id=q_int(request, "task_id"),
            agent_id=q_int(request, "agent_id"),
            idempotency_key=idempotency_key(request),
        )
    )
    return respond.written("artifact", written.item, written.outcome)


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        "/sessions",
        list_sessions,
        "rows",
        "session",
        query=(
            Query(
                "status",
                "str",
                "idle: running sessions the idle rule calls idle",
                enum=LIST_STATUSES,
            ),
            Query("agent_id", "int"),
            Query("task_id", "int"),
            Query("source", "str"),
            SINCE,
            *PAGED,
        ),
    ),
    Endpoint("POST", "/sessions", start_session, "written", "session", fields=SESSION_START),
    Endpoint("GET", "/sessions/{id}", show_session, "one", "session_shown"),
    Endpoint(
        "GET",
        "/sessions/{id}/transcript",
        session_transcript,
        "rows",
        "transcript_entry",
        query=(
            Query("after", "int", "the position to start after (0: the start; `next`)"),
            Query("limit", "int", "1 to 1000, default 100"),
        ),
    ),
    Endpoint("GET", "/sessions/{id}/streams", session_streams, "rows", "stream"),
    Endpoint("POST", "/sessions/{id}/end", end_session, "written", "session", fields=SESSION_END),
    Endpoint("GET", "/streams/{id}/log", stream_log, "bytes", "text"),
    Endpoint(
        "GET",
        "/artifacts",
        list_artifacts,
        "rows",
        "artifact",
        query=(
            Query("kind", "str", enum=ARTIFACT_KINDS),
            Query("session_id", "int"),
            Query("task_id", "int"),
            Query("agent_id", "int"),
            *PAGED,
        ),
    ),
    Endpoint(
        "POST",
        "/artifacts",
        upload_artifact,
        "written",
        "artifact",
        query=(
            Query("kind", "str", "default: file", enum=ARTIFACT_KINDS),
            Query("name", "str"),
            Query("session_id", "int"),
            Query("task_id", "int"),
            Query("agent_id", "int"),
        ),
        idempotent=True,
        raw_body=True,
    ),
    Endpoint("GET", "/artifacts/{id}", show_artifact, "one", "artifact"),
    Endpoint("GET", "/artifacts/{id}/content", artifact_content, "bytes", "any"),
]
