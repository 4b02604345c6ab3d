"""`agentkeep stats` and Store.stats: exact numbers per day, agent, model and task."""

from __future__ import annotations

from typing import Any

import pytest

import agentkeep
from agentkeep.errors import InvalidInput

from conftest import Cli

ROW_KEYS = {
    "by",
    "key",
    "id",
    "title",
    "sessions",
    "subagents",
    "prompts",
    "tool_calls",
    "failures",
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "duration_ms",
    "median_duration_ms",
}


def sessions(store: agentkeep.Store) -> dict[str, Any]:
    """Four sessions over two days, two agents' worth of sources, three models, a task:

    - a: claude, 03-01 10:00–10:10 (600 s), model opus, on the task
    - b: claude, 03-01 12:00–12:01 (60 s), no model; its messages say sonnet twice, opus once
    - c: codex, 03-02 09:00, still running, last seen 30 s later, model gpt-5
    - d: claude, 03-02 18:00–18:00:04 (4 s), model opus, on the task
    """
    task = store.add_task("Rate limiter").item
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        a = w.session("claude", "aaaa1111", started_at="2026-03-01T10:00:00.000Z", model="opus")
        w.raise_counts(
            a,
            prompts=2,
            tool_calls=5,
            failures=1,
            turns=2,
            input_tokens=100,
            output_tokens=50,
            cache_read_tokens=1000,
            cache_write_tokens=10,
        )
        w.end_session(a, at="2026-03-01T10:10:00.000Z")
        b = w.session("claude", "bbbb2222", started_at="2026-03-01T12:00:00.000Z")
        for i, model in enumerate(["sonnet", "opus", "sonnet"]):
            w.message(
                b,
                seq=i,
                external_id=f"b{i}",
                role="assistant",
                kind="text",
                text="ok",
                model=model,
                message_key=f"r{i}",
                tokens=(10, 1, 0, 0),
            )
        w.message(b, seq=9, external_id="b9", role="assistant", kind="tool_use", tool_name="Bash")
        w.session_totals_from_messages(b)
        w.end_session(b, at="2026-03-01T12:01:00.000Z")
        c = w.session("codex", "cccc3333", started_at="2026-03-02T09:00:00.000Z", model="gpt-5")
        w.bump(c, at="2026-03-02T09:00:30.000Z", failures=2, prompts=1)
        d = w.session("claude", "dddd4444", started_at="2026-03-02T18:00:00.000Z", model="opus")
        w.raise_counts(d, tool_calls=1, input_tokens=7)
        w.end_session(d, at="2026-03-02T18:00:04.000Z")
        for session in (a, d):
            tx.execute("UPDATE sessions SET task_id = ? WHERE id = ?", [task.id, session])
    return {"a": a, "b": b, "c": c, "d": d, "task": task}


def pick(row: Any, *names: str) -> tuple[Any, ...]:
    data = row if isinstance(row, dict) else row.to_dict()
    return tuple(data[name] for name in names)


NUMBERS = (
    "key",
    "sessions",
    "prompts",
    "tool_calls",
    "failures",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "duration_ms",
    "median_duration_ms",
)


def test_by_day(store: agentkeep.Store) -> None:
    sessions(store)
    rows = store.stats(by="day")
    assert [pick(r, *NUMBERS) for r in rows] == [
        ("2026-03-01", 2, 2, 6, 1, 130, 53, 1000, 10, 660_000, 330_000),
        ("2026-03-02", 2, 1, 1, 2, 7, 0, 0, 0, 34_000, 17_000),
    ]
    assert store.stats() == rows  # day is the default
    since = store.stats(by="day", since="2026-03-01T11:00:00.000Z")
    assert [pick(r, "key", "sessions", "duration_ms") for r in since] == [
        ("2026-03-01", 1, 60_000),
        ("2026-03-02", 2, 34_000),
    ]


