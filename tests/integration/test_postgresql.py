"""PostgreSQL-only behaviour, through the installed executable: several hosts at once,
the write lock, a server that goes away, databases usermgr must not touch, credentials,
the optional driver, backups into SQLite and round trips between the engines.

A "host" here is a separate process with connections of its own: to the server, one
host or eight on one machine look the same."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests import postgresql
from tests.helpers import PASSWORD, USERMGR, run_usermgr
from usermgr.infrastructure.storage.schema import SCHEMA_VERSION

pytestmark = pytest.mark.postgresql

# usermgr's write lock: pg_advisory_xact_lock(LOCK_KEY, hashtext(current_schema())).
LOCK_KEY = 1970498919
SECRET = "TopSecret123"
# A bcrypt hash (cost 4) of PASSWORD, for users inserted with SQL.
FIXED_HASH = "$2b$04$flwOJnpFtTSVwCeMb9kZPeVbBOIgNRNOicSW2MHivqplVAoz9bru6"
USERMGR_TABLES = {"usermgr_schema", "users", "events", "deliveries"}


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """One statement in its own committed transaction; the rows, if any."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


def tables(url: str) -> set[str]:
    rows = sql(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return {name for (name,) in rows}


def contents(url: str) -> dict[str, list[tuple]]:
    """Every table of the public schema with its rows, sorted: equal before and after
    means nothing was written."""
    return {table: sorted(sql(url, f'SELECT * FROM "{table}"'), key=repr) for table in sorted(tables(url))}


def usermgr(db: str, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_usermgr(*args, input=input, env={"USERMGR_DB": db, **(env or {})})


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text("[security]\nbcrypt_rounds = 4\n" + textwrap.dedent(extra))
    return path


def fill_users(url: str, count: int) -> None:
    """Users straight into usermgr's table (which must exist), keys as usermgr computes them."""
    sql(
        url,
        "INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash, created_at)"
        " SELECT gen_random_uuid()::text, 'bulk' || i || '@example.com', 'bulk' || i || '@example.com',"
        " 'Bulk User ' || i, 'bulk user ' || i, 'user', true, %s,"
        " to_char(timestamp '2020-01-01' + i * interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        " FROM generate_series(1, %s) AS i",
        (FIXED_HASH, count),
    )


@pytest.fixture
def managed_server(postgresql_server: postgresql.Server) -> postgresql.Server:
    """The session's server, when its pg_hba.conf is ours (password role over TCP)."""
    if not postgresql_server.managed:
        pytest.skip(f"{postgresql.ENV_VAR} names an existing server: its authentication rules are not ours")
    return postgresql_server


@pytest.fixture(scope="module")
def own_server(postgresql_server: postgresql.Server) -> Iterator[postgresql.Server]:
    """A server of this module's own, for tests that stop it under a running command."""
    if not postgresql_server.managed:
        pytest.skip(f"{postgresql.ENV_VAR} names an existing server: these tests must stop a server of their own")
    server = postgresql.start_server()
    yield server
    server.stop()


@pytest.fixture
def no_libpq_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)


# --- several hosts at once -------------------------------------------------------

HOST_SCRIPT = """\
import json, os, subprocess, sys, time
usermgr, barrier, name, out = sys.argv[1:5]
commands = json.loads(sys.argv[5])
open(os.path.join(barrier, "ready-" + name), "w").close()
while not os.path.exists(os.path.join(barrier, "go")):
    time.sleep(0.005)
results = []
for args in commands:
    done = subprocess.run([usermgr, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    results.append([done.returncode, done.stdout, done.stderr])
with open(out, "w") as f:
    json.dump(results, f)
"""


def run_hosts(tmp_path: Path, db: str, plans: list[list[list[str]]], *, timeout: float = 120) -> list[list[list]]:
    """One process per plan, each running its usermgr commands in turn once every
    process is ready (a start barrier); each command's [exit code, stdout, stderr]."""
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "USERMGR_DB": db}
    outputs = [tmp_path / f"host-{n}.json" for n in range(len(plans))]
    hosts = [
        subprocess.Popen([sys.executable, str(script), USERMGR, str(barrier), str(n), str(out), json.dumps(plan)], env=env)
        for n, (plan, out) in enumerate(zip(plans, outputs, strict=True))
    ]
    try:
        deadline = time.monotonic() + 30
        while len(list(barrier.glob("ready-*"))) < len(plans):
            assert time.monotonic() < deadline, "the hosts did not start"
            time.sleep(0.01)
        (barrier / "go").touch()
        for host in hosts:
            assert host.wait(timeout=timeout) == 0
    finally:
        for host in hosts:
            if host.poll() is None:
                host.kill()
    return [json.loads(out.read_text()) for out in outputs]


