"""Child processes for the contract suite: start them, read what they acknowledged, wait
for counts (never for the clock), and always reap them.

A child prints one JSON line per acknowledged write, flushed, only after the library call
returned. Its stdout goes to a file (a pipe could fill up and stall it); a line cut short
by SIGKILL is not an acknowledgement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"  # the contract's own modes
WRITER = HERE.parent / "helpers" / "writer.py"  # tests/helpers: claim and stream modes
CEILING = 90.0  # seconds: a ceiling that fails loudly, not a time budget


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def acks(self) -> list[dict[str, Any]]:
        """The complete lines printed so far."""
        text = self.out.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def finish(self) -> list[dict[str, Any]]:
        """Wait for a normal exit (status 0, nothing on stderr); its acknowledgements."""
        code = self.proc.wait(timeout=CEILING)
        assert code == 0, f"{self.name} exited {code}:\n{self.stderr()}"
        assert self.stderr() == "", f"{self.name} wrote to stderr:\n{self.stderr()}"
        return self.acks()


class Children:
    """Starts child processes whose logs go to ``log_dir``; ``close()`` kills and reaps."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Child] = []
        self._stack = ExitStack()

    def start(
        self,
        name: str,
        script: Path,
        *args: str,
        stdin: bool = False,
        env: dict[str, str] | None = None,
    ) -> Child:
        """``python SCRIPT ARGS``; ``env``: variables set for this child on top of ours."""
        self.log_dir.mkdir(exist_ok=True)
        out, err = self.log_dir / f"{name}.out", self.log_dir / f"{name}.err"
        out_file = self._stack.enter_context(out.open("wb"))
        err_file = self._stack.enter_context(err.open("wb"))
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=out_file,
            stderr=err_file,
            env=None if env is None else {**os.environ, **env},
        )
        child = Child(name, proc, out, err)
        self.started.append(child)
        return child

    def close(self) -> None:
        for child in self.started:
            if child.proc.poll() is None:
                child.proc.kill()
            child.proc.wait()
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        self._stack.close()


@contextmanager
def children(log_dir: Path) -> Iterator[Children]:
    started = Children(log_dir)
    try:
        yield started
    finally:
        started.close()


def wait_until(
    kids: list[Child], ready: Callable[[list[dict[str, Any]]], bool], what: str = "acks"
) -> None:
    """Poll until ``ready(acks)`` holds for every child; fail if one exits first."""
    deadline = time.monotonic() + CEILING
    while True:
        pending = [c for c in kids if not ready(c.acks())]
        if not pending:
            return
        for child in pending:
            if child.proc.poll() is not None and not ready(child.acks()):
                pytest.fail(
                    f"{child.name} exited ({child.proc.returncode}) before {what}:\n"
                    + child.stderr()
                )
        if time.monotonic() > deadline:
            pytest.fail(f"waited {CEILING:.0f}s for {what} of {[c.name for c in pending]}")
        time.sleep(0.005)


def poll(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail loudly at the ceiling."""
    deadline = time.monotonic() + CEILING
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {CEILING:.0f}s for {what}")
        time.sleep(0.005)


def release(barrier: Path, name: str = "go") -> None:
    """Let children waiting at ``barrier/name`` go, all at once."""
    (barrier / name).touch()


def stop_when(condition: Callable[[], bool], what: str) -> Callable[[], bool]:
    """A ``stop`` for ``Store.follow()``: true once ``condition`` holds; fails loudly at
    the ceiling (a follower that missed an event would otherwise wait forever)."""
    deadline = time.monotonic() + CEILING

    def stop() -> bool:
        if condition():
            return True
        if time.monotonic() > deadline:
            pytest.fail(f"waited {CEILING:.0f}s for {what}")
        return False

    return stop
