"""Operations, on each engine: processes racing to write, a writer holding the lock past
the busy timeout, readers beside a writer, `db check` and `db backup` (online, while a
writer runs). Racers and the backup's writer are real processes; the rest runs the CLI
in-process beside a unit of work that holds the write lock. Files of SQLite itself
(modes, damage, migrations, kill -9) are in test_sqlite_files.py."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.helpers import (
    EVERY,
    PASSWORD,
    USERMGR,
    Cli,
    one_line,
    usermgr_fails,
    write_csv,
)
from usermgr.domain.model import User
from usermgr.domain.values import Email, Role
from usermgr.infrastructure.storage import Storage, open_storage, parse_location
from usermgr.infrastructure.storage.schema import SCHEMA_VERSION
from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID

pytestmark = pytest.mark.usefixtures("engine")

BUSY_TIMEOUT = 0.1
BUSY_CONFIG = f"[security]\nbcrypt_rounds = 4\n\n[database]\nbusy_timeout = {BUSY_TIMEOUT}\n"


@pytest.fixture
def busy_config(config_path: Path) -> Path:
    config_path.write_text(BUSY_CONFIG)
    return config_path


@pytest.fixture
def nothing_yet(engine: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of usermgr's in the test's database: no SQLite file yet, or on PostgreSQL
    a database with no tables (the engine fixture's has them)."""
    if engine == "postgresql":
        monkeypatch.setenv("USERMGR_DB", request.getfixturevalue("postgresql_url"))


@pytest.fixture
def lock_holder() -> Iterator[Storage]:
    """Storage of the test's database, for a unit of work that holds its write lock."""
    storage = open_storage(
        parse_location(os.environ["USERMGR_DB"], lambda: Path("unused")),
        busy_timeout=5, hooks=(), actor="tests", notice=lambda _: None,
    )
    yield storage
    storage.close()


def uncommitted_user() -> User:
    return User.create(
        email=Email.parse("uncommitted@example.com"), name="Uncommitted", role=Role.USER, is_active=True,
        password_hash=None, now=datetime.now(timezone.utc),
    )


# --- processes racing to write --------------------------------------------------------

FIVE = [f"shared{i}@example.com" for i in range(5)]
SPELLINGS = [str.lower, str.upper, str.title, lambda e: e.split("@")[0] + "@EXAMPLE.com"]
RACER = textwrap.dedent(
    """
    import os, sys, time
    barrier, *args = sys.argv[1:]
    # What a command loads before it touches the database, loaded before the start.
    import bcrypt, email_validator, usermgr.cli.root
    from usermgr.cli import main
    if os.environ["USERMGR_DB"].startswith("postgresql"):
        import psycopg2
    open(f"{barrier}.{os.getpid()}", "w").close()
    while not os.path.exists(barrier):
        time.sleep(0.002)
    sys.argv = ["usermgr", *args]
    main()
    """
)


def race(tmp_path: Path, commands: list[tuple[str, ...]]) -> list[tuple[tuple[str, ...], int, str, str]]:
    """Start every command, wait until each has loaded, then let them go at once."""
    barrier = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(barrier), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for args in commands
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("go.*"))) < len(racers):
            assert time.monotonic() < deadline, "the racers never got ready"
            assert all(r.poll() is None for r in racers), [r.communicate() for r in racers if r.poll() is not None]
            time.sleep(0.01)
    finally:
        barrier.touch()
    outcomes = []
    for args, racer in zip(commands, racers):
        out, err = racer.communicate(timeout=120)
        assert "Traceback" not in err and "$2b$" not in out + err, err
        outcomes.append((args, racer.returncode, out, err))
    return outcomes


def created_count(args: tuple[str, ...], code: int, out: str) -> int:
    """How many users one finished process says it created."""
    if code != 0:
        return 0
    if args[0] == "import":
        return int(out.split("created ")[1].split(",")[0])
    return 1 if json.loads(out)["created"] else 0


