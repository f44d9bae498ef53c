"""NUL passwords and invisible names through the commands (CONTRACT.md: exit 2 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import bcrypt
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import PASSWORD, invoke_app

NUL_PASSWORDS = ["\x00" * 12, "correct horse\x00battery", "\x00" + "a" * 15]


def run(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    result = invoke_app(runner, *args, input=input)
    assert "$2b$" not in result.stdout + result.stderr
    return result


def one_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("password", NUL_PASSWORDS)
def test_create_and_passwd_refuse_a_password_with_nul(runner: CliRunner, password: str) -> None:
    line = one_error(run(runner, "create", "ada@example.com", "--name", "Ada", "--password-stdin", input=password + "\n"), 2)
    assert "NUL" in line
    assert run(runner, "create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    assert "NUL" in one_error(run(runner, "passwd", "ada@example.com", "--password-stdin", input=password + "\n"), 2)
    assert run(runner, "verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n").exit_code == 0


def test_import_refuses_a_password_with_nul_and_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    rows = tmp_path / "users.jsonl"
    rows.write_text(
        json.dumps({"email": "ok@example.com", "name": "Ok", "password": PASSWORD}) + "\n"
        + json.dumps({"email": "nul@example.com", "name": "Nul", "password": "\x00" * 12}) + "\n"
    )
    result = run(runner, "import", str(rows))
    assert result.exit_code == 2
    assert "line 2" in result.stderr and "NUL" in result.stderr
    assert json.loads(run(runner, "list", "--format", "json").stdout)["total"] == 0


def test_an_imported_hash_of_nul_bytes_matches_no_password_with_nul(runner: CliRunner, tmp_path: Path) -> None:
    # Another system's bcrypt hash of twelve NULs: bcrypt alone accepts one NUL, or thirteen.
    hashed = bcrypt.hashpw(b"\x00" * 12, bcrypt.gensalt(4)).decode()
    rows = tmp_path / "users.jsonl"
    rows.write_text(json.dumps({"email": "ada@example.com", "name": "Ada", "password_hash": hashed}) + "\n")
    assert run(runner, "import", str(rows)).exit_code == 0
    for attempt in ("\x00", "\x00" * 12, "\x00" * 13):
        one_error(run(runner, "verify", "ada@example.com", "--password-stdin", input=attempt + "\n"), 5)


@pytest.mark.parametrize("name", ["\u200b", "\ufeff", "\ufeffAda", "Ada\u200b", "\u3164", "\u0301Ada"])
def test_create_and_update_refuse_a_name_with_nothing_visible_at_its_start_or_end(runner: CliRunner, name: str) -> None:
    assert "invalid name" in one_error(run(runner, "create", "ada@example.com", "--name", name, "--no-password"), 2)
    assert run(runner, "create", "ada@example.com", "--name", "Ada", "--no-password").exit_code == 0
    assert "invalid name" in one_error(run(runner, "update", "ada@example.com", "--name", name), 2)


def test_a_persian_name_with_a_zwnj_and_an_emoji_with_zwj_are_kept(runner: CliRunner) -> None:
    for email, name in (("a@example.com", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"), ("b@example.com", "\U0001f468\u200d\U0001f469")):
        result = run(runner, "create", email, "--name", name, "--no-password", "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["name"] == name
