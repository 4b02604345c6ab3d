"""The queue and context tools of the MCP server (queue_put, queue_take, queue_ack,
queue_nack; context) through the SDK's own client in process, on both backends: the
CLI's JSON shapes, idempotent puts, a conflict once an item is not held, nothing to take
as null, and the context Markdown within its budget."""

from __future__ import annotations

from pathlib import Path

from mcp import Client

import agentkeep
from test_mcp import failed, in_process, ok, text


def test_put_take_ack_nack(store: agentkeep.Store, project: Path) -> None:
    async def body(client: Client) -> None:
        put = {"queue": "builds", "body": "make all", "idempotency_key": "b1"}
        first = ok(await client.call_tool("queue_put", put))
        again = ok(await client.call_tool("queue_put", put))
        assert (first["outcome"], again["outcome"]) == ("created", "already_exists")
        assert again["item"]["id"] == first["item"]["id"]
        ok(await client.call_tool("queue_put", {"queue": "builds", "body": "make docs"}))

        taken = ok(await client.call_tool("queue_take", {"queue": "builds", "lease": 60}))
        assert (taken["body"], taken["state"], taken["attempts"]) == ("make all", "taken", 1)
        stale = failed(
            await client.call_tool(
                "queue_ack", {"queue": "builds", "item_id": taken["id"], "attempt": 2}
            )
        )
        assert stale["code"] == "conflict"
        acked = ok(
            await client.call_tool(
                "queue_ack", {"queue": "builds", "item_id": taken["id"], "attempt": 1}
            )
        )
        assert acked["outcome"] == "updated" and acked["item"]["state"] == "done"
        twice = failed(
            await client.call_tool("queue_ack", {"queue": "builds", "item_id": taken["id"]})
        )
        assert twice["code"] == "conflict"

        second = ok(await client.call_tool("queue_take", {"queue": "builds"}))
        failed_item = ok(
            await client.call_tool(
                "queue_nack",
                {"queue": "builds", "item_id": second["id"], "max_attempts": 1, "reason": "x"},
            )
        )
        assert failed_item["item"]["state"] == "failed"
        assert ok(await client.call_tool("queue_take", {"queue": "builds"})) is None
        assert [i.state for i in store.queues.items("builds")] == ["failed", "done"]
        bad = failed(await client.call_tool("queue_put", {"queue": "Bad Name", "body": "x"}))
        assert bad["code"] == "invalid_input"
        assert (await client.call_tool("queue_take", {"queue": "builds", "lease": 0})).is_error

    in_process(project, body)


def test_context_returns_what_to_read_within_the_budget(
    store: agentkeep.Store, project: Path
) -> None:
    (project / "AGENTS.md").write_text("# Agents\n\nRun the zebracorn suite before a push.\n")
    store.docs.write_doc(
        "specs/login", body="# Login\n\n## Tokens\n\nA zebracorn token expires after an hour.\n"
    )

    async def body(client: Client) -> None:
        answer = await client.call_tool("context", {"query": "zebracorn token", "budget": 4000})
        assert not answer.is_error, text(answer)
        markdown = text(answer)
        assert "zebracorn token expires" in markdown
        assert len(markdown) <= 4000
        short = failed(await client.call_tool("context", {"task_id": 999}))
        assert short["code"] == "not_found"

    in_process(project, body)
