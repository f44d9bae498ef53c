"""Helpers shared by test modules (no fixtures: those live in conftest.py), so that no
test module imports another."""

from __future__ import annotations

import csv
import fcntl
import functools
import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from usermgr.infrastructure.storage.schema import MIGRATIONS, PerEngine

PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another long passphrase"
# A bcrypt hash, or the start of one: its version and cost (messages may name "$2b$" alone).
BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$")
# The public fields of a user, in the contract's order.
FIELDS = ["id", "email", "name", "role", "is_active", "created_at", "updated_at"]
# The installed console script, next to the interpreter running the tests.
USERMGR = str(Path(sys.executable).with_name("usermgr"))
# More than any test writes: `events --limit EVERY` shows the whole log.
EVERY = str(2**62)


# --- the CLI in-process --------------------------------------------------------------


@functools.cache
def _click_command() -> Any:
    """The Click command tree, built once as a real process builds it once: typer's
    CliRunner.invoke rebuilds it from the app on every call (~27 ms of signature parsing)."""
    import typer.main

    from usermgr.cli import app

    return typer.main.get_command(app)


def invoke_app(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process, in typer's CliRunner isolation (its stdin, stdout, stderr,
    prompts and environment); whatever happens, it ends in a clean exit, never a traceback."""
    runner = CliRunner()
    exception: BaseException | None = None
    code = 0
    with runner.isolation(input=input, env=env) as (stdout, stderr, output):
        try:
            _click_command().main(args=list(args), prog_name="usermgr")
        except SystemExit as exit:
            code = 0 if exit.code is None else exit.code if isinstance(exit.code, int) else 1
            exception = exit if code else None
        except Exception as error:
            code, exception = 1, error
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            out, err, mixed = stdout.getvalue(), stderr.getvalue(), output.getvalue()
    result = Result(runner, out, err, mixed, None, code, exception)
    assert "Traceback" not in result.stdout + result.stderr
    if exception is not None:
        assert isinstance(exception, SystemExit), repr(exception)
    return result


def one_line(text: str) -> str:
    """The one line a failure writes."""
    assert text.endswith("\n") and len(text.splitlines()) == 1, text
    assert text.strip(), text
    return text.strip()


def no_secrets(output: str, *secrets: str, hashes: bool = False) -> None:
    """No traceback, no bcrypt hash (unless `hashes`: export --include-hashes) and none
    of the tests' passwords in `output`."""
    assert "Traceback" not in output, output
    assert hashes or not BCRYPT_HASH.search(output), f"a bcrypt hash was printed: {output!r}"
    for secret in (PASSWORD, OTHER_PASSWORD, *secrets):
        assert secret not in output, f"a password was printed: {output!r}"


