"""Live streams: commit -> SSE client latency and the server's CPU with idle clients.

    python bench/bench_live.py [--events 1000] [--clients 50] [--seconds 10] [--stalled 0]

Starts ``agentkeep serve --port 0`` on a fresh store in a temp directory. Latency: a writer
process (tests/helpers/writer.py stream) records events carrying ``time.time()`` taken just
before each write; one SSE client notes when each arrives. With ``--stalled K``, K more
clients read nothing through it (a backlog of ``--backlog`` 2 KB events is written first, so
their sockets and queues are full): the reading client's latency must not grow with them.
CPU: the server's utime+stime from /proc over ``--seconds`` with no client, then with
``--clients`` idle streams.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

import agentkeep

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stalled_client(port: int) -> socket.socket:
    """An event-stream client that reads nothing (a small receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    sock.recv(4096)  # the headers: it is subscribed; from now on it reads nothing
    return sock


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--stalled", type=int, default=0, help="clients that read nothing")
    parser.add_argument("--backlog", type=int, default=4000, help="events before, with --stalled")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        agentkeep.init_store(project)
        server = subprocess.Popen(
            [sys.executable, "-m", "agentkeep", "serve", "--port", "0"],
            cwd=project,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        assert server.stderr is not None
        for line in server.stderr:
            if b"serving" in line:
                break
        threading.Thread(target=server.stderr.read, daemon=True).start()
        url = json.loads((project / ".agentkeep" / "server.json").read_text())["url"].rstrip("/")
        port = int(url.rsplit(":", 1)[1])
        try:
            delays: list[float] = []
            stalled = [stalled_client(port) for _ in range(args.stalled)]
            with (
                httpx.Client(timeout=60) as client,
                connect_sse(client, "GET", f"{url}/api/v1/events/stream") as source,
            ):
                if stalled:
                    with agentkeep.open(project / ".agentkeep") as store:
                        for start in range(0, args.backlog, 500):
                            count = min(500, args.backlog - start)
                            store.record_events(
                                [{"kind": "bench.pad", "data": {"pad": "x" * 2000}}] * count
                            )
                command = [str(ROOT / "tests" / "helpers" / "writer.py"), "stream", str(project)]
                command += ["--count", str(args.events), "--interval", str(args.interval)]
                writer = subprocess.Popen(
                    [sys.executable, *command, "--kind", "bench.live"],
                    stdout=subprocess.DEVNULL,
                )
                for event in source.iter_sse():
                    if event.event != "bench.live":
                        continue
                    data = json.loads(event.data)["data"]
                    delays.append(time.time() - data["sent"])
                    if data["n"] == args.events - 1:
                        break
                writer.wait()
            for sock in stalled:
                sock.close()
            delays.sort()
            p = {q: delays[min(len(delays) - 1, int(q * len(delays)))] * 1000 for q in (0.5, 0.99)}
            print(
                f"latency over {len(delays)} events (write call -> client"
                f"{f', {args.stalled} clients reading nothing' if args.stalled else ''}): "
                f"p50 {p[0.5]:.1f} ms, p99 {p[0.99]:.1f} ms, "
                f"mean {statistics.mean(delays) * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
            )

            def idle_cpu(clients: int) -> float:
                socks = []
                for _ in range(clients):
                    sock = socket.create_connection(("127.0.0.1", port))
                    request = f"GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}"
                    sock.sendall(f"{request}\r\n\r\n".encode())
                    socks.append(sock)
                for sock in socks:
                    sock.recv(4096)  # the headers: it is subscribed
                before = cpu_seconds(server.pid)
                time.sleep(args.seconds)
                used = cpu_seconds(server.pid) - before
                for sock in socks:
                    sock.close()
                return used

            for clients in (0, args.clients):
                used = idle_cpu(clients)
                print(
                    f"server CPU with {clients} idle clients over {args.seconds:g} s: "
                    f"{used:.2f} s ({100 * used / args.seconds:.1f}% of a core)"
                )
        finally:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
