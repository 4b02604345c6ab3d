"""Attacks on ``agentkeep serve``, the way the 2026 localhost incidents were attacked (a dev
server any web page could drive, arbitrary file reads through its API, a server bound
beyond loopback without a password; docs/server.md "Security"): path traversal, DNS
rebinding, CSRF, token leaks, hostile stored content, resource abuse, and endpoints that
run commands or read paths.

Every attack runs against a real server on a free loopback port, configured as ``agentkeep
serve`` configures it (the hosts and origins of :func:`process.allowed_hosts_and_origins`,
uvicorn's config of :func:`process.uvicorn_config`), or a real ``agentkeep serve``
subprocess where the process itself is attacked (its log, ``server.json``). Requests that
an HTTP client would refuse to send (a duplicate Host, a NUL, an absolute-form target, a
100 KB request line) go over a raw socket. Each attack the server withstands is kept here;
each it did not withstand has its fix in the file where the bug was and its test here.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentkeep
from agentkeep.server import api, live, process, security
from agentkeep.server.app import create_app
from agentkeep.server.openapi import template
from agentkeep.services.artifacts import object_path

from conftest import run_agentkeep
from helpers.server import SAFETY, RunningServer, running_server

SERVER_DIR = Path(security.__file__).parent
# Bytes that must never come back: the server's own source and a file outside the store.
SOURCE_MARKER = b"def create_app"
SECRET_MARKER = b"ATTACK-SECRET-MARKER"


@pytest.fixture
def served(project: Path) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


@pytest.fixture
def http(served: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=SAFETY) as client:
        yield client


@dataclass
class Raw:
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    data: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def raw(port: int, request: bytes) -> Raw:
    """Send ``request`` as it is over a new connection and read the answer to its end
    (the requests say ``Connection: close``, or the server closes)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        # The server may answer (431, 413) and close before it has read all of an oversized
        # request: sending then fails with a reset or a broken pipe; what it answered, if
        # anything, is still read.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(request)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    return parse(data)


def parse(data: bytes) -> Raw:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/1.1 ") else None
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return Raw(status, headers, body, data)


def get(port: int, target: str | bytes, *headers: str, host: str = "127.0.0.1") -> Raw:
    if isinstance(target, str):
        target = target.encode()
    extra = "".join(f"{h}\r\n" for h in headers).encode("latin-1")
    return raw(
        port,
        b"GET " + target + b" HTTP/1.1\r\nHost: " + host.encode("latin-1") + b"\r\n"
        b"Connection: close\r\n" + extra + b"\r\n",
    )


def task_count(served: RunningServer) -> int:
    with agentkeep.open(served.ctx.store_dir) as store:
        return len(store.list_tasks())


def no_cors(headers: Any) -> None:
    names = [k.lower() for k, _ in (headers.items() if hasattr(headers, "items") else headers)]
    assert not [n for n in names if n.startswith("access-control-")], names


# == path traversal ====================================================================

STATIC_TRAVERSALS = [
    "/static/../app.py",
    "/static/..%2fapp.py",
    "/static/..%2Fapp.py",
    "/static/%2e%2e/app.py",
    "/static/%2e%2e%2fapp.py",
    "/static/%2E%2E%2Fapp.py",
    "/static/..%5capp.py",
    "/static/..%5c..%5capp.py",
    "/static/%252e%252e%252fapp.py",
    "/static/%c0%ae%c0%ae/app.py",
    "/static/....//app.py",
    "/static/.%2e/app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/" + "../" * 12 + "etc/passwd",
    "/static/app.css%00",
    "/static/app.css%00.py",
    "/static/%00../app.py",
    "/static/..;/app.py",
    "/static/.",
    "/static/",
    "/static",
    "/static/../../pyproject.toml",
    "//etc/passwd",
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
]


@pytest.mark.parametrize("target", STATIC_TRAVERSALS)
def test_static_traversal_reads_nothing_outside_static(served: RunningServer, target: str) -> None:
    answer = get(served.port, target)
    if answer.status == 307:  # /static -> /static/, on the same server
        assert answer.header("location") == "http://127.0.0.1/static/", answer.headers
    else:
        assert answer.status in (400, 404, 405), (target, answer.data[:200])
    assert SOURCE_MARKER not in answer.body and b"root:" not in answer.body
    assert b"[project]" not in answer.body


@pytest.mark.parametrize(
    "target",
    [
        "static/../app.py",  # no leading slash
        "http://127.0.0.1/static/../app.py",  # absolute-form
        "/static/..\\app.py",  # a raw backslash
        "/static/app.css\x00",  # a raw NUL
        "/static/\x1b[31m",
    ],
)
def test_targets_an_http_client_would_not_send_read_nothing(
    served: RunningServer, target: str
) -> None:
    answer = get(served.port, target)
    assert answer.status != 200 and answer.status != 500, (target, answer.data[:200])
    assert SOURCE_MARKER not in answer.body


def test_a_symlink_planted_in_static_is_not_followed(served: RunningServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET_MARKER)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "inner.txt").write_bytes(SECRET_MARKER)
    static = SERVER_DIR / "static"
    name = f"attack-{secrets.token_hex(6)}"
    planted = [static / f"{name}.txt", static / f"{name}-dir"]
    try:
        planted[0].symlink_to(secret)
        planted[1].symlink_to(outside, target_is_directory=True)
        for target in (f"/static/{name}.txt", f"/static/{name}-dir/inner.txt"):
            answer = get(served.port, target)
            assert answer.status == 404, (target, answer.data[:200])
            assert SECRET_MARKER not in answer.body
        assert get(served.port, "/static/app.css").status == 200  # the control
    finally:
        for link in planted:
            link.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/artifacts/..%2f..%2fetc%2fpasswd/content",
        "/api/v1/artifacts/%2e%2e/content",
        "/api/v1/artifacts/1.0/content",
        "/api/v1/artifacts/0x1/content",
        "/api/v1/artifacts/1e3/content",
        "/api/v1/artifacts/-1/content",
        "/api/v1/artifacts/%EF%BC%91/content",  # a fullwidth digit one
        "/api/v1/artifacts/%20%31/content",
        "/api/v1/artifacts/1%00/content",
        "/api/v1/artifacts/99999999999999999999999/content",
        "/api/v1/artifacts/%2fetc%2fpasswd/content",
        "/api/v1/streams/..%2f..%2fserver-token/log",
        "/api/v1/streams/%2e%2e/log",
        "/api/v1/streams/1%2f..%2f..%2f/log",
        "/api/v1/streams/-1/log",
        "/api/v1/streams/NaN/log",
        "/api/v1/sessions/1;ls/transcript",
        "/api/v1/sessions/1%0a/follow",
        "/api/v1/tasks/1%20OR%201=1",
        "/api/v1/operations/..%2f..%2f..%2fetc%2fpasswd/download",
        "/api/v1/operations/%2e%2e/download",
        "/api/v1/sessions/..%2f1/pin",
    ],
)
def test_ids_that_are_not_integers_are_refused(served: RunningServer, path: str) -> None:
    answer = get(served.port, path)
    assert answer.status in (400, 404), (path, answer.data[:300])
    assert json.loads(answer.body)["code"] in ("invalid_input", "not_found")
    assert SOURCE_MARKER not in answer.body and b"root:" not in answer.body


