"""Failpoints: deterministic crash injection for tests (docs/design.md "Failpoints").

Production code calls ``failpoint("name")`` at the steps of a protocol. It is a no-op unless
the environment variable ``AGENTKEEP_FAILPOINT`` is ``name`` or ``name:N``, in which case the
process kills itself with SIGKILL on the N-th hit (default 1) — exactly like a power cut as far
as the process is concerned.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("AGENTKEEP_FAILPOINT", "")
# Names contain colons themselves ("migrate:begin"): only a numeric last part is a count.
_HEAD, _, _TAIL = _SPEC.rpartition(":")
_NAME, _remaining = (_HEAD, int(_TAIL)) if _HEAD and _TAIL.isdigit() else (_SPEC, 1)


def failpoint(name: str) -> None:
    global _remaining
    if not _NAME or name != _NAME:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
