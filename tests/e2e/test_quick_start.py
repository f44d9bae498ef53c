"""The README's quick start and crontab, as a new user copies them (issue 7, items 8 and 9):
the quick-start line run as written in a fresh HOME with only python3 on PATH, and
every crontab job calling usermgr by an absolute path (cron's PATH is /usr/bin:/bin)."""

from __future__ import annotations

import os
import pwd
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "README.md"
CRON_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*=")


def code_after(marker: str) -> list[str]:
    """The lines of the indented code block that follows the HTML comment `<!-- marker...`."""
    text = README.read_text(encoding="utf-8").splitlines()
    [start] = [i for i, line in enumerate(text) if line.startswith(f"<!-- {marker}")]
    block: list[str] = []
    for line in text[start + 1 :]:
        if line.startswith("    "):
            block.append(line[4:])
        elif block and line.strip():
            break
    assert block, f"no code block after <!-- {marker} --> in README.md"
    return block


def fresh_shell_environment(home: Path) -> dict[str, str]:
    """A new login's environment: only /usr/bin, /bin and the python3 that made this
    venv on PATH, nothing of the venv running the tests, none of usermgr's variables.
    The machine's pip settings (index, proxy, certificates) stay, as on the machine."""
    python_bin = Path(sys.base_prefix) / "bin"
    if not (python_bin / "python3").exists():
        pytest.skip(f"no python3 in {python_bin}, where this venv's Python came from")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USERMGR_", "XDG_", "PYTHON", "VIRTUAL_ENV", "PIPX_")) and k not in ("PATH", "HOME")
    }
    env.update(HOME=str(home), PATH=f"{python_bin}:/usr/bin:/bin")
    user_pip_conf = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".config" / "pip" / "pip.conf"
    if "PIP_CONFIG_FILE" not in env and user_pip_conf.exists():
        env["PIP_CONFIG_FILE"] = str(user_pip_conf)  # the fresh HOME has none of its own
    return env


@pytest.mark.slow
def test_the_quick_start_line_installs_usermgr_and_creates_and_lists_the_admin_in_a_fresh_home(tmp_path: Path) -> None:
    [line] = code_after("quick-start")
    home = tmp_path / "fresh-home"
    home.mkdir()

    done = subprocess.run(
        ["bash", "-c", line],
        cwd=REPOSITORY,
        env=fresh_shell_environment(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    assert re.search(r"^created admin@example\.com \(", done.stdout, re.M), done.stdout
    assert re.search(r"^password: \S{12,}$", done.stdout, re.M), done.stdout
    listed = [row.split() for row in done.stdout.splitlines() if "admin@example.com" in row and not row.startswith("created")]
    assert len(listed) == 1 and "admin" in listed[0][3:], done.stdout
    database = home / ".local" / "share" / "usermgr" / "usermgr.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    executable = home / ".local" / "bin" / "usermgr"
    assert executable.is_symlink() and os.access(executable, os.X_OK)
    # The program is not in the data folder, so removing one leaves the other alone.
    assert not executable.resolve().is_relative_to(database.parent)


def test_every_crontab_job_in_the_readme_calls_usermgr_by_an_absolute_path() -> None:
    jobs = [
        line
        for line in code_after("crontab")
        if line.strip() and not line.lstrip().startswith("#") and not CRON_VARIABLE.match(line)
    ]

    assert len(jobs) >= 3, jobs
    for job in jobs:
        fields = job.split(None, 5)
        assert len(fields) == 6, f"not a crontab job (5 time fields and a command): {job}"
        words = shlex.split(fields[5].replace("\\%", "%"))
        programs = [w for w in words if w == "usermgr" or w.endswith("/usermgr")]
        assert words[0] in programs, f"the job does not start with usermgr: {job}"
        for program in programs:
            assert program.startswith("/"), f"cron's PATH is /usr/bin:/bin, so {program!r} is not found: {job}"