def _plant_link(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def test_a_symlink_planted_in_the_store_is_never_served(
    served: RunningServer, http: httpx.Client, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET_MARKER * 4)
    store_dir = served.ctx.store_dir
    with agentkeep.open(store_dir) as store:
        artifact = store.add_artifact(b"plain text artifact", name="a.txt").item
        session = store.start_session(title="s").item
        writer = store.open_stream(session.id, "stdout")
        writer.write(b"a line\n")
        writer.commit_progress()
        stream = store.get_stream(writer.stream.id)
        writer.close()
        stream = store.get_stream(stream.id)
    _plant_link(object_path(store_dir, artifact.sha256, artifact.encoding), secret)
    _plant_link(store_dir / stream.path, secret)
    for path in (f"/api/v1/artifacts/{artifact.id}/content", f"/api/v1/streams/{stream.id}/log"):
        with contextlib.suppress(httpx.RemoteProtocolError):
            answer = http.get(path)
            assert SECRET_MARKER not in answer.content
            # Refused before the first byte: an error status, not a 200 cut short.
            assert answer.status_code >= 400, (path, answer.status_code)
            assert answer.json()["code"], answer.text
            continue
        pytest.fail(f"{path}: the answer was cut short instead of refused")


UPLOAD_NAMES = [
    "../../escaped.txt",
    "/tmp/escaped.txt",
    "a/b/../../../escaped.txt",
    "..\\..\\escaped.txt",
    'quote".txt',
    "semi;colon=x.txt",
    "line\r\nSet-Cookie: agentkeep_token=evil",
    "<script>alert(1)</script>.html",
    "\u202etxt.exe",
    "\x1b[31mred",
]


@pytest.mark.parametrize("name", UPLOAD_NAMES)
def test_an_upload_name_is_data_never_a_path_or_a_header(
    served: RunningServer, http: httpx.Client, project: Path, name: str
) -> None:
    made = http.post(
        "/api/v1/artifacts",
        params={"name": name},
        content=b"\x00\x01binary",
        headers={**served.auth, "Content-Type": "application/octet-stream"},
    )
    assert made.status_code == 201, made.text
    artifact = made.json()["artifact"]
    assert artifact["name"] == name  # kept as text
    for where in (project.parent, project, Path("/tmp")):
        assert not (where / "escaped.txt").exists()
    served_back = http.get(f"/api/v1/artifacts/{artifact['id']}/content")
    assert served_back.status_code == 200
    assert served_back.content == b"\x00\x01binary"
    assert "set-cookie" not in served_back.headers
    disposition = served_back.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    plain = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert all(c.isalnum() or c in "._-" for c in plain), disposition
    assert "/" not in plain and "\\" not in plain
    starred = disposition.split("filename*=UTF-8''", 1)[1]
    assert all(c.isalnum() or c in "%._-~" for c in starred), disposition


# == DNS rebinding =====================================================================

REBOUND_HOSTS = [
    "evil.example",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "LOCALHOST.EVIL.EXAMPLE",
    "localhost.",
    "127.0.0.1.",
    "evil.example:{port}",
    "127.0.0.1:{port}.evil.example",
    "127.0.0.1:{port}@evil.example",
    "127.0.0.1@evil.example",
    "[::1].evil.example",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:0:0:1]",
    "127.0.0.2",
    "",
]


def _routes_to_rebind(served: RunningServer) -> list[tuple[str, str, str]]:
    """(method, target, body) on reads, writes, both streams, /mcp and the dashboard."""
    mcp = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    return [
        ("GET", "/api/v1/tasks", ""),
        ("GET", "/api/v1/tasks/1", ""),
        ("POST", "/api/v1/tasks", json.dumps({"title": "rebound"})),
        ("PATCH", "/api/v1/tasks/1", json.dumps({"title": "rebound"})),
        ("GET", "/api/v1/events/stream", ""),
        ("GET", "/api/v1/sessions/1/follow", ""),
        ("POST", "/mcp", mcp),
        ("GET", "/mcp", ""),
        ("GET", "/", ""),
        ("GET", "/?token=" + served.token, ""),
        ("GET", "/static/app.css", ""),
        ("GET", "/openapi.json", ""),
        ("GET", "/-/health", ""),
    ]


def _request(method: str, target: str, host: str, body: str, *headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close", *headers]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body.encode())}"]
    lines += ["Accept: application/json, text/event-stream", "", body]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize("host", REBOUND_HOSTS)
def test_a_rebound_host_is_421_everywhere(served: RunningServer, host: str) -> None:
    with agentkeep.open(served.ctx.store_dir) as store:
        store.add_task("before")
        store.start_session(title="running")
    host = host.format(port=served.port)
    for method, target, body in _routes_to_rebind(served):
        answer = raw(
            served.port,
            _request(method, target, host, body, f"Authorization: Bearer {served.token}"),
        )
        assert answer.status == 421, (host, method, target, answer.data[:300])
        assert json.loads(answer.body)["code"] == "misdirected_request"
        assert answer.header("set-cookie") is None
        assert served.token.encode() not in answer.data
    with agentkeep.open(served.ctx.store_dir) as store:
        assert [t.title for t in store.list_tasks()] == ["before"]


