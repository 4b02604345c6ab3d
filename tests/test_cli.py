"""The CLI contract: help with examples everywhere, --json/--nl shapes, errors and exit
codes, store discovery, portability (no absolute paths), worktree safety, config."""

from __future__ import annotations

import json
import select
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest

import agentkeep
from agentkeep.cli import cli as root_command

from conftest import Cli, git, run_agentkeep


def all_commands() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(command: click.Command, path: list[str], ctx: click.Context) -> None:
        found.append(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name], click.Context(sub, info_name=name, parent=ctx))

    walk(root_command, [], click.Context(root_command, info_name="agentkeep"))
    return found


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "agentkeep")
def test_every_command_has_help_with_examples(cli: Cli, path: list[str]) -> None:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    leaf_without_examples = {
        "tasks dep add",
        "tasks dep rm",
        "notes show",
        "sessions start",
        "sessions end",
        "agents register",
        "agents set",
        "worktrees add",
        "worktrees lease",
        "worktrees release",
        "worktrees remove",
        "metrics record",
        "db status",
        "db migrate",
        "db backup",
        "db check",
        "config list",
        "config get",
        "config set",
        "events list",
    }
    if " ".join(path) not in leaf_without_examples:
        assert "Example" in result.stdout, f"`{' '.join(path)} --help` shows no example"


