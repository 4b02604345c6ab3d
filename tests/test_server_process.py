"""The server process (server/process.py, cli/serve_cmd.py): real ``agentkeep serve``
subprocesses, stopped with SIGINT/SIGTERM and killed with SIGKILL. Every wait is for an
event (a line on stderr, a process exit, a pipe); the timeouts are only safety nets."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agentkeep.server import process

from conftest import run_agentkeep

SAFETY = 60.0  # seconds; never reached unless something is broken


@contextmanager
def foreground(project: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``agentkeep serve --port 0 ARGS`` in the foreground; yields it and its URL once it
    says it is serving. Killed (SIGKILL) at the end if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "serve", "--port", "0", *args],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)
        lines.put(b"")

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    try:
        while True:
            line = lines.get(timeout=SAFETY)
            assert line, "the server exited before it served"
            if b"serving" in line:
                break
        info = json.loads((project / ".agentkeep" / process.SERVER_JSON).read_text())
        assert info["pid"] == proc.pid
        yield proc, info["url"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(SAFETY)
        pumping.join(SAFETY)  # it ends at EOF, once the server is gone
        stderr.close()


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_agentkeep(*args, cwd=project, timeout=SAFETY)


def server_status(project: Path) -> dict[str, object]:
    done = cli(project, "server", "status", "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::", "example.com"])
def test_a_non_loopback_host_without_require_auth_is_refused(project: Path, host: str) -> None:
    done = cli(project, "serve", "--host", host, "--port", "0")
    assert done.returncode == 2
    assert b"--require-auth" in done.stderr
    assert not (project / ".agentkeep" / process.SERVER_JSON).exists()
    assert not (project / ".agentkeep" / process.LOCK_FILE).exists()  # nothing started


def test_a_public_url_beyond_loopback_without_require_auth_is_refused(project: Path) -> None:
    done = cli(project, "serve", "--port", "0", "--public-url", "https://box.example")
    assert done.returncode == 2
    assert b"--require-auth" in done.stderr
    assert not (project / ".agentkeep" / process.LOCK_FILE).exists()


def test_second_serve_is_refused_and_sigint_stops_the_first(project: Path) -> None:
    with foreground(project) as (first, url):
        assert httpx.get(url + "/-/health").json()["ok"] is True
        second = cli(project, "serve", "--port", "0")
        assert second.returncode == 5  # conflict
        assert url.encode() in second.stderr
        assert b"already running" in second.stderr
        as_json = cli(project, "serve", "--background", "--port", "0")
        assert as_json.returncode == 5
        first.send_signal(signal.SIGINT)
        assert first.wait(SAFETY) == 0
    assert not (project / ".agentkeep" / process.SERVER_JSON).exists()
    assert server_status(project) == {"schema_version": 1, "running": False, "stale": False}


def test_sigterm_stops_a_foreground_server_and_it_cleans_up(project: Path) -> None:
    with foreground(project) as (proc, _):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SAFETY) == 0
    assert not (project / ".agentkeep" / process.SERVER_JSON).exists()


def test_background_start_status_stop(project: Path) -> None:
    started = cli(project, "serve", "--background", "--port", "0")
    assert started.returncode == 0, started.stderr
    url = started.stdout.decode().strip()
    assert url.startswith("http://127.0.0.1:")
    token = process.install_token()
    assert f"{url}/?token={token}".encode() in started.stderr
    try:
        assert httpx.get(url + "/-/health").status_code == 200
        status = server_status(project)
        assert status["running"] is True
        assert status["url"] == url
        assert isinstance(status["uptime_seconds"], int)
        pid = status["pid"]
        assert isinstance(pid, int)
        log = (project / ".agentkeep" / process.LOG_FILE).read_text()
        assert "serving" in log
        assert token not in log  # the dashboard URL never goes into server.log
        human = cli(project, "server", "status")
        assert f"running at {url}".encode() in human.stdout
    finally:
        stopped = cli(project, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"pid {pid}".encode() in stopped.stdout
    assert server_status(project)["running"] is False
    assert not (project / ".agentkeep" / process.SERVER_JSON).exists()
    again = cli(project, "server", "stop")
    assert again.returncode == 0
    assert b"no server is running" in again.stderr


def test_a_background_server_keeps_the_actor(project: Path) -> None:
    started = cli(project, "--actor", "bot-7", "serve", "--background", "--port", "0")
    assert started.returncode == 0, started.stderr
    url = started.stdout.decode().strip()
    auth = {"Authorization": f"Bearer {process.install_token()}"}
    try:
        with httpx.Client(base_url=url + "/api/v1", headers=auth, timeout=SAFETY) as http:
            made = http.post("/tasks", json={"title": "claimed in the background"})
            assert made.status_code == 201, made.text
            task_id = made.json()["task"]["id"]
            claimed = http.post(f"/tasks/{task_id}/claim", json={"assignee": "ann"})
            assert claimed.status_code == 200, claimed.text
            events = http.get("/events", params={"entity": "task", "entity_id": task_id})
            actors = {event["actor"] for event in events.json()["rows"]}
    finally:
        assert cli(project, "server", "stop").returncode == 0
    assert actors == {"bot-7"}  # not AGENTKEEP_ACTOR (tester@test), which the child inherits


def test_after_a_sigkill_status_says_not_running_and_serve_starts_again(project: Path) -> None:
    started = cli(project, "serve", "--background", "--port", "0")
    assert started.returncode == 0, started.stderr
    pid = server_status(project)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    # The kernel drops the lock when the process is gone: wait for that, not for a clock.
    assert process.wait_until_stopped(project / ".agentkeep", SAFETY)
    status = server_status(project)
    assert status["running"] is False
    assert status["stale"] is True  # its server.json is still there
    assert status["pid"] == pid
    assert b"stale" in cli(project, "server", "status").stdout

    again = cli(project, "serve", "--background", "--port", "0")
    assert again.returncode == 0, again.stderr
    url = again.stdout.decode().strip()
    try:
        assert httpx.get(url + "/-/health").status_code == 200
        status = server_status(project)
        assert status["running"] is True and status["pid"] != pid
    finally:
        assert cli(project, "server", "stop").returncode == 0


def test_require_auth_serves_beyond_loopback_with_the_token_for_reads(project: Path) -> None:
    started = cli(project, "serve", "--background", "--port", "0", "--host", "0.0.0.0",
                  "--require-auth")  # fmt: skip
    assert started.returncode == 0, started.stderr
    url = started.stdout.decode().strip()
    try:
        assert httpx.get(url + "/api/v1/tasks").status_code == 401
        token = process.install_token()
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "/api/v1/tasks", headers=headers).status_code == 200
    finally:
        assert cli(project, "server", "stop").returncode == 0


def test_a_port_in_use_is_a_clear_error(project: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = cli(project, "serve", "--port", str(port))
    assert done.returncode == 5
    assert f"port {port}".encode() in done.stderr
    assert not (project / ".agentkeep" / process.SERVER_JSON).exists()


STREAMING_SERVER = textwrap.dedent(
    """
    import sys
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route
    from agentkeep.server import process

    async def endless(request):
        async def forever():
            while True:
                yield b"data: tick\\n\\n"
                import asyncio
                await asyncio.sleep(0.05)
        return StreamingResponse(forever(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/stream", endless)])
    with process.listen("127.0.0.1", 0) as sock:
        def started():
            print(sock.getsockname()[1], flush=True)
        process.uvicorn_server(process.uvicorn_config(app), started).run(sockets=[sock])
    print("stopped", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_server_with_a_live_stream_open(tmp_path: Path, sig: int) -> None:
    """uvicorn waits for open streams forever by default: the server's config cuts them."""
    proc = subprocess.Popen(
        [sys.executable, "-c", STREAMING_SERVER], stdout=subprocess.PIPE, cwd=tmp_path
    )
    assert proc.stdout is not None
    with proc:
        try:
            port = int(proc.stdout.readline())
            with (
                httpx.Client(timeout=SAFETY) as client,
                client.stream("GET", f"http://127.0.0.1:{port}/stream") as stream,
            ):
                chunks = stream.iter_bytes()
                assert next(chunks).startswith(b"data: tick")
                proc.send_signal(sig)
                assert proc.wait(SAFETY) == 0
            assert proc.stdout.read() == b"stopped\n"
        finally:
            if proc.poll() is None:
                proc.kill()


def test_the_hosts_and_origins_a_server_answers() -> None:
    hosts, origins = process.allowed_hosts_and_origins("127.0.0.1", 8765, None)
    assert hosts == {"127.0.0.1", "localhost", "[::1]"}
    assert "http://127.0.0.1:8765" in origins and "http://localhost:8765" in origins
    hosts, origins = process.allowed_hosts_and_origins("::1", 9, "https://Box.example:9000/x")
    assert {"[::1]", "box.example"} <= hosts
    assert "https://box.example:9000" in origins
    hosts, _ = process.allowed_hosts_and_origins("0.0.0.0", 9, None)
    assert "0.0.0.0" not in hosts  # a wildcard is not a name anyone should send


def test_an_ipv6_loopback_server(project: Path) -> None:
    started = cli(project, "serve", "--background", "--port", "0", "--host", "::1")
    assert started.returncode == 0, started.stderr
    url = started.stdout.decode().strip()
    try:
        assert url.startswith("http://[::1]:")
        assert httpx.get(url + "/api/v1/tasks").status_code == 200
    finally:
        assert cli(project, "server", "stop").returncode == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_accepted_connections_send_without_waiting_for_an_ack(host: str) -> None:
    """``serve``'s socket is one asyncio turns TCP_NODELAY on for: without it a response
    written in two parts waited 40 ms for the client's delayed ACK on every request of a
    kept-alive connection (bench/bench_serve.py found it)."""
    import asyncio

    from agentkeep.server.process import listen

    async def nodelay_of_an_accepted_connection() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listen(host, 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(accepted, 30)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(nodelay_of_an_accepted_connection()) != 0
