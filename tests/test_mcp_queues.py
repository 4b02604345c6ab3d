"""The queue, context and message tools of the MCP server (queue_put, queue_take,
queue_ack, queue_nack; context; msg_send, msg_inbox, msg_read, msg_ack) through the SDK's
own client in process, on both backends: the CLI's JSON shapes, idempotent puts and
sends, a conflict once an item is not held, nothing to take as null, the context Markdown
within its budget, a message's delivery states and a secret that never comes back."""

from __future__ import annotations

import json
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


def test_messages_send_inbox_read_ack(store: agentkeep.Store, project: Path) -> None:
    from secretgen import generate  # generated at runtime, never committed

    stored, secret = generate()["github-classic"]

    async def body(client: Client) -> None:
        send = {
            "to": ["reviewer"],
            "subject": "Release",
            "body": f"tag it; key {stored}",
            "message_id": "rel-1",
            "ack_required": True,
        }
        sent = ok(await client.call_tool("msg_send", send))
        again = ok(await client.call_tool("msg_send", send))
        assert (sent["outcome"], again["outcome"]) == ("created", "already_exists")
        assert sent["message"]["id"] == "rel-1"
        assert ok(await client.call_tool("msg_inbox", {})) == []  # the actor's own: empty
        unread = ok(await client.call_tool("msg_inbox", {"agent": "reviewer", "state": "unread"}))
        assert [m["id"] for m in unread] == ["rel-1"]
        read = ok(await client.call_tool("msg_read", {"message_id": "rel-1", "agent": "reviewer"}))
        assert read["subject"] == "Release" and "tag it" in json.dumps(read)
        assert secret not in json.dumps(read)
        assert (
            ok(await client.call_tool("msg_inbox", {"agent": "reviewer", "state": "unread"})) == []
        )
        acked = ok(await client.call_tool("msg_ack", {"message_id": "rel-1", "agent": "reviewer"}))
        assert acked["outcome"] == "updated"
        twice = ok(await client.call_tool("msg_ack", {"message_id": "rel-1", "agent": "reviewer"}))
        assert twice["outcome"] == "unchanged"
        missing = failed(await client.call_tool("msg_read", {"message_id": "rel-1"}))
        assert missing["code"] == "not_found"  # not in the actor's mailbox

    in_process(project, body)
