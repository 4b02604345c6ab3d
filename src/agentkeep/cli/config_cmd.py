"""`agentkeep config …`"""

from __future__ import annotations

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_list, print_object
from agentkeep.config import SETTINGS_BY_KEY, Config, set_in_file
from agentkeep.paths import user_config_file

COLUMNS = ["key", "value", "source"]


def _load(state: State) -> Config:
    from agentkeep.cli import warn_about_config
    from agentkeep.store import resolve_store_dir

    try:
        store_dir = resolve_store_dir(state.store)
    except Exception:  # outside a project: user settings and environment only
        loaded = Config.load()
    else:
        loaded = Config.load(project_file=store_dir / "config.toml")
    warn_about_config(loaded)
    return loaded


@click.group()
def config() -> None:
    """Show and change settings (project config.toml, user config, environment).

    \b
    Examples:
      agentkeep config list              # every setting, its value and where it comes from
      agentkeep config get store.synchronous
      agentkeep config set store.synchronous NORMAL
      agentkeep config set --user actor alice
    """


@config.command("list")
@output_options
@click.pass_obj
def list_(state: State, as_json: bool, nl: bool) -> None:
    """Every setting with its value and its source (default, user, project, env, flag)."""
    values = [
        {
            "key": v.key,
            "value": v.value,
            "source": v.source,
            "env_var": SETTINGS_BY_KEY[v.key].env_var,
            "help": SETTINGS_BY_KEY[v.key].help,
        }
        for v in _load(state).values()
    ]
    print_list(values, fmt_of(as_json, nl), COLUMNS)


@config.command("get")
@click.argument("key", type=click.Choice(sorted(SETTINGS_BY_KEY)))
@output_options
@click.pass_obj
def get(state: State, key: str, as_json: bool, nl: bool) -> None:
    """Print one setting's value."""
    value = next(v for v in _load(state).values() if v.key == key)
    fmt = fmt_of(as_json, nl)
    if fmt == "table":
        click.echo(value.value)
    else:
        print_object({"key": key, "value": value.value, "source": value.source}, fmt)


@config.command("set")
@click.argument("key", type=click.Choice(sorted(SETTINGS_BY_KEY)))
@click.argument("value")
@click.option(
    "--user", "user_level", is_flag=True, help="Write the user's config instead of the project's."
)
@output_options
@click.pass_obj
def set_(state: State, key: str, value: str, user_level: bool, as_json: bool, nl: bool) -> None:
    """Validate VALUE and write it to the project's .agentkeep/config.toml (comments kept)."""
    if user_level:
        path = user_config_file()
    else:
        from agentkeep.store import resolve_store_dir

        path = resolve_store_dir(state.store) / "config.toml"
    parsed = set_in_file(path, key, value)
    fmt = fmt_of(as_json, nl)
    if fmt == "table":
        click.echo(f"{key} = {parsed!r} in {path}")
    else:
        print_object({"key": key, "value": parsed, "file": str(path)}, fmt)