READ_COMMANDS = [
    ["tasks", "list"],
    ["tasks", "ready"],
    ["notes", "list"],
    ["notes", "latest"],
    ["sessions"],
    ["agents"],
    ["worktrees"],
    ["events"],
    ["metrics"],
    ["projects"],
    ["queue", "ls"],
    ["doc", "ls"],
    ["doc", "locks"],
    ["doc", "validate"],
    ["msg", "inbox"],
    ["msg", "outbox"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_read_commands_json_is_an_array_and_nl_is_lines(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert isinstance(data, list)
    if command != ["events"] and command != ["projects"]:
        assert data == []
    lines = cli(*command, "--nl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == data


def test_mutations_report_outcome_and_idempotency(cli: Cli) -> None:
    first = cli("tasks", "add", "Write docs", "--idempotency-key", "k-1", "--json").json()
    again = cli("tasks", "add", "Write docs", "--idempotency-key", "k-1", "--json").json()
    assert first["outcome"] == "created" and again["outcome"] == "already_exists"
    assert first["schema_version"] == 1
    assert again["task"]["id"] == first["task"]["id"]
    assert len(cli("tasks", "list", "--json").json()) == 1


def test_task_lifecycle_claim_ready_dep_undo(cli: Cli) -> None:
    assert cli("tasks", "add", "base", "-p", "1").exit_code == 0
    assert cli("tasks", "add", "follow-up", "--dep", "1").exit_code == 0
    assert [t["id"] for t in cli("tasks", "ready", "--json").json()] == [1]
    assert cli("tasks", "claim", "2", "--as", "a").exit_code == 5  # waits on task 1
    assert cli("tasks", "claim", "1", "--as", "a").exit_code == 0
    lost = cli("tasks", "claim", "1", "--as", "b", "--json")
    assert lost.exit_code == 5 and lost.error()["code"] == "conflict"
    assert cli("tasks", "update", "1", "--status", "done").exit_code == 0
    assert [t["id"] for t in cli("tasks", "ready", "--json").json()] == [2]
    refused = cli("tasks", "update", "1", "--status", "blocked", "--json")
    assert refused.exit_code == 5 and "done" in refused.error()["error"]
    assert cli("undo", "task", "1").exit_code == 0
    assert cli("tasks", "show", "1", "--json").json()["status"] == "in_progress"
    assert cli("tasks", "dep", "add", "1", "2").exit_code == 3  # cycle
    events = cli("events", "--entity", "task", "--entity-id", "1", "-n", "0", "--json").json()
    kinds = [e["kind"] for e in events]
    assert kinds == ["task.created", "task.claimed", "task.updated", "task.updated"]
    assert events[-1]["undoes"] == events[-2]["seq"]


def test_notes_kinds_and_latest(cli: Cli) -> None:
    assert cli("notes", "add", "handoff", "Parser half-done").exit_code == 0
    assert (
        cli(
            "notes", "add", "validation", "all green", "--command", "make test", "--exit-code", "0"
        ).exit_code
        == 0
    )
    bad = cli("notes", "add", "validation", "no command given", "--json")
    assert bad.exit_code == 3 and "command" in bad.error()["error"]
    latest = cli("notes", "latest", "validation", "--json").json()
    assert latest[0]["data"] == {"command": "make test", "exit_code": 0}
    assert latest[0]["body"] == "all green"
    assert cli("notes", "latest", "decision", "--json").json() == []


def test_errors_are_one_sentence_with_hint_and_exit_code(cli: Cli) -> None:
    missing = cli("tasks", "show", "404")
    assert missing.exit_code == 4
    assert missing.stderr.startswith("error: task 404 does not exist")
    assert "hint:" in missing.stderr and "Traceback" not in missing.stderr
    as_json = cli("tasks", "show", "404", "--json")
    assert as_json.stdout == ""
    assert as_json.error() == {
        "schema_version": 1,
        "error": "task 404 does not exist",
        "code": "not_found",
        "hint": "`agentkeep tasks list` shows the tasks",
    }
    usage = cli("tasks", "add")
    assert usage.exit_code == 2


def test_no_store_and_not_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = Cli()
    result = cli("status", "--json")
    assert result.exit_code == 4 and result.error()["code"] == "store_not_found"
    assert "agentkeep init" in result.error()["hint"]
    result = cli("init")
    assert result.exit_code == 3 and "git repository" in result.stderr


def test_init_is_idempotent_and_writes_config_and_gitignore(project: Path, cli: Cli) -> None:
    again = cli("init", "--json").json()
    assert again["outcome"] == "already_exists"
    store_dir = project / ".agentkeep"
    import tomllib

    text = (store_dir / "config.toml").read_text()
    assert "# [store]" in text and "# synchronous = " in text
    uncommented = "\n".join(
        line.removeprefix("# ")
        for line in text.splitlines()
        if line.startswith("# ") and ("=" in line or line.startswith("# ["))
    )
    assert tomllib.loads(uncommented)["store"]["synchronous"] == "FULL"
    assert tomllib.loads(uncommented)["actor"] == ""
    git(project, "add", "-A")
    tracked = git(project, "ls-files").splitlines()
    assert tracked == [".agentkeep/.gitignore", ".agentkeep/config.toml"]  # not state.db
    assert cli("projects", "--json").json()[0]["root"] == str(project)


def test_store_is_found_from_subdirs_and_linked_worktrees(project: Path) -> None:
    (project / "README").write_text("x")
    git(project, "add", "README")
    git(project, "commit", "-qm", "init")
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    wt = project.parent / "wt1"
    git(project, "worktree", "add", "-q", str(wt), "-b", "feature")
    for where in (sub, wt):
        done = run_agentkeep("status", "--json", cwd=where)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["store_dir"] == str(project / ".agentkeep")
    other = project.parent / "other"
    other.mkdir()
    via_flag = run_agentkeep("--store", str(project / ".agentkeep"), "status", "--json", cwd=other)
    via_env = run_agentkeep(
        "status", "--json", cwd=other, env={"AGENTKEEP_DIR": str(project / ".agentkeep")}
    )
    assert via_flag.returncode == 0 and via_env.returncode == 0


def test_no_absolute_paths_in_the_project_database(project: Path, cli: Cli) -> None:
    sub = project / "src"
    sub.mkdir()
    cli("sessions", "start", "--title", "run")  # records the cwd
    cli("worktrees", "add", str(project.parent / "wt-abs"), "--branch", "b")
    cli("tasks", "add", "t")
    with agentkeep.open(project) as store:
        store.start_session(source="x", cwd=str(sub))
        assert store.list_worktrees()[0].path == "../wt-abs"
        assert store.list_sessions()[0].cwd == "src"
        dump = "\n".join(store._conn.raw.iterdump())
    assert str(project) not in dump
    assert str(project.parent) not in dump


def test_worktree_remove_refuses_unmerged_or_untracked_work(project: Path, cli: Cli) -> None:
    (project / "f").write_text("1")
    git(project, "add", "f")
    git(project, "commit", "-qm", "base")
    wt = project.parent / "wt-safe"
    git(project, "worktree", "add", "-q", str(wt), "-b", "work")
    assert cli("worktrees", "add", str(wt), "--branch", "work").exit_code == 0
    (wt / "new.txt").write_text("untracked")
    refused = cli("worktrees", "remove", "1", "--json")
    assert refused.exit_code == 5 and "untracked" in refused.error()["error"]
    git(wt, "add", "new.txt")
    git(wt, "commit", "-qm", "unmerged work")
    refused = cli("worktrees", "remove", "1", "--json")
    assert refused.exit_code == 5 and "1 commit" in refused.error()["error"]
    assert wt.exists()
    git(project, "merge", "-q", "work")
    assert cli("worktrees", "remove", "1").exit_code == 0
    assert not wt.exists()
    assert cli("worktrees", "--all", "--json").json()[0]["status"] == "removed"


def test_worktree_lease_is_exclusive(cli: Cli) -> None:
    cli("worktrees", "add", "../wt-lease")
    assert cli("worktrees", "lease", "1", "--owner", "a").exit_code == 0
    assert cli("worktrees", "lease", "1", "--owner", "b").exit_code == 5
    assert cli("worktrees", "release", "1", "--owner", "b").exit_code == 5
    assert cli("worktrees", "release", "1", "--owner", "a").exit_code == 0
    assert cli("worktrees", "lease", "1", "--owner", "b").exit_code == 0


def test_agents_mark_dead(cli: Cli) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cli("agents", "register", "gone", "--pid", str(child.pid)).exit_code == 0
    assert cli("agents", "register", "alive", "--pid", str(subprocess.os.getpid())).exit_code == 0
    agents = {a["name"]: a["status"] for a in cli("agents", "--mark-dead", "--json").json()}
    assert agents == {"gone": "dead", "alive": "active"}


def test_config_sources_and_set(project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    listed = {v["key"]: v for v in cli("config", "list", "--json").json()}
    assert listed["store.synchronous"]["source"] == "default"
    assert cli("config", "set", "store.synchronous", "normal").exit_code == 0
    assert cli("config", "get", "store.synchronous").stdout.strip() == "NORMAL"
    text = (project / ".agentkeep" / "config.toml").read_text()
    assert "# agentkeep project settings" in text  # comments survive
    with agentkeep.open(project) as store:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    monkeypatch.setenv("AGENTKEEP_STORE_SYNCHRONOUS", "FULL")
    got = cli("config", "get", "store.synchronous", "--json").json()
    assert got["value"] == "FULL" and got["source"] == "env"
    bad = cli("config", "set", "store.busy_timeout_ms", "0", "--json")
    assert bad.exit_code == 3


def test_metrics_and_sessions(cli: Cli) -> None:
    started = cli("sessions", "start", "--source", "ci", "--external-id", "run-7", "--json")
    assert started.json()["outcome"] == "created"
    again = cli("sessions", "start", "--source", "ci", "--external-id", "run-7", "--json")
    assert again.json()["outcome"] == "already_exists"
    assert cli("sessions", "end", "1", "--exit-code", "3", "-s", "failed").exit_code == 0
    assert cli("sessions", "end", "1").exit_code == 5
    assert cli("metrics", "record", "tests.duration_s", "41.5", "-l", "suite=unit").exit_code == 0
    rows = cli("metrics", "--name", "tests.duration_s", "--since", "1h", "--json").json()
    assert rows[0]["value"] == 41.5 and rows[0]["labels"] == {"suite": "unit"}
    assert cli("metrics", "--since", "yesterday-ish").exit_code == 3


def test_db_commands(project: Path, cli: Cli, tmp_path: Path) -> None:
    status = cli("db", "status", "--json").json()
    assert status["schema_version"] == 1  # the JSON contract's version
    assert status["db_schema_version"] == status["code_schema_version"]
    assert status["journal_mode"] == "wal" and status["synchronous"] == "FULL"
    assert cli("db", "check", "--json").json()["ok"] is True
    dest = tmp_path / "copy.sqlite"
    assert cli("db", "backup", str(dest)).exit_code == 0
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy.close()
    assert cli("db", "backup", str(dest)).exit_code == 3  # never overwrites
    assert cli("db", "migrate", "--json").json()["pending"] == []


def test_events_follow_sees_another_process(project: Path) -> None:
    with agentkeep.open(project) as store:
        store.add_task("before")
        start = store.last_seq()
    # --id-gt fixes the starting point, so the write below may land before the follower
    # has even started: nothing is skipped either way, and no sleep is needed.
    follower = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "events", "-f", "--json", "--id-gt", str(start)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with agentkeep.open(project) as store:
            store.add_task("seen live")
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 120)
        assert ready, "the follower printed nothing within 120 s"
        event = json.loads(follower.stdout.readline())
        assert event["kind"] == "task.created" and event["data"]["title"] == "seen live"
    finally:
        follower.kill()
        follower.communicate()


def test_redact_command_never_prints_the_secret(cli: Cli, tmp_path: Path) -> None:
    import secrets as random_source
    import string

    token = "ghp_" + "".join(random_source.choice(string.ascii_letters) for _ in range(36))
    text = f"line one\nexport GITHUB_TOKEN={token}\n"
    found = cli("redact", "--json", input=text)
    assert found.exit_code == 0
    assert token[4:16] not in found.stdout
    assert found.json()[0]["line"] == 2
    cleaned = cli("redact", "--text", input=text)
    assert token[4:16] not in cleaned.stdout and "[REDACTED:" in cleaned.stdout


def test_error_text_is_withheld_when_the_redactor_fails(
    project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every error the CLI shows goes through the privacy boundary; when the redactor
    raises, the message is withheld (never the text, never a traceback) and config files
    are left alone (review finding 6)."""
    import secrets as random_source
    import string

    from agentkeep import boundary, redact

    token = "ghp_" + "".join(random_source.choice(string.ascii_letters) for _ in range(36))
    config = project / ".agentkeep" / "config.toml"
    before = config.read_bytes()

    def broken(*_: object) -> object:
        raise RuntimeError(f"rule engine crashed on {token}")  # even its own text is kept

    for name in ("redact_text", "redact_value", "scan", "may_contain_secret"):
        monkeypatch.setattr(redact, name, broken)
    boundary.clear_cache()
    cases = [
        (["tasks", "show", token], 2),  # click's usage error echoes the argument
        (["tasks", "show", token, "--json"], 2),
        (["events", "list", "--since", token], 3),  # ours echoes it too
        (["events", "list", "--since", token, "--json"], 3),
        (["config", "set", "actor", token], 10),  # cannot tell whether it is a secret
        (["redact", "--text"], 10),
    ]
    for argv, code in cases:
        done = cli(*argv, input=f"x {token}\n")
        assert done.exit_code == code, (argv, done.stderr)
        assert token[4:16] not in done.stdout + done.stderr, argv
        assert "Traceback" not in done.stderr
        if code != 10:  # a failed redaction says so itself, without quoting anything
            assert "withheld because the redactor failed" in done.stderr, argv
    assert config.read_bytes() == before


@pytest.mark.parametrize("group", [[], ["tasks"], ["db"]], ids=lambda g: " ".join(g) or "-")
def test_a_bare_group_prints_its_help(cli: Cli, group: list[str]) -> None:
    result = cli(*group)
    assert result.exit_code == 0 and result.stdout.startswith("Usage: agentkeep")
    assert "Commands:" in result.stdout and result.stderr == ""


def test_generated_docs_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent.parent / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


# -- the same way everywhere: list, -n/--since, truncation, times, colour, escapes --------


def on_terminal(
    args: list[str], cwd: Path, *, tty: str = "stdout", env: dict[str, str] | None = None
) -> tuple[str, str]:
    """Run ``agentkeep ARGS`` with ``tty`` (stdout or stderr) on a pseudo-terminal and
    the other stream on a pipe; returns (stdout, stderr) as text."""
    import os
    import pty

    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment |= {"TERM": "xterm", **(env or {})}
    with subprocess.Popen(
        [sys.executable, "-m", "agentkeep", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=slave if tty == "stdout" else subprocess.PIPE,
        stderr=slave if tty == "stderr" else subprocess.PIPE,
        env=environment,
    ) as process:
        os.close(slave)
        captured = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            captured += chunk
        os.close(master)
        pipe = process.stderr if tty == "stdout" else process.stdout
        assert pipe is not None
        other = pipe.read().decode()
        process.wait(timeout=60)
    terminal = captured.decode().replace("\r\n", "\n")
    return (terminal, other) if tty == "stdout" else (other, terminal)


NOUN_GROUPS = [
    "tasks",
    "notes",
    "sessions",
    "agents",
    "worktrees",
    "events",
    "metrics",
    "artifacts",
    "config",
]


@pytest.mark.parametrize("group", NOUN_GROUPS)
def test_every_noun_group_has_list(cli: Cli, group: str) -> None:
    result = cli(group, "list", "--json")
    assert result.exit_code == 0, result.stderr
    assert isinstance(result.json(), list | dict)


def test_artifact_is_a_hidden_alias_of_artifacts(cli: Cli, store: agentkeep.Store) -> None:
    store.add_artifact(b"x", name="a.txt")
    assert [a["name"] for a in cli("artifacts", "list", "--json").json()] == ["a.txt"]
    assert cli("artifact", "ls", "--json").json() == cli("artifacts", "list", "--json").json()
    listed = cli("--help").stdout
    assert "  artifacts " in listed and "  artifact " not in listed


LIST_COMMANDS = [
    ["tasks", "list"],
    ["tasks", "ready"],
    ["notes", "list"],
    ["artifacts", "list"],
    ["events", "list"],
    ["metrics", "list"],
    ["sessions", "list"],
    ["queue", "ls"],
    ["doc", "ls"],
    ["msg", "inbox"],
    ["msg", "outbox"],
]
SINCE_COMMANDS = [
    ["events", "list"],
    ["metrics", "list"],
    ["sessions", "list"],
    ["stats"],
    ["search", "word"],
]


@pytest.mark.parametrize("command", LIST_COMMANDS, ids=" ".join)
def test_limit_means_the_same_on_every_list_command(cli: Cli, command: list[str]) -> None:
    assert cli(*command, "-n", "-1").exit_code == 2
    assert cli(*command, "-n", "0", "--json").exit_code == 0  # 0: all
    assert "At most N (0: all)." in " ".join(cli(*command, "--help").stdout.split())


@pytest.mark.parametrize("command", SINCE_COMMANDS, ids=" ".join)
def test_since_means_the_same_everywhere(cli: Cli, command: list[str]) -> None:
    bad = cli(*command, "--since", "yesterday", "--json")
    assert bad.exit_code == 3
    assert bad.error()["error"] == "--since 'yesterday' is neither a duration nor a date"
    assert cli(*command, "--since", "2h", "--json").exit_code == 0
    assert cli(*command, "--since", "2026-01-01T00:00:00Z", "--json").exit_code == 0


def test_parse_since_lives_in_timeutil() -> None:
    from agentkeep.timeutil import parse_since

    assert parse_since("2026-11-01") == "2026-11-01T00:00:00.000Z"
    assert parse_since(None) is None


def test_a_list_cut_by_the_limit_says_so_on_a_terminal(project: Path) -> None:
    with agentkeep.open(project) as store:
        for i in range(3):
            store.add_note("decision", f"note {i}")
    out, err = on_terminal(["notes", "list", "-n", "2", "--json"], project, tty="stderr")
    assert len(json.loads(out)) == 2
    assert "note: showing 2; more match (-n 0 shows all" in err
    out, err = on_terminal(["notes", "list", "-n", "3", "--json"], project, tty="stderr")
    assert len(json.loads(out)) == 3 and err == ""
    # Not on a terminal (a script capturing stderr): the JSON is all there is.
    piped = run_agentkeep("notes", "list", "-n", "2", "--json", cwd=project)
    assert len(json.loads(piped.stdout)) == 2 and piped.stderr == b""


def test_tables_show_one_timestamp_format(cli: Cli, store: agentkeep.Store) -> None:
    import re

    store.add_note("decision", "stamp me")
    store.record_metric("m", 1.0)
    tables = cli("notes", "list").stdout + cli("events", "list").stdout + cli("metrics").stdout
    stamps = re.findall(r"\d{4}-\d\d-\d\d[T ][\d:.]+Z?", tables)
    assert stamps and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", s) for s in stamps)


def test_no_color_and_dumb_terminals_get_no_styles(project: Path) -> None:
    with agentkeep.open(project) as store:
        store.add_task("Plain")
    styled, _ = on_terminal(["tasks", "list"], project)
    assert "\x1b[1m" in styled  # bold header on a terminal
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        plain, _ = on_terminal(["tasks", "list"], project, env=env)
        assert "\x1b" not in plain and "Plain" in plain


HOSTILE = (
    "see \x1b]8;;https://evil.example/\x07this link\x1b]8;;\x07"
    " \x1b]0;pwned title\x07 \x1b[31mred\x1b[0m \x9b2J \x1b[2K\r\x08 end"
)


def test_escape_sequences_in_stored_text_never_reach_the_terminal(
    cli: Cli, store: agentkeep.Store
) -> None:
    from agentkeep.ops.runner import run_command

    task = store.add_task(HOSTILE).item
    store.add_note("handoff", HOSTILE, task_id=task.id)
    sid = run_command(
        store, [sys.executable, "-c", f"print({HOSTILE!r})"], title="hostile", echo=False
    ).session_id
    outputs = {
        "tasks list": cli("tasks", "list").stdout,
        "tasks show": cli("tasks", "show", str(task.id)).stdout,
        "notes list": cli("notes", "list").stdout,
        "notes show": cli("notes", "show", "1").stdout,
        "search": cli("search", "link").stdout,
        "logs": cli("logs", str(sid)).stdout,
        "prime": cli("prime").stdout,
    }
    for name, text in outputs.items():
        assert not any(c in text for c in "\x1b\x07\x9b\r\x08"), name
        assert "this link" in text, name
    assert "␛]8;;https://evil.example/␇this link" in outputs["tasks show"]
    # --json keeps the text exactly as stored.
    assert cli("tasks", "show", str(task.id), "--json").json()["title"] == HOSTILE
    assert cli("logs", str(sid), "--json").json()[0]["text"] == HOSTILE


def test_shell_completion_is_documented_and_works(project: Path) -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    assert 'eval "$(_AGENTKEEP_COMPLETE=bash_source agentkeep)"' in docs
    assert "NO_COLOR" in docs
    script = run_agentkeep(cwd=project, env={"_AGENTKEEP_COMPLETE": "bash_source"})
    assert b"_agentkeep_completion()" in script.stdout
    env = {"_AGENTKEEP_COMPLETE": "bash_complete", "COMP_WORDS": "agentkeep art", "COMP_CWORD": "1"}
    done = run_agentkeep(cwd=project, env=env)
    assert done.stdout.decode().split() == ["plain,artifacts"]  # the alias stays hidden


def test_logs_keep_colours_on_a_terminal_and_nothing_else(project: Path) -> None:
    with agentkeep.open(project) as store:
        sid = store.start_session(source="run").item.id
        writer = store.open_stream(sid, "pty")
        writer.write(b"\x1b[31mFAILED\x1b[0m test_x \x1b]0;pwned\x07\x1b[2J\r\n")
        store.seal_stream(writer.close().id)
        store.end_session(sid, status="failed", exit_code=1)
    shown, _ = on_terminal(["logs", str(sid)], project)
    assert shown == "\x1b[31mFAILED\x1b[0m test_x ␛]0;pwned␇␛[2J\n"
    plain = run_agentkeep("logs", str(sid), cwd=project).stdout.decode()
    assert plain == "FAILED test_x ␛]0;pwned␇␛[2J\n"
    nocolour, _ = on_terminal(["logs", str(sid)], project, env={"NO_COLOR": "1"})
    assert nocolour == plain
