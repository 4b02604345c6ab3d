"""Sessions end and agents finish (issue 9 §2, "Session lifecycle"): end markers (SessionEnd,
a resume after it), the idle threshold, `status` counts, `run --agent`, one rule for both
session writers; and each session says whether it is displayable and resumable, with
`sessions resume` running the agent's own resume command (a fake agent on PATH records
its argv and directory)."""

from __future__ import annotations

import json
import os
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentkeep

from agentfixtures import ClaudeSession, CodexRollout, rows, stamp
from conftest import Cli, run_agentkeep

RECENT = datetime.now(UTC) - timedelta(minutes=2)
OLD = datetime.now(UTC) - timedelta(days=3)  # idle, and within Claude's 30-day retention
ANCIENT = datetime.now(UTC) - timedelta(days=90)  # past Claude's 30-day retention


@pytest.fixture(autouse=True)
def _no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)  # set when run under Claude Code


def events(store: agentkeep.Store, kind: str) -> list[dict[str, Any]]:
    return [
        {**row, "data": json.loads(row["data"])}
        for row in rows(store, "SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,))
    ]


def session_of(store: agentkeep.Store, source: str, external: str) -> agentkeep.Session:
    found = rows(
        store, "SELECT id FROM sessions WHERE source = ? AND external_id = ?", (source, external)
    )
    assert found, f"no {source} session {external}"
    return store.get_session(found[0]["id"])


def claude_transcript(cwd: Path, start: datetime) -> ClaudeSession:
    session = ClaudeSession(cwd, start=start)
    session.user("Add a rate limiter to /login")
    session.text("Done: a token bucket on POST /login.")
    return session


def hook(project: Path, payload: dict[str, Any], source: str = "claude") -> None:
    done = run_agentkeep(
        "hook", "--source", source, cwd=project, input=json.dumps(payload).encode()
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done.stderr


# -- sessions end -----------------------------------------------------------------------------


def test_an_import_ends_idle_sessions_at_their_last_activity_and_their_agents_are_done(
    project: Path, store: agentkeep.Store
) -> None:
    old = claude_transcript(project, OLD)
    fresh = claude_transcript(project, RECENT)
    store.import_history("claude")

    ended = session_of(store, "claude", old.session_id)
    assert (ended.status, ended.ended_at) == ("ended", ended.last_seen_at)
    assert ended.ended_at == stamp(old.clock.now)  # its last line, not the import's time
    [event] = [e for e in events(store, "session.ended") if e["entity_id"] == ended.id]
    assert event["data"]["reason"].startswith("idle")
    assert store.get_agent(ended.agent_id or 0).status == "done"

    running = session_of(store, "claude", fresh.session_id)
    assert (running.status, running.idle) == ("running", False)
    assert store.get_agent(running.agent_id or 0).status == "active"
    status = store.status()
    assert (status.running_sessions, status.idle_sessions, status.active_agents) == (1, 0, 1)


def test_status_never_calls_an_idle_session_running(project: Path) -> None:
    """Before any writer ends it, a reader already counts an idle session as idle."""
    with agentkeep.open(project) as store:
        with store.transaction() as tx:  # a writer that does not sweep (an importer mid-run)
            writer = store.capture_writer(tx)
            stale = writer.session("claude", "stale", started_at=stamp(OLD))
            live = writer.session("claude", "live")
        status = store.status()
        assert (status.running_sessions, status.idle_sessions, status.active_agents) == (1, 1, 1)
        assert [s.id for s in store.list_sessions(status="running")] == [live]
        assert [s.id for s in store.list_sessions(status="idle")] == [stale]
        assert store.get_session(stale).idle and store.get_session(stale).status == "running"
    with agentkeep.open(project, config={"sessions.idle_minutes": 0}) as never_idle:
        assert never_idle.status().running_sessions == 2


def test_the_hook_ends_a_session_on_session_end_and_a_resume_runs_it_again(
    project: Path,
) -> None:
    base = {"session_id": "c-1", "cwd": str(project), "transcript_path": "/dev/null"}
    hook(project, {**base, "hook_event_name": "SessionStart", "source": "startup"})
    hook(project, {**base, "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"})
    with agentkeep.open(project) as store:
        session = session_of(store, "claude", "c-1")
        assert session.status == "ended"
        assert store.get_agent(session.agent_id or 0).status == "done"

    # `claude --resume c-1`: the same session starts again.
    hook(project, {**base, "hook_event_name": "SessionStart", "source": "resume"})
    with agentkeep.open(project) as store:
        session = session_of(store, "claude", "c-1")
        assert (session.status, session.ended_at) == ("running", None)
        assert store.get_agent(session.agent_id or 0).status == "active"
        [resumed] = events(store, "session.resumed")
        assert resumed["data"]["previous"]["status"] == "ended"
        assert store.status().running_sessions == 1

    hook(project, {**base, "hook_event_name": "SessionEnd", "reason": "other"})
    with agentkeep.open(project) as store:
        session = session_of(store, "claude", "c-1")
        assert session.status == "ended"
        assert store.get_agent(session.agent_id or 0).status == "done"
        assert len(events(store, "session.ended")) == 2
        assert (store.status().running_sessions, store.status().active_agents) == (0, 0)


def test_a_new_session_seen_by_the_hook_ends_idle_sessions(project: Path) -> None:
    with agentkeep.open(project) as store, store.transaction() as tx:
        stale = store.capture_writer(tx).session("codex", "t-old", started_at=stamp(OLD))
    hook(project, {"session_id": "c-new", "cwd": str(project), "hook_event_name": "SessionStart"})
    with agentkeep.open(project) as store:
        assert store.get_session(stale).status == "ended"
        assert store.get_session(stale).ended_at == stamp(OLD)
        assert session_of(store, "claude", "c-new").status == "running"


def test_new_lines_after_an_idle_end_resume_the_session(
    project: Path, store: agentkeep.Store
) -> None:
    transcript = claude_transcript(project, OLD)
    store.import_history("claude")
    assert session_of(store, "claude", transcript.session_id).status == "ended"
    transcript.clock.now = datetime.now(UTC)  # resumed today, without hooks
    transcript.user("and add a test")
    store.import_history("claude")
    session = session_of(store, "claude", transcript.session_id)
    assert (session.status, session.idle) == ("running", False)
    assert len(events(store, "session.resumed")) == 1
    store.import_history("claude")  # nothing new: nothing changes
    assert len(events(store, "session.resumed")) == 1


def test_run_with_an_agent_leaves_the_agent_done(project: Path, cli: Cli) -> None:
    assert cli("run", "--agent", "builder", "--", "true").exit_code == 0
    with agentkeep.open(project) as store:
        assert store.get_agent("builder").status == "done"
        status = store.status()
        assert (status.running_sessions, status.active_agents) == (0, 0)
        assert [e["data"] for e in events(store, "agent.updated")][-1] == {"status": "done"}


def test_one_rule_for_session_start_end_and_agent_done_in_both_writers(
    store: agentkeep.Store,
) -> None:
    lib_agent = store.register_agent("lib-agent").item
    lib = store.start_session(source="lib", external_id="a1", agent_id=lib_agent.id).item
    with store.transaction() as tx:
        captured = store.capture_writer(tx).session("claude", "b2", model="opus")
    started = {e["entity_id"]: e["data"] for e in events(store, "session.started")}
    assert set(started[lib.id]) == set(started[captured])  # one payload shape
    assert started[captured]["model"] == "opus" and started[lib.id]["source"] == "lib"

    store.end_session(lib.id, exit_code=0)
    with store.transaction() as tx:
        store.capture_writer(tx).end_session(captured, reason="prompt_input_exit")
    ended = {e["entity_id"]: e["data"] for e in events(store, "session.ended")}
    assert set(ended[lib.id]) == set(ended[captured])
    assert (ended[lib.id]["exit_code"], ended[captured]["reason"]) == (0, "prompt_input_exit")
    for session_id in (lib.id, captured):
        agent_id = store.get_session(session_id).agent_id
        assert store.get_agent(agent_id or 0).status == "done"
    done = [
        e["entity_id"] for e in events(store, "agent.updated") if e["data"] == {"status": "done"}
    ]
    assert sorted(done) == sorted(store.get_session(s).agent_id for s in (lib.id, captured))
    created = [e["data"] for e in events(store, "agent.created")]
    assert set(created[0]) == set(created[1])  # agent.created: one shape too


def test_a_parent_session_ending_ends_its_running_subagents(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        parent = writer.session("claude", "p")
        child = writer.session("claude", "p:agent-1", parent_id=parent)
        writer.end_session(parent, reason="prompt_input_exit")
    assert store.get_session(child).status == "ended"
    assert store.status().active_agents == 0


def stale_sessions(project: Path, count: int, *, children: int = 0) -> list[int]:
    """``count`` observed sessions idle since OLD (each with its agent), the first
    ``children`` of them with a subagent session each, written without a sweep; all
    their ids, oldest first."""
    with agentkeep.open(project) as store, store.transaction() as tx:
        writer = store.capture_writer(tx)  # idle_minutes None: this writer never sweeps
        made = []
        for number in range(count):
            made.append(writer.session("claude", f"stale-{number}", started_at=stamp(OLD)))
            if number < children:
                made.append(
                    writer.session(
                        "claude", f"stale-{number}:sub", started_at=stamp(OLD), parent_id=made[-1]
                    )
                )
    return made


def test_one_hook_delivery_ends_a_few_idle_sessions_and_the_next_import_the_rest(
    project: Path,
) -> None:
    """The hook holds the writer lock while it sweeps: a store with thousands of stale
    sessions (an upgrade, a first import) costs one delivery at most SWEEP_LIMIT of them;
    the next import run ends all the others, each agent settled once."""
    from agentkeep.lifecycle import SWEEP_LIMIT

    made = stale_sessions(project, 3000, children=5)
    hook(project, {"session_id": "c-new", "cwd": str(project), "hook_event_name": "SessionStart"})
    with agentkeep.open(project) as store:
        ended = [e["entity_id"] for e in events(store, "session.ended")]
        assert sorted(ended) == made[:SWEEP_LIMIT]  # the oldest (subagents with parents)
        assert store.status().running_sessions == 1  # the rest are idle, not running
        assert store.status().idle_sessions == 3005 - SWEEP_LIMIT
        done = [
            e["entity_id"] for e in events(store, "agent.updated") if e["data"]["status"] == "done"
        ]
        assert len(done) == len(set(done)) == len(ended)

        store.import_history("claude")  # no files: the run's sweep ends the rest
        status = store.status()
        assert (status.running_sessions, status.idle_sessions) == (1, 0)
        assert sorted(e["entity_id"] for e in events(store, "session.ended")) == made
        done = [
            e["entity_id"] for e in events(store, "agent.updated") if e["data"]["status"] == "done"
        ]
        assert len(done) == len(set(done)) == 3005  # each agent settled once
        [live] = rows(store, "SELECT id FROM agents WHERE status = 'active'")
        assert store.get_agent(live["id"]).name == "claude-c-new"
        assert store.end_idle_sessions() == []


@pytest.mark.sqlite_only("reads SQLite's EXPLAIN QUERY PLAN")
def test_the_agent_done_question_is_an_index_lookup(store: agentkeep.Store) -> None:
    """Ending N sessions asks "does its agent still run a session?" N times: through
    sessions_agent (migration 5), never a walk over every running session."""
    from agentkeep import lifecycle

    def plan(sql: str, params: tuple[Any, ...]) -> str:
        found = rows(store, f"EXPLAIN QUERY PLAN {sql}", params)
        return " | ".join(str(row["detail"]) for row in found)

    done = plan(lifecycle.AGENT_DONE_SQL, ("now", 1, 1))
    assert "sessions USING COVERING INDEX sessions_agent (agent_id=? AND status=?)" in done
    assert "SCAN sessions" not in done
    shown = plan(f"SELECT {lifecycle.AGENT_STATUS_SQL} FROM agents WHERE id = ?", ("z", 1))
    assert "sessions USING INDEX sessions_agent (agent_id=?)" in shown, shown
    assert "SCAN sessions" not in shown
    sweep = plan(
        f"SELECT id FROM sessions WHERE {lifecycle.IDLE_SQL} ORDER BY id LIMIT ?", ("z", 20)
    )
    assert "sessions USING INDEX sessions_status (status=?)" in sweep, sweep


def test_a_resume_keeps_what_it_clears_in_its_event(project: Path) -> None:
    """A resume clears the end (status, ended_at, exit_code, signal); its event's
    `previous` keeps all of it and the end's reason, so history can restore them."""
    base = {"session_id": "c-9", "cwd": str(project), "transcript_path": "/dev/null"}
    hook(project, {**base, "hook_event_name": "SessionStart", "source": "startup"})
    with agentkeep.open(project) as store:
        session = session_of(store, "claude", "c-9")
        store.end_session(session.id, status="failed", exit_code=3, signal=9, reason="crashed")
        ended_at = store.get_session(session.id).ended_at
    hook(project, {**base, "hook_event_name": "UserPromptSubmit", "prompt": "go on"})
    with agentkeep.open(project) as store:
        resumed = store.get_session(session.id)
        assert (resumed.status, resumed.exit_code, resumed.signal) == ("running", None, None)
        [event] = events(store, "session.resumed")
        assert event["data"]["previous"] == {
            "status": "failed",
            "ended_at": ended_at,
            "exit_code": 3,
            "signal": 9,
            "reason": "crashed",
        }
        [failed] = events(store, "session.failed")
        assert {k: failed["data"][k] for k in event["data"]["previous"]} == event["data"][
            "previous"
        ]


def test_agents_show_the_idle_rule_as_status_counts_it(project: Path, cli: Cli) -> None:
    """Before a writer ends idle sessions, an agent whose sessions are all idle is shown
    idle (not active) by `agents`, list_agents and get_agent — as `status` counts it."""
    [stale] = stale_sessions(project, 1)
    with agentkeep.open(project) as store:
        with store.transaction() as tx:
            live = store.capture_writer(tx).session("claude", "live")
        lone = store.register_agent("lone").item  # no sessions: as stored
        again = store.register_agent("again").item  # ran, then registered again: active
        run = store.start_session(source="lib", external_id="r", agent_id=again.id).item
        store.end_session(run.id)
        assert store.get_agent(again.id).status == "done"
        store.register_agent("again")
        stale_agent = store.get_session(stale).agent_id or 0
        live_agent = store.get_session(live).agent_id or 0

        stored = {r["id"]: r["status"] for r in rows(store, "SELECT id, status FROM agents")}
        assert stored[stale_agent] == "active"  # nothing was written
        shown = {a.id: a.status for a in store.list_agents()}
        assert shown == {
            stale_agent: "idle",
            live_agent: "active",
            lone.id: "active",
            again.id: "active",
        }
        assert store.get_agent(stale_agent).status == "idle"
        active = [a.id for a in store.list_agents(status="active")]
        assert sorted(active) == sorted([live_agent, lone.id, again.id])
        assert store.status().active_agents == len(active)
        assert [a.id for a in store.list_agents(status="idle")] == [stale_agent]
    listed = {a["id"]: a["status"] for a in cli("agents", "--json").json()}
    assert listed == shown
    with agentkeep.open(project, config={"sessions.idle_minutes": 0}) as never_idle:
        assert never_idle.get_agent(stale_agent).status == "active"
        assert never_idle.status().active_agents == 4
    with agentkeep.open(project) as store:
        store.import_history("claude")  # a writer ends the idle session: the agent is done
        assert store.get_agent(stale_agent).status == "done"
        assert rows(store, "SELECT status FROM agents WHERE id = ?", (stale_agent,)) == [
            {"status": "done"}
        ]


# -- displayable, resumable, `sessions resume` -------------------------------------------------


def fake_agent(tmp_path: Path, name: str) -> tuple[dict[str, str], Path]:
    """A `name` executable first on PATH that writes its argv and cwd to a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / f"{name}.argv.json"
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], "
        "'cwd': os.getcwd()}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, record


def test_a_claude_session_is_resumable_while_its_transcript_exists(
    project: Path, cli: Cli, tmp_path: Path
) -> None:
    transcript = claude_transcript(project, OLD)
    with agentkeep.open(project) as store:
        store.import_history("claude")
        session_id = session_of(store, "claude", transcript.session_id).id

    shown = cli("sessions", "show", str(session_id), "--json").json()
    assert (shown["displayable"], shown["resumable"], shown["resume_reason"]) == (True, True, None)
    printed = cli("sessions", "resume", str(session_id), "--print")
    assert printed.stdout.strip() == f"cd {project} && claude --resume {transcript.session_id}"

    env, record = fake_agent(tmp_path, "claude")
    done = run_agentkeep(
        "--store", str(project), "sessions", "resume", str(session_id), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    ran = json.loads(record.read_text())
    assert ran == {"argv": ["--resume", transcript.session_id], "cwd": str(project)}

    transcript.path.unlink()  # Claude Code deleted it
    shown = cli("sessions", "show", str(session_id), "--json").json()
    assert (shown["displayable"], shown["resumable"]) == (True, False)
    refused = cli("sessions", "resume", str(session_id), "--json")
    assert refused.json()["reason"].startswith("the upstream file is gone")
    refused = cli("sessions", "resume", str(session_id))
    assert refused.exit_code == 5
    assert "displayable, not resumable: the upstream file is gone" in refused.stderr
    listed = cli("sessions", "list", "--json").json()
    assert [(s["id"], s["displayable"], s["resumable"]) for s in listed] == [
        (session_id, True, False)
    ]


def test_a_listing_looks_at_each_claude_project_directory_once(
    project: Path, store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sessions list` says whether each session is resumable: every project directory
    under Claude's root is listed once per listing, not looked at once per session whose
    transcript is not where its directory says (review finding 11)."""
    root = Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects"
    others = [root / f"-elsewhere-{number}" for number in range(30)]
    for directory in others:
        directory.mkdir(parents=True)
    moved = others[7] / "moved-1.jsonl"  # recorded under another directory
    moved.write_text("{}\n")
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        gone = [writer.session("claude", f"gone-{n}", cwd=str(project)) for n in range(20)]
        found = writer.session("claude", "moved-1", cwd=str(project))

    looked: list[str] = []
    real_scandir, real_stat = os.scandir, os.stat

    def scandir(path: Any = ".") -> Any:
        looked.append(os.fspath(path))
        return real_scandir(path)

    def stat_(path: Any, *args: Any, **kwargs: Any) -> Any:
        looked.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        patch.setattr(os, "stat", stat_)
        listed = {s.id: s.resumable for s in store.list_sessions(resumable=True)}
    assert listed == {**{i: False for i in gone}, found: True}
    assert looked.count(str(root)) == 1
    for directory in others:
        assert sum(p == str(directory) or p.startswith(f"{directory}/") for p in looked) == 1
    assert store.resume_plan(found).upstream == str(moved)


def test_a_claude_session_past_claude_retention_says_so(project: Path, cli: Cli) -> None:
    transcript = claude_transcript(project, ANCIENT)
    with agentkeep.open(project) as store:
        store.import_history("claude")
        session_id = session_of(store, "claude", transcript.session_id).id
    transcript.path.unlink()
    refused = cli("sessions", "resume", str(session_id))
    assert refused.exit_code == 5
    assert "not resumable: the agent's retention passed" in refused.stderr
    assert "cleanupPeriodDays" in refused.stderr


def test_a_codex_thread_resumes_with_codex_resume_unless_archived(
    project: Path, cli: Cli, tmp_path: Path
) -> None:
    rollout = CodexRollout(project, start=OLD)
    rollout.turn_context()
    rollout.user("add a rate limiter")
    archived = CodexRollout(project, start=OLD, archived=True)
    archived.user("an old thread")
    with agentkeep.open(project) as store:
        store.import_history("codex")
        live = session_of(store, "codex", rollout.thread_id).id
        gone = session_of(store, "codex", archived.thread_id).id
        home = Path(os.environ["CODEX_HOME"])  # the import cursor's key finds the rollout
        assert [home / key for key in store.imported_files(live)] == [rollout.path]

    env, record = fake_agent(tmp_path, "codex")
    done = run_agentkeep(
        "--store", str(project), "sessions", "resume", str(live), cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == {
        "argv": ["resume", rollout.thread_id],
        "cwd": str(project),
    }
    refused = cli("sessions", "resume", str(gone))
    assert refused.exit_code == 5
    assert f"archived in Codex; `codex unarchive {archived.thread_id}`" in refused.stderr

    # Seen by the hook only (no import cursor): its rollout is found by thread id.
    hooked = CodexRollout(project, start=RECENT)
    hooked.user("hooked only")
    hook(project, {"session_id": hooked.thread_id, "cwd": str(project),
                   "hook_event_name": "SessionStart"}, source="codex")  # fmt: skip
    with agentkeep.open(project) as store:
        plan = store.resume_plan(session_of(store, "codex", hooked.thread_id).id)
    assert (plan.resumable, plan.command) == (True, ["codex", "resume", hooked.thread_id])
    assert plan.upstream == str(hooked.path)


def test_a_recorded_run_is_displayable_but_not_resumable(project: Path, cli: Cli) -> None:
    ran = cli("run", "--json", "--", "echo", "hello")
    session_id = json.loads(ran.stdout)["session_id"]
    shown = cli("sessions", "show", str(session_id), "--json").json()
    assert (shown["displayable"], shown["resumable"]) == (True, False)
    refused = cli("sessions", "resume", str(session_id))
    assert refused.exit_code == 5
    assert "displayable, not resumable" in refused.stderr
    assert "agentkeep run" in refused.stderr
    started = cli("sessions", "start", "--source", "ci", "--json").json()["session"]
    shown = cli("sessions", "show", str(started["id"]), "--json").json()
    assert (shown["displayable"], shown["resumable"]) == (False, False)


# -- `sessions list` ---------------------------------------------------------------------------


def test_sessions_list_has_the_list_flags(project: Path, cli: Cli) -> None:
    ids = [
        cli("sessions", "start", "--source", "ci", "--json").json()["session"]["id"]
        for _ in range(3)
    ]
    cli("sessions", "end", str(ids[0]))
    listed = cli("sessions", "list", "--json")
    assert listed.exit_code == 0
    assert [s["id"] for s in listed.json()] == ids[::-1]
    assert [s["id"] for s in cli("sessions", "list", "-n", "1", "--json").json()] == [ids[2]]
    assert [s["id"] for s in cli("sessions", "list", "--limit", "2", "--json").json()] == [
        ids[2],
        ids[1],
    ]
    running = cli("sessions", "list", "--status", "running", "--json").json()
    assert [s["id"] for s in running] == [ids[2], ids[1]]
    assert cli("sessions", "list", "--since", "1h", "--json").json()
    assert cli("sessions", "list", "--since", "2999-01-01", "--json").json() == []
    assert cli("sessions", "list", "--source", "claude", "--json").json() == []
    table = cli("sessions", "list")
    assert table.exit_code == 0 and "RESUMABLE" in table.stdout
