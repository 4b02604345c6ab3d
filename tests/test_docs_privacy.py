"""Documents and the privacy boundary (issue 13 "What must be shown"): secrets written into
documents through agentkeep never reach disk; secrets in a user's own files never reach
the index, and the user's files are never touched.

The scan reads every file under the project (``.agentkeep/`` included: documents, their
versions' zstd objects decompressed, the SQLite database and its WAL) and, on PostgreSQL,
every row of the store's schema. A planted canary proves the scan sees each of them."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import agentkeep
from agentkeep.config import set_in_file
from agentkeep.errors import StaleWrite

from helpers.dump import store_dump
from secretgen import fragments, generate, leaks

SECRETS = generate()
NEEDLES = [f for _, secret in SECRETS.values() for f in fragments(secret)]


def leaked(store: agentkeep.Store, where: Path, needles: list[str]) -> list[str]:
    found = leaks(where, needles)
    dump = store_dump(store)
    found += [f"the database holds {n[:6]}…" for n in needles if n in dump]
    return found


def test_the_scan_finds_a_planted_canary(store: agentkeep.Store, project: Path) -> None:
    canary = "canary" + secrets.token_hex(12)
    store.docs.write_doc("notes/a", fields={"title": canary}, body=f"# {canary}\n")
    store.docs.write_doc("notes/a", body="replaced\n")  # the canary is now in a version only
    store.docs.write_doc("notes/b", body=f"# {canary}\n")
    found = leaked(store, project, [canary])
    assert any(".agentkeep/docs/notes/b.md" in hit for hit in found), found
    assert any("(decompressed)" in hit for hit in found), found  # a version's object
    assert any("the database" in hit for hit in found), found  # index rows and full text


def test_secrets_written_through_agentkeep_never_reach_disk(
    store: agentkeep.Store, project: Path
) -> None:
    docs = store.docs
    for name, (text, _secret) in SECRETS.items():
        sentence = f"deploy failed; used {text} to log in"
        written = docs.write_doc(
            f"incidents/{name}",
            fields={"title": f"Incident {text}", "token": text, text: 1, "list": [text]},
            body=f"# Used {text}\n\n{sentence}\n\n- relates [[{text}]]\n",
        )
        docs.write_doc(f"incidents/{name}", body=f"{sentence}\nsecond version\n")
        docs.write_doc(f"records/{name}", fields={"detail": sentence, "key": text}, fmt="json")
        docs.write_doc(f"records/{name}", fields={"detail": "fine"}, fmt="json")
        docs.write_doc(f"messages/{name}", fields={"to": ["a"], "body": text}, body=sentence)
        # a stale write's message and details never echo the text it refused
        try:
            docs.write_doc(f"incidents/{name}", body=sentence, expect=written.item.etag)
        except StaleWrite as exc:
            for fragment in fragments(_secret):
                assert fragment not in exc.message + json.dumps(exc.details)
        docs.remove_doc(f"messages/{name}")
        docs.restore_doc(f"messages/{name}")
    store.docs.refresh(rebuild=True)
    found = leaked(store, project, NEEDLES)
    assert found == []
    assert {r.rule for r in store.redactions()}  # the audit names rules, never values


def test_outside_content_kept_as_a_version_is_redacted(
    store: agentkeep.Store, project: Path
) -> None:
    """A document a user edited by hand (a secret pasted in) and then replaced or removed
    through agentkeep: the replaced content is kept as a version, and that version passes
    the boundary like everything agentkeep writes."""
    docs = store.docs
    for name, (text, _secret) in SECRETS.items():
        docs.write_doc(f"notes/{name}", body="clean\n")
        path = store.store_dir / "docs" / "notes" / f"{name}.md"
        path.write_text(f"# Pasted\n{text}\n")
        docs.write_doc(f"notes/{name}", body="cleaned up\n")
        path.write_text(f"# Pasted again\n{text}\n")
        docs.remove_doc(f"notes/{name}")
        outside = [v for v in docs.history(f"notes/{name}") if v.change == "outside"]
        assert len(outside) == 2
        kept = docs.read_doc(f"notes/{name}", version=outside[0].id).text
        assert kept.startswith("# Pasted\n") and "[REDACTED" in kept
    assert leaked(store, project, NEEDLES) == []


def test_secrets_in_a_users_own_files_never_reach_the_index(project: Path) -> None:
    own = project / "handbook"
    own.mkdir()
    originals: dict[Path, bytes] = {}
    for name, (text, _secret) in SECRETS.items():
        markdown = own / f"{name}.md"
        markdown.write_text(
            f"---\ntitle: {json.dumps('Runbook ' + text)}\ntoken: {json.dumps(text)}\n"
            f"tags: [{json.dumps(text)}]\nlinks: {{uses: [{json.dumps(text)}]}}\n---\n"
            f"# Heading {text}\n\nLog in with {text} then [[{text}]].\n"
        )
        record = own / f"{name}.json"
        record.write_text(json.dumps({"key": text, text: "value", "nested": {"k": [text]}}))
        text_file = own / f"{name}.txt"
        text_file.write_text(f"export TOKEN={text}\n")
        for path in (markdown, record, text_file):
            originals[path] = path.read_bytes()
    set_in_file(project / ".agentkeep" / "config.toml", "docs.roots", "handbook")
    with agentkeep.open(project) as store:
        report = store.docs.refresh()
        assert report.added == 3 * len(SECRETS)
        docs = store.docs.list_docs(refresh=False)
        assert all(doc.origin == "project" for doc in docs)
        titled = store.docs.get_doc(f"handbook/{next(iter(SECRETS))}.md", refresh=False)
        assert titled.title and titled.title.startswith("Runbook ")
        for word in ("Heading", "TOKEN"):
            assert store.search(word, kinds=["doc"], limit=200)
        store.docs.refresh(rebuild=True)
        store.docs.validate()
        for path in originals:  # a change is indexed again, redacted again
            path.touch()
        store.docs.refresh()
        found = leaks(project / ".agentkeep", NEEDLES)
        dump = store_dump(store)
        found += [f"the index holds {n[:6]}…" for n in NEEDLES if n in dump]
        assert found == []
    for path, data in originals.items():
        assert path.read_bytes() == data, f"{path} was rewritten"
