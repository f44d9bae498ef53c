"""The hook runner on its own: run_hook called directly on small /bin/sh programs
written to tmp_path, for what the CLI tests in test_hooks.py cannot see (memory, disk,
pipes, hostile events, usermgr dying under a running hook)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import script
from usermgr.infrastructure.hooks import run_hook

EVENT: dict[str, Any] = {
    "id": "0b5e4c0e-4b8e-4f43-9d52-7c1f0c1f1a11",
    "type": "UserCreated",
    "user_id": "5d1f6a3c-2a51-4c56-bb0a-1f9b2d0f7e22",
    "occurred_at": "2026-01-02T03:04:05.000000Z",
    "actor": "root",
    "data": {"email": "élise@example.com", "name": "Élise"},
}
MiB = 1 << 20


def runs(pid: int) -> bool:
    """Whether `pid` still runs. A hook orphaned by its parent's death is reaped by
    init or a subreaper, which may take a while or never happen: a zombie runs no more."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for_pid(path: Path, wait: float = 10.0) -> int:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"no pid in {path} after {wait}s")


def kill_leftover(pid: int) -> None:
    """Clean up a process this test started, should the code under test leave it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def python(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    """A Python process running `code`, with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **kwargs.pop("env", {})}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


class TestOutput:
    @pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures memory through /proc")
    def test_a_hook_writing_200_mb_costs_usermgr_neither_memory_nor_disk(self, tmp_path: Path) -> None:
        program = script(
            tmp_path / "floods.sh",
            "yes 'some progress' | head -c 200000000\nprintf '\\nfinal words\\n' >&2\nexit 1\n",
        )
        temp = tmp_path / "temp"
        temp.mkdir()
        # The peak is VmHWM, not getrusage's ru_maxrss: that one carries over the peak
        # of the process before exec, here the whole of pytest.
        runner = python(
            f"""
            import json
            from pathlib import Path
            from usermgr.infrastructure.hooks import run_hook
            error = run_hook([{str(program)!r}], {EVENT!r}, 60)
            [peak] = [ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmHWM:")]
            print(json.dumps([error, int(peak.split()[1])]))
            """,
            env={"TMPDIR": str(temp)},
        )
        started = time.monotonic()
        out, err = runner.communicate(timeout=120)
        elapsed = time.monotonic() - started

        assert runner.returncode == 0, err
        error, peak_kib = json.loads(out)
        assert error == "exit status 1: final words"
        assert elapsed < 30, elapsed
        assert peak_kib * 1024 < 100 * MiB, f"usermgr peaked at {peak_kib} KiB"
        assert list(temp.iterdir()) == []

    def test_a_hooks_stdout_and_stderr_are_a_pipe_never_a_file(self, tmp_path: Path) -> None:
        # A file, even one already unlinked (O_TMPFILE), would fill the disk under `yes`.
        program = script(
            tmp_path / "where.sh",
            '[ -p /dev/stdout ] || { echo "stdout is no pipe"; exit 3; }\n'
            '[ -p /dev/stderr ] || { echo "stderr is no pipe"; exit 4; }\n',
        )
        assert run_hook([str(program)], EVENT, 10) is None

    def test_a_hook_that_floods_its_output_past_its_timeout_is_killed_on_time(self, tmp_path: Path) -> None:
        program = script(tmp_path / "yes.sh", "exec yes\n")

        started = time.monotonic()
        error = run_hook([str(program)], EVENT, 1)
        elapsed = time.monotonic() - started

        assert error == "timed out after 1s; killed with its children"
        assert 1 <= elapsed < 4, elapsed

    def test_a_grandchild_holding_the_output_pipe_does_not_keep_usermgr_past_the_hooks_exit(
        self, tmp_path: Path
    ) -> None:
        pid_file = tmp_path / "pid"
        program = script(tmp_path / "detaches.sh", f'sleep 30 &\necho $! > "{pid_file}"\nexit 0\n')
        try:
            started = time.monotonic()
            error = run_hook([str(program)], EVENT, 20)
            elapsed = time.monotonic() - started

            assert error is None
            assert elapsed < 5, elapsed
            assert runs(wait_for_pid(pid_file))  # the hook's own business, left alone
        finally:
            kill_leftover(wait_for_pid(pid_file))

    def test_a_grandchild_that_keeps_writing_after_the_hook_exited_does_not_keep_usermgr_reading(
        self, tmp_path: Path
    ) -> None:
        pid_file = tmp_path / "pid"
        program = script(tmp_path / "leaves-yes.sh", f'yes &\necho $! > "{pid_file}"\nexit 0\n')
        try:
            started = time.monotonic()
            error = run_hook([str(program)], EVENT, 20)
            elapsed = time.monotonic() - started

            assert error is None
            assert elapsed < 5, elapsed
        finally:
            kill_leftover(wait_for_pid(pid_file))


