"""`agentkeep serve` on a big store, side by side with Datasette serving the same file.

    python bench/bench_serve.py [--rounds 3] [--requests 200] [--quick] [--cache DIR]
                                [--only lists,session,live,idle,paint]
                                [--live-events 500] [--idle-clients 50] [--idle-seconds 15]

The store (bench/serve_data.py, cached under ``--cache``): 1M events, 100k tasks, 200k
transcript messages in 2,000 sessions (``--quick``: 50k, 5k, 20k in 200).

Two servers, each a subprocess on a free loopback port: agentkeep (``agentkeep serve
--port 0``, or uvicorn on ``create_app`` through bench/serve_app.py while the command is
not built), and Datasette 0.65.5 (installed on first use into ``bench/.venv/datasette-0.65.5``,
not a project dependency) serving ``state.db`` read-only (``mode=ro`` connections, as
Datasette reads every mutable database). One client for each (httpx, one keep-alive
connection), requests alternating between the two sides so the machine's drift hits both;
``--warmup`` requests first, then ``--requests`` samples per endpoint per round.

1. lists: ``/api/v1/{tasks,events,sessions,notes}?limit=100`` and the next pages through
   each response's ``next`` cursor (``--pages`` deep), against ``/state/{table}.json``
   with ``_size=100`` in the same order and its ``next`` token (``_shape=objects``;
   ``_nocount=1&_nofacet=1``: Datasette's switches for leaving out the count(*) and facet
   suggestions our lists do not compute). First page and deeper pages are separate rows.
2. a session page: ``/api/v1/sessions/{id}``, its transcript chunk
   (``/transcript?limit=100``) and the dashboard's ``/sessions/{id}`` HTML, against
   Datasette's row (``/state/sessions/{id}.json``), the session's messages
   (``/state/messages.json?session_id=…&_sort=seq``) and its HTML row page.
3. live: a Chromium page (Playwright, Debian's /usr/bin/chromium) holds an EventSource on
   ``/api/v1/events/stream``; this process commits ``--live-events`` events with
   ``Store.record_event`` (5-30 ms apart) and notes the wall clock when each commit
   returns; the page notes ``performance.timeOrigin + performance.now()`` as each arrives
   (same clock). Latency = arrival - commit. Goal p99 <= 100 ms. (Datasette has no stream.)
4. idle: the server's CPU (utime + stime of it and its children, /proc) over
   ``--idle-seconds`` with no client, then with ``--idle-clients`` SSE connections open
   and idle (their bytes drained). Goal <= 2 % of one core.
5. paint: first-contentful-paint of the board ``/`` in a fresh browser context, against
   Datasette's HTML page of the tasks table (``/state/tasks``).

Each figure is a percentile per round; printed as median (min-max) over ``--rounds``, with
the ratio agentkeep / Datasette taken within each round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import select
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
try:
    import agentkeep
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))
    import agentkeep
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402

from serve_data import cached_store  # noqa: E402

DATASETTE_VERSION = "0.65.5"
# Under a directory named .venv: git and the docs checks leave it alone.
DATASETTE_VENV = HERE / ".venv" / f"datasette-{DATASETTE_VERSION}"
AGENTKEEP = str(Path(sys.executable).with_name("agentkeep"))
CHROMIUM = "/usr/bin/chromium"
# As tests/browser/conftest.py: what Chromium needs on this machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DS_FAST = "_shape=objects&_nocount=1&_nofacet=1"
PAGE = 100


# -- servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    how: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code < 500:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url}: no answer within 120 s: {log.read_text()[-2000:]}")


def start_agentkeep(proj: Path, work: Path) -> Server:
    """``agentkeep serve --port 0`` when it is built; else bench/serve_app.py."""
    log = work / "agentkeep-server.log"
    store_dir = proj / ".agentkeep"
    state = store_dir / "server.json"
    state.unlink(missing_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [AGENTKEEP, "--store", str(proj), "serve", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not state.exists():
        time.sleep(0.05)
    if process.poll() is None and state.exists():
        info = read_json_file(state, deadline)
        url = str(info.get("url") or f"http://127.0.0.1:{info['port']}").rstrip("/")
        wait_healthy(url + "/-/health", process, log)
        return Server("agentkeep", url, process, log, "agentkeep serve --port 0")
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "serve_app.py"), str(store_dir)],
            stdout=subprocess.PIPE,
            stderr=out,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise SystemExit(f"bench/serve_app.py did not start: {log.read_text()[-2000:]}")
    port = json.loads(line)["port"]
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url + "/-/health", process, log)
    return Server("agentkeep", url, process, log, "uvicorn on create_app (bench/serve_app.py)")


def read_json_file(path: Path, deadline: float) -> dict[str, Any]:
    while True:  # written, perhaps not completely yet
        with contextlib.suppress(ValueError, OSError):
            data: dict[str, Any] = json.loads(path.read_text())
            if data.get("port") or data.get("url"):
                return data
        if time.monotonic() > deadline:
            raise SystemExit(f"{path}: no port in it")
        time.sleep(0.05)


def datasette_bin() -> Path:
    exe = DATASETTE_VENV / "bin" / "datasette"
    if exe.exists():
        return exe
    print(f"installing datasette=={DATASETTE_VERSION} into {DATASETTE_VENV} …", flush=True)
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    subprocess.run([base, "-m", "venv", str(DATASETTE_VENV)], check=True)
    subprocess.run(
        [str(DATASETTE_VENV / "bin" / "pip"), "install", "-q", f"datasette=={DATASETTE_VERSION}"],
        check=True,
    )
    return exe


def start_datasette(proj: Path, work: Path) -> Server:
    port = free_port()
    log = work / "datasette.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(datasette_bin()),
                "serve",
                str(proj / ".agentkeep" / "state.db"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url + "/-/versions.json", process, log)
    return Server("datasette", url, process, log, f"datasette {DATASETTE_VERSION} serve")


# -- HTTP latency ---------------------------------------------------------------------------


def client(base: str) -> httpx.Client:
    return httpx.Client(
        base_url=base,
        timeout=60,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


def next_of(body: Any) -> str | None:
    """The cursor of the next page: agentkeep's ``next``, Datasette's ``next``."""
    if isinstance(body, dict):
        token = body.get("next")
        return None if token in (None, "") else str(token)
    return None


@dataclass
class Endpoint:
    """One comparable request on both sides; ``then`` follows the response's cursor."""

    name: str
    agentkeep: Callable[[], str]
    datasette: Callable[[], str]
    # (base url, cursor) -> the next page's url, for each side
    follow_agentkeep: Callable[[str, str], str] | None = None
    follow_datasette: Callable[[str, str], str] | None = None


