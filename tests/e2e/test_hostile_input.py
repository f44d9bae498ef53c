"""What an outside review of 0.2.0 found: a hand-edited database (triggers, bytes that
are not UTF-8, control characters, nesting thousands deep), odd input (a password line
with a lone carriage return or no end, a column given twice), a closed stdout, and
PostgreSQL passwords that URL parsers read differently. Each: the contract's exit
code, one line, nothing changed, no secret shown."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import (
    PASSWORD,
    USERMGR,
    invoke_app,
    is_postgresql,
    one_line,
    raw_sql,
    run_usermgr,
    sqlite_query,
)

pytestmark = pytest.mark.usefixtures("engine")


def ok(*args: str, input: str | None = None) -> str:
    result = invoke_app(*args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def fails(code: int, *args: str, input: str | None = None) -> str:
    result = invoke_app(*args, input=input)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return one_line(result.stderr)


def create(email: str = "ada@example.com", password: str = PASSWORD) -> None:
    ok("create", email, "--name", "Ada", "--password-stdin", input=password + "\n")


# --- a trigger in the database --------------------------------------------------------


def plant_trigger() -> None:
    if is_postgresql(os.environ["USERMGR_DB"]):
        raw_sql("CREATE FUNCTION leak() RETURNS trigger LANGUAGE plpgsql AS"
                " $$BEGIN NEW.name := NEW.password_hash; RETURN NEW; END$$")
        raw_sql("CREATE TRIGGER copy_hash BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION leak()")
    else:
        raw_sql("CREATE TRIGGER copy_hash AFTER UPDATE OF password_hash ON users"
                " BEGIN UPDATE users SET name = NEW.password_hash WHERE id = NEW.id; END")


def test_a_trigger_usermgr_did_not_create_is_refused_by_every_command_and_never_runs() -> None:
    create()
    plant_trigger()
    line = fails(6, "passwd", "ada@example.com", "--password-stdin", input="another long passphrase\n")
    assert "trigger usermgr did not create (copy_hash)" in line and "DROP TRIGGER" in line
    for args in (["list"], ["show", "ada@example.com"], ["db", "check"], ["events", "verify"]):
        assert "copy_hash" in fails(6, *args)
    [(name,)] = raw_sql("SELECT name FROM users")
    assert name == "Ada"
    assert invoke_app("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n").exit_code == 6


# --- values a hand edit left in the database -------------------------------------------


@pytest.mark.sqlite_only("PostgreSQL keeps every text column valid UTF-8")
def test_a_hash_that_is_not_utf_8_is_named_by_its_column_never_shown(db_path: Path) -> None:
    create()
    [(stored,)] = sqlite_query(db_path, "SELECT password_hash FROM users")
    raw_sql("UPDATE users SET password_hash = CAST(password_hash || X'FF' AS TEXT)")
    for args in (["verify", "ada@example.com", "--password-stdin"], ["hashes"]):
        line = fails(6, *args, input="x\n")
        assert "not UTF-8 in column password_hash" in line
        assert stored[:20] not in line and "$2b$" not in line


def test_control_characters_in_a_stored_name_are_escaped_in_tables_and_show() -> None:
    create()
    raw_sql("UPDATE users SET name = ?", ("\x1b[31mRED\x1b]0;title\x07 é\u202e",))
    for args in (["show", "ada@example.com"], ["list"]):
        out = ok(*args)
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "\\x1b[31mRED\\x1b]0;title\\x07 é\\u202e" in out
    # JSON keeps the value exactly, escaped the JSON way.
    assert json.loads(ok("show", "ada@example.com", "--json"))["name"] == "\x1b[31mRED\x1b]0;title\x07 é\u202e"


def test_event_data_nested_thousands_deep_is_shown_as_text_and_breaks_the_chain() -> None:
    create()
    raw_sql("UPDATE events SET data = ?", ("[" * 100_000 + "]" * 100_000,))
    assert len(json.loads(ok("events", "--format", "json"))) == 1
    assert "audit log broken at event 1" in fails(6, "events", "verify")


# --- input -----------------------------------------------------------------------------


@pytest.mark.sqlite_only("how a password line is read happens before any storage")
def test_a_lone_carriage_return_is_part_of_a_password_file_as_of_standard_input(tmp_path: Path) -> None:
    password = "abcdefghijkl\rmnopqrstu"
    (tmp_path / "pw").write_bytes(password.encode() + b"\r\n")
    ok("create", "ada@example.com", "--name", "Ada", "--password-file", str(tmp_path / "pw"))
    # A real process: its stdin ends lines at "\n" only, as the file now does.
    assert run_usermgr("verify", "ada@example.com", "--password-stdin", input=password + "\n").returncode == 0
    assert run_usermgr("verify", "ada@example.com", "--password-stdin", input="abcdefghijkl\n").returncode == 5


@pytest.mark.sqlite_only("how a password line is read happens before any storage")
def test_a_password_line_with_no_end_in_64_kib_is_refused_without_reading_on(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("a" * 100_000)
    for args, stdin in ((["--password-file", str(tmp_path / "pw")], None), (["--password-stdin"], "b" * 100_000)):
        line = fails(2, "create", "ada@example.com", "--name", "Ada", *args, input=stdin)
        assert "too long" in line and "64 KiB" in line
    assert json.loads(ok("list", "--format", "json"))["total"] == 0


def test_a_key_given_twice_in_a_jsonl_row_is_an_invalid_row() -> None:
    result = invoke_app("import", "--format", "jsonl", "-", input='{"email": "a@example.com", "name": "A", "name": "B"}\n')
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[0] == "line 1: key 'name' is given twice"
    assert json.loads(ok("list", "--format", "json"))["total"] == 0


@pytest.mark.sqlite_only("the options are checked before any storage")
@pytest.mark.parametrize("option", [["--user", "ada@example.com"], ["--type", "UserCreated"], ["--limit", "5"],
                                    ["--format", "json"], ["--since", "7d"]])
def test_events_filters_before_verify_are_refused_rather_than_ignored(option: list[str]) -> None:
    line = fails(2, "events", *option, "verify")
    assert f"{option[0]} does not apply to events verify" in line


@pytest.mark.sqlite_only("the config is read before any storage")
def test_a_hooks_on_that_is_a_list_is_exit_2_naming_the_key(config_path: Path) -> None:
    config_path.write_text('[security]\nbcrypt_rounds = 4\n[[hooks]]\non = ["UserCreated"]\ncommand = ["true"]\n')
    assert "hooks[1].on" in fails(2, "list")


@pytest.mark.sqlite_only("a closed stdout is seen before any storage")
def test_a_closed_stdout_is_exit_74_before_anything_is_created() -> None:
    result = subprocess.run([USERMGR, "create", "ada@example.com", "--name", "Ada", "--generate-password"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: os.close(1))
    assert result.returncode == 74, result.stderr
    assert result.stderr == "usermgr: standard output is closed; nothing was done\n"
    assert json.loads(run_usermgr("list", "--format", "json").stdout)["total"] == 0


# --- PostgreSQL URLs whose password the parsers read differently -------------------------


@pytest.mark.sqlite_only("a property of the URL text, no server")
@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql://admin:S3cr/et@127.0.0.1:1/db", "S3cr/et"),
        ("postgresql://admin:S3cr?et@127.0.0.1:1/db", "S3cr?et"),
        ("postgresql://admin:S3cr#et@127.0.0.1:1/db", "S3cr#et"),
        ("postgresql://admin:S3cret@[::1/db", "S3cret"),
        ("postgresql://admin:pa%41%zz@127.0.0.1:1/db", "pa%41%zz"),
        ("postgresql://127.0.0.1:1/db?password=se@cret", "se@cret"),
    ],
)
def test_an_unreachable_server_never_shows_a_password_however_the_url_is_read(url: str, password: str) -> None:
    for debug in ([], ["--debug"]):
        result = run_usermgr(*debug, "--db", url, "list")
        assert result.returncode == 6, result.stderr
        for piece in {password, password.split("/")[0].split("?")[0].split("#")[0], password.replace("%41", "A")}:
            assert piece not in result.stdout + result.stderr