@pytest.mark.slow
def test_eight_hosts_creating_the_same_emails_make_one_user_and_one_event_each(tmp_path: Path, postgresql_url: str) -> None:
    emails = [f"shared{n}@example.com" for n in range(20)]
    batch = tmp_path / "shared.csv"
    batch.write_text("email,name\n" + "".join(f"{email},Shared {n}\n" for n, email in enumerate(emails)))
    # Each host creates the first five one by one, then imports all twenty.
    plan = [["create", email, "--name", f"Shared {n}", "--no-password", "--exists-ok"] for n, email in enumerate(emails[:5])]
    plan.append(["import", str(batch), "--exists-ok"])

    results = run_hosts(tmp_path, postgresql_url, [plan] * 8)

    flat = [result for host in results for result in host]
    assert [(code, stderr) for code, _, stderr in flat] == [(0, "")] * len(flat)
    creates = [stdout for host in results for _, stdout, _ in host[:5]]
    assert sum(out.startswith("created ") for out in creates) == 5
    assert sum(out.startswith("exists, unchanged: ") for out in creates) == 7 * 5
    imported = [host[5][1] for host in results]
    assert sum(int(out.split()[1].rstrip(",")) for out in imported) == 15, imported
    users = sql(postgresql_url, "SELECT id, email FROM users")
    assert sorted(email for _, email in users) == sorted(emails)
    events = sql(postgresql_url, "SELECT type, user_id FROM events ORDER BY seq")
    assert sorted(events) == sorted(("UserCreated", user_id) for user_id, _ in users)
    verified = usermgr(postgresql_url, "events", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"{len(emails)} events, head ")


@pytest.mark.slow
def test_hosts_starting_at_once_on_an_empty_database_create_the_schema_once(tmp_path: Path, postgresql_url: str) -> None:
    plans = [
        *([["create", f"first{n}@example.com", "--name", "First", "--no-password"]] for n in range(3)),
        *([["db", "upgrade"]] for _ in range(3)),
        *([["list"]] for _ in range(2)),
    ]
    # Hold the write lock until all six writers wait for it, then let them race for it.
    holder = psycopg2.connect(postgresql_url)
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND NOT granted"

    def release_when_the_writers_wait() -> None:
        deadline = time.monotonic() + 30
        while sql(postgresql_url, waiting, (LOCK_KEY,))[0][0] < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        holder.commit()

    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (LOCK_KEY,))
        releaser = threading.Thread(target=release_when_the_writers_wait)
        releaser.start()
        results = run_hosts(tmp_path, postgresql_url, plans)
        releaser.join()
    finally:
        holder.close()

    assert [host[0][0] for host in results] == [0] * len(plans), results
    assert sql(postgresql_url, "SELECT application, version FROM usermgr_schema") == [("usermgr", SCHEMA_VERSION)]
    assert USERMGR_TABLES <= tables(postgresql_url)
    assert sql(postgresql_url, "SELECT count(*) FROM users") == [(3,)]
    upgrades = [host[0][1] for host in results[3:6]]
    assert sum(out.startswith("created the database") for out in upgrades) <= 1, upgrades
    checked = usermgr(postgresql_url, "db", "check")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: ")


# --- the write lock ---------------------------------------------------------------


@pytest.fixture
def held_lock(postgresql_url: str) -> Iterator[None]:
    """usermgr's write lock, held by another "host" in an open transaction."""
    assert usermgr(postgresql_url, "db", "upgrade").returncode == 0
    holder = psycopg2.connect(postgresql_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (LOCK_KEY,))
        yield
    finally:
        holder.close()


