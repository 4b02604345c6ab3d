"""`agentkeep doc …`, doctor's document check and the watchers (docs/documents.md).

The commands run in-process (the ``cli`` fixture) on both backends; where a terminal,
stdin or a long-running process matters they run as real subprocesses: ``doc edit``'s
editor round trip on a pseudo-terminal, ``doc watch`` picking up an edit made outside
agentkeep (waited for on the index, never on the clock)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.documents.leases import Holder, process_start
from agentkeep.files import HOST

from conftest import Cli, run_agentkeep
from secretgen import fragments, generate, leaks

CEILING_S = 60.0  # a safety net for polls: they wait for a state, not for time


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll until ``condition()`` is truthy (returned); fail loudly after the ceiling."""
    deadline = time.monotonic() + CEILING_S
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def indexed(store: agentkeep.Store, ref: str) -> Any:
    """The document's index row as it is now (no rescan by this process), or None."""
    found = store.docs.list_docs(refresh=False)
    return next((doc for doc in found if doc.ref == ref), None)


def no_traceback(result: Any) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "", result.stdout


@pytest.fixture
def docs_dir(project: Path) -> Path:
    return project / ".agentkeep" / "docs"


def declare(project: Path, namespace: str, doc_type: str, schema: dict[str, Any]) -> None:
    directory = project / ".agentkeep" / "schemas" / namespace
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{doc_type}.json").write_text(json.dumps(schema))


TASK_SCHEMA = {
    "type": "object",
    "required": ["priority"],
    "properties": {"priority": {"type": "integer", "minimum": 0}},
}


# -- new / show / ls ---------------------------------------------------------------------


