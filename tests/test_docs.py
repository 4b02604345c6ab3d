"""Documents (issue 13, services/docs.py): the file format, writes through agentkeep and
their outcomes, optimistic concurrency, schemas and quotas, versions and recoverable
deletes, links, list filters, project roots, events and search. Files are the truth: every
test reads the file itself as well as what the index says."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentkeep
from agentkeep.config import set_in_file
from agentkeep.documents import format as docformat
from agentkeep.errors import Conflict, InvalidInput, NotFound, StaleWrite, StorageFull
from agentkeep.services.docs import etag_of, split_ref


def doc_file(store: agentkeep.Store, ref: str, suffix: str = ".md") -> Path:
    return store.store_dir / "docs" / f"{ref}{suffix}"


def declare(store: agentkeep.Store, namespace: str, types: dict[str, Any], toml: str = "") -> None:
    directory = store.store_dir / "schemas" / namespace
    directory.mkdir(parents=True, exist_ok=True)
    for name, schema in types.items():
        (directory / f"{name}.json").write_text(json.dumps(schema))
    if toml:
        (directory / "namespace.toml").write_text(toml)


def set_roots(project: Path, value: str) -> None:
    set_in_file(project / ".agentkeep" / "config.toml", "docs.roots", value)


DECISION = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["proposed", "accepted", "superseded"]}},
}


# -- the format ------------------------------------------------------------------------------


def test_yaml_front_matter_round_trips() -> None:
    fields = {"type": "decision", "title": "Use SQLite", "tags": ["storage", "db"], "n": 3}
    text = docformat.render(fields, "# Use SQLite\n\nBecause.\n", "markdown")
    assert text.startswith("---\n") and "\n---\n# Use SQLite" in text
    parsed = docformat.parse(text, ".md")
    assert (parsed.format, parsed.front, parsed.problems) == ("markdown", "yaml", [])
    assert parsed.fields == fields
    assert parsed.body == "# Use SQLite\n\nBecause.\n"
    assert parsed.type == "decision" and parsed.tags() == ["db", "storage"]


def test_json_front_matter_round_trips() -> None:
    fields = {"type": "message", "to": ["a", "b"], "yes": "yes", "on": "2024-01-01"}
    text = docformat.render(fields, "hello\n", "markdown", front="json")
    assert text.startswith("---json\n")
    parsed = docformat.parse(text, ".md")
    assert (parsed.front, parsed.fields, parsed.body) == ("json", fields, "hello\n")


def test_json_documents_round_trip() -> None:
    fields = {"type": "lead", "score": 7, "nested": {"a": [1, 2]}}
    text = docformat.render(fields, "", "json")
    parsed = docformat.parse(text, ".json")
    assert (parsed.format, parsed.fields, parsed.body) == ("json", fields, "")
    assert docformat.parse("[1, 2]", ".json").problems == ["a JSON document must be an object"]
    assert docformat.parse("{nope", ".json").format == "text"


def test_yaml_values_json_lacks_become_text() -> None:
    parsed = docformat.parse("---\ndate: 2024-05-01\n1: one\n---\nx\n", ".md")
    assert parsed.fields == {"date": "2024-05-01", "1": "one"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\ntype: [unclosed\n---\nbody\n", "not valid YAML"),
        ("---\ntitle: x\nbody without a close\n", "never closed"),
        ("---\n- a\n- b\n---\nbody\n", "must be a mapping"),
        ("---json\n{bad json}\n---\nbody\n", "not valid JSON"),
    ],
)
def test_bad_front_matter_is_a_problem_never_an_error(text: str, problem: str) -> None:
    parsed = docformat.parse(text, ".md")
    assert parsed.fields == {}
    assert any(problem in p for p in parsed.problems), parsed.problems
    assert "body" in parsed.body


_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_BODIES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200) | st.sampled_from(
    ["---\nlooks: like front matter\n---\n", "---json\n{}\n---\nx", "\ufeffbom", "---"]
)


@settings(
    max_examples=int(os.environ.get("DOCS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    fields=st.dictionaries(_KEYS, _VALUES, max_size=6),
    body=_BODIES,
    front=st.sampled_from(["yaml", "json"]),
)
def test_render_then_parse_is_the_identity(fields: dict[str, Any], body: str, front: str) -> None:
    """The restricted subset: JSON-compatible fields (text keys; None, bool, int, text,
    lists, mappings) and any body. render → parse gives the same fields and body."""
    text = docformat.render(fields, body, "markdown", front=front)
    parsed = docformat.parse(text, ".md")
    assert parsed.problems == []
    assert parsed.fields == fields
    assert parsed.body == body
    as_json = docformat.parse(docformat.render(fields, "", "json"), ".json")
    assert as_json.fields == fields


def test_links_from_front_matter_and_text() -> None:
    fields = {"links": {"supersedes": ["decisions/0001"], "relates": "specs/a"}}
    body = (
        "See [[specs/storage]] and [[Storage|the storage spec]].\n"
        "- implements [[specs/api]]\n"
        "#[[file:src/main.py]]\n"
        "```\n[[not/a-link]]\n```\n"
    )
    assert docformat.links(fields, body) == [
        ("implements", "specs/api"),
        ("includes", "src/main.py"),
        ("links_to", "Storage"),
        ("links_to", "specs/storage"),
        ("relates", "specs/a"),
        ("supersedes", "decisions/0001"),
    ]


def test_chunks_follow_headings_outside_fences() -> None:
    parsed = docformat.parse(
        "intro\n# Design\ntext\n## Storage\nmore\n```\n# not a heading\n```\n# Other\nend\n", ".md"
    )
    found = [(c.heading, c.level) for c in docformat.chunks(parsed)]
    assert found == [("", 0), ("Design", 1), ("Design › Storage", 2), ("Other", 1)]
    long = docformat.parse("# H\n" + "\n\n".join("w" * 100 for _ in range(30)), ".md")
    pieces = docformat.chunks(long, max_chars=500)
    assert len(pieces) > 5 and all(len(p.text) <= 500 for p in pieces)


def test_refs_are_validated() -> None:
    assert split_ref("decisions/0001-storage") == ("decisions", "0001-storage")
    assert split_ref("specs/api/v2") == ("specs", "api/v2")
    for bad in ("nonamespace", "Upper/x", "a/../b", "a/.hidden", "a/", "a/b/"):
        with pytest.raises(InvalidInput):
            split_ref(bad if bad != "a/b/" else "a//b")


# -- writes and their outcomes ---------------------------------------------------------------


def test_write_create_update_unchanged_already_exists(store: agentkeep.Store) -> None:
    docs = store.docs
    first = docs.write_doc("notes/plan", fields={"title": "Plan"}, body="# Plan\n", create=True)
    assert first.outcome == "created"
    path = doc_file(store, "notes/plan")
    assert path.read_text() == "---\ntitle: Plan\n---\n# Plan\n"
    assert first.item.etag == etag_of(path.read_bytes())
    assert (first.item.ref, first.item.path) == ("notes/plan", ".agentkeep/docs/notes/plan.md")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = docs.write_doc("notes/plan", fields={"title": "Plan"}, body="# Plan\n", create=True)
    assert again.outcome == "already_exists" and again.item.etag == first.item.etag
    with pytest.raises(Conflict, match="already exists"):
        docs.write_doc("notes/plan", body="# Other\n", create=True)
    same = docs.write_doc("notes/plan", body="# Plan\n")
    assert same.outcome == "unchanged"
    edited = docs.write_doc("notes/plan", body="# Plan\n\nmore\n")  # fields kept
    assert edited.outcome == "updated"
    assert path.read_text() == "---\ntitle: Plan\n---\n# Plan\n\nmore\n"
    with pytest.raises(NotFound):
        docs.write_doc("notes/missing", body="x", create=False)
    assert not doc_file(store, "notes/missing").exists()
    json_doc = docs.write_doc("leads/acme", fields={"score": 3}, fmt="json")
    assert json.loads(doc_file(store, "leads/acme", ".json").read_text()) == {"score": 3}
    assert json_doc.item.format == "json"
    assert docs.read_doc("leads/acme").fields == {"score": 3}


def test_a_stale_write_is_refused_with_what_changed(store: agentkeep.Store) -> None:
    docs = store.docs
    start = docs.write_doc("specs/api", fields={"owner": "a"}, body="v1\n").item.etag
    docs.write_doc("specs/api", fields={"owner": "b", "state": "x"}, body="v2\n", expect=start)
    with pytest.raises(StaleWrite) as caught:
        docs.write_doc("specs/api", body="mine\n", expect=start)
    details = caught.value.details
    now = etag_of(doc_file(store, "specs/api").read_bytes())
    assert details["expected_etag"] == start and details["current_etag"] == now
    assert details["fields"] == ["owner", "state"]
    assert details["changed_fields"] == ["owner", "state"] and details["body_changed"] is True
    assert "changed since" in caught.value.message
    assert "fields owner, state and its text changed" in caught.value.message
    assert docs.read_doc("specs/api").body == "v2\n"  # the refused write changed nothing
    forced = docs.write_doc("specs/api", body="mine\n", expect=start, force=True)
    assert forced.outcome == "updated" and docs.read_doc("specs/api").body == "mine\n"
    docs.remove_doc("specs/api")
    with pytest.raises(StaleWrite, match="deleted"):
        docs.write_doc("specs/api", body="again\n", expect=now)


def test_an_outside_edit_is_stale_and_kept_as_a_version(store: agentkeep.Store) -> None:
    docs = store.docs
    etag = docs.write_doc("notes/a", body="ours\n").item.etag
    doc_file(store, "notes/a").write_text("theirs\n")
    with pytest.raises(StaleWrite):
        docs.write_doc("notes/a", body="ours 2\n", expect=etag)
    docs.write_doc("notes/a", body="ours 2\n")
    changes = [(v.change, v.size) for v in docs.history("notes/a")]
    assert changes == [("created", 5), ("outside", 7), ("edited", 7)]
    outside = docs.history("notes/a")[1]
    assert docs.read_doc("notes/a", version=outside.id).text == "theirs\n"


def test_schemas_validate_writes_and_index_problems(store: agentkeep.Store) -> None:
    declare(store, "decisions", {"decision": DECISION})
    docs = store.docs
    ok = docs.write_doc("decisions/0001", fields={"type": "decision", "status": "accepted"})
    assert ok.outcome == "created" and ok.item.problems == []
    with pytest.raises(InvalidInput, match="status"):
        docs.write_doc("decisions/0002", fields={"type": "decision", "status": "maybe"})
    with pytest.raises(InvalidInput, match="not declared"):
        docs.write_doc("decisions/0003", fields={"type": "memo"})
    assert docs.write_doc("decisions/0006", fields={"status": "proposed"}).outcome == "created"
    # no type, in a namespace of one declared type: that type (its schema applies)
    with pytest.raises(InvalidInput, match="status"):
        docs.write_doc("decisions/0004", body="no type\n")
    declare(store, "decisions", {"memo": {"type": "object"}})
    with pytest.raises(InvalidInput, match="needs a type"):
        docs.write_doc("decisions/0004", body="no type\n")
    with pytest.raises(InvalidInput, match="not declared"):
        docs.write_doc("decisions/0003", fields={"type": "minutes"})
    assert not (store.store_dir / "docs" / "decisions" / "0002.md").exists()
    # a file written by hand that fails is indexed with its problems, never refused
    bad = doc_file(store, "decisions/0005")
    bad.write_text("---\ntype: decision\nstatus: maybe\n---\nhand written\n")
    before = bad.read_bytes()
    store.docs.refresh()
    doc = docs.get_doc("decisions/0005", refresh=False)
    assert doc.problems and "status" in doc.problems[0]
    assert bad.read_bytes() == before
    # 0006 had no type when its namespace had one; with two declared it needs one: the
    # index re-checks unchanged documents against the schemas as they are now
    assert [d.ref for d in docs.validate()] == ["decisions/0005", "decisions/0006"]
    # another namespace is free-form
    assert docs.write_doc("scratch/x", fields={"type": "anything"}).outcome == "created"


def test_a_broken_schema_file_is_a_clear_error(store: agentkeep.Store) -> None:
    directory = store.store_dir / "schemas" / "decisions"
    directory.mkdir(parents=True)
    (directory / "decision.json").write_text('{"type": "object", "required": 3}')
    with pytest.raises(InvalidInput, match=r"decision\.json .*not a valid JSON Schema"):
        store.docs.write_doc("decisions/1", fields={"type": "decision"})
    (directory / "decision.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="not a valid JSON Schema"):
        store.docs.write_doc("decisions/1", fields={"type": "decision"})
    (directory / "namespace.toml").write_text("max_docs = [")
    with pytest.raises(InvalidInput, match=r"namespace\.toml"):
        store.docs.write_doc("decisions/1", fields={"type": "decision"})
    # … and only that namespace: the others are read and written, and a file of the
    # broken one is indexed with the reason as its problem.
    (store.store_dir / "docs" / "decisions").mkdir(parents=True)
    (store.store_dir / "docs" / "decisions" / "2.md").write_text("---\ntype: decision\n---\n")
    assert store.docs.write_doc("notes/fine", body="ok\n").outcome == "created"
    indexed = {doc.ref: doc for doc in store.docs.list_docs()}
    assert "notes/fine" in indexed
    assert any("namespace.toml" in problem for problem in indexed["decisions/2"].problems)


def test_quotas_refuse_with_storage_full(store: agentkeep.Store) -> None:
    declare(store, "small", {}, "max_docs = 2\nmax_bytes = 100\n")
    declare(store, "tiny", {}, 'max_bytes = "1KB"\n')
    docs = store.docs
    docs.write_doc("small/a", body="a\n")
    docs.write_doc("small/b", body="b\n")
    with pytest.raises(StorageFull, match="quota of 2 documents"):
        docs.write_doc("small/c", body="c\n")
    assert not doc_file(store, "small/c").exists()
    docs.write_doc("small/a", body="a" * 60 + "\n")  # replacing one counts its new size
    with pytest.raises(StorageFull, match="over its quota of 100"):
        docs.write_doc("small/b", body="b" * 60 + "\n")
    assert doc_file(store, "small/b").read_text() == "b\n"
    docs.write_doc("tiny/a", body="x" * 900)
    with pytest.raises(StorageFull):
        docs.write_doc("tiny/b", body="y" * 200)
    docs.remove_doc("small/a")
    assert docs.write_doc("small/c", body="c\n").outcome == "created"


def test_versions_history_remove_and_restore(store: agentkeep.Store) -> None:
    docs = store.docs
    docs.write_doc("notes/log", body="one\n")
    docs.write_doc("notes/log", body="two\n")
    docs.write_doc("notes/log", body="three\n")
    versions = docs.history("notes/log")
    assert [v.change for v in versions] == ["created", "edited", "edited"]
    assert docs.read_doc("notes/log", version=versions[0].id).body == "one\n"
    assert docs.read_doc("notes/log", version=versions[1].id).etag == versions[1].etag
    removed = docs.remove_doc("notes/log")
    assert removed.ref == "notes/log" and not doc_file(store, "notes/log").exists()
    with pytest.raises(NotFound):
        docs.get_doc("notes/log")
    history = docs.history("notes/log")
    assert [v.change for v in history] == ["created", "edited", "edited", "deleted"]
    with pytest.raises(NotFound, match="deletion"):
        docs.read_doc("notes/log", version=history[-1].id)
    restored = docs.restore_doc("notes/log")
    assert restored.outcome == "created"
    assert doc_file(store, "notes/log").read_text() == "three\n"
    docs.restore_doc("notes/log", version=versions[0].id)
    assert doc_file(store, "notes/log").read_text() == "one\n"
    assert [v.change for v in docs.history("notes/log")][-2:] == ["restored", "restored"]
    with pytest.raises(NotFound):
        docs.read_doc("notes/other", version=versions[0].id)  # not that document's version
    with pytest.raises(NotFound):
        docs.restore_doc("notes/log", version=10_000)


def test_links_and_backlinks(store: agentkeep.Store) -> None:
    docs = store.docs
    docs.write_doc("specs/storage", fields={"title": "Storage"}, body="# Storage\n")
    docs.write_doc(
        "decisions/0002",
        fields={"links": {"supersedes": "decisions/0001"}},
        body="See [[specs/storage]] and [[Storage]].\n- implements [[specs/storage]]\n",
    )
    docs.write_doc("specs/api", body="Relies on [[storage]].\n")
    links = {
        (link["relation"], link["target"], link["ref"]) for link in docs.links("decisions/0002")
    }
    assert links == {
        ("supersedes", "decisions/0001", None),  # not written yet: unresolved
        ("links_to", "specs/storage", "specs/storage"),
        ("links_to", "Storage", "specs/storage"),
        ("implements", "specs/storage", "specs/storage"),
    }
    assert docs.links("specs/api")[0]["ref"] == "specs/storage"  # same-namespace name
    back = {(b["ref"], b["relation"]) for b in docs.backlinks("specs/storage")}
    assert back == {
        ("decisions/0002", "links_to"),
        ("decisions/0002", "implements"),
        ("specs/api", "links_to"),
    }
    docs.write_doc("decisions/0001", body="old\n")
    assert docs.links("decisions/0002")[-1]["ref"] == "decisions/0001"


def test_list_filters(store: agentkeep.Store) -> None:
    docs = store.docs
    docs.write_doc("campaigns/spring", fields={"type": "campaign", "tags": ["q2", "ads"]})
    docs.write_doc("campaigns/fall", fields={"type": "campaign", "tags": "q4", "live": True})
    docs.write_doc("campaigns/note", fields={"type": "memo", "owners": ["ann", "bo"]})
    docs.write_doc("leads/acme", fields={"type": "lead", "score": 7}, fmt="json")

    def refs(**filters: Any) -> list[str]:
        return [doc.ref for doc in docs.list_docs(**filters)]

    assert refs() == ["campaigns/fall", "campaigns/note", "campaigns/spring", "leads/acme"]
    assert refs(namespace="leads") == ["leads/acme"]
    assert refs(type="campaign") == ["campaigns/fall", "campaigns/spring"]
    assert refs(tag="q4") == ["campaigns/fall"]
    assert refs(where={"score": "7"}) == ["leads/acme"]
    assert refs(where={"live": "true"}) == ["campaigns/fall"]
    assert refs(where={"owners": "bo"}) == ["campaigns/note"]
    assert refs(namespace="campaigns", type="campaign", tag="ads") == ["campaigns/spring"]
    assert refs(namespace="nothing") == []
    assert refs(limit=1) == ["campaigns/fall"]


def test_project_roots_are_read_and_never_rewritten(project: Path) -> None:
    (project / "input" / "campaigns").mkdir(parents=True)
    (project / "notes").mkdir()
    spring = project / "input" / "campaigns" / "spring.md"
    spring.write_text("---\ntype: campaign\nbudget: 10\n---\n# Spring\n")
    (project / "notes" / "todo.md").write_text("# Todo\n[[campaigns/spring]]\n")
    (project / "notes" / ".hidden.md").write_text("no\n")
    (project / "notes" / "image.png").write_bytes(b"\x89PNG")
    set_roots(project, "input/campaigns:campaigns,notes")
    before = spring.read_bytes()
    with agentkeep.open(project) as store:
        report = store.docs.refresh()
        assert report.added == 2
        docs = {doc.ref: doc for doc in store.docs.list_docs(refresh=False)}
        assert set(docs) == {"campaigns/spring", "notes/todo"}
        assert docs["campaigns/spring"].origin == "project"
        assert docs["campaigns/spring"].path == "input/campaigns/spring.md"
        assert docs["campaigns/spring"].fields["budget"] == 10
        assert store.docs.backlinks("campaigns/spring")[0]["ref"] == "notes/todo"
        # a write to a project root's namespace goes to that root's directory
        store.docs.write_doc("campaigns/fall", fields={"type": "campaign"}, body="x\n")
        assert (project / "input" / "campaigns" / "fall.md").is_file()
        assert not (store.store_dir / "docs" / "campaigns").exists()
        assert store.docs.refresh().unchanged == 3
    assert spring.read_bytes() == before


def test_gitignore_upgrade_and_local_namespaces(store: agentkeep.Store) -> None:
    from agentkeep.store import GITIGNORE, OLD_GITIGNORES

    gitignore = store.store_dir / ".gitignore"
    gitignore.write_text(OLD_GITIGNORES[0])
    declare(store, "scratch", {}, "local = true\n")
    store.docs.write_doc("shared/a", body="x\n")
    assert gitignore.read_text() == GITIGNORE
    store.docs.write_doc("scratch/a", body="x\n")
    assert (store.store_dir / "docs" / "scratch" / ".gitignore").read_text().endswith("*\n")
    assert not (store.store_dir / "docs" / "shared" / ".gitignore").exists()
    ignored = _git(store.root, "check-ignore", "-q", ".agentkeep/docs/scratch/a.md")
    tracked = _git(store.root, "check-ignore", "-q", ".agentkeep/docs/shared/a.md")
    assert (ignored, tracked) == (0, 1)
    custom = "# mine\n*\n"
    gitignore.write_text(custom)  # a user's own .gitignore is never replaced
    store.docs.write_doc("shared/b", body="x\n")
    assert gitignore.read_text() == custom


def _git(cwd: Path, *args: str) -> int:
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True).returncode


def test_every_change_emits_one_event(store: agentkeep.Store) -> None:
    docs = store.docs
    start = store.events(newest_first=True, limit=1)
    after = start[0].seq if start else 0
    docs.write_doc("notes/a", body="1\n")
    docs.write_doc("notes/a", body="2\n")
    docs.write_doc("notes/a", body="2\n")  # unchanged: no event
    docs.remove_doc("notes/a")
    docs.restore_doc("notes/a")
    doc_file(store, "notes/b").write_text("outside\n")
    docs.refresh()
    doc_file(store, "notes/b").unlink()
    docs.refresh()
    kinds = [e.kind for e in store.events(after=after, entity="doc")]
    assert kinds == [
        "doc.created",
        "doc.edited",
        "doc.deleted",
        "doc.restored",
        "doc.changed",
        "doc.vanished",
    ]


def test_search_finds_sections(store: agentkeep.Store) -> None:
    store.docs.write_doc(
        "specs/storage",
        fields={"title": "Storage"},
        body="# Storage\nintro\n## Write ahead log\nthe zebrafish checkpoint\n## Other\nnone\n",
    )
    hits = store.search("zebrafish", kinds=["doc"])
    assert len(hits) == 1
    hit = hits[0].to_dict()
    assert "zebrafish" in json.dumps(hit)
    assert "Write ahead log" in json.dumps(hit)
    doc_file(store, "specs/outside").write_text("# Outside\nplatypus here\n")
    os.utime(store.store_dir / "docs" / "specs")  # (no effect on the rescan: it stats files)
    store.docs.refresh()
    assert len(store.search("platypus", kinds=["doc"])) == 1
    store.docs.remove_doc("specs/storage")
    assert store.search("zebrafish", kinds=["doc"]) == []


def test_locks_refuse_other_writers(store: agentkeep.Store) -> None:
    from agentkeep.documents.leases import Holder
    from agentkeep.files import HOST

    docs = store.docs
    docs.write_doc("notes/a", body="1\n")
    other = Holder(HOST, 1, Holder.me().started)  # pid 1 runs, with another start time…
    other = Holder("elsewhere.example", 4242, "x.1")  # …so use another host, lease 1 h
    docs.lock("notes/a", holder=other, lease_s=3600)
    with pytest.raises(Conflict, match=r"locked by elsewhere\.example"):
        docs.write_doc("notes/a", body="2\n")
    with pytest.raises(Conflict):
        docs.remove_doc("notes/a")
    with pytest.raises(Conflict):
        docs.unlock("notes/a")
    assert docs.write_doc("notes/a", body="2\n", force=True).outcome == "updated"
    assert docs.unlock("notes/a", holder=other)
    mine = docs.lock("notes/a")
    assert docs.write_doc("notes/a", body="3\n").outcome == "updated"  # the holder writes
    assert [lock.path for lock in docs.locks()] == [mine.path]
    assert docs.unlock("notes/a") and not docs.unlock("notes/a")


def test_a_rescan_of_an_unchanged_tree_only_stats(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cheap rescan (issue 13: "keyed on size, mtime and hash"): when no file changed,
    ``refresh()`` opens no document file, it only stats them."""
    import builtins

    (project / "notes").mkdir()
    for i in range(20):
        (project / "notes" / f"n{i}.md").write_text(f"# Note {i}\nbody\n")
    set_roots(project, "notes")
    with agentkeep.open(project) as store:
        for i in range(20):
            store.docs.write_doc(f"mine/d{i}", body=f"# Doc {i}\n")
        assert store.docs.refresh().added == 20
        # files left alone: modified well before they were indexed (a file modified in
        # the same moment it was indexed is hashed again by the next rescan: see below)
        for path in [*project.joinpath("notes").iterdir(), *store.docs.docs_dir.rglob("*.md")]:
            os.utime(path, (1_600_000_000, 1_600_000_000))
        store.docs.refresh()
        opened: list[str] = []
        real_open, real_os_open = builtins.open, os.open

        def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            opened.append(str(file))
            return real_open(file, *args, **kwargs)

        def spy_os_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            opened.append(str(path))
            return real_os_open(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", spy_open)
        monkeypatch.setattr(os, "open", spy_os_open)
        real_read_bytes = Path.read_bytes

        def spy_read_bytes(self: Path) -> bytes:
            opened.append(str(self))
            return real_read_bytes(self)

        monkeypatch.setattr(Path, "read_bytes", spy_read_bytes)
        report = store.docs.refresh()
        assert (report.unchanged, report.added, report.updated) == (40, 0, 0)
        documents = [p for p in opened if p.endswith(".md")]
        assert documents == []
        # the spy sees reads: a changed file is read
        (project / "notes" / "n3.md").write_text("# Note 3\nchanged body\n")
        assert store.docs.refresh().updated == 1
        assert [p for p in opened if p.endswith(".md")] == [str(project / "notes" / "n3.md")]


def test_odd_user_files_are_indexed_never_refused(project: Path) -> None:
    """A user's own file is indexed as well as it can be: NUL bytes, invalid UTF-8, a
    JSON document whose fields are larger than a stored field may be, a huge title. The
    rescan never fails because of one file's content."""
    own = project / "inbox"
    own.mkdir()
    (own / "nul.md").write_bytes(b"# Nul\nbefore\x00after\n")
    (own / "latin1.md").write_bytes(b"# Caf\xe9\nna\xefve\n")
    big = {"items": ["x" * 1000 for _ in range(1500)], "type": "dump"}
    (own / "big.json").write_text(json.dumps(big))
    (own / "title.md").write_text("---\ntitle: " + "t" * 2_000_000 + "\n---\nbody\n")
    (own / "fine.md").write_text("# Fine\n")
    set_roots(project, "inbox")
    with agentkeep.open(project) as store:
        report = store.docs.refresh()
        assert report.added == 5, report.to_dict()
        docs = {doc.name: doc for doc in store.docs.list_docs(refresh=False)}
        assert set(docs) == {"nul", "latin1", "big", "title", "fine"}
        assert docs["big"].type == "dump" and docs["big"].problems
        assert docs["title"].title is not None and len(docs["title"].title) < 10_000
        assert store.search("after", kinds=["doc"]) or store.search("before", kinds=["doc"])
        rebuilt = store.docs.refresh(rebuild=True)
        assert rebuilt.updated == 5 and rebuilt.added == 0  # re-indexed in place


def test_the_walk_finds_what_source_for_accepts(store: agentkeep.Store) -> None:
    """The rescan's walk (string arithmetic, for speed) agrees with :meth:`source_for`
    on odd names: case, several dots, hidden files and directories, temp files, spaces."""
    import os

    from agentkeep.services.docs import Root

    names = [
        "a.md", "b.MD", "c.json", "d.txt", "e.tar.md", ".hidden.md", "x.md.tmp-1-ab", "noext",
        "f.png", "g.", "ns/h.md", "Upper/i.md", "ns/sub/j.markdown", "ns/.dot/k.md",
        "ns/sub/.l.md", "ns/m n.md", "ns/x.y.z.yaml",
    ]  # fmt: skip
    for where, namespace in ((".agentkeep/docs", None), ("notes", "notes"), ("a/b/c", "mine")):
        for name in names:
            path = store.root / where / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        root = Root(store.root / where, namespace, "project")
        expected = []
        for directory, dirnames, filenames in os.walk(root.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                found = store.docs.source_for(root, Path(directory) / filename)
                if found is not None:
                    expected.append(found)
        assert list(store.docs._walk(root)) == expected
        assert len(expected) == (4 if namespace is None else 10)


def test_a_same_size_edit_in_the_same_clock_tick_is_indexed(store: agentkeep.Store) -> None:
    """File times are coarse (a jiffy on Linux): a same-size rewrite right after the file
    was indexed can keep the size and mtime the index holds. Such an entry is "racy" and
    its content is hashed again, until it was indexed well after its last change."""
    path = doc_file(store, "notes/state")
    path.parent.mkdir(parents=True)
    path.write_text('{"step": 1}\n')
    store.docs.refresh()
    first = path.stat()
    path.write_text('{"step": 2}\n')  # same size…
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))  # …in the same tick
    report = store.docs.refresh()
    assert report.updated == 1
    assert store.docs.read_doc("notes/state").body == '{"step": 2}\n'
    assert len(store.search("step", kinds=["doc"])) == 1


def test_bad_front_matter_is_indexed_with_problems_and_never_rewritten(
    store: agentkeep.Store,
) -> None:
    base = store.docs.docs_dir / "notes"
    base.mkdir(parents=True)
    files = {
        "yaml": "---\ntitle: [unclosed\n---\n# Yaml\nzebu text\n",
        "open": "---\ntitle: never closed\n# Open\n",
        "json": "---json\n{nope}\n---\n# Json\n",
        "list": "---\n- a\n---\n# List\n",
    }
    for name, text in files.items():
        (base / f"{name}.md").write_text(text)
    store.docs.refresh()
    for name, text in files.items():
        doc = store.docs.get_doc(f"notes/{name}", refresh=False)
        assert doc.problems and doc.fields == {}, (name, doc.problems)
        assert (base / f"{name}.md").read_text() == text
    assert store.docs.get_doc("notes/yaml", refresh=False).title == "Yaml"
    assert len(store.search("zebu", kinds=["doc"])) == 1
    assert {d.ref for d in store.docs.list_docs(problems=True, refresh=False)} == {
        f"notes/{name}" for name in files
    }
    assert store.docs.get_doc(".agentkeep/docs/notes/yaml.md").ref == "notes/yaml"  # by path
