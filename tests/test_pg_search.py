"""Full-text search on PostgreSQL (backends/postgres/search.py): what the contract suite's
semantics (tests/contract/test_search_semantics.py, run there on both backends) do not
reach — diacritics and case folded by the database, the project's tokens rather than the
default parser's, hostile and oversized input, texts past tsvector's limits, phrases
kept within a task's title or body, the index following updates and deletes in the same
transaction, filters, the ranking window and snippets cut from the original text."""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkeep
from agentkeep.backends.postgres import search as pg_search

from conftest import git


@pytest.fixture
def store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> Iterator[agentkeep.Store]:
    """A new store in a fresh PostgreSQL schema (helpers/pg.py's ``pg_url``: dropped
    afterwards)."""
    git(tmp_path, "init", "-q", "-b", "main")
    monkeypatch.chdir(tmp_path)
    agentkeep.init_store(tmp_path, url=pg_url)
    with agentkeep.open(tmp_path) as opened:
        yield opened


def add_messages(store: agentkeep.Store, texts: list[str], *, name: str = "s1") -> list[int]:
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        session = writer.session("test", name, started_at="2026-03-01T10:00:00.000Z")
        return [
            writer.message(
                session,
                seq=i,
                external_id=f"{name}-{i}",
                role="user",
                kind="text",
                text=text,
                at=f"2026-03-0{1 + i % 9}T10:00:00.000Z",
            )
            for i, text in enumerate(texts)
        ]


def found(store: agentkeep.Store, query: str, kind: str = "message") -> list[int]:
    return [hit.id for hit in store.search(query, kinds=[kind])]


def test_case_and_diacritics_are_folded_both_ways(store: agentkeep.Store) -> None:
    naive, ecole, plain = add_messages(
        store, ["NAÏVE Ünïcödé", "l'École Polytechnique", "naive unicode ecole"]
    )
    assert sorted(found(store, "naive")) == [naive, plain]
    assert sorted(found(store, "ÉCOLE")) == [ecole, plain]  # the query is folded too
    assert sorted(found(store, "unïcode")) == [naive, plain]
    assert sorted(found(store, '"naïve ünicodé"')) == [naive, plain]
    assert sorted(found(store, "polytech*")) == [ecole]
    assert found(store, "l") == [ecole]  # l'École: "l" is a word of its own


def test_tokens_are_the_projects_not_the_default_parsers(store: agentkeep.Store) -> None:
    """PostgreSQL's parser keeps an e-mail address, a URL, a path, a version or a
    hyphenated word whole; the index splits them into runs of letters and digits."""
    (row,) = add_messages(
        store,
        [
            "mail bob.smith@example.org, see https://docs.example.com/a/b_c.html?q=1 in "
            "src/agentkeep/backends/postgres/search.py v1.2.3 well-known snake_case_name"
        ],
    )
    for query in (
        "bob",
        "smith",
        "example",
        "org",
        "docs",
        "html",
        "backends",
        "search",
        "py",
        "v1",
        "3",
        "known",
        "snake",
        "case",
        '"example org"',
        '"postgres search py"',
        '"well known"',
        "bob.smith@example.org",  # a query term is split the same way
        "https://docs.example.com",
        "v1.2.3",
        "snake_case_name",
        "src/agentkeep",
    ):
        assert found(store, query) == [row], query
    assert found(store, '"org example"') == []


@pytest.mark.parametrize(
    "query",
    [
        "'\":*&|!()<->\\",
        "rate & !limiter",
        "rate:*",
        "rate:A",
        "'rate'",
        "(rate | nothing)",
        "rate <-> limiter",
        "rate <2> limiter",
        "\\'rate\\'",
        "rate%",
        "rate?",
        "rate;",
        "$$ rate $$",
        "rate' OR '1'='1",
    ],
)
def test_tsquery_syntax_is_plain_text(store: agentkeep.Store, query: str) -> None:
    """Nothing typed reaches tsquery's parser: operators are separators like any other
    punctuation, so every query above means its words."""
    rate, _ = add_messages(store, ["the rate limiter", "rate only"])
    hits = store.search(query, kinds=["message"])
    assert isinstance(hits, list)
    if set(re.findall(r"[^\W_]+", query)) == {"rate", "limiter"}:  # ("<2>" is the word 2)
        assert [hit.id for hit in hits] == [rate], query


def test_punctuation_only_terms_are_dropped(store: agentkeep.Store) -> None:
    (rate,) = add_messages(store, ["the rate limiter"])
    assert found(store, "!!! rate ... ()") == [rate]
    assert store.search("!!! ... ()", kinds=["message"]) == []


def test_very_long_words_and_terms(store: agentkeep.Store) -> None:
    """A lexeme holds at most 2,047 bytes: a longer word is left out of the index without
    failing the write, and a query term holding one finds nothing, without an error (it is
    not silently dropped from its phrase, which would then match more)."""
    long_word = "ж" * 1100  # 2,200 bytes
    medium = "y" * 1500
    first, second = add_messages(
        store, [f"before {long_word} after {medium} {'x' * 5000}", "before after"]
    )
    assert sorted(found(store, "before")) == [first, second]
    assert found(store, medium) == [first]
    assert found(store, long_word) == []
    assert found(store, f'"before {long_word} after"') == []
    assert found(store, f"before {long_word}") == []
    wide = "é" * 1200  # 2,400 bytes: folded to 1,200 ASCII letters, short enough
    (third,) = add_messages(store, [f"wide {wide}"], name="s2")
    assert found(store, wide) == [third]


