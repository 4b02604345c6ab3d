"""`agentkeep mcp` start-up: from spawning the process to the answer of the first
``tools/list``, side by side with the SDK's own floor (an MCPServer with one tool, over
stdio, in the same interpreter) and a bare interpreter.

    .venv/bin/python bench/bench_mcp.py [--runs 15]

The client writes ``initialize``, ``notifications/initialized`` and ``tools/list`` at
once (what an agent does at session start) and the clock stops at the ``tools/list``
answer. Medians and p90 over --runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUESTS = b"".join(
    json.dumps(message).encode() + b"\n"
    for message in (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    )
)
SDK_FLOOR = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("floor", log_level="WARNING")
@server.tool()
def ping() -> str:
    "Answer pong."
    return "pong"
server.run("stdio")
"""


def first_list(argv: list[str], cwd: Path) -> float:
    """Seconds from spawn to the tools/list answer."""
    start = time.perf_counter()
    with subprocess.Popen(
        argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(REQUESTS)
        process.stdin.flush()
        while True:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{argv} exited before answering tools/list")
            if json.loads(line).get("id") == 2:
                elapsed = time.perf_counter() - start
                break
        process.stdin.close()
        process.wait(60)
    return elapsed


def bare(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True)
    return time.perf_counter() - start


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGENTKEEP_HOME"] = str(Path(tmp) / "home")
        project = Path(tmp) / "project"
        project.mkdir()
        subprocess.run(["git", "init", "-q", str(project)], check=True)
        subprocess.run(
            [sys.executable, "-m", "agentkeep", "init"],
            cwd=project,
            check=True,
            capture_output=True,
        )
        floor = Path(tmp) / "floor.py"
        floor.write_text(SDK_FLOOR)
        exe = Path(sys.executable).parent / "agentkeep"
        rows = {
            "python -c pass": lambda: bare([sys.executable, "-c", "pass"], project),
            "SDK floor (MCPServer, 1 tool)": lambda: first_list(
                [sys.executable, str(floor)], project
            ),
            "agentkeep mcp (9 tools)": lambda: first_list([str(exe), "mcp"], project),
        }
        results: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.runs):  # interleaved, so drift hits every row alike
            for name, measure in rows.items():
                results[name].append(measure())
    print(f"spawn → first tools/list answer, {args.runs} runs")
    for name, samples in results.items():
        print(f"  {name:32s} {summary(samples)}")
    ratio = statistics.median(results["agentkeep mcp (9 tools)"]) / statistics.median(
        results["SDK floor (MCPServer, 1 tool)"]
    )
    print(f"  agentkeep mcp / SDK floor: {ratio:.2f}x")


if __name__ == "__main__":
    main()
