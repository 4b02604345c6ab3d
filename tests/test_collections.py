"""Collections (issue 13): a project's own domains as document namespaces with a schema,
user input directories read one way, state snapshots, and documents in bundles. Real
files, real stores on both backends; no mocks (a spy counts the files read)."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.errors import InvalidInput, NotFound
from agentkeep.ops.bundle_export import export_bundle
from agentkeep.ops.bundle_import import import_bundle
from agentkeep.services import docs as docs_module

from conftest import Cli, git
from helpers.dump import store_dump
from secretgen import generate

CAMPAIGN = {
    "type": "object",
    "properties": {
        "budget": {"type": "number"},
        "status": {"type": "string", "enum": ["active", "paused", "done"]},
        "live": {"type": "boolean"},
        "starts": {"type": "string"},
        "channels": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["budget", "status"],
}
HOUR_AGO = time.time() - 3600


def write(path: Path, text: str, *, mtime: float | None = None) -> Path:
    """A user's own file, written as an editor would (not through agentkeep)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def campaigns(root: Path, *, mtime: float | None = HOUR_AGO) -> dict[str, Path]:
    """Five campaigns as the user keeps them: JSON and Markdown with front matter."""
    base = root / "input" / "campaigns"
    files = {
        "spring": write(
            base / "spring.json",
            json.dumps(
                {
                    "budget": 5000,
                    "status": "active",
                    "live": True,
                    "starts": "2026-03-01",
                    "channels": ["email", "Social"],
                    "owner": {"name": "Ada"},
                }
            ),
            mtime=mtime,
        ),
        "summer": write(
            base / "summer.md",
            "---\nbudget: 900\nstatus: paused\nlive: false\nstarts: 2026-06-01\n"
            "channels: [social]\n---\n# Summer\n\nBeach ads.\n",
            mtime=mtime,
        ),
        "autumn": write(
            base / "autumn.json",
            json.dumps({"budget": 12000.5, "status": "done", "starts": "2025-09-15"}),
            mtime=mtime,
        ),
        "winter": write(
            base / "regional" / "winter.md",
            "---\nbudget: 40\nstatus: active\nlive: true\nowner: {name: Bob}\n---\nSnow.\n",
            mtime=mtime,
        ),
        "broken": write(base / "broken.json", json.dumps({"status": "unknown"}), mtime=mtime),
    }
    return files


