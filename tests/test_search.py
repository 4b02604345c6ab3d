"""`agentkeep search` and Store.search: ranking, query syntax, filters, snippets, kinds,
index maintenance by the triggers, and hostile queries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import agentkeep
from agentkeep.backends.sqlite import search as sqlite_search
from agentkeep.backends.sqlite.search import RANK_WINDOW
from agentkeep.errors import InvalidInput, NotFound
from agentkeep.services.search import SearchHit, parse_terms

from conftest import Cli


def fts_query(query: str) -> str | None:
    """The FTS5 expression ``Store.search`` sends for ``query`` on SQLite."""
    return sqlite_search.fts_query(parse_terms(query))


HIT_KEYS = {
    "kind",
    "id",
    "score",
    "snippet",
    "at",
    "session_id",
    "task_id",
    "role",
    "label",
    "line",
}


def write(store: agentkeep.Store, fn: Callable[[Any], Any], *, policy: str | None = None) -> Any:
    with store.transaction() as tx:
        return fn(store.capture_writer(tx, policy=policy))


def add_session(
    store: agentkeep.Store,
    name: str,
    texts: list[str | tuple[str, str]],
    *,
    policy: str | None = None,
    start: str = "2026-03-01T10:00",
) -> tuple[int, list[int]]:
    """A session named ``name`` with one message per text (``(at, text)`` sets the time)."""

    def fill(w: Any) -> tuple[int, list[int]]:
        session = w.session("claude", name, started_at=f"{start}:00.000Z")
        ids = []
        for i, item in enumerate(texts):
            at, text = item if isinstance(item, tuple) else (f"{start}:{i:02d}.000Z", item)
            ids.append(
                w.message(
                    session,
                    seq=i,
                    external_id=f"{name}-{i}",
                    role="user" if i % 2 == 0 else "assistant",
                    kind="text",
                    text=text,
                    at=at,
                )
            )
        return session, ids

    return write(store, fill, policy=policy)  # type: ignore[no-any-return]


def ids(hits: list[SearchHit], kind: str = "message") -> list[int]:
    return [hit.id for hit in hits if hit.kind == kind]


def test_ranking_prefers_dense_matches_and_snippets_mark_them(store: agentkeep.Store) -> None:
    filler = " ".join(f"word{i}" for i in range(200))
    _, (sparse, dense, none, *_) = add_session(
        store,
        "s1",
        [
            f"{filler} flaky once {filler}",
            "flaky test: the flaky upload test is flaky again",
            *(f"nothing relevant here {i}" for i in range(4)),
        ],
    )
    hits = store.search("flaky")
    assert ids(hits) == [dense, sparse]
    assert none not in ids(hits)
    assert hits[0].score > hits[1].score > 0
    assert "«flaky»" in hits[0].snippet and "«flaky»" in hits[1].snippet
    # The snippet of a long text is the part around the match, not its head.
    assert len(hits[1].snippet) < 200 and hits[1].snippet.startswith("…word19")
    assert hits[0].session_id is not None and hits[0].role == "assistant"
    assert hits[0].at == "2026-03-01T10:00:01.000Z"
    custom = store.search("flaky", highlight=("<b>", "</b>"))
    assert "<b>flaky</b>" in custom[0].snippet and "«" not in custom[0].snippet


def test_words_are_anded_phrases_keep_order_prefixes_extend(store: agentkeep.Store) -> None:
    _, (ordered, reversed_, migration, other) = add_session(
        store,
        "s1",
        [
            "add a rate limiter to the login route",
            "the limiter checks the rate",
            "the migration renamed a column; migrating again is a no-op",
            "Migrations are fast",
        ],
    )
    assert sorted(ids(store.search("rate limiter"))) == sorted([ordered, reversed_])
    assert ids(store.search('"rate limiter"')) == [ordered]
    assert ids(store.search('"rate limiter" login')) == [ordered]
    assert ids(store.search("rate limiter column")) == []
    assert sorted(ids(store.search("migra*"))) == sorted([migration, other])
    assert ids(store.search("migration")) == [migration]
    # Case and accents are ignored.
    assert ids(store.search("MIGRATIONS")) == [other]
    _, (accented,) = add_session(store, "s2", ["the café is closed"])
    assert ids(store.search("cafe")) == [accented]
    # A 2-letter prefix uses the prefix index; one letter is refused with a hint.
    assert ordered in ids(store.search("ra*"))
    with pytest.raises(InvalidInput, match="too short"):
        store.search("r*")


def test_filters_kind_session_since_and_limit(store: agentkeep.Store) -> None:
    one, (early, late) = add_session(
        store,
        "one",
        [("2026-03-01T10:00:00.000Z", "deploy the api"), ("2026-03-05T10:00:00.000Z", "deploy")],
    )
    two, (other,) = add_session(store, "two", [("2026-03-02T10:00:00.000Z", "deploy again")])
    note = store.add_note("decision", "we deploy on fridays", session_id=two).item
    task = store.add_task("deploy pipeline", body="automate the deploy").item

    everything = store.search("deploy")
    assert {(h.kind, h.id) for h in everything} == {
        ("message", early),
        ("message", late),
        ("message", other),
        ("note", note.id),
        ("task", task.id),
    }
    assert {h.kind for h in store.search("deploy", kinds=["note"])} == {"note"}
    assert {h.kind for h in store.search("deploy", kinds=("task", "note"))} == {"note", "task"}
    # A session keeps its messages and notes; tasks belong to no session.
    assert sorted(ids(store.search("deploy", session=one))) == sorted([early, late])
    in_two = store.search("deploy", session=two)
    assert {(h.kind, h.id) for h in in_two} == {("message", other), ("note", note.id)}
    since = store.search("deploy", since="2026-03-02T00:00:00.000Z", kinds=["message"])
    assert sorted(ids(since)) == sorted([late, other])
    assert ids(store.search("deploy", session=one, since="2026-03-03T00:00:00Z")) == [late]
    assert len(store.search("deploy", limit=2)) == 2
    with pytest.raises(InvalidInput):
        store.search("deploy", limit=0)
    with pytest.raises(InvalidInput, match="unknown search kind"):
        store.search("deploy", kinds=["emails"])
    with pytest.raises(NotFound):
        store.search("deploy", session=999)


def test_since_filters_by_the_time_of_each_message(project: Any) -> None:
    with agentkeep.open(project) as store:
        _, (a, b, c) = add_session(
            store,
            "s",
            [
                ("2026-03-01T10:00:00.000Z", "alpha"),
                ("2026-03-09T10:00:00.000Z", "alpha"),
                ("2026-03-03T10:00:00.000Z", "alpha"),  # imported late: an older time
            ],
        )
        expected = {
            since: sorted(ids(store.search("alpha", since=since)))
            for since in ("2026-03-02", "2026-03-05", "2026-04-01", "2026-01-01")
        }
        assert expected["2026-01-01"] == sorted([a, b, c])
        assert expected["2026-03-02"] == sorted([b, c]) and expected["2026-04-01"] == []
        assert expected["2026-03-05"] == [b]


def test_notes_and_tasks_carry_their_links(store: agentkeep.Store) -> None:
    task = store.add_task("Uploader retries", body="exponential backoff for uploads").item
    note = store.add_note("handoff", "backoff is half done; see test_upload", task_id=task.id)
    hits = {h.kind: h for h in store.search("backoff")}
    assert hits["task"].id == task.id and hits["task"].task_id == task.id
    assert hits["task"].label == "Uploader retries"
    assert hits["note"].id == note.item.id and hits["note"].task_id == task.id
    assert hits["note"].label == "handoff"
    # A task's title counts more than its body.
    store.add_task("misc", body="uploader mentioned in passing, among other words")
    best = store.search("uploader", kinds=["task"])
    assert best[0].id == task.id and "«Uploader»" in best[0].snippet


def test_index_follows_inserts_updates_and_deletes(store: agentkeep.Store) -> None:
    _, (message,) = add_session(store, "s1", ["the parser fails on tabs"])
    assert ids(store.search("parser")) == [message]
    with store.transaction() as tx:
        tx.execute("UPDATE messages SET text = ? WHERE id = ?", ["the lexer fails", message])
    assert ids(store.search("parser")) == []
    assert ids(store.search("lexer")) == [message]
    with store.transaction() as tx:
        tx.execute("DELETE FROM messages WHERE id = ?", [message])
    assert store.search("lexer") == []

    task = store.add_task("Flaky upload test").item
    assert ids(store.search("flaky"), "task") == [task.id]
    store.update_task(task.id, title="Slow upload test", body="mentions the zeppelin")
    assert store.search("flaky") == []
    assert ids(store.search("zeppelin"), "task") == [task.id]
    note = store.add_note("fact", "quokkas are friendly").item
    assert ids(store.search("quokka*"), "note") == [note.id]


@pytest.mark.sqlite_only("reads SQLite's FTS5 table directly")
def test_metadata_policy_messages_are_not_indexed(store: agentkeep.Store) -> None:
    session, (kept,) = add_session(store, "meta", ["secret plans of the walrus"], policy="metadata")
    assert store._row("SELECT text FROM messages WHERE id = ?", (kept,))[0] is None  # type: ignore[index]
    assert store.search("walrus") == []
    count = store._count("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'walrus'")
    assert count == 0
    assert store.transcript_size(session) == 1


@pytest.mark.sqlite_only("SQLite's rank window (PostgreSQL's: test_pg_search)")
def test_broad_terms_rank_their_newest_matches(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matches than RANK_WINDOW: only the newest RANK_WINDOW are ranked (SQLite)."""
    _, (old_best, *rest) = add_session(
        store, "s1", ["common " * 20, *(f"common filler {i}" for i in range(6))]
    )
    assert ids(store.search("common", limit=1)) == [old_best]
    monkeypatch.setattr(sqlite_search, "RANK_WINDOW", 3)
    newest = ids(store.search("common", limit=10))
    assert sorted(newest) == sorted(rest[-3:])
    assert RANK_WINDOW >= 1000  # the real window is wide


