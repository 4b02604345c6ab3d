"""The board in a real Chromium: a card dragged in one page moves in a second page through
the live stream; a refused move puts the card back and says why; Claim; hostile stored
text stays inert, first render and live re-render alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

import agentkeep
from browser.conftest import screenshot

from helpers.server import RunningServer

# Each payload would set a global and open a dialog if it ever ran.
SCRIPT = "<script>window.pwnedScript=1;alert('script')</script>"
IMG = "<img src=x onerror=\"window.pwnedImg=1;alert('img')\">"
JS_URL = "javascript:window.pwnedLink=1;alert('link')"
GLOBALS = ("pwnedScript", "pwnedImg", "pwnedLink")


def watch_dialogs(page: Any) -> list[str]:
    """Every dialog the page opens (a payload that ran), dismissed."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def assert_inert(page: Any, dialogs: list[str]) -> None:
    assert dialogs == []
    for name in GLOBALS:
        assert page.evaluate(f"typeof window.{name}") == "undefined", name
    assert page.locator('a[href^="javascript" i]').count() == 0


def open_board(new_page: Any, server: RunningServer) -> Any:
    page = new_page()
    page.goto(server.url + "/")
    # The live stream is open: whatever is written from now on reaches this page.
    page.wait_for_selector("html[data-live='open']", state="attached")
    return page


def card_in(status: str, task_id: int) -> str:
    return f".cards[data-status='{status}'] #task-{task_id}"


def drag(page: Any, source: str, target: str) -> None:
    """Drag with the mouse, as a person does (Sortable's pointer fallback)."""
    start = page.locator(source).locator("header").bounding_box()
    end = page.locator(target).bounding_box()
    assert start is not None and end is not None
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 8, y + 8, steps=4)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 24, steps=12)
    page.mouse.up()


