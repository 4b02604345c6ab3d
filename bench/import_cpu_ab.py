"""The Claude import's CPU and wall time in two checkouts, alternately, on one input.

On a shared machine wall-clock MB/s swing 2× between runs; the import's own CPU time
(``time.process_time``) swings far less. Generates bench_import's transcripts once, then
imports them into a fresh store with each checkout's ``src`` in turn (redaction on, then
with the redactor stubbed), ``--rounds`` times, and prints seconds as median (min–max).

    .venv/bin/python bench/import_cpu_ab.py --before /work/main [--mib 20] [--session-kib 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_import  # noqa: E402

_IMPORT = r"""
import os, shutil, sys, time
from pathlib import Path
import agentkeep
from agentkeep import redact
proj, source, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if mode == "stubbed":
    redact.redact_text = lambda text: (text, {})
    redact.may_contain_secret = lambda text: False
shutil.rmtree(proj / ".agentkeep", ignore_errors=True)
agentkeep.init_store(proj)
with agentkeep.open(proj) as store:
    wall, cpu = time.perf_counter(), time.process_time()
    store.import_history("claude", path=source)
    print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--after", type=Path, default=HERE.parent, help="default: this one")
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--session-kib", type=int, default=0, help="see bench_import.py")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentkeep-import-ab-"))
    try:
        proj = work / "proj"
        proj.mkdir()
        subprocess.run(["git", "init", "-q", str(proj)], check=True)
        source = work / "claude" / "projects" / "-ab-project"
        size, lines, files = bench_import.generate(
            source, str(proj), args.mib * bench_import.MiB, 1, args.session_kib * 1024 or None
        )
        print(f"input: {size / 1e6:.1f} MB, {lines:,} lines in {files} files")
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for name, tree in (("before", args.before), ("after", args.after)):
                for mode in ("redaction on", "stubbed"):
                    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
                    env["AGENTKEEP_HOME"] = str(work / "home")
                    out = subprocess.run(
                        [sys.executable, "-c", _IMPORT, str(proj), str(source), mode],
                        check=True,
                        env=env,
                        capture_output=True,
                        text=True,
                    ).stdout.split()
                    times.setdefault((name, mode), []).append((float(out[0]), float(out[1])))
        for (name, mode), values in sorted(times.items()):
            cells = []
            for label, index in (("cpu", 1), ("wall", 0)):
                seconds = [v[index] for v in values]
                cells.append(
                    f"{label} {statistics.median(seconds):.2f} s "
                    f"({min(seconds):.2f}-{max(seconds):.2f})"
                )
            print(f"{name:<7} {mode:<13} {'  '.join(cells)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
