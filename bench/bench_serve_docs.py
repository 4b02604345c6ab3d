"""Documents over HTTP: what ``/api/v1/docs`` adds to the library call it makes, and what
the library adds to a plain file, side by side in one run.

    python bench/bench_serve_docs.py [--rounds 3] [--requests 200] [--docs 2000]

A fresh project with ``--docs`` Markdown documents (front matter and a few sections, as a
spec or a decision) in namespace ``bench``, and ``agentkeep serve --port 0`` on it (a
subprocess; one httpx client with a keep-alive connection). Per round, the three sides
alternate request by request so the machine's drift hits all of them:

1. write: ``PUT /api/v1/docs/bench/w{i}`` with ``If-Match`` (the etag the last write
   answered) — against ``store.docs.write_doc(expect=…)`` in this process, and against
   the baseline: the same bytes written temp → fsync → rename → fsync dir by hand;
2. read: ``GET /api/v1/docs/bench/d{i}`` — against ``store.docs.read_doc`` and a plain
   ``open().read()`` of the file;
3. list: ``GET /api/v1/docs?namespace=bench&limit=100`` — against
   ``store.docs.list_docs(namespace="bench")``.

Each figure is a percentile of one round; printed as median (min-max) over ``--rounds``,
with each side's ratio to the baseline (or to the library, for the list) taken within the
round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

import agentkeep

HERE = Path(__file__).parent
AGENTKEEP = str(Path(sys.executable).with_name("agentkeep"))
BODY = """# {title}

## Context

The store keeps every document as a file; the index only finds it. Round {n}.

## Decision

- write temp, fsync, rename, fsync the directory
- keep each replaced content as a version

## Consequences

Two writers: the one with the stale etag is refused and told what changed.
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def span(values: list[float], unit: str = " ms", digits: int = 2) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}{unit}"
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def start_server(proj: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    state = proj / ".agentkeep" / "server.json"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [AGENTKEEP, "--store", str(proj), "serve", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"agentkeep serve exited: {log.read_text()[-2000:]}")
        try:
            info = json.loads(state.read_text())
            url = str(info.get("url") or f"http://127.0.0.1:{info['port']}").rstrip("/")
            if httpx.get(url + "/-/health", timeout=5).status_code == 200:
                return process, url
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit("agentkeep serve did not start within 60 s")


def plain_write(path: Path, data: bytes) -> None:
    """The baseline: temp → fsync → rename → fsync dir, nothing else."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def request_sides(
    http: httpx.Client,
    store: agentkeep.Store,
    auth: dict[str, str],
    etags: dict[str, str],
    proj: Path,
    plain_dir: Path,
    i: int,
    round_no: int,
    args: argparse.Namespace,
) -> list[tuple[str, Callable[[], object]]]:
    """Request ``i``'s calls on every side: the same document content for each write."""
    n = round_no * args.requests + i
    ref_http, ref_lib = f"bench/wh{i % 20}", f"bench/wl{i % 20}"
    body = BODY.format(title=f"Written {i % 20}", n=n)

    def put() -> None:
        headers = dict(auth)
        if ref_http in etags:
            headers["If-Match"] = f'"{etags[ref_http]}"'
        answer = http.put(f"/docs/{ref_http}", json={"body": body}, headers=headers)
        answer.raise_for_status()
        etags[ref_http] = answer.headers["etag"].strip('"')

    def lib() -> None:
        written = store.docs.write_doc(ref_lib, body=body, expect=etags.get(ref_lib))
        etags[ref_lib] = written.item.etag

    data = ("---\ntype: decision\n---\n" + body).encode()
    target = plain_dir / f"w{i % 20}.md"
    d = (i * 7919) % args.docs
    path = proj / ".agentkeep" / "docs" / "bench" / f"d{d}.md"
    sides: list[tuple[str, Callable[[], object]]] = [
        ("write: PUT /api/v1/docs/…", put),
        ("write: store.docs.write_doc", lib),
        ("write: temp+fsync+rename", lambda: plain_write(target, data)),
        ("read: GET /api/v1/docs/…", lambda: http.get(f"/docs/bench/d{d}").raise_for_status()),
        ("read: store.docs.read_doc", lambda: store.docs.read_doc(f"bench/d{d}")),
        ("read: open().read()", path.read_bytes),
    ]
    if i % 4 == 0:
        sides += [
            (
                "list 100: GET /api/v1/docs",
                lambda: http.get(
                    "/docs", params={"namespace": "bench", "limit": 100}
                ).raise_for_status(),
            ),
            ("list: store.docs.list_docs", lambda: store.docs.list_docs(namespace="bench")),
        ]
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--docs", type=int, default=2000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-docs-"))
    os.environ.setdefault("AGENTKEEP_HOME", str(work / "home"))
    proj = work / "proj"
    proj.mkdir()
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    agentkeep.init_store(proj)
    plain_dir = work / "plain"
    plain_dir.mkdir()
    started = time.perf_counter()
    with agentkeep.open(proj) as store:
        for i in range(args.docs):
            store.docs.write_doc(
                f"bench/d{i}",
                fields={"type": "decision", "status": "accepted", "tags": ["bench", f"t{i % 7}"]},
                body=BODY.format(title=f"Decision {i}", n=0),
            )
    print(f"seeded {args.docs:,} documents in {time.perf_counter() - started:.1f} s")

    process, url = start_server(proj, work / "server.log")
    token = subprocess.run(
        [AGENTKEEP, "--store", str(proj), "server", "token"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    figures: dict[str, list[list[float]]] = {}  # row -> per round [p50, p99]
    try:
        with (
            httpx.Client(base_url=url + "/api/v1", timeout=60) as http,
            agentkeep.open(proj) as store,
        ):
            auth = {"Authorization": f"Bearer {token}"}
            for round_no in range(args.rounds):
                samples: dict[str, list[float]] = {}
                etags: dict[str, str] = {}
                for i in range(args.requests):
                    sides = request_sides(
                        http, store, auth, etags, proj, plain_dir, i, round_no, args
                    )
                    order = sides if i % 2 == 0 else sides[::-1]
                    for name, call in order:
                        samples.setdefault(name, []).append(timed(call))
                for name, values in samples.items():
                    figures.setdefault(name, []).append([pct(values, 50), pct(values, 99)])
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    baselines = {
        "write": "write: temp+fsync+rename",
        "read": "read: open().read()",
        "list": "list: store.docs.list_docs",
    }
    print(
        f"\n{args.docs:,} documents, {args.requests} requests a round (lists: a quarter), "
        f"{args.rounds} rounds; median (min-max) of the rounds' percentiles"
    )
    print(f"{'':32} {'p50':>22} {'p99':>22}   p50 ratio")
    for name, rounds in figures.items():
        base = figures[baselines[name.split()[0].rstrip(":")]]
        ratio = [r[0] / b[0] for r, b in zip(rounds, base, strict=True) if b[0]]
        print(
            f"{name:32} {span([r[0] for r in rounds]):>22} {span([r[1] for r in rounds]):>22}"
            f"   {span(ratio, 'x', 1)}"
        )


if __name__ == "__main__":
    main()
