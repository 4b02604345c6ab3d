"""Shared fixtures: a temporary git project with a store, a CLI runner, and a subprocess
runner. Every test gets its own AGENTKEEP_HOME, so nothing touches the real user dirs.

A session-wide audit hook enforces invariant 7 of docs/design.md: nothing in agentkeep
opens, renames or removes a live database file (``state.db``, ``global.db`` and their
``-wal``/``-shm``) with Python file APIs — only SQLite may touch them.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import agentkeep
from agentkeep.cli import run

REPO = Path(__file__).resolve().parent.parent
# A real PostgreSQL: pg_server, pg_url, pg_database, private_pg_server, backend/backend_url.
pytest_plugins = ["helpers.pg"]
LIVE_DB = re.compile(r"(^|/)(state|global)\.db(-wal|-shm|-journal)?$")
_raw_db_access: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("open", "os.remove", "os.rename", "os.unlink", "shutil.copyfile"):
        path = args[0] if args else None
        if isinstance(path, str | bytes | os.PathLike):
            text = os.fsdecode(path)
            if LIVE_DB.search(text):
                _raw_db_access.append(f"{event} {text}")


sys.addaudithook(_audit)

# CI sets this so that a test which cannot run in its environment (not root, no `mount`,
# no node) fails instead of skipping: a green run must have run everything.
REQUIRE_ALL_TESTS = os.environ.get("AGENTKEEP_REQUIRE_ALL_TESTS") == "1"


def random_binary(size: int) -> bytes:
    """``size`` random bytes that no redaction rule can match (no ASCII letter, digit,
    ``=``, ``:`` or ``,``), for tests that expect them stored unchanged. Plain random bytes
    are not: text inside a binary file is redacted (docs/design.md), and about 1 blob of
    256 KiB in 600 holds something shaped like ``key=<10+ word characters>``."""
    from helpers.artifact_writer import NO_ASSIGNMENT

    return os.urandom(size).translate(NO_ASSIGNMENT)


def skip_or_fail(reason: str) -> None:
    """Skip a test whose environment is missing, or fail under AGENTKEEP_REQUIRE_ALL_TESTS."""
    if REQUIRE_ALL_TESTS:
        pytest.fail(f"AGENTKEEP_REQUIRE_ALL_TESTS=1 but this test cannot run here: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("AGENTKEEP_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("AGENTKEEP_") and name != "AGENTKEEP_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTKEEP_ACTOR", "tester@test")
    # The agent tools' own directories: importers and `setup` must never see the real ones.
    tools = tmp_path_factory.mktemp("tools")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tools / "claude"))
    monkeypatch.setenv("CODEX_HOME", str(tools / "codex"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tools / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tools / "xdg-config"))
    _raw_db_access.clear()
    yield
    assert not _raw_db_access, f"live database files touched outside SQLite: {_raw_db_access}"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        },
    )
    return done.stdout.strip()


# The store-level tests (those that use the `store` fixture) run on both backends; a module
# or test marked `sqlite_only` (with its reason) runs on SQLite alone. The PostgreSQL leg's
# store lives in a fresh schema of tests/helpers/pg.py's server (`pg_url`), dropped after
# the test.
STORE_BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        "store" in metafunc.fixturenames
        and "store_backend" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("sqlite_only") is None
    ):
        metafunc.parametrize("store_backend", STORE_BACKENDS, indirect=True)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """Which backend the `project` fixture's store is on (`sqlite` unless parametrised)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    store_backend: str,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    """An empty git repository with an initialised store; the cwd is its root. On the
    PostgreSQL leg the store is in a fresh schema of helpers/pg.py's server (it skips, or
    fails under CI, without one), dropped after the test. Not ``pg_url`` itself: a test
    that also asks for ``pg_url`` (a copy's destination) must get another schema."""
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    monkeypatch.chdir(root)
    if store_backend != "postgres":
        agentkeep.init_store(root)
        yield root
        return
    from helpers.pg import fresh_schema  # the plugin (pytest_plugins) is imported by now

    with fresh_schema(request.getfixturevalue("pg_server")) as url:
        agentkeep.init_store(root, url=url)
        yield root


@pytest.fixture
def store(project: Path) -> Iterator[agentkeep.Store]:
    with agentkeep.open(project) as opened:
        yield opened


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        return json.loads(self.stderr)  # type: ignore[no-any-return]


class Cli:
    """Runs ``agentkeep`` in-process (fast) with real stdin/stdout/stderr capture."""

    def __call__(self, *args: str, input: str | bytes | None = None) -> CliResult:
        runner = CliRunner()
        with runner.isolation(input=input) as (out, err, _):
            code = run(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture
def cli(project: Path) -> Cli:
    return Cli()


def run_agentkeep(
    *args: str,
    cwd: Path,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m agentkeep ARGS`` in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "agentkeep", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def mounted_tmpfs(where: Path, size: str = "8m") -> Iterator[Path]:
    """A real, small tmpfs at ``where`` (created) for full-disk tests; needs root."""
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root (the RLIMIT_FSIZE tests cover the rest)")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        skip_or_fail(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(path: Path) -> None:
    """Write to ``path`` until its file system has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