class TestPayload:
    def test_a_hook_that_never_reads_a_1_mib_event_does_not_block_usermgr(self, tmp_path: Path) -> None:
        program = script(tmp_path / "ignores-stdin.sh", "exit 0\n")
        event = {**EVENT, "data": {"note": "x" * MiB}}

        started = time.monotonic()
        error = run_hook([str(program)], event, 20)

        assert error is None
        assert time.monotonic() - started < 5

    def test_a_hook_that_sleeps_without_reading_a_1_mib_event_is_still_held_to_its_timeout(
        self, tmp_path: Path
    ) -> None:
        program = script(tmp_path / "sleeps.sh", "exec sleep 30\n")
        event = {**EVENT, "data": {"note": "x" * MiB}}

        started = time.monotonic()
        error = run_hook([str(program)], event, 1)

        assert error == "timed out after 1s; killed with its children"
        assert time.monotonic() - started < 4

    def test_a_hook_that_writes_much_before_reading_gets_the_whole_event_as_utf_8_json(
        self, tmp_path: Path
    ) -> None:
        # Were stdin written before stdout is read, both sides would wait on a full pipe.
        received = tmp_path / "received.json"
        program = script(tmp_path / "chatty.sh", f'head -c 3000000 /dev/zero\ncat > "{received}"\n')
        event = {**EVENT, "data": {"note": "é" * MiB}}

        assert run_hook([str(program)], event, 20) is None

        raw = received.read_bytes()
        assert json.loads(raw) == event
        assert "é".encode() in raw  # not \u00e9: ensure_ascii=False

    def test_a_hook_gets_the_event_ids_in_its_environment_and_usermgrs_own_variables(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env_copy = tmp_path / "env"
        monkeypatch.setenv("USERMGR_TEST_MARKER", "kept")
        program = script(tmp_path / "env.sh", f'env > "{env_copy}"\n')

        assert run_hook([str(program)], EVENT, 10) is None

        env = dict(line.split("=", 1) for line in env_copy.read_text().splitlines() if "=" in line)
        assert env["USERMGR_EVENT_TYPE"] == EVENT["type"]
        assert env["USERMGR_EVENT_ID"] == EVENT["id"]
        assert env["USERMGR_USER_ID"] == EVENT["user_id"]
        assert env["USERMGR_TEST_MARKER"] == "kept"


class TestHostileEvents:
    @pytest.mark.parametrize(
        ("field", "value"),
        [("id", "abc\0def"), ("type", "User\0Created"), ("user_id", None), ("user_id", 42), ("id", "\ud800")],
        ids=["NUL in id", "NUL in type", "null user_id", "integer user_id", "lone surrogate in id"],
    )
    def test_an_event_field_that_cannot_go_in_the_environment_is_a_failure_and_runs_nothing(
        self, tmp_path: Path, field: str, value: object
    ) -> None:
        ran = tmp_path / "ran"
        program = script(tmp_path / "hook.sh", f'touch "{ran}"\n')

        error = run_hook([str(program)], {**EVENT, field: value}, 10)

        assert error == f"the event's {field} cannot be passed in the environment"
        assert not ran.exists()

    @pytest.mark.parametrize("data", [{"note": "\ud800"}, {"blob": b"\x00\x01"}], ids=["lone surrogate", "bytes"])
    def test_an_event_that_cannot_be_json_is_a_one_line_failure_and_runs_nothing(
        self, tmp_path: Path, data: dict[str, Any]
    ) -> None:
        ran = tmp_path / "ran"
        program = script(tmp_path / "hook.sh", f'touch "{ran}"\n')

        error = run_hook([str(program)], {**EVENT, "data": data}, 10)

        assert error is not None and error.startswith("the event cannot be encoded as JSON")
        assert error.isprintable() and len(error) <= 200
        assert not ran.exists()

    @pytest.mark.parametrize("kind", ["missing", "not executable", "a directory"])
    def test_a_program_that_cannot_be_run_is_a_cannot_run_failure(self, tmp_path: Path, kind: str) -> None:
        program = tmp_path / "send-welcome"
        if kind == "not executable":
            program.write_text("#!/bin/sh\nexit 0\n")
            program.chmod(0o644)
        elif kind == "a directory":
            program.mkdir()

        error = run_hook([str(program), "--quiet"], EVENT, 10)

        assert error is not None and error.startswith(f"cannot run {program}: ")
        assert error.isprintable()

    @pytest.mark.parametrize(
        "command", [[], ["/bin/true\0rm"], ["/bin/true", 7]], ids=["empty", "NUL in argv", "not a string"]
    )
    def test_a_command_that_is_no_argv_is_a_cannot_run_failure(self, command: list[Any]) -> None:
        error = run_hook(command, EVENT, 10)
        assert error is not None and error.startswith("cannot run ")

    @pytest.mark.parametrize("timeout", [float("nan"), "10", 0, -1], ids=["NaN", "text", "zero", "negative"])
    def test_a_timeout_that_is_no_positive_number_is_a_cannot_run_failure(
        self, tmp_path: Path, timeout: Any
    ) -> None:
        ran = tmp_path / "ran"
        program = script(tmp_path / "hook.sh", f'touch "{ran}"\n')

        error = run_hook([str(program)], EVENT, timeout)

        assert error == "cannot run the hook: its timeout is not a positive number of seconds"
        assert not ran.exists()


class TestFailureReason:
    def test_the_reason_is_one_printable_line_of_at_most_200_characters_whatever_the_hook_prints(
        self, tmp_path: Path
    ) -> None:
        program = script(
            tmp_path / "messy.sh",
            "printf 'earlier line\\n'\n"
            "printf '\\033[31mred\\033[0m \\a\\001\\r'\n"
            "head -c 10000 /dev/zero | tr '\\0' 'x'\nprintf 'THE END\\n\\n  \\n'\nexit 5\n",
        )

        error = run_hook([str(program)], EVENT, 10)

        assert error is not None
        assert error.startswith("exit status 5: ")
        assert error.endswith("xxxTHE END")
        assert error.isprintable() and len(error) <= 200

    def test_control_characters_in_the_last_line_are_replaced(self, tmp_path: Path) -> None:
        program = script(tmp_path / "escapes.sh", "printf 'a\\033[31mred\\aalert\\n'\nexit 2\n")

        assert run_hook([str(program)], EVENT, 10) == "exit status 2: a?[31mred?alert"

    def test_a_hook_killed_by_a_signal_says_which_with_its_last_line(self, tmp_path: Path) -> None:
        program = script(tmp_path / "dies.sh", "echo 'going down'\nkill -TERM $$\nsleep 10\n")

        assert run_hook([str(program)], EVENT, 10) == f"killed by signal {signal.SIGTERM.value}: going down"

    def test_a_failing_hook_that_prints_nothing_gives_its_status_alone(self, tmp_path: Path) -> None:
        program = script(tmp_path / "quiet.sh", "exit 3\n")

        assert run_hook([str(program)], EVENT, 10) == "exit status 3"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
class TestDyingWithUsermgr:
    def test_a_running_hook_is_killed_when_usermgr_is_killed_with_sigkill(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pid"
        program = script(tmp_path / "long.sh", f'echo $$ > "{pid_file}"\nexec sleep 30\n')
        usermgr = python(
            f"""
            from usermgr.infrastructure.hooks import run_hook
            run_hook([{str(program)!r}], {EVENT!r}, 60)
            """
        )
        hook = None
        try:
            hook = wait_for_pid(pid_file)
            assert runs(hook)

            usermgr.kill()
            usermgr.communicate(timeout=10)

            deadline = time.monotonic() + 2
            while runs(hook) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not runs(hook), f"hook {hook} outlived usermgr"
        finally:
            usermgr.kill()
            usermgr.communicate()
            if hook is not None:
                kill_leftover(hook)
