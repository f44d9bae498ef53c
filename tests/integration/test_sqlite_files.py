"""The SQLite file itself: private creation, WAL, what a missing file's readers create
(nothing), files that are not a usermgr database (left byte for byte), paths that
cannot be one, the list query's indexes, schema migrations, a damaged page, kill -9 of
a writer, and a backup onto the database itself. The database is inspected with the
sqlite3 driver (read-only) or os.stat, never with Python file calls while a usermgr
connection has it open. What every engine does is in test_storage_contract.py."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    PASSWORD,
    USERMGR,
    Cli,
    bcrypt_hash,
    one_line,
    seed_users,
    sqlite_migration,
    sqlite_query,
)
from usermgr.application.queries import UserFilter
from usermgr.domain.model import User
from usermgr.domain.values import Email, Role
from usermgr.errors import StorageUnavailable
from usermgr.infrastructure.storage.schema import SCHEMA_VERSION, Context
from usermgr.infrastructure.storage.sqlite import SqliteStorage
from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID, migrate, open_for_writing
from usermgr.infrastructure.storage.sqlite.errors import SqliteDatabase

REAL_CONNECT = sqlite3.connect


def fingerprint(path: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes and mtime, and what sits beside it."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


def storage(path: Path, busy_timeout: float = 5.0) -> SqliteStorage:
    return SqliteStorage(path, busy_timeout=busy_timeout, hooks=(), actor="tests", notice=lambda line: None)


def new_user(email: str = "ada@example.com") -> User:
    return User.create(
        email=Email.parse(email), name="Ada", role=Role.USER, is_active=True, password_hash=None,
        now=datetime.now(timezone.utc),
    )


def checkpoint(db: Path) -> None:
    """Fold the WAL into the main file, so the file alone holds everything."""
    conn = REAL_CONNECT(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


# --- creation ---------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask 022", "umask 000"])
def test_a_new_database_file_and_its_folders_are_private_whatever_the_umask(
    cli: Cli, tmp_path: Path, umask: Callable[[int], int], mask: int
) -> None:
    umask(mask)
    path = tmp_path / "deep" / "er" / "users.db"
    cli.ok("--db", str(path), "create", "ada@example.com", "--name", "Ada", "--no-password")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "deep").stat().st_mode & 0o777 == (tmp_path / "deep" / "er").stat().st_mode & 0o777 == 0o700


def test_the_wal_and_shm_files_are_private_too(tmp_path: Path, umask: Callable[[int], int]) -> None:
    umask(0o022)
    path = tmp_path / "users.db"
    db = open_for_writing(path, 5.0, Context(), create=True)
    assert db is not None
    try:
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute("ROLLBACK")
        siblings = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        assert siblings, "a WAL database has -wal and -shm files while open"
        for file in (path, *siblings):
            assert file.stat().st_mode & 0o777 == 0o600, file
    finally:
        db.close()


def test_a_new_database_has_the_current_schema_version_the_mark_and_a_wal_journal(cli: Cli, db_path: Path) -> None:
    cli.create("ada@example.com", "Ada")
    assert sqlite_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert sqlite_query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert sqlite_query(db_path, "PRAGMA application_id") == [(APPLICATION_ID,)]


def test_a_sqlite_url_names_the_database_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "by-url" / "users.db"
    cli.ok("--db", f"sqlite:///{path}", "create", "ada@example.com", "--name", "Ada", "--no-password")
    assert sqlite_query(path, "SELECT email FROM users") == [("ada@example.com",)]


def test_an_existing_empty_file_others_may_read_is_refused_and_left_as_it_was(cli: Cli, db_path: Path) -> None:
    db_path.touch()
    os.chmod(db_path, 0o644)
    result = cli("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert result.exit_code == 6, result.output
    assert "others may read (mode 0644)" in result.stderr and "chmod 600" in result.stderr
    assert os.stat(db_path).st_mode & 0o777 == 0o644 and db_path.stat().st_size == 0


def test_an_existing_empty_private_file_becomes_the_database_and_keeps_its_mode(cli: Cli, db_path: Path) -> None:
    db_path.touch()
    os.chmod(db_path, 0o600)
    cli.ok("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert os.stat(db_path).st_mode & 0o777 == 0o600
    assert cli.json("show", "ada@example.com", "--json")["email"] == "ada@example.com"


# --- what finds no database creates none ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["list"], 0),
        (["list", "--all", "--format", "csv"], 0),
        (["show", "ada@example.com"], 3),
        (["verify", "ada@example.com", "--password-stdin"], 5),
        (["events"], 0),
        (["events", "--limit", "0"], 2),
        (["hooks", "list"], 0),
        (["export"], 0),
        (["db", "check"], 6),
        (["activate", "nobody@example.com"], 3),
        (["set-role", "nobody@example.com", "admin"], 3),
        (["update", "nobody@example.com", "--name", "Nobody"], 3),
        (["passwd", "nobody@example.com", "--password-stdin"], 3),
        (["delete", "nobody@example.com", "--yes"], 3),
        (["import", "-", "--dry-run"], 0),
    ],
    ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else None,
)
def test_a_command_that_finds_no_database_creates_none(cli: Cli, tmp_path: Path, args: list[str], code: int) -> None:
    path = tmp_path / "not" / "there" / "users.db"
    stdin = "email,name\nada@example.com,Ada\n" if args[0] == "import" else PASSWORD + "\n"
    result = cli("--db", str(path), *args, input=stdin)
    assert result.exit_code == code, result.stderr
    if code:
        one_line(result.stderr)
    assert not (tmp_path / "not").exists()


def test_a_write_creates_the_database_where_a_dry_run_did_not(cli: Cli, db_path: Path) -> None:
    assert "would have created 1" in cli.ok("import", "-", "--dry-run", input="email,name\nada@example.com,Ada\n").stdout
    assert not db_path.exists()
    cli.ok("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert db_path.exists()


# --- files that are not a usermgr database, or not of this version ----------------------------


@pytest.fixture(scope="module")
def real_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A usermgr database of 300 users, its WAL folded in: the file alone is everything."""
    db = tmp_path_factory.mktemp("real") / "real.db"
    seed_users(300, location=str(db))
    checkpoint(db)
    return db


