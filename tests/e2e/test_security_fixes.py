"""Issue 7, item by item: each test fails on usermgr 0.1.0 and passes now. Each checks
the exit code, the one line on stderr, and that nothing changed. In-process with
CliRunner, except where a real process is the point (stdout timing, signals, a full
disk, another user). Racing first starts are in tests/integration/test_first_start_race.py.

Already tested elsewhere, so not here: two hooks with one name (exit 2,
tests/integration/test_config_validation.py) and a hook dying with a SIGKILLed
usermgr (tests/integration/test_hook_runner.py)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.helpers import PASSWORD, USERMGR, default_sigint, invoke_app, run_usermgr
from tests.helpers import sqlite_migration
from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID

# --- helpers -------------------------------------------------------------------------


class Outcome:
    """What one run of usermgr left: exit code, stdout, stderr (in-process or a real process)."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"Outcome({self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def usermgr(*args: str, input: str | None = None, process: bool = False) -> Outcome:
    if process:
        done = run_usermgr(*args, input=input, timeout=30)
        assert "Traceback" not in done.stdout + done.stderr
        return Outcome(done.returncode, done.stdout, done.stderr)
    result = invoke_app(*args, input=input)
    gc.collect()  # close what an in-process run left to the collector, as an exit would
    return Outcome(result.exit_code, result.stdout, result.stderr)


def ok(*args: str, input: str | None = None) -> Outcome:
    outcome = usermgr(*args, input=input)
    assert outcome.code == 0, outcome
    return outcome


def one_line(outcome: Outcome, code: int) -> str:
    """The run failed with `code` and said so in exactly one line on stderr."""
    assert outcome.code == code, outcome
    assert outcome.stderr.endswith("\n") and outcome.stderr.count("\n") == 1, outcome
    assert outcome.stderr.startswith("usermgr: "), outcome
    return outcome.stderr


def create(email: str, *extra: str) -> dict[str, Any]:
    out = ok("create", email, "--name", "Test User", "--password-stdin", "--json", *extra, input=PASSWORD + "\n")
    return json.loads(out.stdout)


def script(path: Path, body: str) -> Path:
    """An executable /bin/sh program."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def hook_toml(name: str, on: str, command: list[str], timeout: float = 10) -> str:
    return (
        f"\n[[hooks]]\nname = {json.dumps(name)}\non = {json.dumps(on)}\n"
        f"command = {json.dumps(command)}\ntimeout = {timeout}\n"
    )


def configure(config: Path, *hooks: str, rounds: int = 4) -> None:
    config.write_text(f"[security]\nbcrypt_rounds = {rounds}\n" + "".join(hooks))


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def untouched(path: Path) -> tuple[int, int, int]:
    """What must not change about a path usermgr was told to use: type and mode, mtime, inode."""
    st = os.lstat(path)
    return st.st_mode, st.st_mtime_ns, st.st_ino


# --- 1. a database never runs a command: hooks by name ---------------------------------


class TestHooksByName:
    def test_a_delivery_edited_to_name_another_hook_runs_that_hooks_configured_command_and_nothing_from_the_row(
        self, tmp_path: Path, config_path: Path, db_path: Path
    ) -> None:
        a_log, b_log, marker = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "evil-ran"
        a = script(tmp_path / "a.sh", f'echo "$USERMGR_EVENT_ID" >> "{a_log}"\nexit 1\n')
        b = script(tmp_path / "b.sh", f'echo "$USERMGR_EVENT_ID" >> "{b_log}"\n')
        evil = script(tmp_path / "evil.sh", f'touch "{marker}"\n')
        configure(config_path, hook_toml("a", "UserCreated", [str(a)]), hook_toml("b", "UserDeleted", [str(b)]))
        create("ada@example.com")
        [(delivery_id, event_id, hook)] = query(db_path, "SELECT d.id, d.event_id, d.hook FROM deliveries d")
        assert (hook, lines(a_log)) == ("a", [event_id])
        # The owner of the file rewrites the row, and gives it a command as 0.1.0 stored them.
        query(db_path, "UPDATE deliveries SET hook = 'b' WHERE id = ?", (delivery_id,))
        query(db_path, "ALTER TABLE deliveries ADD COLUMN command TEXT")
        query(db_path, "UPDATE deliveries SET command = ?", (json.dumps([str(evil)]),))

        retry = ok("hooks", "retry")

        assert "delivered 1, failed 0" in retry.stdout
        assert lines(b_log) == [event_id]  # hook b, as configured, on the row's event
        assert lines(a_log) == [event_id]  # hook a did not run again
        assert not marker.exists()
        assert query(db_path, "SELECT count(*) FROM deliveries") == [(0,)]

    def test_a_delivery_has_no_command_and_one_for_an_unconfigured_hook_is_listed_never_run_and_can_be_dropped(
        self, tmp_path: Path, config_path: Path, db_path: Path
    ) -> None:
        log = tmp_path / "ran.log"
        real = script(tmp_path / "real.sh", f'echo "$USERMGR_EVENT_ID" >> "{log}"\n')
        configure(config_path, hook_toml("real", "UserDeleted", [str(real)]))
        user = create("ada@example.com")
        columns = [row[1] for row in query(db_path, "PRAGMA table_info(deliveries)")]
        assert "command" not in columns and "timeout" not in columns and "hook" in columns
        [(event_id,)] = query(db_path, "SELECT id FROM events")
        query(db_path, "INSERT INTO deliveries (event_id, hook, attempts) VALUES (?, 'ghost', 1)", (event_id,))
        [(ghost,)] = query(db_path, "SELECT id FROM deliveries")

        listed = ok("hooks", "list").stdout
        [row] = [line for line in listed.splitlines() if line.strip().startswith(f"{ghost}:")]
        assert "'ghost'" in row and "no longer configured" in row and user["id"] in row

        for _ in range(2):
            retry = usermgr("hooks", "retry")
            assert "still fail" in one_line(retry, 7)
            assert "1 without a configured hook" in retry.stdout
        assert lines(log) == []  # not even the one hook that is configured
        assert query(db_path, "SELECT id, hook, attempts FROM deliveries") == [(ghost, "ghost", 1)]

        assert "discarded 1" in ok("hooks", "discard", str(ghost)).stdout
        assert query(db_path, "SELECT count(*) FROM deliveries") == [(0,)]
        assert "delivered 0, failed 0" in ok("hooks", "retry").stdout

    def test_a_0_1_0_database_keeps_only_hook_names_matched_against_the_config_and_never_runs_a_stored_argv(
        self, tmp_path: Path, config_path: Path, db_path: Path
    ) -> None:
        then_log, now_log, marker = tmp_path / "then.log", tmp_path / "now.log", tmp_path / "evil-ran"
        then = script(tmp_path / "then.sh", f'echo "$USERMGR_EVENT_ID" >> "{then_log}"\n')
        now = script(tmp_path / "now.sh", f'echo "$USERMGR_EVENT_ID" >> "{now_log}"\n')
        evil = script(tmp_path / "evil.sh", f'id -u > "{marker}"\n')
        matched, foreign, wrong_type = usermgr_0_1_0_database(
            db_path, [("UserCreated", [str(then)]), ("UserCreated", [str(evil)]), ("UserDeleted", [str(then)])]
        )
        configure(config_path, hook_toml("mailer", "UserCreated", [str(then)]))

        listed = ok("hooks", "list").stdout  # the first use migrates, matching against this config

        assert query(db_path, "PRAGMA user_version")[0][0] > 3
        columns = [row[1] for row in query(db_path, "PRAGMA table_info(deliveries)")]
        assert "command" not in columns and "timeout" not in columns
        assert query(db_path, "SELECT e.id, d.hook FROM deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.id") == [
            (matched, "mailer"),
            (foreign, None),
            (wrong_type, None),
        ]
        assert "deliveries pending: 3" in listed
        assert listed.count("no longer configured") == 2

        # The hook of that name as configured now is what runs; run as root, like a cron job.
        configure(config_path, hook_toml("mailer", "UserCreated", [str(now)]))
        retry = usermgr("hooks", "retry", process=True)
        again = usermgr("hooks", "retry", process=True)

        assert "2 deliveries still fail" in one_line(retry, 7)
        assert "delivered 1, failed 0, 2 without a configured hook" in retry.stdout
        assert "delivered 0, failed 0, 2 without a configured hook" in again.stdout
        assert lines(now_log) == [matched]
        assert lines(then_log) == []
        assert not marker.exists()


def usermgr_0_1_0_database(path: Path, deliveries: list[tuple[str, list[str]]]) -> list[str]:
    """A database as usermgr 0.1.0 left it (schema 3): one user, and per (event type, argv)
    an event with a failed delivery that stores the argv. Returns the events' ids."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number in (1, 2, 3):
        for statement in sqlite_migration(number):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    user_id, when = str(uuid.uuid4()), "2026-11-27T10:00:00.000000Z"
    conn.execute(
        "INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash, created_at)"
        " VALUES (?, 'ada@example.com', 'ada@example.com', 'Ada', 'ada', 'user', 1, NULL, ?)",
        (user_id, when),
    )
    event_ids = []
    for event_type, argv in deliveries:
        event_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO events (id, type, user_id, email_key, occurred_at, actor, data)"
            " VALUES (?, ?, ?, 'ada@example.com', ?, 'root', ?)",
            (event_id, event_type, user_id, when, json.dumps({"email": "ada@example.com"})),
        )
        conn.execute(
            "INSERT INTO deliveries (event_id, command, timeout, attempts, last_error, last_attempt_at)"
            " VALUES (?, ?, 10, 1, 'exit status 1', ?)",
            (event_id, json.dumps(argv), when),
        )
        event_ids.append(event_id)
    conn.close()
    return event_ids


# --- 2. usermgr never changes a file it does not own -----------------------------------


def char_device(path: Path) -> Path:
    # The numbers of /dev/null, but a private node: the real one is never touched.
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(path, 0o666)  # whatever the umask: a chmod to 0600 must show
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path, 0o666)
    os.chmod(path, 0o666)
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o755)
    return path