def test_new_show_and_ls_print_the_documented_shapes(
    store: agentkeep.Store, cli: Cli, docs_dir: Path
) -> None:
    made = cli(
        "doc", "new", "decisions/0001-storage", "--type", "decision", "--title", "SQLite",
        "--field", "priority=2", "--field", 'owners=["ana"]', "--field", "note=not json",
        "--tag", "storage", "--tag", "db", "--body", "# SQLite\nsee [[decisions/0002-x]]",
        "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    out = made.json()
    assert out["schema_version"] == 1 and out["outcome"] == "created"
    doc = out["doc"]
    assert doc["ref"] == "decisions/0001-storage"
    assert doc["path"] == ".agentkeep/docs/decisions/0001-storage.md"
    assert doc["fields"] == {
        "type": "decision",
        "title": "SQLite",
        "priority": 2,
        "owners": ["ana"],
        "note": "not json",
        "tags": ["storage", "db"],
    }
    assert doc["tags"] == ["db", "storage"] and doc["problems"] == []
    text = (docs_dir / "decisions" / "0001-storage.md").read_text()
    assert text.startswith("---\ntype: decision\ntitle: SQLite\n")
    assert text.endswith("# SQLite\nsee [[decisions/0002-x]]\n")

    shown = cli("doc", "show", "decisions/0001-storage", "--json").json()
    assert set(shown) == {"schema_version", "doc", "fields", "body", "text", "etag", "version"}
    assert shown["text"] == text and shown["etag"] == doc["etag"] and shown["version"] is None
    assert shown["body"] == "# SQLite\nsee [[decisions/0002-x]]\n"
    assert cli("doc", "show", "decisions/0001-storage").stdout == text
    fields = cli("doc", "show", "decisions/0001-storage", "--fields", "--json").json()
    assert fields == {
        "schema_version": 1,
        "ref": "decisions/0001-storage",
        "etag": doc["etag"],
        "fields": doc["fields"],
    }

    cli("doc", "new", "decisions/0002-x", "--type", "decision", "--field", "priority=1")
    cli("doc", "new", "notes/draft", "--body", "plain")
    listed = cli("doc", "ls", "--json").json()
    assert [d["ref"] for d in listed] == [
        "decisions/0001-storage",
        "decisions/0002-x",
        "notes/draft",
    ]
    assert listed[0] == {**doc, "indexed_at": listed[0]["indexed_at"]}
    assert [d["ref"] for d in cli("doc", "ls", "notes", "--json").json()] == ["notes/draft"]
    by_field = cli("doc", "ls", "--where", "priority=1", "--json").json()
    assert [d["ref"] for d in by_field] == ["decisions/0002-x"]
    by_list = cli("doc", "ls", "--where", "owners=ana", "--tag", "db", "--json").json()
    assert [d["ref"] for d in by_list] == ["decisions/0001-storage"]
    assert len(cli("doc", "ls", "--type", "decision", "--json").json()) == 2
    assert cli("doc", "ls", "nothing-here", "--json").json() == []
    assert cli("doc", "ls", "--problems", "--json").json() == []
    assert [json.loads(line)["ref"] for line in cli("doc", "ls", "--nl").stdout.splitlines()] == [
        d["ref"] for d in listed
    ]
    table = cli("doc", "ls").stdout.splitlines()
    assert table[0].split() == ["REF", "TYPE", "TITLE", "TAGS", "PROBLEMS", "UPDATED_AT"]
    assert "db, storage" in table[1]
    assert cli("doc", "ls", "-n", "1", "--json").json() == listed[:1]


def test_new_reads_stdin_a_file_front_matter_and_json_documents(
    store: agentkeep.Store, cli: Cli, project: Path, docs_dir: Path
) -> None:
    piped = "---\ntype: spec\ntags: [auth]\n---\n# Login\n\nThe flow.\n"
    made = cli("doc", "new", "specs/login", "--tag", "web", "-", "--json", input=piped)
    assert made.exit_code == 0, made.stderr
    assert made.json()["doc"]["fields"] == {"type": "spec", "tags": ["auth", "web"]}
    assert (docs_dir / "specs" / "login.md").read_text().endswith("# Login\n\nThe flow.\n")

    source = project / "draft.md"
    source.write_text("Just a body, no front matter.\n")
    from_file = cli("doc", "new", "notes/draft", "--file", str(source), "--json").json()
    assert from_file["doc"]["fields"] == {}
    assert (docs_dir / "notes" / "draft.md").read_text() == "Just a body, no front matter.\n"

    made_json = cli(
        "doc", "new", "campaigns/spring", "--json-doc", "--body", '{"budget": 500}',
        "--field", "channel=email", "--json",
    )  # fmt: skip
    assert made_json.exit_code == 0, made_json.stderr
    doc = made_json.json()["doc"]
    assert doc["format"] == "json" and doc["path"].endswith("campaigns/spring.json")
    assert json.loads((docs_dir / "campaigns" / "spring.json").read_text()) == {
        "budget": 500,
        "channel": "email",
    }

    # the same content again is already_exists (an agent's retry); other content a conflict
    again = cli("doc", "new", "notes/draft", "--file", str(source), "--json")
    assert again.exit_code == 0 and again.json()["outcome"] == "already_exists"
    other = cli("doc", "new", "notes/draft", "--body", "other", "--json")
    assert other.exit_code == 5 and other.error()["code"] == "conflict"
    no_traceback(other)

    both = cli("doc", "new", "notes/x", "--body", "a", "--file", str(source))
    assert both.exit_code == 2 and "not --body and --file" in both.stderr


def test_a_secret_written_through_the_cli_never_reaches_disk(
    store: agentkeep.Store, cli: Cli, project: Path
) -> None:
    secrets = generate()
    body = "\n".join(text for text, _ in secrets.values())
    token = secrets["github-classic"][0]
    made = cli("doc", "new", "notes/creds", "--field", f"token={token}", "-", input=body)
    assert made.exit_code == 0, made.stderr
    cli("doc", "edit", "notes/creds", "--set", f"other={secrets['aws'][0]}")
    needles = [piece for _, secret in secrets.values() for piece in fragments(secret)]
    assert leaks(project / ".agentkeep" / "docs", needles) == []
    assert token not in cli("doc", "show", "notes/creds").stdout


# -- edit ---------------------------------------------------------------------------------


def test_edit_sets_fields_and_content_and_refuses_a_stale_etag(
    store: agentkeep.Store, cli: Cli, docs_dir: Path
) -> None:
    cli("doc", "new", "tasks/login", "--field", "priority=2", "--field", "blocked_by=x")
    etag = cli("doc", "show", "tasks/login", "--json").json()["etag"]
    edited = cli(
        "doc", "edit", "tasks/login", "--set", "status=done", "--unset", "blocked_by", "--json"
    )
    assert edited.exit_code == 0, edited.stderr
    out = edited.json()
    assert out["outcome"] == "updated"
    assert out["doc"]["fields"] == {"priority": 2, "status": "done"}

    # the etag read before that edit is stale now: refused, details on stderr as JSON
    path = docs_dir / "tasks" / "login.md"
    before = path.read_bytes()
    stale = cli("doc", "edit", "tasks/login", "--body", "mine", "--if-match", etag, "--json")
    assert stale.exit_code == 5
    no_traceback(stale)
    error = stale.error()
    assert error["code"] == "stale_write" and "changed since" in error["error"]
    assert error["details"]["expected_etag"] == etag
    assert error["details"]["current_etag"] == out["doc"]["etag"]
    assert path.read_bytes() == before
    human = cli("doc", "edit", "tasks/login", "--body", "mine", "--if-match", etag)
    assert human.exit_code == 5 and human.stderr.startswith("error: document tasks/login")
    assert "hint: " in human.stderr

    forced = cli("doc", "edit", "tasks/login", "--body", "mine", "--if-match", etag, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert path.read_text().endswith("---\nmine\n")
    current = cli("doc", "show", "tasks/login", "--json").json()["etag"]
    matched = cli("doc", "edit", "tasks/login", "--body", "ours", "--if-match", current, "--json")
    assert matched.exit_code == 0 and matched.json()["doc"]["fields"]["status"] == "done"

    # a whole document (front matter first) replaces the fields too
    whole = "---\ntype: task\npriority: 0\n---\nnew body\n"
    replaced = cli("doc", "edit", "tasks/login", "-", "--json", input=whole).json()["doc"]
    assert replaced["fields"] == {"type": "task", "priority": 0}
    assert path.read_text() == whole
    same = cli("doc", "edit", "tasks/login", "-", "--json", input=whole).json()
    assert same["outcome"] == "unchanged"


def test_edit_without_changes_off_a_terminal_says_what_to_give(
    store: agentkeep.Store, cli: Cli
) -> None:
    cli("doc", "new", "notes/a", "--body", "x")
    nothing = cli("doc", "edit", "notes/a", "--json")
    assert nothing.exit_code == 3
    no_traceback(nothing)
    assert nothing.error()["code"] == "invalid_input" and "--set" in nothing.error()["hint"]


def test_bad_input_gives_a_clear_error_and_no_traceback(
    store: agentkeep.Store, cli: Cli, project: Path
) -> None:
    declare(project, "tasks", "task", TASK_SCHEMA)
    cases = [
        (("doc", "new", "Bad/name"), 3, "not a valid name"),
        (("doc", "new", "no-namespace"), 3, "not a document reference"),
        (("doc", "new", "notes/../up"), 3, "not a valid document name"),
        (("doc", "show", "notes/missing"), 4, "does not exist"),
        (("doc", "edit", "notes/missing", "--set", "a=1"), 4, "does not exist"),
        (("doc", "history", "notes/missing"), 4, "no history"),
        (("doc", "new", "tasks/t", "--type", "bug"), 3, "type 'bug' is not declared"),
        (("doc", "new", "tasks/t", "--type", "task"), 3, "'priority' is a required property"),
        (("doc", "new", "tasks/t", "--field", "priority"), 3, "is not KEY=VALUE"),
        (("doc", "ls", "--where", "status"), 3, "is not KEY=VALUE"),
        (("doc", "new", "notes/j", "--json-doc", "--body", "[1]"), 3, "must be a JSON object"),
        (("doc", "new", "notes/f", "--file", "no-such-file"), 3, "cannot read no-such-file"),
        (("doc", "show", "tasks/t", "--version", "999"), 4, "no version 999"),
    ]
    for args, code, message in cases:
        result = cli(*args, "--json")
        assert result.exit_code == code, (args, result.stderr)
        no_traceback(result)
        assert message in result.error()["error"], (args, result.error())
        human = cli(*args)
        assert human.exit_code == code and "Traceback" not in human.stderr
    assert cli("doc", "ls", "--json").json() == []
    assert cli("doc", "new", "tasks/t", "--type", "task", "--field", "priority=1").exit_code == 0

    # a namespace at its quota refuses the next document (exit 9), naming where to raise it
    (project / ".agentkeep" / "schemas" / "tasks" / "namespace.toml").write_text("max_docs = 1\n")
    full = cli("doc", "new", "tasks/u", "--type", "task", "--field", "priority=1", "--json")
    assert full.exit_code == 9
    no_traceback(full)
    assert full.error()["code"] == "storage_full" and "namespace.toml" in full.error()["hint"]
    assert [d["ref"] for d in cli("doc", "ls", "--json").json()] == ["tasks/t"]


# -- links, history, rm, restore ------------------------------------------------------------


def test_link_writes_front_matter_links_and_links_lists_both_ways(
    store: agentkeep.Store, cli: Cli
) -> None:
    cli("doc", "new", "decisions/0001-files", "--title", "Files")
    cli("doc", "new", "decisions/0002-sqlite", "--body", "builds on [[decisions/0001-files]]")
    linked = cli(
        "doc", "link", "decisions/0002-sqlite", "decisions/0001-files",
        "--relation", "supersedes", "--json",
    )  # fmt: skip
    assert linked.exit_code == 0, linked.stderr
    assert linked.json()["outcome"] == "updated"
    assert linked.json()["doc"]["fields"]["links"] == {"supersedes": ["decisions/0001-files"]}
    again = cli("doc", "link", "decisions/0002-sqlite", "decisions/0001-files", "--relation",
                "supersedes", "--json")  # fmt: skip
    assert again.json()["outcome"] == "unchanged"
    plain = cli("doc", "link", "decisions/0002-sqlite", "Files", "--json").json()
    assert plain["doc"]["fields"]["links"] == {
        "supersedes": ["decisions/0001-files"],
        "links_to": ["Files"],
    }
    dangling = cli("doc", "link", "decisions/0002-sqlite", "decisions/0009-later")
    assert dangling.exit_code == 0 and "names no document" in dangling.stderr

    links = cli("doc", "links", "decisions/0002-sqlite", "--json").json()
    assert {(x["relation"], x["target"], x["ref"]) for x in links} == {
        ("links_to", "decisions/0001-files", "decisions/0001-files"),
        ("links_to", "Files", "decisions/0001-files"),
        ("links_to", "decisions/0009-later", None),
        ("supersedes", "decisions/0001-files", "decisions/0001-files"),
    }
    assert all(set(x) == {"relation", "target", "ref", "path"} for x in links)
    back = cli("doc", "links", "decisions/0001-files", "--back", "--json").json()
    assert {(x["relation"], x["ref"]) for x in back} == {
        ("links_to", "decisions/0002-sqlite"),
        ("supersedes", "decisions/0002-sqlite"),
    }
    assert cli("doc", "links", "decisions/0001-files", "--json").json() == []


def test_history_show_version_rm_and_restore(
    store: agentkeep.Store, cli: Cli, docs_dir: Path
) -> None:
    cli("doc", "new", "notes/plan", "--body", "one")
    cli("doc", "edit", "notes/plan", "--body", "two")
    path = docs_dir / "notes" / "plan.md"
    path.write_text("three, by another editor\n")  # kept as an `outside` version on the next write
    cli("doc", "edit", "notes/plan", "--body", "four", "--force")
    versions = cli("doc", "history", "notes/plan", "--json").json()
    assert [v["change"] for v in versions] == ["created", "edited", "outside", "edited"]
    assert set(versions[0]) == {"id", "path", "sha256", "etag", "size", "change", "actor",
                                "created_at"}  # fmt: skip
    old = cli("doc", "show", "notes/plan", "--version", str(versions[1]["id"]), "--json").json()
    assert old["text"] == "two\n" and old["version"] == versions[1]["id"]
    outside = cli("doc", "show", "notes/plan", "--version", str(versions[2]["id"]))
    assert outside.stdout == "three, by another editor\n"
    assert "CHANGE" in cli("doc", "history", "notes/plan").stdout

    gone = cli("doc", "rm", "notes/plan", "--json")
    assert gone.exit_code == 0, gone.stderr
    assert gone.json()["outcome"] == "deleted" and gone.json()["doc"]["ref"] == "notes/plan"
    assert not path.exists()
    assert cli("doc", "ls", "--json").json() == []
    assert cli("doc", "history", "notes/plan", "--json").json()[-1]["change"] == "deleted"
    assert cli("doc", "rm", "notes/plan").exit_code == 4

    back = cli("doc", "restore", "notes/plan", "--json")
    assert back.exit_code == 0, back.stderr
    assert back.json()["outcome"] == "created" and path.read_text() == "four\n"
    first = cli("doc", "restore", "notes/plan", "--version", str(versions[0]["id"]), "--json")
    assert first.json()["outcome"] == "updated" and path.read_text() == "one\n"

    etag = cli("doc", "show", "notes/plan", "--json").json()["etag"]
    cli("doc", "edit", "notes/plan", "--body", "five")
    stale = cli("doc", "rm", "notes/plan", "--if-match", etag, "--json")
    assert stale.exit_code == 5 and stale.error()["code"] == "stale_write"
    assert path.exists()


# -- locks ----------------------------------------------------------------------------------


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is neither this one nor its parent (a lock holder elsewhere)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield sleeper
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_is_held_for_the_caller_and_refuses_other_live_processes(
    store: agentkeep.Store, cli: Cli, docs_dir: Path, other_process: subprocess.Popen[bytes]
) -> None:
    cli("doc", "new", "specs/login", "--body", "v1")
    taken = cli("doc", "lock", "specs/login", "--lease", "60", "--json")
    assert taken.exit_code == 0, taken.stderr
    lock = taken.json()
    assert lock["outcome"] == "created"
    assert lock["lock"]["holder"] == str(Holder.parent())  # the command's caller
    assert set(lock["lock"]) == {"path", "holder", "owner", "acquired_at", "expires_at"}
    assert cli("doc", "lock", "specs/login", "--json").json()["outcome"] == "updated"
    assert [x["path"] for x in cli("doc", "locks", "--json").json()] == [lock["lock"]["path"]]
    # the caller's own writes go through its lock
    assert cli("doc", "edit", "specs/login", "--body", "v2").exit_code == 0
    released = cli("doc", "unlock", "specs/login", "--json").json()
    assert released == {"schema_version": 1, "outcome": "updated", "ref": "specs/login"}
    assert cli("doc", "unlock", "specs/login", "--json").json()["outcome"] == "unchanged"
    assert cli("doc", "locks", "--json").json() == []

    # another live process's lock refuses the write (and the lock), until it dies
    pid = other_process.pid
    store.docs.lock("specs/login", holder=Holder(HOST, pid, process_start(pid)))
    path = docs_dir / "specs" / "login.md"
    before = path.read_bytes()
    refused = cli("doc", "edit", "specs/login", "--body", "v3", "--json")
    assert refused.exit_code == 5
    no_traceback(refused)
    assert "is locked by" in refused.error()["error"] and str(pid) in refused.error()["error"]
    assert cli("doc", "lock", "specs/login", "--json").exit_code == 5
    assert cli("doc", "unlock", "specs/login", "--json").exit_code == 5
    assert cli("doc", "rm", "specs/login", "--json").exit_code == 5
    assert path.read_bytes() == before
    other_process.send_signal(signal.SIGKILL)
    other_process.wait()
    assert cli("doc", "edit", "specs/login", "--body", "v3").exit_code == 0
    assert path.read_text() == "v3\n"
    assert cli("doc", "locks", "--json").json() == []


def test_lock_from_a_subprocess_belongs_to_the_process_that_ran_it(
    store: agentkeep.Store, project: Path
) -> None:
    """A real `agentkeep doc lock` exits at once; its caller (here, this test's process)
    holds the lock: a write from this process goes through, another's does not."""
    store.docs.write_doc("specs/api", body="v1\n")
    done = run_agentkeep("doc", "lock", "specs/api", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["lock"]["holder"] == str(Holder.me())
    assert store.docs.write_doc("specs/api", body="v2\n").outcome == "updated"
    sibling = run_agentkeep("doc", "lock", "specs/api", "--json", cwd=project)
    assert json.loads(sibling.stdout)["outcome"] == "updated"  # same caller: a renewal


# -- validate, reindex, doctor ------------------------------------------------------------


def test_validate_exits_1_with_the_documents_that_have_problems(
    store: agentkeep.Store, cli: Cli, project: Path, docs_dir: Path
) -> None:
    declare(project, "tasks", "task", TASK_SCHEMA)
    cli("doc", "new", "tasks/good", "--type", "task", "--field", "priority=1")
    assert cli("doc", "validate", "--json").json() == []
    assert cli("doc", "validate").stdout == "no problems\n"
    (docs_dir / "tasks" / "bad.md").write_text("---\ntype: task\npriority: high\n---\nx\n")
    (docs_dir / "tasks" / "broken.md").write_text("---\ntype: [unclosed\n---\nx\n")
    result = cli("doc", "validate", "--json")
    assert result.exit_code == 1
    bad = {d["ref"]: d["problems"] for d in result.json()}
    assert set(bad) == {"tasks/bad", "tasks/broken"}
    assert any("'high' is not of type 'integer'" in p for p in bad["tasks/bad"])
    one = cli("doc", "validate", "tasks/good", "--json")
    assert one.exit_code == 0 and one.json() == []
    human = cli("doc", "validate")
    assert human.exit_code == 1 and "tasks/bad (.agentkeep/docs/tasks/bad.md):" in human.stdout
    assert {d["ref"] for d in cli("doc", "ls", "--problems", "--json").json()} == set(bad)


def test_reindex_picks_up_outside_files_and_rebuilds_from_the_files_alone(
    store: agentkeep.Store, cli: Cli, docs_dir: Path
) -> None:
    cli("doc", "new", "notes/a", "--body", "a")
    (docs_dir / "notes" / "b.md").write_text("# B\n")
    report = cli("doc", "reindex", "--json").json()
    assert report == {
        "schema_version": 1,
        "added": 1,
        "updated": 0,
        "removed": 0,
        "unchanged": 1,
        "files": 2,
        "rebuilt": False,
        "problems": [],
    }
    before = cli("doc", "ls", "--json").json()
    rebuilt = cli("doc", "reindex", "--rebuild", "--json").json()
    assert rebuilt["rebuilt"] is True and rebuilt["files"] == 2 and rebuilt["updated"] == 2
    after = cli("doc", "ls", "--json").json()
    strip = ("id", "indexed_at")
    assert [{k: v for k, v in d.items() if k not in strip} for d in after] == [
        {k: v for k, v in d.items() if k not in strip} for d in before
    ]
    assert cli("doc", "reindex").stdout.startswith("2 files: 0 added, 0 updated, 0 removed")


def test_doctor_reports_a_drifted_index_and_fix_rescans(
    store: agentkeep.Store, cli: Cli, docs_dir: Path
) -> None:
    for name in ("kept", "edited", "deleted"):
        cli("doc", "new", f"notes/{name}", "--body", name)
    assert not [f for f in cli("doc", "ls", "--json").json() if f["problems"]]
    clean = cli("doc", "reindex", "--json").json()  # the index is the files' now
    assert clean["added"] == clean["updated"] == clean["removed"] == 0
    assert not [f for f in cli("doctor", "--json").json()["findings"] if f["check"] == "docs"]

    (docs_dir / "notes" / "edited.md").write_text("changed by another editor\n")
    (docs_dir / "notes" / "deleted.md").unlink()
    (docs_dir / "notes" / "added.md").write_text("new\n")
    report = cli("doctor", "--json")
    assert report.exit_code == 1
    docs = [f for f in report.json()["findings"] if f["check"] == "docs"]
    assert sorted(f["message"] for f in docs) == [
        ".agentkeep/docs/notes/added.md is not indexed",
        ".agentkeep/docs/notes/deleted.md is indexed but its file is gone",
        ".agentkeep/docs/notes/edited.md changed since it was indexed",
    ]
    assert all(f["severity"] == "warning" and not f["fixed"] for f in docs)
    human = cli("doctor")
    assert "docs" in human.stdout and "doctor --fix" in human.stdout

    fixed = cli("doctor", "--fix", "--json")
    docs = [f for f in fixed.json()["findings"] if f["check"] == "docs"]
    assert len(docs) == 3 and all(f["fixed"] for f in docs), docs
    assert fixed.exit_code == 0, fixed.stdout
    assert not [f for f in cli("doctor", "--json").json()["findings"] if f["check"] == "docs"]
    assert indexed(store, "notes/added") is not None and indexed(store, "notes/deleted") is None


# -- the watchers ---------------------------------------------------------------------------


def test_doc_watch_indexes_outside_edits_until_terminated(
    store: agentkeep.Store, project: Path, docs_dir: Path
) -> None:
    store.docs.write_doc("notes/seen", body="before\n")
    env = {**os.environ}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "agentkeep", "doc", "watch", "--json", "--interval", "0.1"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        path = docs_dir / "notes" / "outside.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\ntype: note\n---\nwritten with another editor\n")
        doc = wait_for(lambda: indexed(store, "notes/outside"), "the new file to be indexed")
        assert doc.type == "note" and doc.origin == "store"

        seen = docs_dir / "notes" / "seen.md"
        seen.write_text("after, and longer than before\n")
        expected = hashlib.sha256(seen.read_bytes()).hexdigest()
        wait_for(
            lambda: (found := indexed(store, "notes/seen")) and found.etag == expected,
            "the edit to be indexed",
        )
        path.unlink()
        wait_for(lambda: indexed(store, "notes/outside") is None, "the removal to be indexed")
        assert watcher.poll() is None  # still watching
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=CEILING_S)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines and all(set(line) >= {"added", "updated", "removed"} for line in lines)
    assert sum(line["added"] for line in lines) >= 1
    assert sum(line["removed"] for line in lines) >= 1


def test_serve_keeps_the_index_fresh_while_it_runs(store: agentkeep.Store, docs_dir: Path) -> None:
    from helpers.server import running_server

    with running_server(store.store_dir):
        path = docs_dir / "specs" / "served.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Served\n")
        doc = wait_for(lambda: indexed(store, "specs/served"), "the server's watcher")
        assert doc.title == "Served"