def make_random(path: Path, real: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(16384))


def make_text(path: Path, real: Path) -> None:
    path.write_text("ada@example.com,Ada\n" * 50)


def make_truncated(path: Path, real: Path) -> None:
    data = real.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_newer(path: Path, real: Path) -> None:
    shutil.copyfile(real, path)
    conn = REAL_CONNECT(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    checkpoint(path)


def make_foreign(path: Path, real: Path) -> None:
    conn = REAL_CONNECT(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('not yours')")
    conn.commit()
    conn.close()


def make_foreign_users_table(path: Path, real: Path) -> None:
    """Another application's file that happens to have a `users` table, no application_id."""
    conn = REAL_CONNECT(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('ada@example.com')")
    conn.commit()
    conn.close()


def make_foreign_application_id(path: Path, real: Path) -> None:
    conn = REAL_CONNECT(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


DAMAGE = {
    "random bytes": make_random,
    "a text file": make_text,
    "truncated to half": make_truncated,
    "newer schema": make_newer,
    "another application's sqlite file": make_foreign,
    "another application's users table": make_foreign_users_table,
    "another application id": make_foreign_application_id,
}
COMMANDS = [
    ["list"],
    ["list", "--all", "--format", "jsonl"],
    ["show", "ada@example.com"],
    ["create", "ada@example.com", "--name", "Ada", "--password-stdin"],
    ["update", "ada@example.com", "--name", "Ada L"],
    ["deactivate", "ada@example.com"],
    ["passwd", "ada@example.com", "--password-stdin"],
    ["verify", "ada@example.com", "--password-stdin"],
    ["delete", "ada@example.com", "--yes"],
    ["db", "check"],
    ["db", "upgrade"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_file_that_is_not_a_usermgr_database_of_this_version_is_exit_6_and_left_byte_for_byte(
    cli: Cli, tmp_path: Path, real_database: Path, damage: str, args: list[str]
) -> None:
    path = tmp_path / "damaged.db"
    DAMAGE[damage](path, real_database)
    before = fingerprint(path)

    result = cli("--db", str(path), *args, input=PASSWORD + "\n")

    assert result.exit_code == 6, (result.stdout, result.stderr)
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert str(path) in line
    if damage == "newer schema":
        assert "newer" in line and "upgrade usermgr" in line, line
    if damage.startswith("another application"):
        assert "not a usermgr database" in line, line
    if damage == "truncated to half":
        # A writer's BEGIN on this damaged WAL database makes SQLite leave an empty
        # -wal (and its -shm index) behind: nothing was written, the file is as it was.
        assert fingerprint(path)[:2] == before[:2]
        assert wal_size(path) == 0
    else:
        assert fingerprint(path) == before


@pytest.mark.parametrize("make", [make_random, make_foreign], ids=["random bytes", "a foreign database"])
def test_the_adapters_raise_storage_unavailable_on_a_foreign_file(db_path: Path, real_database: Path, make: Any) -> None:
    make(db_path, real_database)
    before = fingerprint(db_path)
    with pytest.raises(StorageUnavailable):
        open_for_writing(db_path, 5.0, Context(), create=True)
    with pytest.raises(StorageUnavailable):
        storage(db_path).users.page(UserFilter(), 1, 20)
    with pytest.raises(StorageUnavailable):
        with storage(db_path).unit_of_work(create=True) as work:
            work.users.add(new_user())
            work.commit()
    assert fingerprint(db_path) == before


@pytest.mark.parametrize("where", ["a directory", "below a regular file"])
@pytest.mark.parametrize(
    "args",
    [["list"], ["create", "ada@example.com", "--name", "Ada", "--no-password"], ["db", "check"], ["db", "upgrade"]],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_path_that_cannot_be_a_database_file_is_exit_6_and_left_as_it_was(
    cli: Cli, tmp_path: Path, where: str, args: list[str]
) -> None:
    if where == "a directory":
        path = tmp_path / "folder.db"
        path.mkdir()
    else:
        (tmp_path / "a-file").write_text("I am a regular file\n")
        path = tmp_path / "a-file" / "sub" / "users.db"
    before = sorted(os.listdir(tmp_path)), (tmp_path / "a-file").read_bytes() if where != "a directory" else b""

    result = cli("--db", str(path), *args)

    assert result.exit_code == 6, (result.stdout, result.stderr)
    assert str(path) in one_line(result.stderr)
    after = sorted(os.listdir(tmp_path)), (tmp_path / "a-file").read_bytes() if where != "a directory" else b""
    assert after == before
    if where == "a directory":
        assert list(path.iterdir()) == []


def test_db_check_finds_a_damaged_page_inside_an_otherwise_readable_file(cli: Cli, tmp_path: Path, real_database: Path) -> None:
    path = tmp_path / "corrupt.db"
    shutil.copyfile(real_database, path)
    page_size = sqlite_query(path, "PRAGMA page_size")[0][0]
    pages = path.stat().st_size // page_size
    data = bytearray(path.read_bytes())
    victim = pages // 2  # some b-tree page in the middle of the file
    data[victim * page_size + 8 : victim * page_size + 200] = random.Random(3).randbytes(192)
    path.write_bytes(bytes(data))
    before = fingerprint(path)

    result = cli("--db", str(path), "db", "check")

    assert result.exit_code == 6, result.stdout
    one_line(result.stderr)
    assert fingerprint(path) == before


def test_db_backup_onto_the_database_itself_is_refused_and_changes_nothing(cli: Cli, db_path: Path) -> None:
    cli.create("ada@example.com", "Ada", password=None)
    checkpoint(db_path)
    before = cli.state(), db_path.read_bytes()
    result = cli("db", "backup", str(db_path), "--force")
    assert result.exit_code == 2, result.stderr
    one_line(result.stderr)
    assert (cli.state(), db_path.read_bytes()) == before
    assert cli.ok("db", "check").stdout.startswith("ok: ")


def test_db_backup_to_a_dangling_symlink_needs_force_like_any_existing_path(cli: Cli, tmp_path: Path) -> None:
    cli.create("ada@example.com", "Ada", password=None)
    link = tmp_path / "backup.db"
    link.symlink_to(tmp_path / "nowhere")
    result = cli("db", "backup", str(link))
    assert result.exit_code == 2 and "add --force" in one_line(result.stderr)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    cli.ok("db", "backup", str(link), "--force")
    assert not link.is_symlink() and link.stat().st_mode & 0o777 == 0o600


def test_db_backup_onto_a_full_disk_names_the_backup_and_leaves_no_file(cli: Cli, tmp_path: Path) -> None:
    seed_users(3000)
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("a small tmpfs needs root (mount)")
    try:
        result = cli("db", "backup", str(small / "bk.db"))
        assert result.exit_code == 6, result.output
        assert one_line(result.stderr) == f"usermgr: cannot write the backup {small / 'bk.db'}: the disk is full"
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


# --- the list query's indexes --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--page", "3", "--per-page", "2"],
        ["--role", "admin"],
        ["--active"],
        ["--inactive", "--role", "user"],
        ["--all", "--format", "jsonl"],
        ["--all", "--role", "moderator", "--format", "csv"],
    ],
)
def test_the_list_query_reads_an_index_in_order_without_a_temporary_sort(
    cli: Cli, db_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    for i in range(3):
        cli.create(f"u{i}@example.com", f"U{i}", password=None)
    statements: list[str] = []

    def traced(*a: Any, **kw: Any) -> sqlite3.Connection:
        conn = REAL_CONNECT(*a, **kw)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    cli.ok("list", *args)
    monkeypatch.setattr(sqlite3, "connect", REAL_CONNECT)
    ordered = [s for s in statements if "ORDER BY" in s.upper() and "FROM USERS" in s.upper()]
    assert ordered, statements
    conn = REAL_CONNECT(db_path)
    try:
        for statement in ordered:
            plan = " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "TEMP B-TREE" not in plan, (statement, plan)
            assert "INDEX" in plan, (statement, plan)
    finally:
        conn.close()


# --- migrations --------------------------------------------------------------------------------

V1_COLUMNS = "id, email, email_key, name, role, is_active, password_hash, created_at, updated_at"


@pytest.fixture
def version_1(db_path: Path) -> tuple[Any, ...]:
    """A database as the first release wrote it, with one user; returns that user's row."""
    old_user = (
        "5f0c7a52-2f5e-4e8a-9a43-2b8f6f1f0a11", "Old.Timer@example.com", "old.timer@example.com", "Old Timer",
        "admin", 1, bcrypt_hash(), "2024-05-06T07:08:09.000000Z", None,
    )
    conn = REAL_CONNECT(db_path)
    for statement in sqlite_migration(1):
        conn.execute(statement)
    conn.execute(f"INSERT INTO users ({V1_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", old_user)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.commit()
    conn.close()
    return old_user


def tables(db: Path) -> set[str]:
    return {r[0] for r in sqlite_query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_any_command_migrates_a_version_1_database_first_and_keeps_its_users(
    cli: Cli, db_path: Path, version_1: tuple[Any, ...]
) -> None:
    items = cli.json("list", "--format", "json")["items"]

    assert [(u["id"], u["email"], u["name"], u["role"], u["is_active"], u["created_at"]) for u in items] == [
        (version_1[0], version_1[1], version_1[3], version_1[4], True, version_1[7])
    ]
    assert sqlite_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert {"users", "events", "deliveries"} <= tables(db_path)
    assert sqlite_query(db_path, f"SELECT {V1_COLUMNS} FROM users") == [version_1]
    # Version 3 keeps a case-folded copy of each name for search, filled in by the migration.
    assert sqlite_query(db_path, "SELECT name_key FROM users") == [("old timer",)]
    assert cli.verify("OLD.TIMER@example.com", PASSWORD) == 0
    assert cli.ok("db", "check").stdout.startswith("ok: ")


def test_a_write_on_a_version_1_database_migrates_and_records_its_event(
    cli: Cli, db_path: Path, version_1: tuple[Any, ...]
) -> None:
    cli.ok("deactivate", "old.timer@example.com")
    assert sqlite_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert [(e["type"], e["user_id"]) for e in cli.events()] == [("UserDeactivated", version_1[0])]


def test_db_upgrade_reports_the_upgrade_then_that_it_is_up_to_date(
    cli: Cli, db_path: Path, version_1: tuple[Any, ...]
) -> None:
    first = cli.ok("db", "upgrade").stdout
    assert first == f"schema version {SCHEMA_VERSION} (upgraded from 1)\n"
    assert sqlite_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert cli.ok("db", "upgrade").stdout == f"schema version {SCHEMA_VERSION}, up to date\n"
    assert sqlite_query(db_path, f"SELECT {V1_COLUMNS} FROM users") == [version_1]


def test_a_migration_that_cannot_take_the_lock_is_exit_6_and_leaves_version_1(
    cli: Cli, db_path: Path, config_path: Path, version_1: tuple[Any, ...]
) -> None:
    config_path.write_text("[security]\nbcrypt_rounds = 4\n\n[database]\nbusy_timeout = 0.3\n")
    holder = REAL_CONNECT(db_path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = cli("db", "upgrade")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 6, result.stdout
    assert "busy" in one_line(result.stderr)
    assert sqlite_query(db_path, "PRAGMA user_version") == [(1,)]
    assert tables(db_path) == {"users"}


def test_migrate_does_not_downgrade_a_schema_made_newer_while_it_waited(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    setup = REAL_CONNECT(path)
    setup.execute("CREATE TABLE from_the_future (x INTEGER)")
    setup.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    setup.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    setup.commit()
    setup.close()
    conn = REAL_CONNECT(path, isolation_level=None)
    try:
        with pytest.raises(StorageUnavailable):
            migrate(SqliteDatabase(conn, path), Context())
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert not conn.in_transaction
    finally:
        conn.close()
    assert sqlite_query(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]
    assert sqlite_query(path, "PRAGMA application_id") == [(APPLICATION_ID,)]


# --- kill -9 of a writer ---------------------------------------------------------------------

KILL_ROWS = 20_000
UNCOMMITTED = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timezone
    from pathlib import Path
    from usermgr.domain.model import User
    from usermgr.domain.values import Email, Role
    from usermgr.infrastructure.storage.sqlite import SqliteStorage
    work = SqliteStorage(Path(sys.argv[1]), busy_timeout=5.0, hooks=(), actor="tests", notice=print).unit_of_work(True)
    with work:
        work.users.add(User.create(email=Email.parse("grace@example.com"), name="G",
            role=Role.USER, is_active=True, password_hash=None, now=datetime.now(timezone.utc)))
        print("ready", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "big.csv"
    password_hash = bcrypt_hash()
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["email", "name", "password_hash"])
        writer.writerows([f"bulk{i}@example.com", f"Bulk user {i}", password_hash] for i in range(KILL_ROWS))
    return path


def wal_size(db: Path) -> int:
    try:
        return os.stat(f"{db}-wal").st_size
    except FileNotFoundError:
        return 0


def killed_import(db: Path, source: Path, ready: Callable[[], bool]) -> None:
    """Start an import and SIGKILL it as soon as `ready()`."""
    process = subprocess.Popen([USERMGR, "--db", str(db), "import", str(source)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    killed = False
    try:
        while process.poll() is None and time.monotonic() - started < 60:
            if ready():
                process.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None and not killed:
            process.kill()
        process.communicate(timeout=30)
    assert killed, "the import finished before it could be killed"
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment", ["holding one uncommitted user", "as the import's first page reaches the WAL", "with 8 MiB of the import in the WAL"]
)
def test_kill_9_of_a_writer_leaves_all_its_rows_or_none_and_a_sound_database(
    cli: Cli, db_path: Path, big_csv: Path, moment: str
) -> None:
    cli.create("seed@example.com", "Seed", password=None)
    checkpoint(db_path)
    assert wal_size(db_path) == 0

    if moment.startswith("holding"):
        child = subprocess.Popen([sys.executable, "-c", UNCOMMITTED, str(db_path)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=10)
        possible = {1}  # it never committed
    else:
        limit = 0 if "first page" in moment else 8 * 1024 * 1024
        killed_import(db_path, big_csv, lambda: wal_size(db_path) > limit)
        possible = {1, 1 + KILL_ROWS}

    assert cli.ok("db", "check").stdout.startswith("ok: ")
    assert sqlite_query(db_path, "PRAGMA integrity_check") == [("ok",)]
    users = cli.listing()["total"]
    assert users in possible, users
    # Users and their events were committed together, or neither.
    assert len(cli.events("--type", "UserCreated", "--limit", "100000")) == users
    # The database still takes writes.
    cli.create("after@example.com", "After", password=None)
    assert json.loads(cli.ok("show", "after@example.com", "--json").stdout)["name"] == "After"
