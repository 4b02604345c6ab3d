"""`agentkeep sync` — a thin adapter over Store.sync_spool and agentkeep.ops.sync."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import dumps, fmt_of, output_options, print_object


def _human(data: dict[str, Any]) -> str:
    where = "PostgreSQL" if data["backend"] == "postgres" else "SQLite"
    line = f"stored {data['stored']} hook delivery(ies) in the {where} store"
    if data["quarantined"]:
        line += f"; {data['quarantined']} quarantined (see `agentkeep doctor`)"
    if data["waiting"]:
        line += f"; {data['waiting']} still waiting"
    return line


@click.command("sync")
@click.option(
    "--watch",
    "-w",
    is_flag=True,
    help="Keep storing deliveries as they arrive (looks every 100 ms) until interrupted.",
)
@output_options
@click.pass_obj
def sync(state: State, watch: bool, as_json: bool, nl: bool) -> None:
    """Store the hook deliveries waiting in this project's spool.

    On a PostgreSQL project (store.url, AGENTKEEP_URL) the hook never waits on the
    network: it writes each delivery to .agentkeep/spool/ and returns. Any later write
    (a CLI command, the library, `agentkeep serve`) sends them; this command does it now,
    and with --watch keeps doing it as deliveries arrive, so teammates see them within
    a fraction of a second. While the database is unreachable --watch says so once and
    retries; the deliveries wait safely in the spool. Each delivery is stored once,
    however many machines and drainers run. On a SQLite project the hook stores
    deliveries itself and spools only when the store is busy; sync drains those too.

    --json prints one object (backend, stored, quarantined, waiting); with --watch, one
    line per sync that stored something. Ctrl-C (or SIGTERM) ends --watch with exit 0.

    \b
    Examples:
      agentkeep sync                 # send what is waiting now
      agentkeep sync --watch &       # keep the team's view current while agents run
      agentkeep sync --json
    """
    fmt = fmt_of(as_json, nl)
    if not watch:
        with state.open() as store:
            print_object(store.sync_spool(), fmt, human=_human)
        return
    from agentkeep.ops.sync import watch_spool
    from agentkeep.store import resolve_store_dir

    store_dir = resolve_store_dir(state.store)
    stop = threading.Event()

    def on_sync(result: Any) -> None:
        data = result.to_dict()
        click.echo(_human(data) if fmt == "table" else dumps(data))

    def on_trouble(error: Any) -> None:
        click.echo(
            f"agentkeep sync: {error.message}; the deliveries wait in the spool, retrying",
            err=True,
        )

    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watch_spool(state.open, store_dir, on_sync=on_sync, on_trouble=on_trouble, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
