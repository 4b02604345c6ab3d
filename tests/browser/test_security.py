"""The token bootstrap and the cross-site rules in a real Chromium (server/security.py):
what a browser really sends, not what a test client is told to send."""

from __future__ import annotations

from typing import Any

import agentkeep

from helpers.server import RunningServer

POST_TASK = """async (csrf) => {
    const headers = {"Content-Type": "application/json"};
    if (csrf) headers["X-Agentkeep-CSRF"] = "1";
    const response = await fetch("/api/v1/tasks", {
        method: "POST", headers, body: JSON.stringify({title: "from the page"}),
    });
    return response.status;
}"""


def test_the_bootstrap_sets_an_httponly_cookie_and_the_page_can_then_post(
    chromium: Any, server: RunningServer
) -> None:
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{server.url}/?token={server.token}")
        assert page.url == server.url + "/"  # the token left the address bar
        [cookie] = [c for c in context.cookies() if c["name"] == "agentkeep_token"]
        assert cookie["value"] == server.token
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        # A page of the server's origin (fulfilled here: the dashboard's pages are built
        # elsewhere; the API's own JSON answers are sandboxed documents in a tab).
        blank = server.url + "/blank-test-page"
        page.route(blank, lambda route: route.fulfill(body="<p>x</p>", content_type="text/html"))
        page.goto(blank)
        assert "agentkeep_token" not in page.evaluate("document.cookie")
        assert page.evaluate(POST_TASK, False) == 403  # the cookie alone is not enough
        assert page.evaluate(POST_TASK, True) not in (401, 403, 415, 421)
    finally:
        context.close()


def test_a_form_posted_from_another_local_origin_is_refused(
    new_page: Any, server: RunningServer
) -> None:
    """Another port on 127.0.0.1 is the same *site*, so the SameSite=Strict cookie goes
    along; the Origin check (and the JSON-only and CSRF-header rules) must stop it."""
    evil = "http://127.0.0.1:1/evil.html"  # served by the test, never by a real server
    form = (
        f'<form method="post" action="{server.url}/api/v1/tasks" enctype="text/plain">'
        '<input name=\'{"title": "pwned", "x": "\' value=\'"}\'></form>'
        "<script>document.forms[0].submit()</script>"
    )
    page = new_page()
    page.route(evil, lambda route: route.fulfill(body=form, content_type="text/html"))
    with page.expect_response(server.url + "/api/v1/tasks") as answer:
        page.goto(evil)
    assert answer.value.status == 403
    assert answer.value.request.headers.get("origin") == "http://127.0.0.1:1"
    with agentkeep.open(server.ctx.store_dir) as store:
        assert store.list_tasks() == []


def test_a_cross_origin_fetch_gets_no_cors_and_changes_nothing(
    new_page: Any, server: RunningServer
) -> None:
    evil = "http://localhost:1/evil.html"
    page = new_page()
    page.route(evil, lambda route: route.fulfill(body="<p>evil</p>", content_type="text/html"))
    page.goto(evil)
    outcome = page.evaluate(
        """async (url) => {
            try {
                const r = await fetch(url, {method: "POST", credentials: "include",
                    headers: {"Content-Type": "application/json", "X-Agentkeep-CSRF": "1"},
                    body: JSON.stringify({title: "pwned"})});
                return "status " + r.status;
            } catch (e) { return "blocked"; }
        }""",
        server.url + "/api/v1/tasks",
    )
    assert outcome == "blocked"  # the preflight found no CORS headers
    with agentkeep.open(server.ctx.store_dir) as store:
        assert store.list_tasks() == []
