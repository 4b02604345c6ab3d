"""The MCP server: the SDK's own client over stdio against a real `agentkeep mcp` process
(tools listed with their annotations, an atomic claim, a conflict, a handoff the CLI then
shows, nothing but JSON-RPC on stdout), the tools in process, the /mcp mount of a real
server, the server without the SDK, and `setup … --mcp`."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

import agentkeep
from agentkeep.mcp.server import ProjectStores, build_server
from agentkeep.services.transcripts import TranscriptService
from test_transcripts import hook_session

from conftest import Cli, git, skip_or_fail
from helpers.server import running_server

TOOLS = {
    "prime": True,  # name -> read-only
    "tasks_ready": True,
    "task_claim": False,
    "task_update": False,
    "task_add": False,
    "note_write": False,
    "notes_latest": True,
    "search": True,
    "session_get": True,
    "doc_list": True,
    "doc_read": True,
    "doc_write": False,
    "context": True,
    "queue_put": False,
    "queue_take": False,
    "queue_ack": False,
    "queue_nack": False,
    "msg_send": False,
    "msg_inbox": True,
    "msg_read": False,
    "msg_ack": False,
}
TIMEOUT = 120  # seconds: a safety net for a stuck server, never a budget


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(TIMEOUT):
            await main()

    anyio.run(bounded)


def text(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert block.type == "text"
    return block.text


def ok(result: CallToolResult) -> Any:
    assert not result.is_error, text(result)
    return json.loads(text(result))


def failed(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, text(result)
    error: dict[str, Any] = json.loads(text(result))
    assert error["schema_version"] == 1 and error["error"]
    return error


def stdio(cwd: Path, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "agentkeep", *args],
        cwd=str(cwd),
        env={**os.environ, **(env or {})},  # the test's AGENTKEEP_HOME, not the user's
    )


# -- stdio, the way an agent runs it ------------------------------------------------------------


def test_an_agent_over_stdio_lists_claims_conflicts_and_hands_off(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    task = cli("tasks", "add", "Port the parser", "--json").json()["task"]
    # Registered the way `setup claude --mcp` does, and started the way Claude Code does:
    # from anywhere, with $CLAUDE_PROJECT_DIR naming the project.
    assert cli("setup", "claude", "--mcp", "--json").exit_code == 0
    entry = json.loads((project / ".mcp.json").read_text())["mcpServers"]["agentkeep"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    params = StdioServerParameters(
        command=entry["command"],
        args=entry["args"],
        cwd=str(elsewhere),
        env={**os.environ, "CLAUDE_PROJECT_DIR": str(project)},
    )

    async def main() -> None:
        async with Client(params) as client:
            listed = (await client.list_tools()).tools
            hints_of = {tool.name: tool.annotations for tool in listed}
            assert {name: h.read_only_hint if h else None for name, h in hints_of.items()} == TOOLS
            for tool in listed:
                hints = tool.annotations
                assert hints is not None and tool.description
                assert hints.destructive_hint is False and hints.open_world_hint is False
                assert hints.idempotent_hint is not None

            ready = ok(await client.call_tool("tasks_ready", {}))
            assert [t["id"] for t in ready] == [task["id"]]
            claimed = ok(
                await client.call_tool("task_claim", {"task_id": task["id"], "assignee": "agent-a"})
            )
            assert claimed["outcome"] == "updated"
            assert claimed["task"]["status"] == "in_progress"
            assert claimed["task"]["assignee"] == "agent-a"
            again = ok(
                await client.call_tool("task_claim", {"task_id": task["id"], "assignee": "agent-a"})
            )
            assert again["outcome"] == "unchanged"  # a retry by the holder

            lost = failed(
                await client.call_tool("task_claim", {"task_id": task["id"], "assignee": "agent-b"})
            )
            assert lost["code"] == "conflict" and "agent-a" in lost["error"]

            handoff = {
                "kind": "handoff",
                "body": "Parser half-done; test_nested fails",
                "task_id": task["id"],
                "idempotency_key": "handoff-1",
            }
            first = ok(await client.call_tool("note_write", handoff))
            retry = ok(await client.call_tool("note_write", handoff))
            assert first["outcome"] == "created" and retry["outcome"] == "already_exists"
            assert retry["note"]["id"] == first["note"]["id"]

    run(main)
    shown = cli("notes", "latest", "handoff", "--json").json()
    assert [n["body"] for n in shown] == ["Parser half-done; test_nested fails"]
    assert shown[0]["task_id"] == task["id"]
    assert cli("tasks", "show", str(task["id"]), "--json").json()["assignee"] == "agent-a"


def test_stdout_carries_only_json_rpc(project: Path, tmp_path: Path) -> None:
    """Raw JSON-RPC over the pipes: every line on stdout is a JSON-RPC message (a tool
    error included); the server exits 0 when the client closes stdin."""
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "task_claim", "arguments": {"task_id": 999}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "task_claim", "arguments": {"task_id": "not a number"}},
        },
    ]
    log = tmp_path / "stderr.log"
    with (
        log.open("wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "agentkeep", "mcp"],
            cwd=project,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        ) as process,
    ):
        try:
            assert process.stdin is not None and process.stdout is not None
            answers: dict[int, dict[str, Any]] = {}
            for request in requests:
                process.stdin.write(json.dumps(request).encode() + b"\n")
                process.stdin.flush()
                while "id" in request and request["id"] not in answers:
                    line = process.stdout.readline()  # one JSON-RPC message per line
                    assert line, log.read_text()
                    message = json.loads(line)
                    assert message["jsonrpc"] == "2.0"
                    if "id" in message:
                        answers[message["id"]] = message
            process.stdin.close()
            rest = process.stdout.read()
            assert process.wait(TIMEOUT) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
    for line in rest.splitlines():
        assert json.loads(line)["jsonrpc"] == "2.0"
    assert len(answers[2]["result"]["tools"]) == len(TOOLS)
    missing = answers[3]["result"]
    assert missing["isError"] is True
    assert json.loads(missing["content"][0]["text"])["code"] == "not_found"
    assert answers[4]["result"]["isError"] is True  # the SDK's argument validation


def test_without_the_sdk_mcp_says_how_to_install_it_and_serve_mounts_nothing(
    project: Path,
) -> None:
    code = (
        "import sys\n"
        "sys.modules['mcp'] = None  # the extra is not installed\n"
        "from pathlib import Path\n"
        "from agentkeep.mcp import http\n"
        "from agentkeep.server.context import ServerContext\n"
        "assert http.routes(ServerContext(store_dir=Path('.'), token='t')) == []\n"
        "from agentkeep.cli import run\n"
        "sys.exit(run(['mcp']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, timeout=TIMEOUT
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == b""
    assert b"pip install 'agentkeep[mcp]'" in done.stderr


# -- the tools, in process --------------------------------------------------------------------


def in_process(
    path: Path | None, body: Callable[[Client], Awaitable[None]], actor: str = "tester@test"
) -> None:
    stores = ProjectStores(path, actor)

    async def main() -> None:
        async with Client(build_server(stores)) as client:
            await body(client)

    try:
        run(main)
    finally:
        stores.close()


def test_task_add_update_and_their_errors(project: Path) -> None:
    async def body(client: Client) -> None:
        add = {
            "title": "Write migration 2",
            "priority": 1,
            "labels": ["db"],
            "idempotency_key": "k",
        }
        first = ok(await client.call_tool("task_add", add))
        retry = ok(await client.call_tool("task_add", add))
        assert (first["outcome"], retry["outcome"]) == ("created", "already_exists")
        assert retry["task"]["id"] == first["task"]["id"]
        task_id = first["task"]["id"]
        blocked = ok(
            await client.call_tool("task_add", {"title": "After it", "depends_on": [task_id]})
        )
        assert blocked["task"]["depends_on"] == [task_id]
        assert [t["id"] for t in ok(await client.call_tool("tasks_ready", {}))] == [task_id]
        waiting = failed(await client.call_tool("task_claim", {"task_id": blocked["task"]["id"]}))
        assert waiting["code"] == "conflict" and "hint" in waiting

        changed = ok(
            await client.call_tool(
                "task_update", {"task_id": task_id, "status": "blocked", "expect_status": "open"}
            )
        )
        assert changed["outcome"] == "updated" and changed["task"]["status"] == "blocked"
        same = ok(await client.call_tool("task_update", {"task_id": task_id, "status": "blocked"}))
        assert same["outcome"] == "unchanged"
        cas = failed(
            await client.call_tool(
                "task_update", {"task_id": task_id, "title": "x", "expect_status": "open"}
            )
        )
        assert cas["code"] == "conflict"
        assert failed(await client.call_tool("task_update", {"task_id": 999}))["code"] == (
            "not_found"
        )
        bad = failed(await client.call_tool("task_add", {"title": "  "}))
        assert bad["code"] == "invalid_input"
        claimed = ok(
            await client.call_tool("task_claim", {"task_id": blocked["task"]["id"], "force": True})
        )
        assert claimed["task"]["assignee"] == "tester@test"  # the actor by default

    in_process(project, body)


def test_session_get_reads_only_its_chunk_of_a_long_transcript(
    store: agentkeep.Store, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.transaction() as tx:
        capture = store.capture_writer(tx)
        session_id = capture.session("claude", "long-1", started_at="2026-08-20T14:02:00.000Z")
        for n in range(25):
            capture.message(
                session_id, seq=n, external_id=f"e{n}", role="user", kind="text", text=f"m{n}"
            )
    # The whole transcript is not read for a chunk (as GET …/transcript pages it).
    whole_reads: list[int] = []
    original = TranscriptService.transcript

    @functools.wraps(original)  # its name: Store's flat method looks it up by name
    def counted(self: TranscriptService, ident: int) -> Any:
        whole_reads.append(ident)
        return original(self, ident)

    monkeypatch.setattr(TranscriptService, "transcript", counted)

    async def body(client: Client) -> None:
        texts: list[str] = []
        after: int | None = 0
        while after is not None:
            page = ok(
                await client.call_tool(
                    "session_get", {"session_id": session_id, "after": after, "limit": 10}
                )
            )
            assert page["entries"] == page["transcript"]["total"] == 25
            assert page["transcript"]["origin"] == "messages"
            texts += [entry["text"] for entry in page["transcript"]["entries"]]
            after = page["transcript"]["next"]
        assert texts == [f"m{n}" for n in range(25)]

    in_process(project, body)
    assert whole_reads == []


def test_notes_search_prime_and_a_transcript_in_chunks(
    store: agentkeep.Store, project: Path
) -> None:
    session_id = hook_session(store)
    entries = len(store.transcript(session_id).entries)
    assert entries > 4

    async def body(client: Client) -> None:
        assert ok(await client.call_tool("notes_latest", {})) == []
        note = {
            "kind": "validation",
            "body": "zebracorn suite green",
            "data": {"command": "make test", "exit_code": 0},
        }
        written = ok(await client.call_tool("note_write", note))
        assert written["note"]["data"]["command"] == "make test"
        ok(await client.call_tool("note_write", {"kind": "handoff", "body": "next: the lexer"}))
        latest = ok(await client.call_tool("notes_latest", {"kind": "validation"}))
        assert [n["id"] for n in latest] == [written["note"]["id"]]

        hits = ok(await client.call_tool("search", {"query": "zebracorn", "kinds": ["note"]}))
        assert [(h["kind"], h["id"]) for h in hits] == [("note", written["note"]["id"])]
        assert "«zebracorn»" in hits[0]["snippet"]
        assert ok(await client.call_tool("search", {"query": "zebracorn", "kinds": ["task"]})) == []
        nul = failed(await client.call_tool("search", {"query": "zebra\u0000corn"}))
        assert nul["code"] == "invalid_input", nul

        primed = await client.call_tool("prime", {"max_chars": 10_000})
        assert not primed.is_error and "next: the lexer" in text(primed)
        assert len(text(primed)) <= 10_000
        short = await client.call_tool("prime", {"max_chars": 200})
        assert len(text(short)) <= 200

        seen: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = ok(
                await client.call_tool(
                    "session_get", {"session_id": session_id, "after": after, "limit": 3}
                )
            )
            assert page["schema_version"] == 1 and page["id"] == session_id
            assert page["entries"] == store.transcript_size(session_id)  # as the CLI
            assert page["transcript"]["total"] == page["entries"] == entries
            chunk = page["transcript"]
            assert chunk["after"] == after and len(chunk["entries"]) <= 3
            seen += chunk["entries"]
            after = chunk["next"]
        assert len(seen) == entries
        assert all("raw" not in entry for entry in seen)
        whole = store.transcript(session_id).entries
        assert [e["id"] for e in seen] == [e.id for e in whole]
        assert any(e["is_error"] for e in seen)  # the failing tool call is there

        missing = failed(await client.call_tool("session_get", {"session_id": 999}))
        assert missing["code"] == "not_found"
        too_many = await client.call_tool("tasks_ready", {"limit": 100_000})
        assert too_many.is_error  # the schema's bound, checked by the SDK

    in_process(project, body)


def test_a_project_without_a_store_answers_with_the_clis_error_until_init(
    tmp_path: Path,
) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    git(root, "init", "-q")

    async def body(client: Client) -> None:
        missing = failed(await client.call_tool("tasks_ready", {}))
        assert missing["code"] == "store_not_found" and "agentkeep init" in missing["hint"]
        agentkeep.init_store(root)
        assert ok(await client.call_tool("tasks_ready", {})) == []

    in_process(root, body)


def test_secrets_in_tool_input_are_redacted_in_store_and_answer(project: Path) -> None:
    from secretgen import generate  # generated at runtime, never committed

    stored, secret = generate()["github-classic"]

    async def body(client: Client) -> None:
        written = ok(
            await client.call_tool("note_write", {"kind": "fact", "body": f"key {stored}"})
        )
        assert secret not in json.dumps(written)
        error = failed(await client.call_tool("task_update", {"task_id": 1, "title": stored}))
        assert secret not in json.dumps(error)

    in_process(project, body)


# -- the /mcp mount of serve ------------------------------------------------------------------


def test_the_http_mount_answers_mcp_on_a_real_server(project: Path) -> None:
    task = agentkeep.open(project)
    with task as opened:
        task_id = opened.add_task("Over HTTP").item.id
    with running_server(project / ".agentkeep") as server:

        async def main() -> None:
            async with httpx2.AsyncClient(headers=server.auth, timeout=60) as http:
                transport = streamable_http_client(server.url + "/mcp", http_client=http)
                async with Client(transport) as client:
                    listed = (await client.list_tools()).tools
                    assert {tool.name for tool in listed} == set(TOOLS)
                    claimed = ok(
                        await client.call_tool(
                            "task_claim", {"task_id": task_id, "assignee": "http-agent"}
                        )
                    )
                    assert claimed["task"]["assignee"] == "http-agent"
                    lost = failed(
                        await client.call_tool("task_claim", {"task_id": task_id, "assignee": "b"})
                    )
                    assert lost["code"] == "conflict"

        run(main)
        # Stateless: no session id is handed out, so there is none to hijack.
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        headers = {
            **server.auth,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Mcp-Protocol-Version": "2025-06-18",
        }
        listed = httpx.post(server.url + "/mcp", json=body, headers=headers, timeout=60)
        assert listed.status_code == 200, listed.text
        assert listed.headers["content-type"].startswith("application/json")
        assert "mcp-session-id" not in listed.headers
        assert len(listed.json()["result"]["tools"]) == len(TOOLS)
        # Stateless and POST only: no endless SSE stream on GET, no session to DELETE.
        sse = {"Accept": "text/event-stream", "Mcp-Protocol-Version": "2025-06-18"}
        for method, auth in (("GET", {}), ("GET", server.auth), ("DELETE", server.auth)):
            with httpx.stream(
                method, server.url + "/mcp", headers={**sse, **auth}, timeout=30
            ) as refused:
                assert refused.status_code == 405, (method, refused.status_code)
                assert "POST" in refused.headers["allow"]
        # DNS rebinding: a page on another name that resolves to 127.0.0.1 is refused.
        rebound = httpx.post(
            server.url + "/mcp", json=body, headers={**headers, "Host": "evil.example"}, timeout=60
        )
        assert rebound.status_code in (400, 403, 421), rebound.text
    with agentkeep.open(project) as opened:
        assert opened.get_task(task_id).assignee == "http-agent"


def test_the_http_mount_refuses_a_call_without_the_token(project: Path) -> None:
    from agentkeep.server import security
    from agentkeep.server.context import ServerContext

    if not security.middleware(ServerContext(store_dir=project / ".agentkeep", token="t")):
        skip_or_fail("the server's security middleware is not on this branch yet")
    with agentkeep.open(project) as opened:
        task_id = opened.add_task("Guarded").item.id
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "task_claim", "arguments": {"task_id": task_id, "assignee": "x"}},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Mcp-Protocol-Version": "2025-06-18",
    }
    with running_server(project / ".agentkeep") as server:
        for auth in ({}, {"Authorization": "Bearer wrong-token"}):
            refused = httpx.post(
                server.url + "/mcp", json=call, headers={**headers, **auth}, timeout=60
            )
            assert refused.status_code in (401, 403), refused.text
    with agentkeep.open(project) as opened:
        assert opened.get_task(task_id).status == "open"  # the tool never ran


# -- setup --mcp ------------------------------------------------------------------------------

OTHER_SERVERS_JSON = """{
  "mcpServers": {
    "docs": {"command": "docs-server", "args": ["--port", "0"]}
  },
  "theme": "dark"
}
"""
OTHER_SERVERS_TOML = """# my Codex settings
model = "gpt-5-codex"   # the model I like