def timed(db: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    result = usermgr(db, *args, env=env)
    return time.monotonic() - start, result


@pytest.mark.usefixtures("held_lock")
def test_a_writer_waits_for_the_lock_up_to_busy_timeout_then_exits_6(tmp_path: Path, postgresql_url: str) -> None:
    before = contents(postgresql_url)
    waits = {}
    for seconds in (1, 0):
        config = write_config(tmp_path / f"busy-{seconds}.toml", f"[database]\nbusy_timeout = {seconds}\n")
        waits[seconds], result = timed(
            postgresql_url, "create", f"late{seconds}@example.com", "--name", "Late", "--no-password",
            env={"USERMGR_CONFIG": str(config)},
        )

        assert result.returncode == 6, result.stderr
        assert "is busy" in one_line(result) and "retry later" in result.stderr
        assert result.stdout == ""

    assert 1.0 <= waits[1] < 10
    assert waits[0] < waits[1] - 0.7  # no wait at all
    assert contents(postgresql_url) == before


@pytest.mark.usefixtures("held_lock")
def test_readers_do_not_wait_for_the_write_lock(tmp_path: Path, postgresql_url: str) -> None:
    config = write_config(tmp_path / "busy.toml", "[database]\nbusy_timeout = 30\n")
    seconds, result = timed(postgresql_url, "list", "--format", "json", env={"USERMGR_CONFIG": str(config)})

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 0
    assert seconds < 10


@pytest.fixture
def table_lock(postgresql_url: str) -> Iterator[None]:
    """What VACUUM FULL or ALTER TABLE takes: an ACCESS EXCLUSIVE lock on users, held
    by another session (not a usermgr) in an open transaction."""
    assert usermgr(postgresql_url, "create", "ada@example.com", "--name", "Ada", "--password-stdin",
                   input=PASSWORD + "\n").returncode == 0
    holder = psycopg2.connect(postgresql_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        holder.close()


@pytest.mark.usefixtures("table_lock")
@pytest.mark.parametrize("seconds", [1, 0])
def test_readers_and_writers_behind_a_table_lock_wait_busy_timeout_at_most_then_exit_6(
    tmp_path: Path, postgresql_url: str, seconds: int
) -> None:
    # Regression: readers waited for ever, and so did writers with busy_timeout = 0
    # (PostgreSQL's lock_timeout 0 means no limit).
    env = {"USERMGR_CONFIG": str(write_config(tmp_path / "busy.toml", f"[database]\nbusy_timeout = {seconds}\n"))}
    for args, stdin in ((["list"], None), (["verify", "ada@example.com", "--password-stdin"], PASSWORD + "\n"),
                        (["update", "ada@example.com", "--name", "Other"], None)):
        start = time.monotonic()
        result = usermgr(postgresql_url, *args, input=stdin, env=env)
        waited = time.monotonic() - start
        assert result.returncode == 6, (args, result.stderr)
        assert "is busy" in one_line(result) and "LOCK TABLE" in result.stderr
        assert waited < seconds + 8, (args, waited)


# --- databases usermgr must not write to --------------------------------------------

COMMANDS = [
    ["list"],
    ["show", "x@example.com"],
    ["create", "new@example.com", "--name", "New", "--no-password"],
    ["update", "x@example.com", "--name", "Renamed"],
    ["delete", "x@example.com", "--yes"],
    ["export", "--format", "jsonl"],
    ["events"],
    ["events", "verify"],
    ["hooks", "list"],
    ["hooks", "retry"],
    ["db", "check"],
    ["db", "upgrade"],
    ["hashes"],
]


def assert_every_command_refuses(db: str, tmp_path: Path, reason: str) -> None:
    before = contents(db)
    batch = tmp_path / "batch.csv"
    batch.write_text("email,name\nbatch@example.com,Batch\n")
    for args in [*COMMANDS, ["import", str(batch)], ["db", "backup", str(tmp_path / "backup.db")]]:
        result = usermgr(db, *args)

        assert result.returncode == 6, (args, result.stderr)
        assert reason in one_line(result), args
        assert result.stdout == "", args
    assert contents(db) == before
    assert not (tmp_path / "backup.db").exists()


def test_a_database_with_a_foreign_users_table_is_never_written(tmp_path: Path, postgresql_url: str) -> None:
    sql(postgresql_url, "CREATE TABLE users (id serial PRIMARY KEY, login text NOT NULL)")
    sql(postgresql_url, "INSERT INTO users (login) VALUES ('alice'), ('bob')")

    assert_every_command_refuses(postgresql_url, tmp_path, "not usermgr's (users)")

    assert tables(postgresql_url) == {"users"}
    assert sql(postgresql_url, "SELECT id, login FROM users ORDER BY id") == [(1, "alice"), (2, "bob")]


def test_a_newer_usermgr_schema_is_never_written(tmp_path: Path, postgresql_url: str) -> None:
    made = usermgr(postgresql_url, "create", "x@example.com", "--name", "X", "--no-password")
    assert made.returncode == 0, made.stderr
    sql(postgresql_url, "UPDATE usermgr_schema SET version = version + 1")

    assert_every_command_refuses(postgresql_url, tmp_path, f"schema version {SCHEMA_VERSION + 1}, newer")

    assert sql(postgresql_url, "SELECT version FROM usermgr_schema") == [(SCHEMA_VERSION + 1,)]


# --- connections and credentials ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [f"postgresql://app:{SECRET}@127.0.0.1:1/x", f"postgresql://app@127.0.0.1:1/x?password={SECRET}&sslmode=disable"],
    ids=["in-the-user-part", "as-a-parameter"],
)
@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_an_unreachable_server_is_exit_6_and_never_shows_the_password(url: str, debug: list[str]) -> None:
    for args in (["list"], ["create", "x@example.com", "--name", "X", "--no-password"], ["db", "check"]):
        result = usermgr(url, *debug, *args)

        assert result.returncode == 6, result.stderr
        line = one_line(result)
        assert "cannot connect to PostgreSQL at postgresql://app@127.0.0.1:1/x" in line
        assert "check the host, port" in line
        assert SECRET not in result.stdout + result.stderr


@pytest.mark.usefixtures("no_libpq_credentials")
@pytest.mark.parametrize("where", ["user-part", "parameter", "PGPASSWORD"])
def test_a_wrong_password_is_refused_in_one_line_that_never_shows_it(managed_server: postgresql.Server, where: str) -> None:
    url = postgresql.fresh_database(managed_server, owner=postgresql.PASSWORD_ROLE)
    env = {}
    if where == "user-part":
        url = managed_server.url_for(url.rpartition("/")[2], user=postgresql.PASSWORD_ROLE, password=SECRET)
    elif where == "parameter":
        url += f"?password={SECRET}"
    else:
        env["PGPASSWORD"] = SECRET
    try:
        for debug in ([], ["--debug"]):
            result = usermgr(url, *debug, "create", "x@example.com", "--name", "X", "--no-password", env=env)

            assert result.returncode == 6, result.stderr
            line = one_line(result)
            assert "password authentication failed" in line and "PGPASSWORD, ~/.pgpass" in line
            assert SECRET not in result.stdout + result.stderr
        assert tables(managed_server.url_for(url.rpartition("/")[2].partition("?")[0])) == set()
    finally:
        postgresql.release_database(managed_server, url)


@pytest.fixture
def password_role_database(managed_server: postgresql.Server) -> Iterator[str]:
    """A new database owned by the role that must give a password; its URL has none."""
    url = postgresql.fresh_database(managed_server, owner=postgresql.PASSWORD_ROLE)
    yield url
    postgresql.release_database(managed_server, url)


@pytest.mark.usefixtures("no_libpq_credentials")
def test_the_password_can_come_from_pgpassword_alone(password_role_database: str) -> None:
    url = password_role_database
    assert f":{postgresql.PASSWORD}@" not in url

    refused = usermgr(url, "create", "x@example.com", "--name", "X", "--no-password")
    created = usermgr(url, "create", "x@example.com", "--name", "X", "--no-password", env={"PGPASSWORD": postgresql.PASSWORD})

    assert refused.returncode == 6 and "PGPASSWORD, ~/.pgpass" in one_line(refused)
    assert created.returncode == 0, created.stderr
    assert sql(url.replace("usermgr_pw@", "postgres@"), "SELECT email FROM users") == [("x@example.com",)]


@pytest.mark.usefixtures("no_libpq_credentials")
def test_the_password_can_come_from_the_pgpass_file_in_home(
    password_role_database: str, managed_server: postgresql.Server, isolated_environment: Path
) -> None:
    pgpass = isolated_environment / "home" / ".pgpass"
    pgpass.write_text(f"127.0.0.1:{managed_server.port}:*:{postgresql.PASSWORD_ROLE}:{postgresql.PASSWORD}\n")
    pgpass.chmod(0o600)

    created = usermgr(password_role_database, "create", "x@example.com", "--name", "X", "--no-password")
    listed = usermgr(password_role_database, "list", "--format", "jsonl")

    assert created.returncode == 0, created.stderr
    assert listed.returncode == 0 and json.loads(listed.stdout)["email"] == "x@example.com"


def test_a_missing_database_is_exit_6_with_what_to_do(postgresql_server: postgresql.Server) -> None:
    url = postgresql_server.url_for("usermgr_no_such_database")

    result = usermgr(url, "create", "x@example.com", "--name", "X", "--no-password")

    assert result.returncode == 6
    line = one_line(result)
    assert 'database "usermgr_no_such_database" does not exist' in line
    assert "create the database first" in line
    assert not postgresql_server.execute("SELECT 1 FROM pg_database WHERE datname = 'usermgr_no_such_database'")


def test_both_url_schemes_and_usermgr_db_name_the_same_database(postgresql_url: str) -> None:
    short = "postgres://" + postgresql_url.partition("://")[2]

    created = run_usermgr("--db", short, "create", "x@example.com", "--name", "X", "--no-password")
    shown = run_usermgr("show", "x@example.com", "--json", env={"USERMGR_DB": postgresql_url})
    listed = run_usermgr("list", "--format", "jsonl", env={"USERMGR_DB": short})

    assert created.returncode == 0, created.stderr
    assert shown.returncode == 0 and json.loads(shown.stdout)["email"] == "x@example.com"
    assert listed.returncode == 0 and json.loads(listed.stdout) == json.loads(shown.stdout)


def test_without_the_driver_a_postgresql_url_is_exit_2_naming_the_extra(tmp_path: Path, postgresql_url: str) -> None:
    # A psycopg2 that cannot be imported, ahead of the installed one on sys.path.
    shadow = tmp_path / "shadow" / "psycopg2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'psycopg2\'", name="psycopg2")\n')
    env = {"PYTHONPATH": str(shadow.parent)}

    result = usermgr(postgresql_url, "list", env=env)
    sqlite = usermgr(str(tmp_path / "users.db"), "create", "x@example.com", "--name", "X", "--no-password", env=env)

    assert result.returncode == 2, result.stderr
    assert "usermgr[postgresql]" in one_line(result)
    assert sqlite.returncode == 0, sqlite.stderr
    assert tables(postgresql_url) == set()


