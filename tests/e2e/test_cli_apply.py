"""`usermgr apply` as an admin's provisioning job uses it, on both engines: in-process
through Typer's CliRunner for most tests, the installed executable where separate
processes are the point (concurrent writers, stdin of a real pipe)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.helpers import PASSWORD, USERMGR, invoke_app, run_usermgr

NEW_PASSWORD = "a different long passphrase"
RUNNER = CliRunner()
ACTION_OF = {
    "UserCreated": "create",
    "UserUpdated": "update",
    "UserRoleChanged": "set-role",
    "UserActivated": "activate",
    "UserDeactivated": "deactivate",
    "UserPasswordChanged": "passwd",
    "UserDeleted": "delete",
}


# --- helpers -------------------------------------------------------------------


def um(db: str, *args: str, input: str | None = None) -> Result:
    return invoke_app("--db", db, *args, input=input)


def ok(db: str, *args: str, input: str | None = None) -> Result:
    result = um(db, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def create(db: str, email: str, name: str, *options: str, password: str | None = None) -> None:
    if password is None:
        ok(db, "create", email, "--name", name, "--no-password", *options)
    else:
        ok(db, "create", email, "--name", name, "--password-stdin", *options, input=password + "\n")


def events(db: str) -> list[dict[str, Any]]:
    out = ok(db, "events", "--format", "jsonl", "--limit", "1000000").stdout
    return [json.loads(line) for line in out.splitlines()]


def users(db: str) -> dict[str, dict[str, Any]]:
    out = ok(db, "list", "--all", "--format", "jsonl").stdout
    return {u["email"]: u for u in map(json.loads, out.splitlines())}


def state(db: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    return users(db), events(db)


def csv_file(tmp_path: Path, text: str, name: str = "staff.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def verify(db: str, email: str, password: str) -> int:
    return um(db, "verify", email, "--password-stdin", input=password + "\n").exit_code


def seed(db: str) -> None:
    """ada (user), bob (active), cy (inactive), dee (PASSWORD), old (active), keep (inactive)."""
    create(db, "ada@example.com", "Ada")
    create(db, "bob@example.com", "Bob")
    create(db, "cy@example.com", "Cy", "--inactive")
    create(db, "dee@example.com", "Dee", password=PASSWORD)
    create(db, "old@example.com", "Old")
    create(db, "keep@example.com", "Keep", "--inactive")


STAFF = f"""\
email,name,role,is_active,password
Ada@Example.com,Ada King,admin,,
bob@example.com,Bob,,false,
cy@example.com,Cy,,true,
dee@example.com,Dee,,,{NEW_PASSWORD}
grace@example.com,Grace,,,
"""
PLAN = [
    "~ update ada@example.com: name 'Ada' -> 'Ada King'",
    "~ set-role ada@example.com: user -> admin",
    "~ deactivate bob@example.com",
    "~ activate cy@example.com",
    "~ passwd dee@example.com",
    "+ create grace@example.com",
    "- delete old@example.com",
]
SUMMARY = "created 1, updated 1, role changed 1, activated 1, deactivated 1, password changed 1, deleted 1"
STAFF_OPTIONS = ("--prune", "delete", "--update-passwords")


def plan_actions(lines: list[str]) -> Counter[tuple[str, str]]:
    """(action, email) of each plan line."""
    found: Counter[tuple[str, str]] = Counter()
    for line in lines:
        sign, action, rest = line.split(" ", 2)
        assert sign in "+~-", line
        found[(action, rest.split(":")[0])] += 1
    return found


def event_actions(found: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((ACTION_OF[e["type"]], e["data"]["email"]) for e in found)


# --- the plan, applied once ------------------------------------------------------


def test_apply_prints_the_contracts_plan_lines_and_summary_and_does_exactly_that(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = len(events(db_url))
    result = ok(db_url, "apply", csv_file(tmp_path, STAFF), *STAFF_OPTIONS)
    assert result.stdout.splitlines() == [*PLAN, SUMMARY]
    assert PASSWORD not in result.output and NEW_PASSWORD not in result.output and "$2" not in result.output

    written = events(db_url)[before:]
    assert [(e["type"], e["data"]["email"]) for e in written if e["type"] != "UserCreated"] == [
        ("UserUpdated", "ada@example.com"),
        ("UserRoleChanged", "ada@example.com"),
        ("UserDeactivated", "bob@example.com"),
        ("UserActivated", "cy@example.com"),
        ("UserPasswordChanged", "dee@example.com"),
        ("UserDeleted", "old@example.com"),
    ]
    assert event_actions(written) == plan_actions(PLAN)
    after = users(db_url)
    assert sorted(after) == ["ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com", "grace@example.com", "keep@example.com"]
    assert (after["ada@example.com"]["name"], after["ada@example.com"]["role"]) == ("Ada King", "admin")
    assert after["bob@example.com"]["is_active"] is False and after["cy@example.com"]["is_active"] is True
    assert after["keep@example.com"]["is_active"] is False  # inactive and not in the file: left alone
    assert verify(db_url, "dee@example.com", NEW_PASSWORD) == 0
    assert verify(db_url, "dee@example.com", PASSWORD) == 5
    assert verify(db_url, "grace@example.com", PASSWORD) == 5  # created with no usable password


def test_a_second_apply_of_the_same_file_prints_no_changes_and_writes_no_event(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    staff = csv_file(tmp_path, STAFF)
    ok(db_url, "apply", staff, *STAFF_OPTIONS)
    before = state(db_url)
    again = ok(db_url, "apply", staff, *STAFF_OPTIONS)
    assert again.stdout == "no changes\n"
    assert again.stderr == ""
    assert state(db_url) == before
    assert ok(db_url, "apply", staff, *STAFF_OPTIONS, "--json").stdout == '{"changes": [], "applied": true}\n'


# --- --check --------------------------------------------------------------------


def test_check_prints_the_plan_exits_8_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = state(db_url)
    staff = csv_file(tmp_path, STAFF)
    checked = um(db_url, "apply", staff, *STAFF_OPTIONS, "--check")
    assert checked.exit_code == 8, checked.output
    assert checked.stdout.splitlines() == [*PLAN, f"{SUMMARY} (check only: nothing was changed)"]
    assert len(checked.stderr.splitlines()) == 1
    assert state(db_url) == before
    assert verify(db_url, "dee@example.com", PASSWORD) == 0

    ok(db_url, "apply", staff, *STAFF_OPTIONS)
    clean = ok(db_url, "apply", staff, *STAFF_OPTIONS, "--check")
    assert clean.stdout == "no changes\n"


def tables(db: str) -> list[str]:
    """usermgr's tables in a database, read without going through usermgr."""
    if not db.startswith("postgresql://"):
        if not Path(db).exists():
            return []
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    import psycopg2

    conn = psycopg2.connect(db)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            return [r[0] for r in cursor.fetchall()]
    finally:
        conn.close()


