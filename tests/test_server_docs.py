"""Documents over the HTTP API (/api/v1/docs) against a real server on a temp store: the
CLI's JSON shapes, etags and If-Match (412 with what changed), recoverable deletes, locks
of a live process (409) and of a killed one (taken over), the write rules of every other
route, and secrets that never reach the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentkeep
from agentkeep.documents.leases import Holder, process_start

from helpers.server import RunningServer, running_server

SAFETY = 60.0  # seconds: a safety net for a stuck child, never a budget


@pytest.fixture
def server(project: Path) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1", headers=server.auth, timeout=30) as c:
        yield c


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    found: dict[str, Any] = response.json()
    assert found["schema_version"] == 1 and found["code"] == code, found
    assert isinstance(found["error"], str) and found["error"]
    return found


def etag(response: httpx.Response) -> str:
    value = response.headers["etag"]
    assert value.startswith('"') and value.endswith('"'), value
    return value.strip('"')


def test_create_show_list_and_filters(http: httpx.Client, store: agentkeep.Store) -> None:
    made = http.post(
        "/docs",
        json={
            "ref": "decisions/2026/storage",
            "fields": {"type": "decision", "status": "accepted", "tags": ["db", "files"]},
            "body": "# Storage\n\nFiles are the truth. See [[decisions/2026/index]].\n",
        },
    )
    created = ok(made, 201)
    assert created["schema_version"] == 1 and created["outcome"] == "created"
    doc = created["doc"]
    assert (doc["ref"], doc["type"], doc["tags"]) == (
        "decisions/2026/storage",
        "decision",
        ["db", "files"],
    )
    assert etag(made) == doc["etag"]
    # The same content again is already_exists; another content is a conflict.
    again = http.post(
        "/docs",
        json={
            "ref": "decisions/2026/storage",
            "fields": {"type": "decision", "status": "accepted", "tags": ["db", "files"]},
            "body": "# Storage\n\nFiles are the truth. See [[decisions/2026/index]].\n",
        },
    )
    assert ok(again)["outcome"] == "already_exists"
    refused(
        http.post("/docs", json={"ref": "decisions/2026/storage", "body": "x"}), 409, "conflict"
    )
    ok(http.post("/docs", json={"ref": "notes/plain", "body": "just text\n"}), 201)
    ok(
        http.post(
            "/docs",
            json={"ref": "decisions/other", "fields": {"type": "decision", "status": "draft"}},
        ),
        201,
    )

    shown = http.get("/docs/decisions/2026/storage")
    content = ok(shown)
    assert content["schema_version"] == 1 and content["etag"] == doc["etag"] == etag(shown)
    assert content["fields"]["status"] == "accepted"
    assert content["body"].startswith("# Storage")
    assert content["doc"]["path"] == ".agentkeep/docs/decisions/2026/storage.md"
    assert content["text"] == (store.root / content["doc"]["path"]).read_text()
    # Also by its path in the project.
    assert ok(http.get("/docs/.agentkeep/docs/decisions/2026/storage.md"))["etag"] == doc["etag"]

    def refs(**params: Any) -> list[str]:
        return [row["ref"] for row in ok(http.get("/docs", params=params))["rows"]]

    assert refs() == ["decisions/2026/storage", "decisions/other", "notes/plain"]
    assert refs(namespace="notes") == ["notes/plain"]
    assert refs(type="decision") == ["decisions/2026/storage", "decisions/other"]
    assert refs(tag="files") == ["decisions/2026/storage"]
    assert refs(where="status=draft") == ["decisions/other"]
    assert refs(where=["type=decision", "status=accepted"]) == ["decisions/2026/storage"]
    assert refs(problems="true") == []
    refused(http.get("/docs", params={"where": "no-equals"}), 400, "invalid_input")
    refused(http.get("/docs", params={"origin": "elsewhere"}), 400, "invalid_input")
    # Pages walk every document once, in ref order.
    first = ok(http.get("/docs", params={"limit": 2}))
    assert [r["ref"] for r in first["rows"]] == refs()[:2] and first["next"]
    second = ok(http.get("/docs", params={"limit": 2, "cursor": first["next"]}))
    assert [r["ref"] for r in second["rows"]] == ["notes/plain"] and second["next"] is None


def test_if_match_refuses_a_stale_write_with_what_changed(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    made = http.put("/docs/specs/login", json={"fields": {"owner": "ann"}, "body": "v1\n"})
    assert ok(made, 201)["outcome"] == "created"
    first = etag(made)
    # Someone else writes it (through the library, as the CLI would).
    store.docs.write_doc("specs/login", body="v2 from someone else\n", expect=first)
    stale = http.put("/docs/specs/login", json={"body": "mine\n"}, headers={"If-Match": first})
    error = refused(stale, 412, "stale_write")
    current = store.docs.read_doc("specs/login").etag
    assert error["details"]["expected_etag"] == first
    assert error["details"]["current_etag"] == current
    assert error["details"]["fields"] == ["owner"]
    assert store.docs.read_doc("specs/login").body == "v2 from someone else\n"  # untouched
    # Read again, merge, write with the new etag: the write wins; fields are kept.
    merged = http.put(
        "/docs/specs/login", json={"body": "merged\n"}, headers={"If-Match": f'W/"{current}"'}
    )
    assert ok(merged)["outcome"] == "updated"
    assert store.docs.read_doc("specs/login").fields == {"owner": "ann"}
    # The same content again changes nothing; force writes over a stale etag.
    same = http.put(
        "/docs/specs/login", json={"body": "merged\n"}, headers={"If-Match": etag(merged)}
    )
    assert ok(same)["outcome"] == "unchanged"
    forced = http.put(
        "/docs/specs/login", json={"body": "forced\n", "force": True}, headers={"If-Match": first}
    )
    assert ok(forced)["outcome"] == "updated"
    # If-Match: * only for an existing document, If-None-Match: * only for a new one.
    refused(
        http.put("/docs/specs/nope", json={"body": "x"}, headers={"If-Match": "*"}),
        404,
        "not_found",
    )
    refused(
        http.put("/docs/specs/login", json={"body": "x"}, headers={"If-None-Match": "*"}),
        409,
        "conflict",
    )
    ok(http.put("/docs/specs/new", json={"body": "x\n"}, headers={"If-None-Match": "*"}), 201)
    refused(http.put("/docs/specs/login", json={"body": 5}), 400, "invalid_input")
    refused(http.put("/docs/specs/login", json={"bdy": "x"}), 400, "invalid_input")
    refused(
        http.put("/docs/specs/login", json={"body": "x"}, headers={"If-Match": "a, b"}),
        400,
        "invalid_input",
    )
    refused(http.put("/docs/nonamespace", json={"body": "x"}), 400, "invalid_input")
    refused(http.put("/docs/specs/..%2F..%2Fescape", json={"body": "x"}), 400, "invalid_input")
    assert not (store.root.parent / "escape.md").exists()


@pytest.mark.parametrize(
    "ref",
    [
        ".agentkeep/config.toml",
        ".agentkeep/docs/..%2Fconfig.toml",
        "README.md",
        "%2Fetc%2Fpasswd.md",
        ".agentkeep/state.db",
        "notes/..%2F..%2F..%2Fescape.md",
    ],
)
def test_a_write_reaches_only_a_document_root(http: httpx.Client, project: Path, ref: str) -> None:
    """A ref that is a path outside the document roots (the store's own files, the
    project's, anything outside) is refused and nothing is written."""
    config = project / ".agentkeep" / "config.toml"
    before = config.read_bytes()
    answer = http.put(f"/docs/{ref}", json={"body": "owned\n"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_input"
    assert config.read_bytes() == before
    assert not (project / "README.md").exists() and not (project.parent / "escape.md").exists()


def test_delete_is_recoverable_and_history_lists_every_version(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    one = etag(http.put("/docs/handbook/setup", json={"body": "one\n"}))
    two = http.put("/docs/handbook/setup", json={"body": "two\n"}, headers={"If-Match": one})
    refused(http.delete("/docs/handbook/setup", headers={"If-Match": one}), 412, "stale_write")
    gone = ok(http.delete("/docs/handbook/setup", headers={"If-Match": etag(two)}))
    assert gone["outcome"] == "deleted" and gone["doc"]["ref"] == "handbook/setup"
    assert not (store.root / gone["doc"]["path"]).exists()
    refused(http.get("/docs/handbook/setup"), 404, "not_found")
    refused(http.delete("/docs/handbook/setup"), 404, "not_found")

    history = ok(http.get("/docs/handbook/setup/history"))
    assert [v["change"] for v in history["rows"]] == ["created", "edited", "deleted"]
    assert history["next"] is None
    first_version = history["rows"][0]["id"]
    old = ok(http.get("/docs/handbook/setup", params={"version": first_version}))
    assert (old["body"], old["version"]) == ("one\n", first_version)
    refused(http.get("/docs/handbook/setup", params={"version": 999999}), 404, "not_found")
    refused(http.get("/docs/handbook/setup", params={"version": "x"}), 400, "invalid_input")

    back = http.post("/docs/handbook/setup/restore", json={})
    assert ok(back, 201)["outcome"] == "created"
    assert store.docs.read_doc("handbook/setup").body == "two\n"
    older = ok(http.post("/docs/handbook/setup/restore", json={"version": first_version}))
    assert older["outcome"] == "updated"
    assert store.docs.read_doc("handbook/setup").body == "one\n"
    changes = [v["change"] for v in ok(http.get("/docs/handbook/setup/history"))["rows"]]
    assert changes == ["created", "edited", "deleted", "restored", "restored"]
    refused(http.get("/docs/nothing/here/history"), 404, "not_found")


def test_a_live_holders_lock_refuses_a_write_and_a_killed_ones_is_taken_over(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    ok(http.put("/docs/plans/q3", json={"body": "draft\n"}), 201)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        holder = Holder(Holder.me().host, child.pid, process_start(child.pid))
        store.docs.lock("plans/q3", holder=holder)
        locked = refused(http.put("/docs/plans/q3", json={"body": "mine\n"}), 409, "conflict")
        assert str(child.pid) in locked["error"]
        refused(http.delete("/docs/plans/q3"), 409, "conflict")
        assert store.docs.read_doc("plans/q3").body == "draft\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=SAFETY)
        assert child.stdin is not None
        child.stdin.close()
    assert ok(http.put("/docs/plans/q3", json={"body": "mine\n"}))["outcome"] == "updated"
    kinds = [e.kind for e in store.events(entity="doc")]
    assert "doc.lock_reclaimed" in kinds


def test_writes_need_the_token_and_same_origin(
    server: RunningServer, store: agentkeep.Store
) -> None:
    url = server.url + "/api/v1/docs/notes/a"
    assert httpx.put(url, json={"body": "x"}).status_code == 401
    assert (
        httpx.put(url, json={"body": "x"}, headers={"Authorization": "Bearer wrong"}).status_code
        == 403
    )
    cookie = {"Cookie": f"agentkeep_token={server.token}"}
    assert httpx.put(url, json={"body": "x"}, headers=cookie).status_code == 403  # no CSRF header
    assert httpx.delete(url).status_code == 401
    assert httpx.post(server.url + "/api/v1/docs", json={"ref": "notes/a"}).status_code == 401
    assert store.docs.list_docs() == []
    answer = httpx.put(url, json={"body": "x\n"}, headers={**cookie, "X-Agentkeep-CSRF": "1"})
    assert answer.status_code == 201
    # Reads need none from loopback.
    assert httpx.get(url).status_code == 200


def test_secrets_written_through_the_api_never_reach_the_file(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    from secretgen import generate  # generated at runtime, never committed

    stored, secret = generate()["github-classic"]
    written = ok(
        http.put(
            "/docs/notes/creds",
            json={"fields": {"token": stored}, "body": f"the key is {stored}\n"},
        ),
        201,
    )
    path = store.root / written["doc"]["path"]
    assert secret not in path.read_text()
    shown = http.get("/docs/notes/creds")
    assert secret not in shown.text
    assert secret not in http.get("/docs/notes/creds/history").text


def test_search_finds_documents(http: httpx.Client) -> None:
    ok(http.put("/docs/specs/auth", json={"body": "# Login\n\nThe zeppelin handshake.\n"}), 201)
    hits = ok(http.get("/search", params={"q": "zeppelin", "kind": "doc"}))["rows"]
    assert [h["kind"] for h in hits] == ["doc"]


# -- the Documents page of the dashboard --------------------------------------------------

SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=2>"
JS_LINK = "[click me](javascript:window.__pwned=3)"


def page(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=30)


def test_documents_page_lists_filters_and_shows_a_document_safely(
    server: RunningServer, store: agentkeep.Store
) -> None:
    store.docs.write_doc(
        "specs/auth",
        fields={"type": "spec", "title": f"Auth {SCRIPT}", "tags": ["security"], "owner": IMG},
        body=f"# Login\n\n{SCRIPT} and {IMG} and {JS_LINK}, see [[specs/tokens]] and "
        "[[nowhere]].\n\n[fine](https://example.com/a)\n",
    )
    store.docs.write_doc("specs/tokens", fields={"type": "spec"}, body="# Tokens\n")
    store.docs.write_doc("decisions/one", fields={"type": "decision"}, body="# One\n")
    store.docs.write_doc("decisions/one", fields={"type": "decision"}, body="# One, again\n")

    listing = page(server, "/docs")
    assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/html")
    for ref in ("specs/auth", "specs/tokens", "decisions/one"):
        assert f'href="/docs/{ref}"' in listing.text
    assert SCRIPT not in listing.text and "&lt;script&gt;" in listing.text
    only_specs = page(server, "/docs", namespace="specs").text
    assert 'href="/docs/specs/auth"' in only_specs and "/docs/decisions/one" not in only_specs
    decisions = page(server, "/docs", type="decision").text
    assert "/docs/decisions/one" in decisions and "/docs/specs/auth" not in decisions
    tagged = page(server, "/docs", tag="security").text
    assert "/docs/specs/auth" in tagged and "/docs/specs/tokens" not in tagged
    assert "No document matches" in page(server, "/docs", tag="none").text
    assert 'href="/docs"' in listing.text  # in the navigation bar

    shown = page(server, "/docs/specs/auth")
    assert shown.status_code == 200
    text = shown.text
    assert "<h1>Login</h1>" in text  # the Markdown, rendered
    assert SCRIPT not in text and IMG not in text and 'href="javascript' not in text.lower()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert 'href="https://example.com/a" rel="noopener noreferrer nofollow"' in text
    assert 'href="/docs/specs/tokens"' in text  # a link, resolved
    assert '<a class="wiki" href="/docs/specs/tokens">specs/tokens</a>' in text  # in the body
    assert "nowhere" in text and "(no such document)" in text
    assert "&lt;img src=x onerror=window.__pwned=2&gt;" in text  # a field, escaped
    tokens = page(server, "/docs/specs/tokens").text
    assert 'href="/docs/specs/auth"' in tokens  # linked from

    history = store.docs.history("decisions/one")
    one = page(server, "/docs/decisions/one").text
    assert "One, again" in one
    for version in history:
        assert f'href="/docs/decisions/one?version={version.id}"' in one
    old = page(server, "/docs/decisions/one", version=str(history[0].id)).text
    assert "<h1>One</h1>" in old and "One, again" not in old and "not its current content" in old

    assert page(server, "/docs/decisions/nope").status_code == 404
    assert page(server, "/docs/decisions/one", version="x").status_code == 400
    assert page(server, "/docs/decisions/one", version="999999").status_code == 404
    assert page(server, "/docs/nonamespace").status_code in (400, 404)

    found = page(server, "/search", q="Tokens", kind="doc").text
    assert 'href="/docs/specs/tokens"' in found

    # Deleted through agentkeep: its history stays reachable, each version readable.
    store.docs.remove_doc("decisions/one")
    assert "/docs/decisions/one" not in page(server, "/docs").text
    gone = page(server, "/docs/decisions/one")
    assert gone.status_code == 200 and "This document was deleted" in gone.text
    assert f'href="/docs/decisions/one?version={history[0].id}"' in gone.text
    kept = page(server, "/docs/decisions/one", version=str(history[0].id)).text
    assert "<h1>One</h1>" in kept and "This document was deleted" in kept


def test_a_json_document_shows_as_text(server: RunningServer, store: agentkeep.Store) -> None:
    store.docs.write_doc("data/one", fields={"name": SCRIPT, "n": 1}, fmt="json")
    text = page(server, "/docs/data/one").text
    assert SCRIPT not in text and "&lt;script&gt;" in text and "&#34;n&#34;: 1" in text


def test_wiki_links_become_links_only_in_text_and_only_to_documents() -> None:
    from agentkeep.server.pages.docs import wiki_links
    from agentkeep.server.pages.sessions import markdown

    rendered = markdown(
        'See [[a/b]], [[a/b|the b]], [x](https://e.example "[[a/b]]"), `[[a/b]]`, '
        "[[gone]] and [[<script>]]\n\n    [[a/b]] in a code block\n"
    )
    html = str(wiki_links(rendered, {"a/b": "/docs/a/b", "gone": None}))
    assert html.count('<a class="wiki"') == 2
    assert '<a class="wiki" href="/docs/a/b">the b</a>' in html
    assert 'title="[[a/b]]"' in html  # an attribute is left alone
    assert "<code>[[a/b]]</code>" in html and "[[a/b]] in a code block" in html
    assert "[[gone]]" in html and "[[&lt;script&gt;]]" in html
