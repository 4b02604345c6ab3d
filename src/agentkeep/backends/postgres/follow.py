"""Following other processes' commits on PostgreSQL (:class:`agentkeep.backends.base.Follow`),
by ``LISTEN``/``NOTIFY``.

Triggers (``schema/0001_follow.sql``) call ``pg_notify(channel, '')`` after every statement
that inserts an event or writes a stream's row, on one channel per store schema
(:func:`channel_for`), so one database can hold several stores. A watcher ``LISTEN``\\s on
its own autocommit connection, opened outside any pool (a pooled connection goes back and
forgets its LISTEN; a transaction-mode pooler cannot carry LISTEN at all). A notification
is a wake-up, never the data: the caller reads ``seq > last`` after every True, so a notify
folded with another (identical notifies of one transaction are delivered once) or lost
with a connection costs nothing.

:meth:`NotifyWatcher.changed` keeps the contract of :class:`~agentkeep.backends.base.Watcher`:

* every commit that finished before a call began is reported by it or an earlier one. A
  commit's notify is sent to listeners after the commit returns to its writer, so it may
  still be in flight; each call that finds none pending makes one round trip
  (``SELECT 1``) first: the server sends a listener the notifies it was signalled about
  before the reply to its next statement (PostgreSQL ≥ 14), and psycopg (≥ 3.2.4) keeps
  those that arrive during a statement for :meth:`psycopg.Connection.notifies`;
* when nothing is pending it waits up to ``timeout`` with ``notifies(timeout=,
  stop_after=1)`` and wakes as soon as a notify arrives — no polling; no notify handler
  is ever registered (psycopg keeps its backlog only without one);
* a lost connection (the server restarted or was stopped, the network broke) is not an
  error for the caller: the watcher reconnects with backoff (50 ms doubling to 2 s),
  ``LISTEN``\\s again and returns True, and the caller's catch-up query reads whatever was
  committed while nobody listened. While the server stays unreachable each call waits
  out its ``timeout`` and returns False; after :data:`OUTAGE_LIMIT_SECONDS` without a
  connection it raises :class:`~agentkeep.errors.StorageError` saying so (a follower
  that silently waits forever on a dead server looks like a quiet store).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from agentkeep.errors import StorageError

if TYPE_CHECKING:
    from agentkeep.config import Config

CHANNEL_PREFIX = "agentkeep_events_"
"""Prefix of a store's notification channel; the rest is its schema's name."""

MAX_CHANNEL_BYTES = 63
"""PostgreSQL's identifier limit (NAMEDATALEN - 1): longer channel names are refused by
``pg_notify`` and truncated by ``LISTEN``."""

OUTAGE_LIMIT_SECONDS = 60.0
"""How long a watcher tries to reconnect before :meth:`NotifyWatcher.changed` raises."""

BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0

# Keepalives find a peer that vanished without closing the connection (a laptop's
# network dropped); they apply to TCP connections only and never override the URL's own.
_CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "application_name": "agentkeep-follow",
}


def channel_for(schema: str) -> str:
    """The notification channel of the store in ``schema``: ``agentkeep_events_<schema>``,
    or the schema's md5 in its place when that would pass PostgreSQL's 63-byte limit.
    ``schema/0001_follow.sql`` computes the same name from the trigger's table schema."""
    channel = CHANNEL_PREFIX + schema
    if len(channel.encode("utf-8")) <= MAX_CHANNEL_BYTES:
        return channel
    return CHANNEL_PREFIX + hashlib.md5(schema.encode("utf-8"), usedforsecurity=False).hexdigest()


