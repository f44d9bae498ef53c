"""Hooks run for real, on each engine: small /bin/sh programs written to tmp_path,
driven through the CLI (in-process where the process boundary does not matter, and the
installed executable where it does: stdout, hanging pipes, timeouts, concurrency)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import EVERY, OTHER_PASSWORD, PASSWORD, USERMGR, Cli, invoke_app, raw_sql, run_usermgr, script

pytestmark = pytest.mark.usefixtures("engine")

ENVELOPE = {"id", "type", "user_id", "occurred_at", "actor", "data", "hash"}
MISSING_PROGRAM = "/nonexistent/usermgr-hook"
PROCESSES = "it checks the hook's processes and pipes; the delivery it records is checked on each engine by the others"


# --- helpers ---------------------------------------------------------------------


def add_hook(
    config: Path, command: list[str | Path], *, on: str = "*", timeout: float | None = None, name: str | None = None
) -> None:
    lines = ["", "[[hooks]]", f"on = {json.dumps(on)}", f"command = {json.dumps([str(c) for c in command])}"]
    if name is not None:
        lines.append(f"name = {json.dumps(name)}")
    if timeout is not None:
        lines.append(f"timeout = {timeout}")
    with config.open("a") as f:
        f.write("\n".join(lines) + "\n")


def event_rows() -> list[tuple[str, str, str]]:
    """(id, type, user_id) of every event, oldest first."""
    found = invoke_app("events", "--format", "jsonl", "--limit", EVERY)
    assert found.exit_code == 0, found.stderr
    return [(e["id"], e["type"], e["user_id"]) for e in map(json.loads, found.stdout.splitlines())]


def delivery_rows() -> list[tuple[int, str, int, str | None]]:
    """(id, event_id, attempts, last_error) of every pending delivery, read with the
    engine's driver: `hooks list` shows them only as text."""
    return raw_sql("SELECT id, event_id, attempts, last_error FROM deliveries ORDER BY id")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def pids_in(path: Path) -> list[int]:
    return [int(p) for p in lines(path) if p.strip()]


