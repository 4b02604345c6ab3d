"""`agentkeep queue work QUEUE -- CMD`: run CMD for each item of a queue as it appears.

The loop: take the oldest ready item (holder: this process, so a dead worker's item returns
at once) → run CMD as a recorded session (:func:`agentkeep.ops.runner.record_command`), the
item's body on its stdin and ``AGENTKEEP_QUEUE`` / ``AGENTKEEP_QUEUE_ITEM`` /
``AGENTKEEP_QUEUE_ATTEMPT`` in its environment, while a thread renews the lease → exit 0:
ack; anything else: nack with exponential backoff (``backoff * 2**(attempt-1)``, capped),
or failed after ``max_attempts`` takes. An item taken with more than ``max_attempts``
(its earlier holders died running it) fails without running again.

Idle, the worker looks at ``new/`` every ``poll`` seconds (a ``scandir``: ~100 ms by
default, so a new item starts within ~0.1 s + the command's start-up). There is no
notification to miss: every wake claims by renaming and, when nothing could be claimed
while items exist (the wake bug of notify-then-sleep queues), the next poll tries again.

SIGTERM, SIGINT or SIGHUP: the running command receives it too (as under ``agentkeep run``);
its item is then acked if the command still succeeded, else given back at once (no
backoff, not failed); the worker exits 0. A SIGKILLed worker's item is reclaimed by the
next take of any worker (its holder is dead), and an acked item is never run again (the
ack is the rename out of ``cur/``; a run happens only after a take renamed it in).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from agentkeep.documents.leases import Holder
from agentkeep.errors import AgentkeepError, InvalidInput
from agentkeep.record import Record
from agentkeep.services.queues import QueueItem, check_queue_name

if TYPE_CHECKING:
    from agentkeep.store import Store

STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
DEFAULT_LEASE = 60.0  # renewed every third of it while the command runs
DEFAULT_POLL = 0.1
DEFAULT_BACKOFF = 1.0
DEFAULT_BACKOFF_MAX = 300.0
DEFAULT_MAX_ATTEMPTS = 5


@dataclass
class WorkResult(Record):
    """What a worker did before it stopped."""

    queue: str
    processed: int = 0  # items whose command ran
    acked: int = 0
    nacked: int = 0
    failed: int = 0
    lost: int = 0  # the lease was lost while the command ran (another worker has it)
    stopped_by: str = ""  # max_items, drained, signal
    sessions: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Stop:
    """SIGTERM/SIGINT/SIGHUP as a flag, also while ``agentkeep run``'s relay has its own
    handlers installed: every Python-handled signal writes its number to the wakeup fd."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._read = self._write = -1
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1

    def __enter__(self) -> _Stop:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        try:
            self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: no signals to handle here
            self._previous_fd = -2
            return self
        for signum in STOPPING:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = signum

    def check(self) -> bool:
        with contextlib.suppress(BlockingIOError, OSError):
            for byte in os.read(self._read, 512):
                if byte in STOPPING:
                    self.requested = byte
        return self.requested is not None

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once for a stopping signal."""
        if self.check():
            return True
        with contextlib.suppress(InterruptedError, OSError):
            select.select([self._read], [], [], max(0.0, seconds))
        return self.check()

    def __exit__(self, *exc: object) -> None:
        # Once asked to stop, the worker is on its way out: a repeated SIGTERM (a
        # supervisor resending it) must not kill it with the default action between here
        # and its clean exit.
        stopping = self.check()
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_IGN if stopping else handler)
        if self._previous_fd != -2:
            signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)


class _Renewer(threading.Thread):
    """Keeps a taken item's lease ahead while its command runs (file renames only: the
    store's connection stays with the main thread)."""

    def __init__(self, store: Store, item: QueueItem, lease: float, holder: Holder) -> None:
        super().__init__(name="agentkeep-lease", daemon=True)
        self.store, self.item, self.lease, self.holder = store, item, lease, holder
        self.stopping = threading.Event()
        self.lost: str | None = None

    def run(self) -> None:
        while not self.stopping.wait(self.lease / 3):
            try:
                self.store.queues.renew(
                    self.item.queue,
                    self.item.id,
                    lease=self.lease,
                    attempt=self.item.attempts,
                    holder=self.holder,
                )
            except AgentkeepError as exc:
                self.lost = exc.message
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """The wait before retry ``attempts + 1``: ``base * 2**(attempts - 1)``, at most ``cap``."""
    if base <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(max(attempts - 1, 0), 62)))