@pytest.mark.slow
@pytest.mark.parametrize("exists_ok", [True, False], ids=["exists-ok on a new database", "conflicting on an existing one"])
def test_processes_racing_to_write_the_same_emails_create_each_user_once(
    tmp_path: Path, cli: Cli, exists_ok: bool, request: pytest.FixtureRequest
) -> None:
    if exists_ok:
        # Nothing exists yet: the racers also race to create the database and its tables.
        request.getfixturevalue("nothing_yet")
        rows = [[SPELLINGS[i % 4](email), f"Shared {i}", PASSWORD] for i, email in enumerate(FIVE)]
        source = write_csv(tmp_path / "shared.csv", ["email", "name", "password"], rows)
        commands = [("import", str(source), "--exists-ok")] * 3 + [
            ("create", SPELLINGS[i](FIVE[i]), "--name", f"Creator {i}", "--no-password", "--exists-ok", "--json")
            for i in range(3)
        ]
        seed: list[str] = []
    else:
        seed = [cli.create("seed@example.com", "Seed", password=None)["id"]]
        source = write_csv(tmp_path / "shared.csv", ["email", "name"], [[e, f"Shared {i}"] for i, e in enumerate(FIVE)])
        commands = [("import", str(source))] * 3 + [
            ("create", SPELLINGS[i](FIVE[i % 2]), "--name", f"Creator {i}", "--no-password", "--json") for i in range(3)
        ]

    outcomes = race(tmp_path, commands)

    users = {email.lower(): user["id"] for email, user in cli.stored().items() if email.lower().startswith("shared")}
    created_events = [e["user_id"] for e in cli.events("--type", "UserCreated", "--limit", EVERY)]
    assert Counter(created_events) == Counter([*seed, *users.values()])  # one event per user, no other
    assert sum(created_count(args, code, out) for args, code, out, _ in outcomes) == len(users)
    if exists_ok:
        assert [code for _, code, _, _ in outcomes] == [0] * len(commands), outcomes
        assert sorted(users) == FIVE
        assert cli.verify(FIVE[4], PASSWORD) == 0
        return
    assert {code for _, code, _, _ in outcomes} <= {0, 4}, outcomes
    for _, code, out, err in outcomes:
        if code == 4:
            assert out == "" and "exists" in err, err
    winners = sorted(args[0] for args, code, _, _ in outcomes if code == 0)
    # An import is all or nothing: either one import wrote all five and everyone else
    # found an email taken, or a create came first and one create per email won.
    assert (len(users), winners) in [(5, ["import"]), (2, ["create", "create"])], (users, outcomes)


# --- a writer holding the lock ------------------------------------------------------------


# One command of each way to the write lock (set-role and activate go deactivate's way).
WRITERS = [
    (["create", "new@example.com", "--name", "New", "--password-stdin"], PASSWORD + "\n"),
    (["update", "held@example.com", "--name", "Renamed"], None),
    (["deactivate", "held@example.com"], None),
    (["passwd", "held@example.com", "--password-stdin"], "another long passphrase\n"),
    (["delete", "held@example.com", "--yes"], None),
    (["import", "-"], "email,name\nnew@example.com,New\nother@example.com,Other\n"),
]


@pytest.mark.parametrize(("args", "stdin"), WRITERS, ids=[a[0] for a, _ in WRITERS])
def test_a_write_past_the_busy_timeout_exits_6_with_one_line_and_changes_nothing(
    cli: Cli, busy_config: Path, lock_holder: Storage, args: list[str], stdin: str | None
) -> None:
    cli.create("held@example.com", "Held", password=None)
    before = cli.state()
    with lock_holder.unit_of_work(create=True) as holder:
        holder.users.add(uncommitted_user())
        started = time.monotonic()
        result = cli(*args, input=stdin)
        elapsed = time.monotonic() - started
    assert result.exit_code == 6, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "busy" in one_line(result.stderr).lower()
    assert elapsed >= BUSY_TIMEOUT, "it did not wait for the busy timeout"
    assert cli.state() == before


def test_the_installed_usermgr_waits_the_busy_timeout_not_longer(busy_config: Path, cli: Cli, lock_holder: Storage) -> None:
    cli.create("held@example.com", "Held", password=None)
    before = cli.state()
    with lock_holder.unit_of_work(create=True) as holder:
        holder.users.add(uncommitted_user())
        started = time.monotonic()
        result = usermgr_fails(6, "create", "new@example.com", "--name", "New", "--password-stdin", input=PASSWORD + "\n")
        elapsed = time.monotonic() - started
    assert "busy" in result.stderr.lower()
    assert BUSY_TIMEOUT <= elapsed < BUSY_TIMEOUT + 4, elapsed
    assert cli.state() == before


def test_readers_are_not_blocked_by_a_held_write_lock_and_see_only_committed_data(
    cli: Cli, busy_config: Path, lock_holder: Storage
) -> None:
    held = cli.create("held@example.com", "Held", password=None)
    with lock_holder.unit_of_work(create=True) as holder:
        holder.users.add(uncommitted_user())
        # A reader that waited for the lock would give up after the busy timeout, exit 6.
        assert cli.json("show", "held@example.com", "--json") == {k: held[k] for k in held if k != "created"}
        listed = cli.ok("list", "--all", "--format", "csv").stdout
        exported = cli.ok("export").stdout
        events = cli.events()
    for output in (listed, exported):
        assert "held@example.com" in output and "uncommitted" not in output
    assert [e["type"] for e in events] == ["UserCreated"]


