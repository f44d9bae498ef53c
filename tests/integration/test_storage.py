"""Real SQLite files in tmp_path: private creation, foreign and newer files left
alone, Unicode uniqueness, indexes, transactions, locks and racing writers."""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import PASSWORD, USERMGR, invoke_app, run_usermgr
from usermgr.application.queries import ListUsers
from usermgr.domain.model import User
from usermgr.domain.values import Email, Role
from usermgr.errors import StorageUnavailable
from usermgr.application.queries import UserFilter
from usermgr.infrastructure.storage.schema import SCHEMA_VERSION
from usermgr.infrastructure.storage.sqlite import SqliteStorage
from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID, open_for_writing
from usermgr.infrastructure.storage.schema import Context
from usermgr.infrastructure.storage.unit_of_work import SqlUnitOfWork
from tests.helpers import sqlite_migration

REAL_CONNECT = sqlite3.connect






def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return invoke_app(runner, *args, input=input)


def create(runner: CliRunner, email: str, name: str = "Test User") -> Result:
    result = invoke(runner, "create", email, "--name", name, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    return result


def one_line(text: str) -> str:
    assert text.endswith("\n") and len(text.splitlines()) == 1, text
    return text.strip()


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = REAL_CONNECT(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def fingerprint(path: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes and mtime, and what sits beside it. In-process commands may
    leave a connection for the garbage collector: close those first, as an exit would."""
    gc.collect()
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


def new_user(email: str = "ada@example.com") -> User:
    return User.create(
        email=Email.parse(email),
        name="Ada",
        role=Role.USER,
        is_active=True,
        password_hash=None,
        now=datetime.now(timezone.utc),
    )


def storage(path: Path, busy_timeout: float = 5.0) -> SqliteStorage:
    return SqliteStorage(path, busy_timeout=busy_timeout, hooks=(), actor="tests", notice=lambda line: None)


def uow(path: Path, busy_timeout: float = 5.0) -> SqlUnitOfWork:
    return storage(path, busy_timeout).unit_of_work(create=True)


def connect(path: Path, busy_timeout: float, *, create: bool):  # type: ignore[no-untyped-def]
    db = open_for_writing(path, busy_timeout, Context(), create=create)
    return db.conn if db is not None else None


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


# --- creation ---------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_a_new_database_file_is_private_whatever_the_umask(tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    path = tmp_path / "deep" / "er" / "users.db"
    result = invoke(CliRunner(), "--db", str(path), "create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert path.parent.is_dir()
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_wal_and_shm_files_are_private_too(tmp_path: Path, umask: Any) -> None:
    umask(0o022)
    path = tmp_path / "users.db"
    conn = connect(path, 5.0, create=True)
    assert conn is not None
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        siblings = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        assert siblings, "a WAL database has -wal and -shm files while open"
        for file in (path, *siblings):
            assert file.stat().st_mode & 0o777 == 0o600, file
    finally:
        conn.close()


def test_a_new_database_has_the_current_schema_version_and_wal_journal(runner: CliRunner, db_path: Path) -> None:
    create(runner, "ada@example.com")
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert query(db_path, "PRAGMA application_id")[0][0] != 0


def test_a_sqlite_url_names_the_database_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "by-url" / "users.db"
    result = invoke(runner, "--db", f"sqlite:///{path}", "create", "ada@example.com", "--name", "Ada", "--no-password")
    assert result.exit_code == 0, result.stderr
    assert query(path, "SELECT email FROM users") == [("ada@example.com",)]


# --- the read path creates nothing -------------------------------------------------


def test_reading_a_missing_database_finds_nothing_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "not" / "there" / "users.db"
    views = storage(path).users
    page = views.page(UserFilter(), 1, 20)
    assert (page.items, page.total) == ([], 0)
    assert list(views.stream(UserFilter())) == []
    assert views.get_by_email_key("ada@example.com") is None
    assert views.credentials_by_email_key("ada@example.com") is None
    assert not (tmp_path / "not").exists()


@pytest.mark.parametrize(
    "args, code",
    [
        (["list"], 0),
        (["list", "--all", "--format", "csv"], 0),
        (["show", "ada@example.com"], 3),
        (["verify", "ada@example.com", "--password-stdin"], 5),
    ],
)
def test_read_commands_on_a_missing_database_create_nothing(
    runner: CliRunner, tmp_path: Path, args: list[str], code: int
) -> None:
    path = tmp_path / "not" / "there" / "users.db"
    result = invoke(runner, "--db", str(path), *args, input=PASSWORD + "\n")
    assert result.exit_code == code, result.stderr
    assert not (tmp_path / "not").exists()


# --- files that are not ours are never written to --------------------------------


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
]


def random_bytes_file(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def text_file(path: Path) -> None:
    path.write_text("ada@example.com,Ada\n" * 50)


def foreign_database(path: Path) -> None:
    conn = REAL_CONNECT(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()


def foreign_application_id(path: Path) -> None:
    conn = REAL_CONNECT(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("make", [random_bytes_file, text_file, foreign_database, foreign_application_id])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_file_that_is_not_a_usermgr_database_exits_6_and_is_left_untouched(
    runner: CliRunner, db_path: Path, make: Any, args: list[str]
) -> None:
    make(db_path)
    before = fingerprint(db_path)
    result = invoke(runner, *args, input=PASSWORD + "\n")
    assert result.exit_code == 6, (result.stdout, result.stderr)
    assert str(db_path) in one_line(result.stderr)
    assert result.stdout == ""
    assert fingerprint(db_path) == before


@pytest.mark.parametrize("make", [random_bytes_file, foreign_database])
def test_the_adapters_raise_storage_unavailable_on_a_foreign_file(db_path: Path, make: Any) -> None:
    make(db_path)
    before = fingerprint(db_path)
    with pytest.raises(StorageUnavailable):
        connect(db_path, 5.0, create=True)
    with pytest.raises(StorageUnavailable):
        storage(db_path).users.page(UserFilter(), 1, 20)
    with pytest.raises(StorageUnavailable):
        with uow(db_path) as work:
            work.users.add(new_user())
            work.commit()
    assert fingerprint(db_path) == before


@pytest.fixture
def newer_database(runner: CliRunner, db_path: Path) -> Path:
    create(runner, "ada@example.com")
    gc.collect()
    conn = REAL_CONNECT(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    return db_path


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_database_of_a_newer_schema_exits_6_and_is_left_untouched(
    runner: CliRunner, newer_database: Path, args: list[str]
) -> None:
    before = fingerprint(newer_database)
    result = invoke(runner, *args, input=PASSWORD + "\n")
    assert result.exit_code == 6, (result.stdout, result.stderr)
    line = one_line(result.stderr).lower()
    assert "version" in line or "newer" in line
    assert fingerprint(newer_database) == before
    assert query(newer_database, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


def test_a_directory_as_database_exits_6(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "folder.db"
    folder.mkdir()
    for args in (["list"], ["create", "ada@example.com", "--name", "Ada", "--no-password"]):
        result = invoke(runner, "--db", str(folder), *args)
        assert result.exit_code == 6, (result.stdout, result.stderr)
        one_line(result.stderr)
    assert list(folder.iterdir()) == []


def test_an_older_schema_is_migrated_on_first_use_and_keeps_its_users(runner: CliRunner, db_path: Path) -> None:
    import bcrypt

    conn = REAL_CONNECT(db_path, isolation_level=None)
    for statement in sqlite_migration(1):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(
        "INSERT INTO users (id, email, email_key, name, role, is_active, password_hash, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "6f1f2a1e-0000-4000-8000-000000000001", "Ada@example.com", "ada@example.com", "Ada", "admin", 1,
            bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(), "2024-01-02T03:04:05.000006Z", None,
        ),
    )
    conn.close()
    if SCHEMA_VERSION == 1:
        pytest.skip("there is no older schema yet")
    listed = invoke(runner, "list", "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [(u["email"], u["role"], u["created_at"]) for u in json.loads(listed.stdout)["items"]] == [
        ("Ada@example.com", "admin", "2024-01-02T03:04:05.000006Z")
    ]
    assert query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert invoke(runner, "verify", "ADA@example.com", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    renamed = invoke(runner, "update", "ada@example.com", "--name", "Ada L")
    assert renamed.exit_code == 0, renamed.stderr


# --- uniqueness --------------------------------------------------------------------


def test_uniqueness_uses_a_casefolded_email_key(runner: CliRunner, db_path: Path) -> None:
    create(runner, "Élise@example.com")
    result = invoke(runner, "create", "élise@example.com", "--name", "Other", "--no-password")
    assert result.exit_code == 4, result.stderr
    one_line(result.stderr)
    assert query(db_path, "SELECT email, email_key FROM users") == [("Élise@example.com", "élise@example.com")]


def test_the_email_key_is_unique_in_the_schema_itself(runner: CliRunner, db_path: Path) -> None:
    create(runner, "ada@example.com")
    conn = REAL_CONNECT(db_path)
    try:
        row = conn.execute("SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users").fetchone()
        columns = [c[1] for c in conn.execute("PRAGMA table_info(users)")]
        copy = dict(zip(columns, row), id="another-id", email="ADA@example.com")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                f"INSERT INTO users ({', '.join(copy)}) VALUES ({', '.join('?' * len(copy))})",
                tuple(copy.values()),
            )
    finally:
        conn.close()


# --- indexes for the list order ----------------------------------------------------


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
    runner: CliRunner, db_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    for i in range(3):
        invoke(runner, "create", f"u{i}@example.com", "--name", f"U{i}", "--no-password")
    statements: list[str] = []

    def traced(*a: Any, **kw: Any) -> sqlite3.Connection:
        conn = REAL_CONNECT(*a, **kw)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    result = invoke(runner, "list", *args)
    monkeypatch.setattr(sqlite3, "connect", REAL_CONNECT)
    assert result.exit_code == 0, result.stderr
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


# --- transactions ------------------------------------------------------------------


def test_a_unit_of_work_that_is_not_committed_rolls_back(db_path: Path) -> None:
    with uow(db_path) as work:
        work.users.add(new_user())
    assert query(db_path, "SELECT count(*) FROM users") == [(0,)]


def test_a_unit_of_work_that_raises_rolls_back(db_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with uow(db_path) as work:
            work.users.add(new_user())
            raise RuntimeError("boom")
    assert query(db_path, "SELECT count(*) FROM users") == [(0,)]


def test_a_committed_unit_of_work_is_durable(db_path: Path) -> None:
    with uow(db_path) as work:
        work.users.add(new_user())
        work.commit()
    assert query(db_path, "SELECT email FROM users") == [("ada@example.com",)]


def test_a_unit_of_work_holds_the_write_lock_from_its_start(db_path: Path) -> None:
    with uow(db_path) as first:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="busy"):
            with uow(db_path, busy_timeout=0.2) as second:
                second.users.add(new_user("grace@example.com"))
                second.commit()
        assert time.monotonic() - started >= 0.15
        first.users.add(new_user())
        first.commit()
    assert query(db_path, "SELECT email FROM users") == [("ada@example.com",)]


def test_a_writer_killed_mid_transaction_leaves_the_database_intact(runner: CliRunner, db_path: Path) -> None:
    create(runner, "ada@example.com")
    script = textwrap.dedent(
        f"""
        import sys, time
        from datetime import datetime, timezone
        from pathlib import Path
        from usermgr.domain.model import User
        from usermgr.domain.values import Email, Role
        from usermgr.infrastructure.storage.sqlite import SqliteStorage
        work = SqliteStorage(Path({str(db_path)!r}), busy_timeout=5.0, hooks=(), actor="tests", notice=print).unit_of_work(True)
        with work:
            work.users.add(User.create(email=Email.parse("grace@example.com"), name="G",
                role=Role.USER, is_active=True, password_hash=None, now=datetime.now(timezone.utc)))
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=10)
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert query(db_path, "SELECT email FROM users") == [("ada@example.com",)]
    create(runner, "grace@example.com")
    assert len(query(db_path, "SELECT id FROM users")) == 2


# --- locks ---------------------------------------------------------------------------


@pytest.fixture
def write_lock(runner: CliRunner, db_path: Path, config_path: Path):
    """An existing database whose write lock another connection holds; busy_timeout 0.5 s."""
    create(runner, "ada@example.com")
    config_path.write_text("[security]\nbcrypt_rounds = 4\n\n[database]\nbusy_timeout = 0.5\n")
    holder = REAL_CONNECT(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE users SET name = 'uncommitted'")
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_usermgr_create_waits_the_busy_timeout_then_exits_6_and_writes_nothing(
    write_lock: sqlite3.Connection, db_path: Path
) -> None:
    before = query(db_path, "SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users")
    started = time.monotonic()
    result = run_usermgr("create", "grace@example.com", "--name", "Grace", "--password-stdin", input=PASSWORD + "\n")
    elapsed = time.monotonic() - started
    assert result.returncode == 6, result.stderr
    assert "busy" in one_line(result.stderr).lower()
    assert result.stdout == ""
    assert 0.5 <= elapsed < 4.5
    write_lock.execute("ROLLBACK")
    assert query(db_path, "SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users") == before


@pytest.mark.parametrize(
    "args",
    [
        ["update", "ada@example.com", "--name", "Ada L"],
        ["set-role", "ada@example.com", "admin"],
        ["deactivate", "ada@example.com"],
        ["passwd", "ada@example.com", "--password-stdin"],
        ["delete", "ada@example.com", "--yes"],
    ],
    ids=lambda a: a[0],
)
def test_every_writer_gives_up_after_the_busy_timeout_with_exit_6(
    runner: CliRunner, write_lock: sqlite3.Connection, db_path: Path, args: list[str]
) -> None:
    before = query(db_path, "SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users")
    started = time.monotonic()
    result = invoke(runner, *args, input="another long passphrase\n")
    assert time.monotonic() - started >= 0.5
    assert result.exit_code == 6, result.stderr
    assert "busy" in one_line(result.stderr).lower()
    write_lock.execute("ROLLBACK")
    assert query(db_path, "SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users") == before


def test_a_reader_is_not_blocked_by_a_writer_and_sees_only_committed_data(write_lock: sqlite3.Connection) -> None:
    result = run_usermgr("list", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert "ada@example.com" in result.stdout
    assert "uncommitted" not in result.stdout


@pytest.mark.slow
def test_processes_racing_to_create_one_email_give_one_user_and_exit_4_for_the_rest(tmp_path: Path) -> None:
    for round in range(3):
        # Round 0 also races to create the database file and its schema.
        path = tmp_path / f"race{round % 2}.db"
        email = f"race{round}@example.com"
        args = [USERMGR, "--db", str(path), "create", email, "--name", "Racer", "--password-stdin"]
        children = [
            subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        outputs = [child.communicate(PASSWORD + "\n", timeout=60) for child in children]
        codes = sorted(child.returncode for child in children)
        assert codes == [0, 4, 4], (round, codes, outputs)
        for (stdout, stderr), child in zip(outputs, children):
            assert "Traceback" not in stderr and "$2b$" not in stdout + stderr
            if child.returncode == 4:
                one_line(stderr)
        assert query(path, "SELECT count(*) FROM users WHERE email = ?", (email,)) == [(1,)]