def test_check_against_a_database_usermgr_has_not_set_up_yet_creates_nothing(db_url: str, tmp_path: Path) -> None:
    checked = um(db_url, "apply", csv_file(tmp_path, "email,name\nada@example.com,Ada\n"), "--check")
    assert checked.exit_code == 8, checked.output
    assert checked.stdout.splitlines()[0] == "+ create ada@example.com"
    assert tables(db_url) == []
    if not db_url.startswith("postgresql://"):
        assert not Path(db_url).exists()


def test_check_of_the_installed_executable_exits_8_with_one_line_on_stderr(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    done = run_usermgr("--db", db_url, "apply", "-", "--check", input="email,name\nada@example.com,Ada Lovelace\n")
    assert done.returncode == 8, done
    assert done.stdout == "~ update ada@example.com: name 'Ada' -> 'Ada Lovelace'\nupdated 1 (check only: nothing was changed)\n"
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert users(db_url)["ada@example.com"]["name"] == "Ada"


# --- --json ---------------------------------------------------------------------


def test_json_prints_the_plan_as_one_object_with_changes_only_where_fields_change(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    staff = csv_file(tmp_path, STAFF)
    expected = [
        {"action": "update", "email": "ada@example.com", "changes": {"name": ["Ada", "Ada King"]}},
        {"action": "set-role", "email": "ada@example.com", "changes": {"role": ["user", "admin"]}},
        {"action": "deactivate", "email": "bob@example.com", "changes": {"is_active": [True, False]}},
        {"action": "activate", "email": "cy@example.com", "changes": {"is_active": [False, True]}},
        {"action": "passwd", "email": "dee@example.com"},
        {"action": "create", "email": "grace@example.com"},
        {"action": "delete", "email": "old@example.com"},
    ]
    checked = um(db_url, "apply", staff, *STAFF_OPTIONS, "--check", "--json")
    assert checked.exit_code == 8
    assert json.loads(checked.stdout) == {"changes": expected, "applied": False}

    applied = ok(db_url, "apply", staff, *STAFF_OPTIONS, "--json")
    assert len(applied.stdout.splitlines()) == 1
    assert json.loads(applied.stdout) == {"changes": expected, "applied": True}
    for output in (checked.stdout, applied.stdout):
        assert NEW_PASSWORD not in output and "password_hash" not in output and "$2" not in output


# --- invalid input ---------------------------------------------------------------


def test_invalid_rows_exit_2_with_a_line_each_and_change_nothing(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    before = state(db_url)
    bad = csv_file(
        tmp_path,
        "email,name,role,password\n"
        "ada@example.com,Ada King,,\n"
        "not-an-email,X,,\n"
        "z@example.com,Z,boss,\n"
        "ADA@example.com,Ada,,\n"
        "p@example.com,P,,Xq7#zz\n",
    )
    result = um(db_url, "apply", bad, "--prune", "delete")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["line 3", "line 4", "line 5", "line 6"]
    assert lines[-1] == "usermgr: 4 invalid row(s); nothing was written"
    assert "Xq7#zz" not in result.stderr
    assert state(db_url) == before


def test_an_empty_name_cell_keeps_the_name_and_a_new_user_without_one_is_exit_2(db_url: str, tmp_path: Path) -> None:
    create(db_url, "ada@example.com", "Ada Lovelace")
    result = ok(db_url, "apply", csv_file(tmp_path, "email,name,role\nADA@example.com,,admin\n"))
    assert result.stdout.splitlines() == ["~ set-role ada@example.com: user -> admin", "role changed 1"]
    assert users(db_url)["ada@example.com"]["name"] == "Ada Lovelace"
    before = state(db_url)
    result = um(db_url, "apply", csv_file(tmp_path, "email,name\nada@example.com,\nnew@example.com,\n", "two.csv"))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "line 3: name is required to create new@example.com",
        "usermgr: 1 invalid row(s); nothing was written",
    ]
    assert state(db_url) == before


def test_a_column_given_twice_is_refused_before_anything_is_read(db_url: str, tmp_path: Path) -> None:
    result = um(db_url, "apply", csv_file(tmp_path, "email,name,role,role\nk@example.com,K,admin,user\n"))
    assert result.exit_code == 2, result.output
    assert result.stderr == "usermgr: column 'role' is given twice\n"
    assert users(db_url) == {}


@pytest.mark.parametrize("column", ["id", "created_at", "updated_at"])
def test_columns_kept_from_elsewhere_are_refused(db_url: str, tmp_path: Path, column: str) -> None:
    seed(db_url)
    before = state(db_url)
    result = um(db_url, "apply", csv_file(tmp_path, f"email,name,{column}\nada@example.com,Ada King,\n"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"usermgr: column '{column}' is not allowed here")
    assert state(db_url) == before


def test_an_export_with_ids_is_refused_line_by_line_in_jsonl(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    exported = ok(db_url, "export", "--format", "jsonl").stdout
    path = tmp_path / "users.jsonl"
    path.write_text(exported)
    result = um(db_url, "apply", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "line 1: column 'id' is not allowed here; use email, name, role, is_active, password, password_hash"


# --- input formats -----------------------------------------------------------------


def test_jsonl_files_and_stdin_in_either_format_are_applied(db_url: str, tmp_path: Path) -> None:
    rows = [{"email": "ada@example.com", "name": "Ada", "role": "admin"}, {"email": "bob@example.com", "name": "Bob", "is_active": False}]
    (tmp_path / "staff.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ok(db_url, "apply", str(tmp_path / "staff.jsonl")).stdout.splitlines() == [
        "+ create ada@example.com",
        "+ create bob@example.com",
        "created 2",
    ]
    same = json.dumps({"email": "ada@example.com", "name": "Ada", "role": "admin"}) + "\n"
    assert ok(db_url, "apply", "-", "--format", "jsonl", input=same).stdout == "no changes\n"
    csv_in = "email,name,is_active\nbob@example.com,Bob,yes\n"
    assert ok(db_url, "apply", "-", input=csv_in).stdout == "~ activate bob@example.com\nactivated 1\n"
    (tmp_path / "more.ndjson").write_text(json.dumps({"email": "cy@example.com", "name": "Cy"}) + "\n")
    assert ok(db_url, "apply", str(tmp_path / "more.ndjson")).stdout == "+ create cy@example.com\ncreated 1\n"
    found = users(db_url)
    assert (found["ada@example.com"]["role"], found["bob@example.com"]["is_active"]) == ("admin", True)


def test_stdin_of_the_installed_executable_through_a_pipe(db_url: str) -> None:
    done = run_usermgr("--db", db_url, "apply", "-", input="email,name\nada@example.com,Ada\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "+ create ada@example.com\ncreated 1\n", "")


# --- passwords ----------------------------------------------------------------------


def test_update_passwords_stores_a_password_that_does_not_verify_and_verify_takes_it(db_url: str, tmp_path: Path) -> None:
    create(db_url, "ada@example.com", "Ada", password=PASSWORD)
    staff = csv_file(tmp_path, f"email,name,password\nada@example.com,Ada,{NEW_PASSWORD}\n")
    assert ok(db_url, "apply", staff).stdout == "no changes\n"  # passwords left alone by default
    assert verify(db_url, "ada@example.com", PASSWORD) == 0

    changed = ok(db_url, "apply", staff, "--update-passwords")
    assert changed.stdout == "~ passwd ada@example.com\npassword changed 1\n"
    assert verify(db_url, "ada@example.com", NEW_PASSWORD) == 0
    assert verify(db_url, "ada@example.com", PASSWORD) == 5
    assert ok(db_url, "apply", staff, "--update-passwords").stdout == "no changes\n"  # it verifies now
    assert [e["type"] for e in events(db_url)] == ["UserCreated", "UserPasswordChanged"]


def test_update_passwords_stores_a_differing_hash_once(db_url: str, tmp_path: Path) -> None:
    import bcrypt

    create(db_url, "ada@example.com", "Ada", password=PASSWORD)
    hashed = bcrypt.hashpw(NEW_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    staff = csv_file(tmp_path, f"email,name,password_hash\nada@example.com,Ada,{hashed}\n")
    first = ok(db_url, "apply", staff, "--update-passwords", "--json")
    assert json.loads(first.stdout) == {"changes": [{"action": "passwd", "email": "ada@example.com"}], "applied": True}
    assert hashed not in first.output and hashed[7:29] not in first.output
    assert ok(db_url, "apply", staff, "--update-passwords").stdout == "no changes\n"
    assert verify(db_url, "ada@example.com", NEW_PASSWORD) == 0


def test_a_created_user_gets_the_files_password(db_url: str, tmp_path: Path) -> None:
    result = ok(db_url, "apply", csv_file(tmp_path, f"email,name,password\nada@example.com,Ada,{PASSWORD}\n"))
    assert PASSWORD not in result.output
    assert verify(db_url, "ada@example.com", PASSWORD) == 0


# --- hooks -------------------------------------------------------------------------


def test_hooks_run_once_per_change_and_not_at_all_for_no_changes(db_url: str, tmp_path: Path, config_path: Path) -> None:
    seed(db_url)
    fired = tmp_path / "fired.txt"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$USERMGR_EVENT_TYPE" >> {fired}\n')
    hook.chmod(0o755)
    with config_path.open("a") as config:
        config.write(f'\n[[hooks]]\non = "*"\ncommand = ["{hook}"]\n')
    staff = csv_file(tmp_path, STAFF)
    result = ok(db_url, "apply", staff, *STAFF_OPTIONS)
    assert result.stderr == ""
    assert sorted(fired.read_text().splitlines()) == sorted(
        ["UserUpdated", "UserRoleChanged", "UserDeactivated", "UserActivated", "UserPasswordChanged", "UserCreated", "UserDeleted"]
    )
    ok(db_url, "apply", staff, *STAFF_OPTIONS)
    assert len(fired.read_text().splitlines()) == 7
    assert "failed" not in ok(db_url, "hooks", "list").stdout.lower()


# --- other writers -------------------------------------------------------------------


def _popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [USERMGR, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_the_printed_plan_is_what_happened_while_other_writers_create_users(db_url: str, tmp_path: Path) -> None:
    # 300 rows: the first 150 exist under other names, the rest are new with passwords
    # (hashed at cost 8 between apply's read and its write transaction, a window of a
    # second or so for the writers below). 20 active users are not in the file.
    rows = [f"u{i:03}@example.com" for i in range(300)]
    seeded = "".join(f"{email},Old {i}\n" for i, email in enumerate(rows[:150]))
    seeded += "".join(f"extra{i}@example.com,Extra {i}\n" for i in range(20))
    ok(db_url, "import", "-", input="email,name\n" + seeded)
    staff = csv_file(tmp_path, "email,name,password\n" + "".join(f"{e},File {i},{PASSWORD}\n" for i, e in enumerate(rows)))
    slow_config = tmp_path / "slow.toml"
    slow_config.write_text("[security]\nbcrypt_rounds = 8\n")
    before = len(events(db_url))

    applying = _popen("--db", db_url, "apply", staff, "--prune", "deactivate", env={"USERMGR_CONFIG": str(slow_config)})
    writers: list[tuple[str, subprocess.Popen[str]]] = []
    # New users in the file (apply then updates them or they fail as taken) and not
    # in it (apply then deactivates them, or not, depending on when they land).
    # Spread over about five seconds: some land before apply reads, some while it
    # hashes, some after it commits (the file's emails are then taken: exit 4).
    for i in range(10):
        email = rows[299 - i // 2] if i % 2 == 0 else f"late{i // 2}@example.com"
        writers.append((email, _popen("--db", db_url, "create", email, "--name", f"Concurrent {i}", "--no-password")))
        time.sleep(0.5)
    out, err = applying.communicate(timeout=120)
    assert applying.returncode == 0, (out, err)
    for email, writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode in ((0, 4) if email in rows else (0,)), (email, writer.returncode)

    *plan_lines, summary = out.splitlines()
    written = events(db_url)[before:]
    by_apply = [e for e in written if not (e["type"] == "UserCreated" and e["data"]["name"].startswith("Concurrent"))]
    assert event_actions(by_apply) == plan_actions(plan_lines)
    assert len(by_apply) == sum(int(n) for n in summary.replace(",", "").split() if n.isdigit())
    assert len({e["data"]["email"] for e in written if e["type"] == "UserCreated"}) == 300 - 150 + len(
        [w for w in writers if w[0].startswith("late")]
    )
    checked = run_usermgr("--db", db_url, "events", "verify")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{len(events(db_url))} events, head ")
    assert ok(db_url, "apply", staff).stdout == "no changes\n"  # every row converged, whoever came first
