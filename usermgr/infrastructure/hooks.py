"""Running one local hook program on one event: no shell, a deadline, its process group killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

ERROR_TAIL = 200


def run_hook(command: Sequence[str], event: dict[str, Any], timeout: float) -> str | None:
    """Run one hook without a shell; None on success, else why it failed."""
    env = {
        **os.environ,
        "USERMGR_EVENT_TYPE": event["type"],
        "USERMGR_EVENT_ID": event["id"],
        "USERMGR_USER_ID": event["user_id"],
    }
    payload = json.dumps(event, ensure_ascii=False).encode("utf-8")
    # Output goes to a file, never to our stdout and never to a pipe that a
    # backgrounded grandchild could hold open past the hook's exit.
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                env=env,
                start_new_session=True,  # its own process group, killed whole on timeout
            )
        except OSError as e:
            return f"cannot run {command[0]}: {e.strerror or e}"
        try:
            proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return f"timed out after {timeout:g}s; killed with its children"
        except BaseException:
            _kill_group(proc)
            raise
        if proc.returncode == 0:
            return None
        output.seek(0)
        tail = _last_line(output.read())
        status = (
            f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        )
        return f"{status}: {tail}" if tail else status


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _last_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return ""
    printable = "".join(ch if ch.isprintable() else "?" for ch in lines[-1])
    return printable[-ERROR_TAIL:]