@pytest.mark.parametrize("host", ["127.0.0.1", "LOCALHOST:{port}", "[::1]:{port}", "Localhost"])
def test_the_loopback_names_are_answered(served: RunningServer, host: str) -> None:
    answer = get(served.port, "/api/v1/tasks", host=host.format(port=served.port))
    assert answer.status == 200, answer.data[:200]


def test_a_duplicate_host_is_refused_whatever_comes_first(served: RunningServer) -> None:
    for first, second in (("127.0.0.1", "evil.example"), ("evil.example", "127.0.0.1")):
        body = json.dumps({"title": "dup"})
        answer = raw(
            served.port,
            _request(
                "POST",
                "/api/v1/tasks",
                first,
                body,
                f"Host: {second}",
                f"Authorization: Bearer {served.token}",
            ),
        )
        assert answer.status in (400, 421), answer.data[:200]
    assert task_count(served) == 0


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1"])
def test_an_absolute_form_target_for_another_host_reaches_no_route(
    served: RunningServer, host: str
) -> None:
    body = json.dumps({"title": "absolute"})
    for target in ("http://evil.example/api/v1/tasks", "http://evil.example:80/api/v1/tasks"):
        answer = raw(
            served.port,
            _request("POST", target, host, body, f"Authorization: Bearer {served.token}"),
        )
        assert answer.status in (404, 421), answer.data[:200]
        reads = get(served.port, target, host=host)
        assert reads.status in (404, 421), reads.data[:200]
        assert b'"rows"' not in reads.body
    assert task_count(served) == 0


# == CSRF ==============================================================================


def _csrf_attempts(served: RunningServer) -> list[tuple[str, dict[str, str], bytes]]:
    cookie = f"{security.TOKEN_COOKIE}={served.token}"
    js = json.dumps({"title": "csrf"}).encode()
    evil = "http://evil.example"
    other_port = f"http://127.0.0.1:{served.port + 1}"
    form = "application/x-www-form-urlencoded"
    return [
        ("form, no cookie", {"Content-Type": form}, b"title=csrf"),
        ("form, cookie", {"Content-Type": form, "Cookie": cookie}, b"title=csrf"),
        (
            "form, cookie, same origin",
            {"Content-Type": form, "Cookie": cookie, "Origin": served.origin},
            b"title=csrf",
        ),
        ("text/plain json, cookie", {"Content-Type": "text/plain", "Cookie": cookie}, js),
        (
            "text/plain json, cookie, csrf header",
            {"Content-Type": "text/plain", "Cookie": cookie, "X-Agentkeep-CSRF": "1"},
            js,
        ),
        (
            "multipart, cookie",
            {"Content-Type": "multipart/form-data; boundary=x", "Cookie": cookie},
            b'--x\r\nContent-Disposition: form-data; name="title"\r\n\r\ncsrf\r\n--x--\r\n',
        ),
        ("json, cookie, no origin, no csrf header", {"Cookie": cookie}, js),
        (
            "json, cookie, Origin null",
            {"Cookie": cookie, "X-Agentkeep-CSRF": "1", "Origin": "null"},
            js,
        ),
        (
            "json, cookie, evil origin",
            {"Cookie": cookie, "X-Agentkeep-CSRF": "1", "Origin": evil},
            js,
        ),
        (
            "json, cookie, another local port",
            {"Cookie": cookie, "X-Agentkeep-CSRF": "1", "Origin": other_port},
            js,
        ),
        (
            "json, cookie, sec-fetch-site cross-site",
            {"Cookie": cookie, "X-Agentkeep-CSRF": "1", "Sec-Fetch-Site": "cross-site"},
            js,
        ),
        (
            "json, cookie, sec-fetch-site same-site",
            {"Cookie": cookie, "X-Agentkeep-CSRF": "1", "Sec-Fetch-Site": "same-site"},
            js,
        ),
        (
            "json, cookie, csrf header not 1",
            {"Cookie": cookie, "X-Agentkeep-CSRF": "true", "Origin": served.origin},
            js,
        ),
        (
            "json, wrong cookie",
            {"Cookie": f"{security.TOKEN_COOKIE}=x{served.token}", "X-Agentkeep-CSRF": "1"},
            js,
        ),
        (
            "json, two cookies, the wrong one first",
            {
                "Cookie": f"{security.TOKEN_COOKIE}=wrong; {cookie}",
                "X-Agentkeep-CSRF": "1",
                "Origin": evil,
            },
            js,
        ),
        ("json, basic auth", {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}, js),
        ("json, empty bearer", {"Authorization": "Bearer"}, js),
        ("json, token as a query parameter", {}, js),
    ]


