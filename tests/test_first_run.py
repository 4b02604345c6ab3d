"""What a new user does first: the Quick start's main job, the README's Python example, and
reading a store they cannot write."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkeep
from agentkeep.errors import Conflict, ReadOnly

from conftest import REPO, Cli, git, run_agentkeep, skip_or_fail


def readme_python() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(.*?)```", text, re.S)
    assert found, "README.md has no Python example"
    return found.group(1)


def test_readme_python_example_runs_twice(project: Path) -> None:
    script = project.parent / "example.py"
    script.write_text(readme_python(), encoding="utf-8")
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,  # a ceiling that fails loudly if follow() never stops
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.splitlines())
    assert outputs[0][-1].endswith("note 1")
    assert outputs[1][-1].endswith("note 2")
    with agentkeep.open(project) as store:
        [task] = store.list_tasks()
        assert (task.status, task.assignee) == ("in_progress", "agent-7")
        claims = [e for e in store.events(entity="task") if e.kind == "task.claimed"]
        assert len(claims) == 1  # the retry wrote no second event


def test_claim_retry_by_holder_is_not_a_conflict(cli: Cli) -> None:
    cli("tasks", "add", "t")
    first = cli("tasks", "claim", "1", "--as", "ana", "--json")
    assert (first.exit_code, first.json()["outcome"]) == (0, "updated"), first.stderr
    again = cli("tasks", "claim", "1", "--as", "ana", "--json")
    assert (again.exit_code, again.json()["outcome"]) == (0, "unchanged"), again.stderr
    other = cli("tasks", "claim", "1", "--as", "bo", "--json")
    assert other.exit_code == 5 and other.error()["code"] == "conflict"


def test_claim_retry_in_the_library(store: agentkeep.Store) -> None:
    task = store.add_task("t").item
    store.claim_task(task.id, "ana")
    seq = store.last_seq()
    assert store.claim_task(task.id, "ana").assignee == "ana"
    assert store.last_seq() == seq
    with pytest.raises(Conflict):
        store.claim_task(task.id, "bo")


@pytest.fixture
def read_only_project(project: Path, tmp_path: Path) -> Iterator[Path]:
    """The project, seen through a view this user can read but not write: a read-only bind
    mount when we are root (root ignores file modes), the files' write bits off otherwise."""
    with agentkeep.open(project) as store:
        store.add_task("Fix login redirect")
        store.add_note("handoff", "parser half-done")
    if os.geteuid() != 0:
        for path in (project / ".agentkeep", *(project / ".agentkeep").iterdir()):
            path.chmod(path.stat().st_mode & ~0o222)
        yield project
        for path in (project / ".agentkeep", *(project / ".agentkeep").iterdir()):
            path.chmod(path.stat().st_mode | 0o200)
        return
    view = tmp_path / "ro-view"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(project), str(view)], capture_output=True)
    if mounted.returncode != 0:
        skip_or_fail(f"cannot bind-mount: {mounted.stderr.decode().strip()}")
    try:
        done = subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(view)], capture_output=True, text=True
        )
        if done.returncode != 0:
            skip_or_fail(f"cannot remount read-only: {done.stderr.strip()}")
        yield view
    finally:
        if subprocess.run(["umount", str(view)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_store_the_user_cannot_write_is_readable(read_only_project: Path) -> None:
    db = read_only_project / ".agentkeep" / "state.db"
    assert not os.access(db.parent, os.W_OK)
    for args in (["status"], ["tasks", "list"], ["notes", "list"], ["search", "parser"]):
        done = run_agentkeep(*args, "--json", cwd=read_only_project)
        assert done.returncode == 0, (args, done.stderr)
    found = run_agentkeep("search", "parser", "--json", cwd=read_only_project)
    assert b"parser" in found.stdout
    with agentkeep.open(read_only_project, read_only=True) as store:
        assert [t.title for t in store.list_tasks()] == ["Fix login redirect"]
    with agentkeep.open(read_only_project) as store:  # not asked read-only: still readable
        assert not store.writable
        assert len(store.list_tasks()) == 1
        with pytest.raises(ReadOnly, match="readable but not writable"):
            store.add_task("nope")
    refused = run_agentkeep("tasks", "add", "nope", cwd=read_only_project)
    assert refused.returncode == 13
    assert b"readable but not writable" in refused.stderr
    assert b"Traceback" not in refused.stderr


def test_main_job_links_the_command_and_says_what_next(tmp_path: Path) -> None:
    """scripts/run PROJECT in a fresh HOME: `agentkeep` becomes a command on PATH, the store
    is created in PROJECT (not in agentkeep's checkout), and the output ends with next steps."""
    if not (REPO / ".venv" / ".installed-runtime").exists():
        skip_or_fail("scripts/setup has not run in this checkout")
    home = tmp_path / "fresh-home"
    home.mkdir()
    proj = tmp_path / "my-app"
    proj.mkdir()
    git(proj, "init", "-q", "-b", "main")
    bin_dir = home / ".local" / "bin"
    env = {
        "HOME": str(home),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "AGENTKEEP_HOME": os.environ["AGENTKEEP_HOME"],
        "CLAUDE_CONFIG_DIR": os.environ["CLAUDE_CONFIG_DIR"],
        "CODEX_HOME": os.environ["CODEX_HOME"],
        "XDG_DATA_HOME": os.environ["XDG_DATA_HOME"],
        "AGENTKEEP_ACTOR": "tester@test",
    }
    for _attempt in range(2):  # the second run changes nothing and still works
        done = subprocess.run(
            [str(REPO / "scripts" / "run"), str(proj)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert f"The store is {proj}/.agentkeep/" in done.stderr, done.stderr
        assert "agentkeep setup claude" in done.stderr
        assert "Next steps" in done.stderr
    assert (proj / ".agentkeep" / "state.db").exists()
    linked = bin_dir / "agentkeep"
    assert linked.is_symlink() and linked.resolve() == (REPO / ".venv/bin/agentkeep").resolve()
    typed = shutil.which("agentkeep", path=env["PATH"])
    assert typed == str(linked)
    version = subprocess.run([typed, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and "agentkeep" in version.stdout
    status = subprocess.run(
        ["agentkeep", "status", "--json"], cwd=proj, env=env, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
