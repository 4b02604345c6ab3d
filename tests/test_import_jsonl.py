"""`agentkeep import jsonl PATH --as metric|event|message`: generic JSONL files and JSON
snapshot directories, incremental, idempotent, never aborted by a bad line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

import agentkeep

from conftest import Cli
from secretgen import fragments, generate


def run(store: agentkeep.Store, path: Path, kind: str, name: str | None = None, **kw: Any) -> Any:
    return store.import_history("jsonl", path=path, options={"kind": kind, "name": name}, **kw)


def write_lines(path: Path, records: list[Any], *, mode: str = "w") -> None:
    with path.open(mode) as f:
        for record in records:
            f.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


def metrics(store: agentkeep.Store) -> list[dict[str, Any]]:
    return [
        {**dict(r), "labels": json.loads(r["labels"])}
        for r in store._rows("SELECT name, value, labels, at FROM metrics ORDER BY id")
    ]


def usage(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "ts": f"2026-01-02T03:04:{n:02d}Z",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "usage": {"input_tokens": 100 + n, "output_tokens": 20, "cache": {"read": 5}},
        "cost": 0.25,
        "stream": True,
        "request_id": f"req_{n}",
        "prompt_preview": "x" * 150,  # too long for a label
        **extra,
    }


def test_proxy_usage_becomes_metrics_with_labels_and_times(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"
    write_lines(path, [usage(1), {**usage(2), "ts": 1767323045123}, {"time": 1767323046}])
    result = run(store, path, "metric")
    assert (result.source, result.files, result.imported, result.messages) == ("jsonl", 1, 1, 8)
    got = metrics(store)
    assert [m["name"] for m in got[:4]] == [
        "usage.usage.input_tokens",
        "usage.usage.output_tokens",
        "usage.usage.cache.read",
        "usage.cost",
    ]
    assert got[0]["value"] == 101 and got[0]["at"] == "2026-01-02T03:04:01.000Z"
    assert got[4]["at"] == "2026-01-02T03:04:05.123Z"  # epoch milliseconds
    assert got[0]["labels"] == {
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "stream": "true",
        "request_id": "req_1",
    }
    assert not any(m["name"].endswith((".ts", ".stream", ".time")) for m in got)
    assert run(store, path, "metric", name="proxy").messages == 8  # another name, another cursor
    assert {m["name"].split(".")[0] for m in metrics(store)} == {"usage", "proxy"}
    cursors = store._rows("SELECT file_key FROM import_cursors ORDER BY id")
    assert [c["file_key"] for c in cursors] == [
        "metric:usage/usage.jsonl",
        "metric:proxy/usage.jsonl",
    ]


def test_appended_lines_and_a_truncated_last_line_are_picked_up(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    path = tmp_path / "usage.jsonl"
    lines = [json.dumps(usage(n)) for n in range(4)]
    path.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:30])  # still being written
    assert run(store, path, "metric").messages == 8
    assert run(store, path, "metric").unchanged == 1
    path.write_text("\n".join(lines[:3]) + "\n")
    assert run(store, path, "metric").messages == 4  # the completed line only
    write_lines(path, [lines[3]], mode="a")
    assert run(store, path, "metric").messages == 4
    # Rewritten from the start (the same records, reordered): read again, nothing twice.
    path.write_text("\n".join(reversed(lines)) + "\n")
    again = run(store, path, "metric")
    assert (again.imported, again.messages) == (1, 0)
    assert len(metrics(store)) == 16


def test_snapshot_directory_reimports_only_changed_files(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    snapshots = tmp_path / "squad-state"
    snapshots.mkdir()
    (snapshots / "agent-a.json").write_text(json.dumps({"type": "state", "agent": "a", "n": 1}))
    (snapshots / "agent-b.json").write_text(json.dumps({"type": "state", "agent": "b", "n": 1}))
    (snapshots / "many.json").write_text(json.dumps([{"kind": "x", "i": 1}, {"kind": "x", "i": 2}]))
    write_lines(snapshots / "log.jsonl", [{"event": "start"}, {"event": "stop"}])
    (snapshots / "notes.txt").write_text("not a snapshot")
    first = run(store, snapshots, "event")
    assert (first.files, first.imported, first.messages) == (4, 4, 6)
    captures = store._rows("SELECT source, event, vendor_event, payload FROM captures ORDER BY id")
    assert {c["source"] for c in captures} == {"jsonl:squad-state"}
    assert sorted(c["vendor_event"] for c in captures) == [
        "start",
        "state",
        "state",
        "stop",
        "x",
        "x",
    ]
    # b changes; a is rewritten with the same content (new mtime, same hash).
    (snapshots / "agent-b.json").write_text(json.dumps({"type": "state", "agent": "b", "n": 2}))
    (snapshots / "agent-a.json").write_text(json.dumps({"type": "state", "agent": "a", "n": 1}))
    os.utime(snapshots / "agent-a.json", ns=(time.time_ns(), time.time_ns() + 10**9))
    second = run(store, snapshots, "event")
    assert (second.imported, second.unchanged, second.messages) == (1, 3, 1)
    state = store._row(
        "SELECT state FROM import_cursors WHERE file_key = 'event:squad-state/agent-b.json'"
    )
    assert state is not None and len(json.loads(state["state"])["sha256"]) == 64
    # Snapshots as metrics: the file's mtime is the time of a record without one.
    metric_run = run(store, snapshots, "metric", name="squad")
    assert metric_run.messages == 4  # n of a and b, i twice; the .jsonl has no numbers
    assert run(store, snapshots, "metric", name="squad").messages == 0


def test_identical_event_lines_are_one_event(store: agentkeep.Store, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    beat = {"type": "heartbeat", "agent": "a"}
    write_lines(
        path,
        [beat, {"type": "deploy", "ok": True}, beat, beat, {"type": "heartbeat", "agent": "b"}],
    )
    assert run(store, path, "event").messages == 3
    rows = store._rows("SELECT vendor_event, payload, at FROM captures ORDER BY id")
    assert [r["vendor_event"] for r in rows] == ["heartbeat", "deploy", "heartbeat"]
    assert json.loads(rows[1]["payload"]) == {"type": "deploy", "ok": True}
    write_lines(path, [beat, {"type": "heartbeat", "ts": 1767225600}], mode="a")
    assert run(store, path, "event").messages == 1  # the repeated beat is not new
    assert store._rows("SELECT at FROM captures ORDER BY id DESC LIMIT 1")[0]["at"] == (
        "2026-01-01T00:00:00.000Z"
    )


def test_message_mode_builds_one_conversation(store: agentkeep.Store, tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    records: list[Any] = [
        {"role": "system", "content": "You review code."},
        {"role": "user", "content": "Review main.py", "ts": "2026-01-01T10:00:00Z"},
        {
            "id": "resp-1",
            "role": "assistant",
            "model": "gpt-5",
            "content": [
                {"type": "thinking", "thinking": "Look at imports"},
                {"type": "text", "text": "Running the linter."},
                {"type": "tool_use", "id": "call-1", "name": "bash", "input": {"cmd": "ruff"}},
            ],
            "usage": {"input_tokens": 50, "output_tokens": 7},
        },
        {
            "role": "tool",
            "tool_call_id": "call-1",
            "content": "E501 line too long",
            "is_error": True,
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call-2", "function": {"name": "read", "arguments": "{}"}}],
        },
        {"role": "assistant", "tool_name": "grep", "input": {"pattern": "TODO"}},
        {"role": "assistant", "tool": "grep", "output": "none found"},
        {"type": "meta", "note": "not a message"},
        "this line is not JSON",
        {"role": "assistant", "text": "Done: one long line."},
    ]
    write_lines(path, records)
    result = run(store, path, "message", name="review-bot")
    assert (result.imported, result.sessions, result.failed, result.messages) == (1, 1, 0, 11)
    session = store._row("SELECT * FROM sessions WHERE source = 'jsonl'")
    assert session is not None and session["external_id"] == "review-bot"
    rows = store._rows(
        "SELECT seq, role, kind, text, tool_name, tool_use_id, is_error, external_id,"
        " input_tokens FROM messages ORDER BY seq, id"
    )
    assert [(r["role"], r["kind"]) for r in rows] == [
        ("system", "text"),
        ("user", "text"),
        ("assistant", "thinking"),
        ("assistant", "text"),
        ("assistant", "tool_use"),
        ("tool", "tool_result"),
        ("assistant", "tool_use"),
        ("assistant", "tool_use"),
        ("assistant", "tool_result"),
        ("system", "raw"),
        ("assistant", "text"),
    ]
    offsets = [0]
    for record in records[:-1]:
        text = record if isinstance(record, str) else json.dumps(record)
        offsets.append(offsets[-1] + len(text.encode()) + 1)
    assert rows[0]["seq"] == 0 and rows[1]["seq"] == offsets[1] and rows[-1]["seq"] == offsets[-1]
    assert [r["external_id"] for r in rows[2:5]] == ["resp-1", "resp-1#1", "resp-1#2"]
    assert [r["input_tokens"] for r in rows[2:5]] == [50, 0, 0]
    assert (rows[5]["tool_use_id"], rows[5]["is_error"]) == ("call-1", 1)
    assert (rows[6]["tool_name"], rows[6]["tool_use_id"]) == ("read", "call-2")
    assert (rows[7]["tool_name"], rows[8]["text"]) == ("grep", "none found")
    totals = store._row("SELECT * FROM sessions WHERE source = 'jsonl'")
    assert totals is not None and (totals["tool_calls"], totals["failures"]) == (3, 1)
    assert totals["input_tokens"] == 50
    cursor = store._row("SELECT state FROM import_cursors")
    assert cursor is not None and json.loads(cursor["state"])["skipped"] == 1
    assert run(store, path, "message", name="review-bot").messages == 0


def test_bad_lines_never_abort_an_import(store: agentkeep.Store, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    with path.open("wb") as f:
        f.write(b'{"ts": 1767225600, "n": 1}\n')
        f.write(b"not json at all\n")
        f.write(b"[1, 2, 3]\n")
        f.write(b'{"n": NaN, "m": Infinity, "k": 2}\n')
        f.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")  # deeper than the parser goes
        f.write(b'{"label": "caf\xc3\xa9 \xff\xfe", "n": 3}\n')  # invalid UTF-8
        f.write(b'{"blob": "' + b"y" * (33 * 1024 * 1024) + b'"}\n')  # over 32 MiB
        f.write(b"\n")
        f.write(b'{"n": 4}\n')
    result = run(store, path, "metric", name="m")
    assert (result.imported, result.failed, result.messages) == (1, 0, 4)
    assert [m["value"] for m in metrics(store)] == [1, 2, 3, 4]
    assert metrics(store)[2]["labels"] == {"label": "café \ufffd\ufffd"}
    state = json.loads(store._row("SELECT state FROM import_cursors")["state"])  # type: ignore[index]
    assert state["skipped"] == 4
    assert state["skipped_by_reason"] == {
        "not JSON": 1,
        "not an object": 1,
        "nested too deeply": 1,
        "line is over 32 MiB": 1,
    }
    # The same file as events: NaN stored as null, the other bad lines skipped likewise.
    assert run(store, path, "event", name="m").messages == 4
    nan = store._row("SELECT payload FROM captures WHERE payload LIKE '%\"k\"%'")
    assert nan is not None and json.loads(nan["payload"]) == {"n": None, "m": None, "k": 2}


def test_a_file_that_is_not_jsonl_is_an_error(store: agentkeep.Store, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    result = run(store, path, "event")
    assert (result.failed, result.messages) == (1, 0)
    assert (
        "no line is a JSON object" in result.errors[0]
        and "event:table/table.csv" in result.errors[0]
    )
    assert run(store, path, "event").failed == 0  # reported once; the cursor moved on


def test_since_skips_older_records(store: agentkeep.Store, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    write_lines(path, [{"date": "2025-12-01", "n": 1}, {"date": "2026-02-01", "n": 2}])
    assert run(store, path, "metric", since="2026-01-01T00:00:00.000Z").messages == 1
    assert [m["value"] for m in metrics(store)] == [2]


def test_secrets_in_records_are_redacted(store: agentkeep.Store, tmp_path: Path) -> None:
    text, secret = generate()["github-classic"]
    path = tmp_path / "events.jsonl"
    write_lines(path, [{"type": "call", "header": f"token {text}", "n": 1}])
    assert run(store, path, "event").messages == 1
    assert run(store, path, "metric").messages == 1
    stored = str(store._rows("SELECT payload FROM captures")) + str(metrics(store))
    assert all(f not in stored for f in fragments(secret))
    assert "REDACTED" in stored.upper()


def test_policies(project: Path, tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "events.jsonl"
    write_lines(path, [{"type": "call", "detail": "private text", "n": 1}])
    assert cli("config", "set", "capture.policy", "metadata").exit_code == 0
    with agentkeep.open(project) as store:
        assert run(store, path, "event").messages == 1
        row = store._row("SELECT vendor_event, payload FROM captures")
        assert row is not None and (row["vendor_event"], row["payload"]) == ("call", None)
    assert cli("config", "set", "capture.policy", "off").exit_code == 0
    with agentkeep.open(project) as store:
        assert run(store, path, "metric").files == 0
        assert store._row("SELECT count(*) AS n FROM metrics")["n"] == 0  # type: ignore[index]


def test_cli_json_shape_and_bad_input(project: Path, tmp_path: Path, cli: Cli) -> None:
    path = tmp_path / "usage.jsonl"
    write_lines(path, [usage(1)])
    done = cli("import", "jsonl", str(path), "--as", "metric", "--json")
    assert done.exit_code == 0, done.stderr
    (result,) = done.json()
    assert set(result) == {
        "source", "files", "imported", "unchanged", "foreign", "failed", "sessions",
        "messages", "bytes", "seconds", "errors",
    }  # fmt: skip
    assert (result["source"], result["files"], result["messages"], result["errors"]) == (
        "jsonl", 1, 4, [],
    )  # fmt: skip
    missing = cli("import", "jsonl", str(tmp_path / "nope.jsonl"), "--as", "metric", "--json")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    directory = cli("import", "jsonl", str(tmp_path), "--as", "message", "--json")
    assert directory.exit_code == 3
    error = directory.error()
    assert error["code"] == "invalid_input" and "is a directory" in error["error"]
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli("import", "jsonl", str(empty), "--as", "event")
    assert nothing.exit_code == 3 and "no .json or .jsonl files" in nothing.stderr
    for bad in (missing, directory, nothing):
        assert "Traceback" not in bad.stdout + bad.stderr
    table = cli("import", "jsonl", str(path), "--as", "event")
    assert table.exit_code == 0 and "jsonl: 1 new entries" in table.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000Z"),
        ("2026-01-02T04:04:05+01:00", "2026-01-02T03:04:05.000Z"),
        ("2026-01-02", "2026-01-02T00:00:00.000Z"),
        (1767323045, "2026-01-02T03:04:05.000Z"),
        (1767323045.5, "2026-01-02T03:04:05.500Z"),
        (1767323045123, "2026-01-02T03:04:05.123Z"),
        (1767323045123456, "2026-01-02T03:04:05.123Z"),
        (1767323045123456789, "2026-01-02T03:04:05.123Z"),
        ("1767323045", "2026-01-02T03:04:05.000Z"),
        (True, None),
        ("yesterday", None),
        (-5, None),
    ],
)
def test_time_fields(value: Any, expected: str | None) -> None:
    from agentkeep.importers.jsonl import parse_time

    assert parse_time(value) == expected