@contextmanager
def other_project(
    tmp_path: Path, name: str, backend: str, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """Another project on the same backend as the test's store."""
    root = tmp_path / name
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    if backend != "postgres":
        agentkeep.init_store(root)
        yield root
        return
    from helpers.pg import fresh_schema

    with fresh_schema(request.getfixturevalue("pg_server")) as url:
        agentkeep.init_store(root, url=url)
        yield root


class ReadSpy:
    """Records which document files the index reads (wrapping the one function that
    reads them; behaviour unchanged)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = root
        self.paths: list[str] = []
        real = docs_module.read_document_file

        def spy(path: Path, *, limit: int | None = None) -> bytes | None:
            self.paths.append(Path(path).relative_to(root).as_posix())
            return real(path, limit=limit)

        monkeypatch.setattr(docs_module, "read_document_file", spy)

    def take(self) -> list[str]:
        out, self.paths = sorted(self.paths), []
        return out


# -- declaring ------------------------------------------------------------------------------


def test_declare_writes_the_schema_and_the_root(store: agentkeep.Store, project: Path) -> None:
    campaigns(project)
    declared = store.collections.declare(
        "campaigns", CAMPAIGN, type="campaign", root="input/campaigns"
    )
    assert declared.outcome == "created"
    schema_file = project / ".agentkeep/schemas/campaigns/campaign.json"
    assert json.loads(schema_file.read_text()) == CAMPAIGN
    assert stat.S_IMODE(schema_file.stat().st_mode) == 0o600
    assert declared.schema == ".agentkeep/schemas/campaigns/campaign.json"
    # The root went into config.toml through the settings' own writer, and this store
    # reads it from now on.
    config = (project / ".agentkeep/config.toml").read_text()
    assert 'roots = ["input/campaigns:campaigns"]' in config
    assert store.config["docs.roots"] == ["input/campaigns:campaigns"]
    found = declared.collection
    assert (found.name, found.types, found.root) == ("campaigns", ["campaign"], "input/campaigns")
    assert (found.records, found.invalid) == (5, 1)
    assert {p.split(": ")[0] for p in declared.problems} == {"input/campaigns/broken.json"}
    assert [c.name for c in store.collections.collections()] == ["campaigns"]
    # Declaring again: nothing changes, and the config keeps one entry.
    again = store.collections.declare(
        "campaigns", CAMPAIGN, type="campaign", root="input/campaigns"
    )
    assert again.outcome == "already_exists"
    assert store.config["docs.roots"] == ["input/campaigns:campaigns"]
    kinds = [e.kind for e in store.events(kind="collection.declared")]
    assert kinds == ["collection.declared"]
    # A changed schema replaces the file and revalidates the records at once.
    looser = {**CAMPAIGN, "required": ["status"]}
    changed = store.collections.declare("campaigns", looser, type="campaign")
    assert changed.outcome == "updated" and changed.collection.invalid == 1  # status: unknown
    strict = {**CAMPAIGN, "properties": {**CAMPAIGN["properties"], "status": {"type": "string"}}}
    strict["required"] = ["status"]
    assert store.collections.declare("campaigns", strict, type="campaign").collection.invalid == 0


def test_declare_refuses_what_is_not_a_collection(store: agentkeep.Store) -> None:
    with pytest.raises(InvalidInput, match="not a valid JSON Schema"):
        store.collections.declare("leads", {"type": "nonsense"})
    with pytest.raises(InvalidInput, match="not a valid name"):
        store.collections.declare("Bad Name", {"type": "object"})
    with pytest.raises(InvalidInput, match="inside the project"):
        store.collections.declare("leads", {"type": "object"}, root="../elsewhere")
    with pytest.raises(NotFound, match="not declared"):
        store.collections.records("leads")
    assert store.collections.collections() == []
    # A schema with a secret in an example passes the boundary on its way to the file.
    secret = generate()["github-classic"][1]
    store.collections.declare(
        "leads", {"type": "object", "examples": [{"token": secret}]}, type="lead"
    )
    text = (store.store_dir / "schemas/leads/lead.json").read_text()
    assert secret not in text


# -- records --------------------------------------------------------------------------------


def names(found: list[Any]) -> list[str]:
    return [record.name for record in found]


def test_records_valid_invalid_and_validate(store: agentkeep.Store, project: Path) -> None:
    files = campaigns(project)
    store.collections.declare("campaigns", CAMPAIGN, type="campaign", root="input/campaigns")
    every = store.collections.records("campaigns")
    assert names(every) == ["autumn", "broken", "regional/winter", "spring", "summer"]
    assert {r.type for r in every} == {"campaign"}  # the collection's one type, implied
    broken = next(r for r in every if r.name == "broken")
    assert not broken.valid and any("budget" in p for p in broken.problems)
    assert broken.path == "input/campaigns/broken.json"
    assert names(store.collections.records("campaigns", invalid=True)) == ["broken"]
    assert len(store.collections.records("campaigns", invalid=False)) == 4
    # Fixed outside agentkeep: validate reads it again.
    write(files["broken"], json.dumps({"status": "done", "budget": 1}))
    assert store.collections.validate("campaigns") == []
    write(files["spring"], json.dumps({"status": "active", "budget": "lots"}))
    bad = store.collections.validate("campaigns")
    assert names(bad) == ["spring"] and "budget: 'lots' is not of type 'number'" in bad[0].problems


def test_where_sort_and_limit_compare_by_type(store: agentkeep.Store, project: Path) -> None:
    campaigns(project)
    store.collections.declare("campaigns", CAMPAIGN, type="campaign", root="input/campaigns")

    def where(*conditions: str, **options: Any) -> list[str]:
        return names(store.collections.records("campaigns", where=conditions, **options))

    # Numbers numerically (as text, "900" > "12000.5" and "40" > "12000.5").
    assert where("budget>800") == ["autumn", "spring", "summer"]
    assert where("budget>=900", "budget<=5000") == ["spring", "summer"]
    assert where("budget<900") == ["regional/winter"]
    assert where("budget=5000.0") == ["spring"]
    # Booleans as booleans; text exactly; ~ contains, ignoring case; != keeps the missing.
    assert where("live=true") == ["regional/winter", "spring"]
    assert where("live=no") == ["summer"]
    assert where("status=active") == ["regional/winter", "spring"]
    assert where("status!=active") == ["autumn", "broken", "summer"]
    assert where("channels=social") == ["summer"]  # a list holds it
    assert where("channels~SOCIAL") == ["spring", "summer"]
    assert where("channels!=email") == ["autumn", "broken", "regional/winter", "summer"]
    # ISO dates compare as text; YAML dates were read as dates and indexed as ISO text.
    assert where("starts>=2026-01-01") == ["spring", "summer"]
    assert where("owner.name=Bob") == ["regional/winter"]  # nested, dotted
    assert where("name~WIN") == ["regional/winter"]  # the record's own name
    assert where("missing=x") == []
    # Sorting: descending, records without the field last, then by a second key.
    assert where(sort="-budget") == ["autumn", "spring", "summer", "regional/winter", "broken"]
    assert where(sort="live,-budget") == [
        "summer",
        "spring",
        "regional/winter",
        "autumn",
        "broken",
    ]
    assert where("status=active", sort="budget", limit=1) == ["regional/winter"]
    assert where(sort="-starts", limit=2) == ["summer", "spring"]
    # Malformed conditions, and operands the schema's types exclude, are refused.
    with pytest.raises(InvalidInput, match="not a condition"):
        where("budget")
    with pytest.raises(InvalidInput, match="is a number"):
        where("budget>lots")
    with pytest.raises(InvalidInput, match="true or false"):
        where("live=maybe")


# -- user input directories and state snapshots ---------------------------------------------


def test_user_input_changed_outside_is_read_again_and_only_that(
    store: agentkeep.Store, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = campaigns(project)  # written an hour ago: their stat is trusted
    store.collections.declare("campaigns", CAMPAIGN, type="campaign", root="input/campaigns")
    spy = ReadSpy(monkeypatch, project)
    report = store.docs.refresh()
    assert spy.take() == [] and report.unchanged == 5  # nothing changed: no file read
    # An editor changes a Markdown record and a JSON one, adds one and deletes one.
    write(files["summer"], files["summer"].read_text().replace("budget: 900", "budget: 950"))
    write(files["autumn"], json.dumps({"budget": 1, "status": "done"}))
    write(project / "input/campaigns/new.md", "---\nbudget: 7\nstatus: active\n---\n")
    files["broken"].unlink()
    report = store.docs.refresh()
    assert spy.take() == [
        "input/campaigns/autumn.json",
        "input/campaigns/new.md",
        "input/campaigns/summer.md",
    ]
    assert (report.added, report.updated, report.removed) == (1, 2, 1)
    budgets = {r.name: r.fields.get("budget") for r in store.collections.records("campaigns")}
    assert budgets == {"autumn": 1, "new": 7, "regional/winter": 40, "spring": 5000, "summer": 950}
    assert store.collections.get("campaigns").invalid == 0
    # Files stay the truth: agentkeep never rewrote one of them.
    assert "budget: 950" in files["summer"].read_text()


def test_secrets_in_user_input_never_reach_the_index(store: agentkeep.Store, project: Path) -> None:
    secrets = generate()
    token, aws = secrets["github-classic"][1], secrets["aws"][1]
    base = project / "input" / "leads"
    write(base / "acme.json", json.dumps({"email": "a@acme.test", "api_key": token}))
    write(base / "globex.md", f"---\nemail: g@globex.test\n---\nTheir key is {aws}.\n")
    store.collections.declare(
        "leads", {"type": "object", "required": ["email"]}, type="lead", root="input/leads"
    )
    found = store.collections.records("leads")
    assert [r.valid for r in found] == [True, True]
    assert token not in json.dumps([r.to_dict() for r in found])
    dump = store_dump(store)
    assert token not in dump and aws not in dump
    assert store.search("Their key")  # indexed all the same, with the secret redacted
    # The user's own files are never rewritten by indexing.
    assert token in (base / "acme.json").read_text()
    assert aws in (base / "globex.md").read_text()


def test_state_snapshots_rewritten_in_place(store: agentkeep.Store, project: Path) -> None:
    snapshot = project / "state" / "session-7.json"

    def rewrite(step: int, *, mtime_ns: int | None = None) -> None:
        """The program rewrites its snapshot in place (same inode, same size)."""
        data = json.dumps({"step": step, "status": "running"}).encode()
        with open(snapshot, "r+b") as handle:
            handle.write(data)
            handle.truncate()
        if mtime_ns is not None:
            os.utime(snapshot, ns=(mtime_ns, mtime_ns))

    write(snapshot, json.dumps({"step": 1, "status": "running"}))
    store.collections.declare(
        "sessions",
        {"type": "object", "properties": {"step": {"type": "integer"}}},
        type="session",
        root="state",
    )

    def latest() -> Any:
        store.docs.refresh()
        (record,) = store.collections.records("sessions")
        return record.fields["step"]

    assert latest() == 1
    inode = snapshot.stat().st_ino
    # Same size, a new mtime: read again.
    rewrite(2, mtime_ns=snapshot.stat().st_mtime_ns + 1_000_000)
    assert latest() == 2
    # Same size and the same mtime_ns (a rewrite within one timestamp tick): the index
    # recorded the file as racily clean, so its content is compared. The mtime is set in
    # the future so the file stays racy however slow this machine is.
    future = time.time_ns() + 3600 * 10**9
    rewrite(3, mtime_ns=future)
    assert latest() == 3
    rewrite(4, mtime_ns=future)
    assert latest() == 4
    # The documented limit: a file last modified long ago is trusted by its stat, so a
    # same-size rewrite that also forges its old mtime back is not seen until it changes.
    old = int(HOUR_AGO * 10**9)
    rewrite(5, mtime_ns=old)
    assert latest() == 5
    rewrite(6, mtime_ns=old)
    assert latest() == 5
    rewrite(7, mtime_ns=old + 1)
    assert latest() == 7
    assert snapshot.stat().st_ino == inode  # in place all along
    assert len(store.collections.records("sessions")) == 1


# -- bundles ----------------------------------------------------------------------------------


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            out[member.name] = handle.read()
    return out


def test_bundle_round_trip_of_documents_into_a_fresh_project(
    store: agentkeep.Store,
    project: Path,
    tmp_path: Path,
    store_backend: str,
    request: pytest.FixtureRequest,
) -> None:
    files = campaigns(project)
    token = generate()["gitlab"][1]
    write(files["summer"], files["summer"].read_text() + f"\nDeploy key {token}\n")
    store.collections.declare("campaigns", CAMPAIGN, type="campaign", root="input/campaigns")
    store.docs.write_doc("notes/plan", fields={"type": "plan"}, body="# Plan\n\nShip it.\n")
    task = store.add_task("a task that travels too").item
    out = tmp_path / "campaigns.tar"
    result = export_bundle(store, out, namespaces=["campaigns"], task_ids=[task.id])
    assert result.counts["documents"] == 5 and result.counts["schemas"] == 1
    members = tar_members(out)
    manifest = json.loads(members["manifest.json"])
    assert manifest["format_version"] == 2
    assert manifest["selection"]["namespaces"] == ["campaigns"]
    assert not any(token in data.decode("utf-8", "replace") for data in members.values())
    assert json.loads(members["schemas/campaigns/campaign.json"]) == CAMPAIGN
    # Exporting the same documents again gives the same members.
    again_out = tmp_path / "again.tar"
    export_bundle(store, again_out, namespaces=["campaigns"], task_ids=[task.id])
    again_members = tar_members(again_out)
    assert {k: v for k, v in again_members.items() if k != "manifest.json"} == {
        k: v for k, v in members.items() if k != "manifest.json"
    }

    with (
        other_project(tmp_path, "fresh", store_backend, request) as root,
        agentkeep.open(root) as fresh,
    ):
        imported = import_bundle(fresh, out)
        assert imported.outcome == "created"
        assert imported.created["documents"] == 4 and imported.created["schemas"] == 1
        assert imported.created["tasks"] == 1
        # The invalid record cannot pass the write path's schema check: reported.
        (refused,) = imported.conflicts
        assert refused["ref"] == "campaigns/broken" and "budget" in refused["reason"]
        # The files are recreated byte for byte (the secret redacted) in the store's
        # docs/ (this project has no input/campaigns root), and indexed.
        base = root / ".agentkeep/docs/campaigns"
        for name in ("spring.json", "autumn.json", "regional/winter.md"):
            source = project / "input/campaigns" / name
            assert (base / name).read_bytes() == source.read_bytes(), name
        summer = (base / "summer.md").read_text()
        assert token not in summer and "Beach ads." in summer
        assert stat.S_IMODE((base / "spring.json").stat().st_mode) == 0o600
        theirs = {r.name: r.fields for r in fresh.collections.records("campaigns")}
        ours = {r.name: r.fields for r in store.collections.records("campaigns", invalid=False)}
        assert theirs == ours
        assert fresh.collections.get("campaigns").types == ["campaign"]
        assert [v.change for v in fresh.docs.history("campaigns/spring")] == ["created"]
        assert fresh.docs.check_index() == []
        assert [e.data["ref"] for e in fresh.events(kind="doc.created")] == sorted(
            f"campaigns/{n}" for n in ("autumn", "regional/winter", "spring", "summer")
        )
        with pytest.raises(NotFound):
            fresh.docs.get_doc("notes/plan")  # another namespace: not exported
        # Importing again changes nothing; a record edited here is kept, and said so.
        assert import_bundle(fresh, out).outcome == "unchanged"
        fresh.docs.write_doc(
            "campaigns/spring", fields={"budget": 1, "status": "paused"}, fmt="json"
        )
        third = import_bundle(fresh, out)
        assert third.outcome == "unchanged"
        kept = [c for c in third.conflicts if c.get("ref") == "campaigns/spring"]
        assert kept and "kept" in kept[0]["reason"]
        assert json.loads((base / "spring.json").read_text())["budget"] == 1


def test_bundle_all_carries_documents_and_old_bundles_still_import(
    store: agentkeep.Store,
    project: Path,
    tmp_path: Path,
    store_backend: str,
    request: pytest.FixtureRequest,
) -> None:
    store.docs.write_doc("notes/plan", fields={"type": "plan"}, body="# Plan\n")
    everything = tmp_path / "all.tar"
    result = export_bundle(store, everything, all=True)
    assert result.counts["documents"] == 1
    # A version-1 bundle (no documents; written before format 2) imports as it did.
    store.add_task("old times")
    v1 = tmp_path / "v1.tar"
    export_bundle(store, tmp_path / "v2.tar", all=True)
    members = tar_members(tmp_path / "v2.tar")
    manifest = json.loads(members.pop("manifest.json"))
    for name in [m for m in members if m.startswith(("documents/", "schemas/"))]:
        members.pop(name)
        manifest["members"].pop(name)
    members.pop("records/documents.jsonl")
    manifest["members"].pop("records/documents.jsonl")
    manifest["format_version"] = 1
    with tarfile.open(v1, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [*members.items(), ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with (
        other_project(tmp_path, "fresh", store_backend, request) as root,
        agentkeep.open(root) as fresh,
    ):
        old = import_bundle(fresh, v1)
        assert old.created["tasks"] == 1 and old.created.get("documents", 0) == 0
        new = import_bundle(fresh, everything)
        assert new.created["documents"] == 1
        assert fresh.docs.read_doc("notes/plan").body == "# Plan\n"


# -- the command line ---------------------------------------------------------------------------


def test_cli_collections(cli: Cli, store: agentkeep.Store, project: Path, tmp_path: Path) -> None:
    campaigns(project)
    assert cli("collection", "ls", "--json").json() == []
    schema = tmp_path / "campaign.json"
    schema.write_text(json.dumps(CAMPAIGN))
    done = cli(
        "collection", "declare", "campaigns", "--schema", str(schema), "--type", "campaign",
        "--root", "input/campaigns", "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    assert done.json()["outcome"] == "created"
    assert done.json()["collection"]["records"] == 5
    again = cli("collection", "declare", "campaigns", "--schema", "-", "--type", "campaign",
                input=json.dumps(CAMPAIGN))  # fmt: skip
    assert again.exit_code == 0 and again.stdout.startswith("already exists")
    listed = cli("collection", "ls", "--json").json()
    assert [(c["name"], c["records"], c["invalid"]) for c in listed] == [("campaigns", 5, 1)]
    table = cli("collection", "ls").stdout
    assert "campaigns" in table and "input/campaigns" in table
    shown = cli("collection", "show", "campaigns", "--json").json()
    assert shown["schema"] == {"campaign": CAMPAIGN}
    got = cli("records", "campaigns", "--where", "budget>800", "--sort", "-budget", "--json")
    assert [r["name"] for r in got.json()] == ["autumn", "spring", "summer"]
    lines = cli("records", "campaigns", "--where", "budget>800", "--sort", "-budget", "--nl")
    assert [json.loads(line) for line in lines.stdout.splitlines()] == got.json()
    same = cli("collection", "records", "campaigns", "-w", "budget>800", "--sort", "-budget",
               "-n", "2", "--json")  # fmt: skip
    assert [r["name"] for r in same.json()] == ["autumn", "spring"]
    assert cli("records", "campaigns", "--where", "status=none", "--json").json() == []
    human = cli("records", "campaigns", "--where", "status=active").stdout
    assert "BUDGET" in human and "spring" in human and "autumn" not in human
    bad = cli("collection", "validate", "campaigns", "--json")
    assert bad.exit_code == 1 and [r["name"] for r in bad.json()] == ["broken"]
    text = cli("collection", "validate", "campaigns")
    assert "input/campaigns/broken.json: (document): 'budget' is a required property" in text.stdout
    wrong = cli("records", "campaigns", "--where", "budget>lots", "--json")
    assert wrong.exit_code == 3 and "is a number" in wrong.error()["error"]
    missing = cli("records", "leads", "--json")
    assert missing.exit_code == 4 and missing.stdout == ""
    out = tmp_path / "c.tar"
    exported = cli("export", "--namespace", "campaigns", "-o", str(out), "--json")
    assert exported.exit_code == 0 and exported.json()["counts"]["documents"] == 5
    unknown = cli("export", "--namespace", "nothing-here", "-o", str(tmp_path / "x.tar"))
    assert unknown.exit_code == 3 and "no namespace named nothing-here" in unknown.stderr
