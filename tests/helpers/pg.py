"""A real PostgreSQL for the tests (a pytest plugin, loaded by tests/conftest.py).

``scripts/test`` starts a server with ``scripts/postgres start`` and exports
``AGENTKEEP_TEST_PG_DSN`` (and ``AGENTKEEP_TEST_PG_DIR``); locally, start one yourself and
export its lines (docs/design.md "Tests and PostgreSQL"). Without the DSN every test that
needs PostgreSQL skips, and fails under ``AGENTKEEP_REQUIRE_ALL_TESTS=1`` (CI), so the
PostgreSQL leg is never silently missing. tests/conftest.py deletes every ``AGENTKEEP_*``
variable for each test, so they are read here once, at import.

Fixtures:

* ``pg_server`` (session): the shared server, a :class:`PgServer` (``dsn``, ``socket_dir``,
  ``port``, ``data_dir``, ``url(schema)``, ``connect()``, ``bindir``).
* ``pg_url`` (function): a store URL in a fresh schema ``t_<12 hex>`` of the shared
  server's database (a ``str``; ``.schema`` is the schema's name). The fixture does not
  create the schema (the store does); it drops it after the test.
* ``pg_database`` (function): a fresh whole database (:class:`PgDatabase`: ``dsn``,
  ``url(schema)``, ``connect()``, ``dump()`` for pg_dump scans), dropped after the test.
* ``private_pg_server`` (function): a server of the test's own, for chaos:
  ``kill()`` is ``pg_ctl stop -m immediate``, ``start()`` brings it back on the same port
  and socket and returns once it accepts connections. Never kill the shared ``pg_server``:
  other tests use it. ``started_pg_server()`` is the same as a context manager, for a
  module-scoped fixture of a test file's own. Private servers live in
  ``/tmp/agentkeep-pgtest-*``, copied from a cluster made once per session; the servers of
  a session killed before its teardown are stopped by the next session.
* ``backend`` (parametrised over :data:`BACKENDS`) and ``backend_url``: ``None`` on SQLite
  (the project's own ``state.db``), a ``pg_url`` on PostgreSQL::

      def test_claim_has_one_winner(backend_url: str | None, tmp_path: Path) -> None:
          ...  # runs twice: [sqlite] and [postgres]

      @pytest.mark.parametrize("backend", BACKENDS)  # the same, spelled out
      def test_other(backend: str, backend_url: str | None) -> None: ...

Tests that use any of these fixtures (or the ``postgres`` leg of ``backend`` or of
conftest's ``store_backend``) get the ``postgres`` marker: ``pytest -m 'not postgres'``
leaves them out.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

if TYPE_CHECKING:
    import psycopg

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "postgres"
# Read at import: tests/conftest.py's _isolated_env removes them before every test.
PG_DSN = os.environ.get("AGENTKEEP_TEST_PG_DSN") or None
PG_DIR = os.environ.get("AGENTKEEP_TEST_PG_DIR") or None

BACKENDS = ["sqlite", "postgres"]
SAFETY = 60.0  # seconds: only a safety net for a server that never comes up, never a budget
NO_SERVER = (
    "no PostgreSQL: run `scripts/postgres start` and export its lines "
    "(AGENTKEEP_TEST_PG_DSN), or run scripts/test, which does both"
)
# the fixtures that need a server (backend_url needs one only on its postgres leg)
PG_FIXTURES = frozenset({"pg_server", "pg_url", "pg_database", "private_pg_server"})


def fresh_name() -> str:
    """A schema or database name no other test uses: ``t_`` and 12 hex digits."""
    return f"t_{secrets.token_hex(6)}"


def with_dbname(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)  # not urlunsplit: it drops the '//' of an empty host
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{quote(dbname)}{query}"


def _worker_database(dsn: str | None) -> str | None:
    """The DSN this test process uses: with pytest-xdist, each worker gets a database of its
    own on the shared server (created once). VACUUM's horizon is per database, so another
    process's open snapshot in a shared one would keep deleted rows' pages, and the tests
    that check what gc and reclaim give back would depend on what the other worker runs.
    Set in the environment too, before any test module reads it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if dsn is None or not worker:
        return dsn
    import psycopg

    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8] or str(os.getppid())
    name = f"agentkeep_test_{run}_{worker}"  # another session's workers have their own
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with contextlib.suppress(Exception), psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    mine = with_dbname(dsn, name)
    os.environ["AGENTKEEP_TEST_PG_DSN"] = mine
    return mine


PG_DSN = _worker_database(PG_DSN)


def with_schema(dsn: str, schema: str) -> str:
    """A store URL: the DSN with agentkeep's own ``schema`` parameter."""
    return f"{dsn}{'&' if urlsplit(dsn).query else '?'}schema={schema}"