# -- the editor, on a terminal --------------------------------------------------------------

EDITOR = """\
import os, pathlib, sys
path = pathlib.Path(sys.argv[1])
text = path.read_text()
assert os.stat(path).st_mode & 0o077 == 0, "the temp copy is private"
if os.environ.get("EDIT_ALSO"):  # someone else changes the document meanwhile
    pathlib.Path(os.environ["EDIT_ALSO"]).write_text("changed meanwhile\\n")
if os.environ.get("EDIT_FAIL"):
    sys.exit(3)
path.write_text(text.replace("status: draft", "status: final") + "edited in the editor\\n")
"""


def edit_on_terminal(project: Path, ref: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``agentkeep doc edit REF`` with stdin on a pseudo-terminal and $EDITOR a script;
    its temp copies go to :func:`edit_temp` (TMPDIR)."""
    import pty

    editor = project / "editor.py"
    editor.write_text(EDITOR)
    master, slave = pty.openpty()
    environment = {
        **os.environ,
        "VISUAL": f"{sys.executable} {editor}",
        "EDITOR": "false",
        "TMPDIR": str(edit_temp(project)),
        **env,
    }
    try:
        return subprocess.run(
            [sys.executable, "-m", "agentkeep", "doc", "edit", ref, "--json"],
            cwd=project,
            stdin=slave,
            capture_output=True,
            env=environment,
            timeout=CEILING_S,
        )
    finally:
        os.close(slave)
        os.close(master)


def edit_temp(project: Path) -> Path:
    temp = project.parent / "edit-tmp"
    temp.mkdir(exist_ok=True)
    return temp


def test_edit_on_a_terminal_opens_the_editor_and_writes_back(
    store: agentkeep.Store, project: Path, docs_dir: Path
) -> None:
    store.docs.write_doc("specs/login", fields={"status": "draft"}, body="The flow.\n")
    done = edit_on_terminal(project, "specs/login")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["outcome"] == "updated" and out["doc"]["fields"] == {"status": "final"}
    path = docs_dir / "specs" / "login.md"
    assert path.read_text() == "---\nstatus: final\n---\nThe flow.\nedited in the editor\n"
    assert list(edit_temp(project).iterdir()) == []  # the temp copy is gone once written
    failed = edit_on_terminal(project, "specs/login", EDIT_FAIL="1")
    assert failed.returncode == 3 and b"nothing was written" in failed.stderr
    assert path.read_text().endswith("edited in the editor\n")
    [kept] = edit_temp(project).iterdir()  # kept, and named: the text is not lost
    assert str(kept).encode() in failed.stderr


def test_a_stale_write_from_the_editor_keeps_the_edited_text(
    store: agentkeep.Store, project: Path, docs_dir: Path
) -> None:
    store.docs.write_doc("specs/login", fields={"status": "draft"}, body="The flow.\n")
    path = docs_dir / "specs" / "login.md"
    done = edit_on_terminal(project, "specs/login", EDIT_ALSO=str(path))
    assert done.returncode == 5, done.stderr
    assert b"Traceback" not in done.stderr and done.stdout == b""
    error = json.loads(done.stderr)
    assert error["code"] == "stale_write"
    kept = Path(error["details"]["kept"])
    assert str(kept) in error["error"]
    assert kept.read_text().endswith("status: final\n---\nThe flow.\nedited in the editor\n")
    assert path.read_text() == "changed meanwhile\n"  # the other change is not overwritten
    kept.unlink()
    kept.parent.rmdir()


# -- help -------------------------------------------------------------------------------------


def test_every_doc_command_has_help_with_examples(cli: Cli) -> None:
    from agentkeep.cli.doc_cmd import doc

    assert set(doc.commands) >= {
        "new", "show", "edit", "ls", "validate", "link", "links", "history", "rm",
        "restore", "lock", "unlock", "locks", "reindex", "watch",
    }  # fmt: skip
    for name in doc.commands:
        result = cli("doc", name, "--help")
        assert result.exit_code == 0, name
        assert "Example" in result.stdout and "--json" in result.stdout, name
    assert "doc" in cli("--help").stdout


def test_an_idle_watcher_rescans_at_most_a_fifth_of_the_time() -> None:
    from agentkeep.ops.docwatch import SCAN_SHARE, pause_after

    took_2s = time.monotonic() - 2.0  # a pass that began 2 s ago
    assert pause_after(took_2s, 1.0, idle=True) >= SCAN_SHARE * 2.0
    assert pause_after(took_2s, 1.0, idle=False) == 1.0  # it indexed something: look again
    assert pause_after(time.monotonic(), 1.0, idle=True) == 1.0


def test_reindex_shows_progress_on_a_terminal(store: agentkeep.Store, docs_dir: Path) -> None:
    import pty

    for name in ("a", "b", "c"):
        (docs_dir / "notes").mkdir(parents=True, exist_ok=True)
        (docs_dir / "notes" / f"{name}.md").write_text(f"# {name}\n")
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "wb") as terminal:
            done = subprocess.run(
                [sys.executable, "-m", "agentkeep", "doc", "reindex", "--json"],
                cwd=store.root,
                stdout=subprocess.PIPE,
                stderr=terminal,
                timeout=CEILING_S,
            )
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: nothing more
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    assert done.returncode == 0
    assert json.loads(done.stdout)["added"] == 3
    assert b"indexed 3/3 files" in shown
    piped = run_agentkeep("doc", "reindex", "--rebuild", "--json", cwd=store.root)
    assert piped.returncode == 0 and piped.stderr == b""  # no progress off a terminal
