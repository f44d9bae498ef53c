"""Input the commands refuse before they open storage, whatever the engine: bad emails,
names, roles, passwords and password sources, options, bytes that are not UTF-8, NUL
passwords and invisible names (CONTRACT.md: exit 2, and 5 for a verify). Each failure is
one line on stderr and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.helpers import OTHER_PASSWORD, PASSWORD, Cli, one_line
from usermgr.domain.events import EVENT_TYPES

NUL_PASSWORDS = ["\x00" * 12, "correct horse\x00battery", "\x00" + "a" * 15]


@pytest.mark.parametrize("password", NUL_PASSWORDS)
def test_create_and_passwd_refuse_a_password_with_nul(cli: Cli, password: str) -> None:
    line = cli.fails(2, "create", "ada@example.com", "--name", "Ada", "--password-stdin", input=password + "\n").stderr
    assert "NUL" in line
    assert cli("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    assert "NUL" in cli.fails(2, "passwd", "ada@example.com", "--password-stdin", input=password + "\n").stderr
    assert cli("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n").exit_code == 0


def test_import_refuses_a_password_with_nul_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    rows = tmp_path / "users.jsonl"
    rows.write_text(
        json.dumps({"email": "ok@example.com", "name": "Ok", "password": PASSWORD}) + "\n"
        + json.dumps({"email": "nul@example.com", "name": "Nul", "password": "\x00" * 12}) + "\n"
    )
    result = cli("import", str(rows))
    assert result.exit_code == 2
    assert "line 2" in result.stderr and "NUL" in result.stderr
    assert json.loads(cli("list", "--format", "json").stdout)["total"] == 0


def test_an_imported_hash_of_nul_bytes_matches_no_password_with_nul(cli: Cli, tmp_path: Path) -> None:
    # Another system's bcrypt hash of twelve NULs: bcrypt alone accepts one NUL, or thirteen.
    hashed = bcrypt.hashpw(b"\x00" * 12, bcrypt.gensalt(4)).decode()
    rows = tmp_path / "users.jsonl"
    rows.write_text(json.dumps({"email": "ada@example.com", "name": "Ada", "password_hash": hashed}) + "\n")
    assert cli("import", str(rows)).exit_code == 0
    for attempt in ("\x00", "\x00" * 12, "\x00" * 13):
        cli.fails(5, "verify", "ada@example.com", "--password-stdin", input=attempt + "\n").stderr


@pytest.mark.parametrize("name", ["\u200b", "\ufeff", "\ufeffAda", "Ada\u200b", "\u3164", "\u0301Ada"])
def test_create_and_update_refuse_a_name_with_nothing_visible_at_its_start_or_end(cli: Cli, name: str) -> None:
    assert "invalid name" in cli.fails(2, "create", "ada@example.com", "--name", name, "--no-password").stderr
    assert cli("create", "ada@example.com", "--name", "Ada", "--no-password").exit_code == 0
    assert "invalid name" in cli.fails(2, "update", "ada@example.com", "--name", name).stderr


def test_a_persian_name_with_a_zwnj_and_an_emoji_with_zwj_are_kept(cli: Cli) -> None:
    for email, name in (("a@example.com", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"), ("b@example.com", "\U0001f468\u200d\U0001f469")):
        result = cli("create", email, "--name", name, "--no-password", "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["name"] == name


# --- emails, names, roles -------------------------------------------------------------


BAD_EMAILS = [
    "",
    "plainaddress",
    "@example.com",
    "ada@",
    "ada@@example.com",
    "ada example@example.com",
    " ada@example.com",
    "ada@example.com ",
    "ada@example.com\n",
    "\tada@example.com",
    "ada@example",
    "a" * 65 + "@example.com",
    "ada@" + "x" * 250 + ".com",
    "ad\u202ea@example.com",
    "ad\u200ba@example.com",
    "ad\x00a@example.com",
    "ada\uff20example.com",
]

BAD_NAMES = [
    "",
    " Ada",
    "Ada ",
    "Ada\u00a0",
    "\tAda",
    "x" * 201,
    "Ada\x1b[31mRed",
    "Ada\nLovelace",
    "Ada\rLovelace",
    "Ada\tLovelace",
    "Ada\x00",
    "Ada\x7f",
    "Ada\u0085",
    "Ada\u202eecalevol",
    "Ada\u2066x\u2069",
    "Ada\u200fx",
    "Ada\u061cx",
    "Ada\u2028x",
]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_create_with_a_bad_email_exits_2(cli: Cli, ada: dict[str, Any], email: str) -> None:
    cli.fails(2, "create", email, "--name", "Bad", "--password-stdin", input=PASSWORD + "\n")


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_update_to_a_bad_email_exits_2(cli: Cli, ada: dict[str, Any], email: str) -> None:
    cli.fails(2, "update", "ada@example.com", "--email", email)


def test_an_email_with_surrounding_spaces_is_not_trimmed_into_a_duplicate(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "create", " ada@example.com ", "--name", "Ada", "--no-password", "--exists-ok")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_create_with_a_bad_name_exits_2(cli: Cli, ada: dict[str, Any], name: str) -> None:
    cli.fails(2, "create", "new@example.com", "--name", name, "--password-stdin", input=PASSWORD + "\n")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_update_to_a_bad_name_exits_2(cli: Cli, ada: dict[str, Any], name: str) -> None:
    cli.fails(2, "update", "ada@example.com", "--name", name)


@pytest.mark.parametrize("role", ["root", "Admin", "", "users"])
def test_create_with_an_unknown_role_exits_2(cli: Cli, ada: dict[str, Any], role: str) -> None:
    cli.fails(2, "create", "new@example.com", "--name", "New", "--role", role, "--password-stdin", input=PASSWORD + "\n")


# --- passwords and where they come from ----------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "short1",
        "x" * 11,
        "é" * 11,
        "p" * 73,
        "é" * 37,
        "€" * 25,
        "newuser-local",
        "NEWUSER-LOCAL",
        "newuser-local@example.com",
    ],
)
def test_create_with_a_password_against_the_policy_exits_2(cli: Cli, ada: dict[str, Any], password: str) -> None:
    cli.fails(2, "create", "newuser-local@example.com", "--name", "New", "--password-stdin", input=password + "\n")


def test_an_empty_stdin_is_not_a_password(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "create", "new@example.com", "--name", "New", "--password-stdin", input="")
    cli.fails(2, "create", "new@example.com", "--name", "New", "--password-stdin", input="\n")
    cli.fails(2, "passwd", "ada@example.com", "--password-stdin", input="")


def test_a_missing_or_empty_password_file_exits_2(cli: Cli, ada: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    cli.fails(2, "create", "new@example.com", "--name", "New", "--password-file", str(missing))
    empty = tmp_path / "empty"
    empty.write_text("")
    cli.fails(2, "create", "new@example.com", "--name", "New", "--password-file", str(empty))
    cli.fails(2, "passwd", "ada@example.com", "--password-file", str(missing))
    cli.fails(2, "verify", "ada@example.com", "--password-file", str(missing))


@pytest.mark.parametrize(
    "args",
    [
        ["create", "new@example.com", "--name", "New"],
        ["passwd", "ada@example.com"],
        ["verify", "ada@example.com"],
    ],
)
def test_no_terminal_and_no_password_source_exits_2(cli: Cli, ada: dict[str, Any], args: list[str]) -> None:
    result = cli.fails(2, *args)
    assert "--password-stdin" in result.stderr


def test_no_terminal_and_no_password_source_exits_2_even_with_input_waiting(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "create", "new@example.com", "--name", "New", input=PASSWORD + "\n" + PASSWORD + "\n")


@pytest.mark.parametrize(
    "sources",
    [
        ["--password-stdin", "--generate-password"],
        ["--password-stdin", "--no-password"],
        ["--password-stdin", "--password-file", "{file}"],
        ["--password-file", "{file}", "--generate-password"],
        ["--generate-password", "--no-password"],
    ],
)
def test_create_with_two_password_sources_exits_2(
    cli: Cli, ada: dict[str, Any], tmp_path: Path, sources: list[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    args = [s.format(file=secret) for s in sources]
    cli.fails(2, "create", "new@example.com", "--name", "New", *args, input=PASSWORD + "\n")


@pytest.mark.parametrize(
    "command, sources",
    [
        ("passwd", ["--password-stdin", "--generate-password"]),
        ("passwd", ["--password-stdin", "--password-file", "{file}"]),
        ("verify", ["--password-stdin", "--password-file", "{file}"]),
    ],
)
def test_passwd_and_verify_with_two_password_sources_exit_2(
    cli: Cli, ada: dict[str, Any], tmp_path: Path, command: str, sources: list[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(OTHER_PASSWORD + "\n")
    args = [s.format(file=secret) for s in sources]
    cli.fails(2, command, "ada@example.com", *args, input=OTHER_PASSWORD + "\n")
    assert cli.verify("ada@example.com", PASSWORD) == 0


def test_a_password_is_never_accepted_as_an_argument(cli: Cli, ada: dict[str, Any]) -> None:
    argument = "given-on-the-command-line"
    cli.fails(2, "create", "new@example.com", "--name", "New", "--password", argument, usage=True)
    cli.fails(2, "passwd", "ada@example.com", argument, usage=True)
    cli.fails(2, "verify", "ada@example.com", argument, usage=True)
    assert cli.verify("ada@example.com", argument) == 5


def test_a_missing_required_name_is_a_usage_error(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "create", "new@example.com", "--no-password", usage=True)


# --- bytes that are not UTF-8, options -----------------------------------------------------
# Bytes that are not UTF-8 in argv reach Python as lone surrogates ("\udcff").


def test_a_name_that_is_not_utf8_exits_2(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "create", "new@example.com", "--name", "Ada \udcff", "--no-password")
    cli.fails(2, "update", "ada@example.com", "--name", "Ada \udcff")


def test_an_email_that_is_not_utf8_exits_2(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "create", "new\udcff@example.com", "--name", "New", "--no-password")
    cli.fails(2, "update", "ada@example.com", "--email", "ada\udcff@example.com")


@pytest.mark.parametrize("ref", ["ada\udcff@example.com", "\udcff"])
def test_a_user_reference_that_is_not_utf8_is_not_found_or_invalid(cli: Cli, ada: dict[str, Any], ref: str) -> None:
    for args in (["show", ref], ["deactivate", ref], ["delete", ref, "--yes"]):
        result = cli(*args)
        assert result.exit_code in (2, 3), (args, result.exit_code, result.stderr)
        assert len(result.stderr.splitlines()) == 1
    result = cli("verify", ref, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code in (2, 5), result.stderr
    assert cli.json("show", "ada@example.com", "--json")["is_active"] is True


def test_a_search_that_is_not_utf8_finds_nothing_or_exits_2(cli: Cli, ada: dict[str, Any]) -> None:
    result = cli("list", "--format", "json", "--search", "\udcff")
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 0:
        assert json.loads(result.stdout)["items"] == []
    else:
        assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--active", "--inactive"],
        ["--page", "0"],
        ["--page", "-1"],
        ["--per-page", "0"],
        ["--per-page", "1001"],
        ["--role", "root"],
        ["--role", "Admin"],
        ["--all", "--role", "root"],
        ["--all", "--active", "--inactive"],
    ],
)
def test_bad_list_options_exit_2(cli: Cli, ada: dict[str, Any], args: list[str]) -> None:
    cli.fails(2, "list", *args)


def test_an_unknown_format_is_a_usage_error(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "list", "--format", "xml", usage=True)


@pytest.mark.parametrize("role", ["root", "Admin", "ADMIN", "", " admin", "admin "])
def test_set_role_to_an_unknown_role_exits_2(cli: Cli, ada: dict[str, Any], role: str) -> None:
    cli.fails(2, "set-role", "ada@example.com", role)


def test_update_with_nothing_to_change_exits_2(cli: Cli, ada: dict[str, Any]) -> None:
    cli.fails(2, "update", "ada@example.com")


# --- events options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--type", "UserExploded"],
        ["--type", "usercreated"],
        ["--limit", "0"],
        ["--limit", "-3"],
        ["--since", "tomorrow"],
        ["--since", "7days"],
    ],
)
def test_events_with_a_bad_option_exits_2_with_one_line_on_stderr(cli: Cli, args: list[str]) -> None:
    result = cli.fails(2, "events", *args)
    assert result.stderr.startswith("usermgr: ")


def test_events_with_a_bad_type_lists_the_valid_ones(cli: Cli) -> None:
    line = one_line(cli.fails(2, "events", "--type", "Nope").stderr)
    for event_type in EVENT_TYPES:
        assert event_type in line