_template: list[Path] = []  # the session's pristine cluster, made by the first private server


def template_dir() -> Path:
    """Where scripts/postgres keeps a cluster to copy for each private server (a copy takes
    a fraction of initdb's time); removed when the session ends."""
    if not _template:
        _template.append(owned_tempdir("agentkeep-pgtemplate-"))
    return _template[0]


def owned_tempdir(prefix: str) -> Path:
    """A new directory under /tmp that names this process as its owner (``.owner``): a
    later session removes it, and stops its server, once that process is gone."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    (path / ".owner").write_text(str(os.getpid()))
    return path


def reap_orphans() -> None:
    """Stop the private servers, and remove the templates, of sessions that were killed
    (a SIGKILLed pytest runs no teardown)."""
    for owner in [
        *Path("/tmp").glob("agentkeep-pgtest-*/.owner"),
        *Path("/tmp").glob("agentkeep-pgtemplate-*/.owner"),
    ]:
        try:
            os.kill(int(owner.read_text()), 0)
            continue  # its session still runs
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        if owner.parent.name.startswith("agentkeep-pgtest-"):
            with contextlib.suppress(RuntimeError):
                run_script("stop", pg_dir=owner.parent)
        shutil.rmtree(owner.parent, ignore_errors=True)


def script_env(pg_dir: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTKEEP_")}
    env["AGENTKEEP_PG_DIR"] = str(pg_dir)
    env["AGENTKEEP_PG_TEMPLATE"] = str(template_dir())
    return env


def run_script(*args: str, pg_dir: Path | str | None = None) -> str:
    """``scripts/postgres ARGS`` (for the server in ``pg_dir``); its stdout."""
    done = subprocess.run(
        [str(SCRIPT), *args],
        env=script_env(pg_dir) if pg_dir is not None else None,
        capture_output=True,
        text=True,
        timeout=300,  # a first start may install the postgresql package
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/postgres {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def parse_env_lines(text: str) -> dict[str, str]:
    """``NAME=value`` lines, as ``scripts/postgres start`` and ``env`` print them."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@dataclass
class PgServer:
    """A running PostgreSQL: its DSN (a libpq URI) and, when scripts/postgres started it,
    its directory (``pg_dir``), which ``kill()`` and ``start()`` need."""

    dsn: str
    pg_dir: Path | None = None

    @property
    def _query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.dsn).query)

    @property
    def socket_dir(self) -> Path | None:
        host = self._query.get("host", [urlsplit(self.dsn).hostname or ""])[0]
        return Path(host) if host.startswith("/") else None

    @property
    def port(self) -> int:
        port = self._query.get("port", [str(urlsplit(self.dsn).port or 5432)])[0]
        return int(port)

    @property
    def dbname(self) -> str:
        return urlsplit(self.dsn).path.lstrip("/") or "postgres"

    @cached_property
    def data_dir(self) -> Path:
        """PGDATA (for scans of the bytes PostgreSQL wrote); as root or the server's user."""
        if self.pg_dir is not None:
            return self.pg_dir / "data"
        with self.connect() as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        return Path(row[0])

    @cached_property
    def bindir(self) -> Path:
        """The PostgreSQL client and server binaries (``pg_dump``, ``psql``, ``pg_isready``)."""
        return Path(run_script("bindir").strip())

    def url(self, schema: str) -> str:
        """A store URL for ``schema`` in this server's test database."""
        return with_schema(self.dsn, schema)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A plain autocommit psycopg connection (for setting up and inspecting)."""
        import psycopg

        dsn = self.dsn if dbname is None else with_dbname(self.dsn, dbname)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(dsn, autocommit=True, **kwargs)

    def accepts_connections(self) -> bool:
        import psycopg

        try:
            with self.connect(connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def _require_dir(self) -> Path:
        if self.pg_dir is None:
            raise RuntimeError(
                "this server was not started by scripts/postgres (no AGENTKEEP_TEST_PG_DIR): "
                "use private_pg_server to kill and start one"
            )
        return self.pg_dir

    def kill(self) -> None:
        """``pg_ctl stop -m immediate``: every connection drops, no checkpoint (a crash)."""
        run_script("kill", pg_dir=self._require_dir())

    def start(self) -> None:
        """Start it again (same port, socket and data); returns once it accepts connections."""
        run_script("start", pg_dir=self._require_dir())
        deadline = time.monotonic() + SAFETY
        while not self.accepts_connections():  # pg_ctl -w waited already: a safety net
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL in {self.pg_dir} did not come back")
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut it down and remove its directory (only for servers started here)."""
        run_script("stop", pg_dir=self._require_dir())