class NotifyWatcher:
    """A :class:`agentkeep.backends.base.Watcher` listening on a store's channel."""

    def __init__(
        self,
        conninfo: str,
        channel: str,
        *,
        read_only: bool = False,
        outage_limit: float = OUTAGE_LIMIT_SECONDS,
    ) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._read_only = read_only
        self._outage_limit = outage_limit
        self._first = True
        self._closed = False
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST_SECONDS
        self._last_error: BaseException | None = None
        self.reconnects = 0
        """How many times the watcher listened again after losing its connection."""
        try:
            self._conn: psycopg.Connection[Any] | None = self._listen()
        except psycopg.Error as exc:
            raise _unreachable(exc) from exc

    # -- the Watcher protocol --------------------------------------------------------------

    def changed(self, timeout: float = 0.0) -> bool:
        if self._closed:
            raise StorageError("this watcher is closed")
        deadline = time.monotonic() + max(timeout, 0.0)
        conn = self._conn
        if conn is None:
            return self._reconnect(deadline)
        try:
            if self._first:
                self._first = False
                self._drain(conn)  # the caller reads everything now
                return True
            if self._drain(conn):
                return True
            conn.execute("SELECT 1")  # notifies of commits done before this call arrive first
            if self._drain(conn):
                return True
            if timeout <= 0:
                return False
            woke = False
            # Run the generator to its end: suspended, it would hold the connection's lock.
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                woke = True
            if woke:
                self._drain(conn)  # the rest of a burst: this True covers them
            return woke
        except _LOST as exc:
            self._lost(exc)
            return self._reconnect(deadline)
        except psycopg.Error as exc:
            raise _failed(exc) from exc

    def close(self) -> None:
        self._closed = True
        self._drop_connection()

    def __enter__(self) -> NotifyWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------

    def _listen(self) -> psycopg.Connection[Any]:
        """A new connection that listens on the channel (raises psycopg's errors)."""
        options = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        for key, value in _CONNECT_DEFAULTS.items():
            options.setdefault(key, value)
        if self._read_only:
            # LISTEN writes nothing; a read-only store's watcher asks for no more than that
            options["options"] = " ".join(
                filter(
                    None, [str(options.get("options") or ""), "-c default_transaction_read_only=on"]
                )
            )
        conn = psycopg.connect(
            psycopg.conninfo.make_conninfo("", **options), autocommit=True, prepare_threshold=None
        )
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _drain(self, conn: psycopg.Connection[Any]) -> bool:
        """Consume every notify already received, without waiting: True if there was one."""
        got = False
        for _ in conn.notifies(timeout=0):
            got = True
        return got

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # psycopg closes a broken connection without raising

    def _lost(self, exc: BaseException) -> None:
        self._drop_connection()
        now = time.monotonic()
        self._down_since = now
        self._retry_at = now  # the first attempt right away: a restart may be over already
        self._backoff = BACKOFF_FIRST_SECONDS
        self._last_error = exc

    def _reconnect(self, deadline: float) -> bool:
        """Listen again, trying until ``deadline``: True once listening (the caller then
        catches up), False if the server is still unreachable at ``deadline``."""
        while True:
            now = time.monotonic()
            if now >= self._retry_at:
                try:
                    self._conn = self._listen()
                except _LOST as exc:
                    self._last_error = exc
                    now = time.monotonic()
                    self._retry_at = now + self._backoff
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX_SECONDS)
                else:
                    self._down_since = None
                    self.reconnects += 1
                    return True
            down_since = self._down_since if self._down_since is not None else now
            if now - down_since >= self._outage_limit:
                raise StorageError(
                    f"lost the connection to PostgreSQL {now - down_since:.0f} s ago and "
                    f"could not reconnect ({_first_line(self._last_error)})",
                    hint="check that the server is running and reachable (store.url, the "
                    "PG* environment); a follower resumes from its last event when restarted",
                ) from self._last_error
            wake = min(self._retry_at, deadline)
            if wake <= now:
                return False
            time.sleep(wake - now)  # a backoff before retrying: nothing to wake us sooner


class PostgresFollow:
    """:class:`agentkeep.backends.base.Follow` for stores on PostgreSQL."""

    def watch(self, db_path: Path, config: Config, *, read_only: bool = False) -> NotifyWatcher:
        return watch_url(config["store.url"], read_only=read_only)


def watch_url(
    url: str, *, read_only: bool = False, outage_limit: float = OUTAGE_LIMIT_SECONDS
) -> NotifyWatcher:
    """A watcher on the store at ``url`` (``postgresql://…?schema=NAME``)."""
    from agentkeep.backends.postgres.url import split_url

    conninfo, schema = split_url(url)
    return NotifyWatcher(
        conninfo, channel_for(schema), read_only=read_only, outage_limit=outage_limit
    )


FOLLOW = PostgresFollow()

# What a dropped or refused connection raises: the watcher reconnects on these.
_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unreachable(exc: BaseException) -> StorageError:
    return StorageError(
        f"cannot connect to PostgreSQL to follow the store: {_first_line(exc)}",
        hint="check that the server is running and reachable (store.url, the PG* environment)",
    )


def _failed(exc: BaseException) -> StorageError:
    return StorageError(f"following the store on PostgreSQL failed: {_first_line(exc)}")