class Cli:
    """The CLI in-process, as the tests use it. Every call fails the test if any output
    holds a traceback, a bcrypt hash or a password the test handed in; `fails` also checks
    that a failure is one line on stderr and that the database did not change."""

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, secrets: tuple[str, ...] = ()
    ) -> Result:
        result = invoke_app(*args, input=input, env=env)
        typed = [line for line in (input or "").splitlines() if len(line) >= 8] if "--password-stdin" in args else []
        no_secrets(result.stdout + result.stderr, *typed, *secrets, hashes="--include-hashes" in args)
        return result

    def ok(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = self(*args, input=input, env=env)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        return json.loads(self.ok(*args, input=input, env=env).stdout)

    def create(
        self, email: str, name: str = "Test User", *options: str, password: str | None = PASSWORD, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A new user (with no usable password when `password` is None), as create --json prints it."""
        if password is None:
            return self.json("create", email, "--name", name, "--no-password", "--json", *options, env=env)
        return self.json("create", email, "--name", name, "--password-stdin", "--json", *options, input=password + "\n", env=env)

    def verify(self, user: str, password: str) -> int:
        return self("verify", user, "--password-stdin", input=password + "\n").exit_code

    def listing(self) -> Any:
        return self.json("list", "--all", "--format", "json")

    def events(self, *options: str) -> list[dict[str, Any]]:
        found = self.json("events", "--format", "json", *options)
        assert isinstance(found, list)
        return found

    def types(self, *options: str) -> list[str]:
        return [e["type"] for e in self.events(*options)]

    def hooks_list(self) -> str:
        return self.ok("hooks", "list").stdout

    def stored(self) -> dict[str, dict[str, Any]]:
        """Every user by email, with the stored hash (`export --include-hashes`, whose
        output alone may hold a hash)."""
        result = invoke_app("export", "--format", "jsonl", "--include-hashes")
        assert result.exit_code == 0, result.stderr
        return {user["email"]: user for user in map(json.loads, result.stdout.splitlines())}

    def state(self) -> tuple[str, str]:
        """Every user with its hash, and every event: what a failed command leaves as it was.
        (A write command may create the database before it fails: that migration is its
        own committed step, and a missing database shows as an empty one.)"""
        users = invoke_app("export", "--format", "jsonl", "--include-hashes")
        events = invoke_app("events", "--format", "jsonl", "--limit", EVERY)
        assert users.exit_code == events.exit_code == 0, (users.stderr, events.stderr)
        return users.stdout, events.stdout

    def fails(self, code: int, *args: str, input: str | None = None, usage: bool = False) -> Result:
        """Exit `code`, one line on stderr (unless Typer's own usage message), nothing changed."""
        before = self.state()
        result = self(*args, input=input)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        assert result.stdout == ""
        if not usage:
            one_line(result.stderr)
        assert self.state() == before
        return result


# --- the installed executable ---------------------------------------------------------


def run_usermgr(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed executable as cron would: no terminal, plain pipes."""
    return subprocess.run(
        [USERMGR, *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def usermgr_ok(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = run_usermgr(*args, input=input, env=env)
    no_secrets(result.stdout + result.stderr, hashes="--include-hashes" in args)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def usermgr_fails(
    code: int, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Exit `code` with one line on stderr and nothing on stdout."""
    result = run_usermgr(*args, input=input, env=env)
    no_secrets(result.stdout + result.stderr)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    one_line(result.stderr)
    return result


def default_sigint() -> None:
    """In a child before exec: Ctrl-C and SIGINT back to their default. A suite started
    in the background of a script (`.ci/run &`) inherits SIGINT ignored, and so would
    usermgr, as the shell intends for background jobs; a test of Ctrl-C needs it live."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """The installed usermgr with stdin, stdout and stderr on a pseudo-terminal."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        master, slave = os.openpty()

        def controlling_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            default_sigint()

        self.process = subprocess.Popen(
            [USERMGR, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=controlling_terminal,
            env={**os.environ, **(env or {})},
        )
        os.close(slave)
        self.master = master
        self.output = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the other side is closed
            return False
        self.output += chunk
        return bool(chunk)

    def expect(self, text: str, timeout: float = 20, count: int = 1) -> None:
        """Wait until `text` has appeared `count` times (a prompt asked again)."""
        deadline = time.monotonic() + timeout
        while self.output.count(text.encode()) < count:
            if time.monotonic() > deadline or not self._read(0.1) and self.process.poll() is not None:
                raise AssertionError(f"{text!r} never appeared {count} times in {self.output!r}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self._read(0.1) and time.monotonic() < deadline:
            pass
        try:
            return self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(self.master)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


# --- the database underneath ----------------------------------------------------------


def is_postgresql(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def raw_sql(statement: str, params: tuple[Any, ...] = (), *, location: str | None = None) -> list[tuple[Any, ...]]:
    """Run one statement (`?` placeholders, SQL both engines take) on the test's database,
    USERMGR_DB unless told, with its own driver, and commit it: for state that no command
    can set up or show, such as an event aged ten days or a delivery a crash left behind."""
    location = location or os.environ["USERMGR_DB"]
    if is_postgresql(location):
        import psycopg2

        conn = psycopg2.connect(location)
        try:
            with conn, conn.cursor() as cursor:
                cursor.execute(statement.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.close()
    conn = sqlite3.connect(location.removeprefix("sqlite://"))
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def sqlite_query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read a SQLite file with the driver, read-only: nothing is created or written."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def sqlite_migration(number: int) -> list[str]:
    """The SQL statements of one shipped migration, as SQLite runs them (Python steps left out)."""
    statements: list[str] = []
    for step in MIGRATIONS[number]:
        if isinstance(step, str):
            statements.append(step)
        elif isinstance(step, PerEngine):
            statements.extend(step.statements("sqlite"))
    return statements


# --- files ------------------------------------------------------------------------------


def script(path: Path, body: str) -> Path:
    """An executable /bin/sh program."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def bcrypt_hash(password: str = PASSWORD) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def seed_users(count: int, *, password_hash: str | None = None, location: str | None = None) -> None:
    """`count` users, user00000@example.com on, one microsecond apart, written straight
    through the storage layer with no event and none of import's checks (which cost
    seconds at this size): for tests of what reads do with many rows."""
    from datetime import datetime, timedelta, timezone

    from usermgr.domain.model import User
    from usermgr.domain.values import Email, Role
    from usermgr.infrastructure.storage import open_storage, parse_location

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    users = [
        User(
            id=f"00000000-0000-4000-8000-{i:012d}",
            email=Email(f"user{i:05d}@example.com"),
            name=f"User number {i} with a fairly long display name",
            role=Role.USER,
            is_active=True,
            created_at=start + timedelta(microseconds=i),
            password_hash=password_hash,
        )
        for i in range(count)
    ]
    where = parse_location(location or os.environ["USERMGR_DB"], lambda: Path("unused"))
    storage = open_storage(where, busy_timeout=5, hooks=(), actor="tests", notice=lambda line: None)
    try:
        with storage.unit_of_work(create=True) as work:
            work.users.add_all(users)
            work.commit()
    finally:
        storage.close()
