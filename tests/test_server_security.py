"""The server's localhost security (server/security.py, docs/server.md "Security"): a real
server on a free port (tests/helpers/server.py) for the real app, and a small app of its
own behind the same middleware where a route the real app does not have yet is needed (a
body read in chunks, a stream, a route that tries to send CORS headers)."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import agentkeep
from agentkeep.server import process, security
from agentkeep.server.context import ServerContext

from helpers.server import RunningServer, running_server

EVIL_HOSTS = ["evil.example", "127.0.0.1.nip.io", "evil.example:8765", "localhost.evil.example"]


@pytest.fixture
def server(project: Path) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schema_version"] == 1
    assert body["code"] == code
    assert body["error"]


# -- Host (DNS rebinding) ---------------------------------------------------------------


@pytest.mark.parametrize("host", EVIL_HOSTS)
def test_a_rebound_host_is_refused_on_reads_writes_and_streams(
    server: RunningServer, host: str
) -> None:
    headers = {"Host": host, **server.auth}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        _error(client.get("/api/v1/tasks"), 421, "misdirected_request")
        _error(client.post("/api/v1/tasks", json={"title": "x"}), 421, "misdirected_request")
        _error(client.get("/api/v1/events/stream"), 421, "misdirected_request")
        _error(client.post("/mcp", json={}), 421, "misdirected_request")
        _error(client.get("/?token=" + server.token), 421, "misdirected_request")
    with agentkeep.open(server.ctx.store_dir) as store:
        assert store.list_tasks() == []


def test_the_hosts_it_serves_are_answered(server: RunningServer) -> None:
    for host in ("127.0.0.1", f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        response = httpx.get(server.url + "/api/v1/tasks", headers={"Host": host})
        assert response.status_code == 200, host


def test_a_request_without_host_is_refused(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /api/v1/tasks HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 421"), reply[:100]


# -- the token --------------------------------------------------------------------------


def test_a_mutation_without_a_token_is_401_and_with_a_wrong_one_403(
    server: RunningServer,
) -> None:
    url = server.url + "/api/v1/tasks"
    missing = httpx.post(url, json={"title": "x"})
    _error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    _error(
        httpx.post(url, json={"title": "x"}, headers={"Authorization": "Bearer nope"}),
        403,
        "forbidden",
    )
    _error(
        httpx.post(url, json={"title": "x"}, headers={"Authorization": f"Basic {server.token}"}),
        403,
        "forbidden",
    )
    _error(
        httpx.post(
            url,
            json={"title": "x"},
            headers={"X-Agentkeep-CSRF": "1"},
            cookies={"agentkeep_token": server.token + "x"},
        ),
        403,
        "forbidden",
    )
    _error(httpx.delete(server.url + "/api/v1/tasks/1/dependencies/2"), 401, "unauthorized")
    with agentkeep.open(server.ctx.store_dir) as store:
        assert store.list_tasks() == []


def test_reads_need_no_token_on_loopback_but_do_with_require_auth(
    server: RunningServer,
) -> None:
    url = server.url + "/api/v1/tasks"
    assert httpx.get(url).status_code == 200
    server.ctx.require_auth = True
    _error(httpx.get(url), 401, "unauthorized")
    _error(httpx.get(url, headers={"Authorization": "Bearer wrong"}), 403, "forbidden")
    assert httpx.get(url, headers=server.auth).status_code == 200
    assert httpx.get(url, cookies={"agentkeep_token": server.token}).status_code == 200
    assert httpx.get(server.url + "/-/health").status_code == 200  # liveness: no data


def test_the_token_bootstrap_sets_a_strict_httponly_cookie_and_drops_the_token(
    server: RunningServer,
) -> None:
    response = httpx.get(f"{server.url}/sessions?token={server.token}&status=running")
    assert response.status_code == 303
    assert response.headers["location"] == "/sessions?status=running"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"agentkeep_token={server.token};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert response.headers["cache-control"] == "no-store"

    wrong = httpx.get(f"{server.url}/?token=guess")
    _error(wrong, 403, "forbidden")
    assert "set-cookie" not in wrong.headers


# -- cross-site -------------------------------------------------------------------------


def test_a_cross_origin_post_with_a_valid_cookie_is_refused(server: RunningServer) -> None:
    cookie = {"agentkeep_token": server.token}
    for origin in ("https://evil.example", "http://127.0.0.1:1", "null"):
        _error(
            httpx.post(
                server.url + "/api/v1/tasks",
                json={"title": "x"},
                headers={"Origin": origin, "X-Agentkeep-CSRF": "1"},
                cookies=cookie,
            ),
            403,
            "forbidden",
        )
    # The dashboard's own requests pass (whatever the route then answers).
    same = httpx.post(
        server.url + "/api/v1/tasks",
        json={"title": "x"},
        headers={"Origin": server.url, "X-Agentkeep-CSRF": "1", "Sec-Fetch-Site": "same-origin"},
        cookies=cookie,
    )
    assert same.status_code not in (401, 403, 415, 421), same.text


def test_a_cookie_mutation_needs_the_csrf_header(server: RunningServer) -> None:
    response = httpx.post(
        server.url + "/api/v1/tasks",
        json={"title": "x"},
        headers={"Origin": server.url},
        cookies={"agentkeep_token": server.token},
    )
    _error(response, 403, "forbidden")
    assert "x-agentkeep-csrf" in response.json()["error"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_sec_fetch_site_other_than_same_origin_is_refused(server: RunningServer, site: str) -> None:
    response = httpx.post(
        server.url + "/api/v1/tasks",
        json={"title": "x"},
        headers={**server.auth, "Sec-Fetch-Site": site},
    )
    _error(response, 403, "forbidden")


def test_a_mutation_body_must_be_json(server: RunningServer) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = httpx.post(
            server.url + "/api/v1/tasks",
            content=b'{"title": "x"}',
            headers={**server.auth, "Content-Type": content_type},
        )
        _error(response, 415, "unsupported_media_type")
    # An artifact upload is raw bytes of any type.
    upload = httpx.post(
        server.url + "/api/v1/artifacts?name=a.txt",
        content=b"hello",
        headers={**server.auth, "Content-Type": "text/plain"},
    )
    assert upload.status_code not in (401, 403, 413, 415, 421), upload.text


# -- bodies -----------------------------------------------------------------------------


def test_an_oversized_body_is_413_and_nothing_is_written(server: RunningServer) -> None:
    server.ctx.max_json_bytes = 4096
    body = b'{"title": "' + b"x" * 10_000 + b'"}'
    response = httpx.post(
        server.url + "/api/v1/tasks",
        content=body,
        headers={**server.auth, "Content-Type": "application/json"},
    )
    _error(response, 413, "payload_too_large")
    with agentkeep.open(server.ctx.store_dir) as store:
        assert store.list_tasks() == []
        assert not [e for e in store.events(entity="task")]


# -- a small app behind the same middleware ---------------------------------------------


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    config.timeout_graceful_shutdown = 1
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        thread.join(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def probe_app(tmp_path: Path) -> Iterator[tuple[str, ServerContext, list[bytes], list[str]]]:
    """An app that records the bodies it read, streams, and tries to send CORS headers."""
    stored: list[bytes] = []
    log: list[str] = []
    ctx = ServerContext(
        store_dir=tmp_path,
        token="t" * 43,
        hosts=frozenset({"127.0.0.1"}),
        max_json_bytes=1000,
        max_upload_bytes=5000,
        access_log=log.append,
    )

    async def store_body(request: Request) -> Response:
        body = b""
        try:
            async for chunk in request.stream():
                body += chunk
        except Exception:  # an app that swallows the failed read still answers 413
            return JSONResponse({"stored": False}, status_code=500)
        stored.append(body)
        return JSONResponse({"stored": len(body)}, headers={"Access-Control-Allow-Origin": "*"})

    async def read_json(request: Request) -> Response:
        stored.append(await request.body())  # a failed read propagates
        return JSONResponse({"stored": True})

    async def stream(request: Request) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"data: {n}\n\n".encode()

        return StreamingResponse(lines(), media_type="text/event-stream")

    def page(request: Request) -> Response:
        return HTMLResponse("<p>hi</p>", headers={"Content-Security-Policy": "default-src *"})

    app = Starlette(
        routes=[
            Route("/api/v1/things", store_body, methods=["POST"]),
            Route("/api/v1/artifacts", store_body, methods=["POST"]),
            Route("/api/v1/json", read_json, methods=["POST"]),
            Route("/api/v1/stream", stream),
            Route("/page", page),
        ],
        middleware=security.middleware(ctx),
    )
    with serving(app) as url:
        yield url, ctx, stored, log


def _chunks(total: int, size: int = 256) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_a_chunked_body_past_the_limit_is_413_and_never_reaches_the_app(
    probe_app: tuple[str, ServerContext, list[bytes], list[str]],
) -> None:
    url, ctx, stored, _ = probe_app
    auth = {"Authorization": f"Bearer {ctx.token}", "Content-Type": "application/json"}
    # No Content-Length: only counting the bytes as they arrive can catch it.
    response = httpx.post(url + "/api/v1/things", content=_chunks(5000), headers=auth)
    _error(response, 413, "payload_too_large")
    assert stored == []
    small = httpx.post(url + "/api/v1/things", content=_chunks(900), headers=auth)
    assert small.status_code == 200
    assert stored == [b"x" * 900]
    # Uploads have their own, larger limit.
    upload = httpx.post(url + "/api/v1/artifacts", content=_chunks(4000), headers=auth)
    assert upload.status_code == 200
    _error(
        httpx.post(url + "/api/v1/artifacts", content=_chunks(6000), headers=auth),
        413,
        "payload_too_large",
    )
    assert [len(body) for body in stored] == [900, 4000]
    _error(
        httpx.post(url + "/api/v1/json", content=_chunks(1001), headers=auth),
        413,
        "payload_too_large",
    )
    assert [len(body) for body in stored] == [900, 4000]


def test_no_response_ever_carries_cors_headers(
    probe_app: tuple[str, ServerContext, list[bytes], list[str]], server: RunningServer
) -> None:
    url, ctx, _, _ = probe_app
    responses = [
        httpx.post(
            url + "/api/v1/things",
            json={},
            headers={"Authorization": f"Bearer {ctx.token}", "Origin": url},
        ),
        httpx.get(server.url + "/api/v1/tasks", headers={"Origin": "https://evil.example"}),
        httpx.options(
            server.url + "/api/v1/tasks",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        ),
        httpx.post(server.url + "/api/v1/tasks", headers={"Origin": "https://evil.example"}),
    ]
    assert responses[0].status_code == 200  # the app tried to add one
    for response in responses:
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_every_response_has_the_security_headers_and_html_the_strict_csp(
    probe_app: tuple[str, ServerContext, list[bytes], list[str]], server: RunningServer
) -> None:
    url, _, _, _ = probe_app
    responses = {
        "json": httpx.get(server.url + "/api/v1/tasks"),
        "error": httpx.get(server.url + "/api/v1/tasks", headers={"Host": "evil.example"}),
        "stream": httpx.get(url + "/api/v1/stream"),
        "html": httpx.get(url + "/page"),
    }
    assert responses["stream"].text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    for name, response in responses.items():
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        assert response.headers["x-frame-options"] == "DENY", name
    assert responses["html"].headers["content-security-policy"] == security.HTML_CSP
    assert "'unsafe-inline'" not in security.HTML_CSP
    assert "sandbox" in responses["json"].headers["content-security-policy"]


def test_the_access_log_has_method_path_status_and_never_the_query(
    probe_app: tuple[str, ServerContext, list[bytes], list[str]],
) -> None:
    url, ctx, _, log = probe_app
    httpx.get(f"{url}/page?token={ctx.token}&q=secret")
    httpx.get(url + "/api/v1/stream", headers={"Host": "evil.example"})
    assert len(log) == 2
    assert " GET /page 303 " in log[0]
    assert " GET /api/v1/stream 421 " in log[1]
    assert not [line for line in log if ctx.token in line or "secret" in line]


# -- the token file ---------------------------------------------------------------------


def test_the_token_file_is_private_random_and_stable() -> None:
    path = process.token_path()
    assert not path.exists()
    token = process.install_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 43
    assert process.install_token() == token
    path.unlink()
    assert process.install_token() != token  # random per install, never a constant


def test_a_token_file_others_can_read_is_made_private_with_a_warning() -> None:
    token = process.install_token()
    os.chmod(process.token_path(), 0o644)
    warnings: list[str] = []
    assert process.install_token(warn=warnings.append) == token
    assert stat.S_IMODE(process.token_path().stat().st_mode) == 0o600
    assert len(warnings) == 1 and "0600" in warnings[0]


def test_a_token_file_without_a_token_is_refused() -> None:
    path = process.token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(agentkeep.errors.StorageError, match="no usable token"):
        process.install_token()


def test_server_token_prints_the_install_token(cli: object) -> None:
    from conftest import Cli

    assert isinstance(cli, Cli)
    printed = cli("server", "token")
    assert printed.exit_code == 0
    assert printed.stdout.strip() == process.install_token()
