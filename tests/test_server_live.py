"""Live streams (issue 11): the resumable event stream and a session's log tail.

Real servers on free ports (in a thread, or a subprocess that is killed or signalled), real
writer processes, SSE read with httpx-sse or a raw socket. No sleeps: every wait is for an
event, a count or a state, with a generous overall timeout only as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse
from hypothesis import example, given, settings
from hypothesis import strategies as st

import agentkeep
from agentkeep.server import live, process

from helpers.server import SAFETY, RunningServer, running_server

HELPERS = Path(__file__).parent / "helpers"


def wait_for(check: Callable[[], bool], what: str, timeout: float = SAFETY) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        threading.Event().wait(0.01)


@contextlib.contextmanager
def live_server(store_dir: Path, **options: Any) -> Iterator[RunningServer]:
    """tests/helpers/server.py's server, with live options (short pings, small queues)."""
    with running_server(store_dir, live_options=live.LiveOptions(**options)) as server:
        yield server


@pytest.fixture
def store_dir(project: Path) -> Path:
    return project / ".agentkeep"


def seqs_after(store_dir: Path, after: int) -> list[int]:
    with agentkeep.open(store_dir) as store:
        return [event.seq for event in store.events(after=after)]


def write_events(store_dir: Path, count: int, kind: str = "t.pre", pad: int = 0) -> int:
    """``count`` events in batches; returns the last seq."""
    with agentkeep.open(store_dir) as store:
        last = 0
        for start in range(0, count, 500):
            batch = [
                {"kind": kind, "data": {"n": n, "pad": "x" * pad}}
                for n in range(start, min(count, start + 500))
            ]
            last = store.record_events(batch)
        return last


def frames(events: Iterator[ServerSentEvent]) -> Iterator[ServerSentEvent]:
    """The event frames (the stream's first frame only carries ``retry:``)."""
    for event in events:
        if event.id:
            yield event


