"""Issue 9 §4 hardening, with real files, FIFOs, links and processes: everything agentkeep
writes is private to the user (dirs 0700, files 0600) whatever the umask; nothing inside
the store is written through a symbolic link; a user's regular expression cannot hang
`logs --grep`; a hostile config.toml is a clear error for the CLI and never stops the
hook from capturing."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import agentkeep
from agentkeep.ops.backup import backup as backup_store
from agentkeep.services.streams import Line, compile_user_pattern

from conftest import Cli, run_agentkeep

CEILING = 120  # seconds: a generous bound that only a hang reaches (it fails loudly)


def modes_below(*roots: Path) -> dict[str, int]:
    """The permission bits of each root and of everything below it (links not followed)."""
    found: dict[str, int] = {}
    for root in roots:
        found[str(root)] = stat.S_IMODE(os.lstat(root).st_mode)
        for directory, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(directory) / name
                found[str(path)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def exposed(modes: dict[str, int]) -> dict[str, str]:
    return {path: oct(mode) for path, mode in modes.items() if mode & 0o077}


def query(project: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{project / '.agentkeep' / 'state.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def deliver(project: Path, payload: dict[str, Any], **kw: Any) -> None:
    """One hook delivery as the agent makes it: exit 0, nothing printed."""
    done = run_agentkeep(
        "hook", "--source", "claude", cwd=project, input=json.dumps(payload).encode(), **kw
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done.stderr


def prompt(project: Path, text: str = "hello", session: str = "s-1") -> dict[str, Any]:
    return {
        "session_id": session,
        "cwd": str(project),
        "hook_event_name": "UserPromptSubmit",
        "prompt": text,
    }


def hook_log(project: Path) -> str:
    path = project / ".agentkeep" / "hook-errors.log"
    return path.read_text() if path.exists() else ""


def cap_memory() -> None:  # preexec_fn: today's code read /dev/zero until memory ran out
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


# -- 0700 / 0600 ----------------------------------------------------------------------------

WRITE_EVERYTHING = r"""
import json, os, sys
from pathlib import Path
os.umask(int(sys.argv[1], 8))
root, out = sys.argv[2], sys.argv[3]
import agentkeep
from agentkeep import hook
from agentkeep.ops.backup import backup
from agentkeep.ops.bundle_export import export_bundle
from agentkeep.cli import run
from agentkeep.config import set_in_file

agentkeep.init_store(root)
os.chdir(root)
script = "import sys; print('out'); print('err', file=sys.stderr)"
assert run(["run", "--", sys.executable, "-c", script]) == 0
set_in_file(Path(root, ".agentkeep", "config.toml"), "capture.spill_bytes", "2048")
store_dir = os.path.join(root, ".agentkeep")
payload = {"session_id": "s", "cwd": root, "hook_event_name": "PreToolUse",
           "tool_name": "Write", "tool_input": {"content": "x" * 5000}, "tool_use_id": "t1"}
raw = json.dumps(payload).encode()
hook.store_delivery(store_dir, "claude", payload, raw)  # spills to an artifact, writes the cache
hook.log_failure(store_dir, "claude", hook.HookError("a failure to log"))
modes = {}
with agentkeep.open(root) as store:
    store.add_artifact(b"artifact bytes", name="a.txt")
    for suffix in ("-wal", "-shm"):  # live while the store is open after a write
        modes[suffix] = os.stat(os.path.join(store_dir, "state.db" + suffix)).st_mode & 0o777
    store.backup()
    backup(store)
    export_bundle(store, os.path.join(out, "export.tar"), all=True)
    store.export_artifact(1, Path(out, "artifact.bin"))
