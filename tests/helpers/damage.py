"""Damage a store's database files the way users, crashes and disks do (tests only).

Runs as its own process: the test suite's audit hook forbids the test process itself from
opening live database files with Python file APIs, and damage done by another process is
what happens in real life anyway.

    damage.py truncate PATH               cut PATH to 0 bytes
    damage.py remove PATH                 delete PATH (e.g. state.db-shm under a holder)
    damage.py flip-wal-frame WAL N        flip a byte inside the page of frame N (0-based)
    damage.py wal-frames WAL              print how many frames the WAL holds
    damage.py table-leaf DB TABLE         smash the header of the table's last leaf page
    damage.py index-cell DB INDEX         change one byte of a key in the index's root page
    damage.py sha256 PATH                 print the file's sha256
    damage.py killed-write DB             switch DB to rollback-journal mode, then die by
                                          SIGKILL in the middle of a big write: a hot
                                          DB-journal is left
    damage.py killed-temp-db DIR          die like a backup copy killed mid-write: leaves
                                          DIR/state.db.pre-v9-X.tmp-<this pid>-0badc0de
                                          and its hot -journal
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import struct
import sys

WAL_HEADER = 32
FRAME_HEADER = 24


def page_size_of_wal(wal: str) -> int:
    with open(wal, "rb") as handle:
        header = handle.read(WAL_HEADER)
    return int(struct.unpack(">I", header[8:12])[0])


def wal_frames(wal: str) -> int:
    size = os.path.getsize(wal)
    return (size - WAL_HEADER) // (FRAME_HEADER + page_size_of_wal(wal))


def flip_wal_frame(wal: str, frame: int) -> None:
    page = page_size_of_wal(wal)
    offset = WAL_HEADER + frame * (FRAME_HEADER + page) + FRAME_HEADER + page // 2
    with open(wal, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _root_and_page_size(db: str, name: str) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,))
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return int(root[0]), int(page_size)


def _read_page(handle: object, number: int, page_size: int) -> bytes:
    handle.seek((number - 1) * page_size)  # type: ignore[attr-defined]
    return handle.read(page_size)  # type: ignore[attr-defined,no-any-return]


def table_leaf(db: str, table: str) -> None:
    """Follow the right-most pointers from the table's root to its last leaf page, then
    overwrite that page's header: reading the last rows fails with SQLITE_CORRUPT."""
    number, page_size = _root_and_page_size(db, table)
    with open(db, "r+b") as handle:
        page = _read_page(handle, number, page_size)
        if page[0] != 0x05:
            sys.exit(f"{table} fits in one page; add more rows")
        while page[0] == 0x05:  # interior table page: right-most child at bytes 8..11
            number = struct.unpack(">I", page[8:12])[0]
            page = _read_page(handle, number, page_size)
        handle.seek((number - 1) * page_size)
        handle.write(b"\xff" * 12)


def index_cell(db: str, index: str) -> None:
    """Change one byte of the last key stored in the index's root page (a leaf page):
    the index no longer matches its table, which only integrity_check sees."""
    number, page_size = _root_and_page_size(db, index)
    with open(db, "r+b") as handle:
        page = _read_page(handle, number, page_size)
        if page[0] != 0x0A:
            sys.exit(f"{index} root is not a leaf page (type {page[0]})")
        cells = struct.unpack(">H", page[3:5])[0]
        pointer = struct.unpack(">H", page[8 + 2 * (cells - 1) : 10 + 2 * (cells - 1)])[0]
        offset = (number - 1) * page_size + pointer + 4  # inside the record's body
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def killed_write(db: str, *, switch: bool) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    if switch:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    else:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    conn.execute("PRAGMA cache_size=1")  # spill to the file (and the journal) early
    conn.execute("BEGIN IMMEDIATE")
    if switch:
        conn.execute("UPDATE tasks SET title = 'half-written ' || title")
    for i in range(3000):
        conn.execute(
            "INSERT INTO "
            + ("meta (key, value)" if switch else "t (x)")
            + (" VALUES (?, ?)" if switch else " VALUES (?)"),
            (f"k{i}", "v" * 200) if switch else ("v" * 200,),
        )
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> None:
    command, path = argv[0], argv[1]
    if command == "truncate":
        os.truncate(path, 0)
    elif command == "remove":
        os.remove(path)
    elif command == "flip-wal-frame":
        flip_wal_frame(path, int(argv[2]))
    elif command == "wal-frames":
        print(wal_frames(path))
    elif command == "table-leaf":
        table_leaf(path, argv[2])
    elif command == "index-cell":
        index_cell(path, argv[2])
    elif command == "killed-write":
        killed_write(path, switch=True)
    elif command == "killed-temp-db":
        killed_write(
            os.path.join(path, f"state.db.pre-v9-20260101T000000Z.tmp-{os.getpid()}-0badc0de"),
            switch=False,
        )
    elif command == "sha256":
        with open(path, "rb") as handle:
            print(hashlib.sha256(handle.read()).hexdigest())
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
