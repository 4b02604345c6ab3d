"""The Documents and Queues pages in a real Chromium: the list filters, a document's
Markdown renders with its hostile text inert (no script runs, no image loads, a
javascript: link is text), its links lead to the documents they name and back, a version
of its history opens; a queue's items show with their state, bodies as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import agentkeep
from browser.conftest import screenshot
from browser.test_views import open_view

from helpers.server import RunningServer

SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=2>"


def test_documents_list_view_links_and_history(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        store.docs.write_doc(
            "specs/auth",
            fields={"type": "spec", "tags": ["security"], "owner": IMG},
            body=f"# Login\n\n{SCRIPT} {IMG} [click](javascript:window.__pwned=3)\n\n"
            "## Tokens\n\nSee [[specs/tokens]].\n\n- a list item\n",
        )
        store.docs.write_doc("specs/tokens", fields={"type": "spec"}, body="# Tokens v1\n")
        store.docs.write_doc("specs/tokens", fields={"type": "spec"}, body="# Tokens v2\n")
        store.docs.write_doc("decisions/one", fields={"type": "decision"}, body="# One\n")

    view = open_view(new_page, server, "/docs")
    page = view.page
    assert page.locator("nav.top a[href='/docs'][aria-current='page']").count() == 1
    assert page.locator("#docs tbody tr").count() == 3
    page.select_option("select[name=namespace]", "specs")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/docs?namespace=specs**")
    assert [r.get_attribute("data-ref") for r in page.locator("#docs tbody tr").all()] == [
        "specs/auth",
        "specs/tokens",
    ]
    screenshot(page, "docs-list")

    page.click("#docs a[href='/docs/specs/auth']")
    page.wait_for_selector("#doc-body h1")
    assert page.text_content("#doc-body h1") == "Login"
    assert page.locator("#doc-body h2").text_content() == "Tokens"
    assert page.locator("#doc-body li").text_content() == "a list item"
    assert page.locator("main script, main img").count() == 0
    assert page.locator("#doc-body a[href^='javascript']").count() == 0
    assert SCRIPT in (page.text_content("#doc-body") or "")
    assert IMG in (page.text_content("#fields") or "")
    view.inert()
    screenshot(page, "docs-view")

    page.click("#doc-body a.wiki[href='/docs/specs/tokens']")  # [[specs/tokens]] in the text
    page.wait_for_selector("#backlinks a[href='/docs/specs/auth']")
    assert page.text_content("#doc-body h1") == "Tokens v2"
    first = page.locator("#history tbody tr a").last  # newest first: the oldest is last
    first.click()
    page.wait_for_selector(".version-note")
    assert page.text_content("#doc-body h1") == "Tokens v1"
    assert page.locator("#history tr[aria-current]").count() == 1
    view.inert()


def test_queues_list_and_a_queues_items(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        store.queues.put("builds", f"make {SCRIPT}")
        store.queues.put("builds", "make docs")
        store.queues.take("builds", lease=60)

    view = open_view(new_page, server, "/queues")
    page = view.page
    assert page.locator("nav.top a[href='/queues'][aria-current='page']").count() == 1
    page.click("#queues a[href='/queues/builds']")
    page.wait_for_selector("#items tbody tr")
    assert page.locator("#items tbody tr").count() == 2
    assert page.locator("#items tr.taken").count() == 1
    assert SCRIPT in (page.text_content("#items") or "")
    page.select_option("select[name=state]", "ready")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/queues/builds?state=ready")
    assert page.locator("#items tbody tr").count() == 1
    view.inert()
    screenshot(page, "queue")
