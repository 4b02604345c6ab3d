"""Work queues: one immutable file per item, its state in the directory and the file name.

Files are the truth (Maildir semantics); the database only receives the events. A queue is a
directory ``.agentkeep/queues/<queue>/`` (machine-local, like everything in ``.agentkeep/``
but ``config.toml``) with one subdirectory per state::

    tmp/     an item being written (never served; a dead writer's leftover is swept)
    new/     <id>,a=<attempts>[,nb=<not before, epoch ms>]        ready, or delayed until nb
    cur/     <id>,a=<attempts>,exp=<lease expiry, epoch ms>[,h=<holder>]   taken
    done/    <id>,a=<attempts>                                     acked
    failed/  <id>,a=<attempts>                                     out of attempts
    keys/    <sha256(idempotency key)>: a hard link to the item the key made

An item file holds JSON ``{"id", "queue", "body", "put_at", "actor"}`` (the body passed the
privacy boundary first) and never changes. What changes is its name, and every change of
state is ONE ``rename`` of that name, so:

- the rename is the claim: two takers of one item rename the same source name, exactly one
  succeeds and the other gets ENOENT and tries the next item;
- an item is in exactly one state directory at every instant (a crash leaves it in the
  state of the last rename that happened);
- ``put`` writes to ``tmp/``, fsyncs, and renames into ``new/``, so nothing half-written
  is ever visible in a state directory;
- each rename but a take's and a renewal's is made durable by fsyncing the destination
  directory (on a journaling file system the journal commits both directories' entries
  together); a take lost to a power cut returns the item to ``new/``, harmless because its
  holder died with the machine.

``attempts`` counts takes: a take adds one. ``ack`` of an attempt that is not the one held
(its lease expired and it was reclaimed, or acked already) is a :class:`Conflict`.

Holders. A worker's take names its holder (``host:pid:process start time``); its item is
reclaimed (renamed back to ``new/``) as soon as that process is found dead on this host, or
when the lease expires, never earlier while the holder lives. The worker renews the lease
(a rename to a later ``exp``) while its command runs. A take from the command line names
no holder (the CLI process exits at once): that item returns only when its lease expires.

Events ``queue.put|taken|acked|nacked|failed|reclaimed`` (entity ``queue``) are emitted
after the rename that made the change. The rename is the commit point: a crash between the
rename and the event loses only the event, never the change; an event that cannot be
written (a busy or full database) is reported in the result (``event_error``), and the
change stands.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from agentkeep.documents.leases import Holder
from agentkeep.errors import AgentkeepError, Conflict, InvalidInput, NotFound, ReadOnly
from agentkeep.files import (
    check_no_links,
    fsync_path,
    make_dirs,
    open_file,
    pid_alive,
    remove_quietly,
    temp_owner,
    temp_path,
    translate_os_error,
    write_chunks,
)
from agentkeep.models import Written
from agentkeep.record import Record
from agentkeep.services.base import Service
from agentkeep.timeutil import stamp

QUEUES_DIR = "queues"
STATE_DIRS = ("tmp", "new", "cur", "done", "failed", "keys")
# What `ls` and items report, by directory: new/ holds ready and delayed items.
STATES = ("ready", "delayed", "taken", "done", "failed")
_DIR_OF = {"ready": "new", "delayed": "new", "taken": "cur", "done": "done", "failed": "failed"}
QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ITEM_ID = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{12}$")
DEFAULT_LEASE_SECONDS = 300.0  # a take from the command line: no holder to watch
RECLAIM_EVERY_SECONDS = 1.0  # a process looks for expired or orphaned items this often
_HOLDER_SAFE = "-._:"  # characters of a holder kept as they are in a file name


# -- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem(Record):
    """One item of a queue. ``state``: ready, delayed, taken, done or failed. ``body`` is
    None in listings that did not read the file."""

    id: str
    queue: str
    state: str
    attempts: int
    body: str | None = None
    put_at: str | None = None
    actor: str | None = None
    not_before: str | None = None  # delayed: not taken before this time
    lease_expires_at: str | None = None  # taken: reclaimed after this time
    holder: str | None = None  # taken by a worker: host:pid:start (None: lease only)
    event_error: str | None = None  # the change stands; its event could not be written


@dataclass(frozen=True)
class QueueSummary(Record):
    queue: str
    ready: int
    delayed: int
    taken: int
    done: int
    failed: int
    oldest_ready_age_s: float | None  # since the oldest ready item was put


@dataclass(frozen=True)
class _Name:
    """An item file's name: its id and the mutable state (Maildir's "info")."""

    id: str
    attempts: int = 0
    not_before: int = 0  # epoch ms (new/)
    expires: int = 0  # epoch ms (cur/)
    holder: str | None = None  # cur/

    def render(self, directory: str) -> str:
        parts = [self.id, f"a={self.attempts}"]
        if directory == "new" and self.not_before:
            parts.append(f"nb={self.not_before}")
        if directory == "cur":
            parts.append(f"exp={self.expires}")
            if self.holder:
                parts.append("h=" + quote(self.holder, safe=_HOLDER_SAFE))
        return ",".join(parts)

    @classmethod
    def parse(cls, name: str) -> _Name | None:
        """None for a name that is not an item's (a foreign file is never served)."""
        ident, *info = name.split(",")
        if not ITEM_ID.match(ident):
            return None
        fields: dict[str, str] = {}
        for part in info:
            key, sep, value = part.partition("=")
            if not sep:
                return None
            fields[key] = value
        try:
            return cls(
                ident,
                attempts=int(fields.get("a", "0")),
                not_before=int(fields.get("nb", "0")),
                expires=int(fields.get("exp", "0")),
                holder=unquote(fields["h"]) if "h" in fields else None,
            )
        except ValueError:
            return None

    def put_ms(self) -> int:
        return int(self.id[:16], 16) // 1_000_000


