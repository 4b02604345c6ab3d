"""The document tools of the MCP server (doc_list, doc_read, doc_write; search of kind
doc) through the SDK's own client in process, on both backends: the CLI's JSON shapes,
a stale ``expect`` refused with what changed, links and backlinks, and secrets that never
reach the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp import Client

import agentkeep
from test_mcp import failed, in_process, ok


def test_write_read_list_and_a_stale_expect(store: agentkeep.Store, project: Path) -> None:
    async def body(client: Client) -> None:
        made = ok(
            await client.call_tool(
                "doc_write",
                {
                    "ref": "decisions/storage",
                    "fields": {"type": "decision", "status": "accepted", "tags": ["db"]},
                    "body": "# Storage\n\nFiles win; see [[specs/format]].\n",
                    "create": True,
                },
            )
        )
        assert made["schema_version"] == 1 and made["outcome"] == "created"
        first = made["doc"]["etag"]
        again = ok(
            await client.call_tool(
                "doc_write",
                {
                    "ref": "decisions/storage",
                    "fields": {"type": "decision", "status": "accepted", "tags": ["db"]},
                    "body": "# Storage\n\nFiles win; see [[specs/format]].\n",
                    "create": True,
                },
            )
        )
        assert again["outcome"] == "already_exists"
        spec = {"ref": "specs/format", "body": "# Format\n\nfront matter, then Markdown\n"}
        ok(await client.call_tool("doc_write", spec))
        ok(
            await client.call_tool(
                "doc_write", {"ref": "specs/json", "fields": {"a": 1}, "format": "json"}
            )
        )

        read = ok(await client.call_tool("doc_read", {"ref": "decisions/storage"}))
        assert read["etag"] == first and read["fields"]["status"] == "accepted"
        assert read["body"].startswith("# Storage")
        assert read["links"] == [
            {
                "relation": "links_to",
                "target": "specs/format",
                "ref": "specs/format",
                "path": ".agentkeep/docs/specs/format.md",
            }
        ]
        back = ok(await client.call_tool("doc_read", {"ref": "specs/format"}))
        assert [b["ref"] for b in back["backlinks"]] == ["decisions/storage"]
        as_json = ok(await client.call_tool("doc_read", {"ref": "specs/json"}))
        assert as_json["doc"]["format"] == "json" and as_json["fields"] == {"a": 1}

        def refs(rows: list[dict[str, Any]]) -> list[str]:
            return [row["ref"] for row in rows]

        listed = ok(await client.call_tool("doc_list", {}))
        assert refs(listed) == ["decisions/storage", "specs/format", "specs/json"]
        assert refs(ok(await client.call_tool("doc_list", {"namespace": "specs"}))) == [
            "specs/format",
            "specs/json",
        ]
        assert refs(ok(await client.call_tool("doc_list", {"type": "decision"}))) == [
            "decisions/storage"
        ]
        assert refs(ok(await client.call_tool("doc_list", {"tag": "db"}))) == ["decisions/storage"]
        where = {"where": {"status": "accepted"}}
        assert refs(ok(await client.call_tool("doc_list", where))) == ["decisions/storage"]
        assert refs(ok(await client.call_tool("doc_list", {"limit": 1}))) == ["decisions/storage"]

        # Someone else changes it; a write naming the etag read before is refused.
        store.docs.write_doc("decisions/storage", body="changed elsewhere\n")
        stale = failed(
            await client.call_tool(
                "doc_write", {"ref": "decisions/storage", "body": "mine\n", "expect": first}
            )
        )
        assert stale["code"] == "stale_write" and "hint" in stale
        current = store.docs.read_doc("decisions/storage").etag
        assert stale["details"]["current_etag"] == current
        assert store.docs.read_doc("decisions/storage").body == "changed elsewhere\n"
        merged = ok(
            await client.call_tool(
                "doc_write", {"ref": "decisions/storage", "body": "merged\n", "expect": current}
            )
        )
        assert merged["outcome"] == "updated"
        assert store.docs.read_doc("decisions/storage").fields["status"] == "accepted"  # kept

        history = store.docs.history("decisions/storage")
        old = ok(
            await client.call_tool(
                "doc_read", {"ref": "decisions/storage", "version": history[0].id}
            )
        )
        assert old["etag"] == first and "links" not in old

        hits = ok(await client.call_tool("search", {"query": "merged", "kinds": ["doc"]}))
        assert [h["kind"] for h in hits] == ["doc"]

        missing = failed(await client.call_tool("doc_read", {"ref": "decisions/nope"}))
        assert missing["code"] == "not_found"
        bad = failed(await client.call_tool("doc_write", {"ref": "no-namespace", "body": "x"}))
        assert bad["code"] == "invalid_input"
        exists = failed(
            await client.call_tool(
                "doc_write", {"ref": "specs/format", "body": "x", "create": True}
            )
        )
        assert exists["code"] == "conflict"
        absent = failed(
            await client.call_tool("doc_write", {"ref": "specs/none", "body": "x", "create": False})
        )
        assert absent["code"] == "not_found"

    in_process(project, body)


def test_secrets_written_by_an_agent_never_reach_the_file(
    store: agentkeep.Store, project: Path
) -> None:
    from secretgen import generate  # generated at runtime, never committed

    stored, secret = generate()["github-classic"]

    async def body(client: Client) -> None:
        written = ok(
            await client.call_tool(
                "doc_write", {"ref": "notes/keys", "fields": {"k": stored}, "body": f"use {stored}"}
            )
        )
        assert secret not in json.dumps(written)
        path = project / written["doc"]["path"]
        assert secret not in path.read_text()
        assert secret not in json.dumps(
            ok(await client.call_tool("doc_read", {"ref": "notes/keys"}))
        )

    in_process(project, body)
