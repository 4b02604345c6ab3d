"""`agentkeep serve` and `agentkeep server status|stop|token` (docs/server.md).

Thin adapters over :mod:`agentkeep.server.process`; the web stack is imported only by
``serve`` itself, when it runs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from agentkeep.cli import State
from agentkeep.cli.output import dumps, fmt_of, output_options
from agentkeep.errors import AgentkeepError
from agentkeep.server import process


def _warn(message: str) -> None:
    click.echo(f"agentkeep: warning: {message}", err=True)


def _need_web_stack() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise AgentkeepError(
            f"`agentkeep serve` needs the server's packages ({exc.name} is missing)",
            hint="install them: pip install 'agentkeep[serve]'",
        ) from exc


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=process.DEFAULT_PORT,
    show_default=True,
    help="Port (0: any free one).",
)
@click.option(
    "--background",
    is_flag=True,
    help="Start the server detached (its log in .agentkeep/server.log), print its URL, exit.",
)
@click.option(
    "--require-auth",
    is_flag=True,
    help="Reads need the token too; required to listen beyond loopback.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="The URL clients use when it is not the address listened on (an SSH forward, a "
    "proxy); its host is answered and its origin may send changes.",
)
@click.option("--ready-fd", type=int, hidden=True)  # serve --background's child
@click.pass_obj
def serve(
    state: State,
    host: str,
    port: int,
    background: bool,
    require_auth: bool,
    public_url: str | None,
    ready_fd: int | None,
) -> None:
    """Serve the HTTP API, the dashboard and MCP for this project's store.

    Runs in the foreground until Ctrl-C (or SIGTERM) unless --background. One server per
    store: a second one is refused (exit 5). Changes need the per-install token
    (`agentkeep server token`); the dashboard gets it once from the URL printed at start.

    \b
    Examples:
      agentkeep serve                      # http://127.0.0.1:8765, Ctrl-C stops it
      agentkeep serve --port 0             # any free port
      agentkeep serve --background         # detached; `agentkeep server stop` ends it
      agentkeep serve --host 0.0.0.0 --require-auth --public-url http://box.lan:8765
      agentkeep serve --public-url http://localhost:9000   # behind `ssh -L 9000:…`
      curl -H "Authorization: Bearer $(agentkeep server token)" \\
           -H 'Content-Type: application/json' -d '{"title":"Fix login"}' \\
           http://127.0.0.1:8765/api/v1/tasks
    """
    if not process.is_loopback(host) and not require_auth:
        raise click.UsageError(
            f"--host {host} listens beyond this machine; add --require-auth so that every "
            "request (reads too) needs the token"
        )
    process.check_public_url(public_url)
    public_host = urlsplit(public_url).hostname if public_url else None
    if public_host and not process.is_loopback(public_host) and not require_auth:
        raise click.UsageError(
            f"--public-url {public_url} exposes the server beyond this machine; add "
            "--require-auth so that every request (reads too) needs the token"
        )
    _need_web_stack()
    with state.open() as store:
        store_dir = Path(store.store_dir)
        options = process.ServeOptions(
            host=host,
            port=port,
            require_auth=require_auth,
            public_url=public_url,
            actor=state.actor,
            max_json_bytes=int(store.config["serve.max_json_bytes"]),
            max_upload_bytes=int(store.config["serve.max_upload_bytes"]),
        )
    token = process.install_token(warn=_warn)
    if background:
        args = ["--host", host, "--port", str(port)]
        args += ["--require-auth"] if require_auth else []
        args += ["--public-url", public_url] if public_url else []
        # The root options the child needs besides --store (which start_background sets).
        root = ["--actor", state.actor] if state.actor else []
        info = process.start_background(store_dir, args, root_args=root)
        click.echo(info.url)
        click.echo(f"agentkeep: serving {store_dir} in the background (pid {info.pid})", err=True)
        click.echo(f"agentkeep: dashboard: {info.url}/?token={token}", err=True)
        return

    def announce(info: process.ServerInfo) -> None:
        click.echo(f"agentkeep: serving {store_dir} at {info.url} (pid {info.pid})", err=True)
        if ready_fd is None:  # never into server.log
            click.echo(f"agentkeep: dashboard: {info.url}/?token={token}", err=True)
        click.echo("agentkeep: Ctrl-C stops it", err=True)

    process.run_server(store_dir, options, token=token, announce=announce, ready_fd=ready_fd)
    click.echo("agentkeep: server stopped", err=True)


@click.group()
def server() -> None:
    """Status, stop and token of this project's server (`agentkeep serve`).

    \b
    Examples:
      agentkeep server status --json
      agentkeep server stop
      curl -H "Authorization: Bearer $(agentkeep server token)" ...
    """


def _store_dir(state: State) -> Path:
    with state.open(read_only=True) as store:
        return Path(store.store_dir)


@server.command("status")
@output_options
@click.pass_obj
def status(state: State, as_json: bool, nl: bool) -> None:
    """Whether a server runs for this store: pid, URL, uptime (a `server.json` left by
    a killed server is reported as stale).

    \b
    Example:
      agentkeep server status --json
    """
    fmt = fmt_of(as_json, nl)
    found = process.status(_store_dir(state))
    if fmt != "table":
        click.echo(dumps({"schema_version": 1, **found.to_dict()}))
        return
    data = found.to_dict()
    if found.running and found.info is not None:
        click.echo(
            f"running at {found.info.url} (pid {found.info.pid}, version "
            f"{found.info.version}, up {data.get('uptime_seconds')} s)"
        )
    elif found.running:
        click.echo("starting (no server.json yet)")
    elif found.stale and found.info is not None:
        click.echo(
            f"not running (a stale server.json names pid {found.info.pid}; "
            "the next `agentkeep serve` replaces it)"
        )
    else:
        click.echo("not running")


@server.command("stop")
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=process.STOP_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
@click.pass_obj
def stop(state: State, timeout: float) -> None:
    """Stop this store's server (SIGTERM; SIGKILL if it has not exited after --timeout).
    Exits 0 when none runs.

    \b
    Example:
      agentkeep server stop
    """
    stopped = process.stop(_store_dir(state), timeout=timeout)
    if stopped.running and stopped.info is not None:
        click.echo(f"stopped the server at {stopped.info.url} (pid {stopped.info.pid})")
    else:
        click.echo("no server is running for this store", err=True)


@server.command("token")
def token() -> None:
    """Print the per-install token that changes (and --require-auth reads) need.

    \b
    Example:
      curl -H "Authorization: Bearer $(agentkeep server token)" ...
    """
    click.echo(process.install_token(warn=_warn))