NOT_FILES = [char_device, fifo, directory]


@pytest.fixture
def users_csv(tmp_path: Path) -> Path:
    rows = tmp_path / "import.csv"
    rows.write_text("email,name\nbob@example.com,Bob\n")
    return rows


@pytest.mark.parametrize("make", NOT_FILES, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "args",
    [
        ["create", "ada@example.com", "--name", "Ada", "--password-stdin"],
        ["list"],
        ["verify", "ada@example.com", "--password-stdin"],
        ["db", "check"],
        ["db", "upgrade"],
        ["import", "{csv}"],
        ["export"],
        ["list", "--all", "--format", "csv"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_db_that_is_not_a_regular_file_is_exit_6_in_one_line_and_left_exactly_as_it_was(
    tmp_path: Path, users_csv: Path, make: Any, args: list[str]
) -> None:
    target = make(tmp_path / "not-a-file")
    before = untouched(target)
    args = [str(users_csv) if a == "{csv}" else a for a in args]

    # A real process for the FIFO: were it ever opened, a read would block for good.
    outcome = usermgr("--db", str(target), *args, input=PASSWORD + "\n", process=make is fifo)

    line = one_line(outcome, 6)
    assert str(target) in line and "untouched" in line
    assert outcome.stdout == ""
    assert untouched(target) == before
    if make is directory:
        assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["not-a-file", "import.csv", "config.toml", "home"])


@pytest.mark.parametrize("make", NOT_FILES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("force", [False, True], ids=["", "--force"])
def test_db_backup_to_a_target_that_is_not_a_regular_file_is_exit_2_and_leaves_it_untouched(
    tmp_path: Path, make: Any, force: bool
) -> None:
    create("ada@example.com")
    target = make(tmp_path / "target")
    before = untouched(target)

    outcome = usermgr("db", "backup", str(target), *(["--force"] if force else []), process=make is fifo)

    assert str(target) in one_line(outcome, 2)
    assert outcome.stdout == ""
    assert untouched(target) == before
    if make is directory:
        assert list(target.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".target")]  # no temporary left


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_folders_created_for_a_new_database_are_0700_under_umask_000_and_an_existing_one_keeps_its_mode(
    tmp_path: Path, umask_000: None
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o751)
    path = existing / "a" / "b" / "c" / "users.db"

    ok("--db", str(path), "create", "ada@example.com", "--name", "Ada", "--no-password")

    assert stat.S_IMODE(existing.stat().st_mode) == 0o751
    for folder in (existing / "a", existing / "a" / "b", existing / "a" / "b" / "c"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["users.db"]


# --- 5. import refuses hash costs that would hang verify -------------------------------


def hash_of_cost(cost: int) -> str:
    """A well-formed bcrypt hash of that cost, never computed at it (nothing verifies it)."""
    return f"$2b${cost:02d}$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"


def import_hash(tmp_path: Path, password_hash: str) -> Outcome:
    rows = tmp_path / "hashes.csv"
    rows.write_text(f"email,name,password_hash\nfirst@example.com,First,\nada@example.com,Ada,{password_hash}\n")
    return usermgr("import", str(rows))


@pytest.mark.parametrize("cost", [17, 31])
def test_import_refuses_a_hash_costlier_than_16_naming_its_line_and_writes_nothing(
    tmp_path: Path, db_path: Path, cost: int
) -> None:
    outcome = import_hash(tmp_path, hash_of_cost(cost))

    assert outcome.code == 2, outcome
    [detail, summary] = outcome.stderr.splitlines()
    assert detail.startswith("line 3: ") and f"cost {cost}" in detail
    assert summary == "usermgr: 1 invalid row(s); nothing was written"
    assert hash_of_cost(cost) not in outcome.stdout + outcome.stderr
    assert not db_path.exists()


@pytest.mark.parametrize("rounds, cost", [(4, 16), (17, 17)])
def test_import_takes_a_hash_of_cost_16_or_of_the_configured_bcrypt_rounds(
    tmp_path: Path, config_path: Path, db_path: Path, rounds: int, cost: int
) -> None:
    configure(config_path, rounds=rounds)

    outcome = import_hash(tmp_path, hash_of_cost(cost))

    assert outcome.code == 0, outcome
    assert "created 2" in outcome.stdout
    assert query(db_path, "SELECT password_hash FROM users WHERE email = 'ada@example.com'") == [(hash_of_cost(cost),)]


@pytest.mark.parametrize("prefix", ["$2a$", "$2y$"])
@pytest.mark.parametrize("cost, stored", [(4, "kept as imported"), (5, "re-hashed to $2b$04$")])
def test_2a_and_2y_hashes_import_and_verify_and_are_re_hashed_only_at_another_cost(
    tmp_path: Path, db_path: Path, prefix: str, cost: int, stored: str
) -> None:
    real = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(cost)).decode()
    foreign = prefix + real[4:]
    assert import_hash(tmp_path, foreign).code == 0

    ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
    one_line(usermgr("verify", "ada@example.com", "--password-stdin", input="not " + PASSWORD + "\n"), 5)

    [(after,)] = query(db_path, "SELECT password_hash FROM users WHERE email = 'ada@example.com'")
    if stored == "kept as imported":
        # At the configured cost, bcrypt checks $2a$ and $2y$ as $2b$: nothing to upgrade.
        assert after == foreign
    else:
        assert after.startswith("$2b$04$") and bcrypt.checkpw(PASSWORD.encode(), after.encode())
    ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")


# --- 6. the result is printed before hooks run -----------------------------------------


def read_lines_as_they_come(stream: Any, into: list[tuple[float, str]]) -> threading.Thread:
    def read() -> None:
        for line in stream:
            into.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def test_create_prints_the_new_user_and_password_before_a_slow_hook_has_finished(tmp_path: Path, config_path: Path) -> None:
    configure(config_path, hook_toml("slow", "UserCreated", ["/bin/sleep", "3"]))
    child = subprocess.Popen(
        [USERMGR, "create", "ada@example.com", "--name", "Ada", "--generate-password"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    arrived: list[tuple[float, str]] = []
    reader = read_lines_as_they_come(child.stdout, arrived)
    try:
        child.wait(timeout=30)
    finally:
        child.kill()
    ended = time.monotonic()
    reader.join(5)

    assert child.returncode == 0, child.stderr.read() if child.stderr else None
    [(_, created), (password_at, password)] = arrived
    assert created.startswith("created ada@example.com (")
    assert password.startswith("password: ") and len(password.strip()) >= len("password: ") + 12
    assert ended - password_at > 2.0, "the password came only as the 3 s hook ended"


def test_ctrl_c_during_a_hook_is_exit_130_saying_the_change_is_committed_and_leaves_the_delivery_for_retry(
    tmp_path: Path, config_path: Path, db_path: Path
) -> None:
    started, done = tmp_path / "hook-pid", tmp_path / "may-finish"
    hook = script(tmp_path / "slow.sh", f'[ -e "{done}" ] && exit 0\necho $$ > "{started}"\nexec sleep 30\n')
    configure(config_path, hook_toml("slow", "UserCreated", [str(hook)], timeout=60))
    child = subprocess.Popen(
        [USERMGR, "create", "ada@example.com", "--name", "Ada", "--generate-password"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    hook_pid = None
    try:
        deadline = time.monotonic() + 20
        while not (started.exists() and started.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        hook_pid = int(started.read_text())
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=20)
    finally:
        child.kill()
        if hook_pid is not None:
            try:
                os.kill(hook_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    assert child.returncode == 130, (stdout, stderr)
    assert stderr.count("\n") == 1 and "committed" in stderr and "Traceback" not in stderr, stderr
    assert "nothing more was changed" not in stderr
    assert stdout.startswith("created ada@example.com (") and "password: " in stdout
    assert ok("show", "ada@example.com").stdout
    assert "interrupted" in ok("hooks", "list").stdout
    done.touch()
    assert "delivered 1, failed 0" in ok("hooks", "retry").stdout
    assert query(db_path, "SELECT count(*) FROM deliveries") == [(0,)]


# --- 12. a full disk -------------------------------------------------------------------


def to_dev_full(*args: str) -> subprocess.CompletedProcess[str]:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [USERMGR, *args], stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, text=True, timeout=30
        )


@pytest.mark.parametrize("args", [["list"], ["export"], ["export", "--format", "jsonl"], ["events"]], ids=" ".join)
def test_output_to_a_full_disk_is_exit_74_in_one_line(args: list[str]) -> None:
    create("ada@example.com")

    done = to_dev_full(*args)

    assert done.returncode == 74, done.stderr
    assert done.stderr == "usermgr: cannot write the output: No space left on device\n"


def test_create_to_a_full_disk_is_exit_74_saying_the_user_was_created(db_path: Path) -> None:
    done = to_dev_full("create", "ada@example.com", "--name", "Ada", "--generate-password")

    assert done.returncode == 74, done.stderr
    assert done.stderr.count("\n") == 1 and "the change itself was made" in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr
    assert json.loads(ok("show", "ada@example.com", "--json").stdout)["email"] == "ada@example.com"


# --- 13. reads in a read-only folder ---------------------------------------------------


def unprivileged(probe_dir: Path) -> list[str]:
    """A command prefix under which permission bits bind: user nobody if that user can
    run the installed usermgr; else, for root, root without the capabilities that
    bypass them. An unprivileged test run needs none."""
    if os.geteuid() != 0:
        return []
    setpriv, runuser = shutil.which("setpriv"), shutil.which("runuser")
    if setpriv:
        nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    elif runuser:
        nobody = [runuser, "-u", "nobody", "--"]
    else:
        pytest.skip("neither setpriv nor runuser to run as another user")
    probe = subprocess.run([*nobody, USERMGR, "--version"], capture_output=True, cwd=probe_dir, timeout=30)
    if probe.returncode == 0:
        return nobody
    if setpriv is None:
        pytest.skip(f"user nobody cannot run {USERMGR} and there is no setpriv to drop root's capabilities")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder any user can reach (tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="usermgr-readonly-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        for folder, _, _ in os.walk(top):
            os.chmod(folder, 0o755)
        shutil.rmtree(top)


def test_reads_work_in_a_read_only_folder_and_a_write_there_is_exit_6_in_one_line(shared_folder: Path) -> None:
    folder, config = shared_folder / "data", shared_folder / "config.toml"
    folder.mkdir()
    db = folder / "users.db"
    # Hashed at cost 5, read at cost 4: verify would re-hash, and must succeed without.
    configure(config, rounds=5)
    env = {"USERMGR_DB": str(db), "USERMGR_CONFIG": str(config), "HOME": str(shared_folder)}
    made = run_usermgr("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n", env=env)
    assert made.returncode == 0, made.stderr
    configure(config, rounds=4)
    config.chmod(0o644)
    db.chmod(0o644)
    folder.chmod(0o555)
    assert os.listdir(folder) == ["users.db"]
    before = (db.read_bytes(), untouched(db))
    prefix = unprivileged(shared_folder)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, USERMGR, *args],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=shared_folder,
            timeout=30,
        )

    for args in (["list"], ["show", "ada@example.com"], ["verify", "ada@example.com", "--password-stdin"],
                 ["db", "check"], ["events"], ["export"]):
        done = run(*args)
        assert (done.returncode, done.stderr) == (0, ""), (args, done.stderr)
        if args[0] in ("list", "show", "export", "events"):
            assert "ada@example.com" in done.stdout, args
    write = run("create", "bob@example.com", "--name", "Bob", "--password-stdin")

    assert write.returncode == 6, write.stderr
    assert write.stderr.count("\n") == 1 and str(db) in write.stderr, write.stderr
    assert (db.read_bytes(), untouched(db)) == before
    assert os.listdir(folder) == ["users.db"]
    assert query_read_only(db, "SELECT password_hash FROM users")[0][0].startswith("$2b$05$")


def query_read_only(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# --- 14. messages that say what happened -----------------------------------------------


def test_create_on_a_device_says_it_is_not_a_database_file_not_cannot_rollback(tmp_path: Path) -> None:
    device = char_device(tmp_path / "dev")

    line = one_line(usermgr("--db", str(device), "create", "ada@example.com", "--name", "Ada", "--no-password"), 6)

    assert "device" in line and "not a database file" in line
    assert "rollback" not in line and "transaction" not in line


def test_an_id_clash_under_exists_ok_does_not_hint_at_exists_ok(tmp_path: Path, db_path: Path) -> None:
    ada = create("ada@example.com")
    rows = tmp_path / "clash.csv"
    rows.write_text(f"email,name,id\nbob@example.com,Bob,{ada['id']}\n")
    before = query(db_path, "SELECT * FROM users")

    outcome = usermgr("import", str(rows), "--exists-ok")

    assert outcome.code == 4, outcome
    [detail, summary] = outcome.stderr.splitlines()
    assert detail == f"line 2: id {ada['id']} belongs to another user"
    assert "--exists-ok" not in summary
    assert query(db_path, "SELECT * FROM users") == before


def test_db_upgrade_of_a_new_path_says_it_created_the_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "users.db"

    first = ok("--db", str(path), "db", "upgrade")
    second = ok("--db", str(path), "db", "upgrade")

    assert first.stdout.startswith("created the database at schema version ")
    assert "upgraded from 0" not in first.stdout
    assert second.stdout.endswith("up to date\n")


def test_paths_with_an_escape_and_a_newline_are_shown_escaped_on_one_line(tmp_path: Path) -> None:
    hostile = "x\x1b[31m\ny"
    folder = directory(tmp_path / hostile)  # a --db that is refused, so its path is in the message
    missing = tmp_path / f"{hostile}.csv"

    for outcome, code in (
        (usermgr("--db", str(folder), "list"), 6),
        (usermgr("import", str(missing)), 2),
    ):
        line = one_line(outcome, code)
        assert "\x1b" not in line and "\\x1b[31m\\ny" in line, line


# --- 16. a read of a database that does not exist says so, once ------------------------


@pytest.mark.parametrize(
    "args",
    [["list", "--format", "jsonl"], ["events", "--format", "jsonl"], ["export", "--format", "jsonl"]],
    ids=lambda a: a[0],
)
def test_a_read_of_a_missing_database_is_exit_0_with_no_output_and_one_line_saying_so(
    tmp_path: Path, args: list[str]
) -> None:
    path = tmp_path / "not" / "there.db"

    outcome = usermgr("--db", str(path), *args)

    assert "no usermgr database at " + str(path) in one_line(outcome, 0)
    assert outcome.stdout == ""
    assert not (tmp_path / "not").exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["show", "x@example.com"], 3, "usermgr: no user 'x@example.com'\n"),
        (["verify", "x@example.com", "--password-stdin"], 5, "usermgr: verification failed\n"),
    ],
    ids=["show", "verify"],
)
def test_a_failure_on_a_missing_database_prints_only_its_own_line(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    outcome = usermgr("--db", str(tmp_path / "there.db"), *args, input=PASSWORD + "\n")

    assert (outcome.code, outcome.stderr, outcome.stdout) == (code, message, "")
    assert not (tmp_path / "there.db").exists()