def test_csrf_attempts_write_nothing_and_get_no_cors(
    served: RunningServer, http: httpx.Client
) -> None:
    for label, headers, body in _csrf_attempts(served):
        for target in ("/api/v1/tasks", f"/api/v1/tasks?token={served.token}"):
            sent = {"Content-Type": "application/json", **headers}
            answer = http.post(target, content=body, headers=sent)
            assert answer.status_code in (401, 403, 415), (label, answer.status_code, answer.text)
            assert answer.json()["code"] in ("unauthorized", "forbidden", "unsupported_media_type")
            no_cors(answer.headers)
            assert "set-cookie" not in answer.headers
    assert task_count(served) == 0
    # The control: the dashboard's own request is accepted (so the refusals above are
    # the checks at work, not a broken route).
    ok = http.post(
        "/api/v1/tasks",
        json={"title": "from the dashboard"},
        headers={
            "Cookie": f"{security.TOKEN_COOKIE}={served.token}",
            "X-Agentkeep-CSRF": "1",
            "Origin": served.origin,
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "headers",
    [
        {"X-HTTP-Method-Override": "POST"},
        {"X-HTTP-Method": "POST"},
        {"X-Method-Override": "DELETE"},
    ],
)
def test_method_override_does_not_turn_a_read_into_a_write(
    served: RunningServer, http: httpx.Client, headers: dict[str, str]
) -> None:
    with agentkeep.open(served.ctx.store_dir) as store:
        task = store.add_task("keep me", depends_on=[]).item
        other = store.add_task("dep").item
        store.add_dependency(task.id, other.id)
    for target in (
        "/api/v1/tasks?_method=POST&title=x",
        f"/api/v1/tasks/{task.id}?_method=PATCH&status=done",
        f"/api/v1/tasks/{task.id}/dependencies/{other.id}?_method=DELETE",
    ):
        answer = http.get(target, headers=headers)
        assert answer.status_code in (200, 405), answer.text
    # A form POST asking to be a PATCH is still a POST without a token.
    form = http.post(
        f"/api/v1/tasks/{task.id}?_method=PATCH",
        content=b"_method=PATCH&status=done",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 401
    with agentkeep.open(served.ctx.store_dir) as store:
        assert [t.title for t in store.list_tasks()] == ["keep me", "dep"]
        assert store.get_task(task.id).status == "open"
        assert store.get_task(task.id).depends_on == [other.id]


def _write_paths() -> list[tuple[str, str]]:
    found = []
    for endpoint in api.endpoints():
        if endpoint.method != "GET":
            path = template(endpoint.path).format(
                id=1, dep=2, ref="notes/one", queue="q", item="0123456789abcdef-0123456789ab"
            )
            found.append((endpoint.method, "/api/v1" + path))
    return [*found, ("POST", "/mcp")]


def test_a_preflight_is_never_answered_and_head_or_options_write_nothing(
    served: RunningServer, http: httpx.Client
) -> None:
    with agentkeep.open(served.ctx.store_dir) as store:
        store.add_task("one")
        store.add_task("two")
    before = _snapshot(served)
    for method, path in _write_paths():
        preflight = http.options(
            path,
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "content-type, x-agentkeep-csrf, authorization",
            },
        )
        assert preflight.status_code >= 400, (path, preflight.status_code)
        no_cors(preflight.headers)
        for probe in ("HEAD", "OPTIONS"):
            answer = http.request(
                probe, path, headers={"Cookie": f"agentkeep_token={served.token}"}
            )
            no_cors(answer.headers)
            assert answer.status_code != 500, (probe, path)
    assert _snapshot(served) == before


def _snapshot(served: RunningServer) -> Any:
    with agentkeep.open(served.ctx.store_dir) as store:
        return (
            [t.to_dict() for t in store.list_tasks()],
            store.last_seq(),
            len(store.list_notes()),
        )


def test_mcp_tool_calls_need_the_token_like_any_change(
    served: RunningServer, http: httpx.Client
) -> None:
    with agentkeep.open(served.ctx.store_dir) as store:
        task = store.add_task("claim me").item
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "task_claim", "arguments": {"task_id": task.id, "assignee": "evil"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    cookie = {"Cookie": f"{security.TOKEN_COOKIE}={served.token}"}
    attempts = [
        {"Content-Type": "application/json"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/json", **cookie},
        {"Content-Type": "text/plain", **cookie, "X-Agentkeep-CSRF": "1"},
        {
            "Content-Type": "application/json",
            **cookie,
            "X-Agentkeep-CSRF": "1",
            "Origin": "http://evil.example",
        },
        {"Content-Type": "application/json", **served.auth, "Origin": "null"},
        {"Content-Type": "application/json", **served.auth, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in attempts:
        answer = http.post("/mcp", content=json.dumps(call), headers={**accept, **headers})
        assert answer.status_code in (401, 403, 415), (headers, answer.text)
        no_cors(answer.headers)
    with agentkeep.open(served.ctx.store_dir) as store:
        assert store.get_task(task.id).status == "open"


# == the token =========================================================================


def test_the_token_is_never_in_an_answer(served: RunningServer, http: httpx.Client) -> None:
    """Every read of the API (each path of the OpenAPI document, ids of seeded records),
    the streams' first frames, /mcp's tools, the health check and the dashboard: none
    holds the token, nor does any refusal echo a token presented to it."""
    _seed_everything(served.ctx.store_dir)
    document = http.get("/openapi.json").json()
    token = served.token
    paths = [
        path.replace("{id}", "1").replace("{dep}", "2")
        for path, methods in document["paths"].items()
        if "get" in methods
    ]
    seen = 0
    for path in [*paths, "/openapi.json", "/-/health", "/", "/static/app.css"]:
        for headers in ({}, served.auth, {"Cookie": f"{security.TOKEN_COOKIE}={token}"}):
            answer = http.get(path, headers=headers)
            assert answer.status_code < 500, (path, answer.text[:200])
            assert token not in answer.text, path
            assert token not in json.dumps(dict(answer.headers)), path
            seen += 1
    assert seen > 60
    with http.stream("GET", "/api/v1/events/stream?after=0", headers=served.auth) as stream:
        head = b""
        for chunk in stream.iter_bytes():
            head += chunk
            if head.count(b"\n\nid:") >= 2 or len(head) > 4096:
                break
        assert b"id:" in head and token.encode() not in head
    listed = http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**served.auth, "Accept": "application/json, text/event-stream"},
    )
    assert listed.status_code == 200 and token not in listed.text
    for name in [tool["name"] for tool in listed.json()["result"]["tools"]]:
        called = http.post(
            "/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": name, "arguments": {}},
            },
            headers={**served.auth, "Accept": "application/json, text/event-stream"},
        )
        assert token not in called.text, name
    # A wrong token presented is not echoed back in the refusal.
    guess = secrets.token_urlsafe(32)
    for headers in (
        {"Authorization": f"Bearer {guess}"},
        {"Cookie": f"{security.TOKEN_COOKIE}={guess}", "X-Agentkeep-CSRF": "1"},
    ):
        refused = http.post("/api/v1/tasks", json={"title": "x"}, headers=headers)
        assert refused.status_code == 403 and guess not in refused.text
    assert guess not in http.get(f"/?token={guess}").text


def _seed_everything(store_dir: Path) -> None:
    with agentkeep.open(store_dir) as store:
        agent = store.register_agent("agent-1").item
        task = store.add_task("a task", labels=["l"], assignee="agent-1").item
        other = store.add_task("another", depends_on=[task.id]).item
        session = store.start_session(title="s", task_id=task.id, agent_id=agent.id).item
        store.add_note("handoff", "a handoff", task_id=task.id, session_id=session.id)
        store.record_event("custom.thing", data={"a": 1})
        store.add_artifact(b"bytes", name="f.txt", session_id=session.id)
        writer = store.open_stream(session.id, "stdout")
        writer.write(b"output\n")
        store.seal_stream(writer.close().id)
        store.add_worktree(store_dir.parent, branch="main")
        assert other.id == 2


def test_the_bootstrap_cookie_is_strict_httponly_on_path_root_and_leaves_the_url(
    served: RunningServer,
) -> None:
    answer = get(served.port, f"/sessions?after=3&token={served.token}&x=%2F")
    assert answer.status == 303, answer.data[:200]
    location = answer.header("location") or ""
    assert served.token not in location and "token" not in location
    assert location == "/sessions?after=3&x=%2F"
    cookie = answer.header("set-cookie") or ""
    parts = [part.strip().lower() for part in cookie.split(";")]
    assert parts[0] == f"{security.TOKEN_COOKIE}={served.token}".lower()
    assert "httponly" in parts and "samesite=strict" in parts and "path=/" in parts
    assert not any(part.startswith("domain") for part in parts)
    assert answer.header("cache-control") == "no-store"
    assert served.token not in answer.body.decode()
    assert not any(served.token in line for line in served.log)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "//evil.example/%2e%2e",
        "/%2F%2Fevil.example/",
        "/\\evil.example/",
        "/%5Cevil.example/",
        "/%E2%82%AC/board",
        "/%0d%0aSet-Cookie:%20x=1",
        "/%00",
        "/a%20b",
    ],
)
def test_the_bootstrap_never_redirects_off_the_server_nor_fails(
    served: RunningServer, target: str
) -> None:
    answer = get(served.port, f"{target}?token={served.token}&keep=1")
    assert answer.status == 303, (target, answer.data[:300])
    location = answer.header("location") or ""
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert location.endswith("?keep=1"), location
    assert all(0x21 <= ord(c) < 0x7F for c in location), location
    assert served.token not in location
    assert [h for h, _ in answer.headers].count("set-cookie") == 1
    followed = get(served.port, location)
    assert followed.status in (200, 404), followed.data[:200]