class SpySearch:
    """The store's real ``backend.search``, recording what the service asks of it; its
    ``snippets`` leaves out the rows in ``drop`` (``(table, id)``), as if they had changed
    after ``rank``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.drop: set[tuple[str, int]] = set()
        self.ranked: list[tuple[str, int]] = []  # (table, limit)
        self.snippets_for: list[tuple[str, int]] = []  # (table, id)

    def rank(self, conn: Any, source: Any, terms: Any, **options: Any) -> Any:
        self.ranked.append((source.table, options["limit"]))
        return self.real.rank(conn, source, terms, **options)

    def behind(self, conn: Any) -> bool:
        return bool(self.real.behind(conn))

    def catch_up(self, conn: Any, **options: Any) -> int:
        return int(self.real.catch_up(conn, **options))

    def snippets(self, conn: Any, source: Any, terms: Any, ids: Any, **options: Any) -> Any:
        self.snippets_for += [(source.table, rowid) for rowid in ids]
        rows = self.real.snippets(conn, source, terms, ids, **options)
        return [row for row in rows if (source.table, row[0]) not in self.drop]


class BackendWith:
    """The store's backend with its ``search`` replaced."""

    def __init__(self, real: Any, search: SpySearch) -> None:
        self._real, self.search = real, search

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_snippets_are_asked_for_the_final_hits_only_and_a_vanished_row_is_left_out(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seam between the service and backend.search: each kind ranks its best
    ``limit``, the service merges them, and only the chosen rows get snippets."""
    # Notes as long as the messages: PostgreSQL's score divides by the text's length, so
    # four-word notes would all rank below three-word messages (SQLite's bm25 weighs a
    # length against its own index's average, and ranked them level).
    add_session(store, "s1", [f"otter number {i}" for i in range(8)])
    for i in range(8):
        store.add_note("fact", f"otter fact {i}")
    expected = store.search("otter", limit=5)
    assert {hit.kind for hit in expected} == {"message", "note"}
    spy = SpySearch(store.backend.search)
    monkeypatch.setattr(store, "backend", BackendWith(store.backend, spy))
    assert store.search("otter", limit=5) == expected
    tables = ["artifacts", "captures", "doc_chunks", "messages", "notes", "tasks"]
    assert sorted(spy.ranked) == [(table, 5) for table in tables]
    table = {"message": "messages", "note": "notes"}
    assert sorted(spy.snippets_for) == sorted((table[hit.kind], hit.id) for hit in expected)
    # A chosen row that no longer matches when its snippet is read is left out; the
    # others keep their order.
    vanished = expected[1]
    spy.drop = {(table[vanished.kind], vanished.id)}
    assert store.search("otter", limit=5) == [hit for hit in expected if hit is not vanished]


@pytest.mark.parametrize(
    "query",
    [
        "AND (",
        '"',
        '""',
        "(",
        ")",
        "*",
        "**",
        "NEAR(a b, 2)",
        "title:x",
        "a OR b",
        "NOT x",
        "-x",
        "^start",
        "x + y",
        '"unbalanced quote',
        "it's",
        'mid"quote',
        "{curly} [square]",
        "\\",
        "%_",
        "'; DROP TABLE messages; --",
        "😀 ünïcödé 中文",
        "\x01\x7f",  # U+0000 is refused: test_queries_that_are_clearly_wrong_say_so
        "x" * 1500,
    ],
)
def test_hostile_queries_never_error(store: agentkeep.Store, query: str) -> None:
    add_session(store, "s1", ["a b x y title start"])
    hits = store.search(query)
    assert isinstance(hits, list)


def test_queries_that_are_clearly_wrong_say_so(store: agentkeep.Store) -> None:
    for query in ("", "   ", "\n"):
        with pytest.raises(InvalidInput, match="empty"):
            store.search(query)
    with pytest.raises(InvalidInput, match="longer"):
        store.search("x" * 5000)
    with pytest.raises(InvalidInput, match="terms"):
        store.search(" ".join(f"w{i}" for i in range(100)))
    for query in ("a\x00b", "\x00", '"ab\x00cd"'):  # SQLite: "unterminated string"
        with pytest.raises(InvalidInput, match="NUL"):
            store.search(query)
    assert fts_query('say "hi there" pre*') == '"say" "hi there" "pre"*'
    assert fts_query('AND "x""y"') == '"AND" "x" "y"'
    assert fts_query("(") is None


def test_cli_json_shape_and_table(cli: Cli, store: agentkeep.Store) -> None:
    add_session(store, "s1", ["restart the worker pool", "pool sizes"])
    store.add_task("Tune the pool")
    rows = cli("search", "pool", "--json").json()
    assert len(rows) == 3 and all(set(row) == HIT_KEYS for row in rows)
    assert {row["kind"] for row in rows} == {"message", "task"}
    assert all("«pool»" in row["snippet"].lower() or "«Pool»" in row["snippet"] for row in rows)
    only = cli("search", "pool", "--kind", "task", "-n", "1", "--json").json()
    assert [row["kind"] for row in only] == ["task"]
    assert cli("search", "zebra", "--json").json() == []
    lines = cli("search", "pool", "--nl").stdout.splitlines()
    assert len(lines) == 3
    table = cli("search", "worker")
    assert table.exit_code == 0 and "KIND" in table.stdout and "«worker»" in table.stdout
    assert cli("search", "zebra").stderr.strip() == "no matches"
    recent = cli("search", "pool", "--since", "2d", "--json").json()
    assert [row["kind"] for row in recent] == ["task"]  # the messages are from March
    for query in ("AND (", '"', "NEAR("):
        result = cli("search", query, "--json")
        assert result.exit_code == 0, result.stderr
    empty = cli("search", "", "--json")
    assert empty.exit_code == 3 and "empty" in empty.error()["error"]
    assert cli("search", "x*", "--json").exit_code == 3
    assert cli("search", "pool", "--session", "77").exit_code == 4
    assert cli("search", "pool", "--since", "someday").exit_code == 3


# -- what hooks captured, artifact names, run output; Datasette's FTS detection -----------


def add_capture(store: agentkeep.Store, session: int, event: str, payload: dict[str, Any]) -> int:
    return write(  # type: ignore[no-any-return]
        store,
        lambda w: w.capture(
            source="claude",
            event=event,
            dedupe_key=f"{event}-{len(str(payload))}-{sorted(payload)}",
            session_id=session,
            tool_name=payload.get("tool_name"),
            payload=payload,
        ),
    )


def test_search_finds_hook_captures_prompts_tool_inputs_and_outputs(
    store: agentkeep.Store,
) -> None:
    session, _ = add_session(store, "hooked", [])
    prompt = add_capture(store, session, "prompt", {"prompt": "make the flux capacitor work"})
    tool = add_capture(
        store,
        session,
        "tool_post",
        {
            "tool_name": "Bash",
            "tool_input": {"command": "pytest tests/test_zanzibar.py"},
            "tool_response": {"stdout": "3 passed, quokka warning"},
        },
    )
    hits = store.search("capacitor")
    assert [(h.kind, h.id, h.session_id, h.label) for h in hits] == [
        ("capture", prompt, session, "prompt")
    ]
    assert hits[0].snippet == "make the flux «capacitor» work"
    assert ids(store.search("zanzibar"), "capture") == [tool]  # the tool's input
    assert ids(store.search("quokka"), "capture") == [tool]  # and its output
    assert store.search("quokka")[0].label == "Bash"
    assert ids(store.search("quokka", kinds=["message"]), "capture") == []
    assert ids(store.search("quokka", session=session), "capture") == [tool]
    # The JSON keys of the payload are not searchable text.
    assert store.search("tool_response") == []
    # Deleting the row removes it from the index (the trigger).
    with store.transaction() as tx:
        tx.execute("DELETE FROM captures WHERE id = ?", (tool,))
    assert store.search("quokka") == []


def test_search_finds_artifacts_by_name(store: agentkeep.Store) -> None:
    task = store.add_task("Release").item.id
    art = store.add_artifact(b"x", name="coverage-report-gizmo.html", task_id=task).item
    hits = store.search("gizmo")
    assert [(h.kind, h.id, h.task_id, h.label) for h in hits] == [
        ("artifact", art.id, task, "file")
    ]
    assert hits[0].snippet == "coverage-report-«gizmo».html"


def run_output(store: agentkeep.Store, lines: dict[str, list[bytes]]) -> int:
    session = store.start_session(source="run").item.id
    for name, chunks in lines.items():
        writer = store.open_stream(session, name)
        for chunk in chunks:
            writer.write(chunk)
        store.seal_stream(writer.close().id)
    return session


def test_search_finds_run_output_lines_sealed_or_live(store: agentkeep.Store) -> None:
    session = run_output(
        store,
        {
            "stdout": [b"collecting\n", b"tests/test_a.py::test_one PASSED\n"],
            "stderr": [b"warn\n", b"E   AssertionError: \x1b[31mwombat\x1b[0m mismatch\n"],
        },
    )
    hits = store.search("wombat")
    assert [(h.kind, h.session_id, h.label, h.line) for h in hits] == [
        ("output", session, "stderr", 2)
    ]
    # Escape sequences are gone from the snippet, the match is marked.
    assert hits[0].snippet == "E AssertionError: «wombat» mismatch"
    assert hits[0].id == store.session_streams(session, "stderr")[0].id
    assert [h.line for h in store.search("test_one")] == [2]  # tokens like FTS5's
    assert store.search("test_on") == []  # whole words unless a prefix…
    assert [h.line for h in store.search("test_on*")] == [2]
    assert [h.label for h in store.search("ASSERTIONERROR wombat")] == ["stderr"]
    assert store.search("wombat passed") == []  # every term on the same line
    # A live stream's durable part is searched too.
    live = store.open_stream(store.start_session(source="run").item.id, "stdout")
    live.write(b"booting the numbat\n")
    live.commit_progress()
    assert [h.label for h in store.search("numbat", kinds=["output"])] == ["stdout"]
    assert store.search("numbat", kinds=["message", "note"]) == []
    assert store.search("wombat", session=session)[0].kind == "output"


def datasette_detects(conn: Any, table: str) -> str | None:
    """The SQL of datasette.utils.detect_fts_sql (datasette 0.64/1.0), run as it runs it."""
    sql = f"""
        select name from sqlite_master
            where rootpage = 0
            and (
                sql like '%VIRTUAL TABLE%USING FTS%content="{table}"%'
                or sql like '%VIRTUAL TABLE%USING FTS%content=[{table}]%'
                or (
                    tbl_name = "{table}"
                    and sql like '%VIRTUAL TABLE%USING FTS%'
                )
            )
    """
    rows = conn.execute(sql).fetchall()
    return rows[0][0] if rows else None


@pytest.mark.sqlite_only("Datasette's detection of SQLite's FTS5 tables in state.db")
def test_datasette_detects_every_fts_table(store: agentkeep.Store) -> None:
    import sqlite3

    conn = sqlite3.connect(store.db_path)
    try:
        found = {t: datasette_detects(conn, t) for t in ("messages", "notes", "tasks")}
        found |= {t: datasette_detects(conn, t) for t in ("captures", "artifacts")}
    finally:
        conn.close()
    assert found == {
        "messages": "messages_fts",
        "notes": "notes_fts",
        "tasks": "tasks_fts",
        "captures": "captures_fts",
        "artifacts": "artifacts_fts",
    }


def test_search_migration_indexes_what_older_schemas_stored(tmp_path: Any) -> None:
    """Rows stored before the search migration (messages, notes, captures, artifacts) are
    found after it, in FTS tables Datasette detects."""

    from agentkeep.backends.sqlite.connection import connect
    from agentkeep.backends.sqlite.migrate import split_statements
    from agentkeep.migrations import MIGRATIONS, migrate

    conn = connect(tmp_path / "old.db")
    try:
        search = next(m for m in MIGRATIONS if m.name == "search_everywhere")
        old = [m for m in MIGRATIONS if m.version < search.version]
        migrate(conn, backup_dir=None, app_version="test", migrations=old)
        at = "2026-03-01T10:00:00.000Z"
        script = f"""
            INSERT INTO sessions (id, source, status, started_at)
                VALUES (1, 'claude', 'ended', '{at}');
            INSERT INTO messages (session_id, seq, role, kind, text, external_id)
                VALUES (1, 0, 'user', 'text', 'the old axolotl message', 'm0');
            INSERT INTO messages (session_id, seq, role, kind, text, external_id)
                VALUES (1, 1, 'assistant', 'tool_use', NULL, 'm1');
            INSERT INTO captures (at, source, event, session_id, payload, dedupe_key)
                VALUES ('{at}', 'claude', 'prompt', 1, '{{"prompt": "old okapi prompt"}}', 'k1');
            INSERT INTO objects (sha256, size, stored_bytes, encoding, created_at)
                VALUES ('{"0" * 64}', 1, 1, 'identity', '{at}');
            INSERT INTO artifacts (sha256, kind, name, size, created_at)
                VALUES ('{"0" * 64}', 'file', 'old-tapir.log', 1, '{at}');
            """
        for statement in split_statements(script):
            conn.execute(statement)
        migrate(conn, backup_dir=None, app_version="test")

        def match(table: str, word: str) -> list[int]:
            sql = f"SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ?"
            return [row[0] for row in conn.execute(sql, (word,))]

        assert match("messages", "axolotl") == [1]
        assert match("captures", "okapi") == [1]
        assert match("artifacts", "tapir") == [1]
        assert (
            conn.execute(
                "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"
            ).fetchall()
            == []
        )
        assert {t: datasette_detects(conn, t) for t in ("messages", "captures")} == {
            "messages": "messages_fts",
            "captures": "captures_fts",
        }
    finally:
        conn.close()


def test_bundles_do_not_carry_the_derived_search_text(cli: Cli, store: agentkeep.Store) -> None:
    import tarfile

    session, _ = add_session(store, "bundled", [])
    add_capture(store, session, "prompt", {"prompt": "pack the llama"})
    target = store.root / "out.tar"
    assert cli("export", "--all", "-o", str(target)).exit_code == 0
    with tarfile.open(target) as archive:
        data = b"".join(
            archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        )
    assert b"pack the llama" in data and b"search_text" not in data


def test_since_finds_captures_stored_out_of_time_order(store: agentkeep.Store) -> None:
    """A delivery stored late (from the spool) with an earlier time is in its window."""
    session, _ = add_session(store, "spooled", [])
    ids_by_at = {}
    for at, word in [
        ("2026-03-01T10:00:00.000Z", "old"),
        ("2026-03-03T10:00:00.000Z", "new"),
        ("2026-03-02T10:00:00.000Z", "late"),  # stored last, delivered in between
    ]:
        ids_by_at[word] = write(
            store,
            lambda w, at=at, word=word: w.capture(
                source="claude", event="prompt", dedupe_key=word, session_id=session,
                payload={"prompt": f"gnu {word}"}, at=at,
            ),
        )  # fmt: skip
    found = ids(store.search("gnu", since="2026-03-02T00:00:00.000Z"), "capture")
    assert sorted(found) == sorted([ids_by_at["new"], ids_by_at["late"]])
    assert ids(store.search("gnu", since="2026-03-04T00:00:00.000Z"), "capture") == []


def test_what_the_hook_delivered_is_found_by_the_search_command(cli: Cli, project: Any) -> None:
    from conftest import run_agentkeep

    for payload in (
        {"session_id": "h-1", "hook_event_name": "UserPromptSubmit", "cwd": str(project),
         "prompt": "why is the kookaburra test flaky"},
        {"session_id": "h-1", "hook_event_name": "PostToolUse", "cwd": str(project),
         "tool_name": "Bash", "tool_use_id": "toolu_9",
         "tool_input": {"command": "pytest -k kookaburra"},
         "tool_response": {"stdout": "1 failed: wallaby timeout"}},
    ):  # fmt: skip
        done = run_agentkeep("hook", "claude", cwd=project, input=json.dumps(payload).encode())
        assert done.returncode == 0, done.stderr
    rows = cli("search", "kookaburra", "--json").json()
    assert sorted((r["kind"], r["label"]) for r in rows) == [
        ("capture", "Bash"),
        ("capture", "prompt"),
    ]
    assert [r["label"] for r in cli("search", "wallaby", "--kind", "capture", "--json").json()] == [
        "Bash"
    ]
    assert (project / ".agentkeep" / "hook-errors.log").exists() is False


def test_output_scan_reads_only_the_newest_bytes_and_numbers_lines_right(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentkeep.services.search as search_module

    lines = [f"row {i} {'ibex' if i in (1, 190) else 'filler'}\n".encode() for i in range(1, 201)]
    run_output(store, {"stdout": lines})
    monkeypatch.setattr(search_module, "OUTPUT_SCAN_BYTES", 200)
    assert [(h.line, h.snippet) for h in store.search("ibex")] == [(190, "row 190 «ibex»")]
    monkeypatch.setattr(search_module, "OUTPUT_SCAN_BYTES", 1 << 20)
    assert sorted(h.line for h in store.search("ibex")) == [1, 190]


# -- messages are indexed after they are stored (schema 8) ----------------------------------


def watermark(store: agentkeep.Store) -> int:
    row = store._conn.execute("SELECT indexed_to FROM search_index WHERE name = 'messages'")
    return int(row.fetchone()[0])


def indexed(store: agentkeep.Store) -> int:
    """How many messages messages_fts holds (one docsize row per indexed row)."""
    return int(store._conn.execute("SELECT count(*) FROM messages_fts_docsize").fetchone()[0])


def fts_intact(store: agentkeep.Store) -> None:
    """The index holds exactly the rows at or below the watermark, with their text."""
    store._conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    below = store._conn.execute(
        "SELECT count(*) FROM messages WHERE id <= ? AND text IS NOT NULL", (watermark(store),)
    ).fetchone()[0]
    assert indexed(store) == below


@pytest.mark.sqlite_only(
    "SQLite indexes messages after capture; PostgreSQL in the same transaction"
)
def test_messages_are_indexed_by_the_first_search_after_they_are_stored(
    store: agentkeep.Store,
) -> None:
    _, first = add_session(store, "a", ["alpha walrus", "beta"])
    store.search("beta")
    assert watermark(store) == first[-1] and indexed(store) == 2
    _, later = add_session(store, "b", ["gamma walrus", "delta walrus"])
    assert watermark(store) == first[-1] and indexed(store) == 2  # stored, not indexed
    assert sorted(ids(store.search("walrus"))) == sorted([first[0], *later])
    assert watermark(store) == later[-1]
    fts_intact(store)
    assert store.catch_up_search() == 0  # nothing left


@pytest.mark.sqlite_only(
    "SQLite indexes messages after capture; PostgreSQL in the same transaction"
)
def test_a_read_only_search_finds_the_messages_not_indexed_yet(
    store: agentkeep.Store, project: Any
) -> None:
    _, old = add_session(store, "a", ["walrus one", "nothing"])
    store.catch_up_search()
    _, new = add_session(store, "b", ["walrus two", "walrus walrus three"])
    with agentkeep.open(project, read_only=True) as reader:
        hits = reader.search("walrus")
        assert sorted(ids(hits)) == sorted([old[0], new[0], new[1]])
        snippets = {hit.id: hit.snippet for hit in hits}
        assert snippets[new[1]] == "«walrus» «walrus» three"
        assert ids(reader.search("walr*", session=2)) == [new[1], new[0]]
        assert reader.catch_up_search() == 0  # it cannot write
        # What another process commits meanwhile is seen (the temporary index is refilled):
        # a new message, and a rewritten one no longer found by its old words.
        _, more = add_session(store, "c", ["walrus four"])
        assert sorted(ids(reader.search("walrus"))) == sorted([old[0], *new, more[0]])
        with store.transaction() as tx:  # the same rows, one of them rewritten
            tx.conn.execute("UPDATE messages SET text = 'narwhal' WHERE id = ?", (new[0],))
        assert ids(reader.search("narwhal")) == [new[0]]
        assert sorted(ids(reader.search("walrus"))) == sorted([old[0], new[1], more[0]])
    assert watermark(store) == old[-1]  # untouched by the reader
    # Once caught up, the same rows are found through the index.
    store.catch_up_search()
    with agentkeep.open(project, read_only=True) as reader:
        assert sorted(ids(reader.search("walrus"))) == sorted([old[0], new[1], more[0]])


@pytest.mark.sqlite_only("SQLite's search watermark")
def test_deleting_and_rewriting_messages_on_both_sides_of_the_watermark_keeps_the_index_exact(
    store: agentkeep.Store,
) -> None:
    _, old = add_session(store, "a", ["walrus kept", "walrus gone", "walrus rewritten"])
    store.catch_up_search()
    _, new = add_session(store, "b", ["walrus new gone", "walrus new rewritten", "last"])
    conn = store._conn
    with store.transaction() as tx:
        tx.conn.execute("DELETE FROM messages WHERE id IN (?, ?)", (old[1], new[0]))
        tx.conn.execute("UPDATE messages SET text = 'narwhal' WHERE id IN (?, ?)", (old[2], new[1]))
    fts_intact(store)  # nothing above the watermark touched the index
    assert store.catch_up_search() == 2  # new[1] and new[2]
    fts_intact(store)
    assert ids(store.search("walrus")) == [old[0]]
    assert sorted(ids(store.search("narwhal"))) == sorted([old[2], new[1]])
    # The newest row deleted, its id is used again at or below the watermark: indexed at once.
    with store.transaction() as tx:
        tx.conn.execute("DELETE FROM messages WHERE id = ?", (new[2],))
    _, again = add_session(store, "c", ["walrus reborn"])
    assert again == [new[2]] and watermark(store) == new[2]
    fts_intact(store)
    found = conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'reborn'")
    assert [row[0] for row in found] == [new[2]]


def test_a_bundle_import_leaves_its_messages_indexed(store: agentkeep.Store, tmp_path: Any) -> None:
    import subprocess

    from agentkeep.ops.bundle_export import export_bundle
    from agentkeep.ops.bundle_import import import_bundle

    add_session(store, "a", ["walrus in a bundle", "nothing"])
    bundle = tmp_path / "b.tar"
    export_bundle(store, bundle, all=True)
    target = tmp_path / "target"
    target.mkdir()
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    agentkeep.init_store(target)
    with agentkeep.open(target) as other:
        import_bundle(other, bundle)
        assert watermark(other) == other._conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        assert indexed(other) == 2


@pytest.mark.sqlite_only("SQLite's search watermark")
def test_doctor_full_reports_messages_missing_below_the_watermark_only(
    store: agentkeep.Store,
) -> None:
    from agentkeep.ops.doctor import diagnose

    def search_findings() -> list[str]:
        report = diagnose(store, full=True)
        return [f.message for f in report.findings if f.check == "search-index"]

    _, first = add_session(store, "a", ["walrus one", "walrus two"])
    store.catch_up_search()
    add_session(store, "b", ["not indexed yet"])  # above the watermark: no problem
    assert search_findings() == []
    with store.transaction() as tx:  # damage: an indexed message lost from the index
        tx.conn.execute(
            "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', ?, ?)",
            (first[0], "walrus one"),
        )
    assert search_findings() == ["messages missing from the full-text index: 1"]


@pytest.mark.sqlite_only(
    "SQLite's search watermark (PostgreSQL indexes in the writing transaction)"
)
def test_a_catch_up_indexes_a_large_backlog_in_short_transactions(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkeep.backends.sqlite.search import SQLiteSearch
    from agentkeep.services import search as service

    monkeypatch.setattr(service, "CATCH_UP_ROWS", 2)
    marks: list[int] = []
    real = SQLiteSearch.catch_up

    def recorded(self: Any, conn: Any, **options: Any) -> int:
        done = real(self, conn, **options)
        marks.append(int(conn.execute("SELECT indexed_to FROM search_index").fetchone()[0]))
        return done

    monkeypatch.setattr(SQLiteSearch, "catch_up", recorded)
    _, new = add_session(store, "a", [f"walrus {n}" for n in range(5)])
    assert store.catch_up_search() == 5
    assert marks == [new[1], new[3], new[4]]  # three transactions of two rows at most
    fts_intact(store)
    assert sorted(ids(store.search("walrus"))) == sorted(new)


@pytest.mark.sqlite_only("SQLite's search watermark")
def test_a_search_inside_a_transaction_finds_the_messages_it_stored(
    store: agentkeep.Store,
) -> None:
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        session = writer.session("claude", "inside")
        row = writer.message(
            session, seq=0, external_id="m", role="user", kind="text", text="walrus"
        )
        # The catch-up cannot run in the caller's transaction: the row is searched directly.
        assert ids(store.search("walrus")) == [row]
    assert ids(store.search("walrus")) == [row] and watermark(store) == row
