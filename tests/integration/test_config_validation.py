"""The config file's newer rules: value ranges, [email], hook names and non-regular files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import USERMGR, invoke_app
from usermgr.errors import InvalidInput
from usermgr.infrastructure.config import Hook, load


def rejected(config_path: Path, text: str) -> str:
    """The one-line message with which both the loader and a command refuse `text`."""
    config_path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load(None, str(config_path))
    result = invoke_app("list")
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


def test_a_hook_is_named_after_its_event_and_command_by_default(config_path: Path) -> None:
    config_path.write_text(
        '[[hooks]]\non = "UserCreated"\ncommand = ["/usr/local/bin/send-welcome", "--quiet"]\n\n'
        '[[hooks]]\non = "UserDeleted"\ncommand = ["/usr/local/bin/send-welcome", "--quiet"]\n\n'
        '[[hooks]]\nname = "audit"\non = "*"\ncommand = ["/opt/audit/forward"]\ntimeout = 2.5\n'
    )
    assert load(None, str(config_path)).hooks == (
        Hook("UserCreated /usr/local/bin/send-welcome --quiet", "UserCreated", ("/usr/local/bin/send-welcome", "--quiet")),
        Hook("UserDeleted /usr/local/bin/send-welcome --quiet", "UserDeleted", ("/usr/local/bin/send-welcome", "--quiet")),
        Hook("audit", "*", ("/opt/audit/forward",), 2.5),
    )


def test_two_hooks_with_one_name_exit_2_naming_both_entries(config_path: Path) -> None:
    message = rejected(
        config_path,
        '[[hooks]]\nname = "welcome"\non = "UserCreated"\ncommand = ["/bin/true"]\n\n'
        '[[hooks]]\non = "UserCreated"\ncommand = ["/bin/true"]\n\n'
        '[[hooks]]\nname = "welcome"\non = "UserDeleted"\ncommand = ["/bin/false"]\n',
    )
    assert message.endswith('hooks[3].name: "welcome" is also the name of hooks[1]')


def test_two_identical_unnamed_hooks_exit_2_asking_for_a_name(config_path: Path) -> None:
    hook = '[[hooks]]\non = "UserCreated"\ncommand = ["/bin/true"]\n\n'
    message = rejected(config_path, hook + hook)
    assert 'hooks[2]: "UserCreated /bin/true"' in message
    assert "is also the name of hooks[1]" in message and "give it a name" in message


def test_a_name_may_take_the_default_name_of_another_hook_only_once(config_path: Path) -> None:
    message = rejected(
        config_path,
        '[[hooks]]\non = "UserCreated"\ncommand = ["/bin/true"]\n\n'
        '[[hooks]]\nname = "UserCreated /bin/true"\non = "*"\ncommand = ["/bin/false"]\n',
    )
    assert 'hooks[2].name: "UserCreated /bin/true" is also the name of hooks[1]' in message


@pytest.mark.parametrize(
    "name",
    ['""', "1", "true", '["welcome"]', '"wel\\u0000come"', '"wel\\tcome"', '"wel\\ncome"', '"wel\\u001bcome"',
     '"wel\\u200bcome"', '" welcome"', '"welcome "', f'"{"x" * 201}"'],
)
def test_a_bad_hook_name_exits_2_naming_it(config_path: Path, name: str) -> None:
    message = rejected(config_path, f'[[hooks]]\nname = {name}\non = "*"\ncommand = ["/bin/true"]\n')
    assert "hooks[1].name" in message and "printable" in message


@pytest.mark.parametrize("name", ["w", "welcome mail", "Willkommen-Bestätigung", "x" * 200, "[bold]x[/]"])
def test_a_good_hook_name_is_kept_as_written(config_path: Path, name: str) -> None:
    config_path.write_text(f'[[hooks]]\nname = {json.dumps(name, ensure_ascii=False)}\non = "*"\ncommand = ["/bin/true"]\n')
    [hook] = load(None, str(config_path)).hooks
    assert hook.name == name


def test_an_unnamed_hook_whose_default_name_is_unusable_is_asked_for_a_name(config_path: Path) -> None:
    message = rejected(config_path, f'[[hooks]]\non = "*"\ncommand = ["/bin/echo", "{"x" * 200}"]\n')
    assert "hooks[1]:" in message and "give it a name" in message
    config_path.write_text(f'[[hooks]]\nname = "long"\non = "*"\ncommand = ["/bin/echo", "{"x" * 200}"]\n')
    assert load(None, str(config_path)).hooks[0].name == "long"


@given(
    names=st.lists(
        st.text(alphabet=st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=20), min_size=1, max_size=6
    )
)
def test_names_load_exactly_when_they_are_unique(names: list[str]) -> None:
    text = "".join(f'[[hooks]]\nname = {json.dumps(n, ensure_ascii=False)}\non = "*"\ncommand = ["/bin/true"]\n\n' for n in names)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(text)
        if len(set(names)) == len(names):
            assert [h.name for h in load(None, str(path)).hooks] == names
        else:
            with pytest.raises(InvalidInput, match=r"hooks\[\d+\]\.name: .* is also the name of hooks\[\d+\]"):
                load(None, str(path))


# --- --config that is not a regular file ---------------------------------------------


def test_config_dev_null_means_no_settings(db_path: Path) -> None:
    settings = load(str(db_path), os.devnull)
    assert (settings.bcrypt_rounds, settings.busy_timeout, settings.hooks) == (12, 5.0, ())
    result = invoke_app("--config", os.devnull, "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 0


def test_config_from_a_fifo_is_read(tmp_path: Path, db_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("w") as f:
            f.write("[security]\nbcrypt_rounds = 5\n")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert load(str(db_path), str(fifo)).bcrypt_rounds == 5
    finally:
        writer.join(timeout=10)


def test_config_from_process_substitution_is_read_by_the_installed_command(tmp_path: Path) -> None:
    config = '<(printf "[security]\\nbcrypt_rounds = 5\\n")'
    script = (
        f'"{USERMGR}" --config {config} create ada@example.com --name Ada --generate-password >/dev/null'
        f' && "{USERMGR}" --config {config} export --format jsonl --include-hashes'
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["password_hash"].startswith("$2b$05$")


def test_config_that_is_a_directory_says_so(tmp_path: Path, db_path: Path) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    result = invoke_app("--config", str(folder), "list")
    assert result.exit_code == 2
    assert result.stderr == f"usermgr: config file {folder} is a directory\n"
    assert not db_path.exists()


def test_config_that_is_missing_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = invoke_app("--config", str(missing), "list")
    assert result.exit_code == 2
    assert result.stderr == f"usermgr: config file {missing} does not exist\n"


def test_config_that_is_endless_is_refused_not_read_forever() -> None:
    result = invoke_app("--config", "/dev/zero", "list")
    assert result.exit_code == 2
    assert result.stderr == "usermgr: config /dev/zero: larger than 1 MiB\n"


def test_config_that_cannot_be_read_says_permission_denied(tmp_path: Path) -> None:
    config = tmp_path / "private.toml"
    config.write_text("[security]\nbcrypt_rounds = 4\n")
    config.chmod(0)
    env = {**os.environ, "USERMGR_CONFIG": str(config)}
    command = [USERMGR, "list"]
    if os.geteuid() == 0:  # root reads any file: run without the capabilities that allow it
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("no setpriv to run as root without CAP_DAC_OVERRIDE")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"usermgr: config {config}: cannot read: Permission denied\n"