def test_by_agent_model_and_task(store: agentkeep.Store) -> None:
    made = sessions(store)
    agents = store.stats(by="agent")
    # One session each: ordered by name.
    assert [pick(r, "key", "sessions", "tool_calls", "median_duration_ms") for r in agents] == [
        ("claude-aaaa1111", 1, 5, 600_000),
        ("claude-bbbb2222", 1, 1, 60_000),
        ("claude-dddd4444", 1, 1, 4_000),
        ("codex-cccc3333", 1, 0, 30_000),
    ]
    assert all(r.id is not None for r in agents)

    models = store.stats(by="model")
    assert [pick(r, *NUMBERS) for r in models] == [
        # b has no model of its own: most of its messages name sonnet, so the session
        # counts there; its tokens go by each response's model (one opus response).
        ("opus", 2, 2, 6, 1, 117, 51, 1000, 10, 604_000, 302_000),
        ("gpt-5", 1, 1, 0, 2, 0, 0, 0, 0, 30_000, 30_000),
        ("sonnet", 1, 0, 1, 0, 20, 2, 0, 0, 60_000, 60_000),
    ]

    tasks = store.stats(by="task")
    task = made["task"]
    assert [
        pick(r, "key", "id", "title", "sessions", "tool_calls", "duration_ms") for r in tasks
    ] == [
        (str(task.id), task.id, "Rate limiter", 2, 6, 604_000),
        (None, None, None, 2, 1, 90_000),
    ]


def test_empty_store_and_bad_grouping(store: agentkeep.Store) -> None:
    assert store.stats(by="model") == []
    with pytest.raises(InvalidInput, match="unknown grouping"):
        store.stats(by="week")


def test_sessions_without_a_duration_count_but_have_no_median(store: agentkeep.Store) -> None:
    store.start_session(source="ci")  # running, never seen again
    (row,) = store.stats(by="agent")
    assert pick(row, "key", "sessions", "duration_ms", "median_duration_ms") == (None, 1, 0, None)


def test_cli_json_and_chart(cli: Cli, store: agentkeep.Store) -> None:
    made = sessions(store)
    rows = cli("stats", "--json").json()
    assert len(rows) == 2 and all(set(row) == ROW_KEYS for row in rows)
    assert rows[0]["key"] == "2026-03-01" and rows[0]["by"] == "day"
    by_task = cli("stats", "--by", "task", "--json").json()
    assert [row["key"] for row in by_task] == [str(made["task"].id), None]
    assert len(cli("stats", "--by", "model", "--nl").stdout.splitlines()) == 3
    assert cli("stats", "--since", "1d", "--json").json() == []
    table = cli("stats", "--by", "task")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].startswith("GROUP") and "SESSIONS" in lines[0]
    assert lines[1].startswith(f"#{made['task'].id} Rate limiter")
    assert lines[2].startswith("(no task)")
    assert lines[-1] == "total: 4 sessions, 7 tool calls, 3 failures, 1.2k tokens"
    assert "10m 04s" in lines[1]  # 604 s in total
    assert cli("stats", "--by", "week").exit_code == 2
    assert cli("stats", "--since", "whenever").exit_code == 3
    assert cli("stats", "--since", "1d").stderr.strip() == "no sessions"


def test_chart_bars_scale_to_the_largest_group() -> None:
    from agentkeep.cli.stats_cmd import render_stats

    base = {name: 0 for name in ROW_KEYS} | {"by": "day", "id": None, "title": None}
    rows = [
        base | {"key": "2026-03-01", "sessions": 4, "median_duration_ms": None},
        base | {"key": "2026-03-02", "sessions": 1, "median_duration_ms": None},
    ]
    text = render_stats(rows, chart="sessions", bars=True).splitlines()
    assert text[0].rstrip().endswith("SESSIONS")
    assert text[1].endswith("█" * 32) and text[2].endswith("█" * 8)
    assert "█" not in render_stats(rows, chart="sessions", bars=False)
