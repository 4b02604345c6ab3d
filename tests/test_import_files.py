"""The importer framework: complete lines from an offset, zstd, cursors that notice
rewritten, truncated and rotated files, and the batch driver's idempotence."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.capture import Writer
from agentkeep.files import zstd
from agentkeep.importers import ImportContext, SourceFile, import_lines
from agentkeep.importers.files import Cursor, Line, file_key, load_cursor, read_lines


def lines_of(data: bytes, offset: int = 0, max_line: int = 1 << 20) -> list[Line]:
    return list(read_lines(io.BytesIO(data), offset, max_line=max_line))


def test_complete_lines_only_and_offsets() -> None:
    data = b'{"a":1}\n{"b":2}\n{"c":'
    lines = lines_of(data)
    assert [(line.offset, line.end, line.data) for line in lines] == [
        (0, 8, b'{"a":1}'),
        (8, 16, b'{"b":2}'),
    ]
    assert lines_of(data, 8)[0].data == b'{"b":2}'
    assert lines_of(data, 16) == []  # the unfinished line waits


def test_overlong_line_is_skipped_without_being_kept() -> None:
    data = b"short\n" + b"x" * 5000 + b"\nafter\n"
    lines = lines_of(data, max_line=1000)
    assert [line.data for line in lines] == [b"short", None, b"after"]
    assert lines[1].offset == 6 and lines[2].offset == 5007
    with pytest.raises(ValueError):
        lines[1].json()


def test_lines_split_across_read_chunks() -> None:
    # Lines longer than the 1 MiB read chunk are reassembled.
    big = json.dumps({"t": "y" * (3 << 20)}).encode()
    data = b"1\n" + big + b"\n2\n"
    lines = lines_of(data, max_line=8 << 20)
    assert [line.data for line in lines] == [b"1", big, b"2"]


def test_invalid_utf8_and_nan_decode() -> None:
    (line,) = lines_of(b'{"t": "ok \xff\xfe", "n": NaN}\n')
    value = line.json()
    assert value["t"] == "ok \ufffd\ufffd"
    assert value["n"] != value["n"]


def write(path: Path, data: bytes, *, compressed: bool = False) -> None:
    path.write_bytes(zstd().compress(data) if compressed else data)


def test_cursor_resumes_only_a_file_that_grew(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, b"a\nb\n")
    cursor = Cursor(source="t", file_key="log.jsonl")
    cursor.advance(path, 4)
    assert cursor.unchanged(path)
    write(path, b"a\nb\nc\n")
    assert not cursor.unchanged(path)
    assert cursor.resume_offset(path) == 4
    write(path, b"A\nb\nc\n")  # rewritten head
    assert cursor.resume_offset(path) == 0
    write(path, b"a\n")  # truncated below the offset
    assert cursor.resume_offset(path) == 0
    write(path, b"a\nB\nc\n")  # rewritten just before the offset
    assert cursor.resume_offset(path) == 0


def test_zstd_offsets_are_decompressed_and_the_key_survives_compression(tmp_path: Path) -> None:
    plain = tmp_path / "rollout-1.jsonl"
    data = b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(2000))
    write(plain, data)
    cursor = Cursor(source="t", file_key=file_key(plain, tmp_path))
    offset = next(line.end for line in lines_of(data) if line.end >= len(data) // 2)
    cursor.advance(plain, offset)
    packed = tmp_path / "rollout-1.jsonl.zst"
    write(packed, data, compressed=True)
    plain.unlink()
    assert file_key(packed, tmp_path) == cursor.file_key == "rollout-1.jsonl"
    assert cursor.resume_offset(packed) == offset


def _handler(writer: Writer, line: Line, state: dict[str, Any]) -> int:
    if line.data is None:
        state["skipped"] = state.get("skipped", 0) + 1
        return 0
    record = line.json()
    if "session_id" not in state:
        state["session_id"] = writer.session("test", "s-1")
    added = writer.message(
        state["session_id"],
        seq=line.offset,
        external_id=str(record["i"]),
        role="user",
        kind="text",
        text=record["t"],
    )
    return 1 if added else 0


def _import(store: agentkeep.Store, path: Path) -> int:
    ctx = ImportContext(store=store, root=str(store.root), project_dirs=(str(store.root),))
    file = SourceFile(path=path, key=path.name)
    cursor = load_cursor(store._conn, "test", path.name)
    return import_lines(ctx, file, cursor, _handler, source="test").messages


def _rows(store: agentkeep.Store) -> list[tuple[str, str]]:
    rows = store._rows("SELECT * FROM messages ORDER BY seq")
    return [(r["external_id"], r["text"]) for r in rows]


def test_driver_is_incremental_and_idempotent(store: agentkeep.Store, tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    records = [{"i": i, "t": f"entry {i}"} for i in range(10)]
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text[:-5])  # the last line is still being written
    assert _import(store, path) == 9
    assert _import(store, path) == 0  # unchanged: skipped by stat
    path.write_text(text)
    assert _import(store, path) == 1  # only the completed line
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(records)))  # rewritten
    assert _import(store, path) == 0  # re-read from 0, every entry already there
    assert sorted(_rows(store)) == sorted((str(r["i"]), r["t"]) for r in records)
    (cursor,) = store._rows("SELECT * FROM import_cursors")
    assert cursor["offset"] == len(text) and cursor["session_id"] is not None


def test_driver_commits_batches_with_their_cursor(
    store: agentkeep.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agentkeep.importers as importers

    monkeypatch.setattr(importers, "BATCH_BYTES", 200)
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"i": i, "t": "x" * 40}) + "\n" for i in range(30)))
    assert _import(store, path) == 30
    commits = store._rows("SELECT count(*) AS n FROM events WHERE kind = 'session.started'")
    assert commits[0]["n"] == 1
    assert store._row("SELECT offset FROM import_cursors")["offset"] == path.stat().st_size  # type: ignore[index]