print(json.dumps(modes))
"""


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_everything_written_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    root, out = tmp_path / "proj", tmp_path / "exports"
    root.mkdir()
    out.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    done = subprocess.run(
        [sys.executable, "-c", WRITE_EVERYTHING, oct(umask), str(root), str(out)],
        capture_output=True,
        text=True,
        timeout=CEILING,
    )
    assert done.returncode == 0, done.stderr
    live = json.loads(done.stdout.splitlines()[-1])
    assert live == {"-wal": 0o600, "-shm": 0o600}
    store_dir = root / ".agentkeep"
    home = Path(os.environ["AGENTKEEP_HOME"])
    modes = modes_below(store_dir, home)
    names = {
        Path(p).relative_to(store_dir).as_posix() for p in modes if p.startswith(f"{store_dir}/")
    }
    # Every kind of file the store holds was written (so each one's mode is checked).
    for expected in ("state.db", "config.toml", ".hook-config.json", "hook-errors.log"):
        assert expected in names
    for prefix in ("streams/1/", "objects/sha256/", "backups/state-", "backups/snapshot-"):
        assert any(name.startswith(prefix) for name in names), prefix
    assert str(home / "global.db") in modes
    exports = {str(out / "export.tar"): 0, str(out / "artifact.bin"): 0}
    modes.update({p: stat.S_IMODE(os.stat(p).st_mode) for p in exports})
    assert exposed(modes) == {}


def test_an_existing_world_readable_store_is_made_private(project: Path, cli: Cli) -> None:
    assert cli("run", "--", sys.executable, "-c", "print(1)").exit_code == 0
    store_dir = project / ".agentkeep"
    for path in modes_below(store_dir):  # as an older agentkeep left it
        os.chmod(path, 0o755 if Path(path).is_dir() else 0o644)
    with agentkeep.open(project, read_only=True):
        pass  # a read-only open changes nothing
    count = len(exposed(modes_below(store_dir)))
    assert exposed(modes_below(store_dir))[str(store_dir)] == "0o755"

    report = cli("doctor", "--json")
    assert report.exit_code == 1
    [finding] = [f for f in report.json()["findings"] if f["check"] == "permissions"]
    assert finding["severity"] == "warning" and not finding["fixed"]
    assert f"{count} path(s) are open to them" in finding["message"]

    added = cli("tasks", "add", "x")  # a writable open tightens the directory and its entries
    assert added.exit_code == 0
    assert "other users could read this store; it is private now" in added.stderr
    top = modes_below(store_dir)
    assert top[str(store_dir)] == 0o700 and top[str(store_dir / "state.db")] == 0o600
    assert exposed(top)  # deeper files: unreachable now, and doctor --fix tightens them
    assert cli("doctor", "--json").exit_code == 0

    for path in (store_dir, store_dir / "streams"):
        os.chmod(path, 0o755)
    fixed = cli("doctor", "--fix", "--json")
    [finding] = [f for f in fixed.json()["findings"] if f["check"] == "permissions"]
    assert finding["fixed"] and "made private" in finding["message"]
    assert exposed(modes_below(store_dir)) == {}
    assert cli("doctor", "--json").exit_code == 0


# -- no symbolic link is followed inside the store ------------------------------------------


def test_run_refuses_a_linked_streams_directory(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / ".agentkeep" / "streams").symlink_to(elsewhere)
    done = run_agentkeep("run", "--", sys.executable, "-c", "print('out')", cwd=project)
    assert done.returncode == 12
    assert b"streams is a symbolic link" in done.stderr and b"Traceback" not in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_run_refuses_a_link_deeper_in_the_streams_directory(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    streams = project / ".agentkeep" / "streams"
    streams.mkdir()
    (streams / "1").symlink_to(elsewhere)  # the directory the first session's output gets
    done = run_agentkeep("run", "--", sys.executable, "-c", "print('out')", cwd=project)
    assert done.returncode == 12 and b"streams/1 is a symbolic link" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_linked_stream_file_is_not_written_through(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("")
    session = store.start_session().item
    directory = store.store_dir / "streams" / str(session.id)
    directory.mkdir(parents=True)
    (directory / "stdout.log").symlink_to(target)
    with pytest.raises(agentkeep.StorageError, match=r"stdout\.log is a symbolic link"):
        store.open_stream(session.id, "stdout")
    assert target.read_text() == ""


def test_artifacts_and_backups_refuse_linked_directories(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store.store_dir / "objects").mkdir()
    (store.store_dir / "objects" / "sha256").symlink_to(elsewhere)
    with pytest.raises(agentkeep.StorageError, match="sha256 is a symbolic link"):
        store.add_artifact(b"some bytes", name="a.txt")
    (store.store_dir / "backups").symlink_to(elsewhere)
    with pytest.raises(agentkeep.StorageError, match="backups is a symbolic link"):
        backup_store(store)
    assert list(elsewhere.iterdir()) == []


def test_a_writable_open_refuses_a_link_in_the_store_directory(
    project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / ".agentkeep" / "backups").symlink_to(elsewhere)
    with pytest.raises(agentkeep.StorageError, match="backups is a symbolic link"):
        agentkeep.open(project)
    with agentkeep.open(project, read_only=True) as store:  # reading stays possible
        assert store.list_tasks() == []
    report = Cli()("doctor", "--json")
    [finding] = [f for f in report.json()["findings"] if f["check"] == "links"]
    assert finding["subject"] == "backups" and finding["severity"] == "error"


def test_the_hook_never_writes_through_a_link_and_logs_why(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    objects = project / ".agentkeep" / "objects"
    objects.mkdir()
    (objects / "sha256").symlink_to(elsewhere)
    big = prompt(project, "word " * 40_000)  # larger than capture.spill_bytes: spilled
    deliver(project, big)
    assert list(elsewhere.iterdir()) == []
    assert "sha256 is a symbolic link" in hook_log(project)
    assert query(project, "SELECT count(*) FROM captures") == [(0,)]
    # What needs no link is still captured: the spooled big delivery is quarantined (kept,
    # reported) instead of blocking the spool, and the next writer stores the small one.
    deliver(project, prompt(project, "small"))
    with agentkeep.open(project) as store:
        store.drain_spool()
    assert query(project, "SELECT count(*) FROM captures") == [(1,)]
    quarantined = list((project / ".agentkeep" / "spool-quarantine").glob("*.delivery"))
    assert len(quarantined) == 1
    assert "is a symbolic link" in (quarantined[0].with_suffix(".delivery.reason")).read_text()


def test_the_hook_log_is_not_written_through_a_link(project: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("")
    (project / ".agentkeep" / "hook-errors.log").symlink_to(victim)
    done = run_agentkeep("hook", "--source", "claude", cwd=project, input=b"not json")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert victim.read_text() == ""


def test_fifos_planted_in_the_store_never_block_a_writer(project: Path) -> None:
    store_dir = project / ".agentkeep"
    os.mkfifo(store_dir / "hook-errors.log")  # nobody reads it: opening it would block
    done = run_agentkeep(
        "hook", "--source", "claude", cwd=project, input=b"not json", timeout=CEILING
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    done = run_agentkeep("doctor", "--json", cwd=project, timeout=CEILING)
    [finding] = [f for f in json.loads(done.stdout)["findings"] if f["check"] == "hook-errors"]
    assert "unreadable: not a regular file" in finding["message"]
    (store_dir / "streams" / "1").mkdir(parents=True)
    os.mkfifo(store_dir / "streams" / "1" / "stdout.log")
    done = run_agentkeep(
        "run", "--", sys.executable, "-c", "print(1)", cwd=project, timeout=CEILING
    )
    assert done.returncode == 12 and b"stdout.log is not a regular file" in done.stderr


def test_the_hook_refuses_a_linked_database(project: Path, tmp_path: Path) -> None:
    store_dir = project / ".agentkeep"
    moved = tmp_path / "real.db"
    # No connection is open; mv in another process (conftest forbids it in this one).
    subprocess.run(["mv", str(store_dir / "state.db"), str(moved)], check=True)
    (store_dir / "state.db").symlink_to(moved)
    deliver(project, prompt(project))
    assert "state.db is a symbolic link" in hook_log(project)
    conn = sqlite3.connect(f"file:{moved}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM captures").fetchone() == (0,)
    finally:
        conn.close()


# -- bounded user regexes -------------------------------------------------------------------


def test_a_catastrophic_grep_pattern_returns_at_once(project: Path) -> None:
    line = "a" * 48 + "!"  # (a+)+$ backtracks 2^48 times on this with Python's re
    script = f"print({line!r}); print('aaaa')"
    assert run_agentkeep("run", "--", sys.executable, "-c", script, cwd=project).returncode == 0
    done = run_agentkeep("logs", "1", "--grep", "(a+)+$", cwd=project, timeout=CEILING)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["aaaa"]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "invalid escape sequence"),
        ("(?=a)b", "invalid perl operator"),
        ("(", "missing )"),
    ],
)
def test_a_grep_pattern_that_cannot_run_is_a_clear_error(
    project: Path, cli: Cli, pattern: str, reason: str
) -> None:
    assert cli("run", "--", sys.executable, "-c", "print('x')").exit_code == 0
    done = cli("logs", "1", "--grep", pattern)
    assert done.exit_code == 3
    assert f"--grep {pattern!r} is not a regular expression agentkeep can run" in done.stderr
    assert reason in done.stderr and "Traceback" not in done.stderr


# -- hostile config.toml --------------------------------------------------------------------


def test_a_fifo_config_is_refused_without_hanging(project: Path) -> None:
    config = project / ".agentkeep" / "config.toml"
    config.unlink()
    os.mkfifo(config)
    done = run_agentkeep("tasks", "list", cwd=project, timeout=CEILING)
    assert done.returncode == 3
    assert f"{config} is a named pipe (FIFO), not a regular file".encode() in done.stderr


def test_the_hook_captures_with_a_fifo_config_and_logs_it(project: Path) -> None:
    config = project / ".agentkeep" / "config.toml"
    config.unlink()
    os.mkfifo(config)
    deliver(project, prompt(project), timeout=CEILING)
    assert query(project, "SELECT event FROM captures") == [("prompt",)]
    assert "is a named pipe (FIFO), not a regular file" in hook_log(project)
    assert "capture goes on" in hook_log(project)


def test_a_config_linked_to_dev_zero_is_refused(project: Path) -> None:
    config = project / ".agentkeep" / "config.toml"
    config.unlink()
    config.symlink_to("/dev/zero")
    done = subprocess.run(
        [sys.executable, "-m", "agentkeep", "tasks", "list"],
        cwd=project,
        capture_output=True,
        timeout=CEILING,
        preexec_fn=cap_memory,
    )
    assert done.returncode == 3
    assert f"{config} is a symbolic link".encode() in done.stderr


def test_a_user_config_linked_to_dev_zero_is_refused(project: Path) -> None:
    user_config = Path(os.environ["AGENTKEEP_HOME"]) / "config.toml"
    user_config.symlink_to("/dev/zero")  # links are followed outside the store
    done = subprocess.run(
        [sys.executable, "-m", "agentkeep", "tasks", "list"],
        cwd=project,
        capture_output=True,
        timeout=CEILING,
        preexec_fn=cap_memory,
    )
    assert done.returncode == 3
    assert f"{user_config} is a character device, not a regular file".encode() in done.stderr


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 10_000 + "]" * 10_000,  # the TOML parser recursed until it failed
        "a = " + "{b=" * 10_000 + "1" + "}" * 10_000,
        "[" + ".".join(["a"] * 20_000) + "]\nx = 1\n",  # the parser took quadratic time
    ],
    ids=["arrays", "inline-tables", "dotted-header"],
)
def test_a_deeply_nested_config_is_a_clear_error(project: Path, cli: Cli, text: str) -> None:
    (project / ".agentkeep" / "config.toml").write_text(text)
    done = cli("tasks", "list")
    assert done.exit_code == 3, done.stderr
    assert "nested too deeply" in done.stderr and "config.toml" in done.stderr


def test_an_oversized_config_is_a_clear_error(project: Path, cli: Cli) -> None:
    (project / ".agentkeep" / "config.toml").write_text("# padding\n" * 10_000)
    done = cli("tasks", "list")
    assert done.exit_code == 3 and "larger than 64 KiB" in done.stderr


def test_an_unknown_key_is_a_warning_with_a_suggestion(project: Path, cli: Cli) -> None:
    (project / ".agentkeep" / "config.toml").write_text('[store]\nsynchronus = "NORMAL"\n')
    done = cli("tasks", "list", "--json")
    assert done.exit_code == 0 and done.json() == []
    assert "unknown setting 'store.synchronus'" in done.stderr
    assert "did you mean 'store.synchronous'?" in done.stderr
    config = cli("config", "get", "store.synchronous")
    assert config.exit_code == 0 and config.stdout.strip() == "FULL"


def test_the_hook_captures_with_unknown_keys_and_bad_values(project: Path) -> None:
    (project / ".agentkeep" / "config.toml").write_text(
        '[capture]\npolicy = "everything"\nspil_bytes = 5\n'
    )
    deliver(project, prompt(project, "kept"))
    [(payload,)] = query(project, "SELECT payload FROM captures")
    assert "kept" in payload  # capture.policy fell back to its default, full
    log = hook_log(project)
    assert "setting capture.policy" in log and "capture goes on" in log
    deliver(project, prompt(project, "again", session="s-2"))  # logged once per change
    assert hook_log(project) == log
    deliver(project, prompt(project, "big " * 40_000, session="s-3"))  # spilled by the library
    assert query(project, "SELECT count(*), count(artifact_id) FROM captures") == [(3, 1)]
    assert hook_log(project) == log


PATTERNS = [
    "a",
    "^a",
    "a$",
    "^$",
    "b+$",
    r"\bab\b",
    r"a\sb",
    "[^x]+",
    "a|^b",
    "(?s)a.b",
    r"a\nb",
    r"\Aa",
    r"a\z",
    "(?-m)^a",
    "(?i)A$",
    "x*",
    r"\B",
    ".",
    "^",
    "$",
    "a.*b",
    "(a|b)+$",
    "[[:space:]]",
    r"\s",
    "(?U)a+",
    "é",
]


@settings(max_examples=300, deadline=None)
@example(pattern="[^x]+", texts=["", "", "", "a"])  # one match crosses every line
@example(pattern=r"a\sb", texts=["xa", "b", "", "a b"])  # crosses two, then one inside
@example(pattern=r"\Aa", texts=["b", "a", "a", "b"])  # \A means each line's start
@given(
    pattern=st.sampled_from(PATTERNS),
    texts=st.lists(st.text(alphabet="ab x\t\ré", max_size=6), max_size=12),
)
def test_batched_grep_keeps_exactly_the_lines_that_match(pattern: str, texts: list[str]) -> None:
    """keep() scans a batch of lines at once; it must agree with a search of each line."""
    compiled = compile_user_pattern(pattern)
    lines = [Line("stdout", n, 0, text) for n, text in enumerate(texts, 1)]
    assert compiled.keep(lines) == [line for line in lines if compiled.search(line.text)]