def start_writer(store_dir: Path, count: int, kind: str) -> subprocess.Popen[str]:
    argv = [str(HELPERS / "writer.py"), "stream", str(store_dir), "--count", str(count)]
    return subprocess.Popen(
        [sys.executable, *argv, "--kind", kind],
        stdout=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def server_process(store_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``agentkeep serve --port 0`` in its own process; yields it and its URL once it says
    it is serving. SIGKILLed at the end if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "serve", "--port", "0"],
        cwd=store_dir.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    pump = threading.Thread()
    try:
        for line in proc.stderr:
            if b"serving" in line:
                break
        else:
            raise AssertionError("the server exited before it served")
        stderr = proc.stderr
        pump = threading.Thread(target=stderr.read, daemon=True)  # its pipe never fills
        pump.start()
        info = json.loads((store_dir / process.SERVER_JSON).read_text())
        assert info["pid"] == proc.pid
        yield proc, info["url"].rstrip("/")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(SAFETY)
        if pump.is_alive():
            pump.join(SAFETY)  # EOF once the server is gone
        proc.stderr.close()


# --------------------------------------------------------------------------- the event stream


def test_frames_carry_seq_kind_and_the_events_json(store_dir: Path) -> None:
    last = write_events(store_dir, 3, kind="t.frame")
    with live_server(store_dir) as server, httpx.Client(timeout=SAFETY) as client:
        url = f"{server.url}/api/v1/events/stream?after={last - 3}"
        with connect_sse(client, "GET", url) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            got = list(zip(range(3), frames(source.iter_sse()), strict=False))
    with agentkeep.open(store_dir) as store:
        expected = store.events(after=last - 3)
    assert [(int(f.id), f.event, json.loads(f.data)) for _, f in got] == [
        (e.seq, e.kind, json.loads(json.dumps(e.to_dict()))) for e in expected
    ]


def test_without_an_id_the_stream_starts_at_the_end_and_filters_apply(store_dir: Path) -> None:
    write_events(store_dir, 5, kind="t.old")
    with live_server(store_dir) as server, httpx.Client(timeout=SAFETY) as client:
        url = f"{server.url}/api/v1/events/stream?kind=t.new*"
        with connect_sse(client, "GET", url) as source:
            wait_for(lambda: len(server.hub.subscribers) == 1, "the subscription")
            with agentkeep.open(store_dir) as store:
                store.record_event("t.skip")
                wanted = [store.record_event(k).item.seq for k in ("t.new.a", "t.newer")]
            got = [int(f.id) for _, f in zip(range(2), frames(source.iter_sse()), strict=False)]
    assert got == wanted


def test_bad_resume_points_are_refused(store_dir: Path) -> None:
    with live_server(store_dir) as server:
        for headers, query in (({"Last-Event-ID": "abc"}, ""), ({}, "?after=-1")):
            reply = httpx.get(f"{server.url}/api/v1/events/stream{query}", headers=headers)
            assert reply.status_code == 400
            assert reply.json()["code"] == "invalid_input"


_NUMERIC = {"after": (0, 2**63 - 1), "Last-Event-ID": (0, 2**63 - 1), "last": (0, 2**63 - 1)}
_NUMERIC["entity_id"] = (-(2**63 - 1), 2**63 - 1)
_NUMERIC["id"] = (0, 2**63 - 1)
_STREAM_PARAMS = {
    "/api/v1/events/stream": ("after", "Last-Event-ID", "entity_id", "kind", "entity", "unnamed"),
    "/api/v1/sessions/{id}/follow": ("id", "last", "stream"),
}
_VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from([str(2**63), str(2**63 - 1), str(-(2**63)), "9" * 5000, "1e3", " 7"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)


def test_stream_parameters_are_checked_before_the_stream_starts(store_dir: Path) -> None:
    """Every parameter of the two stream routes: a bad one is a 400 (an unknown session a
    404) before the stream starts, never a 200 that fails mid-stream (the browser would
    reconnect into it forever) and never a 500."""
    with agentkeep.open(store_dir) as store:
        session = store.start_session(title="followed").item
        writer = store.open_stream(session.id, "stdout")
        writer.write(b"a line\n")
        writer.commit_progress()
        writer.close()
    write_events(store_dir, 3)
    with live_server(store_dir) as server, httpx.Client(timeout=SAFETY) as client:

        @settings(max_examples=200, deadline=None, database=None)
        @given(
            route=st.sampled_from(sorted(_STREAM_PARAMS)),
            pick=st.integers(min_value=0, max_value=5),
            value=_VALUES,
        )
        @example(route="/api/v1/events/stream", pick=1, value=str(2**64))
        @example(route="/api/v1/events/stream", pick=0, value=str(2**63))
        @example(route="/api/v1/events/stream", pick=2, value=str(-(2**63)))
        @example(route="/api/v1/sessions/{id}/follow", pick=0, value=str(2**63))
        @example(route="/api/v1/sessions/{id}/follow", pick=1, value=str(2**63))
        def check(route: str, pick: int, value: str) -> None:
            names = _STREAM_PARAMS[route]
            name = names[pick % len(names)]
            path = route.replace("{id}", str(session.id))
            params: dict[str, str] = {}
            headers: dict[str, str] = {}
            if name == "id":
                path = route.replace("{id}", urllib.parse.quote(value, safe="") or "%20")
            elif name == "Last-Event-ID":
                value = value.strip()  # a header's value has no edge whitespace
                headers[name] = value
            else:
                params[name] = value
            with client.stream("GET", server.url + path, params=params, headers=headers) as reply:
                assert reply.status_code in (200, 400, 404), (name, value, reply.status_code)
                if reply.status_code == 200:
                    assert reply.headers["content-type"].startswith("text/event-stream")
                else:
                    reply.read()
                    assert reply.json()["code"] in ("invalid_input", "not_found")
            if name in _NUMERIC:
                low, high = _NUMERIC[name]
                try:
                    number: int | None = int(value)
                except ValueError:
                    number = None
                in_range = number is not None and low <= number <= high and len(value) <= 40
                if not in_range and value.strip() != "" and name != "id":
                    assert reply.status_code == 400, (name, value)

        check()


def test_resume_after_a_forced_disconnect_with_a_writer_committing_during_the_replay(
    store_dir: Path,
) -> None:
    first = write_events(store_dir, 3000) - 3000
    with live_server(store_dir) as server, httpx.Client(timeout=SAFETY) as client:
        url = f"{server.url}/api/v1/events/stream"
        seen: list[int] = []
        with connect_sse(client, "GET", url, headers={"Last-Event-ID": str(first)}) as source:
            for event in frames(source.iter_sse()):
                seen.append(int(event.id))
                if len(seen) == 100:
                    break  # the connection is dropped mid-stream
        write_events(store_dir, 50, kind="t.between")
        writer = start_writer(store_dir, 1500, "t.writer")
        assert writer.stdout is not None
        assert writer.stdout.readline()  # it has committed: it commits through the replay
        resumed: list[int] = []
        kinds: list[str] = []
        with connect_sse(client, "GET", url, headers={"Last-Event-ID": str(seen[-1])}) as source:
            for event in frames(source.iter_sse()):
                resumed.append(int(event.id))
                kinds.append(event.event)
                if event.event == "t.writer" and json.loads(event.data)["data"]["n"] == 1499:
                    break
        assert writer.wait(SAFETY) == 0
        writer.stdout.close()
    assert seen == seqs_after(store_dir, first)[:100]
    assert resumed == seqs_after(store_dir, seen[-1])  # in order, no gap, none twice
    assert kinds.count("t.writer") == 1500 and kinds.count("t.between") == 50


def test_resume_after_the_server_is_killed(store_dir: Path) -> None:
    start = write_events(store_dir, 10)
    seen: list[int] = []
    with server_process(store_dir) as (proc, url):
        writer = start_writer(store_dir, 600, "t.writer")
        with (
            httpx.Client(timeout=SAFETY) as client,
            pytest.raises((httpx.TransportError, httpx.RemoteProtocolError)),
            connect_sse(client, "GET", f"{url}/api/v1/events/stream?after={start}") as source,
        ):
            for event in frames(source.iter_sse()):
                seen.append(int(event.id))
                if len(seen) == 100:
                    proc.send_signal(signal.SIGKILL)  # mid-stream; the writer goes on
        assert proc.wait(SAFETY) == -signal.SIGKILL
    assert writer.wait(SAFETY) == 0
    assert writer.stdout is not None
    writer.stdout.close()
    final = seqs_after(store_dir, 0)[-1]
    resumed: list[int] = []
    with server_process(store_dir) as (_, url), httpx.Client(timeout=SAFETY) as client:
        headers = {"Last-Event-ID": str(seen[-1])}
        with connect_sse(client, "GET", f"{url}/api/v1/events/stream", headers=headers) as source:
            for event in frames(source.iter_sse()):
                resumed.append(int(event.id))
                if int(event.id) == final:
                    break
    assert len(seen) >= 100
    assert seen + resumed == seqs_after(store_dir, start)


def _raw_stream(port: int, query: str = "") -> socket.socket:
    """A client that sends its request and then reads nothing (a small receive buffer, so
    the server's sends back up soon)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    request = f"GET /api/v1/events/stream{query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def _read_all(sock: socket.socket) -> list[dict[str, str]]:
    """Everything until the server closes, as SSE frames (field -> value)."""
    sock.settimeout(SAFETY)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    body = b"".join(chunks).decode().split("\r\n\r\n", 1)[1]
    parsed = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")
        if fields:
            parsed.append(fields)
    return parsed


def test_a_slow_client_is_reset_and_dropped_while_a_fast_one_keeps_going(
    store_dir: Path,
) -> None:
    limit = 20
    start = write_events(store_dir, 1)
    with live_server(store_dir, queue_events=limit) as server:
        hub = server.hub
        slow = _raw_stream(server.port)
        fast_ids: list[int] = []

        def fast() -> None:
            with (
                httpx.Client(timeout=SAFETY) as client,
                connect_sse(client, "GET", f"{server.url}/api/v1/events/stream") as source,
            ):
                for event in frames(source.iter_sse()):
                    fast_ids.append(int(event.id))
                    if event.event == "t.done":
                        return

        reader = threading.Thread(target=fast)
        reader.start()
        wait_for(lambda: len(hub.subscribers) == 2, "both clients to subscribe")
        written = 0
        while hub.dropped_total == 0:  # until a send to the slow client stays blocked
            assert written < 200_000, "the slow client was never dropped"
            write_events(store_dir, 100, kind="t.flood", pad=2000)
            written += 100
            # Let the follower hand the batch over before the next (the backlog then
            # builds in the slow client's queue, not in the writer).
            target = start + written
            wait_for(lambda: hub.last_seq >= target, "the follower")  # noqa: B023
        with agentkeep.open(store_dir) as store:
            done = store.record_event("t.done").item.seq
        reader.join(SAFETY)
        assert not reader.is_alive()
        assert fast_ids == seqs_after(store_dir, start)  # the fast client missed nothing
        assert fast_ids[-1] == done
        assert hub.peak <= limit  # no queue ever held more than its bound
        assert hub.dropped_total == 1
        assert all(not sub.dropped for sub in hub.subscribers)  # the slow one is gone

        got = _read_all(slow)  # now it reads: what was in flight, the reset, then EOF
        slow.close()
        *events, reset = [f for f in got if "id" in f]
        assert reset["event"] == "reset"
        ids = [int(f["id"]) for f in events]
        assert ids == seqs_after(store_dir, start)[: len(ids)]  # in order, nothing skipped
        reason = json.loads(reset["data"])
        assert reason["last_seq"] == ids[-1] == int(reset["id"])
        assert reason["queue_limit"] == limit
        assert len(ids) < written  # it was dropped, not served everything

        # The reset says where to resume: no gap, no duplicate.
        with (
            httpx.Client(timeout=SAFETY) as client,
            connect_sse(
                client,
                "GET",
                f"{server.url}/api/v1/events/stream",
                headers={"Last-Event-ID": str(reason["last_seq"])},
            ) as source,
        ):
            rest = []
            for event in frames(source.iter_sse()):
                rest.append(int(event.id))
                if int(event.id) == done:
                    break
        assert ids + rest == seqs_after(store_dir, start)


def _sse_frames(sock: socket.socket, chunk: int = 65536) -> Iterator[dict[str, str]]:
    """A raw SSE response's frames (field -> value) as they arrive, until the server
    closes; ``chunk``: the most read at a time."""
    sock.settimeout(SAFETY)
    buffer = b""
    head = True
    while data := sock.recv(chunk):
        buffer += data
        if head:
            if b"\r\n\r\n" not in buffer:
                continue
            buffer = buffer.split(b"\r\n\r\n", 1)[1]
            head = False
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            fields: dict[str, str] = {}
            for line in block.decode().splitlines():
                name, _, value = line.partition(":")
                fields[name or "comment"] = value.removeprefix(" ")
            if fields:
                yield fields


def test_publishing_never_waits_for_a_full_queue(store_dir: Path) -> None:
    """The fan-out runs to the end without once giving the loop a turn: a full queue sends
    its client to the store instead of making the follower wait."""
    write_events(store_dir, 5, kind="t.unit")
    with agentkeep.open(store_dir) as store:
        events = store.events(after=0)
    loop = asyncio.new_event_loop()
    try:
        hub = live.Hub(loop, live.LiveOptions(queue_events=2), last_seq=0)
        sub = hub.connect(live.EventFilter())
        other = hub.connect(live.EventFilter(kind="t.other"))
        for event in events:
            publishing = hub.publish(event)
            with pytest.raises(StopIteration):
                publishing.send(None)  # done on the first step: it never suspends
        assert hub.last_seq == events[-1].seq
        # The third event found the queue full: the queue is let go, the client is told
        # to read on from the store, and nothing more is queued for it.
        assert [sub.queue.get_nowait() for _ in range(sub.queue.qsize())] == [live.BEHIND]
        assert not sub.listening and sub not in hub.subscribers and sub in hub.clients
        assert (sub.behind, hub.behind_total, hub.dropped_total, hub.peak) == (1, 1, 0, 2)
        assert other.listening and other.queue.empty()  # its filter matched nothing
        hub.listen(sub)  # caught up: listens again from the hub's position
        assert sub.listening and sub.start == events[-1].seq and sub.queue.empty()
        hub.disconnect(sub)
        hub.disconnect(other)
        assert not hub.clients and not hub.subscribers
    finally:
        loop.close()


def test_a_fast_client_is_not_paced_by_ones_that_read_slowly_or_not_at_all(
    store_dir: Path,
) -> None:
    """Order of arrival, not time: the fast client has the whole burst while the slow one
    has read three events and before the one that reads nothing is reset (the follower
    never waited for either). The slow one then gets every event once, in order, having
    read on from the store; the idle one gets a reset and is dropped."""
    limit, count = 20, 3000  # 3000 events of 2 KB: more than any socket buffers hold
    start = write_events(store_dir, 1)
    with live_server(store_dir, queue_events=limit, stall_seconds=5.0) as server:
        hub = server.hub
        idle = _raw_stream(server.port)
        wait_for(lambda: len(hub.clients) == 1, "the idle client to subscribe")
        (idle_sub,) = hub.clients
        slow_sock = _raw_stream(server.port)
        wait_for(lambda: len(hub.clients) == 2, "the slow client to subscribe")
        (slow_sub,) = hub.clients - {idle_sub}

        slow_ids: list[int] = []
        slow_events: list[str] = []
        resume = threading.Event()

        def slow() -> None:
            for frame in _sse_frames(slow_sock, chunk=1024):
                if "id" not in frame:
                    continue
                slow_ids.append(int(frame["id"]))
                slow_events.append(frame["event"])
                if len(slow_ids) == 3:
                    resume.wait(SAFETY)  # a pause: it reads nothing until the fast one is done
                if frame["event"] in ("t.done", "reset"):
                    return

        fast_ids: list[int] = []
        when_fast_had_all: dict[str, int] = {}

        def fast() -> None:
            with (
                httpx.Client(timeout=SAFETY) as client,
                connect_sse(client, "GET", f"{server.url}/api/v1/events/stream") as source,
            ):
                for event in frames(source.iter_sse()):
                    fast_ids.append(int(event.id))
                    if (
                        event.event == "t.burst"
                        and json.loads(event.data)["data"]["n"] == count - 1
                    ):
                        when_fast_had_all.update(
                            slow_read=len(slow_ids),
                            idle_dropped=int(idle_sub.dropped),
                            slow_dropped=int(slow_sub.dropped),
                            follower=hub.last_seq,
                        )
                        resume.set()
                    if event.event == "t.done":
                        return

        readers = [threading.Thread(target=slow), threading.Thread(target=fast)]
        for reader in readers:
            reader.start()
        wait_for(lambda: len(hub.clients) == 3, "the fast client to subscribe")
        end = write_events(store_dir, count, kind="t.burst", pad=2000)
        wait_for(resume.is_set, "the fast client to receive the burst")
        assert when_fast_had_all == {
            "slow_read": 3,
            "idle_dropped": 0,
            "slow_dropped": 0,
            "follower": end,
        }
        wait_for(lambda: idle_sub.dropped, "the idle client to be reset")
        with agentkeep.open(store_dir) as store:
            done = store.record_event("t.done").item.seq
        for reader in readers:
            reader.join(SAFETY)
            assert not reader.is_alive()
        everything = seqs_after(store_dir, start)
        assert everything[-1] == done
        assert fast_ids == everything
        assert slow_ids == everything and "reset" not in slow_events  # once each, in order
        assert slow_sub.behind >= 1  # its queue overflowed: it read on from the store
        assert hub.peak <= limit  # no queue ever held more than its bound
        assert hub.dropped_total == 1 and not slow_sub.dropped

        got = _read_all(idle)  # now it reads: what was in flight, the reset, then EOF
        idle.close()
        slow_sock.close()
        *events, reset = [f for f in got if "id" in f]
        assert reset["event"] == "reset"
        ids = [int(f["id"]) for f in events]
        assert ids == everything[: len(ids)] and len(ids) < count
        reason = json.loads(reset["data"])
        assert reason["last_seq"] == ids[-1] == int(reset["id"])
        assert reason["queue_limit"] == limit
        wait_for(lambda: not hub.clients, "every client to be forgotten")


def test_idle_streams_get_pings(store_dir: Path) -> None:
    with live_server(store_dir, ping_seconds=0.05) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        request = f"GET /api/v1/events/stream HTTP/1.0\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
        sock.sendall(request.encode())
        sock.settimeout(SAFETY)
        received = b""
        while received.count(b": ping\n\n") < 2:
            chunk = sock.recv(4096)
            assert chunk, "the stream ended"
            received += chunk
        sock.close()
    head, body = received.decode().split("\r\n\r\n", 1)
    assert "text/event-stream" in head
    assert body.startswith("retry: 3000\n\n")


# --------------------------------------------------------------------------- the log tail


def test_the_log_tail_follows_a_running_session_and_ends(store_dir: Path) -> None:
    with agentkeep.open(store_dir) as store:
        session = store.start_session(title="tail").item
        writer = store.open_stream(session.id, "stdout")
        writer.write(b"before 1\nbefore 2\n")
        writer.commit_progress()
        with live_server(store_dir) as server, httpx.Client(timeout=SAFETY) as client:
            url = f"{server.url}/api/v1/sessions/{session.id}/follow?last=1"
            with connect_sse(client, "GET", url) as source:
                events = (e for e in source.iter_sse() if e.data)
                first = json.loads(next(events).data)
                assert (first["stream"], first["line"], first["text"]) == ("stdout", 2, "before 2")
                for n in range(3, 6):  # each line shows while the session runs
                    writer.write(f"live {n}\n".encode())
                    writer.commit_progress()
                    line = json.loads(next(events).data)
                    assert (line["line"], line["text"]) == (n, f"live {n}")
                writer.write(b"last line\n")
                writer.close()
                store.end_session(session.id, exit_code=0)
                line = json.loads(next(events).data)
                assert (line["line"], line["text"]) == (6, "last line")
                end = next(events)
                assert end.event == "end"
                assert json.loads(end.data) == {"session_id": session.id}
                assert next(events, None) is None  # the server ended the stream


def test_the_log_tail_of_an_unknown_or_silent_session(store_dir: Path) -> None:
    with agentkeep.open(store_dir) as store:
        session = store.start_session(title="silent").item
        store.end_session(session.id, exit_code=0)
    with live_server(store_dir) as server, httpx.Client(timeout=SAFETY) as client:
        missing = client.get(f"{server.url}/api/v1/sessions/999/follow")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        with connect_sse(client, "GET", f"{server.url}/api/v1/sessions/{session.id}/follow") as s:
            assert [e.event for e in s.iter_sse() if e.data] == ["end"]


# --------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_server_stops_on_a_signal_with_streams_open(store_dir: Path, signum: int) -> None:
    store = agentkeep.open(store_dir)
    session = store.start_session(title="open").item
    writer = store.open_stream(session.id, "stdout")
    writer.write(b"running\n")
    writer.commit_progress()
    with (
        server_process(store_dir) as (proc, url),
        httpx.Client(timeout=SAFETY) as client,
        connect_sse(client, "GET", f"{url}/api/v1/events/stream?after=0") as events,
        connect_sse(client, "GET", f"{url}/api/v1/sessions/{session.id}/follow?last=1") as tail,
    ):
        flowing = frames(events.iter_sse())
        next(flowing)  # both streams are flowing
        lines = (e for e in tail.iter_sse() if e.data)
        assert json.loads(next(lines).data)["text"] == "running"
        proc.send_signal(signum)
        # It exits, the streams notwithstanding (uvicorn re-raises the signal it caught
        # once it has shut down: the status is that of the signal).
        assert proc.wait(SAFETY) in (0, -signum)
        with contextlib.suppress(httpx.TransportError):
            for _ in flowing:
                pass  # and the stream ends rather than hanging
    writer.close()
    store.close()


def test_fifty_idle_clients_share_one_follower(store_dir: Path) -> None:
    """Fifty idle clients: still one follower thread, and fifty parked subscribers."""
    with live_server(store_dir) as server:
        sockets = [_raw_stream(server.port) for _ in range(50)]
        wait_for(lambda: len(server.hub.subscribers) == 50, "fifty subscribers")
        followers = [t for t in threading.enumerate() if t.name == "agentkeep-event-follower"]
        assert len(followers) == 1
        with agentkeep.open(store_dir) as store:
            seq = store.record_event("t.everyone").item.seq
        wait_for(lambda: server.hub.last_seq == seq, "the event to be fanned out")
        for sock in sockets:
            sock.close()
        wait_for(lambda: not server.hub.subscribers, "the clients to be forgotten")


def test_streams_answer_only_the_servers_own_host(store_dir: Path) -> None:
    """DNS rebinding: a page on another name must not read the ledger live either."""
    with agentkeep.open(store_dir) as store:
        session = store.start_session(title="host").item
    with live_server(store_dir) as server:
        for path in ("/api/v1/events/stream?after=0", f"/api/v1/sessions/{session.id}/follow"):
            reply = httpx.get(server.url + path, headers={"Host": f"evil.example:{server.port}"})
            assert reply.status_code == 421, path
            assert "text/event-stream" not in reply.headers.get("content-type", "")