@dataclass
class PgDatabase:
    server: PgServer
    name: str

    @property
    def dsn(self) -> str:
        return with_dbname(self.server.dsn, self.name)

    def url(self, schema: str) -> str:
        return with_schema(self.dsn, schema)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return self.server.connect(self.name, **kwargs)

    def dump(self) -> bytes:
        """``pg_dump`` of the whole database, as SQL text (every row of every schema)."""
        done = subprocess.run(
            [str(self.server.bindir / "pg_dump"), "--dbname", self.dsn, "--no-owner"],
            capture_output=True,
            timeout=300,
            check=True,
        )
        return done.stdout


class PgUrl(str):
    """A store URL (it is the string) that also knows its schema's name."""

    schema: str


def drop_schema(server: PgServer, schema: str, *, lock_timeout_ms: int = 5000) -> None:
    """``DROP SCHEMA … CASCADE``. A connection a test left inside a transaction on the
    schema would block it forever: after a lock timeout its holders are terminated."""
    import psycopg

    with server.connect() as conn:
        conn.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
        for _ in range(3):
            try:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                return
            except psycopg.errors.LockNotAvailable:
                conn.execute(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
                    " JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n"
                    " ON n.oid = c.relnamespace WHERE n.nspname = %s"
                    " AND l.pid <> pg_backend_pid()",
                    (schema,),
                )


@contextlib.contextmanager
def fresh_schema(server: PgServer) -> Iterator[PgUrl]:
    """A store URL in a schema no one uses; the schema is dropped on exit (best effort)."""
    schema = fresh_name()
    url = PgUrl(server.url(schema))
    url.schema = schema
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):  # a dead server must not hide the test's result
            drop_schema(server, schema)


@contextlib.contextmanager
def fresh_database(server: PgServer) -> Iterator[PgDatabase]:
    """A new database (from template0: template1 may be in use); dropped on exit, with
    whatever connections are still open to it (``WITH (FORCE)``)."""
    database = PgDatabase(server, fresh_name())
    with server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{database.name}" TEMPLATE template0')
    try:
        yield database
    finally:
        with contextlib.suppress(Exception), server.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


@contextlib.contextmanager
def started_pg_server() -> Iterator[PgServer]:
    """A PostgreSQL of the caller's own in a new directory under /tmp (the server's user
    must reach it; pytest's temp directories are private to root), stopped and removed on
    exit."""
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing")
    pg_dir = owned_tempdir("agentkeep-pgtest-")
    try:
        try:
            lines = parse_env_lines(run_script("start", pg_dir=pg_dir))
        except RuntimeError as exc:
            from conftest import skip_or_fail

            skip_or_fail(f"cannot start a PostgreSQL of this test's own: {exc}")
        server = PgServer(lines["AGENTKEEP_TEST_PG_DSN"], Path(lines["AGENTKEEP_TEST_PG_DIR"]))
        yield server
    finally:
        try:
            run_script("stop", pg_dir=pg_dir)
        except RuntimeError:
            with contextlib.suppress(RuntimeError):
                run_script("kill", pg_dir=pg_dir)
        shutil.rmtree(pg_dir, ignore_errors=True)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    if PG_DSN is None:
        from conftest import skip_or_fail

        skip_or_fail(NO_SERVER)
    assert PG_DSN is not None
    server = PgServer(PG_DSN, Path(PG_DIR) if PG_DIR else None)
    if not server.accepts_connections():
        pytest.fail(f"AGENTKEEP_TEST_PG_DSN={PG_DSN} does not accept connections")
    return server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[PgUrl]:
    with fresh_schema(pg_server) as url:
        yield url


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    with fresh_database(pg_server) as database:
        yield database


@pytest.fixture
def private_pg_server() -> Iterator[PgServer]:
    with started_pg_server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend's name; the test runs once per backend."""
    return str(request.param)


@pytest.fixture
def backend_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """Where the store lives: ``None`` for SQLite (its project's ``state.db``), a fresh
    schema's URL for PostgreSQL (skips, or fails under CI, without a server)."""
    if backend == "sqlite":
        return None
    assert backend == "postgres", backend
    url: PgUrl = request.getfixturevalue("pg_url")
    return url


# -- hooks ---------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgres: needs a PostgreSQL server (tests/helpers/pg.py); -m 'not postgres' skips",
    )


def pytest_sessionstart() -> None:
    reap_orphans()


def pytest_sessionfinish() -> None:
    for path in _template:
        shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgres" in (
            callspec.params.get("backend"),
            callspec.params.get("store_backend"),  # conftest's store-level parametrisation
        )
        if names & PG_FIXTURES or on_postgres:
            item.add_marker(pytest.mark.postgres)
