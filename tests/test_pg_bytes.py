"""Bulk bytes for teams (issue 12): two project directories — two "machines" — on one
PostgreSQL schema. What one seals or stores, the other reads byte for byte, although the
files exist only under the first one's ``.agentkeep/``; the shared copy is stored once,
checked by its digest, and deleted by gc with its rows.

Uses the shared test server (``pg_url``, tests/helpers/pg.py): without one these tests
skip, and fail under ``AGENTKEEP_REQUIRE_ALL_TESTS=1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.errors import Corrupt, NotFound
from agentkeep.services.artifacts import blob_name

from conftest import Cli, random_binary

MIB = 1 << 20


@dataclass(frozen=True)
class Team:
    a: Path  # machine A's project directory
    b: Path  # machine B's
    url: str

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """One statement on the shared schema, outside agentkeep (psycopg placeholders)."""
        from agentkeep.backends.postgres.connection import connect

        conn = connect(self.url)
        try:
            cursor = conn.raw.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()

    def blobs(self) -> dict[str, int]:
        """name -> number of chunk rows, for every blob stored."""
        rows = self.sql(
            "SELECT b.name, count(c.n) FROM blobs b LEFT JOIN blob_chunks c USING (name)"
            " GROUP BY b.name"
        )
        return {str(name): int(count) for name, count in rows}


@pytest.fixture
def team(pg_url: str, tmp_path: Path) -> Team:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        agentkeep.init_store(root, url=pg_url)
    return Team(a, b, pg_url)


def _files(root: Path, under: str) -> list[Path]:
    return sorted(p for p in (root / ".agentkeep" / under).rglob("*") if p.is_file())


def _text(lines: int) -> bytes:
    """Output-like text that compresses (stored zstd), spanning several stream frames."""
    return b"".join(
        f"{i:07d} building module {i % 97} of the tree, {i * 7919 % 10007} warnings\n".encode()
        for i in range(lines)
    )


def _sealed_session(store: agentkeep.Store, data: bytes) -> tuple[int, int]:
    """(session id, stream id) of a finished session whose stdout held ``data``, sealed."""
    session = store.start_session().item
    writer = store.open_stream(session.id, "stdout")
    for start in range(0, len(data), 64 * 1024):
        writer.write(data[start : start + 64 * 1024])
    writer.close()
    store.seal_stream(writer.stream.id)
    store.end_session(session.id, status="ended")
    return session.id, writer.stream.id


def test_a_teammate_reads_artifacts_byte_for_byte(team: Team, tmp_path: Path) -> None:
    binary = random_binary(2 * MIB + 12345)  # incompressible: stored as is, 3 chunks
    text = _text(60_000)  # ~4 MiB of text: stored zstd
    with agentkeep.open(team.a) as a:
        raw_id = a.add_artifact(binary, name="model.bin").item.id
        zst_id = a.add_artifact(text, name="build.log", kind="log").item.id
        assert a.get_artifact(raw_id).encoding == "identity"
        assert a.get_artifact(zst_id).encoding == "zstd"
    assert _files(team.b, "objects") == []  # B has none of the files

    with agentkeep.open(team.b) as b:
        assert b.read_artifact(raw_id) == binary
        assert b.read_artifact(zst_id) == text
        assert b.export_artifact(zst_id, tmp_path / "out.log") == len(text)
        assert (tmp_path / "out.log").read_bytes() == text
        with b.artifact_file(raw_id) as handle:
            assert handle.read() == binary
        assert b.verify_artifact(zst_id).ok
    # Fetched once into B's own objects/, as A stores them (read-only files).
    fetched = _files(team.b, "objects")
    assert [p.name for p in fetched] == [p.name for p in _files(team.a, "objects")]
    assert all(p.stat().st_mode & 0o777 == 0o400 for p in fetched)
    # The CLI on B: `artifacts cat` and `artifacts get`.
    cli = Cli()
    out = cli("--store", str(team.b), "artifacts", "cat", str(zst_id))
    assert out.exit_code == 0, out.stderr
    assert out.stdout.encode() == text
    target = tmp_path / "model.bin"
    got = cli("--store", str(team.b), "artifacts", "get", str(raw_id), "-o", str(target))
    assert got.exit_code == 0, got.stderr
    assert target.read_bytes() == binary


def test_a_teammate_reads_a_sealed_stream(team: Team) -> None:
    data = _text(50_000)  # ~3.4 MiB: four frames of the sealed format
    with agentkeep.open(team.a) as a:
        session_id, stream_id = _sealed_session(a, data)
        expected = a.stream_lines(stream_id)
        tail = a.stream_lines(stream_id, last=5, grep="warnings$")
    assert _files(team.b, "streams") == []

    with agentkeep.open(team.b) as b:
        assert b.read_stream(stream_id) == data
        assert b.read_stream(stream_id, 1_500_000, 100) == data[1_500_000:1_500_100]
        assert b.stream_lines(stream_id) == expected
        assert b.stream_lines(stream_id, last=5, grep="warnings$") == tail
        assert [line.text for line in b.session_lines(session_id, last=3)] == [
            line.text for line in expected[-3:]
        ]
    (fetched,) = _files(team.b, "streams")
    assert fetched.relative_to(team.b) == Path(".agentkeep/streams") / str(session_id) / (
        "stdout.zst"
    )
    out = Cli()("--store", str(team.b), "logs", str(session_id))
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines()[-1] == expected[-1].text


def test_a_live_stream_stays_on_its_machine(team: Team) -> None:
    """Until it is sealed, a stream is a local file: a teammate cannot read it (and is
    told so), and nothing of it is in the database."""
    with agentkeep.open(team.a) as a:
        session = a.start_session().item
        writer = a.open_stream(session.id, "stdout")
        writer.write(b"still running\n")
        writer.commit_progress()
        with agentkeep.open(team.b) as b, pytest.raises(Corrupt, match="missing"):
            b.read_stream(writer.stream.id)
        assert team.blobs() == {}
        writer.close()
        a.seal_stream(writer.stream.id)
    with agentkeep.open(team.b) as b:
        assert b.read_stream(writer.stream.id) == b"still running\n"


def test_the_same_bytes_are_stored_once(team: Team) -> None:
    data = random_binary(3 * MIB + 1)
    with agentkeep.open(team.a) as a:
        first = a.add_artifact(data, name="one.bin").item
    with agentkeep.open(team.b) as b:
        second = b.add_artifact(data, name="two.bin").item  # B stores the same bytes
        b.add_artifact(data, name="one.bin")
        assert b.read_artifact(first.id) == data
    assert first.sha256 == second.sha256 and first.id != second.id
    assert team.blobs() == {blob_name(first.sha256, "identity"): 4}  # 3 MiB + 1 byte
    with agentkeep.open(team.a) as a:
        assert a.backend.blobs.sizes(a._conn) == (1, len(data))


def test_a_damaged_chunk_is_detected_by_its_digest(team: Team) -> None:
    data = random_binary(3 * MIB)
    text = _text(40_000)
    with agentkeep.open(team.a) as a:
        artifact = a.add_artifact(data, name="x.bin").item
        _, stream_id = _sealed_session(a, text)
        sha = a.get_stream(stream_id).sha256
    assert sha is not None
    for name in (blob_name(artifact.sha256, "identity"), blob_name(sha, stream=True)):
        team.sql(
            "UPDATE blob_chunks SET data = overlay(data placing '\\xff00ff'::bytea from 1000)"
            " WHERE name = %s AND n = 0",
            (name,),
        )
    with agentkeep.open(team.b) as b:
        with pytest.raises(Corrupt, match="damaged"):
            b.read_artifact(artifact.id)
        with pytest.raises(Corrupt, match="damaged"):
            b.stream_lines(stream_id)
    # Nothing damaged was kept, not even a temp file; A's own copies are intact.
    assert _files(team.b, "objects") == [] and _files(team.b, "streams") == []
    with agentkeep.open(team.a) as a:
        assert a.read_artifact(artifact.id) == data
        assert a.read_stream(stream_id) == text


def test_gc_on_a_teammate_deletes_the_shared_bytes(team: Team) -> None:
    from agentkeep.ops.retention import apply_gc, pin, plan_gc

    keep = random_binary(MIB + 5)
    with agentkeep.open(team.a) as a:
        old = a.add_artifact(random_binary(2 * MIB), name="old.bin").item
        kept = a.add_artifact(keep, name="kept.bin").item
        pin(a, "artifact", kept.id)
        _, stream_id = _sealed_session(a, _text(20_000))
        sha = a.get_stream(stream_id).sha256
    assert sha is not None
    gone = {blob_name(old.sha256, "identity"), blob_name(sha, stream=True)}
    assert gone < set(team.blobs())
    cli = Cli()
    for key in ("retention.file.max_age_days", "retention.streams.max_age_days"):
        set_it = cli("--store", str(team.b), "config", "set", key, "1")
        assert set_it.exit_code == 0, set_it.stderr

    with agentkeep.open(team.b) as b:
        later = datetime.now(UTC) + timedelta(days=3)
        plan = plan_gc(b, now=later)
        assert {(i.what, i.id) for i in plan.items} >= {("artifact", old.id), ("stream", stream_id)}
        apply_gc(b, plan)
    assert team.blobs() == {blob_name(kept.sha256, "identity"): 2}
    with agentkeep.open(team.a) as a:
        with pytest.raises(NotFound):
            a.read_artifact(old.id)
        assert a.read_artifact(kept.id) == keep


def test_doctor_finds_bytes_only_one_machine_has_and_fix_shares_them(team: Team) -> None:
    from agentkeep.ops.doctor import doctor

    data = random_binary(MIB)
    with agentkeep.open(team.a) as a:
        artifact = a.add_artifact(data, name="x.bin").item
        _, stream_id = _sealed_session(a, _text(1000))
        live = a.start_session(host="machine-a").item  # recorded on A, still running
        writer = a.open_stream(live.id, "stdout")
        writer.write(b"A is still writing this\n")
        writer.commit_progress()
        over = a.start_session(host="machine-a").item  # ended on A, sealer not done yet
        closed = a.open_stream(over.id, "stdout")
        closed.write(b"sealed soon\n")
        closed.close()
        empty = a.open_stream(over.id, "stderr")
        empty.close()
        a.end_session(over.id, status="ended")
        with agentkeep.open(team.b) as b:  # B has no file, and needs none: nothing to do
            for fix in (False, True):
                checks = {f.check for f in doctor(b, fix=fix).findings}
                assert not checks & {"missing-file", "unshared", "hash-mismatch"}
                assert "unsealed-stream" not in checks
        for left_to_a in (closed, empty):  # only A has their files: B never seals them
            assert a.get_stream(left_to_a.stream.id).status == "closed"
        writer.close()
    team.sql("DELETE FROM blobs")  # as if A had stored them before sharing existed
    with agentkeep.open(team.a) as a:
        found = [f for f in doctor(a).findings if f.check == "unshared"]
        assert len(found) == 2 and not any(f.fixed for f in found)
        fixed = [f for f in doctor(a, fix=True).findings if f.check == "unshared"]
        assert len(fixed) == 2 and all(f.fixed for f in fixed)
    with agentkeep.open(team.b) as b:
        assert b.read_artifact(artifact.id) == data
        assert b.stream_lines(stream_id)
        assert not {f.check for f in doctor(b).findings} & {"missing-file", "unshared"}


def test_a_teammate_exports_a_bundle_with_the_bytes(team: Team, tmp_path: Path) -> None:
    """B exports what A stored (fetching the files it lacks); the bundle imports into a
    SQLite store with every byte."""
    from agentkeep.ops.bundle_export import export_bundle
    from agentkeep.ops.bundle_import import import_bundle

    binary, text = random_binary(MIB + 7), _text(30_000)
    with agentkeep.open(team.a) as a:
        session_id, stream_id = _sealed_session(a, text)
        artifact = a.add_artifact(binary, name="x.bin", session_id=session_id).item
    out = tmp_path / "team.akb"
    with agentkeep.open(team.b) as b:
        export_bundle(b, out, session_ids=[session_id])
    local = tmp_path / "local"
    local.mkdir()
    agentkeep.init_store(local)
    with agentkeep.open(local) as store:
        import_bundle(store, out)
        (copy,) = store.list_artifacts()
        assert copy.sha256 == artifact.sha256 and store.read_artifact(copy.id) == binary
        (stream,) = store.list_streams()
        assert stream.status == "sealed" and store.read_stream(stream.id) == text
    assert stream_id  # A's id; the import gave its own


def test_size_limits_count_the_bytes_another_machine_stored(team: Team) -> None:
    """B has none of the files, yet its retention by size sees what A stored (the rows'
    stored bytes), and deletes the oldest to fit."""
    from agentkeep.ops.retention import plan_gc

    with agentkeep.open(team.a) as a:
        old = a.add_artifact(random_binary(MIB), name="old.bin").item
        a.add_artifact(random_binary(MIB), name="new.bin")
        _sealed_session(a, random_binary(MIB))  # an incompressible stream: ~1 MiB stored
        _sealed_session(a, random_binary(MIB))
    cli = Cli()
    for key in ("retention.file.max_total_bytes", "retention.streams.max_total_bytes"):
        set_it = cli("--store", str(team.b), "config", "set", key, str(3 * MIB // 2))
        assert set_it.exit_code == 0, set_it.stderr
    with agentkeep.open(team.b) as b:
        plan = plan_gc(b)
    doomed = {(item.what, item.id) for item in plan.items}
    assert ("artifact", old.id) in doomed and plan.artifacts == 1
    assert plan.streams == 1 and plan.bytes >= MIB + MIB // 2  # both counted
