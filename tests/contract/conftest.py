"""Fixtures of the contract suite: ``backend`` runs each test once per entry of
:data:`.backends.BACKENDS` (the id shows in the test name, e.g. ``[sqlite]``), and
``make_store`` makes fresh empty stores of that backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import agentkeep

from .backends import ADAPTERS, BACKENDS, Adapter, StoreHandle


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Adapter:
    return ADAPTERS[request.param]


@pytest.fixture
def make_store(
    backend: Adapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], StoreHandle]:
    """``make_store()`` -> a new, empty store; the first one's root becomes the cwd."""
    made: list[StoreHandle] = []

    def make() -> StoreHandle:
        handle = backend.create(tmp_path / f"store{len(made)}")
        if not made:
            monkeypatch.chdir(handle.root)
        made.append(handle)
        return handle

    return make


@pytest.fixture
def handle(make_store: Callable[[], StoreHandle]) -> StoreHandle:
    """One fresh store of the backend under test."""
    return make_store()


@pytest.fixture
def store(handle: StoreHandle) -> Iterator[agentkeep.Store]:
    """The fresh store, open in this process."""
    with handle.open() as opened:
        yield opened
