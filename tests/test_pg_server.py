"""The PostgreSQL the tests run against (scripts/postgres, tests/helpers/pg.py): it is reached
over its Unix socket with the settings the tests rely on, each test's schema and database
are fresh and go away after it, a server of a test's own survives ``pg_ctl stop -m
immediate`` and comes back on the same socket, and without a server the PostgreSQL tests
skip locally but fail in CI."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from helpers.pg import (
    REPO,
    SAFETY,
    PgServer,
    PgUrl,
    drop_schema,
    fresh_database,
    fresh_name,
    fresh_schema,
    owned_tempdir,
    parse_env_lines,
    reap_orphans,
    run_script,
)

ENV_LINES = re.compile(
    r"AGENTKEEP_TEST_PG_DSN=postgresql:///agentkeep_test\?host=(?P<host>[^&\n]+)"
    r"&port=(?P<port>\d+)&user=postgres\n"
    r"AGENTKEEP_TEST_PG_DIR=(?P<dir>[^\n]+)\n"
)


def without_schema(url: str) -> str:
    """libpq refuses agentkeep's own ``schema`` parameter; the store's split_url removes it."""
    return re.sub(r"&schema=[^&]*", "", url)


def schema_exists(server: PgServer, schema: str) -> bool:
    with server.connect() as conn:
        return (
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            is not None
        )


def exited(pid: int) -> bool:
    """Whether process ``pid`` ends (pg_ctl stop returns once the pid file is gone, a moment
    before the postmaster exits)."""
    deadline = time.monotonic() + SAFETY
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def postmaster_pid(server: PgServer) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def test_the_shared_server_is_reached_over_its_unix_socket(pg_server: PgServer) -> None:
    with pg_server.connect() as conn:
        row = conn.execute("SELECT current_database(), inet_server_addr()").fetchone()
        assert row == (pg_server.dbname, None)  # no server address: a Unix socket
        if pg_server.pg_dir is not None:  # started by scripts/postgres: its settings
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN"
                    " ('fsync', 'max_connections', 'listen_addresses', 'server_encoding')"
                ).fetchall()
            )
            assert settings == {
                "fsync": "off",
                "max_connections": "200",
                "listen_addresses": "",
                "server_encoding": "UTF8",
            }
    assert pg_server.socket_dir is not None
    assert (pg_server.socket_dir / f".s.PGSQL.{pg_server.port}").is_socket()
    assert (pg_server.data_dir / "PG_VERSION").is_file()
    assert (pg_server.bindir / "pg_dump").is_file()


def test_pg_url_is_a_fresh_schema_of_the_shared_server(pg_url: PgUrl, pg_server: PgServer) -> None:
    assert re.fullmatch(r"t_[0-9a-f]{12}", pg_url.schema)
    assert pg_url == pg_server.url(pg_url.schema)
    assert pg_url.endswith(f"&schema={pg_url.schema}")
    assert not schema_exists(pg_server, pg_url.schema)  # the store creates it
    with psycopg.connect(without_schema(pg_url), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {pg_url.schema}")
    assert schema_exists(pg_server, pg_url.schema)


def test_a_fresh_schema_is_dropped_afterwards_with_its_tables(pg_server: PgServer) -> None:
    with fresh_schema(pg_server) as url:
        with pg_server.connect() as conn:
            conn.execute(f"CREATE SCHEMA {url.schema}")
            conn.execute(f"CREATE TABLE {url.schema}.t (x int)")
            conn.execute(f"INSERT INTO {url.schema}.t VALUES (1)")
        other = fresh_name()
        assert other != url.schema
    assert not schema_exists(pg_server, url.schema)


def test_dropping_a_schema_ends_a_transaction_left_open_on_it(pg_server: PgServer) -> None:
    schema = fresh_name()
    with pg_server.connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.t (x int)")
    with pg_server.connect() as leaked:
        leaked.execute("BEGIN")
        leaked.execute(f"LOCK TABLE {schema}.t IN ACCESS SHARE MODE")  # holds it: DROP waits
        drop_schema(pg_server, schema, lock_timeout_ms=100)
        assert not schema_exists(pg_server, schema)
        with pytest.raises(psycopg.OperationalError):
            leaked.execute("SELECT 1")


def test_a_fresh_database_is_dumpable_and_dropped_with_open_connections(
    pg_server: PgServer,
) -> None:
    canary = f"canary-{fresh_name()}"
    with contextlib.ExitStack() as closing:
        with fresh_database(pg_server) as database:
            assert database.name != pg_server.dbname
            held = closing.enter_context(database.connect())
            held.execute("CREATE TABLE t (x text)")
            held.execute("INSERT INTO t VALUES (%s)", (canary,))
            assert canary.encode() in database.dump()
        with pg_server.connect() as conn:
            gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database.name,))
            assert gone.fetchone() is None
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")


def test_a_private_server_is_killed_and_comes_back_with_its_data(
    private_pg_server: PgServer,
) -> None:
    server = private_pg_server
    assert server.pg_dir is not None and server.socket_dir == server.pg_dir
    port, pid = server.port, postmaster_pid(server)
    with server.connect() as conn:
        conn.execute("CREATE TABLE acked (x int)")
        conn.execute("INSERT INTO acked SELECT generate_series(1, 1000)")
    with server.connect() as held:
        server.kill()  # pg_ctl stop -m immediate
        assert "received immediate shutdown request" in (server.pg_dir / "log").read_text()
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    assert not server.accepts_connections()
    assert (
        subprocess.run([str(REPO / "scripts" / "postgres"), "status"], env=_env(server)).returncode
        == 3
    )

    server.start()
    assert server.port == port and postmaster_pid(server) != pid
    assert (server.pg_dir / f".s.PGSQL.{port}").is_socket()
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM acked").fetchone() == (1000,)
    assert (
        subprocess.run([str(REPO / "scripts" / "postgres"), "status"], env=_env(server)).returncode
        == 0
    )


def _env(server: PgServer) -> dict[str, str]:
    return {**os.environ, "AGENTKEEP_PG_DIR": str(server.pg_dir)}


def test_start_again_reuses_the_server_and_prints_only_the_env_lines(
    private_pg_server: PgServer,
) -> None:
    server = private_pg_server
    pid = postmaster_pid(server)
    printed = run_script("start", pg_dir=server.pg_dir)
    match = ENV_LINES.fullmatch(printed)
    assert match, printed
    assert match["dir"] == str(server.pg_dir) and int(match["port"]) == server.port
    assert parse_env_lines(printed)["AGENTKEEP_TEST_PG_DSN"] == server.dsn
    assert postmaster_pid(server) == pid  # reused, not restarted
    assert run_script("env", pg_dir=server.pg_dir) == printed
    with psycopg.connect(server.dsn) as conn:  # the DSN as printed is a libpq URI
        assert conn.execute("SELECT current_database()").fetchone() == ("agentkeep_test",)


def test_a_directory_with_a_space_works_and_stop_removes_it() -> None:
    pg_dir = Path(tempfile.mkdtemp(prefix="agentkeep pg ", dir="/tmp"))
    try:
        printed = run_script("start", pg_dir=pg_dir)
        match = ENV_LINES.fullmatch(printed)
        assert match, printed
        assert match["host"] == quote(str(pg_dir)) and match["dir"] == str(pg_dir)
        server = PgServer(parse_env_lines(printed)["AGENTKEEP_TEST_PG_DSN"], pg_dir)
        assert server.socket_dir == pg_dir
        pid = postmaster_pid(server)
        with server.connect() as conn:
            assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)
        run_script("stop", pg_dir=pg_dir)
        assert not pg_dir.exists()
        assert exited(pid), f"postmaster {pid} still runs after stop"
    finally:
        if pg_dir.exists():
            with contextlib.suppress(RuntimeError):
                run_script("kill", pg_dir=pg_dir)
            shutil.rmtree(pg_dir, ignore_errors=True)


def test_a_killed_sessions_private_server_is_stopped_by_the_next_session() -> None:
    pg_dir = owned_tempdir("agentkeep-pgtest-")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (pg_dir / ".owner").write_text(str(dead.pid))  # as if its pytest was SIGKILLed
    server = PgServer(
        parse_env_lines(run_script("start", pg_dir=pg_dir))["AGENTKEEP_TEST_PG_DSN"], pg_dir
    )
    pid = postmaster_pid(server)
    mine = owned_tempdir("agentkeep-pgtest-")  # a live session's: kept
    try:
        reap_orphans()
        assert not pg_dir.exists() and mine.exists()
        assert exited(pid), "the orphan's postmaster still runs"
    finally:
        shutil.rmtree(mine, ignore_errors=True)
        if pg_dir.exists():
            with contextlib.suppress(RuntimeError):
                run_script("stop", pg_dir=pg_dir)


def test_backend_legs(
    backend: str, backend_url: str | None, request: pytest.FixtureRequest
) -> None:
    marked = request.node.get_closest_marker("postgres") is not None
    if backend == "sqlite":
        assert backend_url is None and not marked
    else:
        assert isinstance(backend_url, PgUrl) and backend_url.schema in backend_url and marked


def test_the_store_fixtures_postgres_leg_is_marked(
    store: object, store_backend: str, request: pytest.FixtureRequest
) -> None:
    marked = request.node.get_closest_marker("postgres") is not None
    assert marked == (store_backend == "postgres")


def test_external_dsns_are_understood() -> None:
    tcp = PgServer("postgresql://ak@db.example:6543/team")
    assert (tcp.socket_dir, tcp.port, tcp.dbname) == (None, 6543, "team")
    assert tcp.url("s1") == "postgresql://ak@db.example:6543/team?schema=s1"
    local = PgServer("postgresql:///postgres?host=/run/pg%20x&port=54329&user=postgres")
    assert (local.socket_dir, local.port, local.dbname) == (Path("/run/pg x"), 54329, "postgres")
    assert local.url("s1").endswith("&user=postgres&schema=s1")
    with pytest.raises(RuntimeError, match="private_pg_server"):
        local.kill()


@pytest.mark.slow
def test_without_a_server_ci_fails_and_a_local_run_skips() -> None:
    """The PostgreSQL leg is never silently missing from CI."""
    target = f"{Path(__file__).name}::test_the_shared_server_is_reached_over_its_unix_socket"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTKEEP_TEST_PG")}
    env.pop("AGENTKEEP_REQUIRE_ALL_TESTS", None)

    def pytest_run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", target],
            cwd=Path(__file__).parent,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )

    local = pytest_run()
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    assert "no PostgreSQL: run `scripts/postgres start`" in local.stdout
    ci = pytest_run(AGENTKEEP_REQUIRE_ALL_TESTS="1")
    assert ci.returncode == 1 and "1 error" in ci.stdout, ci.stdout  # in the fixture
    assert "AGENTKEEP_REQUIRE_ALL_TESTS=1 but this test cannot run here" in ci.stdout
