"""Issue 7, item 20: many first commands racing on a brand-new SQLite path. usermgr
0.1.0 could exit 6 with "is an empty file, not a usermgr database yet" when a create
met a db upgrade (or another first command) halfway through making the schema."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import PASSWORD, USERMGR

# Waits for the start file, then becomes usermgr: every process is already running
# (interpreter not yet loaded) when the start is given, so they reach the file together.
AT_THE_SIGNAL = 'while [ ! -e "$0" ]; do sleep 0.005; done; exec "$@"'
CREATES = 4


@pytest.mark.slow
def test_eight_first_commands_started_at_once_on_a_new_path_all_succeed_and_leave_one_sound_database(
    tmp_path: Path,
) -> None:
    for round in range(3):
        race(tmp_path / f"round{round}")


def race(folder: Path) -> None:
    # Every folder on the way is new too, so the processes also race to make them.
    db = folder / "data" / "users.db"
    start = folder.with_name(folder.name + ".start")
    emails = [f"racer{i}@example.com" for i in range(CREATES)]
    commands = [["create", email, "--name", f"Racer {i}", "--password-stdin"] for i, email in enumerate(emails)]
    commands += [["db", "upgrade"], ["list"], ["db", "upgrade"], ["list", "--format", "json"]]
    env = {**os.environ, "USERMGR_DB": str(db)}
    children = [
        subprocess.Popen(
            ["sh", "-c", AT_THE_SIGNAL, str(start), USERMGR, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in commands
    ]
    try:
        time.sleep(0.2)  # every shell is waiting now
        start.touch()
        outputs = [child.communicate(PASSWORD + "\n", timeout=60) for child in children]
    finally:
        for child in children:
            child.kill()

    for args, child, (stdout, stderr) in zip(commands, children, outputs):
        assert child.returncode == 0, (folder.name, args, child.returncode, stdout, stderr)
        assert "Traceback" not in stderr
        # A list that came first may say there is no database yet; nothing else is said.
        assert stderr in ("", f"usermgr: no usermgr database at {db} yet: nothing to show\n"), (args, stderr)
    check = subprocess.run([USERMGR, "--db", str(db), "db", "check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert f"{CREATES} users" in check.stdout
    listed = subprocess.run(
        [USERMGR, "--db", str(db), "list", "--all", "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert sorted(u["email"] for u in json.loads(listed.stdout)["items"]) == emails
    # No half-made database is left beside it.
    assert [name for name in os.listdir(db.parent) if not name.startswith("users.db")] == []