def test_a_text_beyond_tsvectors_limit_is_stored_and_indexed_from_its_start(
    store: agentkeep.Store,
) -> None:
    """A tsvector holds at most 1 MB; a text of more distinct words than that is stored
    whole and indexed as far as fits (its first words)."""
    rng = random.Random(5)
    words = ["".join(rng.choices(string.ascii_lowercase, k=9)) for _ in range(150_000)]
    text = "openingword " + " ".join(words) + " closingword"
    (row,) = add_messages(store, [text])
    assert found(store, "openingword") == [row]
    assert store.search(words[10], kinds=["message"])[0].id == row
    assert found(store, "closingword") == []  # past what fits


def test_a_phrase_stays_within_a_tasks_title_or_body(store: agentkeep.Store) -> None:
    split = store.add_task("deploy rate", body="limiter config").item.id
    whole = store.add_task("misc", body="the rate limiter").item.id
    assert found(store, '"rate limiter"', "task") == [whole]
    assert sorted(found(store, "rate limiter", "task")) == [split, whole]
    assert found(store, '"deploy rat"*', "task") == [split]
    assert found(store, '"rate lim"*', "task") == [whole]
    assert found(store, '"rate lim"* deploy', "task") == []


def test_the_index_follows_updates_and_deletes_in_the_same_transaction(
    store: agentkeep.Store,
) -> None:
    first, second = add_messages(store, ["alpha secretword", "beta"])
    with store.transaction() as tx:
        tx.conn.execute("UPDATE messages SET text = ? WHERE id = ?", ("alpha cleaned", first))
        tx.conn.execute("UPDATE messages SET role = ? WHERE id = ?", ("assistant", second))
        # Inside the transaction the index is already in step.
        assert pg_search.SEARCH.behind(tx.conn) is False
    assert found(store, "secretword") == []
    assert found(store, "cleaned") == [first]
    assert found(store, "beta") == [second]
    note = store.add_note("fact", "gamma note").item.id
    task = store.add_task("delta task", body="epsilon").item.id
    assert found(store, "gamma", "note") == [note]
    with store.transaction() as tx:
        tx.conn.execute("DELETE FROM messages WHERE id = ?", (second,))
        tx.conn.execute("UPDATE tasks SET body = ? WHERE id = ?", ("zeta", task))
    assert found(store, "beta") == []
    assert found(store, "epsilon", "task") == []
    assert found(store, "zeta", "task") == [task]
    with store.transaction() as tx:
        gap = tx.conn.execute(
            "SELECT (SELECT count(*) FROM messages WHERE text IS NOT NULL)"
            " - (SELECT count(*) FROM messages_fts)"
        ).fetchone()[0]
        assert pg_search.SEARCH.catch_up(tx.conn) == 0
    assert gap == 0


def test_captures_are_searched_by_their_search_text(store: agentkeep.Store) -> None:
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        prompt = writer.capture(
            source="claude", event="prompt", dedupe_key="c1", payload={"prompt": "Réindexer"}
        )
        tool = writer.capture(
            source="claude",
            event="tool_post",
            dedupe_key="c2",
            tool_name="Bash",
            payload={"tool_input": {"command": "make lint"}, "tool_response": {"stdout": "ok"}},
        )
        writer.capture(source="claude", event="stop", dedupe_key="c3", payload={"other": "x"})
    assert found(store, "reindexer", "capture") == [prompt]
    assert found(store, "lint", "capture") == [tool]
    assert found(store, '"command make lint"', "capture") == [tool]
    assert found(store, "other", "capture") == []
    (hit,) = store.search("réindexer", kinds=["capture"])
    assert hit.snippet == "«Réindexer»"


def test_session_and_since_filters(store: agentkeep.Store) -> None:
    mine = add_messages(store, ["shared word", "shared word"], name="mine")
    theirs = add_messages(store, ["shared word"], name="theirs")
    session = store.search("shared", kinds=["message"])[0].session_id
    assert session is not None
    hits = store.search("shared", kinds=["message"], session=session)
    assert {hit.id for hit in hits} == set(theirs)
    recent = store.search("shared", kinds=["message"], since="2026-03-02T00:00:00.000Z")
    assert [hit.id for hit in recent] == [mine[1]]
    assert store.search("shared", kinds=["message"], since="2027-01-01T00:00:00.000Z") == []


def test_only_the_newest_matches_are_ranked(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documented: a term matching more than RANK_WINDOW rows of a table is ranked among
    its newest RANK_WINDOW matches (the best old match is then not found)."""
    best, *rest = add_messages(store, ["flaky flaky flaky"] + ["a flaky test"] * 4)
    assert found(store, "flaky")[0] == best
    monkeypatch.setattr(pg_search, "RANK_WINDOW", 3)
    assert found(store, "flaky") == sorted(rest, reverse=True)[:3]


def test_snippets_mark_matches_in_the_original_text(store: agentkeep.Store) -> None:
    filler = " ".join(f"w{i}" for i in range(40))
    text = f"{filler} the Café owner said: Rate-limiter works; {filler}"
    (row,) = add_messages(store, [text])
    (hit,) = store.search("cafe rate lim*", kinds=["message"])
    assert hit.id == row
    assert "«Café»" in hit.snippet and "«Rate»-«limiter»" in hit.snippet, hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…"), hit.snippet
    assert 12 <= len(hit.snippet.split()) <= 20, hit.snippet
    (short,) = add_messages(store, ["just the café"], name="s2")
    assert store.search("cafe", kinds=["message"], limit=1)[0].snippet == "just the «café»"
    assert short
    # A long text is matched a part at a time: a match far into it is still the snippet.
    (long,) = add_messages(store, ["x " * 150_000 + "the needle at the end"], name="s3")
    (hit,) = store.search("needle", kinds=["message"])
    assert hit.id == long and hit.snippet.endswith("the «needle» at the end"), hit.snippet[-60:]
    assert hit.snippet.startswith("…x x")
