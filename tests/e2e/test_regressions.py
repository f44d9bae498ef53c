"""Regressions: one test for each bug fixed by "Fix what review found; --version
answers before Typer loads". Each drives the installed `usermgr` (or, where the bug
lives below the CLI, the module itself) and fails on the code before that fix."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, USERMGR, run_usermgr
from tests.e2e.test_installed import Terminal

ANSI = re.compile(r"\x1b\[")
BOX = re.compile(r"[\u2500-\u257f]")  # box drawing: ╭ │ ─ and the rest
COMMANDS = ("create", "list", "show", "update", "activate", "deactivate", "set-role", "passwd", "verify", "delete")
MISSING_PROGRAM = "/nonexistent/usermgr-regression-hook"


# --- helpers ------------------------------------------------------------------------


def one_line(text: str) -> str:
    assert text.endswith("\n") and len(text.splitlines()) == 1, text
    return text.strip()


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def usermgr_ok(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    result = run_usermgr(*args, input=input)
    no_traceback(result)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def create_ada() -> None:
    usermgr_ok("create", "ada@example.com", "--name", "Ada Lovelace", "--password-stdin", input=PASSWORD + "\n")


def stored_hash(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT password_hash FROM users WHERE email = 'ada@example.com'").fetchone()[0]
    finally:
        conn.close()


def database_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")) if p.exists()]


def with_stdin_closed(*args: str) -> subprocess.CompletedProcess[str]:
    """Run usermgr with file descriptor 0 closed, not merely at end of file."""
    return subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" <&-', USERMGR, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def add_failing_hook(config: Path) -> None:
    with config.open("a") as f:
        f.write(f'\n[[hooks]]\non = "*"\ncommand = ["{MISSING_PROGRAM}"]\ntimeout = 5\n')


# --- 1. an empty file someone else made keeps its mode, with a warning ---------------


def test_an_existing_empty_database_file_keeps_its_mode_and_create_warns_that_others_can_read_it(db_path: Path) -> None:
    db_path.touch()
    os.chmod(db_path, 0o644)
    result = usermgr_ok("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o644
    assert "readable by others" in result.stderr and "chmod 600" in result.stderr


# --- 2. import never echoes a secret -------------------------------------------------


def test_import_errors_name_the_line_and_column_but_never_echo_a_password_or_hash(tmp_path: Path, db_path: Path) -> None:
    source = tmp_path / "users.jsonl"
    source.write_text(
        json.dumps({"email": "a@example.com", "name": "A", "password": 123456789012345})
        + "\n"
        + json.dumps({"email": "b@example.com", "name": "B", "password_hash": ["$2b$04$x"]})
        + "\n"
    )
    result = run_usermgr("import", str(source))
    no_traceback(result)
    assert result.returncode == 2, (result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert "123456789012345" not in output
    assert "$2b$" not in output
    assert re.search(r"line 1\b.*\bpassword\b", result.stderr), result.stderr
    assert re.search(r"line 2\b.*\bpassword_hash\b", result.stderr), result.stderr
    assert not db_path.exists()


# --- 3. a failed write or a dry run creates no database ------------------------------


@pytest.mark.parametrize(
    ("args", "input"),
    [
        (["activate", "nobody@example.com"], None),
        (["set-role", "nobody@example.com", "admin"], None),
        (["update", "nobody@example.com", "--name", "Nobody"], None),
        (["passwd", "nobody@example.com", "--password-stdin"], PASSWORD + "\n"),
        (["delete", "nobody@example.com", "--yes"], None),
    ],
    ids=["activate", "set-role", "update", "passwd", "delete"],
)
def test_a_write_to_an_unknown_user_exits_3_and_creates_no_database(db_path: Path, args: list[str], input: str | None) -> None:
    result = run_usermgr(*args, input=input)
    no_traceback(result)
    assert result.returncode == 3, (result.stdout, result.stderr)
    one_line(result.stderr)
    assert database_files(db_path) == []


def test_an_import_dry_run_creates_no_database_but_create_does(tmp_path: Path, db_path: Path) -> None:
    source = tmp_path / "users.csv"
    source.write_text("email,name\nada@example.com,Ada\nbob@example.com,Bob\n")
    result = usermgr_ok("import", str(source), "--dry-run")
    assert "would have created 2" in result.stdout
    assert database_files(db_path) == []
    usermgr_ok("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert db_path.exists()


# --- 4. verify succeeds when the re-hash finds the database busy ---------------------


def test_verify_succeeds_when_the_database_is_busy_during_the_optional_rehash(config_path: Path, db_path: Path) -> None:
    create_ada()
    assert stored_hash(db_path).startswith("$2b$04$")
    config_path.write_text("[security]\nbcrypt_rounds = 5\n\n[database]\nbusy_timeout = 0.3\n")
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = run_usermgr("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
        no_traceback(result)
        assert result.returncode == 0, (result.stdout, result.stderr)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert stored_hash(db_path).startswith("$2b$04$")  # the upgrade waited
    usermgr_ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert stored_hash(db_path).startswith("$2b$05$")  # and happened on the next verify


# --- 5. hook timeouts are capped at a day --------------------------------------------


def test_a_hook_timeout_above_a_day_is_a_config_error_naming_the_hook(config_path: Path) -> None:
    with config_path.open("a") as f:
        f.write('\n[[hooks]]\non = "*"\ncommand = ["/bin/true"]\ntimeout = 1e15\n')
    result = run_usermgr("list")
    no_traceback(result)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "hooks[1].timeout" in one_line(result.stderr)


# --- 6. deliveries claimed by another runner -----------------------------------------


def test_a_delivery_claimed_by_another_runner_is_shown_as_such_and_retry_leaves_it(config_path: Path, db_path: Path) -> None:
    add_failing_hook(config_path)
    run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password")  # the hook fails
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1
        conn.execute("UPDATE deliveries SET claimed_until = '9999-12-31T00:00:00.000000Z'")
        conn.commit()
    finally:
        conn.close()
    listed = usermgr_ok("hooks", "list")
    assert "being delivered by another usermgr" in listed.stdout, listed.stdout
    retried = usermgr_ok("hooks", "retry")
    assert "1 being delivered by another usermgr" in retried.stdout, retried.stdout
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT claimed_until FROM deliveries").fetchall() == [("9999-12-31T00:00:00.000000Z",)]
    finally:
        conn.close()


# --- 7. a closed stdin ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["create", "zed@example.com", "--name", "Zed"],
        ["delete", "ada@example.com"],
        ["verify", "ada@example.com", "--password-stdin"],
    ],
    ids=["create-without-a-source", "delete-without-yes", "verify-password-stdin"],
)
def test_a_closed_stdin_is_exit_2_with_one_line_and_no_traceback(args: list[str]) -> None:
    create_ada()
    result = with_stdin_closed(*args)
    no_traceback(result)
    assert result.returncode == 2, (result.stdout, result.stderr)
    one_line(result.stderr)
    assert json.loads(usermgr_ok("list", "--format", "json").stdout)["total"] == 1


# --- 8. Ctrl-D at the delete prompt --------------------------------------------------


def test_end_of_input_at_the_delete_prompt_exits_2_and_keeps_the_user() -> None:
    create_ada()
    term = Terminal("delete", "ada@example.com")
    term.expect("?")
    term.send("\x04")
    code = term.finish()
    assert code == 2, term.text
    assert "Traceback" not in term.text
    assert json.loads(usermgr_ok("list", "--format", "json").stdout)["total"] == 1


# --- 9. a reader that goes away: exit 141 --------------------------------------------


def test_a_reader_that_closes_the_pipe_early_gets_exit_141_and_no_traceback(db_path: Path) -> None:
    create_ada()
    conn = sqlite3.connect(db_path)
    try:
        columns = "id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key".split(", ")
        row = dict(zip(columns, conn.execute("SELECT id, email, email_key, name, role, is_active, password_hash, created_at, updated_at, name_key FROM users").fetchone()))
        rows = []
        for i in range(4000):
            copy: dict[str, Any] = {**row, "id": f"00000000-0000-4000-8000-{i:012d}"}
            copy.update(email=f"u{i}@example.com", email_key=f"u{i}@example.com")
            rows.append(tuple(copy[c] for c in columns))
        conn.executemany(f"INSERT INTO users ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
        conn.commit()
    finally:
        conn.close()
    for args in (["list", "--all", "--format", "jsonl"], ["export", "--format", "jsonl"]):
        child = subprocess.Popen(
            [USERMGR, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert child.stdout is not None and child.stderr is not None
        assert json.loads(child.stdout.readline())["email"]
        child.stdout.close()
        stderr = child.stderr.read().decode()
        assert child.wait(timeout=30) == 141, (args, child.returncode, stderr)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
        assert len(stderr.splitlines()) <= 1, stderr


# --- 10. db backup into a directory --------------------------------------------------


def test_db_backup_into_an_existing_directory_is_exit_2_even_with_force(tmp_path: Path) -> None:
    create_ada()
    target = tmp_path / "backups"
    target.mkdir()
    for extra in ([], ["--force"]):
        result = run_usermgr("db", "backup", str(target), *extra)
        no_traceback(result)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        one_line(result.stderr)
    assert target.is_dir() and list(target.iterdir()) == []


# --- 11. migration re-checks the version under the lock ------------------------------


def test_migrate_does_not_downgrade_a_schema_made_newer_while_it_waited(tmp_path: Path) -> None:
    from usermgr.errors import StorageUnavailable
    from usermgr.infrastructure.storage.schema import SCHEMA_VERSION, Context
    from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID, migrate
    from usermgr.infrastructure.storage.sqlite.errors import SqliteDatabase

    path = tmp_path / "newer.db"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE from_the_future (x INTEGER)")
    setup.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    setup.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    setup.commit()
    setup.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(StorageUnavailable):
            migrate(SqliteDatabase(conn, path), Context())
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert not conn.in_transaction
    finally:
        conn.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert check.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        check.close()


# --- 12. --version before Typer ------------------------------------------------------


VERSION_WITHOUT_TYPER = """
import sys
sys.argv = ["usermgr", "--version"]
from usermgr.cli import main
try:
    main()
finally:
    print("typer" in sys.modules, file=sys.stderr)
"""


def test_version_prints_the_version_without_importing_typer() -> None:
    import usermgr

    result = subprocess.run(
        [sys.executable, "-c", VERSION_WITHOUT_TYPER], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"usermgr \d+\.\d+\.\d+\n", result.stdout)
    assert result.stdout == f"usermgr {usermgr.__version__}\n"
    assert result.stderr == "False\n"


# --- 13. help is plain text when piped -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["--help"], COMMANDS + ("import", "export", "events", "hooks", "db")),
        (["create", "--help"], ("EMAIL", "--name", "--role", "--password-stdin", "--no-password")),
    ],
    ids=["usermgr", "create"],
)
def test_help_is_plain_text_when_piped(args: list[str], listed: tuple[str, ...]) -> None:
    env = {"TERM": "xterm-256color", "COLUMNS": "100"}
    result = run_usermgr(*args, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Usage" in out
    assert not BOX.search(out), out
    assert not ANSI.search(out), out
    for name in listed:
        assert re.search(rf"(?m)^ +{re.escape(name)}\s", out), (name, out)