[mcp_servers.docs]
command = "docs-server"

[features]
hooks = true
"""
OPENCODE_JSON = """{
  "$schema": "https://opencode.ai/config.json",
  "model": "anthropic/claude-sonnet-4-5",
  "mcp": {"docs": {"type": "remote", "url": "https://docs.example/mcp"}}
}
"""


def setup_twice_then_remove(cli: Cli, tool: str, path: Path, original: str, *flags: str) -> Any:
    """Install, install again (nothing changes), check, remove (the original bytes come
    back); returns the config as installed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(original)
    first = cli("setup", tool, "--mcp", *flags, "--json")
    assert first.exit_code == 0, first.stderr
    result = first.json()
    assert result["component"] == "mcp" and result["changed"] is True
    assert result["command"].endswith(" mcp")
    installed = path.read_bytes()
    second = cli("setup", tool, "--mcp", *flags, "--json").json()
    assert second["changed"] is False
    assert [f["action"] for f in second["files"]] == ["unchanged"]
    assert path.read_bytes() == installed
    check = cli("setup", tool, "--mcp", *flags, "--check", "--json")
    assert check.exit_code == 0 and check.json()["installed"] is True
    hooks = cli("setup", tool, *flags, "--check", "--json")  # the hooks are another matter
    assert hooks.exit_code == 1
    removed = cli("setup", tool, "--mcp", *flags, "--remove", "--json").json()
    assert [f["action"] for f in removed["files"]] == ["restored"]
    assert path.read_text() == original
    assert cli("setup", tool, "--mcp", *flags, "--check").exit_code == 1
    return installed.decode()


def our_argv(command: str | list[str], args: list[str] | None = None) -> list[str]:
    argv = command if isinstance(command, list) else [command, *(args or [])]
    assert Path(argv[0]).name == "agentkeep" and os.access(argv[0], os.X_OK)
    return argv[1:]


def test_setup_claude_mcp_project_and_user(cli: Cli, project: Path) -> None:
    text_ = setup_twice_then_remove(cli, "claude", project / ".mcp.json", OTHER_SERVERS_JSON)
    config = json.loads(text_)
    assert config["theme"] == "dark"
    assert list(config["mcpServers"]) == ["docs", "agentkeep"]
    assert config["mcpServers"]["docs"] == {"command": "docs-server", "args": ["--port", "0"]}
    ours = config["mcpServers"]["agentkeep"]
    assert ours["type"] == "stdio" and our_argv(ours["command"], ours["args"]) == ["mcp"]

    user = Path(os.environ["CLAUDE_CONFIG_DIR"]) / ".claude.json"
    assert cli("setup", "claude", "--mcp", "--user").exit_code == 0
    assert "agentkeep" in json.loads(user.read_text())["mcpServers"]
    assert cli("setup", "claude", "--mcp", "--user", "--remove").exit_code == 0
    assert not user.exists()  # setup created it, so remove deletes it


def test_setup_codex_mcp(cli: Cli, project: Path) -> None:
    path = Path(os.environ["CODEX_HOME"]) / "config.toml"
    text_ = setup_twice_then_remove(cli, "codex", path, OTHER_SERVERS_TOML)
    config = tomllib.loads(text_)
    assert config["model"] == "gpt-5-codex" and config["features"] == {"hooks": True}
    assert config["mcp_servers"]["docs"] == {"command": "docs-server"}
    ours = config["mcp_servers"]["agentkeep"]
    assert our_argv(ours["command"], ours["args"]) == ["mcp"]
    assert "# the model I like" in text_  # comments kept

    local = project / ".codex" / "config.toml"
    assert cli("setup", "codex", "--mcp", "--project").exit_code == 0
    assert "agentkeep" in tomllib.loads(local.read_text())["mcp_servers"]


def test_setup_opencode_mcp(cli: Cli, project: Path) -> None:
    text_ = setup_twice_then_remove(cli, "opencode", project / "opencode.json", OPENCODE_JSON)
    config = json.loads(text_)
    assert config["model"] == "anthropic/claude-sonnet-4-5"
    assert config["mcp"]["docs"]["type"] == "remote"
    ours = config["mcp"]["agentkeep"]
    assert ours["type"] == "local" and ours["enabled"] is True
    assert our_argv(ours["command"]) == ["mcp"]


MCP_KEY = {"claude": "mcpServers", "opencode": "mcp"}
USER_OPTIONS = ["--store", "/x", "--actor", "c1"]


@pytest.mark.parametrize("tool", ["claude", "codex", "opencode"])
def test_setup_mcp_keeps_the_users_own_options(cli: Cli, project: Path, tool: str) -> None:
    """An entry that already runs ``agentkeep … mcp`` is current: setup may move it to
    this executable, but the user's ``--store``/``--actor`` stay before ``mcp``."""
    old = ["/old/venv/bin/agentkeep", *USER_OPTIONS, "mcp"]
    if tool == "codex":
        path = Path(os.environ["CODEX_HOME"]) / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"[mcp_servers.agentkeep]\ncommand = {json.dumps(old[0])}\n"
            f"args = {json.dumps(old[1:])}\n"
        )
    elif tool == "claude":
        path = project / ".mcp.json"
        entry = {"type": "stdio", "command": old[0], "args": old[1:]}
        path.write_text(json.dumps({"mcpServers": {"agentkeep": entry}}))
    else:
        path = project / "opencode.json"
        entry = {"type": "local", "command": old, "enabled": True}
        path.write_text(json.dumps({"mcp": {"agentkeep": entry}}))
    assert cli("setup", tool, "--mcp").exit_code == 0
    if tool == "codex":
        ours = tomllib.loads(path.read_text())["mcp_servers"]["agentkeep"]
    else:
        ours = json.loads(path.read_text())[MCP_KEY[tool]]["agentkeep"]
    argv = ours["command"] if tool == "opencode" else [ours["command"], *ours["args"]]
    assert argv[0] != old[0]  # the executable is this one
    assert our_argv(argv) == [*USER_OPTIONS, "mcp"]
    again = cli("setup", tool, "--mcp", "--json").json()
    assert again["changed"] is False


def test_setup_mcp_keeps_the_users_additions_and_refuses_a_foreign_entry(
    cli: Cli, project: Path
) -> None:
    path = project / ".mcp.json"
    assert cli("setup", "claude", "--mcp").exit_code == 0
    config = json.loads(path.read_text())
    config["mcpServers"]["agentkeep"]["env"] = {"AGENTKEEP_ACTOR": "claude"}
    path.write_text(json.dumps(config))
    again = cli("setup", "claude", "--mcp", "--json").json()
    assert again["changed"] is False  # the user's env stays, nothing to rewrite

    foreign = {"mcpServers": {"agentkeep": {"command": "somebody-elses-server"}}}
    path.write_text(json.dumps(foreign))
    refused = cli("setup", "claude", "--mcp", "--json")
    assert refused.exit_code == 5 and refused.error()["code"] == "conflict"
    assert json.loads(path.read_text()) == foreign
    assert cli("setup", "claude", "--mcp", "--remove").exit_code == 0
    assert json.loads(path.read_text()) == foreign  # not ours: left alone
