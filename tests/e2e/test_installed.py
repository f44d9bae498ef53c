"""The installed `usermgr` executable, as cron and an admin at a terminal run it."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import usermgr
from tests.helpers import (
    OTHER_PASSWORD,
    PASSWORD,
    USERMGR,
    Cli,
    Terminal,
    no_secrets,
    one_line,
    raw_sql,
    run_usermgr,
    seed_users,
    sqlite_query,
    usermgr_fails,
    usermgr_ok,
)

# Imports that cost a read command's start-up time: the PostgreSQL driver, bcrypt, email-validator.
HEAVY = ("psycopg2", "bcrypt", "email_validator")
ANSI = re.compile(r"\x1b\[")
BOX = re.compile(r"[\u2500-\u257f\u2026]")


def total_users() -> int:
    return json.loads(usermgr_ok("list", "--format", "json").stdout)["total"]


# --- a cron job's session ---------------------------------------------------------


def test_a_cron_like_session_without_a_terminal(db_path: Path) -> None:
    created = usermgr_ok("create", "ada@example.com", "--name", "Ada Lovelace", "--password-stdin", input=PASSWORD + "\n")
    assert "ada@example.com" in created.stdout
    assert db_path.stat().st_mode & 0o777 == 0o600
    again = usermgr_ok("create", "ADA@example.com", "--name", "Ada", "--no-password", "--exists-ok", "--json")
    assert json.loads(again.stdout)["created"] is False
    usermgr_fails(4, "create", "ADA@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
    rows = list(csv.DictReader(io.StringIO(usermgr_ok("list", "--format", "csv").stdout)))
    assert [(r["email"], r["name"], r["is_active"]) for r in rows] == [("ada@example.com", "Ada Lovelace", "true")]
    usermgr_ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
    usermgr_fails(5, "verify", "ada@example.com", "--password-stdin", input=OTHER_PASSWORD + "\n")
    usermgr_fails(5, "verify", "nobody@example.com", "--password-stdin", input=PASSWORD + "\n")
    usermgr_fails(3, "show", "nobody@example.com")
    usermgr_fails(2, "create", "new@example.com", "--name", "New")
    usermgr_fails(2, "delete", "ada@example.com")
    usermgr_ok("delete", "ada@example.com", "--yes")
    assert json.loads(usermgr_ok("list", "--format", "json").stdout)["total"] == 0


def test_version_prints_the_name_and_a_semantic_version() -> None:
    result = usermgr_ok("--version")
    assert re.fullmatch(r"usermgr \d+\.\d+\.\d+\n", result.stdout)
    assert result.stdout == f"usermgr {usermgr.__version__}\n"
    assert result.stderr == ""


def test_version_and_help_work_with_a_broken_config_and_a_foreign_database(config_path: Path, db_path: Path) -> None:
    config_path.write_text("not [ toml")
    db_path.write_bytes(b"not a database" * 100)
    assert usermgr_ok("--version").stdout.startswith("usermgr ")
    assert "Usage" in usermgr_ok("--help").stdout
    assert "Usage" in usermgr_ok("create", "--help").stdout
    assert db_path.read_bytes() == b"not a database" * 100


def test_python_dash_m_usermgr_is_the_same_program() -> None:
    result = subprocess.run([sys.executable, "-m", "usermgr", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == f"usermgr {usermgr.__version__}\n"


VERSION_WITHOUT_TYPER = """
import sys
sys.argv = ["usermgr", "--version"]
from usermgr.cli import main
try:
    main()
finally:
    print("typer" in sys.modules, file=sys.stderr)
