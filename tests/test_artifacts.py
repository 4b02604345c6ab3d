"""Artifacts: content addressing, deduplication, compression choice, redaction of file
contents, git diffs with untracked files, verification and the `artifact` commands."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

import agentkeep
from agentkeep.services.artifacts import CHUNK, object_path

from conftest import Cli, git
from secretgen import fragments, generate

SECRETS = generate()


def object_files(store: agentkeep.Store) -> list[Path]:
    return sorted(p for p in (store.store_dir / "objects").rglob("*") if p.is_file())


def test_content_is_addressed_deduplicated_and_read_only(store: agentkeep.Store) -> None:
    data = b"build ok\n" * 10_000
    first = store.add_artifact(data, kind="log", name="a.log")
    again = store.add_artifact(data, kind="log", name="a.log")
    renamed = store.add_artifact(data, kind="log", name="b.log")
    assert (first.outcome, again.outcome, renamed.outcome) == (
        "created",
        "already_exists",
        "created",
    )
    assert first.item.id == again.item.id != renamed.item.id
    assert first.item.sha256 == renamed.item.sha256 == hashlib.sha256(data).hexdigest()
    (path,) = object_files(store)  # one file for both artifacts
    assert path == object_path(store.store_dir, first.item.sha256, "zstd")
    assert path.parent.name == first.item.sha256[:2]
    assert os.stat(path).st_mode & 0o222 == 0
    assert store.read_artifact(renamed.item.id) == data
    assert first.item.stored_bytes < len(data) / 10


def test_incompressible_content_is_stored_as_is(store: agentkeep.Store) -> None:
    # Seeded: binary content passes the redactor too (text inside a binary is still text),
    # and a rare random run of bytes can look like a secret.
    data = random.Random(4).randbytes(200_000)
    item = store.add_artifact(data, name="blob.bin").item
    assert (item.encoding, item.stored_bytes, item.size) == ("identity", len(data), len(data))
    assert item.content_type == "application/octet-stream"
    assert object_files(store)[0].read_bytes() == data


def test_temp_files_never_remain(store: agentkeep.Store) -> None:
    store.add_artifact(b"x" * 1000)
    with pytest.raises(agentkeep.NotFound):
        store.add_artifact(b"y" * 1000, session_id=999)
    assert [p.name for p in object_files(store) if ".tmp-" in p.name] == []


def test_secrets_in_contents_are_redacted_even_across_chunk_boundaries(
    store: agentkeep.Store,
) -> None:
    text, secret = SECRETS["github-classic"]
    padding = b"p" * (CHUNK - 10) + b"\n"  # the secret straddles the first 1 MiB boundary
    payload = padding + b"token " + text.encode() + b"\n"
    for name, (value, _) in SECRETS.items():
        payload += f"{name}: {value}\n".encode()
    item = store.add_artifact(payload, name="dump.txt").item
    stored = store.read_artifact(item.id)
    for name, (_, value) in SECRETS.items():
        for fragment in fragments(value):
            assert fragment.encode() not in stored, name
    assert item.sha256 == hashlib.sha256(stored).hexdigest()  # the hash of what is stored
    raw = b"".join(p.read_bytes() for p in object_files(store))
    assert fragments(secret)[1].encode() not in raw
    rules = store._rows("SELECT DISTINCT field, entity FROM redactions WHERE entity='artifacts'")
    assert [tuple(r) for r in rules] == [("content", "artifacts")]


def test_verify_finds_a_damaged_object(store: agentkeep.Store) -> None:
    item = store.add_artifact(os.urandom(5000), name="x.bin").item
    assert store.verify_artifact(item.id).ok
    path = object_files(store)[0]
    path.chmod(0o644)
    path.write_bytes(b"changed")
    check = store.verify_artifact(item.id)
    assert (check.ok, check.problem) == (False, "hash mismatch")
    path.unlink()
    if store.artifacts.bytes_shared:  # PostgreSQL: verify fetches the shared copy
        assert store.verify_artifact(item.id).ok
        path.unlink()
        with store.transaction() as tx:
            store.unshare_bytes(tx, [f"objects/{path.name}"])
    assert store.verify_artifact(item.id).problem == "file missing"


def test_git_diff_includes_untracked_files_and_leaves_the_index_alone(
    project: Path, store: agentkeep.Store
) -> None:
    (project / "tracked.txt").write_text("one\n")
    git(project, "add", "tracked.txt")
    git(project, "commit", "-q", "-m", "base")
    (project / "tracked.txt").write_text("one\ntwo\n")
    (project / "new.py").write_text("print('new')\n")
    (project / ".gitignore").write_text("ignored.log\n")
    (project / "ignored.log").write_text("noise\n")
    index_before = (project / ".git" / "index").read_bytes()
    item = store.add_git_diff("HEAD").item
    patch = store.read_artifact(item.id).decode()
    assert "+two" in patch and "+print('new')" in patch and "b/new.py" in patch
    assert "noise" not in patch
    assert (item.kind, item.content_type, item.data) == ("diff", "text/x-diff", {"rev": "HEAD"})
    assert (project / ".git" / "index").read_bytes() == index_before
    # The patch recreates the working tree from the base commit.
    git(project, "stash", "-u", "-q")
    (project.parent / "p.patch").write_text(patch)
    git(project, "apply", str(project.parent / "p.patch"))
    assert (project / "tracked.txt").read_text() == "one\ntwo\n"
    assert (project / "new.py").read_text() == "print('new')\n"
    with pytest.raises(agentkeep.InvalidInput):
        store.add_git_diff("no-such-rev")


def test_spill_keeps_small_payloads_inline(store: agentkeep.Store) -> None:
    small = store.spill_payload("short output")
    assert (small.text, small.artifact_id) == ("short output", None)
    big_text = "line of tool output\n" * 20_000
    big = store.spill_payload(big_text, preview_chars=100)
    assert big.artifact_id is not None
    assert big.text.startswith(big_text[:100]) and "agentkeep artifacts cat" in big.text
    item = store.get_artifact(big.artifact_id)
    assert item.kind == "payload" and store.read_artifact(item.id) == big_text.encode()


def test_artifact_cli(project: Path, cli: Cli, tmp_path: Path) -> None:
    (project / "report.html").write_text("<p>ok</p>")
    added = cli("artifact", "add", "report.html", "--json").json()
    assert added["outcome"] == "created"
    assert added["artifact"]["content_type"] == "text/html"
    piped = cli("artifact", "add", "-", "--name", "out.txt", "--kind", "log", input=b"piped\n")
    assert piped.exit_code == 0 and "artifact 2 out.txt" in piped.stdout
    listed = cli("artifact", "ls", "--json").json()
    assert [a["id"] for a in listed] == [2, 1]
    assert cli("artifact", "ls", "--kind", "log", "--json").json()[0]["name"] == "out.txt"
    assert cli("artifact", "cat", "2").stdout == "piped\n"
    assert cli("artifact", "show", "1", "--json").json()["size"] == 9
    target = tmp_path / "copy.html"
    assert cli("artifact", "get", "1", "-o", str(target)).exit_code == 0
    assert target.read_text() == "<p>ok</p>"
    assert cli("artifact", "get", "1", "-o", str(target)).exit_code == 3  # exists
    verified = cli("artifact", "verify", "--json")
    assert verified.exit_code == 0 and all(r["ok"] for r in verified.json())
    assert cli("artifact", "show", "99").exit_code == 4
    assert cli("artifact", "add", "missing.txt").exit_code == 3
    assert cli("artifact", "add").exit_code == 3
    key = cli("artifact", "add", "-", "--idempotency-key", "k1", "--json", input=b"a")
    retry = cli("artifact", "add", "-", "--idempotency-key", "k1", "--json", input=b"a")
    assert key.json()["artifact"]["id"] == retry.json()["artifact"]["id"]
    assert retry.json()["outcome"] == "already_exists"
