"""A recorder for tests/test_crash_files.py: ``agentkeep.ops.runner.run_command`` on a child
that prints numbered lines, to be SIGKILLed mid-stream.

    python tests/helpers/run_victim.py STORE LINES

Prints ``{"session": id}`` (flushed) once the session exists. The child prints
``numbered_line(i)`` for i in range(LINES), a little at a time; the parent can rebuild the
whole output with the same function.
"""

from __future__ import annotations

import json
import sys

import agentkeep
from agentkeep.ops.runner import run_command

CHILD = """
import sys, time
for i in range({lines}):
    sys.stdout.write("%08d the quick brown fox jumps over the lazy dog\\n" % i)
    if i % 50 == 0:
        sys.stdout.flush()
        time.sleep(0.005)
"""


def numbered_output(lines: int) -> bytes:
    """Exactly what the child prints."""
    return b"".join(b"%08d the quick brown fox jumps over the lazy dog\n" % i for i in range(lines))


def started(session_id: int) -> None:
    sys.stdout.write(json.dumps({"session": session_id}) + "\n")
    sys.stdout.flush()


def main() -> int:
    store_path, lines = sys.argv[1], int(sys.argv[2])
    argv = [sys.executable, "-c", CHILD.format(lines=lines)]
    with agentkeep.open(store_path) as store:
        run_command(store, argv, echo=False, on_start=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