def test_verify_succeeds_when_its_optional_rehash_finds_the_database_busy(
    cli: Cli, config_path: Path, lock_holder: Storage
) -> None:
    cli.create("ada@example.com", "Ada")
    config_path.write_text(f"[security]\nbcrypt_rounds = 5\n\n[database]\nbusy_timeout = {BUSY_TIMEOUT}\n")

    def stored_hash() -> str:
        return cli.stored()["ada@example.com"]["password_hash"]

    with lock_holder.unit_of_work(create=True):
        assert cli.verify("ada@example.com", PASSWORD) == 0
    assert stored_hash().startswith("$2b$04$")  # the re-hash waited
    assert cli.verify("ada@example.com", PASSWORD) == 0
    assert stored_hash().startswith("$2b$05$")  # and happened on the next verify


# --- db check ---------------------------------------------------------------------------------


def test_db_check_is_exit_0_on_a_good_database_and_reports_what_it_holds(cli: Cli) -> None:
    cli.create("ada@example.com", "Ada")
    cli.ok("deactivate", "ada@example.com")

    out = one_line(cli.ok("db", "check").stdout)

    assert out.startswith("ok: ")
    assert f"schema version {SCHEMA_VERSION}, 1 users, 2 events, 0 pending deliveries" in out
    assert cli.events()[-1]["hash"] in out  # the audit chain's head


@pytest.mark.usefixtures("nothing_yet")
def test_db_check_without_a_database_is_exit_6(cli: Cli) -> None:
    result = cli("db", "check")
    assert result.exit_code == 6
    assert result.stdout == ""
    one_line(result.stderr)


# --- db backup ----------------------------------------------------------------------------------


def check_backup(path: Path) -> int:
    """A sound, private, self-contained usermgr SQLite file, whatever the engine backed
    up; returns its user count."""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not Path(f"{path}-wal").exists() or os.stat(f"{path}-wal").st_size == 0
    alone = path.with_name(path.name + ".alone")
    shutil.copyfile(path, alone)  # the file by itself, without any side files
    conn = sqlite3.connect(f"file:{alone}?mode=ro", uri=True)
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


@pytest.mark.slow
def test_db_backup_while_a_writer_runs_is_a_consistent_private_copy(tmp_path: Path, cli: Cli) -> None:
    cli.create("seed@example.com", "Seed", password=None)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, USERMGR, str(stop)], stderr=subprocess.PIPE, text=True)
    old_umask = os.umask(0o022)
    try:
        deadline = time.monotonic() + 30
        while cli.listing()["total"] < 1 + BATCH and time.monotonic() < deadline:
            time.sleep(0.05)
        counts = []
        for name in ("first.db", "second.db", "third.db"):
            target = tmp_path / "backups" / name
            target.parent.mkdir(exist_ok=True)
            cli.ok("db", "backup", str(target))
            counts.append(check_backup(target))
            time.sleep(0.2)
        assert writer.poll() is None, "the writer stopped before the backups were taken"
    finally:
        stop.touch()
        _, writer_errors = writer.communicate(timeout=60)
        os.umask(old_umask)
    assert writer.returncode == 0, writer_errors
    # Each writer import commits BATCH users at once: a consistent copy holds whole batches.
    assert all((count - 1) % BATCH == 0 and count > 1 for count in counts), counts
    assert counts == sorted(counts)


def test_db_backup_refuses_an_existing_file_and_replaces_it_with_a_private_copy_with_force(tmp_path: Path, cli: Cli) -> None:
    cli.create("ada@example.com", "Ada")
    target = tmp_path / "backup.db"
    target.write_text("old junk")
    os.chmod(target, 0o644)

    refused = cli("db", "backup", str(target))
    assert refused.exit_code == 2
    assert "--force" in one_line(refused.stderr)
    assert target.read_text() == "old junk"

    cli.ok("db", "backup", str(target), "--force")
    assert check_backup(target) == 1
    assert cli("--db", str(target), "verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    assert cli.json("--db", str(target), "show", "ada@example.com", "--json") == cli.json("show", "ada@example.com", "--json")
    assert sorted(p.name for p in tmp_path.glob(".backup.db*")) == []  # no temporary file left behind


def test_db_backup_into_a_directory_is_exit_2_even_with_force(tmp_path: Path, cli: Cli) -> None:
    cli.create("ada@example.com", "Ada")
    target = tmp_path / "backups"
    target.mkdir()
    for extra in ([], ["--force"]):
        result = cli("db", "backup", str(target), *extra)
        assert result.exit_code == 2, (extra, result.stderr)
        one_line(result.stderr)
    assert list(target.iterdir()) == []
