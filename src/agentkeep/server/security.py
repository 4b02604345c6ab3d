"""Localhost security (docs/server.md "Security"): one pure ASGI middleware in front of
every route, streams and ``/mcp`` included.

In order, for each HTTP request:

1. **Host** must be one the server answers (:attr:`ServerContext.hosts`), else 421: a
   page on ``evil.example`` that rebinds its name to 127.0.0.1 reaches the socket but
   not the app (DNS rebinding).
2. **Token bootstrap**: ``GET /?token=T`` (any dashboard page) with the right token sets
   the ``agentkeep_token`` cookie (HttpOnly, SameSite=Strict) and redirects to the same
   URL without the token, so it leaves the address bar and the history.
3. **Mutations** (every method but GET/HEAD/OPTIONS) need the token, as
   ``Authorization: Bearer T`` (scripts) or the cookie (the dashboard): 401 without one,
   403 with a wrong one (compared in constant time). They are refused (403) when they
   come from another site: an ``Origin`` the server does not serve, or a
   ``Sec-Fetch-Site`` other than ``same-origin``/``none``; a cookie-authenticated one must
   also carry ``X-Agentkeep-CSRF: 1`` (a header no cross-site form can send, and no
   cross-origin script either, since the server never answers a CORS preflight). A body
   must be JSON (415 otherwise), except the raw bytes of an upload (:data:`UPLOAD_PATHS`).
   With ``--require-auth`` reads need the token too (``/-/health`` excepted).
4. **Bodies** are capped while they stream in (413): the declared ``Content-Length`` is
   checked first, and the bytes actually received are counted, so a chunked body cannot
   pass the limit either; the endpoint never sees the rest and writes nothing.
5. **Responses** never carry CORS headers (any ``Access-Control-*`` is dropped); every
   one gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
   ``X-Frame-Options: DENY``; HTML gets the strict :data:`HTML_CSP` (no inline script:
   pages load their scripts from /static), anything else a ``default-src 'none'; sandbox``
   policy so that stored content opened directly cannot run either.
6. **Access log**: one line per request — time, method, path *without* the query string
   (``?token=`` must never reach a log), status, duration.

Refusals use the CLI's JSON error shape (:func:`respond.problem`).
"""

from __future__ import annotations

import contextlib
import hmac
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.middleware import Middleware
from starlette.requests import cookie_parser
from starlette.responses import Response

from agentkeep.server import respond
from agentkeep.server.context import ServerContext

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_COOKIE = "agentkeep_token"
CSRF_HEADER = "x-agentkeep-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a request body is raw bytes, not JSON: an artifact's content, a bundle to import.
UPLOAD_PATHS = frozenset({"/api/v1/artifacts", "/api/v1/operations/import"})
# Reads that need no token even with --require-auth: liveness, no data.
ANONYMOUS_PATHS = frozenset({"/-/health"})
# Routes where ``?token=`` is never a bootstrap (the API and MCP take the header).
NO_BOOTSTRAP_PREFIXES = ("/api/", "/mcp", "/-/")
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
_PORT = re.compile(r":[0-9]{0,5}")
# What a redirect's path may hold as it is; anything else is percent-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"

HTML_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def middleware(ctx: ServerContext) -> list[Middleware]:
    return [Middleware(SecurityMiddleware, ctx=ctx)]


class _BodyTooLarge(Exception):
    """The request body passed its limit while streaming in."""