def gone(pid: int, wait: float = 5.0) -> bool:
    """True once `pid` no longer runs. A killed grandchild is re-parented to init,
    which may take a while to reap it: a zombie no longer runs either."""
    deadline = time.monotonic() + wait
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def kill_leftovers(pids: list[int]) -> None:
    """Clean up processes this test started, should the code under test leave them."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def flaky_hook(tmp_path: Path, config_path: Path) -> tuple[Path, Path]:
    """A hook that fails until its flag file exists, then logs the event id.
    Returns (flag, log)."""
    flag, log = tmp_path / "hook-may-succeed", tmp_path / "delivered.log"
    program = script(
        tmp_path / "flaky.sh",
        f'[ -e "{flag}" ] || {{ echo "not ready yet" >&2; exit 1; }}\n'
        f'echo "$USERMGR_EVENT_ID" >> "{log}"\n',
    )
    add_hook(config_path, [program])
    return flag, log


# --- a successful delivery -------------------------------------------------------


class TestDelivery:
    def test_a_hook_receives_the_event_as_one_json_object_on_stdin_and_its_ids_in_its_environment(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        stdin_copy, env_copy = tmp_path / "stdin.json", tmp_path / "env.txt"
        program = script(tmp_path / "hook.sh", f'cat > "{stdin_copy}"\nenv > "{env_copy}"\n')
        add_hook(config_path, [program], on="UserCreated")

        result = cli("create", "ada@example.com", "--name", "Ada", "--password-stdin", "--json", input=PASSWORD + "\n")

        assert result.exit_code == 0
        assert result.stderr == ""
        user = json.loads(result.stdout)
        payload = json.loads(stdin_copy.read_text())
        assert set(payload) == ENVELOPE
        assert payload["type"] == "UserCreated"
        assert payload["user_id"] == user["id"]
        assert payload["data"]["email"] == "ada@example.com"
        assert payload["data"]["name"] == "Ada"
        assert payload["actor"]
        [(event_id, event_type, user_id)] = event_rows()
        assert (payload["id"], payload["type"], payload["user_id"]) == (event_id, event_type, user_id)
        # The payload is the event as the audit log shows it.
        [logged] = json.loads(cli.ok("events", "--format", "json").stdout)
        assert payload == logged
        env = dict(line.split("=", 1) for line in env_copy.read_text().splitlines() if "=" in line)
        assert env["USERMGR_EVENT_TYPE"] == "UserCreated"
        assert env["USERMGR_EVENT_ID"] == event_id
        assert env["USERMGR_USER_ID"] == user["id"]
        # Delivered: nothing is left waiting for a retry.
        assert delivery_rows() == []
        assert "deliveries pending: 0" in cli.hooks_list()

    def test_a_hook_runs_only_for_its_event_type_and_a_star_hook_for_every_event(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        deleted_log, all_log = tmp_path / "deleted.log", tmp_path / "all.log"
        on_delete = script(tmp_path / "on-delete.sh", f'echo "$USERMGR_EVENT_TYPE" >> "{deleted_log}"\n')
        on_all = script(tmp_path / "on-all.sh", f'echo "$USERMGR_EVENT_TYPE" >> "{all_log}"\n')
        add_hook(config_path, [on_delete], on="UserDeleted")
        add_hook(config_path, [on_all], on="*")

        cli.create("ada@example.com")
        cli.ok("deactivate", "ada@example.com")
        cli.ok("set-role", "ada@example.com", "admin")
        cli.ok("delete", "ada@example.com", "--yes")

        assert lines(deleted_log) == ["UserDeleted"]
        assert lines(all_log) == ["UserCreated", "UserDeactivated", "UserRoleChanged", "UserDeleted"]
        assert delivery_rows() == []

    def test_a_hook_gets_its_configured_arguments_literally_with_no_shell_expansion(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        args_copy = tmp_path / "args.txt"
        program = script(tmp_path / "args.sh", f'for a in "$@"; do printf "%s\\n" "$a" >> "{args_copy}"; done\n')
        literal = ["--quiet", "$USERMGR_EVENT_TYPE", "*", "a b", "$(id)"]
        add_hook(config_path, [program, *literal])

        cli.create("ada@example.com")

        assert lines(args_copy) == literal

    @pytest.mark.sqlite_only(PROCESSES)
    def test_hook_output_never_reaches_the_stdout_of_usermgr(
        self, tmp_path: Path, config_path: Path
    ) -> None:
        program = script(
            tmp_path / "noisy.sh",
            "echo 'hook says hello on stdout'\necho '{\"not\": \"usermgr\"}'\n"
            "echo 'hook says hello on stderr' >&2\ncat\nexit 0\n",
        )
        add_hook(config_path, [program])

        created = run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password", "--json")
        deleted = run_usermgr("delete", "ada@example.com", "--yes")

        assert created.returncode == 0, created.stderr
        assert created.stdout.count("\n") == 1
        user = json.loads(created.stdout)
        assert user["email"] == "ada@example.com"
        assert "hook says" not in created.stdout + created.stderr
        assert created.stderr == ""
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout == f"deleted: ada@example.com ({user['id']})\n"
        assert deleted.stderr == ""
        assert [t for _, t, _ in event_rows()] == ["UserCreated", "UserDeleted"]
        assert delivery_rows() == []


# --- failed deliveries -------------------------------------------------------------


class TestFailure:
    def test_a_hook_that_exits_non_zero_is_recorded_and_reported_on_one_line_and_the_change_stays(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        program = script(
            tmp_path / "fails.sh", "echo 'some progress on stdout'\necho 'mail server refused' >&2\nexit 3\n"
        )
        add_hook(config_path, [program], on="UserCreated")

        result = run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password", "--json")

        assert result.returncode == 0
        user = json.loads(result.stdout)
        assert result.stdout.count("\n") == 1
        [line] = result.stderr.splitlines()
        assert str(program) in line
        assert "exit status 3" in line
        assert "hooks retry" in line
        # The user change is committed whatever the hook did.
        assert cli.json("show", "ada@example.com", "--json")["id"] == user["id"]
        [(event_id, event_type, _)] = event_rows()
        [(delivery_id, delivered_event, attempts, error)] = delivery_rows()
        assert (delivered_event, attempts) == (event_id, 1)
        assert error is not None and "exit status 3" in error and "mail server refused" in error
        listing = cli.hooks_list()
        assert "deliveries pending: 1" in listing
        [pending] = [ln for ln in listing.splitlines() if ln.strip().startswith(f"{delivery_id}:")]
        assert event_type in pending and event_id in pending and user["id"] in pending
        assert "failed 1x" in pending
        assert "exit status 3: mail server refused" in pending

    @pytest.mark.parametrize("kind", ["missing", "not executable"])
    def test_a_hook_program_that_cannot_be_run_is_a_recorded_failure(
        self, cli: Cli, tmp_path: Path, config_path: Path, kind: str
    ) -> None:
        program = tmp_path / "bin" / "send-welcome"
        if kind == "not executable":
            program.parent.mkdir()
            program.write_text("#!/bin/sh\nexit 0\n")
            program.chmod(0o644)
        add_hook(config_path, [program, "--quiet"])

        result = cli("create", "ada@example.com", "--name", "Ada", "--no-password")

        assert result.exit_code == 0
        assert result.stdout.startswith("created ada@example.com")
        [line] = result.stderr.splitlines()
        assert f"cannot run {program}" in line
        [(_, _, attempts, error)] = delivery_rows()
        assert attempts == 1
        assert error.startswith(f"cannot run {program}")
        listing = cli.hooks_list()
        assert "failed 1x" in listing and f"cannot run {program}" in listing
        assert json.dumps([str(program), "--quiet"]) in listing
        assert cli.ok("show", "ada@example.com").exit_code == 0

    def test_the_error_kept_from_a_failing_hook_is_one_printable_line(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        program = script(
            tmp_path / "escapes.sh",
            "printf 'first line\\nsecond line\\n'\nprintf '\\033[31mred\\033[0m alert\\a\\n'\nexit 9\n",
        )
        add_hook(config_path, [program])

        result = cli("create", "ada@example.com", "--name", "Ada", "--no-password")

        assert result.exit_code == 0
        [line] = result.stderr.splitlines()
        assert "\x1b" not in line and "\a" not in line
        assert "exit status 9" in line and "red" in line and "alert" in line
        assert "first line" not in line
        [(_, _, _, error)] = delivery_rows()
        assert error.isprintable()

    @pytest.mark.sqlite_only(PROCESSES)
    def test_a_hook_past_its_timeout_is_killed_with_its_whole_process_group(
        self, tmp_path: Path, config_path: Path
    ) -> None:
        pid_file = tmp_path / "pids"
        program = script(
            tmp_path / "slow.sh",
            f'echo $$ > "{pid_file}"\n'
            f'sleep 300 &\necho $! >> "{pid_file}"\n'
            f'sleep 300 &\necho $! >> "{pid_file}"\n'
            "wait\n",
        )
        add_hook(config_path, [program], timeout=0.5)
        try:
            started = time.monotonic()
            result = run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password", timeout=30)
            elapsed = time.monotonic() - started
            pids = pids_in(pid_file)

            assert result.returncode == 0
            assert result.stdout.startswith("created ada@example.com")
            assert elapsed < 15, elapsed
            [line] = result.stderr.splitlines()
            assert "timed out" in line
            assert len(pids) == 3, pids  # the hook and its two grandchildren started
            for pid in pids:
                assert gone(pid), f"process {pid} of the hook's group still runs"
            [(_, _, attempts, error)] = delivery_rows()
            assert attempts == 1 and "timed out" in error
        finally:
            kill_leftovers(pids_in(pid_file))

    @pytest.mark.sqlite_only(PROCESSES)
    def test_a_backgrounded_grandchild_holding_the_hooks_output_open_does_not_make_usermgr_wait(
        self, tmp_path: Path, config_path: Path
    ) -> None:
        pid_file = tmp_path / "pid"
        program = script(
            tmp_path / "detaches.sh",
            f'sleep 30 &\necho $! > "{pid_file}"\necho "left a child behind"\nexit 0\n',
        )
        add_hook(config_path, [program], timeout=20)
        try:
            started = time.monotonic()
            result = run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password", "--json", timeout=40)
            elapsed = time.monotonic() - started

            assert result.returncode == 0, result.stderr
            assert elapsed < 10, f"usermgr waited {elapsed:.1f}s for the hook's grandchild"
            assert json.loads(result.stdout)["email"] == "ada@example.com"
            assert result.stderr == ""
            assert pids_in(pid_file), "the hook did not start its grandchild"
            assert delivery_rows() == []
        finally:
            kill_leftovers(pids_in(pid_file))


# --- what hooks must never see, and when they must not run ------------------------


class TestSafety:
    def test_shell_syntax_in_a_name_is_never_run_and_reaches_the_hook_literally(
        self, cli: Cli, tmp_path: Path, config_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        payloads = tmp_path / "payloads.jsonl"
        program = script(tmp_path / "hook.sh", f'cat >> "{payloads}"\necho >> "{payloads}"\n')
        add_hook(config_path, [program])
        # Relative names (a name holds 200 characters at most): usermgr and its hook
        # run in tmp_path, so that is where a shell would create them.
        monkeypatch.chdir(tmp_path)
        traps = [tmp_path / f"pwned-{i}" for i in range(4)]
        name = "x; touch pwned-0 $(touch pwned-1) `touch pwned-2`"
        renamed = "y' && touch pwned-3 #"

        cli.create("ada@example.com", name)
        cli.ok("update", "ada@example.com", "--name", renamed)

        for trap in traps:
            assert not trap.exists()
        created, updated = [json.loads(line) for line in lines(payloads) if line]
        assert created["data"]["name"] == name
        assert updated["data"]["changes"]["name"] == [name, renamed]

    def test_neither_payload_nor_environment_of_a_hook_holds_a_password_or_a_hash(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        capture = tmp_path / "capture.txt"
        program = script(
            tmp_path / "hook.sh",
            f'echo "--- $USERMGR_EVENT_TYPE" >> "{capture}"\ncat >> "{capture}"\nenv >> "{capture}"\n',
        )
        add_hook(config_path, [program])
        password_file = tmp_path / "pw"
        password_file.write_text(OTHER_PASSWORD + "\n")

        cli.create("ada@example.com", "Ada", password=PASSWORD)
        cli.ok("passwd", "ada@example.com", "--password-file", str(password_file))
        generated = json.loads(cli.ok("passwd", "ada@example.com", "--generate-password", "--json").stdout)["password"]
        cli.create("bob@example.com", "Bob", password=OTHER_PASSWORD)

        text = capture.read_text()
        assert [ln for ln in text.splitlines() if ln.startswith("--- ")] == [
            "--- UserCreated",
            "--- UserPasswordChanged",
            "--- UserPasswordChanged",
            "--- UserCreated",
        ]
        stored = cli.stored()["ada@example.com"]["password_hash"]
        for secret in (PASSWORD, OTHER_PASSWORD, generated, stored, "$2b$", "$2a$", "$2y$"):
            assert secret not in text

    def test_a_no_op_writes_no_event_and_runs_no_hook(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        log = tmp_path / "log"
        program = script(tmp_path / "hook.sh", f'echo "$USERMGR_EVENT_TYPE" >> "{log}"\n')
        add_hook(config_path, [program])
        cli.create("ada@example.com", "Ada")
        before = event_rows()

        cli.ok("activate", "ada@example.com")
        cli.ok("set-role", "ada@example.com", "user")
        cli.ok("update", "ada@example.com", "--name", "Ada")
        cli.ok("update", "ada@example.com", "--email", "ada@example.com")
        cli.ok("create", "ada@example.com", "--name", "Other", "--no-password", "--exists-ok")

        assert event_rows() == before
        assert lines(log) == ["UserCreated"]
        assert delivery_rows() == []

    def test_a_failed_command_writes_no_event_and_runs_no_hook(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        log = tmp_path / "log"
        program = script(tmp_path / "hook.sh", f'echo "$USERMGR_EVENT_TYPE" >> "{log}"\n')
        add_hook(config_path, [program])
        cli.create("ada@example.com", "Ada")
        cli.create("bob@example.com", "Bob")
        before = event_rows()

        duplicate = cli("create", "ADA@example.com", "--name", "Again", "--no-password")
        taken = cli("update", "bob@example.com", "--email", "ada@example.com")
        missing = cli("deactivate", "nobody@example.com")
        bad_role = cli("set-role", "ada@example.com", "root")
        short = cli("passwd", "ada@example.com", "--password-stdin", input="short\n")

        assert (duplicate.exit_code, taken.exit_code, missing.exit_code) == (4, 4, 3)
        assert (bad_role.exit_code, short.exit_code) == (2, 2)
        assert event_rows() == before
        assert lines(log) == ["UserCreated", "UserCreated"]
        assert delivery_rows() == []


# --- hooks retry and discard -------------------------------------------------------


class TestRetry:
    def test_retry_delivers_a_hook_that_works_now_forgets_it_and_exits_0(
        self, cli: Cli, flaky_hook: tuple[Path, Path]
    ) -> None:
        flag, log = flaky_hook
        cli.create("ada@example.com")
        [(event_id, _, _)] = event_rows()
        assert [(e, a) for _, e, a, _ in delivery_rows()] == [(event_id, 1)]
        flag.touch()

        result = cli("hooks", "retry")

        assert result.exit_code == 0, result.stderr
        assert "delivered 1, failed 0" in result.stdout
        assert result.stderr == ""
        assert lines(log) == [event_id]
        assert delivery_rows() == []
        assert "deliveries pending: 0" in cli.hooks_list()
        # Forgotten: a second retry delivers nothing again.
        again = cli("hooks", "retry")
        assert again.exit_code == 0
        assert "delivered 0, failed 0" in again.stdout
        assert lines(log) == [event_id]

    def test_retry_of_a_hook_that_still_fails_exits_7_and_counts_the_attempt(
        self, cli: Cli, flaky_hook: tuple[Path, Path]
    ) -> None:
        cli.create("ada@example.com")
        [(delivery_id, _, attempts, _)] = delivery_rows()
        assert attempts == 1

        first = cli("hooks", "retry")
        second = cli("hooks", "retry")

        assert (first.exit_code, second.exit_code) == (7, 7)
        assert "delivered 0, failed 1" in first.stdout
        assert "not ready yet" in first.stderr
        assert first.stderr.splitlines()[-1].startswith("usermgr: ")
        [(same_id, _, attempts, error)] = delivery_rows()
        assert (same_id, attempts) == (delivery_id, 3)
        assert "exit status 1: not ready yet" in error
        assert "failed 3x" in cli.hooks_list()

    def test_retry_runs_pending_deliveries_oldest_first(
        self, cli: Cli, flaky_hook: tuple[Path, Path]
    ) -> None:
        flag, log = flaky_hook
        for name in ("carol", "alice", "bob"):
            cli.create(f"{name}@example.com", name)
        events = [event_id for event_id, _, _ in event_rows()]
        assert len(delivery_rows()) == 3
        flag.touch()

        result = cli("hooks", "retry")

        assert result.exit_code == 0
        assert "delivered 3, failed 0" in result.stdout
        assert lines(log) == events

    def test_retry_runs_the_hook_of_that_name_as_the_config_defines_it_now(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        first_log, now_log = tmp_path / "first.log", tmp_path / "now.log"
        first = script(tmp_path / "first.sh", f'echo "$USERMGR_EVENT_ID" >> "{first_log}"\nexit 1\n')
        now = script(tmp_path / "now.sh", f'echo "$USERMGR_EVENT_ID" >> "{now_log}"\n')
        add_hook(config_path, [first], name="audit")
        cli.create("ada@example.com")
        [(event_id, _, _)] = event_rows()
        config_path.write_text("[security]\nbcrypt_rounds = 4\n")
        add_hook(config_path, [now], name="audit")

        result = cli("hooks", "retry")

        assert result.exit_code == 0, result.stderr
        assert lines(first_log) == [event_id]
        assert lines(now_log) == [event_id]

    def test_retry_with_nothing_pending_exits_0(self, cli: Cli) -> None:
        result = cli("hooks", "retry")
        assert result.exit_code == 0
        assert "delivered 0, failed 0" in result.stdout

    def test_a_hook_whose_program_was_missing_is_delivered_by_retry_once_installed(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        program, log = tmp_path / "later.sh", tmp_path / "log"
        add_hook(config_path, [program])
        user = cli.create("ada@example.com")
        [(event_id, _, _)] = event_rows()
        assert len(delivery_rows()) == 1
        script(program, f'cat > "{log}"\n')

        result = cli("hooks", "retry")

        assert result.exit_code == 0
        payload = json.loads(log.read_text())
        assert (payload["id"], payload["user_id"], payload["type"]) == (event_id, user["id"], "UserCreated")
        assert delivery_rows() == []

    def test_a_delivery_committed_but_never_run_before_a_crash_is_delivered_by_retry(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        # The outbox: the UoW writes a delivery row in the change's transaction; a
        # process that died right after the commit leaves it there, never attempted.
        user = cli.create("ada@example.com")
        [(event_id, _, _)] = event_rows()
        log = tmp_path / "log"
        program = script(tmp_path / "hook.sh", f'cat > "{log}"\n')
        add_hook(config_path, [program], name="mailer")
        raw_sql("INSERT INTO deliveries (event_id, hook) VALUES (?, ?)", (event_id, "mailer"))
        assert "not yet run" in cli.hooks_list()

        result = cli("hooks", "retry")

        assert result.exit_code == 0, result.stderr
        assert "delivered 1, failed 0" in result.stdout
        payload = json.loads(log.read_text())
        assert (payload["id"], payload["user_id"]) == (event_id, user["id"])
        assert delivery_rows() == []

    def test_a_delivery_claimed_by_another_runner_is_shown_as_such_and_retry_leaves_it(
        self, cli: Cli, config_path: Path
    ) -> None:
        add_hook(config_path, [MISSING_PROGRAM], timeout=5)
        cli.ok("create", "ada@example.com", "--name", "Ada", "--no-password")  # the hook fails
        assert len(delivery_rows()) == 1
        raw_sql("UPDATE deliveries SET claimed_until = '9999-12-31T00:00:00.000000Z'")

        assert "being delivered by another usermgr" in cli.hooks_list()
        retried = cli.ok("hooks", "retry")

        assert "1 being delivered by another usermgr" in retried.stdout, retried.stdout
        assert raw_sql("SELECT claimed_until FROM deliveries") == [("9999-12-31T00:00:00.000000Z",)]

    def test_concurrent_retries_deliver_every_pending_delivery_exactly_once(
        self, cli: Cli, tmp_path: Path, config_path: Path
    ) -> None:
        flag, log = tmp_path / "ready", tmp_path / "log"
        program = script(
            tmp_path / "slowish.sh",
            f'[ -e "{flag}" ] || exit 1\necho "$USERMGR_EVENT_ID" >> "{log}"\nsleep 0.2\n',
        )
        add_hook(config_path, [program])
        users = tmp_path / "users.csv"
        users.write_text("email,name\n" + "".join(f"user{i}@example.com,User {i}\n" for i in range(8)))
        cli.ok("import", str(users))
        events = [event_id for event_id, _, _ in event_rows()]
        assert len(events) == 8
        assert len(delivery_rows()) == 8
        flag.touch()

        retries = [
            subprocess.Popen(
                [USERMGR, "hooks", "retry"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=60) for p in retries]

        assert [p.returncode for p in retries] == [0, 0, 0, 0], outputs
        delivered = sorted(lines(log))
        assert delivered == sorted(events)  # every event id exactly once
        counts = [int(out.split("delivered ")[1].split(",")[0]) for out, _ in outputs]
        assert sum(counts) == 8
        assert delivery_rows() == []


class TestDiscard:
    @pytest.fixture
    def three_pending(self, cli: Cli, flaky_hook: tuple[Path, Path]) -> list[int]:
        for name in ("ada", "bob", "cy"):
            cli.create(f"{name}@example.com", name)
        ids = [d[0] for d in delivery_rows()]
        assert len(ids) == 3
        return ids

    def test_discard_id_drops_that_delivery_only_and_keeps_the_event(
        self, cli: Cli, three_pending: list[int]
    ) -> None:
        result = cli("hooks", "discard", str(three_pending[1]))

        assert result.exit_code == 0
        assert "discarded 1" in result.stdout
        assert [d[0] for d in delivery_rows()] == [three_pending[0], three_pending[2]]
        assert len(event_rows()) == 3
        assert "deliveries pending: 2" in cli.hooks_list()

    def test_discard_all_drops_every_delivery_so_retry_has_nothing_to_do(
        self, cli: Cli, three_pending: list[int], flaky_hook: tuple[Path, Path]
    ) -> None:
        flag, log = flaky_hook
        result = cli("hooks", "discard", "--all")

        assert result.exit_code == 0
        assert "discarded 3" in result.stdout
        assert delivery_rows() == []
        assert len(event_rows()) == 3
        flag.touch()
        assert "delivered 0, failed 0" in cli.ok("hooks", "retry").stdout
        assert lines(log) == []

    @pytest.mark.parametrize("args", [["999"], [], ["--all", "1"]], ids=["unknown id", "neither", "both"])
    def test_discard_without_exactly_one_existing_target_exits_2_and_drops_nothing(
        self, cli: Cli, three_pending: list[int], args: list[str]
    ) -> None:
        before = delivery_rows()

        result = cli("hooks", "discard", *args)

        assert result.exit_code == 2
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert "hooks list" in line or "--all" in line
        assert delivery_rows() == before
    def test_discard_of_an_id_too_large_for_sqlite_is_an_unknown_id(
        self, cli: Cli, three_pending: list[int]
    ) -> None:
        result = cli("hooks", "discard", "99999999999999999999")
        assert result.exit_code == 2
        assert len(delivery_rows()) == 3