# --- backups and round trips ---------------------------------------------------------

PEOPLE = [
    ("ada@example.com", "Ada Lovelace", ["--role", "admin"]),
    ("Élise@München.de", "Élise Müller", []),
    ("grace@example.com", "[bold]Grace[/]", ["--inactive"]),
    ("linus@example.com", "Linus 100%_done", ["--role", "moderator"]),
]


def populate(db: str, env: dict[str, str] | None = None) -> None:
    """Users with passwords, a later change each, and their events (and deliveries,
    with a config whose hooks fail)."""
    for email, name, flags in PEOPLE:
        made = usermgr(db, "create", email, "--name", name, *flags, "--password-stdin", input=PASSWORD + "\n", env=env)
        assert made.returncode == 0, made.stderr
    for args in (["update", "ada@example.com", "--name", "Ada King"], ["deactivate", "linus@example.com"],
                 ["set-role", "grace@example.com", "moderator"]):
        changed = usermgr(db, *args, env=env)
        assert changed.returncode == 0, changed.stderr
    assert usermgr(db, "create", "nopass@example.com", "--name", "No Pass", "--no-password", env=env).returncode == 0


def read(db: str, *args: str) -> str:
    result = usermgr(db, *args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def deliveries(rows: list[tuple]) -> list[tuple]:
    return sorted(tuple(row) for row in rows)


def test_db_backup_writes_a_private_sqlite_copy_that_usermgr_reads_without_a_server(tmp_path: Path, postgresql_url: str) -> None:
    failing = write_config(tmp_path / "failing.toml", f"""
        [[hooks]]
        name = "audit"
        on = "*"
        command = ["{Path('/bin/false')}"]
    """)
    populate(postgresql_url, env={"USERMGR_CONFIG": str(failing)})
    backup = tmp_path / "backup.db"

    done = usermgr(postgresql_url, "db", "backup", str(backup))

    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    for args in (["export", "--include-hashes"], ["list", "--all", "--format", "json"],
                 ["events", "--limit", "1000", "--format", "jsonl"], ["events", "verify"]):
        assert read(str(backup), *args) == read(postgresql_url, *args), args
    assert read(str(backup), "events", "verify").startswith("8 events, head ")
    checked = read(str(backup), "db", "check")
    assert checked.startswith(f"ok: {backup}, schema version {SCHEMA_VERSION}, 5 users, 8 events, 8 pending deliveries")
    columns = "id, event_id, hook, attempts, last_error, last_attempt_at, claimed_until"
    with sqlite3.connect(backup) as copy:
        copied = copy.execute(f"SELECT {columns} FROM deliveries").fetchall()
    assert deliveries(copied) == deliveries(sql(postgresql_url, f"SELECT {columns} FROM deliveries"))
    assert len(copied) == 8
    verified = usermgr(str(backup), "verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert verified.returncode == 0, verified.stderr


def test_db_backup_refuses_an_existing_path_without_force(tmp_path: Path, postgresql_url: str) -> None:
    assert usermgr(postgresql_url, "create", "x@example.com", "--name", "X", "--no-password").returncode == 0
    backup = tmp_path / "backup.db"
    backup.write_bytes(b"precious")

    refused = usermgr(postgresql_url, "db", "backup", str(backup))

    assert refused.returncode == 2
    assert "--force" in one_line(refused)
    assert backup.read_bytes() == b"precious"
    forced = usermgr(postgresql_url, "db", "backup", str(backup), "--force")
    assert forced.returncode == 0, forced.stderr
    assert read(str(backup), "export", "--include-hashes") == read(postgresql_url, "export", "--include-hashes")


def test_export_import_round_trips_sqlite_postgresql_sqlite_unchanged(tmp_path: Path, postgresql_url: str) -> None:
    source, final = str(tmp_path / "source.db"), str(tmp_path / "final.db")
    populate(source)
    first = read(source, "export", "--include-hashes")

    loaded = usermgr(postgresql_url, "import", "-", input=first)
    middle = read(postgresql_url, "export", "--include-hashes")
    reloaded = usermgr(final, "import", "-", input=middle)
    last = read(final, "export", "--include-hashes")

    assert loaded.returncode == 0 and reloaded.returncode == 0, loaded.stderr + reloaded.stderr
    assert first == middle == last
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(first))}
    assert len(rows) == len(PEOPLE) + 1
    assert rows["ada@example.com"]["updated_at"] and rows["ada@example.com"]["password_hash"].startswith("$2b$04$")
    for db in (postgresql_url, final):
        for email in ("ada@example.com", "élise@münchen.de"):
            verified = usermgr(db, "verify", email, "--password-stdin", input=PASSWORD + "\n")
            assert verified.returncode == 0, verified.stderr
        wrong = usermgr(db, "verify", "ada@example.com", "--password-stdin", input="not the password\n")
        assert wrong.returncode == 5


