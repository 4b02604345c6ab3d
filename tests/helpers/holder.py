"""A process that holds a store open and writes when told (tests/test_corruption.py).

    python tests/helpers/holder.py STORE

Reads one command per line on stdin and answers one JSON line on stdout:

    add N PREFIX   add N tasks titled "PREFIX i" -> {"ok": true, "ids": [...]}
                                                  or {"ok": false, "code": ..., "error": ...}
    die            SIGKILL itself (leaves a hot WAL and no clean close)
    quit           close the store and exit
"""

from __future__ import annotations

import json
import os
import signal
import sys

import agentkeep
from agentkeep.errors import AgentkeepError


def main(root: str) -> None:
    store = agentkeep.open(root)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "add":
            ids = []
            try:
                for i in range(int(words[1])):
                    ids.append(store.add_task(f"{words[2]} {i}").item.id)
                answer = {"ok": True, "ids": ids}
            except AgentkeepError as exc:
                answer = {"ok": False, "ids": ids, "code": exc.code, "error": exc.message}
            print(json.dumps(answer), flush=True)
        elif words[0] == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif words[0] == "quit":
            break
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
