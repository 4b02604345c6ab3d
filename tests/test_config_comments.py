"""config.parse_toml answers a config.toml of comments and blank lines without tomllib:
it must answer as tomllib does for every such text, valid or not."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from agentkeep.config import _flatten, _only_comments, default_config_toml, parse_toml
from agentkeep.errors import InvalidInput

TEXTS = [
    "",
    "\n\n",
    "# a comment",
    "  # indented\n\t# tab-indented\n",
    "# crlf\r\n# lines\r\n",
    "# lone\rcarriage return",
    "# control \x01 in a comment",
    "# delete \x7f in a comment",
    "# tab\tin a comment",
    "\ufeff# bom",
    "\f# form feed",
    "# comment\nkey = 1\n",
    "# comment\n[retention]\n",
    "  \n#x\n   \n",
    "# ünïcödé comment ☃",
]


@pytest.mark.parametrize("text", [*TEXTS, default_config_toml()])
def test_parse_toml_answers_as_tomllib(text: str) -> None:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        with pytest.raises(InvalidInput):
            parse_toml(text, Path("config.toml"))
        assert not _only_comments(text)
    else:
        assert parse_toml(text, Path("config.toml")) == _flatten(tomllib.loads(text))


def test_default_config_parsed_without_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomllib", None)  # importing it now fails
    assert parse_toml(default_config_toml(), Path("config.toml")) == {}
    with pytest.raises(ImportError):
        parse_toml("key = 1\n", Path("config.toml"))