# --- reads stream on the server --------------------------------------------------------


def peak_kib(db: str, *args: str, out: Path) -> int:
    """The peak RSS of one usermgr process (stdout into a file), via /usr/bin/time."""
    with out.open("w") as sink:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", USERMGR, *args],
            stdout=sink, stderr=subprocess.PIPE, text=True, env={**os.environ, "USERMGR_DB": db},
            stdin=subprocess.DEVNULL, timeout=120,
        )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs /usr/bin/time")
@pytest.mark.parametrize(
    "args", [["export", "--format", "jsonl"], ["list", "--all", "--format", "csv"]], ids=["export", "list-all"]
)
def test_reading_every_user_keeps_the_process_small(tmp_path: Path, postgresql_url: str, args: list[str]) -> None:
    assert usermgr(postgresql_url, "db", "upgrade").returncode == 0
    fill_users(postgresql_url, 1_000)
    small = peak_kib(postgresql_url, *args, out=tmp_path / "small.out")
    sql(postgresql_url, "DELETE FROM users")
    fill_users(postgresql_url, 50_000)

    big = peak_kib(postgresql_url, *args, out=tmp_path / "big.out")

    lines = (tmp_path / "big.out").read_text().splitlines()
    assert len(lines) == 50_000 + (args[-1] == "csv")
    # Fetched in one result, 50,000 rows cost psycopg2 about 17 MiB more.
    assert big - small < 8 * 1024, (small, big)
    assert big < 80 * 1024


