"""Whether two checkouts store the same rows for the same Claude Code transcripts.

Imports one input (bench_import's generated sessions plus a small file with generated
secrets in every field a line carries: uuids, parents, times, ids, the working directory)
with each checkout's ``src`` in its own process, into a fresh store at the same path, and
compares every table row by row. Columns whose values differ between two imports by the
*same* checkout (the import's own clock: created_at, events' and redactions' at, ...) are
left out, and named. Any other difference is printed and the exit status is 1.

    .venv/bin/python bench/compare_import_rows.py --before /work/main [--mib 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_import  # noqa: E402

import secretgen  # noqa: E402

# Runs in a child process with one checkout's src first on sys.path.
_DUMP = r"""
import json, os, sqlite3, subprocess, sys
from pathlib import Path
import agentkeep
proj, source, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
agentkeep.init_store(proj)
with agentkeep.open(proj) as store:
    result = store.import_history("claude", path=source)
    store.search("migration", kinds=["message"], limit=1)  # the catch-up: index complete
conn = sqlite3.connect(proj / ".agentkeep" / "state.db")
tables = [r[0] for r in conn.execute(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    " AND name NOT LIKE '%fts_%' ORDER BY name")]
dump = {"result": {"messages": result.messages, "errors": len(result.errors)}}
for table in tables:
    try:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
        rows = [list(r) for r in cur]
    except sqlite3.OperationalError:  # WITHOUT ROWID
        cur = conn.execute(f"SELECT * FROM {table}")
        rows = sorted((list(r) for r in cur), key=repr)
    cols = [d[0] for d in cur.description]
    dump[table] = {"columns": cols, "rows": rows}
# what the full-text index finds: every stored text, by rowid
dump["fts_match"] = [r[0] for r in conn.execute(
    "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'migration' ORDER BY rowid")]
out.write_text(json.dumps(dump, default=repr))
"""


def adversarial(directory: Path, cwd: str) -> list[str]:
    """A transcript whose every field holds a generated secret somewhere; the secrets."""
    generated = list(secretgen.generate().values())
    secrets = [text for text, _ in generated]
    found = [part for _, part in generated]
    session = "0f0e0d0c-0b0a-4909-8807-060504030201"
    lines: list[dict[str, Any]] = []
    for n, secret in enumerate(secrets):
        one_line = secret.replace("\n", " ")
        lines.append(
            {
                "type": "user",
                "uuid": f"{one_line}" if n % 3 == 0 else f"aaaaaaaa-0000-4000-8000-{n:012d}",
                "parentUuid": one_line if n % 3 == 1 else None,
                "timestamp": f"2026-08-20T14:02:{n:02d}.000Z" if n % 2 else one_line,
                "sessionId": session,
                "cwd": cwd,
                "message": {"role": "user", "content": f"say {secret}"},
            }
        )
        lines.append(
            {
                "type": "assistant",
                "uuid": f"bbbbbbbb-0000-4000-8000-{n:012d}",
                "parentUuid": f"aaaaaaaa-0000-4000-8000-{n:012d}",
                "timestamp": f"2026-08-20T14:03:{n:02d}.000Z",
                "sessionId": session,
                "cwd": cwd,
                "requestId": one_line,
                "message": {
                    "id": f"msg_{n}:{one_line}",
                    "model": "claude-opus-4-5",
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": one_line, "name": one_line, "input": {}}
                    ],
                    "usage": {"input_tokens": 3, "output_tokens": 5},
                },
            }
        )
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{session}.jsonl").open("w", encoding="utf-8") as out:
        for obj in lines:
            out.write(json.dumps(obj) + "\n")
    return found


def dump(checkout: Path, work: Path, source: Path, name: str) -> dict[str, Any]:
    proj = work / "proj"
    shutil.rmtree(proj / ".agentkeep", ignore_errors=True)
    home = work / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    out = work / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "AGENTKEEP_HOME": str(home)}
    env["CLAUDE_CONFIG_DIR"] = str(work / "claude")
    subprocess.run(
        [sys.executable, "-c", _DUMP, str(proj), str(source), str(out)], check=True, env=env
    )
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def varying(a: dict[str, Any], b: dict[str, Any]) -> set[tuple[str, str]]:
    """(table, column) pairs whose values differ between two runs of one checkout."""
    found: set[tuple[str, str]] = set()
    for table, content in a.items():
        if not isinstance(content, dict) or "columns" not in content:
            continue
        other = b[table]["rows"]
        for row, row2 in zip(content["rows"], other, strict=False):
            for col, x, y in zip(content["columns"], row, row2, strict=True):
                if x != y:
                    found.add((table, col))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--after", type=Path, default=HERE.parent, help="default: this one")
    parser.add_argument("--mib", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentkeep-compare-import-"))
    try:
        proj = work / "proj"
        proj.mkdir()
        subprocess.run(["git", "init", "-q", str(proj)], check=True)
        source = work / "claude" / "projects" / "-compare-project"
        bench_import.generate(source, str(proj), args.mib * bench_import.MiB, args.seed)
        secrets = adversarial(source, str(proj))
        first = dump(args.before, work, source, "before")
        again = dump(args.before, work, source, "before2")
        after = dump(args.after, work, source, "after")
        skip = varying(first, again)
        print("left out (differ between two imports by one checkout):")
        for table, col in sorted(skip):
            print(f"  {table}.{col}")
        problems = 0
        for table in sorted(set(first) | set(after)):
            x, y = first.get(table), after.get(table)
            if not isinstance(x, dict) or "columns" not in x:
                if x != y:
                    print(f"DIFF {table}: {x!r} != {y!r}")
                    problems += 1
                continue
            assert isinstance(y, dict)
            if x["columns"] != y["columns"] or len(x["rows"]) != len(y["rows"]):
                print(
                    f"DIFF {table}: columns or row count differ ({len(x['rows'])} vs "
                    f"{len(y['rows'])})"
                )
                problems += 1
                continue
            keep = [i for i, c in enumerate(x["columns"]) if (table, c) not in skip]
            for r1, r2 in zip(x["rows"], y["rows"], strict=True):
                a1, a2 = [r1[i] for i in keep], [r2[i] for i in keep]
                if a1 != a2:
                    problems += 1
                    if problems <= 20:
                        print(f"DIFF {table}:\n  before {a1}\n  after  {a2}")
            print(f"{table}: {len(x['rows'])} rows compared")
        text = (work / "after.json").read_text()
        leaked = [s for s in secrets if s and s in text]
        if leaked:
            print(f"LEAK: {len(leaked)} generated secrets stored by --after: {leaked}")
            problems += 1
        print("same rows" if not problems else f"{problems} difference(s)")
        return 1 if problems else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
