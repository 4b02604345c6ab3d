"""Search semantics every backend must give (agentkeep.search's module doc): words are
AND-ed, a quoted phrase keeps its order, ``word*`` is a prefix, case and accents are
ignored, query syntax of the engine is plain text; messages, notes and tasks are found and
filtered by kind; the best match comes first and, among equals, the newest; a redacted
secret is never found by its value."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import agentkeep
from agentkeep import InvalidInput

from secretgen import fragments, generate

TEXTS = (
    "add a rate limiter to the login route",
    "the limiter checks the rate",
    "the migration renamed a column; migrating again is a no-op",
    "Migrations are fast at the café",
)


def add_messages(store: agentkeep.Store, name: str, texts: list[str]) -> list[int]:
    """One session named ``name`` with a message per text, a second apart; their ids."""
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        session = writer.session("contract", name, started_at="2026-03-01T10:00:00.000Z")
        return [
            writer.message(
                session,
                seq=i,
                external_id=f"{name}-{i}",
                role="user" if i % 2 == 0 else "assistant",
                kind="text",
                text=text,
                at=f"2026-03-01T10:00:{i:02d}.000Z",
            )
            for i, text in enumerate(texts)
        ]


def add_notes(store: agentkeep.Store, name: str, texts: list[str]) -> list[int]:
    return [store.add_note("fact", text).item.id for text in texts]


def add_tasks(store: agentkeep.Store, name: str, texts: list[str]) -> list[int]:
    return [store.add_task(text).item.id for text in texts]


ADD: dict[str, Callable[[agentkeep.Store, str, list[str]], list[int]]] = {
    "message": add_messages,
    "note": add_notes,
    "task": add_tasks,
}


def found(store: agentkeep.Store, query: str, kind: str) -> list[int]:
    return [hit.id for hit in store.search(query, kinds=[kind])]


@pytest.mark.parametrize("kind", list(ADD))
def test_words_phrases_prefixes_case_and_accents(store: agentkeep.Store, kind: str) -> None:
    ordered, reversed_, migration, migrations = ADD[kind](store, "s1", list(TEXTS))
    assert sorted(found(store, "rate limiter", kind)) == sorted([ordered, reversed_])
    assert found(store, '"rate limiter"', kind) == [ordered]
    assert found(store, '"rate limiter" login', kind) == [ordered]
    assert found(store, '"limiter rate"', kind) == []
    assert found(store, "rate limiter column", kind) == []
    assert sorted(found(store, "migra*", kind)) == sorted([migration, migrations])
    assert found(store, "migration", kind) == [migration]  # a word is not its own prefix
    assert found(store, "MIGRATIONS", kind) == [migrations]
    assert found(store, "cafe", kind) == [migrations]
    assert ordered in found(store, "ra*", kind)  # a two-letter prefix works
    with pytest.raises(InvalidInput, match="too short"):
        store.search("r*", kinds=[kind])
    # The engine's own syntax is plain text, never an error.
    for query in ('"', "AND (", "NEAR(rate limiter, 2)", "title:rate", "rate OR nothing", "-x"):
        assert isinstance(store.search(query, kinds=[kind]), list), query
    assert found(store, "rate OR nothing", kind) == []  # OR is a word here, not an operator


def test_kinds_are_searched_together_and_filtered(store: agentkeep.Store) -> None:
    (message,) = add_messages(store, "s1", ["deploy the api on friday"])
    note = store.add_note("decision", "we deploy on fridays").item.id
    task = store.add_task("deploy pipeline", body="automate it").item.id
    everything = {(hit.kind, hit.id) for hit in store.search("deploy")}
    assert everything == {("message", message), ("note", note), ("task", task)}
    assert {(h.kind, h.id) for h in store.search("deploy", kinds=["note"])} == {("note", note)}
    both = {(h.kind, h.id) for h in store.search("deploy", kinds=("task", "message"))}
    assert both == {("task", task), ("message", message)}
    assert len(store.search("deploy", limit=2)) == 2
    with pytest.raises(InvalidInput, match="unknown search kind"):
        store.search("deploy", kinds=["emails"])
    with pytest.raises(InvalidInput):
        store.search("deploy", limit=0)
    hit = store.search("pipeline")[0]
    assert (hit.kind, hit.id, hit.task_id, hit.label) == ("task", task, task, "deploy pipeline")
    assert "«pipeline»" in hit.snippet


@pytest.mark.parametrize("kind", list(ADD))
def test_best_match_first_and_among_equals_the_newest(store: agentkeep.Store, kind: str) -> None:
    filler = " ".join(f"word{i}" for i in range(120))
    sparse, dense, *same = ADD[kind](
        store,
        "s1",
        [
            f"{filler} flaky once {filler}",
            "flaky test: the flaky upload test is flaky again",
            *["a flaky thing"] * 3,
        ],
    )
    hits = store.search("flaky", kinds=[kind])
    order = [hit.id for hit in hits]
    assert order[0] == dense and order[-1] == sparse, order
    # Equal texts score equally; the newest comes first among them.
    assert order[1:4] == sorted(same, reverse=True), order
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    assert scores[1] == scores[2] == scores[3]
    assert [hit.id for hit in store.search("flaky", kinds=[kind], limit=2)] == order[:2]


def test_a_tasks_title_weighs_more_than_its_body(store: agentkeep.Store) -> None:
    in_body = store.add_task("misc", body="the uploader retries").item.id
    in_title = store.add_task("uploader retries").item.id
    assert found(store, "uploader", "task") == [in_title, in_body]


def test_a_redacted_secret_is_never_found_by_its_value(store: agentkeep.Store) -> None:
    secrets = generate()
    markers = {}
    texts = []
    for n, (name, (text, _)) in enumerate(sorted(secrets.items())):
        markers[name] = f"marker{n}x"
        texts.append(f"{markers[name]} uses {text} here")
    notes = add_notes(store, "s", texts)
    tasks = add_tasks(store, "s", texts)
    messages = add_messages(store, "s", texts)
    for n, (name, (_, secret)) in enumerate(sorted(secrets.items())):
        # The record is indexed (its other words are found)…
        kinds = {(hit.kind, hit.id) for hit in store.search(markers[name])}
        assert kinds == {("note", notes[n]), ("task", tasks[n]), ("message", messages[n])}, name
        # …but not by the secret, whole or in part.
        for needle in fragments(secret):
            assert store.search(needle) == [], f"{name}: found by {needle[:6]}…"
            assert store.search(f'"{needle}"') == [], f"{name}: found by a phrase"