# --- hooks with several hosts ----------------------------------------------------------


def hook_config(path: Path, name: str, script: str) -> Path:
    return write_config(path, f"""
        [[hooks]]
        name = "{name}"
        on = "UserCreated"
        command = ["/bin/sh", "-c", {json.dumps(script)}]
    """)


def test_a_delivery_written_on_one_host_is_retried_with_the_config_of_another(tmp_path: Path, postgresql_url: str) -> None:
    ran_a, ran_b = tmp_path / "ran-on-a", tmp_path / "ran-on-b"
    host_a = hook_config(tmp_path / "a.toml", "notify", f'echo "$USERMGR_EVENT_ID" >> {ran_a}; exit 1')
    host_b = hook_config(tmp_path / "b.toml", "notify", f'echo "$USERMGR_EVENT_ID" >> {ran_b}')
    elsewhere = hook_config(tmp_path / "c.toml", "other", "exit 0")

    created = usermgr(postgresql_url, "create", "x@example.com", "--name", "X", "--no-password",
                      env={"USERMGR_CONFIG": str(host_a)})
    event_id = sql(postgresql_url, "SELECT id FROM events")[0][0]
    unknown = usermgr(postgresql_url, "hooks", "retry", env={"USERMGR_CONFIG": str(elsewhere)})
    retried = usermgr(postgresql_url, "hooks", "retry", env={"USERMGR_CONFIG": str(host_b)})

    assert created.returncode == 0 and "notify" in created.stderr
    assert ran_a.read_text().split() == [event_id]
    assert unknown.returncode == 7 and "still fail" in unknown.stderr
    assert retried.returncode == 0, retried.stderr
    assert ran_b.read_text().split() == [event_id]
    assert ran_a.read_text().split() == [event_id]  # host A's command did not run again
    assert sql(postgresql_url, "SELECT count(*) FROM deliveries") == [(0,)]


