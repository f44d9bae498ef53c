"""The throwaway PostgreSQL server and its fixtures (tests/postgresql.py, tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg2
import pytest

from tests import postgresql

pytestmark = pytest.mark.postgresql
REPO = Path(__file__).resolve().parents[2]


def query(url: str, sql: str, **connect: str) -> list[tuple]:
    conn = psycopg2.connect(url, **connect)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def user_tables(url: str) -> list[str]:
    rows = query(
        url,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    return [row[0] for row in rows]


@pytest.fixture
def managed_server(postgresql_server: postgresql.Server) -> postgresql.Server:
    if not postgresql_server.managed:
        pytest.skip(f"{postgresql.ENV_VAR} names an existing server: its pg_hba.conf and life are not ours")
    return postgresql_server


@pytest.fixture
def no_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_server_answers_as_superuser(postgresql_server: postgresql.Server) -> None:
    assert query(postgresql_server.url, "SELECT 1, current_setting('is_superuser')") == [(1, "on")]
    assert postgresql_server.execute("SELECT 2") == [(2,)]
    assert postgresql_server.url.startswith("postgresql://")
    assert f":{postgresql_server.port}/" in postgresql_server.url


def test_each_test_database_is_new_and_empty(postgresql_server: postgresql.Server, postgresql_url: str) -> None:
    other = postgresql.fresh_database(postgresql_server)
    assert other != postgresql_url
    assert user_tables(postgresql_url) == [] and user_tables(other) == []

    query(postgresql_url, "CREATE TABLE users (name text)")

    assert user_tables(postgresql_url) == ["public.users"]
    assert user_tables(other) == []
    assert query(other, "SELECT current_database()") != query(postgresql_url, "SELECT current_database()")


def test_a_test_database_sorts_text_byte_by_byte_in_utf8(postgresql_url: str) -> None:
    assert query(postgresql_url, "SHOW server_encoding") == [("UTF8",)]
    rows = query(postgresql_url, "SELECT x FROM (VALUES ('b'), ('é'), ('B'), ('a'), ('Z')) AS v(x) ORDER BY x")
    assert [row[0] for row in rows] == ["B", "Z", "a", "b", "é"]


def test_a_released_database_is_dropped_when_the_next_is_made(postgresql_server: postgresql.Server) -> None:
    first = postgresql.fresh_database(postgresql_server)
    query(first, "SELECT 1")
    name = first.rpartition("/")[2]

    postgresql.release_database(postgresql_server, first)
    postgresql.fresh_database(postgresql_server)

    assert postgresql_server.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)) == []


@pytest.mark.usefixtures("no_password_from_environment")
def test_the_password_role_authenticates_with_its_password(postgresql_server: postgresql.Server) -> None:
    url = postgresql.fresh_database(postgresql_server, owner=postgresql.PASSWORD_ROLE)

    query(url, "CREATE TABLE mine (x int)", password=postgresql.PASSWORD)

    assert query(url, "SELECT current_user", password=postgresql.PASSWORD) == [(postgresql.PASSWORD_ROLE,)]
    assert postgresql.PASSWORD not in url


@pytest.mark.usefixtures("no_password_from_environment")
@pytest.mark.parametrize("password", [None, "wrong-pw"], ids=["no password", "wrong password"])
def test_the_password_role_is_refused_without_its_password(managed_server: postgresql.Server, password: str | None) -> None:
    url = managed_server.url_for("postgres", user=postgresql.PASSWORD_ROLE, password=password)

    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(url)


def test_the_unix_socket_trusts_every_role(managed_server: postgresql.Server) -> None:
    rows = query(f"postgresql:///postgres?host={managed_server.socket_dir}&port={managed_server.port}&user={postgresql.PASSWORD_ROLE}", "SELECT current_user")
    assert rows == [(postgresql.PASSWORD_ROLE,)]


def test_restart_closes_connections_and_keeps_data(managed_server: postgresql.Server, postgresql_url: str) -> None:
    query(postgresql_url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    before = psycopg2.connect(postgresql_url)

    managed_server.restart()

    with pytest.raises(psycopg2.OperationalError), before.cursor() as cursor:
        cursor.execute("SELECT 1")
    before.close()
    assert query(postgresql_url, "SELECT x FROM kept") == [(42,)]
    assert managed_server.execute("SELECT 1") == [(1,)]


@pytest.mark.usefixtures("managed_server")
def test_stop_ends_the_server_and_deletes_its_folder() -> None:
    server = postgresql.start_server()
    root = server.socket_dir
    assert root is not None and (root / "data" / "PG_VERSION").exists()

    server.stop()
    server.stop()

    assert not root.exists()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(server.url, connect_timeout=5)


@pytest.mark.usefixtures("managed_server")
def test_a_killed_test_process_leaves_no_server_behind() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", "import time; from tests import postgresql; s = postgresql.start_server(); print(s.socket_dir, s.url, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={key: value for key, value in os.environ.items() if key != postgresql.ENV_VAR},
    )
    root, url = starter.stdout.readline().split()
    assert query(url, "SELECT 1") == [(1,)]

    starter.kill()
    starter.wait()

    deadline = time.monotonic() + 30
    while Path(root).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(root).exists()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=5)


def test_db_url_gives_an_empty_database_of_each_engine(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    engine = request.node.callspec.id
    if engine == "sqlite":
        assert Path(db_url).parent == tmp_path and not Path(db_url).exists()
    else:
        assert engine == "postgresql" and "postgresql" in request.node.keywords
        assert user_tables(db_url) == []


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 error")])
def test_without_a_server_tests_skip_but_fail_in_ci(tmp_path: Path, ci: str, outcome: str) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """\
            from pathlib import Path

            from tests import postgresql
            from tests.conftest import postgresql_server

            postgresql.BIN = Path("/nonexistent/postgresql/bin")
            """
        )
    )
    (tmp_path / "test_needs_server.py").write_text("def test_it(postgresql_server):\n    pass\n")
    env = {key: value for key, value in os.environ.items() if key not in ("CI", postgresql.ENV_VAR)}
    env.update(PYTHONPATH=str(REPO), **({"CI": ci} if ci else {}))

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )

    assert outcome in done.stdout, done.stdout + done.stderr
    assert postgresql.UNAVAILABLE in done.stdout
    assert done.returncode == (1 if ci else 0)
