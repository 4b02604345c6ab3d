"""Documents: what a review of the core found, each pinned by a test that failed before.

- content another program wrote is kept as a version *before* the transaction that
  replaces or removes it, so a kill -9 after the rename or unlink cannot lose it;
- a symbolic link in a documents directory is never followed (not indexed, not read);
- a name a temp file would have is refused, not written and then lost by the index;
- a file that is not UTF-8 is not rewritten through a lossy decoding;
- a rescan never drops a document another writer added during its walk, and a rebuild
  re-indexes in place (readers never see an empty index);
- a file too large to index is indexed by name, and doctor stays quiet about it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import agentkeep
from agentkeep.errors import InvalidInput

from conftest import run_agentkeep


def doc_path(store: agentkeep.Store, ref: str) -> Path:
    namespace, name = ref.split("/", 1)
    return store.store_dir / "docs" / namespace / f"{name}.md"


@pytest.mark.parametrize(
    ("command", "failpoint"),
    [(("doc", "edit", "notes/a", "--body", "new text"), "doc:after_rename"),
     (("doc", "rm", "notes/a"), "doc:after_unlink")],
)  # fmt: skip
def test_outside_content_survives_a_kill_after_the_rename_or_unlink(
    store: agentkeep.Store, project: Path, command: tuple[str, ...], failpoint: str
) -> None:
    store.docs.write_doc("notes/a", body="v1\n")
    doc_path(store, "notes/a").write_text("precious outside edit\n")
    done = run_agentkeep(*command, cwd=project, env={"AGENTKEEP_FAILPOINT": failpoint})
    assert done.returncode == -signal.SIGKILL, done.stderr
    versions = store.docs.history("notes/a")
    outside = [v for v in versions if v.change == "outside"]
    assert len(outside) == 1, versions
    kept = store.docs.read_doc("notes/a", version=outside[0].id).text
    assert kept == "precious outside edit\n"


def test_a_link_in_a_documents_directory_is_never_followed(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("# zebra\nnot a document of this project\n")
    store.docs.write_doc("notes/real", body="a real zebra note\n")
    (store.store_dir / "docs" / "notes" / "link.md").symlink_to(elsewhere)
    store.docs.refresh()
    assert [doc.ref for doc in store.docs.list_docs()] == ["notes/real"]
    assert {hit.label for hit in store.search("zebra", kinds=["doc"])} == {"notes/real"}
    assert store.docs.check_index() == []
    store.docs.refresh(rebuild=True)
    assert [doc.ref for doc in store.docs.list_docs()] == ["notes/real"]


def test_a_name_only_a_temp_file_has_is_refused(store: agentkeep.Store) -> None:
    with pytest.raises(InvalidInput, match="not a valid document name"):
        store.docs.write_doc("notes/plan.tmp-draft", body="x\n")
    assert not (store.store_dir / "docs" / "notes").exists()


def test_a_file_that_is_not_utf8_is_not_rewritten_lossily(store: agentkeep.Store) -> None:
    store.docs.write_doc("notes/e", body="x\n")
    path = doc_path(store, "notes/e")
    latin1 = b"---\ntitle: menu\n---\ncaf\xe9 cr\xe8me\n"
    path.write_bytes(latin1)
    with pytest.raises(InvalidInput, match="not UTF-8"):
        store.docs.write_doc("notes/e", fields={"title": "menu", "status": "ok"})
    assert path.read_bytes() == latin1
    # Replacing the whole content is fine (and the old bytes are kept as a version).
    store.docs.write_doc("notes/e", fields={"title": "menu"}, body="café crème\n")
    assert "café crème" in path.read_text()
    outside = [v for v in store.docs.history("notes/e") if v.change == "outside"]
    assert len(outside) == 1


def test_a_document_added_during_a_rescan_is_not_dropped(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.docs.write_doc("notes/first", body="1\n")
    walk = store.docs.sources

    def walk_then_another_writer_adds_one():  # type: ignore[no-untyped-def]
        found = list(walk())
        with agentkeep.open(store.root) as other:
            other.docs.write_doc("notes/racer", body="written during the walk\n")
        return iter(found)

    monkeypatch.setattr(store.docs, "sources", walk_then_another_writer_adds_one)
    report = store.docs.refresh()
    assert report.removed == 0
    monkeypatch.undo()
    assert {doc.ref for doc in store.docs.list_docs(refresh=False)} == {
        "notes/first",
        "notes/racer",
    }
    kinds = [e.kind for e in store.events(entity="doc")]
    assert "doc.vanished" not in kinds


def test_a_rebuild_reindexes_in_place(store: agentkeep.Store) -> None:
    first = store.docs.write_doc("notes/a", body="# A\n[[notes/b]]\n").item
    store.docs.write_doc("notes/b", body="b\n")
    (store.store_dir / "docs" / "notes" / "c.md").write_text("c\n")
    report = store.docs.refresh(rebuild=True)
    assert (report.added, report.updated, report.removed) == (1, 2, 0)
    assert store.docs.get_doc("notes/a", refresh=False).id == first.id  # never emptied
    assert [link["ref"] for link in store.docs.links("notes/a")] == ["notes/b"]


def test_a_file_too_large_to_index_is_indexed_by_name(store: agentkeep.Store) -> None:
    from agentkeep.services.docs import MAX_DOC_BYTES

    path = store.store_dir / "docs" / "logs" / "huge.md"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"zebra " * (MAX_DOC_BYTES // 6 + 1))
    store.docs.refresh()
    doc = store.docs.get_doc("logs/huge")
    assert doc.size > MAX_DOC_BYTES and "indexed by name only" in doc.problems[0]
    assert store.docs.check_index() == []
    assert store.search("zebra", kinds=["doc"]) == []