def test_a_card_moved_in_one_page_moves_in_another(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        moved = store.add_task("Move me", priority=1, labels=["ui"]).item
        store.add_task("Stay here", depends_on=[moved.id])
        busy = store.add_task("Busy one", priority=0, labels=["api", "urgent"]).item
        store.claim_task(busy.id, "alice")
        (project / "wt-alice").mkdir()
        worktree = store.add_worktree(project / "wt-alice", branch="alice/api").item
        store.lease_worktree(worktree.id, "alice")
        store.start_session(source="run", task_id=busy.id, title="alice's run")
        store.add_note("handoff", "API half done; the tests are next.", task_id=busy.id)
    first, second = open_board(new_page, server), open_board(new_page, server)
    assert first.locator(card_in("open", moved.id)).count() == 1
    drag(first, f"#task-{moved.id}", ".cards[data-status='blocked']")
    first.wait_for_selector(card_in("blocked", moved.id))
    second.wait_for_selector(card_in("blocked", moved.id))  # through the event stream
    # The card waiting for it says so, re-read too.
    second.wait_for_selector(f".card:has(a.dep[href='#task-{moved.id}']) .deps >> text=(blocked)")
    assert second.locator(card_in("open", moved.id)).count() == 0
    with agentkeep.open(project) as store:
        assert store.get_task(moved.id).status == "blocked"
    assert second.locator(f"#task-{busy.id} .worktree").text_content() == "alice/api"
    second.locator(f"#task-{busy.id} .handoff summary").click()
    screenshot(second, "board")


def test_a_refused_move_puts_the_card_back_and_says_why(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        done = store.add_task("Finished").item
        store.update_task(done.id, status="done")
    page = open_board(new_page, server)
    # A done task may only be reopened: the store refuses done -> in_progress.
    drag(page, f"#task-{done.id}", ".cards[data-status='in_progress']")
    error = page.locator(f"#task-{done.id} .card-error")
    error.wait_for(state="visible")
    assert error.text_content()
    assert page.locator(card_in("done", done.id)).count() == 1
    assert page.locator(card_in("in_progress", done.id)).count() == 0
    with agentkeep.open(project) as store:
        assert store.get_task(done.id).status == "done"
    screenshot(page, "board-refused-move")


def test_claim_takes_an_open_task(new_page: Any, server: RunningServer, project: Path) -> None:
    with agentkeep.open(project) as store:
        task = store.add_task("Claim me").item
    page, other = open_board(new_page, server), open_board(new_page, server)
    page.fill(f"#task-{task.id} form.claim input[name=assignee]", "carol")
    page.click(f"#task-{task.id} form.claim button")
    page.wait_for_selector(card_in("in_progress", task.id))
    other.wait_for_selector(card_in("in_progress", task.id))
    assert other.locator(f"#task-{task.id} .assignee").text_content() == "carol"
    with agentkeep.open(project) as store:
        claimed = store.get_task(task.id)
    assert (claimed.status, claimed.assignee) == ("in_progress", "carol")


def test_hostile_task_text_stays_inert(new_page: Any, server: RunningServer, project: Path) -> None:
    title = f"T {SCRIPT} {IMG} [x]({JS_URL})"
    with agentkeep.open(project) as store:
        task = store.add_task(title, labels=[IMG, JS_URL]).item
        store.add_note(
            "handoff", f'handoff {SCRIPT} {IMG} <a href="{JS_URL}">go</a>', task_id=task.id
        )
        store.claim_task(task.id, "mallory")
    page = open_board(new_page, server)
    dialogs = watch_dialogs(page)
    card = page.locator(f"#task-{task.id}")
    assert card.locator(".title").text_content() == title  # shown as text, whole
    card.locator(".handoff summary").click()
    assert SCRIPT in (card.locator(".handoff p").text_content() or "")
    # A change arrives live: the card is fetched and swapped in, still inert.
    later = f"Later {IMG} {SCRIPT}"
    with agentkeep.open(project) as store:
        store.update_task(task.id, title=later)
    page.wait_for_function(
        "([id, text]) => document.querySelector('#task-' + id + ' .title')?.textContent === text",
        arg=[task.id, later],
    )
    assert_inert(page, dialogs)
    screenshot(page, "board-hostile")


def test_a_move_from_a_stale_board_is_a_conflict(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        task = store.add_task("Contested").item
    page = open_board(new_page, server)
    # The page cannot fetch the changed card: it stays stale.
    page.route("**/board/cards/**", lambda route: route.abort())
    with agentkeep.open(project) as store:
        store.update_task(task.id, status="blocked")
    drag(page, f"#task-{task.id}", ".cards[data-status='in_progress']")
    error = page.locator(f"#task-{task.id} .card-error")
    error.wait_for(state="visible")
    assert "blocked, not open" in (error.text_content() or "")
    assert page.locator(card_in("open", task.id)).count() == 1  # back where it was dragged from
    page.unroute("**/board/cards/**")
    with agentkeep.open(project) as store:
        assert store.get_task(task.id).status == "blocked"  # the other change stands


def test_the_board_reconnects_when_its_stream_is_refused(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        task = store.add_task("Watch me").item
    page = new_page()
    refused: list[str] = []

    def refuse_once(route: Any) -> None:  # as a server that is still starting answers
        if not refused:
            refused.append(route.request.url)
            route.fulfill(status=503, content_type="application/json", body="{}")
        else:
            route.continue_()

    page.route("**/api/v1/events/stream*", refuse_once)
    page.goto(server.url + "/")
    page.wait_for_selector("html[data-live='open']", state="attached")
    assert len(refused) == 1
    with agentkeep.open(project) as store:
        store.update_task(task.id, status="blocked")
    page.wait_for_selector(card_in("blocked", task.id))


def test_a_note_written_later_shows_on_its_card_without_a_reload(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        task = store.add_task("Hand me off").item
        store.claim_task(task.id, "alice")
        other = store.add_task("Someone else's").item
    page = open_board(new_page, server)
    fetched: list[str] = []
    page.on(
        "request",
        lambda request: fetched.append(request.url) if "/board/cards/" in request.url else None,
    )
    assert page.locator(f"#task-{task.id} .handoff").count() == 0
    with agentkeep.open(project) as store:
        store.add_note("fact", "a note of no task")  # no card to re-read: no fetch
        store.add_note("handoff", "Half done; the docs are next.", task_id=task.id)
    page.wait_for_selector(f"#task-{task.id} .handoff")
    page.locator(f"#task-{task.id} .handoff summary").click()
    assert page.locator(f"#task-{task.id} .handoff p").text_content() == (
        "Half done; the docs are next."
    )
    # Only the card the note was for was fetched again; the note without a task cost nothing.
    assert fetched == [f"{server.url}/board/cards/{task.id}"]
    assert page.locator(f"#task-{other.id}").count() == 1
    screenshot(page, "board-live-handoff")


def test_a_card_moves_with_the_keyboard_alone(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        task = store.add_task("Keyboard only").item
        store.add_task("A neighbour")
    page = open_board(new_page, server)
    # Tab from the top of the page to the card, as a person without a mouse does.
    page.locator("nav.top a").last.focus()
    for _ in range(50):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == f"task-{task.id}":
            break
    assert page.evaluate("document.activeElement.id") == f"task-{task.id}"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring
    page.keyboard.press("ArrowRight")  # open -> the next column (in progress)
    page.wait_for_selector(card_in("in_progress", task.id) + ":not(.pending)")
    with agentkeep.open(project) as store:
        assert store.get_task(task.id).status == "in_progress"
    # The card keeps the focus (re-read and swapped in), so the next key moves it on.
    assert page.evaluate("document.activeElement.id") == f"task-{task.id}"
    screenshot(page, "board-keyboard")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(card_in("open", task.id) + ":not(.pending)")
    with agentkeep.open(project) as store:
        assert store.get_task(task.id).status == "open"


def test_an_older_answer_for_a_card_never_overwrites_a_newer_one(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        task = store.add_task("Raced").item
    page = open_board(new_page, server)
    url = f"{server.url}/board/cards/{task.id}"
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:  # the first answer is slow, the second is not
        if not held:
            held.append(route)
        else:
            route.continue_()

    page.route(url, hold_the_first)
    with page.expect_request(url), agentkeep.open(project) as store:
        store.update_task(task.id, status="blocked")
    stale = httpx.get(url, timeout=30)  # the card as the first refresh saw it: blocked
    assert stale.status_code == 200 and 'data-status="blocked"' in stale.text
    with page.expect_request(url), agentkeep.open(project) as store:
        store.update_task(task.id, status="in_progress")
    page.wait_for_selector(card_in("in_progress", task.id))
    assert len(held) == 1
    with page.expect_event("requestfinished", lambda request: request.url == url):
        held[0].fulfill(status=200, content_type="text/html", body=stale.text)
    # The stale answer has arrived; give its handler the page's next turns to run in.
    page.evaluate("() => new Promise((r) => setTimeout(() => setTimeout(r)))")
    assert page.locator(card_in("in_progress", task.id)).count() == 1
    assert page.locator(card_in("blocked", task.id)).count() == 0
