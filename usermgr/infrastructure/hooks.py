"""Running one local hook program on one event: no shell, a deadline, its process group killed."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

# A failure reason is at most this many characters, on one printable line.
ERROR_TAIL = 200
# Of a hook's combined stdout and stderr only the last bytes are kept, for the
# failure reason: memory stays constant and nothing goes to disk, however much it writes.
OUTPUT_TAIL = 4096
READ_SIZE = 65536
# After the hook exits, what it left in the pipe is read, but no more than this: a
# backgrounded grandchild may go on writing to the pipe for ever.
DRAIN_LIMIT = 1 << 20
# While the pipe is open, how often to check whether the hook itself has exited: a
# grandchild holding the pipe open must not make us wait past that.
EXIT_CHECK = 0.05
ENVIRONMENT = {
    "USERMGR_EVENT_TYPE": "type",
    "USERMGR_EVENT_ID": "id",
    "USERMGR_USER_ID": "user_id",
}
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def run_hook(command: Sequence[str] | list[str], event: dict[str, Any], timeout: float) -> str | None:
    """Run one hook without a shell; None on success, else why it failed, on one line."""
    # The event comes from the database, which may hold anything: whatever is in it
    # makes a failed delivery, never an exception. The command and timeout are the
    # config's (already validated); they are checked here all the same.
    if isinstance(command, str) or not command or not all(_passable(arg) for arg in command):
        return "cannot run the hook: its command is not a list of strings without NUL bytes"
    if not (isinstance(timeout, (int, float)) and timeout > 0):  # NaN is not > 0 either
        return "cannot run the hook: its timeout is not a positive number of seconds"
    env = dict(os.environ)
    for variable, field in ENVIRONMENT.items():
        value = event.get(field)
        if not _passable(value):
            return f"the event's {field} cannot be passed in the environment"
        env[variable] = value
    try:
        payload = json.dumps(event, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:
        return _one_line(f"the event cannot be encoded as JSON: {e}")
    try:
        proc = subprocess.Popen(
            command,
            bufsize=0,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, killed whole on timeout
            # Runs in the child between fork and exec, where other threads' locks make
            # Python code risky: it only calls prctl, getppid and kill, and imports nothing.
            preexec_fn=_death_signal(),
        )
    except (OSError, subprocess.SubprocessError) as e:
        return _one_line(f"cannot run {command[0]}: {getattr(e, 'strerror', None) or e}")
    try:
        output = _exchange(proc, payload, time.monotonic() + timeout)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
    if output is None:
        _kill_group(proc)
        return f"timed out after {timeout:g}s; killed with its children"
    if proc.returncode == 0:
        return None
    status = (
        f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    )
    tail = _last_line(output)
    return _one_line(f"{status}: {tail[-(ERROR_TAIL - len(status) - 2):]}" if tail else status)


def _exchange(proc: subprocess.Popen[bytes], payload: bytes, deadline: float) -> bytes | None:
    """Write the payload to the hook's stdin and read its output, in one loop, until the
    hook exits; return the output's last OUTPUT_TAIL bytes, or None at the deadline.

    Both pipes are non-blocking, so a hook that never reads its stdin cannot block us,
    and we stop at the hook's own exit even when a grandchild still holds the pipes."""
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin.fileno(), proc.stdout.fileno()
    os.set_blocking(stdin, False)
    os.set_blocking(stdout, False)
    tail = bytearray()
    unsent = memoryview(payload)
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        selector.register(stdin, selectors.EVENT_WRITE)  # a JSON object is never empty
        while proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not selector.get_map():
                # Both pipes are done with; only the hook's exit is left to wait for.
                try:
                    proc.wait(remaining)
                except subprocess.TimeoutExpired:
                    return None
                break
            for key, _ in selector.select(min(remaining, EXIT_CHECK)):
                if key.fd == stdout:
                    if not _read_into(tail, stdout, READ_SIZE):
                        selector.unregister(stdout)
                        proc.stdout.close()
                else:
                    try:
                        unsent = unsent[os.write(stdin, unsent) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the hook closed its stdin: its choice
                        unsent = unsent[:0]
                    if not unsent:
                        selector.unregister(stdin)
                        proc.stdin.close()
    if not proc.stdout.closed:
        _read_into(tail, stdout, DRAIN_LIMIT)
    return bytes(tail)


def _read_into(tail: bytearray, fd: int, limit: int) -> bool:
    """Read what the pipe has now, up to `limit` bytes, keeping the last OUTPUT_TAIL
    bytes in `tail`; False at end of file."""
    while limit > 0:
        try:
            chunk = os.read(fd, min(READ_SIZE, limit))
        except BlockingIOError:
            return True
        if not chunk:
            return False
        tail += chunk
        del tail[:-OUTPUT_TAIL]
        limit -= len(chunk)
    return True


def _passable(value: object) -> TypeGuard[str]:
    """Whether `value` can go into a child's argv or environment."""
    if not isinstance(value, str) or "\0" in value:
        return False
    try:
        os.fsencode(value)
    except UnicodeEncodeError:  # a lone surrogate, say
        return False
    return True


def _death_signal() -> Callable[[], None] | None:
    """On Linux, what makes the hook process get SIGKILL when usermgr dies: otherwise a
    usermgr killed with SIGKILL leaves its hook running with no timeout. Only the hook
    itself gets it; its own children are its business."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    # Loaded here, before the fork: the child only makes the call.
    prctl = ctypes.CDLL(None).prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong)
    parent = os.getpid()

    def die_with_parent() -> None:
        # The signal comes when the *thread* that forked the hook exits, not the whole
        # process: hooks are started from the main thread, which lives as long as usermgr
        # (and any thread waits in run_hook until its hook has exited). A kernel that
        # refuses prctl leaves the hook as it is on other systems: run it anyway.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # usermgr died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _last_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


def _one_line(text: str) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable[:ERROR_TAIL]
