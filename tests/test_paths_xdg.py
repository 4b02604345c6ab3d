"""paths._user_dir computes platformdirs' user data/config dirs without importing it (on
Linux): it must give what platformdirs gives in every environment."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from agentkeep import paths

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the XDG rule is Linux's")

XDG_VALUES = [None, "", "   ", "relative/dir", "./x", "/abs/xdg", "/abs/xdg/", "~/tilde"]
HOME_VALUES = [None, "/home/someone", "/home/someone/", "/", "relative-home", ""]


@pytest.mark.parametrize("home", HOME_VALUES)
@pytest.mark.parametrize("xdg", XDG_VALUES)
def test_user_dirs_match_platformdirs(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None, home: str | None
) -> None:
    monkeypatch.delenv("AGENTKEEP_HOME", raising=False)
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        if xdg is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, xdg)
    if home is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home)
    expected_data = platformdirs.user_data_dir("agentkeep", appauthor=False)
    expected_config = platformdirs.user_config_dir("agentkeep", appauthor=False)
    assert paths.user_data_dir() == Path(expected_data)
    assert paths._user_dir("XDG_DATA_HOME", "~/.local/share") == expected_data
    assert paths._user_dir("XDG_CONFIG_HOME", "~/.config") == expected_config
    assert paths.user_config_file() == Path(expected_config) / "config.toml"


def test_user_dirs_without_importing_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTKEEP_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/abs/config")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # importing it now fails
    assert str(paths.user_config_file()) == "/abs/config/agentkeep/config.toml"
    assert str(paths.user_data_dir()) == "/home/someone/.local/share/agentkeep"
