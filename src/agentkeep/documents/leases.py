"""Who holds a lock or a lease: a process named by host, pid and start time.

A pid alone is not an identity: pids are reused, and a lock whose holder died must not be
taken for a live one's because a new process got its number. Nor is a file's mtime: a
reclaim judged by mtime steals the lock of a live holder that is merely slow. So a holder
is ``host:pid:start``, where ``start`` is the process's start time as the kernel counts it
(clock ticks since boot, prefixed by the boot's id so a reboot changes it) — on Linux read
from ``/proc``; elsewhere unknown (empty), and then the pid alone is checked.

:meth:`Holder.alive` answers for holders on this host only: ``True`` (that very process
runs), ``False`` (it does not), or ``None`` for another host, whose holder only its lease's
expiry can judge.

Standard library only: queue workers and the hook path may use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agentkeep.files import HOST, pid_alive

_BOOT_ID: str | None = None


def _boot_id() -> str:
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as handle:
                _BOOT_ID = handle.read().strip().replace("-", "")[:12]
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def process_start(pid: int) -> str:
    """The start time of process ``pid`` ("<boot id>.<clock ticks since boot>"), or "" when
    it cannot be read (no such process, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    # after the last ')' are fixed; starttime is field 22, the 20th after it.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return ""
    return f"{_boot_id()}.{fields[19].decode()}"


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: str  # process_start(pid) when taken; "" when unknown

    @classmethod
    def me(cls) -> Holder:
        """This process."""
        pid = os.getpid()
        return cls(HOST, pid, process_start(pid))

    @classmethod
    def parent(cls) -> Holder:
        """The process that started this one (a CLI command's caller: the agent or shell
        whose lock it takes, since the command itself exits at once)."""
        pid = os.getppid()
        return cls(HOST, pid, process_start(pid))

    @classmethod
    def parse(cls, text: str) -> Holder:
        """The inverse of :meth:`__str__`; ValueError for text that is not a holder."""
        host, pid, started = text.rsplit(":", 2)
        if not host or not pid.isdigit():
            raise ValueError(f"not a lock holder: {text!r}")
        return cls(host, int(pid), started)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"

    def alive(self) -> bool | None:
        """Whether this holder runs: True or False on this host, None on another one."""
        if self.host != HOST:
            return None
        if not pid_alive(self.pid):
            return False
        if not self.started:
            return True  # no start time to compare: the pid runs, give it the benefit
        return process_start(self.pid) == self.started

    def is_me_or_parent(self) -> bool:
        """Whether this holder is this process or the process that started it."""
        return self in (Holder.me(), Holder.parent())
