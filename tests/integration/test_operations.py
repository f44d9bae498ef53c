"""Operations: the installed `usermgr` under concurrent writers, a held lock, kill -9,
damaged or foreign files, online backups and schema migrations. Everything here
drives real processes against real SQLite files; the database is inspected with
the sqlite3 driver (read-only) or os.stat, never with Python file calls while a
usermgr process has it open."""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import PASSWORD, USERMGR, run_usermgr
from usermgr.cli import app
from tests.helpers import sqlite_migration
from usermgr.infrastructure.storage.schema import SCHEMA_VERSION
from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID

BUSY_CONFIG = "[security]\nbcrypt_rounds = 4\n\n[database]\nbusy_timeout = 0.5\n"


# --- helpers ------------------------------------------------------------------------


def usermgr(*args: str, db: Path | None = None, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {"USERMGR_DB": str(db)} if db is not None else None
    result = run_usermgr(*args, input=input, env=env, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def usermgr_ok(*args: str, db: Path | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = usermgr(*args, db=db, input=input)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


RUNNER = CliRunner()


def seed(*args: str, input: str | None = None) -> None:
    """Set-up in-process, without a process start-up: what a test checks runs the installed program."""
    result = RUNNER.invoke(app, list(args), input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    gc.collect()  # close the in-process connection now


def popen(*args: str, db: Path | None = None, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    env = {**os.environ, **({"USERMGR_DB": str(db)} if db is not None else {})}
    return subprocess.Popen(
        [USERMGR, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = read_only(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def user_rows(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users ORDER BY id")


def event_rows(db: Path) -> list[tuple[Any, ...]]:
    return query(db, "SELECT * FROM events ORDER BY seq")


def created_events(db: Path) -> list[str]:
    """The user_id of every UserCreated event."""
    return [r[0] for r in query(db, "SELECT user_id FROM events WHERE type = 'UserCreated' ORDER BY seq")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].strip(), result.stderr
    return lines[0]


def csv_text(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    return ",".join(header) + "\n" + "".join(",".join(r[c] for c in header) + "\n" for r in rows)


def bcrypt_hash(password: str = PASSWORD) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def checkpoint(db: Path) -> None:
    """Fold the WAL into the main file, so the file alone holds everything."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def finish(processes: list[subprocess.Popen[str]], inputs: list[str | None] | None = None, timeout: float = 120) -> list[tuple[int, str, str]]:
    outcomes = []
    for i, process in enumerate(processes):
        out, err = process.communicate(input=inputs[i] if inputs else None, timeout=timeout)
        assert "Traceback" not in err, err
        outcomes.append((process.returncode, out, err))
    return outcomes


@pytest.fixture
def busy_config(config_path: Path) -> Path:
    config_path.write_text(BUSY_CONFIG)
    return config_path


# --- concurrency ----------------------------------------------------------------------

FIVE = [f"shared{i}@example.com" for i in range(5)]
SPELLINGS = [str.lower, str.upper, str.title, lambda e: e.split("@")[0] + "@EXAMPLE.com"]


def created_count(args: tuple[str, ...], code: int, out: str) -> int:
    """How many users one finished process says it created."""
    if code != 0:
        return 0
    if args[0] == "import":
        return int(out.split("created ")[1].split(",")[0])
    return 1 if json.loads(out)["created"] else 0


def race(db: Path, commands: list[tuple[str, ...]], data: str) -> list[tuple[tuple[str, ...], int, str, str]]:
    """Start every command before feeding any its input, so they overlap."""
    processes = [popen(*args, db=db, stdin=subprocess.PIPE) for args in commands]
    outcomes = finish(processes, [data if args[0] == "import" else "" for args in commands])
    return [(args, code, out, err) for args, (code, out, err) in zip(commands, outcomes)]


def shared_users(db: Path) -> dict[str, str]:
    return {key: user_id for user_id, key in query(db, "SELECT id, email_key FROM users WHERE email_key LIKE 'shared%'")}


@pytest.mark.slow
def test_ten_concurrent_writers_of_the_same_five_emails_with_exists_ok_create_each_user_exactly_once(db_path: Path) -> None:
    seed("create", "seed@example.com", "--name", "Seed", "--no-password")
    data = csv_text([
        {"email": SPELLINGS[i % 4](email), "name": f"Shared {i}", "password": PASSWORD}
        for i, email in enumerate(FIVE)
    ])
    commands = [("import", "-", "--exists-ok")] * 6 + [
        ("create", SPELLINGS[i](FIVE[i]), "--name", f"Creator {i}", "--no-password", "--exists-ok", "--json")
        for i in range(4)
    ]
    outcomes = race(db_path, commands, data)

    assert [code for _, code, _, _ in outcomes] == [0] * len(commands), outcomes
    users = shared_users(db_path)
    assert sorted(users) == FIVE
    assert sum(created_count(args, code, out) for args, code, out, _ in outcomes) == 5
    seed_id = query(db_path, "SELECT id FROM users WHERE email_key = 'seed@example.com'")[0][0]
    assert Counter(created_events(db_path)) == Counter([seed_id, *users.values()])
    assert usermgr("verify", FIVE[4], "--password-stdin", input=PASSWORD + "\n").returncode == 0


@pytest.mark.slow
def test_eight_concurrent_writers_without_exists_ok_exit_0_or_4_and_never_duplicate_a_user(db_path: Path) -> None:
    seed("create", "seed@example.com", "--name", "Seed", "--no-password")
    data = csv_text([{"email": email, "name": f"Shared {i}"} for i, email in enumerate(FIVE)])
    commands = [("import", "-")] * 4 + [
        ("create", SPELLINGS[i](FIVE[i % 2]), "--name", f"Creator {i}", "--no-password", "--json")
        for i in range(4)
    ]
    outcomes = race(db_path, commands, data)

    assert {code for _, code, _, _ in outcomes} <= {0, 4}, outcomes
    for _, code, out, err in outcomes:
        if code == 4:
            assert out == "" and "exists" in err, err
    winners = [args[0] for args, code, _, _ in outcomes if code == 0]
    users = shared_users(db_path)
    # An import is all or nothing: either one import wrote all five and everyone else
    # found an email taken, or a create came first and one create per email won.
    assert (len(users), sorted(winners)) in [(5, ["import"]), (2, ["create", "create"])], (users, outcomes)
    assert sum(created_count(args, code, out) for args, code, out, _ in outcomes) == len(users)
    events = created_events(db_path)
    assert len(events) == len(set(events)) == 1 + len(users)
    assert set(users.values()) <= set(events)


# --- a writer holding the lock ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (("create", "new@example.com", "--name", "New", "--password-stdin"), PASSWORD + "\n"),
        (("update", "held@example.com", "--name", "Renamed"), None),
        (("import", "-"), "email,name\nnew@example.com,New\nother@example.com,Other\n"),
    ],
    ids=["create", "update", "import"],
)
def test_a_write_past_the_busy_timeout_exits_6_with_one_line_and_changes_nothing(
    db_path: Path, busy_config: Path, args: tuple[str, ...], stdin: str | None
) -> None:
    seed("create", "held@example.com", "--name", "Held", "--no-password")
    before = (user_rows(db_path), event_rows(db_path))
    holder = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        result = usermgr(*args, input=stdin)
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 6, result
    line = one_line_error(result)
    assert "busy" in line.lower() or "retry" in line.lower() or "locked" in line.lower(), line
    assert elapsed >= 0.5, "it did not wait for the busy timeout"
    assert (user_rows(db_path), event_rows(db_path)) == before


def test_readers_are_not_blocked_by_a_held_write_lock(db_path: Path, busy_config: Path) -> None:
    seed("create", "held@example.com", "--name", "Held", "--no-password")
    holder = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE users SET name = 'Uncommitted'")
        shown = usermgr_ok("show", "held@example.com", "--json")
        assert json.loads(shown.stdout)["name"] == "Held"
        assert "held@example.com" in usermgr_ok("export").stdout
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- kill -9 in the middle of an import ---------------------------------------------------------

KILL_ROWS = 20_000


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


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment",
    ["after 1 s, while it reads and checks", "as the first page reaches the WAL", "with 8 MiB in the WAL"],
)
def test_kill_9_during_an_import_leaves_all_rows_or_none_and_a_sound_database(
    db_path: Path, big_csv: Path, moment: str
) -> None:
    seed("create", "seed@example.com", "--name", "Seed", "--no-password")
    checkpoint(db_path)
    assert wal_size(db_path) == 0

    process = popen("import", str(big_csv), db=db_path)
    started = time.monotonic()
    killed = False
    try:
        while process.poll() is None and time.monotonic() - started < 60:
            if moment.startswith("after 1 s"):
                ready = time.monotonic() - started >= 1.0
            elif moment.startswith("as the first"):
                ready = wal_size(db_path) > 0
            else:
                ready = wal_size(db_path) > 8 * 1024 * 1024
            if ready:
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

    check = usermgr("db", "check")
    assert check.returncode == 0, check
    users = query(db_path, "SELECT count(*) FROM users")[0][0]
    assert users in (1, 1 + KILL_ROWS), users
    # Users and their events were committed together, or neither.
    assert query(db_path, "SELECT count(*) FROM events WHERE type = 'UserCreated'")[0][0] == users
    # The database still takes writes.
    seed("create", "after@example.com", "--name", "After", "--no-password")


# --- damaged, foreign and newer storage ------------------------------------------------------------


@pytest.fixture(scope="module")
def real_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A usermgr database of 300 users, its WAL folded in: the file alone is everything."""
    folder = tmp_path_factory.mktemp("real")
    config = folder / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 4\n")
    db = folder / "real.db"
    rows = "".join(f"user{i}@example.com,User number {i} with a reasonably long name\n" for i in range(300))
    result = run_usermgr(
        "import", "-", input="email,name\n" + rows, env={"USERMGR_DB": str(db), "USERMGR_CONFIG": str(config)}
    )
    assert result.returncode == 0, result.stderr
    checkpoint(db)
    return db


def make_random(path: Path, real: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(16384))


def make_truncated(path: Path, real: Path) -> None:
    data = real.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_newer(path: Path, real: Path) -> None:
    shutil.copyfile(real, path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    checkpoint(path)


def make_foreign(path: Path, real: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('not yours')")
    conn.commit()
    conn.close()


def make_foreign_with_users_table(path: Path, real: Path) -> None:
    """Another application's file that happens to have a `users` table, no application_id."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('x@example.com')")
    conn.commit()
    conn.close()


DAMAGE = {
    "random bytes": make_random,
    "truncated to half": make_truncated,
    "newer schema": make_newer,
    "another application's sqlite file": make_foreign,
    "another application's users table": make_foreign_with_users_table,
}
COMMANDS = {
    "list": ("list",),
    "create": ("create", "new@example.com", "--name", "New", "--no-password"),
    "db check": ("db", "check"),
    "db upgrade": ("db", "upgrade"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_foreign_or_newer_file_is_exit_6_with_one_line_and_left_byte_for_byte(
    tmp_path: Path, real_database: Path, damage: str, command: str
) -> None:
    path = tmp_path / "damaged.db"
    DAMAGE[damage](path, real_database)
    before = sha256(path)
    result = usermgr(*COMMANDS[command], db=path)
    assert result.returncode == 6, result
    line = one_line_error(result)
    assert str(path) in line, line
    if damage == "newer schema":
        assert "newer" in line and "upgrade usermgr" in line, line
    if damage.startswith("another application"):
        assert "not a usermgr database" in line, line
    assert sha256(path) == before


def test_an_unwritable_database_location_is_exit_6_for_a_write_and_db_check(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a regular file\n")
    before = sha256(blocker)
    db = blocker / "sub" / "users.db"
    for args in (("create", "new@example.com", "--name", "New", "--no-password"), ("db", "check"), ("db", "upgrade")):
        result = usermgr(*args, db=db)
        assert result.returncode == 6, (args, result)
        assert str(db) in one_line_error(result)
    assert blocker.is_file() and sha256(blocker) == before
def test_list_on_an_impossible_database_location_is_exit_6(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a regular file\n")
    result = usermgr("list", db=blocker / "sub" / "users.db")
    assert result.returncode == 6, result
    one_line_error(result)


def test_db_check_is_exit_0_on_a_good_database_and_reports_what_it_holds(db_path: Path) -> None:
    seed("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
    seed("deactivate", "ada@example.com")
    result = usermgr_ok("db", "check")
    assert str(SCHEMA_VERSION) in result.stdout
    assert "1 user" in result.stdout and "2 events" in result.stdout


def test_db_check_finds_a_damaged_page_inside_an_otherwise_readable_file(tmp_path: Path, real_database: Path) -> None:
    path = tmp_path / "corrupt.db"
    shutil.copyfile(real_database, path)
    page_size = query(path, "PRAGMA page_size")[0][0]
    pages = path.stat().st_size // page_size
    data = bytearray(path.read_bytes())
    victim = pages // 2  # some b-tree page in the middle of the file
    data[victim * page_size + 8 : victim * page_size + 200] = random.Random(3).randbytes(192)
    path.write_bytes(bytes(data))
    before = sha256(path)
    result = usermgr("db", "check", db=path)
    assert result.returncode == 6, result
    one_line_error(result)
    assert sha256(path) == before


def test_db_check_without_a_database_is_exit_6_and_creates_nothing(db_path: Path) -> None:
    result = usermgr("db", "check")
    assert result.returncode == 6, result
    one_line_error(result)
    assert not db_path.exists()


# --- online backup -----------------------------------------------------------------------------------

BATCH = 25
WRITER = textwrap.dedent(
    """
    import os, subprocess, sys
    usermgr, stop = sys.argv[1], sys.argv[2]
    batch = 0
    while not os.path.exists(stop) and batch < 200:
        rows = "".join(f"w{batch}-{i}@example.com,Writer {batch} {i}\\n" for i in range(%d))
        done = subprocess.run([usermgr, "import", "-"], input="email,name\\n" + rows, text=True,
                              capture_output=True)
        if done.returncode != 0:
            sys.exit(f"writer failed: {done.stderr}")
        batch += 1
    """
    % BATCH
)


def check_backup(path: Path) -> int:
    """A sound, private, self-contained usermgr database; returns its user count."""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not Path(f"{path}-wal").exists() or os.stat(f"{path}-wal").st_size == 0
    alone = path.with_name(path.name + ".alone")
    shutil.copyfile(path, alone)  # the file by itself, without any side files
    conn = read_only(alone)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events WHERE type = 'UserCreated'").fetchone()[0]
    finally:
        conn.close()
        alone.unlink()
    assert events == users  # each user with its event: a consistent snapshot
    return users


@pytest.mark.slow
def test_db_backup_while_a_writer_runs_is_consistent_private_and_refuses_to_overwrite(
    tmp_path: Path, db_path: Path
) -> None:
    seed("create", "seed@example.com", "--name", "Seed", "--no-password")
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, USERMGR, str(stop)], stderr=subprocess.PIPE, text=True)
    old_umask = os.umask(0o022)
    try:
        deadline = time.monotonic() + 30
        while query(db_path, "SELECT count(*) FROM users")[0][0] < 1 + BATCH and time.monotonic() < deadline:
            time.sleep(0.05)
        counts = []
        for name in ("first.db", "second.db", "third.db"):
            target = tmp_path / "backups" / name
            target.parent.mkdir(exist_ok=True)
            result = usermgr("db", "backup", str(target))
            assert result.returncode == 0, result
            counts.append(check_backup(target))
            time.sleep(0.3)
        assert writer.poll() is None, "the writer stopped before the backups were taken"
    finally:
        stop.touch()
        _, writer_errors = writer.communicate(timeout=60)
        os.umask(old_umask)
    assert writer.returncode == 0, writer_errors
    # Each writer import commits BATCH users at once: a consistent copy holds whole batches.
    assert all((count - 1) % BATCH == 0 and count > 1 for count in counts), counts
    assert counts == sorted(counts)

    existing = tmp_path / "backups" / "first.db"
    before = sha256(existing)
    refused = usermgr("db", "backup", str(existing))
    assert refused.returncode == 2, refused
    assert "--force" in one_line_error(refused)
    assert sha256(existing) == before

    forced = usermgr("db", "backup", str(existing), "--force")
    assert forced.returncode == 0, forced
    assert check_backup(existing) == query(db_path, "SELECT count(*) FROM users")[0][0]
    assert sha256(existing) != before


def test_db_backup_with_force_replaces_a_world_readable_file_with_a_private_copy(tmp_path: Path, db_path: Path) -> None:
    seed("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
    target = tmp_path / "backup.db"
    target.write_text("old junk")
    os.chmod(target, 0o644)
    assert usermgr("db", "backup", str(target)).returncode == 2
    assert target.read_text() == "old junk"
    usermgr_ok("db", "backup", str(target), "--force")
    assert check_backup(target) == 1
    restored = usermgr("verify", "ada@example.com", "--password-stdin", db=target, input=PASSWORD + "\n")
    assert restored.returncode == 0, restored
    assert not list(tmp_path.glob(".backup.db.*"))  # no temporary file left behind


def test_db_backup_onto_the_database_itself_is_refused_and_changes_nothing(db_path: Path) -> None:
    seed("create", "ada@example.com", "--name", "Ada", "--no-password")
    checkpoint(db_path)
    before = user_rows(db_path)
    result = usermgr("db", "backup", str(db_path), "--force")
    assert result.returncode == 2, result
    one_line_error(result)
    assert user_rows(db_path) == before
    assert usermgr("db", "check").returncode == 0


# --- migrations ------------------------------------------------------------------------------------

V1_COLUMNS = "id, email, email_key, name, role, is_active, password_hash, created_at, updated_at"
OLD_USER = ("5f0c7a52-2f5e-4e8a-9a43-2b8f6f1f0a11", "Old.Timer@example.com", "old.timer@example.com",
            "Old Timer", "admin", 1, None, "2024-05-06T07:08:09.000000Z", None)


def make_version_1(path: Path) -> None:
    """The core's schema, as a database written by the first release would be."""
    conn = sqlite3.connect(path)
    for statement in sqlite_migration(1):
        conn.execute(statement)
    conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", OLD_USER)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.commit()
    conn.close()


def tables(db: Path) -> set[str]:
    return {r[0] for r in query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_any_command_migrates_a_version_1_database_first_and_keeps_its_users(db_path: Path) -> None:
    make_version_1(db_path)
    result = usermgr_ok("list", "--format", "json")
    items = json.loads(result.stdout)["items"]
    assert [(u["id"], u["email"], u["name"], u["role"], u["is_active"], u["created_at"]) for u in items] == [
        (OLD_USER[0], OLD_USER[1], OLD_USER[3], OLD_USER[4], True, OLD_USER[7])
    ]
    assert query(db_path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert query(db_path, "PRAGMA application_id")[0][0] == APPLICATION_ID
    assert {"users", "events"} <= tables(db_path)
    assert query(db_path, f"SELECT {V1_COLUMNS} FROM users") == [OLD_USER]
    # Version 3 keeps a case-folded copy of each name for search, filled in by the migration.
    assert query(db_path, "SELECT name_key FROM users") == [("old timer",)]
    assert usermgr("db", "check").returncode == 0


def test_a_write_on_a_version_1_database_migrates_and_records_its_event(db_path: Path) -> None:
    make_version_1(db_path)
    usermgr_ok("deactivate", "old.timer@example.com")
    assert query(db_path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert query(db_path, "SELECT type, user_id FROM events") == [("UserDeactivated", OLD_USER[0])]


def test_db_upgrade_reports_the_upgrade_then_that_it_is_up_to_date(db_path: Path) -> None:
    make_version_1(db_path)
    first = usermgr_ok("db", "upgrade")
    assert "1" in first.stdout and str(SCHEMA_VERSION) in first.stdout
    assert "upgrade" in first.stdout.lower()
    assert query(db_path, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert "events" in tables(db_path)
    second = usermgr_ok("db", "upgrade")
    assert second.stdout != first.stdout
    assert str(SCHEMA_VERSION) in second.stdout
    assert query(db_path, f"SELECT {V1_COLUMNS} FROM users") == [OLD_USER]


def test_a_migration_that_cannot_take_the_lock_is_exit_6_and_leaves_version_1(db_path: Path, busy_config: Path) -> None:
    make_version_1(db_path)
    holder = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = usermgr("db", "upgrade")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 6, result
    one_line_error(result)
    assert query(db_path, "PRAGMA user_version")[0][0] == 1
    assert tables(db_path) == {"users"}
