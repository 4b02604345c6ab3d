"""The start-up front door (``agentkeep.__main__``): what it prints without click is
byte for byte what click prints, and the commands it serves do not import click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agentkeep

SRC = Path(__file__).resolve().parents[1] / "src"
UNSET = "\0unset"  # an environment variable to remove
FRONT_DOOR = "import sys; from agentkeep.__main__ import main; sys.exit(main(sys.argv[1:]))"
# click renders everything: the CLI's own run(), without the front door
CLICK = "import sys; from agentkeep.cli.main import run; sys.exit(run(sys.argv[1:]))"
# what the front door imported, on stderr, after its output
IMPORTED = (
    "import sys; from agentkeep.__main__ import main; code = main(sys.argv[1:]); "
    "print(sorted(m for m in sys.modules if m == 'click' or m.startswith('agentkeep.cli.')), "
    "file=sys.stderr); sys.exit(code)"
)


def python(code: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "_AGENTKEEP_COMPLETE")}
    environ.update(env, PYTHONPATH=str(SRC))
    environ = {k: v for k, v in environ.items() if v != UNSET}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=environ, capture_output=True
    )


@pytest.mark.parametrize("args", [["--help"], ["-h"], []])
@pytest.mark.parametrize("columns", ["", "80", "100", "150", "60", "x"])
def test_top_level_help_is_clicks_byte_for_byte(
    tmp_path: Path, args: list[str], columns: str
) -> None:
    """At the generated widths (a pipe, 80 and 100+ columns) and at others (click renders
    those), with and without COLUMNS, for --help, -h and a bare ``agentkeep``."""
    env = {"COLUMNS": columns} if columns else {}
    ours = python(FRONT_DOOR, args, tmp_path, **env)
    theirs = python(CLICK, args, tmp_path, **env)
    assert ours.stdout.startswith(b"Usage: agentkeep [OPTIONS] COMMAND [ARGS]...\n")
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )


@pytest.mark.parametrize("columns", ["", "80", "100", "200"])
def test_top_level_help_does_not_import_click(tmp_path: Path, columns: str) -> None:
    env = {"COLUMNS": columns} if columns else {}
    done = python(IMPORTED, ["--help"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"['agentkeep.cli.frontdoor']\n"


def test_generated_help_is_current() -> None:
    """The text the front door prints is what the CLI renders now (gen_docs --check says
    the same for every generated file; this names the one that matters here)."""
    from agentkeep._cli_help import HELP

    for width, text in HELP.items():
        done = python(CLICK, ["--help"], SRC, COLUMNS=str(width + 2))
        assert done.stdout.decode() == text + "\n", f"rerun scripts/gen_docs.py ({width})"


def test_shell_completion_still_goes_through_click(tmp_path: Path) -> None:
    ours = python(FRONT_DOOR, [], tmp_path, _AGENTKEEP_COMPLETE="bash_source")
    theirs = python(CLICK, [], tmp_path, _AGENTKEEP_COMPLETE="bash_source")
    assert b"complete" in ours.stdout
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


def test_a_store_imports_a_service_module_on_first_use(tmp_path: Path) -> None:
    """Opening a store and its status import no service module and none of the nouns'
    dataclasses; a flat method or a service attribute imports its own, and both reach the
    same service."""
    code = (
        "import sys, agentkeep\n"
        "from pathlib import Path\n"
        "root = Path(sys.argv[1])\n"
        "services = ('agentkeep.services.', 'agentkeep.services.base')\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith(services[0])\n"
        "                        and m != services[1])\n"
        "with agentkeep.open(root) as store:\n"
        "    store.status()\n"
        "    print(loaded(), 'agentkeep.models' in sys.modules)\n"
        "    note = store.add_note('fact', 'lazy').item\n"
        "    print(loaded())\n"
        "    assert store.notes.get_note(note.id) == store.get_note(note.id)\n"
        "    assert store.notes is store.notes\n"
        "    print(type(store.finder).__name__, 'agentkeep.services.search' in loaded())\n"
        "    try:\n"
        "        store.no_such_service\n"
        "    except AttributeError as exc:\n"
        "        print(exc)\n"
    )
    agentkeep.init_store(tmp_path)
    done = python(code, [str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "[] False",
        "['agentkeep.services.notes']",
        "SearchService True",
        "'Store' object has no attribute 'no_such_service'",
    ]


def same_as_click(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    ours = python(FRONT_DOOR, args, cwd, **env)
    theirs = python(CLICK, args, cwd, **env)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )
    return ours


STATUS_ARGS = [["status"], ["status", "--json"], ["status", "--nl"]]


@pytest.mark.parametrize("args", STATUS_ARGS)
def test_status_is_clicks_byte_for_byte(project: Path, args: list[str]) -> None:
    with agentkeep.open(project) as store:
        store.add_task("the front door", priority=1)
        store.add_note("handoff", "status \x1b]0;title\x07 with a control sequence")
    done = same_as_click(args, project)
    assert b"tasks" in done.stdout and done.returncode == 0
    for env in ({"AGENTKEEP_ACTOR": UNSET}, {"AGENTKEEP_ACTOR": ""}, {"AGENTKEEP_DIR": ""}):
        same_as_click(args, project, **env)
    # AGENTKEEP_DIR (validated by click) goes through click: the same either way
    same_as_click(args, project.parent, AGENTKEEP_DIR=str(project))
    same_as_click(args, project.parent, AGENTKEEP_DIR=str(project / "README"))


@pytest.mark.parametrize("args", [*STATUS_ARGS, ["status", "--json", "--nl"], ["status", "-x"]])
def test_status_failures_are_clicks_byte_for_byte(tmp_path: Path, args: list[str]) -> None:
    done = same_as_click(args, tmp_path)  # no store here
    assert done.returncode in (2, 4) and done.stderr


@pytest.mark.parametrize("args", STATUS_ARGS)
def test_status_warnings_are_clicks_byte_for_byte(project: Path, args: list[str]) -> None:
    """A setting that was ignored, and a store other users could read (made private on
    open, so loosened again before each run), are told on stderr alike."""
    (project / ".agentkeep" / "config.toml").write_text("[store]\nsynchronus = 'FULL'\n")
    for run in (FRONT_DOOR, CLICK):
        (project / ".agentkeep").chmod(0o755)
        done = python(run, args, project)
        assert b"synchronus" in done.stderr and b"private now" in done.stderr, done.stderr
    (project / ".agentkeep").chmod(0o755)
    ours = python(FRONT_DOOR, args, project)
    (project / ".agentkeep").chmod(0o755)
    theirs = python(CLICK, args, project)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )


def test_status_does_not_import_click(project: Path) -> None:
    done = python(IMPORTED, ["status", "--json"], project)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == b"['agentkeep.cli.frontdoor', 'agentkeep.cli.output']"


@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "EOFError", "RuntimeError('boom')"])
@pytest.mark.parametrize("args", [["status"], ["status", "--json"]])
def test_status_interrupted_or_failing_is_clicks_byte_for_byte(
    project: Path, raised: str, args: list[str]
) -> None:
    """Ctrl-C (or EOF) inside the command: click's blank line, then "aborted" and 130; a
    bug: the one-line internal error. The same from the front door."""
    planted = (
        "import sys, agentkeep.store\n"
        "def status(self):\n"
        f"    raise {raised}\n"
        "agentkeep.store.Store.status = status\n"
    )
    ours = python(planted + FRONT_DOOR, args, project)
    theirs = python(planted + CLICK, args, project)
    assert ours.returncode in (1, 130), ours.stderr
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )
