"""Hostile stored content on every page of the dashboard, in a real Chromium.

Every text the store keeps for a person to read is an attacker's: a task title, a label, a
note, an agent's name, a worktree's branch, a session title, a transcript's text and tool
output, a stream's output, an artifact's name, an event's data. Each holds every payload
(``</script><script>``, ``<img onerror>``, ``javascript:`` and ``data:`` links, ``{{7*7}}``,
CSS that hides the page, RTL overrides and terminal escapes) plus one 5 MB line. Every
page is loaded, its folded parts opened, and the board and the Live view are fed a new
payload through their live streams. Nothing may run: no dialog, the sentinel globals stay
undefined, no element carries an event handler or a ``javascript:``/``data:`` URL, no
script but /static's, no style block of the payload's, no Content-Security-Policy refusal
on the console (a refusal means markup got in and only the CSP stopped it), no page error,
the template text shown as it is, and the page still answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import agentkeep
from browser.conftest import SCREENSHOTS

from helpers.server import RunningServer

SENTINELS = ("__pwned", "__pwned_live")
CSS_MARKER = "agentkeep-css-attack"
PAYLOADS = [
    "</script><script>window.__pwned='script'</script>",
    "<img src=x onerror=\"window.__pwned='onerror';alert('onerror')\">",
    "<svg/onload=alert('svg')>",
    "[click](javascript:alert('md')) <javascript:alert('auto')>",
    "[data](data:text/html,<script>alert('data')</script>)",
    "<a href=\"javascript:alert('a')\">link</a>",
    "{{7*7}} {% if 1 %}jinja{% endif %} ${7*7}",
    f"</style><style>body{{display:none}} /*{CSS_MARKER}*/</style>",
    '<div style="position:fixed;inset:0;background:red">overlay</div>',
    "\u202eevil-rtl\u202c \x1b[2J\x1b]0;title\x07 \x1b[31mred\x1b[0m",
    "\"'><iframe src=javascript:alert('iframe')>",
]
HOSTILE = " ".join(PAYLOADS)
BIG_LINE = "y" * (5 * 1_048_576)

INSPECT = """() => {
    const bad = [];
    const urlAttrs = ["href", "src", "action", "formaction", "xlink:href", "data", "poster"];
    for (const el of document.querySelectorAll("*")) {
        for (const attr of el.attributes) {
            if (attr.name.startsWith("on")) bad.push(el.tagName + " " + attr.name);
            if (urlAttrs.includes(attr.name)
                    && /^\\s*(javascript|data|vbscript):/i.test(attr.value)) {
                bad.push(el.tagName + " " + attr.name + "=" + attr.value.slice(0, 40));
            }
        }
    }
    for (const s of document.querySelectorAll("script")) {
        if (s.type === "application/json") {  // a data block: it must still parse whole
            try { JSON.parse(s.textContent); } catch (e) { bad.push("broken data block"); }
            continue;
        }
        const src = (s.getAttribute("src") || "").replace(location.origin, "");
        if (!src.startsWith("/static/")) bad.push("script " + src + s.textContent.slice(0, 40));
    }
    for (const s of document.querySelectorAll("style")) {
        if (s.textContent.includes(MARKER)) bad.push("style " + s.textContent.slice(0, 40));
    }
    for (const el of document.querySelectorAll("iframe, object, embed, base, frame")) {
        bad.push(el.tagName);
    }
    return {
        bad,
        sentinels: SENTINELS.map((name) => typeof window[name]),
        display: getComputedStyle(document.body).display,
        text: document.body.innerText,
    };
}""".replace("MARKER", json.dumps(CSS_MARKER)).replace("SENTINELS", json.dumps(SENTINELS))


def seed(project: Path) -> dict[str, int]:
    """Every noun the dashboard shows, holding every payload; a 5 MB line in a transcript
    and in a running session's output."""
    with agentkeep.open(project) as store:
        tree = store.add_worktree(project.parent / "wt-attack", branch=f"b/{PAYLOADS[1]}").item
        agent = store.register_agent(f"agent {HOSTILE}", kind="claude", role=HOSTILE).item
        store.update_agent(agent.id, worktree_id=tree.id, heartbeat=True)
        blocker = store.add_task(f"blocker {HOSTILE}").item
        task = store.add_task(
            f"task {HOSTILE}",
            body=HOSTILE,
            labels=PAYLOADS[:3],
            assignee=PAYLOADS[1],
            depends_on=[blocker.id],
        ).item
        store.add_note("handoff", f"handoff {HOSTILE}", task_id=task.id, author=PAYLOADS[0])
        store.add_note("decision", HOSTILE, task_id=task.id)
        running = store.start_session(
            title=f"run {HOSTILE}", model=PAYLOADS[1], agent_id=agent.id, task_id=task.id
        ).item
        out = store.open_stream(running.id, "stdout")
        out.write(f"{HOSTILE}\n{BIG_LINE}\nafter the big line\n".encode())
        out.commit_progress()
        store.add_artifact(
            HOSTILE.encode(), name=PAYLOADS[0], content_type="text/html", session_id=running.id
        )
        store.record_event("custom.attack", entity="custom", data={"text": HOSTILE})
        store.record_metric("attack.metric", 1.0, labels={"l": HOSTILE})
    with agentkeep.open(project) as store, store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "attack-1", title=f"transcript {HOSTILE}", model=PAYLOADS[0])
        seq = iter(range(1, 1000))

        def add(role: str, kind: str, text: str, **extra: Any) -> None:
            n = next(seq)
            w.message(sid, seq=n, external_id=f"e{n}", role=role, kind=kind, text=text, **extra)

        add("user", "text", HOSTILE)
        add("assistant", "thinking", HOSTILE, message_key="m1")
        add("assistant", "text", f"**bold** {HOSTILE}", message_key="m1")
        add(
            "assistant",
            "tool_use",
            json.dumps({"command": HOSTILE}),
            tool_name=PAYLOADS[1],
            tool_use_id="call-1",
            message_key="m1",
        )
        add("user", "tool_result", HOSTILE, tool_use_id="call-1", is_error=True)
        add(
            "assistant",
            "tool_use",
            json.dumps({"file_path": "big"}),
            tool_name="Read",
            tool_use_id="call-2",
            message_key="m2",
        )
        add("user", "tool_result", BIG_LINE, tool_use_id="call-2")
    return {"task": task.id, "running": running.id, "transcript": sid, "stream": out.stream.id}


def screenshot(page: Any, name: str) -> None:
    """The viewport only: a full-page picture of a 5 MB line is a picture of nothing."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def watch(page: Any) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"dialogs": [], "csp": [], "errors": []}

    def on_dialog(dialog: Any) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            seen["csp"].append(message.text[:200])

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: seen["errors"].append(str(error)[:200]))
    return seen


def assert_inert(page: Any, seen: dict[str, list[str]], where: str) -> dict[str, Any]:
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    found: dict[str, Any] = page.evaluate(INSPECT)
    assert found["bad"] == [], (where, found["bad"][:10])
    assert found["sentinels"] == ["undefined"] * len(SENTINELS), where
    assert found["display"] != "none", where
    assert seen == {"dialogs": [], "csp": [], "errors": []}, (where, seen)
    assert page.evaluate("1 + 1") == 2  # the page still answers
    return found


def test_hostile_content_is_inert_on_every_page(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    ids = seed(project)
    pages = [
        ("/", True),
        (f"/board/cards/{ids['task']}", True),
        ("/sessions", False),
        (f"/sessions/{ids['transcript']}", True),
        (f"/sessions/{ids['transcript']}/raw", True),
        (f"/sessions/{ids['running']}", False),
        ("/live", False),
        ("/activity", False),
        ("/search?q=handoff", False),
        ("/search?q=" + "%3Cscript%3E", False),
        ("/usage", False),
        ("/stats", False),
        ("/fleet", False),
    ]
    page = new_page()
    seen = watch(page)
    for path, shows_template in pages:
        response = page.goto(server.url + path)
        assert response is not None and response.status == 200, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        found = assert_inert(page, seen, path)
        if shows_template:
            assert "{{7*7}}" in found["text"], path  # shown as written, never evaluated
        name = "attack" + (path.strip("/").split("?")[0].replace("/", "-") or "-board")
        screenshot(page, name)


def test_payloads_arriving_live_stay_inert(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    """The board re-renders a card from a task event, the Live view appends a session's
    new output: both with a payload that arrives after the page loaded."""
    ids = seed(project)
    live_payload = "<img src=x onerror=\"window.__pwned_live=1;alert('live')\"> live-marker"
    board = new_page()
    seen_board = watch(board)
    board.goto(server.url + "/")
    board.wait_for_selector("html[data-live='open']", state="attached")
    tail = new_page()
    seen_tail = watch(tail)
    tail.goto(server.url + "/live")
    tail.wait_for_selector(f"#session-{ids['running']}")
    with agentkeep.open(project) as store:
        store.update_task(ids["task"], title=f"renamed {live_payload}")
        writer = store.open_stream(ids["running"], "stderr")
        writer.write(f"{live_payload}\n".encode())
        writer.commit_progress()
        board.wait_for_function(
            "(id) => (document.getElementById('task-' + id) || {}).textContent"
            "?.includes('live-marker')",
            arg=ids["task"],
        )
        tail.wait_for_function(
            "(id) => document.getElementById('session-' + id).textContent.includes('live-marker')",
            arg=ids["running"],
        )
        writer.close()
    assert_inert(board, seen_board, "board, live")
    assert_inert(tail, seen_tail, "live view, live")
    screenshot(board, "attack-board-live")
    screenshot(tail, "attack-live-tail")


def unguarded(chromium: Any) -> Any:
    """A second Chromium that resolves evil.example (and localhost.evil.example) to
    127.0.0.1, as a rebinding DNS server would after its first answer, with its own guard
    for local addresses (Local Network Access) off: it would stop these requests before
    they left, and Firefox has none. The server must hold by itself."""
    from browser.conftest import CHROMIUM, CHROMIUM_ARGS

    rules = "--host-resolver-rules=MAP evil.example 127.0.0.1, MAP localhost.evil.example 127.0.0.1"
    guards = (
        "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
        "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults"
    )
    return chromium.browser_type.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, rules, guards]
    )


REBIND = """async () => {
    const out = {};
    const read = async (name, promise) => {
        try {
            const r = await promise;
            out[name] = [r.status, await r.text()];
        } catch (e) {
            out[name] = [0, String(e)];
        }
    };
    await read("tasks", fetch("/api/v1/tasks"));
    await read("task", fetch("/api/v1/tasks/1"));
    await read("post", fetch("/api/v1/tasks", {method: "POST",
        headers: {"Content-Type": "application/json", "X-Agentkeep-CSRF": "1"},
        body: JSON.stringify({title: "rebound"})}));
    await read("mcp", fetch("/mcp", {method: "POST",
        headers: {"Content-Type": "application/json",
                  "Accept": "application/json, text/event-stream"},
        body: JSON.stringify({jsonrpc: "2.0", id: 1, method: "tools/list"})}));
    await read("health", fetch("/-/health"));
    await read("board", fetch("/"));
    out.stream = await new Promise((resolve) => {
        const source = new EventSource("/api/v1/events/stream?after=0");
        source.onmessage = (e) => { source.close(); resolve("message " + e.data); };
        source.onerror = () => { source.close(); resolve("error"); };
    });
    return out;
}"""


def test_a_rebound_name_reaches_the_socket_but_never_the_app(
    chromium: Any, server: RunningServer, project: Path
) -> None:
    """DNS rebinding in a real browser: Chromium resolves evil.example to 127.0.0.1 (as a
    rebinding DNS server would after the first answer), so a page of evil.example's origin
    sends same-origin requests, which it may read, to the server's socket. All are 421 and
    carry no data; nothing is written."""
    with agentkeep.open(project) as store:
        store.add_task("secret task title")
    browser = unguarded(chromium)
    try:
        for name in ("evil.example", "localhost.evil.example"):
            page = browser.new_page()
            page.set_default_timeout(20_000)
            origin = f"http://{name}:{server.port}"
            page.route(
                origin + "/evil.html",
                lambda route: route.fulfill(body="<p>evil</p>", content_type="text/html"),
            )
            page.goto(origin + "/evil.html")
            outcome = page.evaluate(REBIND)
            for key in ("tasks", "task", "post", "mcp", "health", "board"):
                status, text = outcome[key]
                assert status == 421, (name, key, status, text[:200])
                assert "misdirected_request" in text and "secret task" not in text
            assert outcome["stream"] == "error", outcome["stream"]
            direct = page.goto(origin + "/?token=" + server.token)
            assert direct is not None and direct.status == 421
            assert page.context.cookies() == []
            page.close()
    finally:
        browser.close()
    with agentkeep.open(project) as store:
        assert [t.title for t in store.list_tasks()] == ["secret task title"]


def test_no_page_can_be_framed_by_another_site(
    chromium: Any, server: RunningServer, project: Path
) -> None:
    """Clickjacking: a page of another local origin frames the dashboard, with the cookie
    (another port is the same site, so SameSite=Strict sends it). The frames stay empty."""
    with agentkeep.open(project) as store:
        store.add_task("framed task")
    evil = "http://127.0.0.1:1/frame.html"
    paths = ("/", "/sessions", "/api/v1/tasks", "/static/app.css")
    frames = "".join(f'<iframe src="{server.url}{path}"></iframe>' for path in paths)
    browser = unguarded(chromium)
    try:
        context = browser.new_context()
        context.add_cookies([{"name": "agentkeep_token", "value": server.token, "url": server.url}])
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.route(evil, lambda route: route.fulfill(body=frames, content_type="text/html"))
        answered: list[str] = []
        page.on(
            "response", lambda r: answered.append(r.url) if r.url.startswith(server.url) else None
        )
        page.goto(evil, wait_until="load")
        assert {server.url + path for path in paths} <= set(answered)  # they were sent
        children = [frame for frame in page.frames if frame != page.main_frame]
        assert len(children) == len(paths)
        for frame in children:
            assert "framed task" not in _text(frame), frame.url
            assert not _text(frame).strip() or frame.url.startswith("chrome-error"), frame.url
    finally:
        browser.close()


def _text(frame: Any) -> str:
    try:
        return str(frame.evaluate("document.documentElement.innerText"))
    except Exception:  # a blocked frame has no document to read
        return ""