def hostname_of(host: str) -> str:
    """``host`` of a Host header value ``host[:port]`` (IPv6 in brackets), lowercased. A
    value that is not ``host[:port]`` (``127.0.0.1:80.evil.example``, ``[::1].evil``)
    comes back whole, so it matches no allowed name."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = (host[: end + 1], host[end + 1 :]) if end > 0 else (host, "")
    elif host.count(":") == 1:
        name, rest = host.split(":", 1)[0], host[host.index(":") :]
    else:
        name, rest = host, ""
    if rest and not _PORT.fullmatch(rest):
        return host
    return name


def host_allowed(ctx: ServerContext, host: str | None) -> bool:
    if not host:
        return False
    value = host.strip().lower()
    return value in ctx.hosts or hostname_of(value) in ctx.hosts


def token_matches(ctx: ServerContext, presented: str) -> bool:
    return bool(ctx.token) and hmac.compare_digest(presented.encode(), ctx.token.encode())


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = _headers(scope)
            if not host_allowed(self.ctx, headers.get("host")):
                await send({"type": "websocket.close", "code": 1008})
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _Exchange(self.app, self.ctx, scope, receive, send).run()


class _Exchange:
    """One HTTP request through the checks, and its response through the headers."""

    def __init__(
        self, app: ASGIApp, ctx: ServerContext, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.app = app
        self.ctx = ctx
        self.scope = scope
        self.raw_receive = receive
        self.raw_send = send
        self.headers = _headers(scope)
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.status = 0
        self.started = time.monotonic()
        self.received = 0
        self.too_large = False
        self.replaced = False  # the app's response gave way to our 413
        self.logged = False
        self.limit = (
            ctx.max_upload_bytes
            if self.method == "POST" and self.path in UPLOAD_PATHS
            else ctx.max_json_bytes
        )

    async def run(self) -> None:
        try:
            refusal = self.check()
            if refusal is not None:
                await refusal(self.scope, self.raw_receive, self.send)
                return
            try:
                await self.app(self.scope, self.receive, self.send)
            except Exception as exc:
                if not _is_too_large(exc):
                    raise
                if not self.status:
                    await self.too_large_response()(self.scope, self.raw_receive, self.send)
        finally:
            self.log()

    # -- the checks -------------------------------------------------------------------

    def check(self) -> Response | None:
        ctx = self.ctx
        if not host_allowed(ctx, self.headers.get("host")):
            return respond.problem(
                421,
                "misdirected_request",
                "this server does not answer for that Host",
                hint="use the URL `agentkeep serve` printed (or start it with --public-url)",
            )
        query = self.scope.get("query_string", b"").decode("latin-1")
        if (
            self.method == "GET"
            and not self.path.startswith(NO_BOOTSTRAP_PREFIXES)
            and "token" in dict(parse_qsl(query))
        ):
            return self.bootstrap(query)
        mutation = self.method not in SAFE_METHODS
        if mutation or (ctx.require_auth and self.path not in ANONYMOUS_PATHS):
            refusal = self.check_token(mutation=mutation)
            if refusal is not None:
                return refusal
        if mutation:
            refusal = self.check_site() or self.check_body()
            if refusal is not None:
                return refusal
        return None

    def bootstrap(self, query: str) -> Response:
        pairs = parse_qsl(query, keep_blank_values=True)
        presented = next(value for key, value in pairs if key == "token")
        if not token_matches(self.ctx, presented):
            return respond.problem(
                403, "forbidden", "wrong token", hint="`agentkeep server token` prints it"
            )
        rest = urlencode([(k, v) for k, v in pairs if k != "token"])
        # The path as it was sent (still percent-encoded: no CR/LF, nothing a header cannot
        # hold), and never ``//host`` or ``/\\host``, which a browser would follow off
        # this server.
        raw = self.scope.get("raw_path") or self.path.encode("utf-8", "replace")
        path = quote(raw.decode("latin-1").split("?", 1)[0], safe=_PATH_SAFE)
        location = "/" + path.lstrip("/") + (f"?{rest}" if rest else "")
        response = Response(status_code=303, headers={"Location": location})
        response.headers["Cache-Control"] = "no-store"
        response.set_cookie(
            TOKEN_COOKIE,
            self.ctx.token,
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.scope.get("scheme") == "https",
        )
        return response

    def check_token(self, *, mutation: bool) -> Response | None:
        presented, via = self.presented_token()
        if presented is None:
            return respond.problem(
                401,
                "unauthorized",
                "this request needs the server's token",
                hint="send `Authorization: Bearer $(agentkeep server token)`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not token_matches(self.ctx, presented):
            return respond.problem(
                403, "forbidden", "wrong token", hint="`agentkeep server token` prints it"
            )
        if mutation and via == "cookie" and self.headers.get(CSRF_HEADER) != "1":
            return respond.problem(
                403,
                "forbidden",
                f"a change made with the dashboard's cookie needs the {CSRF_HEADER} header",
            )
        return None

    def presented_token(self) -> tuple[str | None, str]:
        authorization = self.headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip(), "bearer"
            return "", "header"  # present but not a bearer token: wrong
        cookie = cookie_parser(self.headers.get("cookie", "")).get(TOKEN_COOKIE)
        if cookie:
            return cookie, "cookie"
        return None, ""

    def check_site(self) -> Response | None:
        origin = self.headers.get("origin")
        if origin is not None and not self.origin_allowed(origin):
            return respond.problem(403, "forbidden", "cross-origin changes are refused")
        fetch_site = self.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
            return respond.problem(403, "forbidden", "cross-site changes are refused")
        return None

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if origin in {o.lower().rstrip("/") for o in self.ctx.origins}:
            return True
        # Same origin as the (allowed) Host the request was sent to.
        scheme = self.scope.get("scheme", "http")
        host = (self.headers.get("host") or "").strip().lower()
        return bool(host) and origin == f"{scheme}://{host}"

    def check_body(self) -> Response | None:
        declared = self.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return respond.problem(400, "invalid_input", "bad Content-Length")
            if length > self.limit:
                return self.too_large_response()
        has_body = (declared is not None and declared.strip() != "0") or (
            "transfer-encoding" in self.headers
        )
        if has_body and self.path not in UPLOAD_PATHS:
            media = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != respond.JSON and not (
                media.startswith("application/") and media.endswith("+json")
            ):
                return respond.problem(
                    415,
                    "unsupported_media_type",
                    "the body must be JSON (Content-Type: application/json)",
                )
        return None

    def too_large_response(self) -> Response:
        return respond.problem(
            413,
            "payload_too_large",
            f"the request body is larger than {self.limit:,} bytes",
            hint="the serve.max_json_bytes and serve.max_upload_bytes settings",
        )

    # -- the exchange -----------------------------------------------------------------

    async def receive(self) -> Message:
        message = await self.raw_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.too_large = True
                raise _BodyTooLarge
        return message

    async def send(self, message: Message) -> None:
        if self.too_large and not self.replaced and message["type"] == "http.response.start":
            # The app caught the failed read and answered anyway: the answer is 413.
            self.replaced = True
            await self.too_large_response()(self.scope, self.raw_receive, self._send_headers)
            return
        if self.replaced:
            return
        await self._send_headers(message)

    async def _send_headers(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if not name.lower().startswith(b"access-control-")
                and name.lower() not in {name for name, _ in ALWAYS}
            ]
            headers += ALWAYS
            content_type = next(
                (value for name, value in headers if name.lower() == b"content-type"), b""
            )
            if content_type.lower().startswith(b"text/html"):
                headers = [(n, v) for n, v in headers if n.lower() != b"content-security-policy"]
                headers.append((b"content-security-policy", HTML_CSP.encode()))
            elif not any(n.lower() == b"content-security-policy" for n, _ in headers):
                headers.append((b"content-security-policy", OTHER_CSP.encode()))
            message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            self.log()  # before the last bytes: a client that has its answer finds the line
        await self.raw_send(message)

    def log(self) -> None:
        if self.logged:
            return
        self.logged = True
        elapsed_ms = (time.monotonic() - self.started) * 1000
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # The raw path: still percent-encoded, so it holds no control characters.
        raw = self.scope.get("raw_path") or self.path.encode("utf-8", "replace")
        path = raw.decode("latin-1").split("?", 1)[0].encode("unicode_escape").decode()
        line = f"{at} {self.method} {path} {self.status or '-'} {elapsed_ms:.1f}ms"
        write = self.ctx.access_log or _stderr
        with contextlib.suppress(Exception):  # a failing log must not fail the request
            write(line)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lowercase name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _is_too_large(exc: BaseException) -> bool:
    if isinstance(exc, _BodyTooLarge):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_too_large(inner) for inner in exc.exceptions)
    return False
