"""Backup and restore of a store on PostgreSQL (docs/team.md "Backups and restore").

A backup is a portable SQLite snapshot: restored into a new directory it is a SQLite store,
never a second way into the live server's. ``restore --force`` into the PostgreSQL project
copies the backup into a staging schema and swaps it in; the old schema is renamed aside,
never dropped; a SIGKILL at any step leaves the old store or the restored one, and a rerun
finishes; a connection that had the old store open reads the restored one next."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkeep

from conftest import run_agentkeep
from helpers.pg import PgServer, PgUrl, drop_schema, with_schema

pytest.importorskip("psycopg")

from agentkeep.errors import Conflict
from agentkeep.ops.backup import backup
from agentkeep.ops.restore import read_backup_manifest, restore
from agentkeep.services.artifacts import blob_name

pytestmark = pytest.mark.postgres


def schemas_like(server: PgServer, prefix: str) -> list[str]:
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY nspname",
            (prefix.replace("_", "\\_") + "\\_%",),
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def project(tmp_path: Path, pg_url: PgUrl, pg_server: PgServer) -> Iterator[Path]:
    """A project whose store is on the server, holding a few records; the schemas a
    restore moves aside or stages are dropped afterwards."""
    root = tmp_path / "project"
    root.mkdir()
    agentkeep.init_store(root, url=pg_url)
    with agentkeep.open(root) as store:
        first = store.add_task("before the backup", labels=["x"]).item
        store.add_note("handoff", "half done", task_id=first.id)
        store.add_artifact(b"artifact bytes\n" * 50, kind="log", name="run.log")
    yield root
    for name in schemas_like(pg_server, pg_url.schema):
        drop_schema(pg_server, name)


def titles(store: agentkeep.Store) -> list[str]:
    return sorted(t.title for t in store.list_tasks(limit=0))


def test_a_full_backup_of_a_server_store_restores_elsewhere_as_sqlite(
    project: Path, pg_url: PgUrl, tmp_path: Path
) -> None:
    with agentkeep.open(project) as store:
        snap = backup(store, tmp_path / "snap")
        store.add_task("after the backup")
    manifest = read_backup_manifest(Path(snap.path))
    assert manifest["source_backend"] == "postgres"
    assert manifest["source_url"].endswith(f"schema={pg_url.schema}")
    from agentkeep.config import read_toml

    assert not read_toml(Path(snap.path) / "config.toml").get("store.url")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = restore(snap.path, elsewhere)
    assert result.check_ok and result.backend == "sqlite", result
    assert any("SQLite" in note for note in result.notes)
    assert (elsewhere / ".agentkeep" / "state.db").is_file()
    with agentkeep.open(elsewhere) as restored:
        assert restored.backend.name == "sqlite"
        assert titles(restored) == ["before the backup"]


def test_an_older_backup_holding_the_server_url_restores_as_sqlite(
    project: Path, pg_url: PgUrl, tmp_path: Path
) -> None:
    """A backup made before backups left ``store.url`` out: the URL is dropped on restore
    (else the restored directory would silently open the live store)."""
    from agentkeep.config import set_in_file
    from agentkeep.ops.bundle_format import MANIFEST, entry, sha256_file

    with agentkeep.open(project) as store:
        snap = Path(backup(store, tmp_path / "snap").path)
        store.add_task("after the backup")
    set_in_file(snap / "config.toml", "store.url", pg_url)
    manifest = json.loads((snap / MANIFEST).read_text())
    manifest["files"]["config.toml"] = entry(*sha256_file(snap / "config.toml"))
    del manifest["source_backend"], manifest["source_url"]
    (snap / MANIFEST).write_text(json.dumps(manifest))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = restore(snap, elsewhere)
    assert result.check_ok and result.backend == "sqlite" and result.notes, result
    with agentkeep.open(elsewhere) as restored:
        assert titles(restored) == ["before the backup"]


@pytest.mark.parametrize("kind", ["directory", "database file"])
def test_restore_force_swaps_the_schema_and_keeps_the_old_one(
    project: Path, pg_url: PgUrl, pg_server: PgServer, tmp_path: Path, kind: str
) -> None:
    with agentkeep.open(project) as store:
        if kind == "directory":
            source = Path(backup(store, tmp_path / "snap").path)
        else:
            source = store.backup(tmp_path / "state-copy.db")
        store.add_task("after the backup")
        before = store.status().counts
    with pytest.raises(Conflict, match="already holds a store"):
        restore(source, project)
    with agentkeep.open(project) as store:
        assert titles(store) == ["after the backup", "before the backup"]
    result = restore(source, project, force=True)
    assert result.check_ok and result.backend == "postgres", result
    assert result.replaced is not None and result.replaced.startswith(f"{pg_url.schema}_replaced_")
    assert any(f'DROP SCHEMA "{result.replaced}"' in note for note in result.notes)
    assert not (project / ".agentkeep" / "state.db").exists()
    assert schemas_like(pg_server, pg_url.schema) == [result.replaced]  # no staging left
    with agentkeep.open(project) as restored:
        assert titles(restored) == ["before the backup"]
        (artifact,) = restored.list_artifacts()
        assert restored.read_artifact(artifact.id) == b"artifact bytes\n" * 50
        # Its bytes are in the restored schema too: other machines can fetch them.
        name = blob_name(artifact.sha256, artifact.encoding)
        assert restored.artifacts.shared_bytes([name]) == {name}
        restored.add_task("written after the restore")
        assert restored.check().ok
        assert restored.status().counts["tasks"] == 2
    # The old store is whole, under its new name, and its triggers count its own rows
    # (its functions' search_path follows the rename).
    with agentkeep.open(project, url=with_schema(pg_url, result.replaced)) as old:
        assert titles(old) == ["after the backup", "before the backup"]
        assert old.status().counts == before
        old.add_task("written to the old store")
        assert old.status().counts["tasks"] == 3 and old.check().ok
    with agentkeep.open(project) as restored:
        assert restored.status().counts["tasks"] == 2


def test_a_connection_open_across_the_restore_reads_the_restored_store(
    project: Path, tmp_path: Path
) -> None:
    with agentkeep.open(project) as store:
        snap = Path(backup(store, tmp_path / "snap").path)
        store.add_task("after the backup")
    with agentkeep.open(project) as other:  # another process's store, open throughout
        assert titles(other) == ["after the backup", "before the backup"]
        assert restore(snap, project, force=True).check_ok
        assert titles(other) == ["before the backup"]
        assert other.add_task("from the open connection").outcome == "created"
    with agentkeep.open(project) as restored:
        assert titles(restored) == ["before the backup", "from the open connection"]
        assert restored.check().ok


@pytest.mark.parametrize(
    ("failpoint", "swapped"),
    [("copy:table:3", False), ("restore:copied", False), ("restore:swapped", True)],
)
def test_a_restore_killed_at_any_step_leaves_a_whole_store_and_reruns(
    project: Path, pg_url: PgUrl, pg_server: PgServer, tmp_path: Path, failpoint: str, swapped: bool
) -> None:
    with agentkeep.open(project) as store:
        snap = Path(backup(store, tmp_path / "snap").path)
        store.add_task("after the backup")
    env = {**os.environ, "AGENTKEEP_FAILPOINT": failpoint}
    killed = run_agentkeep("restore", str(snap), "--force", cwd=project, env=env)
    assert killed.returncode == -9, killed.stderr
    with agentkeep.open(project) as store:
        expected = ["before the backup"] if swapped else ["after the backup", "before the backup"]
        assert titles(store) == expected
        assert store.check().ok
    staged = [s for s in schemas_like(pg_server, pg_url.schema) if "_restoring_" in s]
    assert len(staged) == (0 if swapped else 1), staged
    again = run_agentkeep("restore", str(snap), "--force", "--json", cwd=project)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["check_ok"] is True and out["replaced"], out
    with agentkeep.open(project) as store:
        assert titles(store) == ["before the backup"]
    left = schemas_like(pg_server, pg_url.schema)
    assert not [s for s in left if "_restoring_" in s], left  # the staged copy was used
    assert len(left) == (2 if swapped else 1), left


def test_db_backup_and_the_backups_directory_work_on_a_server_store(project: Path) -> None:
    """``db backup`` and ``backup`` without a destination write into .agentkeep/backups/,
    usage counts that directory, and either restores over the server's store."""
    for args in (("db", "backup"), ("backup",)):
        done = run_agentkeep(*args, "--json", cwd=project)
        assert done.returncode == 0, done.stderr
    backups = sorted((project / ".agentkeep" / "backups").iterdir())
    assert [p.name.split("-")[0] for p in backups] == ["snapshot", "state"], backups
    usage = run_agentkeep("usage", "--json", cwd=project)
    assert usage.returncode == 0, usage.stderr
    areas = {a["name"]: a for a in json.loads(usage.stdout)["areas"]}
    assert areas["backups"]["bytes"] > 0, areas
    for path in backups:
        done = run_agentkeep("restore", str(path), "--force", "--json", cwd=project)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["check_ok"] is True
    with agentkeep.open(project) as store:
        assert titles(store) == ["before the backup"]


def test_cli_restore_says_where_the_old_schema_went(project: Path, tmp_path: Path) -> None:
    with agentkeep.open(project) as store:
        snap = Path(backup(store, tmp_path / "snap").path)
    refused = run_agentkeep("restore", str(snap), cwd=project)
    assert refused.returncode == 5 and b"--force" in refused.stderr
    done = run_agentkeep("restore", str(snap), "--force", cwd=project)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "DROP SCHEMA" in text and "check: ok" in text, text