# --- a server that goes away ----------------------------------------------------------


@pytest.fixture
def own_database(own_server: postgresql.Server) -> Iterator[str]:
    url = postgresql.fresh_database(own_server)
    yield url
    postgresql.release_database(own_server, url)


def wait_for_the_write_lock(url: str, timeout: float = 60) -> None:
    """Until a usermgr transaction holds its write lock (polled from another connection)."""
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND granted"
    deadline = time.monotonic() + timeout
    while sql(url, held, (LOCK_KEY,))[0][0] == 0:
        assert time.monotonic() < deadline, "the import never took the write lock"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_server_stopped_during_an_import_leaves_nothing_half_written(
    tmp_path: Path, own_server: postgresql.Server, own_database: str
) -> None:
    made = usermgr(own_database, "create", "before@example.com", "--name", "Before", "--no-password")
    assert made.returncode == 0, made.stderr
    before = contents(own_database)
    batch = tmp_path / "many.csv"
    rows = "".join(f"many{n}@example.com,Many {n},{FIXED_HASH}\n" for n in range(20_000))
    batch.write_text("email,name,password_hash\n" + rows)
    importing = subprocess.Popen(
        [USERMGR, "import", str(batch)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env={**os.environ, "USERMGR_DB": own_database},
    )
    try:
        wait_for_the_write_lock(own_database)
        own_server.restart()
        stdout, stderr = importing.communicate(timeout=60)
    finally:
        if importing.poll() is None:
            importing.kill()

    assert importing.returncode == 6, stderr
    result = subprocess.CompletedProcess(importing.args, importing.returncode, stdout, stderr)
    line = one_line(result)
    assert line.startswith(f"usermgr: lost the connection to PostgreSQL at {own_database}: ") and "run it again" in line
    assert stdout == ""
    assert contents(own_database) == before
    again = usermgr(own_database, "import", str(batch))
    assert again.returncode == 0, again.stderr
    assert sql(own_database, "SELECT count(*) FROM users") == [(20_001,)]
    assert usermgr(own_database, "events", "verify").stdout.startswith("20001 events, head ")