def new_item_id() -> str:
    """Time-sortable (so ``take`` serves the oldest first) and unique: put time in ns, hex,
    then 48 random bits."""
    return f"{time.time_ns():016x}-{os.urandom(6).hex()}"


def check_queue_name(queue: str) -> str:
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise InvalidInput(
            f"not a queue name: {queue!r}",
            hint="1-64 characters: lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
        )
    return queue


def check_item_id(item_id: str) -> str:
    if not isinstance(item_id, str) or not ITEM_ID.match(item_id):
        raise InvalidInput(
            f"not a queue item id: {item_id!r}",
            hint="ids look like 18a3c0f2b4d5e6f7-0a1b2c3d4e5f (`agentkeep queue ls QUEUE`)",
        )
    return item_id


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int) -> str:
    return stamp(ms / 1000)


def _scan(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(directory)]
    except FileNotFoundError:
        return []


class QueueService(Service):
    """``store.queues``: put, take, ack, nack, reclaim and list the items of work queues."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self._made: set[str] = set()
        # (queue, id) -> its name in cur/ as this service last took or renewed it: ack and
        # nack try it before scanning cur/ (a hint only; the rename decides).
        self._names: dict[tuple[str, str], str] = {}
        self._maintained: dict[str, float] = {}  # queue -> monotonic time of last reclaim

    # -- paths ---------------------------------------------------------------------------

    @property
    def queues_dir(self) -> Path:
        return self.store_dir / QUEUES_DIR

    def queue_dir(self, queue: str) -> Path:
        return self.queues_dir / check_queue_name(queue)

    def _ensure(self, queue: str) -> Path:
        base = self.queue_dir(queue)
        if queue not in self._made:
            for name in STATE_DIRS:
                make_dirs(base / name, within=self.store_dir)
            self._made.add(queue)
        return base

    def _existing(self, queue: str) -> Path | None:
        base = self.queue_dir(queue)
        if queue in self._made:
            return base
        check_no_links(self.store_dir, base / "new")
        return base if (base / "new").is_dir() else None

    def _writable(self) -> None:
        if not self.writable:
            raise ReadOnly("the store is open read-only; queues cannot change")

    # -- put -----------------------------------------------------------------------------

    def put(
        self,
        queue: str,
        body: str,
        *,
        idempotency_key: str | None = None,
        delay: float = 0.0,
    ) -> Written[QueueItem]:
        """Add an item (``body``, redacted) to ``queue``; with ``delay`` seconds it is not
        taken before then. The same ``idempotency_key`` adds one item: a retry returns
        the first with outcome ``already_exists``."""
        from agentkeep.boundary import redact_text

        check_queue_name(queue)
        if not isinstance(body, str):
            raise InvalidInput("a queue item's body must be text")
        if delay < 0:
            raise InvalidInput("--delay cannot be negative")
        key_name = None
        if idempotency_key is not None:
            from agentkeep._core import check_identifier

            check_identifier("the idempotency key", idempotency_key)
            key_name = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
        self._writable()
        clean, redacted = redact_text(body)
        try:
            size = len(clean.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                "a queue item's body must be valid text (it holds a lone surrogate)"
            ) from exc
        limit = int(self.config["store.max_field_bytes"])
        if size > limit:
            raise InvalidInput(
                f"the item is larger than store.max_field_bytes ({limit} bytes)",
                hint="put a path or an artifact id in the queue instead of the content",
            )
        base = self._ensure(queue)
        ident = new_item_id()
        put_at = _iso(int(ident[:16], 16) // 1_000_000)
        record = {"id": ident, "queue": queue, "body": clean, "put_at": put_at}
        record["actor"] = redact_text(self.actor)[0]
        data = json.dumps(record, ensure_ascii=False).encode("utf-8")
        tmp = temp_path(base / "tmp" / ident)
        linked: Path | None = None
        name = _Name(ident, not_before=_now_ms() + int(delay * 1000) if delay else 0)
        try:
            fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, within=self.store_dir)
            try:
                write_chunks(fd, (data,))
                os.fsync(fd)
            finally:
                os.close(fd)
            if key_name is not None:
                try:
                    os.link(tmp, base / "keys" / key_name)
                except FileExistsError:
                    remove_quietly(tmp)
                    return Written(self._keyed(queue, base / "keys" / key_name), "already_exists")
                linked = base / "keys" / key_name
                fsync_path(base / "keys", directory=True)
            _failpoint("queue:put:before_rename")
            os.rename(tmp, base / "new" / name.render("new"))
            fsync_path(base / "new", directory=True)
        except OSError as exc:
            remove_quietly(tmp)
            if linked is not None and not (base / "new" / name.render("new")).exists():
                remove_quietly(linked)  # the key names no item: a retry must be able to put
            raise translate_os_error(exc, f"an item of queue {queue}") from exc
        item = self._item(queue, "new", name, record)
        extra: dict[str, Any] = {"bytes": len(data)}
        if redacted:
            extra["redactions"] = redacted
        return Written(self._emitted("queue.put", item, extra), "created")

    def _keyed(self, queue: str, link: Path) -> QueueItem:
        record = _read_json(link)
        found = self._locate(queue, str(record.get("id", "")))
        if found is None:  # its put is still between tmp/ and new/ (or died there)
            return QueueItem(
                str(record.get("id")), queue, "ready", 0, record.get("body"), record.get("put_at")
            )
        directory, name = found
        return self._item(queue, directory, name, record)

    # -- take ----------------------------------------------------------------------------

    def take(
        self,
        queue: str,
        *,
        lease: float = DEFAULT_LEASE_SECONDS,
        holder: Holder | None = None,
    ) -> QueueItem | None:
        """Claim the oldest ready item for ``lease`` seconds, or None when nothing is ready.
        With a ``holder`` (a worker process), the item returns to the queue as soon as that
        process is dead; without, only when the lease expires."""
        check_queue_name(queue)
        if lease <= 0:
            raise InvalidInput("a lease must be longer than 0 seconds")
        self._writable()
        base = self._existing(queue)
        if base is None:
            return None
        # A dead holder's item returns within RECLAIM_EVERY_SECONDS (at once for the
        # first take of a process, e.g. every `agentkeep queue take`).
        if time.monotonic() - self._maintained.get(queue, -1e9) >= RECLAIM_EVERY_SECONDS:
            self.reclaim(queue)
        return self._claim(queue, base, lease, holder)

    def _claim(
        self, queue: str, base: Path, lease: float, holder: Holder | None
    ) -> QueueItem | None:
        # Every ready item of the scan lost to other takers: items that arrived since are
        # not in it, so scan again (a few times) rather than report an empty queue.
        for _ in range(4):
            item, contended = self._claim_once(queue, base, lease, holder)
            if item is not None or not contended:
                return item
        return None

    def _claim_once(
        self, queue: str, base: Path, lease: float, holder: Holder | None
    ) -> tuple[QueueItem | None, bool]:
        now = _now_ms()
        expires = now + int(lease * 1000)
        contended = False
        # Ids have a fixed length and lead the name: sorting names sorts by put time, and
        # only the names up to the first claimable one are parsed.
        for entry in sorted(_scan(base / "new")):
            name = _Name.parse(entry)
            if name is None or name.not_before > now:
                continue
            taken = replace(
                name,
                attempts=name.attempts + 1,
                not_before=0,
                expires=expires,
                holder=str(holder) if holder else None,
            )
            target = base / "cur" / taken.render("cur")
            if not self._rename(base / "new" / entry, target, queue):
                contended = True  # another taker won it
                continue
            # Not fsynced: a claim lost to a power cut puts the item back in new/, which is
            # harmless (its holder died with the machine; it was never acked). The ack's
            # fsync of done/ makes the whole chain durable.
            _failpoint("queue:take:after_rename")
            try:
                record = _read_json(target)
            except FileNotFoundError:
                contended = True  # reclaimed already (a lease shorter than this read)
                continue
            self._names[(queue, taken.id)] = target.name
            item = self._item(queue, "cur", taken, record)
            return self._emitted("queue.taken", item, {"lease_s": lease}), contended
        return None, contended

    # -- leases --------------------------------------------------------------------------

    def renew(
        self,
        queue: str,
        item_id: str,
        *,
        lease: float,
        attempt: int | None = None,
        holder: Holder | None = None,
    ) -> QueueItem:
        """Extend the lease of a taken item to ``lease`` seconds from now (a rename; no
        event). Conflict when it is not held any more."""
        base, entry, name = self._held(queue, item_id, attempt, holder, "renew")
        renewed = replace(name, expires=_now_ms() + int(lease * 1000))
        if not self._rename(base / "cur" / entry, base / "cur" / renewed.render("cur"), queue):
            raise self._lost(queue, item_id, "renew")
        self._names[(queue, item_id)] = renewed.render("cur")
        return self._item(queue, "cur", renewed, None)

    def reclaim(self, queue: str) -> list[QueueItem]:
        """Return to ``new/`` every taken item whose lease expired or whose holder is dead
        (on this host); sweep dead writers' leftovers in ``tmp/``. Returns the items."""
        check_queue_name(queue)
        self._maintained[queue] = time.monotonic()
        base = self._existing(queue)
        if base is None or not self.writable:
            return []
        self._sweep(queue, base)
        now = _now_ms()
        out = []
        for entry in _scan(base / "cur"):
            name = _Name.parse(entry)
            if name is None:
                continue
            reason = None
            if name.expires <= now:
                reason = "expired"
            elif name.holder is not None:
                try:
                    alive = Holder.parse(name.holder).alive()
                except ValueError:  # not a holder we wrote: judged by expiry alone
                    alive = None
                if alive is False:
                    reason = "holder_dead"
            if reason is None:
                continue
            back = _Name(name.id, attempts=name.attempts)
            if not self._rename(base / "cur" / entry, base / "new" / back.render("new"), queue):
                continue  # acked, renewed or reclaimed meanwhile
            self._sync(base / "new", queue)
            item = self._item(queue, "new", back, None)
            extra = {"reason": reason, "holder": name.holder}
            out.append(self._emitted("queue.reclaimed", item, extra))
        return out

    def _sweep(self, queue: str, base: Path) -> None:
        """Dead writers' files in ``tmp/``: a put that reserved its idempotency key (the
        file has a second link, in ``keys/``) is finished — its caller may retry and must
        then find it; any other leftover is removed. Never served either way."""
        for entry in _scan(base / "tmp"):
            path = base / "tmp" / entry
            owner = temp_owner(path)
            if owner is not None and pid_alive(owner):
                continue
            try:
                links = os.lstat(path).st_nlink
            except FileNotFoundError:
                continue
            ident = entry.split(".", 1)[0]
            if links > 1 and ITEM_ID.match(ident) and self._locate(queue, ident) is None:
                target = base / "new" / _Name(ident).render("new")
                if self._rename(path, target, queue):
                    self._sync(base / "new", queue)
                    continue
            remove_quietly(path)

    # -- ack / nack ----------------------------------------------------------------------

    def ack(
        self,
        queue: str,
        item_id: str,
        *,
        attempt: int | None = None,
        holder: Holder | None = None,
    ) -> QueueItem:
        """Mark a taken item done. Conflict when it is not taken (its lease expired and it
        was reclaimed, or it was acked), or taken by another attempt or holder."""
        base, entry, name = self._held(queue, item_id, attempt, holder, "ack")
        done = _Name(name.id, attempts=name.attempts)
        if not self._rename(base / "cur" / entry, base / "done" / done.render("done"), queue):
            raise self._lost(queue, item_id, "ack")
        _failpoint("queue:ack:after_rename")
        self._sync(base / "done", queue)
        return self._emitted("queue.acked", self._item(queue, "done", done, None), {})

    def nack(
        self,
        queue: str,
        item_id: str,
        *,
        delay: float = 0.0,
        max_attempts: int | None = None,
        attempt: int | None = None,
        holder: Holder | None = None,
        reason: str | None = None,
    ) -> QueueItem:
        """Give a taken item back: ready again after ``delay`` seconds, or failed when it
        has had ``max_attempts`` takes. Conflict as for :meth:`ack`."""
        if delay < 0:
            raise InvalidInput("a delay cannot be negative")
        if max_attempts is not None and max_attempts < 1:
            raise InvalidInput("--max-attempts must be at least 1")
        base, entry, name = self._held(queue, item_id, attempt, holder, "nack")
        if max_attempts is not None and name.attempts >= max_attempts:
            target, kind = _Name(name.id, attempts=name.attempts), "queue.failed"
            directory = "failed"
        else:
            not_before = _now_ms() + int(delay * 1000) if delay else 0
            target = _Name(name.id, attempts=name.attempts, not_before=not_before)
            directory, kind = "new", "queue.nacked"
        if not self._rename(
            base / "cur" / entry, base / directory / target.render(directory), queue
        ):
            raise self._lost(queue, item_id, "nack")
        self._sync(base / directory, queue)
        extra: dict[str, Any] = {"delay_s": delay}
        if reason:
            extra["reason"] = reason
        return self._emitted(kind, self._item(queue, directory, target, None), extra)

    def _held(
        self,
        queue: str,
        item_id: str,
        attempt: int | None,
        holder: Holder | None,
        verb: str,
    ) -> tuple[Path, str, _Name]:
        check_queue_name(queue)
        check_item_id(item_id)
        self._writable()
        base = self._existing(queue)
        if base is None:
            raise NotFound(f"no queue {queue!r}", hint="`agentkeep queue ls` lists the queues")
        prefix = item_id + ","
        hint = self._names.pop((queue, item_id), None)
        entries = _scan(base / "cur")
        if hint is not None and os.path.lexists(base / "cur" / hint):
            entries = [hint]
        for entry in entries:
            if not entry.startswith(prefix):
                continue
            name = _Name.parse(entry)
            if name is None:
                continue
            if attempt is not None and name.attempts != attempt:
                raise Conflict(
                    f"cannot {verb} item {item_id}: attempt {attempt} is over; "
                    f"attempt {name.attempts} holds it now",
                    hint="its lease expired and it was taken again",
                )
            if holder is not None and name.holder != str(holder):
                raise Conflict(
                    f"cannot {verb} item {item_id}: another process holds it "
                    f"({name.holder or 'a command-line take'})",
                    hint="its lease expired and it was taken again",
                )
            return base, entry, name
        raise self._lost(queue, item_id, verb)

    def _lost(self, queue: str, item_id: str, verb: str) -> AgentkeepError:
        found = self._locate(queue, item_id)
        if found is None:
            return NotFound(
                f"no item {item_id} in queue {queue!r}",
                hint=f"`agentkeep queue ls {queue}` lists its items",
            )
        directory, name = found
        state = self._state(directory, name, _now_ms())
        why = {
            "ready": "it is not taken (its lease expired and it was reclaimed, or it was "
            "given back)",
            "delayed": "it is not taken (it was given back and waits for its retry)",
            "taken": "it changed hands while this ran",
            "done": "it was acked already",
            "failed": "it failed already (out of attempts)",
        }[state]
        again = "take it again (`agentkeep queue take`) to work on it"
        return Conflict(
            f"cannot {verb} item {item_id} of queue {queue!r}: {why}",
            hint=again if state in ("ready", "delayed", "taken") else None,
        )

    # -- reading -------------------------------------------------------------------------

    def list_queues(self) -> list[QueueSummary]:
        """Every queue with its counts by state, by name."""
        names = sorted(n for n in _scan(self.queues_dir) if QUEUE_NAME.match(n))
        return [self.summary(name) for name in names]

    def summary(self, queue: str) -> QueueSummary:
        base = self._existing(queue)
        if base is None:
            raise NotFound(f"no queue {queue!r}", hint="`agentkeep queue ls` lists the queues")
        now = _now_ms()
        counts = dict.fromkeys(STATES, 0)
        oldest: int | None = None
        for directory in ("new", "cur", "done", "failed"):
            for entry in _scan(base / directory):
                name = _Name.parse(entry)
                if name is None:
                    continue
                state = self._state(directory, name, now)
                counts[state] += 1
                if state == "ready":
                    put = name.put_ms()
                    oldest = put if oldest is None else min(oldest, put)
        age = None if oldest is None else max(0.0, (now - oldest) / 1000)
        return QueueSummary(queue, oldest_ready_age_s=age, **counts)

    def items(
        self,
        queue: str,
        *,
        state: str | None = None,
        limit: int | None = None,
        with_body: bool = True,
    ) -> list[QueueItem]:
        """A queue's items, oldest first, in the order ready, delayed, taken, failed,
        done (or only ``state``'s)."""
        if state is not None and state not in STATES:
            raise InvalidInput(f"unknown state {state!r}", hint=f"one of {', '.join(STATES)}")
        base = self._existing(queue)
        if base is None:
            raise NotFound(f"no queue {queue!r}", hint="`agentkeep queue ls` lists the queues")
        now = _now_ms()
        order = ("ready", "delayed", "taken", "failed", "done")
        found: list[tuple[int, str, str, _Name]] = []
        for directory in ("new", "cur", "failed", "done"):
            if state is not None and _DIR_OF[state] != directory:
                continue
            for entry in _scan(base / directory):
                name = _Name.parse(entry)
                if name is None:
                    continue
                item_state = self._state(directory, name, now)
                if state is None or item_state == state:
                    found.append((order.index(item_state), name.id, directory, name))
        found.sort(key=lambda row: (row[0], row[1]))
        if limit:
            found = found[:limit]
        out = []
        for _, _, directory, name in found:
            record = None
            if with_body:
                try:
                    record = _read_json(base / directory / name.render(directory))
                except (FileNotFoundError, InvalidInput):
                    record = None  # it moved meanwhile: listed without its body
            out.append(self._item(queue, directory, name, record))
        return out

    def get(self, queue: str, item_id: str) -> QueueItem:
        """One item, in whatever state it is."""
        check_queue_name(queue)
        check_item_id(item_id)
        found = self._locate(queue, item_id)
        if found is None:
            raise NotFound(f"no item {item_id} in queue {queue!r}")
        directory, name = found
        base = self.queue_dir(queue)
        try:
            record = _read_json(base / directory / name.render(directory))
        except FileNotFoundError:  # it moved meanwhile
            return self.get(queue, item_id)
        return self._item(queue, directory, name, record)

    def _locate(self, queue: str, item_id: str) -> tuple[str, _Name] | None:
        base = self.queue_dir(queue)
        prefix = item_id + ","
        for directory in ("cur", "new", "done", "failed", "cur"):  # cur twice: a take races
            for entry in _scan(base / directory):
                if entry.startswith(prefix):
                    name = _Name.parse(entry)
                    if name is not None:
                        return directory, name
        return None

    @staticmethod
    def _state(directory: str, name: _Name, now: int) -> str:
        if directory == "new":
            return "delayed" if name.not_before > now else "ready"
        return {"cur": "taken", "done": "done", "failed": "failed"}[directory]

    def _item(
        self, queue: str, directory: str, name: _Name, record: dict[str, Any] | None
    ) -> QueueItem:
        record = record or {}
        state = self._state(directory, name, _now_ms())
        return QueueItem(
            id=name.id,
            queue=queue,
            state=state,
            attempts=name.attempts,
            body=record.get("body"),
            put_at=record.get("put_at") or _iso(name.put_ms()),
            actor=record.get("actor"),
            not_before=_iso(name.not_before) if state == "delayed" else None,
            lease_expires_at=_iso(name.expires) if directory == "cur" else None,
            holder=name.holder if directory == "cur" else None,
        )

    # -- plumbing ------------------------------------------------------------------------

    def _rename(self, source: Path, target: Path, queue: str) -> bool:
        """One state change; False when ``source`` is gone (another process moved it)."""
        try:
            os.rename(source, target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise translate_os_error(exc, f"an item of queue {queue}") from exc
        return True

    def _sync(self, directory: Path, queue: str) -> None:
        try:
            fsync_path(directory, directory=True)
        except OSError as exc:
            raise translate_os_error(exc, f"queue {queue}") from exc

    def _emitted(self, kind: str, item: QueueItem, extra: dict[str, Any]) -> QueueItem:
        """Emit ``kind`` for a change already made (the rename committed it); a failure
        to write the event is reported on the item, never raised."""
        data = {"queue": item.queue, "id": item.id, "attempts": item.attempts, **extra}
        try:
            with self.transaction() as tx:
                tx.emit("queue", None, kind, data)
        except AgentkeepError as exc:
            return replace(item, event_error=exc.message)
        return item


def _read_json(path: Path) -> dict[str, Any]:
    fd = open_file(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        value = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise InvalidInput(f"{path.name} is not a queue item (not JSON)") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{path.name} is not a queue item")
    return value


def _failpoint(name: str) -> None:
    if os.environ.get("AGENTKEEP_FAILPOINT"):
        from agentkeep.failpoints import failpoint

        failpoint(name)


__all__ = [
    "QueueItem",
    "QueueService",
    "QueueSummary",
    "check_item_id",
    "check_queue_name",
    "new_item_id",
]
