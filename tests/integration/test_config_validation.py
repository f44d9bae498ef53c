"""The config file's newer rules: value ranges, [email], hook names and non-regular files."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import invoke_app
from usermgr.errors import InvalidInput
from usermgr.infrastructure.config import load


def rejected(config_path: Path, text: str) -> str:
    """The one-line message with which both the loader and a command refuse `text`."""
    config_path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load(None, str(config_path))
    result = invoke_app(CliRunner(), "list")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and str(config_path) in result.stderr
    assert result.stderr.strip().endswith(str(caught.value))
    return str(caught.value)


# --- [database] busy_timeout -------------------------------------------------------


@pytest.mark.parametrize("value", ["3000000", "1e308", "3600.001", "86400", "-0.5", "true", '"5"'])
def test_a_busy_timeout_outside_0_to_3600_seconds_exits_2_naming_the_key(config_path: Path, value: str) -> None:
    message = rejected(config_path, f"[database]\nbusy_timeout = {value}\n")
    assert "database.busy_timeout" in message


@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("3600", 3600.0), ("3600.0", 3600.0), ("0.25", 0.25)])
def test_a_busy_timeout_from_0_to_3600_is_loaded(config_path: Path, value: str, seconds: float) -> None:
    config_path.write_text(f"[database]\nbusy_timeout = {value}\n")
    assert load(None, str(config_path)).busy_timeout == seconds


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(min_value=-(10**18), max_value=10**18))
def test_any_busy_timeout_is_loaded_exactly_when_it_is_0_to_3600(value: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(f"[database]\nbusy_timeout = {value!r}\n")
        if 0 <= value <= 3600:
            assert load(None, str(path)).busy_timeout == float(value)
        else:
            with pytest.raises(InvalidInput, match="database.busy_timeout"):
                load(None, str(path))


# --- [email] allow_internal_domains ------------------------------------------------


def test_allow_internal_domains_is_false_by_default(config_path: Path) -> None:
    assert load(None, str(config_path)).allow_internal_domains is False


@pytest.mark.parametrize("value", [True, False])
def test_allow_internal_domains_is_read_from_the_email_table(config_path: Path, value: bool) -> None:
    config_path.write_text(f"[email]\nallow_internal_domains = {str(value).lower()}\n")
    assert load(None, str(config_path)).allow_internal_domains is value


@pytest.mark.parametrize("value", ['"true"', '"yes"', "1", "0", "[true]", "{ on = true }"])
def test_allow_internal_domains_that_is_not_a_boolean_exits_2_naming_the_key(config_path: Path, value: str) -> None:
    message = rejected(config_path, f"[email]\nallow_internal_domains = {value}\n")
    assert "email.allow_internal_domains" in message and "true or false" in message


@pytest.mark.parametrize(
    "text, key",
    [("[email]\nallow_internal_domain = true\n", "email.allow_internal_domain"), ("email = true\n", "email")],
)
def test_a_bad_email_table_exits_2_naming_the_key(config_path: Path, text: str, key: str) -> None:
    assert f": {key}: " in rejected(config_path, text)


# --- hooks: NUL in a command, names ---------------------------------------------------


@pytest.mark.parametrize("command", ['["/bin/echo", "a\\u0000b"]', '["/bin/true\\u0000"]', '["/bin/echo", "ok", "\\u0000"]'])
def test_a_hook_command_with_a_nul_character_exits_2_naming_it(config_path: Path, command: str) -> None:
    ok = '[[hooks]]\non = "*"\ncommand = ["/bin/true"]\n\n'
    message = rejected(config_path, ok + f'[[hooks]]\non = "UserCreated"\ncommand = {command}\n')
    assert "hooks[2].command" in message and "NUL" in message