@dataclass
class Samples:
    ms: dict[str, list[float]] = field(default_factory=dict)  # row name -> latencies
    failed: dict[str, str] = field(default_factory=dict)  # row name -> why


def timed_get(http: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = http.get(url)
    response.read()
    return (time.perf_counter() - start) * 1000, response


def walk(
    http: httpx.Client,
    first: str,
    follow: Callable[[str, str], str] | None,
    pages: int,
) -> list[float]:
    """Latencies of the first page and of up to ``pages - 1`` more through ``next``."""
    seconds, response = timed_get(http, first)
    if response.status_code != 200:
        raise RuntimeError(f"GET {first}: {response.status_code} {response.text[:200]}")
    out = [seconds]
    url = first
    while follow is not None and len(out) < pages:
        cursor = next_of(response.json())
        if cursor is None:
            break
        url = follow(first, cursor)
        seconds, response = timed_get(http, url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
        out.append(seconds)
    return out


def measure_http(
    endpoints: list[Endpoint],
    servers: dict[str, httpx.Client],
    requests: int,
    warmup: int,
    pages: int,
) -> Samples:
    samples = Samples()
    for endpoint in endpoints:
        sides: dict[str, tuple[Callable[[], str], Callable[[str, str], str] | None]] = {
            "agentkeep": (endpoint.agentkeep, endpoint.follow_agentkeep),
            "datasette": (endpoint.datasette, endpoint.follow_datasette),
        }
        live = dict(sides)
        for side, (make, follow) in sides.items():
            try:
                for _ in range(warmup):
                    walk(servers[side], make(), follow, pages)
            except (RuntimeError, httpx.HTTPError, ValueError) as exc:
                samples.failed[f"{endpoint.name} [{side}]"] = str(exc)[:300]
                del live[side]
        for _ in range(requests):
            for side, (make, follow) in live.items():  # alternating: drift hits both
                times = walk(servers[side], make(), follow, pages)
                samples.ms.setdefault(f"{endpoint.name} [{side}]", []).append(times[0])
                if len(times) > 1:
                    key = f"{endpoint.name}, pages 2-{pages} [{side}]"
                    samples.ms.setdefault(key, []).extend(times[1:])
    return samples


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def list_endpoints(order: dict[str, str]) -> list[Endpoint]:
    """The list endpoints; ``order`` maps a table to Datasette's sort for the API's order."""

    def ak_follow(first: str, cursor: str) -> str:
        return f"{first}&cursor={quote(cursor)}"

    def ds_follow(first: str, cursor: str) -> str:
        return f"{first}&_next={quote(cursor)}"

    found = []
    for noun in ("tasks", "events", "sessions", "notes"):
        ak = f"/api/v1/{noun}?limit={PAGE}"
        ds = f"/state/{noun}.json?_size={PAGE}&{order[noun]}&{DS_FAST}"
        found.append(
            Endpoint(
                f"GET {noun} (100 rows)",
                lambda ak=ak: ak,  # type: ignore[misc]
                lambda ds=ds: ds,  # type: ignore[misc]
                ak_follow,
                ds_follow,
            )
        )
    return found


def session_endpoints(session_ids: list[int], rng: random.Random) -> list[Endpoint]:
    chosen = [0]

    def pick() -> int:
        chosen[0] = rng.choice(session_ids)
        return chosen[0]

    return [
        Endpoint(
            "session record",
            lambda: f"/api/v1/sessions/{pick()}",
            lambda: f"/state/sessions/{chosen[0]}.json?_shape=objects",
        ),
        Endpoint(
            "transcript chunk (100 messages)",
            lambda: f"/api/v1/sessions/{pick()}/transcript?limit={PAGE}",
            lambda: f"/state/messages.json?session_id={chosen[0]}&_sort=seq&_size={PAGE}&{DS_FAST}",
        ),
        Endpoint(
            "session page HTML",
            lambda: f"/sessions/{pick()}",
            lambda: f"/state/sessions/{chosen[0]}",
        ),
    ]


# -- live: commit -> browser ----------------------------------------------------------------

LISTEN_JS = """([kind, after]) => new Promise((resolve, reject) => {
  window.arrivals = [];
  const source = new EventSource('/api/v1/events/stream?after=' + after);
  source.addEventListener(kind, (e) => {
    window.arrivals.push([Number(e.lastEventId), performance.timeOrigin + performance.now()]);
  });
  source.onopen = () => resolve(true);
  source.onerror = () => reject(new Error('EventSource error'));
  setTimeout(() => reject(new Error('the stream did not open within 20 s')), 20000);
  window.source = source;
})"""


def browser() -> Any:
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    chromium = manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return manager, chromium


def live_latency(chromium: Any, server: Server, proj: Path, events: int) -> list[float]:
    """Milliseconds from each commit's return to the page's receipt of the event."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        # A blank page of the server's origin, served by the browser itself: the server's
        # own responses carry a CSP (`default-src 'none'; sandbox`) that forbids a
        # connection from them, and the dashboard's pages are not what is measured here.
        blank = server.url + "/-/bench-blank"
        page.route(
            blank,
            lambda route: route.fulfill(
                status=200, content_type="text/html", body="<!doctype html><title>bench</title>"
            ),
        )
        page.goto(blank)
        with agentkeep.open(proj) as store:
            after = store.last_seq()
            page.evaluate(LISTEN_JS, ["bench.live", after])
            committed: dict[int, float] = {}
            rng = random.Random(3)
            for n in range(events):
                event = store.record_event("bench.live", data={"n": n})
                committed[event.item.seq] = time.time() * 1000
                time.sleep(rng.uniform(0.005, 0.030))
        deadline = time.monotonic() + 60
        arrived: list[list[float]] = []
        while time.monotonic() < deadline:
            arrived = page.evaluate("window.arrivals")
            if len(arrived) >= events:
                break
            time.sleep(0.2)
        if len(arrived) < events:
            raise RuntimeError(f"{len(arrived)} of {events} events arrived within 60 s")
        seen = {int(seq) for seq, _ in arrived}
        if seen != set(committed):
            raise RuntimeError("the events that arrived are not the ones committed")
        return [at - committed[int(seq)] for seq, at in arrived]
    finally:
        context.close()


# -- idle: 50 live clients ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and every process below it."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo += [child for child, parent in parents.items() if parent == current]
    return total


def idle_cpu(server: Server, clients: int, seconds: float) -> tuple[float, float, int]:
    """(CPU % of one core with no client, with ``clients`` idle SSE clients, how many of
    them the server answered 200)."""
    pid = server.process.pid
    host, port = server.url.removeprefix("http://").split(":")

    def window() -> float:
        before, start = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(pid) - before) / (time.monotonic() - start) * 100

    alone = window()
    sockets: list[socket.socket] = []
    stop = threading.Event()
    answered = 0
    try:
        for _ in range(clients):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(
                f"GET /api/v1/events/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            sockets.append(sock)
        for sock in sockets:
            sock.settimeout(30)
            head = sock.recv(4096)
            answered += head.startswith(b"HTTP/1.1 200")
            sock.setblocking(False)

        def drain() -> None:
            while not stop.is_set():
                ready, _, _ = select.select(sockets, [], [], 0.5)
                for sock in ready:
                    with contextlib.suppress(BlockingIOError):
                        sock.recv(65536)

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        time.sleep(1)  # the connections settle
        busy = window()
        stop.set()
        drainer.join()
    finally:
        for sock in sockets:
            sock.close()
    return alone, busy, answered


# -- first paint ----------------------------------------------------------------------------

PAINT_JS = """() => {
  const paint = performance.getEntriesByType('paint')
    .find((e) => e.name === 'first-contentful-paint');
  const nav = performance.getEntriesByType('navigation')[0];
  return [paint ? paint.startTime : null, nav.responseEnd, nav.domContentLoadedEventEnd,
          nav.transferSize];
}"""


def first_paint(chromium: Any, url: str) -> tuple[float, float, float, int]:
    """(first-contentful-paint, responseEnd, DOMContentLoaded) in ms, bytes transferred."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    try:
        page = context.new_page()
        response = page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            raise RuntimeError(f"{url}: {response.status if response else 'no response'}")
        deadline = time.monotonic() + 10
        while True:  # FCP is reported shortly after it happens
            fcp, end, dcl, size = page.evaluate(PAINT_JS)
            if fcp is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if fcp is None:
            raise RuntimeError(f"{url}: no first-contentful-paint")
        return float(fcp), float(end), float(dcl), int(size)
    finally:
        context.close()


# -- reporting ------------------------------------------------------------------------------


def span(values: list[float], unit: str = " ms", digits: int = 1) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}{unit}"
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table_counts(proj: Path) -> str:
    db = sqlite3.connect(f"file:{proj / '.agentkeep' / 'state.db'}?mode=ro", uri=True)
    try:
        counts = {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("events", "tasks", "messages", "sessions", "notes")
        }
    finally:
        db.close()
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def session_ids(proj: Path, count: int) -> list[int]:
    """Sessions with a transcript (each holds 100 messages), drawn evenly."""
    with agentkeep.open(proj) as store:
        ids = [s.id for s in store.list_sessions()]
    return random.Random(5).sample(ids, min(count, len(ids)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="samples per endpoint/round")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--pages", type=int, default=5, help="pages walked through `next`")
    parser.add_argument("--live-events", type=int, default=500)
    parser.add_argument("--idle-clients", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=15)
    parser.add_argument("--paints", type=int, default=5, help="page loads per side and round")
    parser.add_argument("--quick", action="store_true", help="small store, few samples")
    parser.add_argument("--cache", type=Path, default=HERE / ".scale-cache")
    parser.add_argument("--only", default="lists,session,live,idle,paint")
    parser.add_argument(
        "--events-order",
        choices=("asc", "desc"),
        default="asc",
        help="the order /api/v1/events lists in (Datasette is asked for the same)",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests = min(args.requests, 30)
        args.warmup = min(args.warmup, 3)
        args.live_events = min(args.live_events, 100)
        args.idle_seconds = min(args.idle_seconds, 4)
        args.paints = min(args.paints, 2)
    only = set(args.only.split(","))
    args.cache.mkdir(parents=True, exist_ok=True)
    proj = cached_store(args.cache, args.quick)
    print(f"store: {proj.name}: {table_counts(proj)}")
    print(f"load average at start: {load()}")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    servers: list[Server] = []
    manager: Any = None
    chromium: Any = None
    try:
        ak = start_agentkeep(proj, work)
        servers.append(ak)
        ds = start_datasette(proj, work)
        servers.append(ds)
        print(f"agentkeep: {ak.how} at {ak.url}; datasette: {ds.how} at {ds.url}")
        if only & {"live", "paint"}:
            manager, chromium = browser()
        run(args, only, proj, ak, ds, chromium)
    finally:
        for server in servers:
            server.stop()
        if chromium is not None and manager is not None:
            chromium.close()
            manager.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {load()}")


def run(
    args: argparse.Namespace,
    only: set[str],
    proj: Path,
    ak: Server,
    ds: Server,
    chromium: Any,
) -> None:
    order = {
        "tasks": "_sort=priority",
        "events": "_sort=seq" if args.events_order == "asc" else "_sort_desc=seq",
        "sessions": "_sort_desc=id",
        "notes": "_sort_desc=id",
    }
    endpoints: list[Endpoint] = []
    if "lists" in only:
        endpoints += list_endpoints(order)
    if "session" in only:
        endpoints += session_endpoints(session_ids(proj, 50), random.Random(9))
    per_round: dict[str, dict[str, list[float]]] = {}  # row -> "p50"/"p99" -> per round
    failed: dict[str, str] = {}
    live: dict[str, list[float]] = {}
    idle: dict[str, list[float]] = {}
    paint: dict[str, list[float]] = {}
    clients = {"agentkeep": client(ak.url), "datasette": client(ds.url)}
    for round_ in range(1, args.rounds + 1):
        print(f"\nround {round_}/{args.rounds} (load {load()})", flush=True)
        if endpoints:
            samples = measure_http(endpoints, clients, args.requests, args.warmup, args.pages)
            failed.update(samples.failed)
            for row, ms in samples.ms.items():
                cell = per_round.setdefault(row, {})
                cell.setdefault("p50", []).append(pct(ms, 50))
                cell.setdefault("p99", []).append(pct(ms, 99))
                print(f"  {row:58} p50 {pct(ms, 50):7.1f} ms  p99 {pct(ms, 99):7.1f} ms")
        if "live" in only:
            try:
                ms = live_latency(chromium, ak, proj, args.live_events)
                for p in (50, 99):
                    live.setdefault(f"p{p}", []).append(pct(ms, p))
                live.setdefault("max", []).append(max(ms))
                print(
                    f"  commit -> browser, {len(ms)} events: p50 {pct(ms, 50):.1f} ms,"
                    f" p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms"
                )
            except Exception as exc:  # not built yet, or broken: say so, go on
                failed["commit -> browser"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if "idle" in only:
            try:
                alone, busy, answered = idle_cpu(ak, args.idle_clients, args.idle_seconds)
                idle.setdefault("alone", []).append(alone)
                idle.setdefault("clients", []).append(busy)
                print(
                    f"  server CPU over {args.idle_seconds:g} s: no client {alone:.2f} %,"
                    f" {args.idle_clients} idle SSE clients ({answered} answered 200)"
                    f" {busy:.2f} %"
                )
                if answered < args.idle_clients:
                    failed["idle clients"] = f"{answered} of {args.idle_clients} got 200"
            except Exception as exc:
                failed["idle clients"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if "paint" in only:
            for side, url in (("agentkeep", ak.url + "/"), ("datasette", ds.url + "/state/tasks")):
                try:
                    shots = [first_paint(chromium, url) for _ in range(args.paints)]
                except Exception as exc:
                    failed[f"first paint [{side}]"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    continue
                fcp = statistics.median(s[0] for s in shots)
                paint.setdefault(f"{side} fcp", []).append(fcp)
                paint.setdefault(f"{side} response end", []).append(
                    statistics.median(s[1] for s in shots)
                )
                paint.setdefault(f"{side} bytes", []).append(shots[0][3])
                print(
                    f"  first contentful paint {side} ({url.split('/', 3)[-1] or '/'}):"
                    f" {fcp:.0f} ms (response end {statistics.median(s[1] for s in shots):.0f}"
                    f" ms, {shots[0][3]:,} bytes)"
                )
    for http in clients.values():
        http.close()
    report(args, per_round, failed, live, idle, paint)


def report(
    args: argparse.Namespace,
    per_round: dict[str, dict[str, list[float]]],
    failed: dict[str, str],
    live: dict[str, list[float]],
    idle: dict[str, list[float]],
    paint: dict[str, list[float]],
) -> None:
    print(f"\nsummary: median (min-max) over {args.rounds} rounds of per-round percentiles")
    rows = list(dict.fromkeys(row.rsplit(" [", 1)[0] for row in per_round))
    if rows:
        print(
            f"\n{'request':44} {'agentkeep p50':>22} {'p99':>22} {'datasette p50':>22}"
            f" {'p99':>22} {'p99 ratio':>10}"
        )
        for row in rows:
            a = per_round.get(f"{row} [agentkeep]", {})
            d = per_round.get(f"{row} [datasette]", {})
            ratio = "-"
            if a and d:
                ratios = [x / y for x, y in zip(a["p99"], d["p99"], strict=True)]
                ratio = span(ratios, "x", 2)
            print(
                f"{row:44} {span(a.get('p50', [])):>22} {span(a.get('p99', [])):>22}"
                f" {span(d.get('p50', [])):>22} {span(d.get('p99', [])):>22} {ratio:>10}"
            )
    if live:
        print(
            f"\ncommit -> browser ({args.live_events} events a round): p50 {span(live['p50'])},"
            f" p99 {span(live['p99'])}, max {span(live['max'])} (goal p99 <= 100 ms)"
        )
    if idle:
        print(
            f"server CPU, {args.idle_seconds:g} s windows:"
            f" no client {span(idle['alone'], ' %', 2)},"
            f" {args.idle_clients} idle SSE clients {span(idle['clients'], ' %', 2)}"
            " (goal <= 2 %)"
        )
    if paint:
        for side in ("agentkeep", "datasette"):
            if f"{side} fcp" in paint:
                print(
                    f"first contentful paint {side}: {span(paint[f'{side} fcp'], ' ms', 0)}"
                    f" (response end {span(paint[f'{side} response end'], ' ms', 0)},"
                    f" {int(statistics.median(paint[f'{side} bytes'])):,} bytes)"
                )
    if failed:
        print("\nnot measured:")
        for what, why in failed.items():
            print(f"  {what}: {why}")


if __name__ == "__main__":
    main()