"""


def test_version_answers_before_typer_loads() -> None:
    result = subprocess.run(
        [sys.executable, "-c", VERSION_WITHOUT_TYPER], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"usermgr {usermgr.__version__}\n"
    assert result.stderr == "False\n"


def test_no_arguments_prints_usage_and_lists_the_commands() -> None:
    result = run_usermgr()
    assert result.returncode in (0, 2)
    for command in ("create", "list", "show", "update", "activate", "deactivate", "set-role", "passwd", "verify", "delete"):
        assert command in result.stdout + result.stderr


# --- the environment ----------------------------------------------------------------


def test_usermgr_db_and_usermgr_config_redirect_all_state(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    config = tmp_path / "cost5.toml"
    config.write_text("[security]\nbcrypt_rounds = 5\n")
    env = {"USERMGR_DB": str(elsewhere / "x.db"), "USERMGR_CONFIG": str(config)}
    usermgr_ok("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n", env=env)
    [(stored,)] = sqlite_query(elsewhere / "x.db", "SELECT password_hash FROM users")
    assert stored.startswith("$2b$05$")
    assert "ada@example.com" in usermgr_ok("list", env=env).stdout
    assert "ada@example.com" not in usermgr_ok("list").stdout
    assert not (tmp_path / "home" / ".local").exists()


def test_the_global_options_override_the_environment(tmp_path: Path, db_path: Path) -> None:
    other = tmp_path / "other.db"
    usermgr_ok("--db", str(other), "create", "ada@example.com", "--name", "Ada", "--no-password")
    assert other.exists() and not db_path.exists()


CRASH = textwrap.dedent(
    """
    import sys
    from usermgr.infrastructure import hashing

    def hash(self, password):
        secret_in_a_local = password
        raise RuntimeError("boom")

    hashing.BcryptHasher.hash = hash
    sys.argv = ["usermgr", *sys.argv[1:]]
    from usermgr.cli import main
    main()
    """
)


def crash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """An unexpected error inside `create`, with the password in a local variable."""
    return subprocess.run(
        [sys.executable, "-c", CRASH, *args, "create", "ada@example.com", "--name", "Ada", "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_an_unexpected_error_is_one_line_and_exit_1_without_debug() -> None:
    result = crash()
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "Traceback" not in line and "--debug" in line
    assert PASSWORD not in result.stderr


@pytest.mark.parametrize("how", ["USERMGR_DEBUG=1", "--debug"])
def test_debug_shows_the_traceback_but_never_local_variables(how: str) -> None:
    result = crash("--debug") if how == "--debug" else crash(env={"USERMGR_DEBUG": "1"})
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "RuntimeError" in result.stderr and "boom" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "$2b$" not in result.stderr


def test_a_corrupt_row_never_prints_a_traceback_without_debug(ada: dict[str, Any]) -> None:
    raw_sql("UPDATE users SET created_at = 'garbage'")
    result = run_usermgr("deactivate", "ada@example.com")
    no_secrets(result.stdout + result.stderr)
    assert result.returncode in (1, 6)
    one_line(result.stderr)


def with_stdin_closed(*args: str) -> subprocess.CompletedProcess[str]:
    """Run usermgr with file descriptor 0 closed, not merely at end of file."""
    return subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" <&-', USERMGR, *args], check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "args",
    [
        ["create", "zed@example.com", "--name", "Zed"],
        ["delete", "ada@example.com"],
        ["verify", "ada@example.com", "--password-stdin"],
    ],
    ids=["create-without-a-source", "delete-without-yes", "verify-password-stdin"],
)
def test_a_closed_stdin_is_exit_2_with_one_line_and_no_traceback(cli: Cli, ada: dict[str, Any], args: list[str]) -> None:
    result = with_stdin_closed(*args)
    no_secrets(result.stdout + result.stderr)
    assert result.returncode == 2, (result.stdout, result.stderr)
    one_line(result.stderr)
    assert cli.listing()["total"] == 1


# --- output without a terminal ------------------------------------------------------


def test_a_table_without_a_terminal_is_plain_and_complete(cli: Cli, ada: dict[str, Any]) -> None:
    long_name = ("Augusta Ada King, Countess of Lovelace, " * 5).strip(" ,")
    cli.create("countess@example.com", long_name, password=None)
    cli.create("markup@example.com", "[bold red]Not bold[/] [link=https://x.example]x[/link]", password=None)
    env = {"COLUMNS": "40", "TERM": "xterm-256color", "FORCE_COLOR": "1", "CLICOLOR_FORCE": "1"}
    out = usermgr_ok("list", env=env).stdout
    assert not ANSI.search(out)
    assert not BOX.search(out)
    lines = out.splitlines()
    assert any(long_name in line and "countess@example.com" in line for line in lines)
    assert any("[bold red]Not bold[/] [link=https://x.example]x[/link]" in line for line in lines)
    assert len(lines) == 4  # the header and one line a user: nothing wrapped
    assert usermgr_ok("list", "--all", env=env).stdout.splitlines() == lines


def test_show_without_a_terminal_is_plain(ada: dict[str, Any]) -> None:
    out = usermgr_ok("show", "ada@example.com", env={"FORCE_COLOR": "1"}).stdout
    assert not ANSI.search(out) and not BOX.search(out)
    assert ada["id"] in out


def test_a_reader_that_closes_the_pipe_early_gets_exit_141_and_no_traceback() -> None:
    seed_users(4000)
    for args in (["list", "--all", "--format", "jsonl"], ["export", "--format", "jsonl"]):
        child = subprocess.Popen([USERMGR, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert child.stdout is not None and child.stderr is not None
        assert json.loads(child.stdout.readline())["email"]
        child.stdout.close()
        stderr = child.stderr.read().decode()
        assert child.wait(timeout=30) == 141, (args, child.returncode, stderr)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
        assert len(stderr.splitlines()) <= 1, stderr


# --- import discipline -------------------------------------------------------------


IMPORTS = textwrap.dedent(
    """
    import json, sys
    report, *args = sys.argv[1:]
    sys.argv = ["usermgr", *args]
    from usermgr.cli import main
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    loaded = [name for name in {heavy!r} if name in sys.modules]
    with open(report, "w") as f:
        json.dump({{"code": code, "loaded": loaded}}, f)
    """
).format(heavy=HEAVY)


def imported(tmp_path: Path, *args: str, input: str | None = None) -> list[str]:
    """Which heavy modules a command loads; the command must succeed."""
    report = tmp_path / "imports.json"
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(report), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(report.read_text())
    assert outcome["code"] == 0, (args, result.stderr)
    return outcome["loaded"]


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_load_no_heavy_module(tmp_path: Path, args: list[str]) -> None:
    assert imported(tmp_path, *args) == []


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["list", "--format", "json", "--search", "ada"],
        ["list", "--all", "--format", "csv"],
        ["show", "ada@example.com"],
        ["show", "ada@example.com", "--json"],
    ],
)
def test_read_commands_on_sqlite_load_no_heavy_module(tmp_path: Path, ada: dict[str, Any], args: list[str]) -> None:
    assert imported(tmp_path, *args) == []


def test_show_by_id_loads_no_heavy_module(tmp_path: Path, ada: dict[str, Any]) -> None:
    assert imported(tmp_path, "show", ada["id"]) == []


def test_verify_of_a_matching_password_loads_bcrypt_but_no_postgresql_driver(tmp_path: Path, ada: dict[str, Any]) -> None:
    loaded = imported(tmp_path, "verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
    assert "bcrypt" in loaded
    assert "psycopg2" not in loaded


def test_verify_loads_the_same_modules_for_an_unknown_user_as_for_a_wrong_password(tmp_path: Path, ada: dict[str, Any]) -> None:
    def loaded(user: str) -> list[str]:
        report = tmp_path / "imports.json"
        subprocess.run(
            [sys.executable, "-c", IMPORTS, str(report), "verify", user, "--password-stdin"],
            input=OTHER_PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        )
        outcome = json.loads(report.read_text())
        assert outcome["code"] == 5
        return sorted(outcome["loaded"])

    assert loaded("nobody@example.com") == loaded("ada@example.com")


def test_create_on_sqlite_needs_no_postgresql_driver(tmp_path: Path) -> None:
    loaded = imported(tmp_path, "create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
    assert "bcrypt" in loaded
    assert "psycopg2" not in loaded


# --- a real terminal ---------------------------------------------------------------


def test_create_on_a_terminal_prompts_twice_without_echo_and_creates_the_user() -> None:
    term = Terminal("create", "ada@example.com", "--name", "Ada")
    term.expect("Password:")
    term.send(PASSWORD + "\n")
    term.expect("Repeat password:")
    term.send(PASSWORD + "\n")
    code = term.finish()
    assert code == 0, term.text
    assert PASSWORD not in term.text
    assert "Traceback" not in term.text
    usermgr_ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")


def test_create_on_a_terminal_with_a_mismatched_repeat_three_times_exits_2_and_creates_nobody() -> None:
    term = Terminal("create", "ada@example.com", "--name", "Ada")
    for attempt in (1, 2, 3):  # asked again after each mismatch, like passwd
        term.expect("Password:", count=attempt)
        term.send(PASSWORD + "\n")
        term.expect("Repeat password:", count=attempt)
        term.send(OTHER_PASSWORD + "\n")
    code = term.finish()
    assert code == 2, term.text
    assert PASSWORD not in term.text and OTHER_PASSWORD not in term.text
    assert "Traceback" not in term.text
    assert total_users() == 0


def test_ctrl_c_at_the_password_prompt_stops_without_a_traceback_or_a_user() -> None:
    term = Terminal("create", "ada@example.com", "--name", "Ada")
    term.expect("Password:")
    term.send("\x03")
    code = term.finish()
    assert code not in (0, 1), term.text
    assert "Traceback" not in term.text
    assert total_users() == 0


def test_end_of_input_at_the_password_prompt_exits_2_without_a_user() -> None:
    term = Terminal("create", "ada@example.com", "--name", "Ada")
    term.expect("Password:")
    term.send("\x04")
    code = term.finish()
    assert code == 2, term.text
    assert "Traceback" not in term.text
    assert total_users() == 0


def test_verify_on_a_terminal_asks_once_without_echo(ada: dict[str, Any]) -> None:
    term = Terminal("verify", "ada@example.com")
    term.expect("Password:")
    term.send(PASSWORD + "\n")
    assert term.finish() == 0, term.text
    assert PASSWORD not in term.text
    assert "Repeat" not in term.text


def test_delete_on_a_terminal_asks_and_no_keeps_the_user(ada: dict[str, Any]) -> None:
    term = Terminal("delete", "ada@example.com")
    term.expect("?")
    term.send("n\n")
    code = term.finish()
    assert "Traceback" not in term.text
    assert code != 0
    assert total_users() == 1


def test_delete_on_a_terminal_asks_and_yes_deletes(ada: dict[str, Any]) -> None:
    term = Terminal("delete", "ada@example.com")
    term.expect("?")
    term.send("y\n")
    assert term.finish() == 0, term.text
    assert total_users() == 0


def test_end_of_input_at_the_delete_prompt_exits_2_and_keeps_the_user(ada: dict[str, Any]) -> None:
    term = Terminal("delete", "ada@example.com")
    term.expect("?")
    term.send("\x04")
    code = term.finish()
    assert code == 2, term.text
    assert "Traceback" not in term.text
    assert total_users() == 1


def test_a_table_on_a_terminal_prints_names_literally_and_honours_no_color(cli: Cli, ada: dict[str, Any]) -> None:
    cli.create("markup@example.com", "[red]Not red[/red]", password=None)
    term = Terminal("list", env={"NO_COLOR": "1", "COLUMNS": "200", "TERM": "xterm-256color"})
    assert term.finish() == 0, term.text
    assert "[red]Not red[/red]" in term.text
    assert not colours(term.text), term.text


def colours(text: str) -> list[str]:
    """The colour parameters of every SGR escape (bold, dim or italic are not colour)."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        for param in params.split(";"):
            if param and (30 <= int(param) <= 38 or 40 <= int(param) <= 48 or 90 <= int(param) <= 107):
                found.append(param)
    return found