def test_tokens_are_compared_in_constant_time(
    served: RunningServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    guess = "x" * len(served.token)
    cookie = {"Cookie": f"{security.TOKEN_COOKIE}={guess}", "X-Agentkeep-CSRF": "1"}
    for answer in (
        http.post(
            "/api/v1/tasks", json={"title": "t"}, headers={"Authorization": f"Bearer {guess}"}
        ),
        http.post("/api/v1/tasks", json={"title": "t"}, headers=cookie),
        http.get(f"/?token={guess}"),
    ):
        assert answer.status_code == 403
    assert len(calls) == 3
    assert all(b == served.token.encode() and a == guess.encode() for a, b in calls)


def test_a_real_serve_keeps_the_token_out_of_its_log_and_server_json(project: Path) -> None:
    started = run_agentkeep("serve", "--background", "--port", "0", cwd=project, timeout=SAFETY)
    assert started.returncode == 0, started.stderr
    store_dir = project / ".agentkeep"
    try:
        token = run_agentkeep("server", "token", cwd=project).stdout.decode().strip()
        assert len(token) >= 32
        info = json.loads((store_dir / process.SERVER_JSON).read_text())
        url = info["url"]
        with httpx.Client(base_url=url, timeout=SAFETY) as client:
            assert client.get(f"/?token={token}").status_code == 303
            assert client.get(f"/api/v1/tasks?token={token}").status_code == 200
            assert client.get(f"/nowhere?token={token}&x=1").status_code == 303
            assert client.get(f"/-/health?token={token}").status_code == 200
            assert client.get(f"/?token=wrong{token}").status_code == 403
            made = client.post(
                "/api/v1/tasks",
                json={"title": "via the real server"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code == 201
            health = client.get("/-/health")
            assert token not in health.text
            assert set(health.json()) == {"schema_version", "ok", "version", "store_schema"}
    finally:
        stopped = run_agentkeep("server", "stop", cwd=project, timeout=SAFETY)
        assert stopped.returncode == 0, stopped.stderr
    log = (store_dir / process.LOG_FILE).read_text()
    assert "GET /api/v1/tasks 200" in log and "POST /api/v1/tasks 201" in log
    assert token not in log
    assert token not in json.dumps(info)
    assert token not in started.stdout.decode()  # stdout has the URL alone, for scripts
    for name in os.listdir(store_dir):
        path = store_dir / name
        if not name.startswith("state.db") and path.is_file() and path.stat().st_size < 10_000_000:
            assert token.encode() not in path.read_bytes(), name


def test_with_require_auth_every_read_needs_the_token_but_health(project: Path) -> None:
    with agentkeep.open(project) as store:
        store.add_task("private")
        session = store.start_session(title="running").item
    with (
        running_server(project / ".agentkeep", require_auth=True) as served,
        httpx.Client(base_url=served.url, timeout=SAFETY) as http,
    ):
        reads = [
            "/api/v1/tasks",
            "/api/v1/tasks/1",
            "/api/v1/search?q=private",
            "/api/v1/events/stream",
            f"/api/v1/sessions/{session.id}/follow",
            "/mcp",
            "/",
            "/sessions",
            "/static/app.css",
            "/openapi.json",
            "/api/v1/operations",
        ]
        for path in reads:
            for headers in ({}, {"Cookie": f"{security.TOKEN_COOKIE}=wrong"}):
                answer = http.get(path, headers=headers)
                assert answer.status_code in (401, 403), (path, answer.status_code)
                assert "private" not in answer.text
        listed = http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert listed.status_code == 401
        assert http.get("/-/health").status_code == 200
        # The control: the token opens them.
        assert http.get("/api/v1/tasks", headers=served.auth).json()["rows"][0]["title"] == (
            "private"
        )
        cookie = {"Cookie": f"{security.TOKEN_COOKIE}={served.token}"}
        assert http.get("/sessions", headers=cookie).status_code == 200


PAGES = [
    "/",
    "/sessions",
    "/live",
    "/activity",
    "/search",
    "/usage",
    "/stats",
    "/fleet",
    "/sessions/1",
    "/sessions/1/raw",
    "/board/cards/1",
    "/docs",
    "/docs/notes/one",
    "/queues",
    "/queues/builds",
]
# What the pages read.
PAGE_PARAMS = [
    *("q", "day", "kind", "since", "status", "source", "agent"),
    *("namespace", "version", "state"),
]
PAGE_VALUES = [
    "%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E",
    "%C2%B2",  # a superscript two: str.isdigit() says yes, int() says no
    "99999999999999999999999",
    "%00",
    "%ED%A0%80",  # a lone surrogate, as UTF-8
    "10000-01-01",
    "a" * 3000,
]


@pytest.mark.parametrize("value", PAGE_VALUES, ids=range(len(PAGE_VALUES)))
def test_hostile_query_parameters_on_every_page_are_never_a_500_nor_reflected_raw(
    served: RunningServer, http: httpx.Client, value: str
) -> None:
    with agentkeep.open(served.ctx.store_dir) as store:
        store.add_task("t")
        store.start_session(title="s")
        store.docs.write_doc("notes/one", body="# One\n")
        store.queues.put("builds", "make")
    for page in PAGES:
        for name in PAGE_PARAMS:
            answer = http.get(f"{page}?{name}={value}")
            assert answer.status_code < 500, (page, name, value[:20], answer.text[:200])
            if answer.headers["content-type"].startswith("text/html"):
                assert "<script>window.__pwned" not in answer.text, (page, name)


# == hostile stored content through the API =============================================

PAYLOADS = [
    "</script><script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "javascript:window.__pwned=1",
    "data:text/html,<script>window.__pwned=1</script>",
    "{{7*7}} {% raw %}${7*7}",
    "</style><style>*{display:none}</style>",
    "\u202eevil\u202c \x1b[2J\x1b]0;title\x07",
]


def test_hostile_text_comes_back_as_json_data_never_as_a_page(
    served: RunningServer, http: httpx.Client
) -> None:
    text = " ".join(PAYLOADS)
    with agentkeep.open(served.ctx.store_dir) as store:
        agent = store.register_agent(PAYLOADS[1]).item
        task = store.add_task(text, body=text, labels=PAYLOADS[:3], assignee=PAYLOADS[0]).item
        session = store.start_session(title=text, agent_id=agent.id).item
        store.add_note("handoff", text, task_id=task.id)
        store.record_event("custom.hostile", data={"text": text})
        store.add_artifact(text.encode(), name=PAYLOADS[0], content_type="text/html")
        store.add_artifact(b"<svg onload=alert(1)>", name="x.svg", content_type="image/svg+xml")
        store.add_artifact(b"alert(1)", name="x.js", content_type="application/javascript")
        writer = store.open_stream(session.id, "stdout")
        writer.write(text.encode() + b"\n")
        writer.close()
    for path in (
        "/api/v1/tasks",
        f"/api/v1/tasks/{task.id}",
        "/api/v1/notes",
        "/api/v1/sessions",
        f"/api/v1/sessions/{session.id}",
        "/api/v1/agents",
        "/api/v1/events",
        "/api/v1/artifacts",
        "/api/v1/search?q=pwned",
        "/api/v1/tasks?_nl=1",
    ):
        answer = http.get(path)
        assert answer.status_code == 200, path
        kind = answer.headers["content-type"]
        assert kind.startswith(("application/json", "application/x-ndjson")), (path, kind)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in answer.headers["content-security-policy"]
        if "7*7" in answer.text:  # no template was evaluated
            assert "{{7*7}}" in answer.text, path
    assert http.get(f"/api/v1/tasks/{task.id}").json()["title"] == text  # byte-exact
    for artifact in http.get("/api/v1/artifacts").json()["rows"]:
        content = http.get(f"/api/v1/artifacts/{artifact['id']}/content")
        assert content.headers["content-type"] == "text/plain; charset=utf-8", artifact
        assert "sandbox" in content.headers["content-security-policy"]
        assert content.headers["x-content-type-options"] == "nosniff"
    log = http.get(f"/api/v1/sessions/{session.id}/streams").json()["rows"][0]
    shown = http.get(f"/api/v1/streams/{log['id']}/log")
    assert shown.headers["content-type"] == "text/plain; charset=utf-8"
    assert shown.content == text.encode() + b"\n"


def test_control_characters_in_a_path_never_reach_the_access_log_raw(served: RunningServer) -> None:
    get(served.port, "/api/v1/%1b[2J%1b]0;pwned%07/%0d%0aFAKE%20200")
    get(served.port, "/%E2%80%AEgol")
    lines = [line for line in served.log if "/api/v1/" in line or "gol" in line]
    assert lines
    for line in served.log:
        assert "\n" not in line and "\r" not in line
        assert all(c == " " or 0x21 <= ord(c) < 0x7F for c in line), repr(line)


def test_a_5mb_line_is_refused_by_the_api_and_served_whole_from_the_store(
    served: RunningServer, http: httpx.Client
) -> None:
    line = "x" * (5 * 1_048_576)
    too_big = http.post("/api/v1/tasks", json={"title": line}, headers=served.auth)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    assert task_count(served) == 0
    with agentkeep.open(served.ctx.store_dir) as store:
        session = store.start_session(title="one long line").item
        writer = store.open_stream(session.id, "stdout")
        writer.write(line.encode() + b"\n")
        stream = store.seal_stream(writer.close().id)
        store.add_task("x" * 1000 + PAYLOADS[0])
    shown = http.get(f"/api/v1/streams/{stream.id}/log")
    assert shown.status_code == 200 and shown.content == line.encode() + b"\n"
    assert http.get("/api/v1/tasks").status_code == 200
    assert http.get("/-/health").status_code == 200


# == resource abuse ====================================================================

LISTS = [
    "/api/v1/tasks",
    "/api/v1/tasks/ready",
    "/api/v1/notes",
    "/api/v1/sessions",
    "/api/v1/events",
    "/api/v1/metrics",
    "/api/v1/artifacts",
]


def _b64(raw_bytes: bytes) -> str:
    return base64.urlsafe_b64encode(raw_bytes).decode().rstrip("=")


FORGED_CURSORS = [
    "A" * 20_000,
    "%00",
    "!!!!",
    _b64(b"[" * 20_000 + b"]" * 20_000),
    _b64(b"{" * 5_000),
    _b64(b'["\\ud800", 1]'),
    _b64(b'["\\udfff"]'),
    _b64(b"[1e999, 1]"),
    _b64(b"[NaN, 1]"),
    _b64(b"[" + b"9" * 5000 + b", 1]"),
    _b64(b"[-9223372036854775809, 1]"),
    _b64(b"[true, false]"),
    _b64(b'{"a": 1}'),
    _b64(json.dumps([[1] * 1000]).encode()),
    _b64(json.dumps(["x" * 100_000, 1]).encode()),
    _b64(b"\xff\xfe\xfd"),
]


@pytest.mark.parametrize("cursor", FORGED_CURSORS, ids=range(len(FORGED_CURSORS)))
def test_a_forged_cursor_is_400_on_every_list(served: RunningServer, cursor: str) -> None:
    for path in LISTS:
        answer = get(served.port, f"{path}?cursor={cursor}")
        assert answer.status in (200, 400), (path, cursor[:40], answer.data[:300])
        if answer.status == 400 and answer.header("content-type") == "application/json":
            assert json.loads(answer.body)["code"] == "invalid_input"


@pytest.mark.parametrize(
    "query",
    [
        "limit=" + "9" * 5000,
        "limit=1000000000000000000000",
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=1e3",
        "limit=%00",
        "limit=",
        "after=" + "9" * 30,
        "after=-5",
    ],
)
def test_a_huge_or_bad_limit_is_bounded(served: RunningServer, query: str) -> None:
    for path in [*LISTS, "/api/v1/sessions/1/transcript", "/api/v1/search?q=x"]:
        sep = "&" if "?" in path else "?"
        answer = get(served.port, f"{path}{sep}{query}")
        assert answer.status in (200, 400, 404), (path, query[:30], answer.data[:300])


def test_ten_thousand_filters_and_a_100kb_request_line_get_bounded_answers(
    served: RunningServer,
) -> None:
    # A request line past h11's 16 KiB limit is answered 200 when it arrives in one read
    # and 400 when it arrives in pieces (a loaded machine): both are bounded answers; what
    # must never come is a 5xx, a hang, or a server that stops serving.
    many = "&".join(["status=open"] * 10_000)
    answer = get(served.port, f"/api/v1/tasks?{many}")
    assert answer.status in (200, 400, 414, 431), answer.data[:200]
    unknown = "&".join(f"f{i}=1" for i in range(10_000))
    answer = get(served.port, f"/api/v1/notes?{unknown}")
    assert answer.status in (200, 400, 414, 431), answer.data[:200]
    fits = "&".join(["status=open"] * 1_000)  # 12 KB: under the limit, always parsed
    assert get(served.port, f"/api/v1/tasks?{fits}").status == 200
    huge = get(served.port, "/api/v1/tasks?q=" + "a" * 100_000)
    assert huge.status is None or huge.status < 500, huge.data[:200]
    header = get(served.port, "/api/v1/tasks", "X-Junk: " + "a" * 100_000)
    assert header.status is None or header.status < 500
    many_headers = get(served.port, "/api/v1/tasks", *[f"X-H{i}: v" for i in range(2000)])
    assert many_headers.status is None or many_headers.status < 500
    assert get(served.port, "/api/v1/tasks").status == 200  # still serving


@contextlib.contextmanager
def held_open(port: int, requests: list[bytes]) -> Iterator[list[socket.socket]]:
    socks = []
    try:
        for request in requests:
            sock = socket.create_connection(("127.0.0.1", port), timeout=SAFETY)
            sock.sendall(request)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_slow_partial_requests_do_not_hang_other_clients(served: RunningServer) -> None:
    """Slowloris: half-sent headers, and bodies that stop after a few bytes, many more of
    them than the server's worker threads — authenticated ones included, which reach the
    endpoints. Another client is answered at once."""
    head = b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    json_head = head + b"Content-Type: application/json\r\nContent-Length: 100000\r\n"
    token = f"Authorization: Bearer {served.token}\r\n".encode()
    upload = (
        b"POST /api/v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + token + b"Content-Type: "
        b"application/octet-stream\r\nContent-Length: 100000\r\n\r\nsome"
    )
    requests = (
        [b"GET /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"] * 50
        + [json_head + b"\r\n" + b'{"ti'] * 50
        + [json_head + token + b"\r\n" + b'{"ti'] * 60
        + [upload] * 60
    )
    with (
        held_open(served.port, requests),
        httpx.Client(base_url=served.url, timeout=SAFETY) as client,
    ):
        assert client.get("/api/v1/tasks").status_code == 200
        made = client.post("/api/v1/tasks", json={"title": "still"}, headers=served.auth)
        assert made.status_code == 201
        assert client.get("/api/v1/tasks/1").status_code == 200
    assert task_count(served) == 1


def test_many_live_streams_stay_bounded_and_others_are_answered(project: Path) -> None:
    """200 event streams and 200 log tails at once: a read is answered, a new event
    reaches the streams, and log tails beyond the cap are refused with 503."""
    options = live.LiveOptions(max_tails=20)
    with (
        running_server(project / ".agentkeep", live_options=options) as served,
        agentkeep.open(project) as store,
    ):
        session = store.start_session(title="running").item
        writer = store.open_stream(session.id, "stdout")
        writer.write(b"line\n")
        writer.commit_progress()
        streams = [_request("GET", "/api/v1/events/stream", "127.0.0.1", "") for _ in range(200)]
        tails = [
            _request("GET", f"/api/v1/sessions/{session.id}/follow", "127.0.0.1", "")
            for _ in range(200)
        ]
        with held_open(served.port, streams + tails) as socks:
            statuses: dict[int, int] = {}
            for sock in socks:
                status = _status_line(sock)
                statuses[status] = statuses.get(status, 0) + 1
            assert statuses == {200: 220, 503: 180}, statuses
            with httpx.Client(base_url=served.url, timeout=SAFETY) as client:
                assert client.get("/api/v1/tasks").status_code == 200
                made = client.post("/api/v1/tasks", json={"title": "live"}, headers=served.auth)
                assert made.status_code == 201
            # The new event reaches the last stream opened.
            last_stream = socks[199]
            seen = b""
            while b"task.created" not in seen:
                chunk = last_stream.recv(65536)
                assert chunk, "the stream ended"
                seen += chunk
        # The tails' slots come back once their clients are gone: a new tail is served.
        follow = f"/api/v1/sessions/{session.id}/follow"
        deadline = threading.Event()
        timer = threading.Timer(SAFETY, deadline.set)
        timer.start()
        try:
            while True:
                with held_open(served.port, [_request("GET", follow, "127.0.0.1", "")]) as one:
                    if _status_line(one[0]) == 200:
                        break
                assert not deadline.is_set(), "the tails' slots were never given back"
        finally:
            timer.cancel()
        writer.close()


def _status_line(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, "closed before a status line"
        data += chunk
    return int(data.split()[1])


# == no endpoint runs a command or reads a path ========================================

# Routes outside the OpenAPI document, each reviewed: what it is and the methods it takes.
UNDOCUMENTED = {
    "/-/health": {"GET", "HEAD"},
    "/openapi.json": {"GET", "HEAD"},
    "/mcp": {"GET", "HEAD", "POST", "DELETE"},
    "/api/v1/events/stream": {"GET", "HEAD"},  # SSE (docs/http-api.md)
    "/api/v1/sessions/{id}/follow": {"GET", "HEAD"},  # SSE (docs/http-api.md)
}
PATHY = {"path", "file", "filename", "dir", "directory", "cmd", "exec", "shell", "script", "url"}


def test_the_openapi_paths_are_every_api_route(served: RunningServer, http: httpx.Client) -> None:
    from starlette.routing import Mount, Route

    document = http.get("/openapi.json").json()
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    app_routes = create_app(served.ctx).routes
    found: set[tuple[str, str]] = set()
    for route in app_routes:
        if isinstance(route, Mount):
            assert route.path == "/static", route.path
            continue
        assert isinstance(route, Route), route
        methods = set(route.methods or {"GET", "HEAD"})
        reviewed = UNDOCUMENTED.get(route.path)
        if reviewed is not None:
            assert methods <= reviewed, (route.path, methods)
            continue
        if route.path.startswith("/api/"):
            found |= {(template(route.path), m) for m in methods if m != "HEAD"}
        else:  # a dashboard page: it reads, never writes
            assert methods <= {"GET", "HEAD"}, (route.path, methods)
    assert found == documented


def test_no_parameter_names_a_path_or_a_command(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                assert parameter["name"].lower() not in PATHY, (path, parameter["name"])
    assert all(name not in PATHY for name in api.TASK_ADD)


def test_a_session_command_sent_to_the_api_is_recorded_never_run(
    served: RunningServer, http: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    started = http.post(
        "/api/v1/sessions",
        json={"command": ["touch", str(marker)], "cwd": str(tmp_path), "title": "$(touch x)"},
        headers=served.auth,
    )
    assert started.status_code == 201, started.text
    assert started.json()["session"]["command"] == ["touch", str(marker)]
    assert not marker.exists() and not (tmp_path / "x").exists()


def test_no_route_module_can_run_a_command() -> None:
    """The modules behind the routes import nothing that runs a program, and call no
    os.system/exec/spawn/popen. (server/process.py starts ``agentkeep serve`` itself for
    --background; it is the CLI's, not a route's.)"""
    import agentkeep.mcp

    # (shlex only quotes: the sessions page shows a resume command, never runs it.)
    forbidden_modules = {"subprocess", "pty", "pexpect", "multiprocessing"}
    forbidden_calls = {"system", "popen", "execv", "execve", "execvp", "spawnv", "startfile"}
    files = [
        path
        for root in (SERVER_DIR, Path(agentkeep.mcp.__file__).parent)
        for path in root.rglob("*.py")
        if path.name != "process.py"
    ]
    assert len(files) > 10
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            assert not names & forbidden_modules, (path, names)
            if isinstance(node, ast.Attribute) and node.attr in forbidden_calls:
                pytest.fail(f"{path}: {node.attr}")


def test_a_hostile_bundle_import_writes_nothing_outside_the_store(
    served: RunningServer, http: httpx.Client, tmp_path: Path
) -> None:
    """A tar whose members climb out (``../``), are absolute, or are links to a secret
    file: the import reads members by name and never extracts them to a path."""
    import io
    import tarfile

    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET_MARKER)
    escaped = tmp_path / "escaped.txt"
    bundle = io.BytesIO()
    with tarfile.open(fileobj=bundle, mode="w") as tar:
        for name in (f"../../../../{escaped}", str(escaped), "manifest.json"):
            data = b'{"format": "agentkeep-bundle"}'
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("objects/link")
        link.type, link.linkname = tarfile.SYMTYPE, str(secret)
        tar.addfile(link)
    started = http.post(
        "/api/v1/operations/import",
        content=bundle.getvalue(),
        headers={**served.auth, "Content-Type": "application/x-tar"},
    )
    assert started.status_code in (202, 400), started.text
    if started.status_code == 202:
        op = started.json()
        done = threading.Event()
        timer = threading.Timer(SAFETY, done.set)
        timer.start()
        try:
            while op["status"] == "running":
                assert not done.is_set(), "the import never finished"
                op = http.get(f"/api/v1/operations/{op['id']}").json()
        finally:
            timer.cancel()
        assert op["status"] in ("done", "failed"), op
        assert SECRET_MARKER.decode() not in json.dumps(op)
    assert not escaped.exists()
    for path in served.ctx.store_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("state.db"):
            assert SECRET_MARKER not in path.read_bytes(), path


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"kind": ' * 50_000, b"\xff\xfe"])
def test_a_hostile_operations_body_is_400(
    served: RunningServer, http: httpx.Client, body: bytes
) -> None:
    for path in ("/api/v1/operations", "/api/v1/sessions/1/pin"):
        answer = http.post(
            path, content=body, headers={**served.auth, "Content-Type": "application/json"}
        )
        assert answer.status_code in (400, 404), (path, answer.text[:200])