def work_queue(
    store: Store,
    queue: str,
    argv: Sequence[str],
    *,
    lease: float = DEFAULT_LEASE,
    poll: float = DEFAULT_POLL,
    max_items: int | None = None,
    drain: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    echo: bool = True,
    on_item: Callable[[QueueItem, str], None] | None = None,
) -> WorkResult:
    """Run ``argv`` for each item of ``queue`` until ``max_items`` ran, the queue has
    nothing ready (``drain``), or a stopping signal. ``on_item(item, outcome)`` is called
    after each item (outcome: acked, nacked, failed, lost)."""
    from agentkeep.ops.runner import _findable

    check_queue_name(queue)
    if not argv:
        raise InvalidInput("name a command to run", hint="agentkeep queue work QUEUE -- CMD")
    if not _findable(argv[0]):
        raise InvalidInput(
            f"command not found: {argv[0]}", hint="check the name, or give its full path"
        )
    if lease <= 0 or poll <= 0:
        raise InvalidInput("--lease and --poll must be longer than 0 seconds")
    if max_attempts < 1:
        raise InvalidInput("--max-attempts must be at least 1")
    holder = Holder.me()
    result = WorkResult(queue)
    with _Stop() as stop:
        while True:
            if stop.check():
                result.stopped_by = "signal"
                break
            if max_items is not None and result.processed >= max_items:
                result.stopped_by = "max_items"
                break
            item = store.queues.take(queue, lease=lease, holder=holder)
            if item is None:
                if drain:
                    result.stopped_by = "drained"
                    break
                stop.wait(poll)
                continue
            if stop.check():  # asked to stop while taking: give it back unrun
                with contextlib.suppress(AgentkeepError):
                    store.queues.nack(
                        queue, item.id, attempt=item.attempts, holder=holder, reason="stopped"
                    )
                result.stopped_by = "signal"
                break
            if item.attempts > max_attempts:  # its earlier holders died running it
                try:
                    outcome = _give_back(store, item, holder, result, max_attempts=max_attempts)
                except AgentkeepError as exc:
                    result.lost += 1
                    result.errors.append(exc.message)
                    outcome = "lost"
                if on_item is not None:
                    on_item(item, outcome)
                continue
            outcome = _run_item(
                store, item, argv, holder, lease, stop, result, echo=echo,
                max_attempts=max_attempts, backoff=backoff, backoff_max=backoff_max,
            )  # fmt: skip
            if on_item is not None:
                on_item(item, outcome)
    return result


def _run_item(
    store: Store,
    item: QueueItem,
    argv: Sequence[str],
    holder: Holder,
    lease: float,
    stop: _Stop,
    result: WorkResult,
    *,
    echo: bool,
    max_attempts: int,
    backoff: float,
    backoff_max: float,
) -> str:
    from agentkeep.ops.runner import record_command

    env = {
        **os.environ,
        "AGENTKEEP_QUEUE": item.queue,
        "AGENTKEEP_QUEUE_ITEM": item.id,
        "AGENTKEEP_QUEUE_ATTEMPT": str(item.attempts),
    }
    renewer = _Renewer(store, item, lease, holder)
    renewer.start()
    try:
        with tempfile.TemporaryFile() as body:
            body.write((item.body or "").encode("utf-8", "surrogateescape"))
            body.flush()
            body.seek(0)
            run, _ = record_command(
                store,
                argv,
                title=f"queue {item.queue} item {item.id} (attempt {item.attempts})",
                echo=echo,
                stdin=body.fileno(),
                env=env,
            )
    finally:
        renewer.stop()
    result.processed += 1
    if run.session_id is not None:
        result.sessions.append(run.session_id)
    result.errors.extend(run.recording_errors)
    stopping = stop.check()
    try:
        if run.exit_code == 0:
            store.queues.ack(item.queue, item.id, attempt=item.attempts, holder=holder)
            result.acked += 1
            return "acked"
        if stopping:  # interrupted by our own stop: back at once, never failed for it
            store.queues.nack(
                item.queue, item.id, attempt=item.attempts, holder=holder, reason="stopped"
            )
            result.nacked += 1
            return "nacked"
        return _give_back(
            store, item, holder, result, max_attempts=max_attempts,
            delay=backoff_delay(item.attempts, backoff, backoff_max),
            reason=f"exit {run.shell_status}",
        )  # fmt: skip
    except AgentkeepError as exc:  # the lease was lost: another worker has the item
        result.lost += 1
        result.errors.append(renewer.lost or exc.message)
        return "lost"


def _give_back(
    store: Store,
    item: QueueItem,
    holder: Holder,
    result: WorkResult,
    *,
    max_attempts: int,
    delay: float = 0.0,
    reason: str | None = None,
) -> str:
    back = store.queues.nack(
        item.queue,
        item.id,
        delay=delay,
        max_attempts=max_attempts,
        attempt=item.attempts,
        holder=holder,
        reason=reason or "out of attempts",
    )
    if back.state == "failed":
        result.failed += 1
        return "failed"
    result.nacked += 1
    return "nacked"