def test_the_colour_check_can_see_colour() -> None:
    assert colours("\x1b[1;31mred\x1b[0m \x1b[38;5;9mx") and not colours("\x1b[1m\x1b[2;3mx\x1b[0m")


# --- bytes that are not UTF-8 ------------------------------------------------------


def run_bytes(*args: str | bytes, input: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([USERMGR, *args], input=input, capture_output=True, timeout=60)



@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_a_password_on_stdin_that_is_not_utf8_is_rejected_with_exit_2(ada: dict[str, Any], locale: str) -> None:
    bad = b"correct horse \xff battery staple\n"
    env_args = {"LC_ALL": locale}
    for args in (
        ["create", "new@example.com", "--name", "New", "--password-stdin"],
        ["passwd", "ada@example.com", "--password-stdin"],
    ):
        result = subprocess.run([USERMGR, *args], input=bad, capture_output=True, timeout=60, env={**os.environ, **env_args})
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
    assert total_users() == 1
    usermgr_ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
def test_a_password_on_stdin_that_is_not_utf8_never_verifies(ada: dict[str, Any]) -> None:
    result = run_bytes("verify", "ada@example.com", "--password-stdin", input=b"correct horse \xff battery staple\n")
    assert result.returncode in (2, 5), result.stderr
    assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
def test_a_name_argument_that_is_not_utf8_is_rejected_with_exit_2(ada: dict[str, Any]) -> None:
    result = run_bytes("create", "new@example.com", "--name", b"Ada \xff", "--no-password", input=b"")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and b"Traceback" not in result.stderr
    assert total_users() == 1
def test_a_search_argument_that_is_not_utf8_does_not_crash(ada: dict[str, Any]) -> None:
    result = run_bytes("list", "--search", b"\xff", input=b"")
    assert result.returncode in (0, 2), result.stderr
    assert b"Traceback" not in result.stderr
