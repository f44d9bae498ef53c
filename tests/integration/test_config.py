"""The TOML config and the database location: loaded directly and through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli, invoke_app, one_line, run_usermgr
from usermgr.errors import InvalidInput
from usermgr.infrastructure.config import load

HOOK = '[[hooks]]\non = "UserCreated"\ncommand = ["/bin/true"]\n'






def assert_rejected(config_path: Path, db_path: Path, *needles: str) -> str:
    """Both the loader and a command reject the config, naming the file and each needle."""
    with pytest.raises(InvalidInput) as caught:
        load(None, str(config_path))
    for args in (["list"], ["create", "ada@example.com", "--name", "Ada", "--no-password"]):
        result = invoke_app(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        line = one_line(result.stderr)
        assert str(config_path) in line
        for needle in needles:
            assert needle in line, (needle, line)
        assert result.stdout == ""
    assert not db_path.exists()
    return str(caught.value)


# --- defaults and the files named ----------------------------------------------------


def test_the_test_config_is_loaded(config_path: Path, db_path: Path) -> None:
    settings = load(str(db_path), str(config_path))
    assert settings.bcrypt_rounds == 4
    assert settings.database.path == db_path


def test_a_missing_default_config_means_defaults(monkeypatch: pytest.MonkeyPatch, db_path: Path) -> None:
    monkeypatch.delenv("USERMGR_CONFIG")
    settings = load(str(db_path), None)
    assert settings.bcrypt_rounds == 12
    assert settings.min_password_length == 12
    assert settings.busy_timeout == 5
    assert tuple(settings.hooks) == ()


def test_a_missing_default_config_is_fine_for_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USERMGR_CONFIG")
    result = invoke_app("list", "--format", "json")
    assert result.exit_code == 0, result.stderr


def test_the_default_config_is_read_from_the_per_user_config_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_path: Path
) -> None:
    monkeypatch.delenv("USERMGR_CONFIG")
    default = tmp_path / "home" / ".config" / "usermgr" / "config.toml"
    default.parent.mkdir(parents=True)
    default.write_text("[security]\nbcrypt_rounds = 5\n")
    assert load(str(db_path), None).bcrypt_rounds == 5
    default.write_text("[security]\nbcrypt_round = 5\n")
    result = invoke_app("list")
    assert result.exit_code == 2
    assert str(default) in one_line(result.stderr)


def test_the_default_database_lives_in_the_per_user_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("USERMGR_DB")
    expected = tmp_path / "home" / ".local" / "share" / "usermgr" / "usermgr.db"
    assert load(None, None).database.path == expected
    result = invoke_app("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert result.exit_code == 0, result.stderr
    assert expected.is_file()
    assert expected.stat().st_mode & 0o777 == 0o600


def test_a_missing_config_named_with_the_option_exits_2(tmp_path: Path, db_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(InvalidInput):
        load(None, str(missing))
    result = invoke_app("--config", str(missing), "list")
    assert result.exit_code == 2
    assert str(missing) in one_line(result.stderr)
    assert not db_path.exists()


def test_a_missing_config_named_in_the_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_path: Path
) -> None:
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv("USERMGR_CONFIG", str(missing))
    result = invoke_app("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert result.exit_code == 2
    assert str(missing) in one_line(result.stderr)
    assert not db_path.exists()


def test_the_config_option_wins_over_the_environment(tmp_path: Path, config_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[security]\nbcrypt_rounds = 5\n")
    config_path.write_text("not toml at all [")
    result = invoke_app("--config", str(other), "list")
    assert result.exit_code == 0, result.stderr


def test_a_config_that_is_a_directory_exits_2(tmp_path: Path) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    result = invoke_app("--config", str(folder), "list")
    assert result.exit_code == 2
    one_line(result.stderr)


def test_help_works_whatever_the_config(config_path: Path) -> None:
    config_path.write_text("this is [ not toml")
    for args in (["--help"], ["create", "--help"], ["list", "--help"]):
        result = invoke_app(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert "Usage" in result.stdout


# --- bad files, keys and values ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "this is [ not toml",
        "[security]\nbcrypt_rounds = \n",
        "[security]\nbcrypt_rounds = 4\n[security]\nbcrypt_rounds = 5\n",
        "bcrypt_rounds = 4\nbcrypt_rounds = 5\n",
    ],
)
def test_an_unparseable_config_exits_2_naming_the_file(config_path: Path, db_path: Path, text: str) -> None:
    config_path.write_text(text)
    assert_rejected(config_path, db_path)


def test_a_config_that_is_not_utf8_exits_2_naming_the_file(config_path: Path, db_path: Path) -> None:
    config_path.write_bytes(b"[security]\n# \xff\xfe\nbcrypt_rounds = 4\n")
    assert_rejected(config_path, db_path)


@pytest.mark.parametrize(
    "text, key",
    [
        ("[securty]\nbcrypt_rounds = 4\n", "securty"),
        ("[security]\nbcrypt_round = 4\n", "bcrypt_round"),
        ("[security]\nbcrypt_rounds = 4\nmax_password_length = 72\n", "max_password_length"),
        ("[database]\nbusy_timeuot = 1\n", "busy_timeuot"),
        ("[database]\npath = '/tmp/x.db'\n", "path"),
        ("debug = true\n", "debug"),
        (HOOK + "shell = true\n", "shell"),
    ],
)
def test_an_unknown_key_exits_2_naming_the_key(
    config_path: Path, db_path: Path, text: str, key: str
) -> None:
    config_path.write_text(text)
    assert_rejected(config_path, db_path, key)


@pytest.mark.parametrize(
    "text, key",
    [
        ("[security]\nbcrypt_rounds = 3\n", "bcrypt_rounds"),
        ("[security]\nbcrypt_rounds = 32\n", "bcrypt_rounds"),
        ("[security]\nbcrypt_rounds = -1\n", "bcrypt_rounds"),
        ('[security]\nbcrypt_rounds = "12"\n', "bcrypt_rounds"),
        ("[security]\nbcrypt_rounds = true\n", "bcrypt_rounds"),
        ("[security]\nbcrypt_rounds = 12.0\n", "bcrypt_rounds"),
        ("[security]\nmin_password_length = 0\n", "min_password_length"),
        ('[security]\nmin_password_length = "12"\n', "min_password_length"),
        ("[database]\nbusy_timeout = -1\n", "busy_timeout"),
        ('[database]\nbusy_timeout = "5"\n', "busy_timeout"),
        ("[database]\nbusy_timeout = true\n", "busy_timeout"),
        ("[database]\nbusy_timeout = nan\n", "busy_timeout"),
        ("[database]\nbusy_timeout = inf\n", "busy_timeout"),
        ("security = 4\n", "security"),
        ("[database]\nbusy_timeout = [1]\n", "busy_timeout"),
    ],
)
def test_a_bad_value_exits_2_naming_the_key(config_path: Path, db_path: Path, text: str, key: str) -> None:
    config_path.write_text(text)
    assert_rejected(config_path, db_path, key)


@pytest.mark.parametrize(
    "hook, key",
    [
        ('on = "UserCreatd"\ncommand = ["/bin/true"]\n', "on"),
        ('on = "usercreated"\ncommand = ["/bin/true"]\n', "on"),
        ('on = ""\ncommand = ["/bin/true"]\n', "on"),
        ('on = 1\ncommand = ["/bin/true"]\n', "on"),
        ('command = ["/bin/true"]\n', "on"),
        ('on = "*"\n', "command"),
        ('on = "*"\ncommand = "/bin/true --quiet"\n', "command"),
        ('on = "*"\ncommand = []\n', "command"),
        ('on = "*"\ncommand = [""]\n', "command"),
        ('on = "*"\ncommand = ["/bin/echo", 1]\n', "command"),
        ('on = "*"\ncommand = ["/bin/true"]\ntimeout = 0\n', "timeout"),
        ('on = "*"\ncommand = ["/bin/true"]\ntimeout = -5\n', "timeout"),
        ('on = "*"\ncommand = ["/bin/true"]\ntimeout = "10"\n', "timeout"),
        ('on = "*"\ncommand = ["/bin/true"]\ntimeout = true\n', "timeout"),
        ('on = "*"\ncommand = ["/bin/true"]\ntimeout = 1e15\n', "hooks[1].timeout"),  # at most a day
    ],
)
def test_a_bad_hook_exits_2_naming_the_key(config_path: Path, db_path: Path, hook: str, key: str) -> None:
    config_path.write_text("[[hooks]]\n" + hook)
    assert_rejected(config_path, db_path, key)


def test_hooks_that_are_not_an_array_of_tables_exit_2(config_path: Path, db_path: Path) -> None:
    config_path.write_text('[hooks]\non = "*"\ncommand = ["/bin/true"]\n')
    assert_rejected(config_path, db_path, "hooks")


@pytest.mark.parametrize("rounds", [4, 31])
def test_the_bounds_of_bcrypt_rounds_are_accepted(config_path: Path, rounds: int) -> None:
    config_path.write_text(f"[security]\nbcrypt_rounds = {rounds}\n")
    assert load(None, str(config_path)).bcrypt_rounds == rounds


def test_a_full_valid_config_is_loaded(config_path: Path) -> None:
    config_path.write_text(
        "[security]\nbcrypt_rounds = 10\nmin_password_length = 16\n\n"
        "[database]\nbusy_timeout = 0.25\n\n"
        '[[hooks]]\non = "UserCreated"\ncommand = ["/usr/local/bin/send-welcome", "--quiet"]\ntimeout = 3\n\n'
        '[[hooks]]\non = "*"\ncommand = ["/bin/true"]\n'
    )
    settings = load(None, str(config_path))
    assert (settings.bcrypt_rounds, settings.min_password_length, settings.busy_timeout) == (10, 16, 0.25)
    assert [(h.on, list(h.command), h.timeout) for h in settings.hooks] == [
        ("UserCreated", ["/usr/local/bin/send-welcome", "--quiet"], 3),
        ("*", ["/bin/true"], 10),
    ]


def test_min_password_length_from_the_config_is_the_policy(config_path: Path) -> None:
    config_path.write_text("[security]\nbcrypt_rounds = 4\nmin_password_length = 20\n")
    short = invoke_app("create", "ada@example.com", "--name", "Ada", "--password-stdin", input="only sixteen chr\n")
    assert short.exit_code == 2
    one_line(short.stderr)
    ok = invoke_app("create", "ada@example.com", "--name", "Ada", "--password-stdin", input="twenty characters ok\n")
    assert ok.exit_code == 0, ok.stderr


def test_the_configured_bcrypt_cost_is_used_for_new_hashes(cli: Cli, config_path: Path) -> None:
    config_path.write_text("[security]\nbcrypt_rounds = 5\n")
    cli.ok("create", "ada@example.com", "--name", "Ada", "--password-stdin", input="a long enough password\n")
    assert cli.stored()["ada@example.com"]["password_hash"].startswith("$2b$05$")


# --- the database option ------------------------------------------------------------


def test_db_accepts_a_sqlite_url(tmp_path: Path, db_path: Path) -> None:
    path = tmp_path / "url" / "users.db"
    url = f"sqlite:///{path}"
    assert load(url, None).database.path == path
    created = invoke_app("--db", url, "create", "ada@example.com", "--name", "Ada", "--no-password")
    assert created.exit_code == 0, created.stderr
    assert path.is_file() and not db_path.exists()
    listed = invoke_app("--db", str(path), "list", "--format", "csv")
    assert "ada@example.com" in listed.stdout


def test_db_accepts_a_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "env-url.db"
    monkeypatch.setenv("USERMGR_DB", f"sqlite:///{path}")
    result = invoke_app("create", "ada@example.com", "--name", "Ada", "--no-password")
    assert result.exit_code == 0, result.stderr
    assert path.is_file()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://localhost/users",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_db_urls_usermgr_cannot_use_exit_2(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInput):
        load(url, None)
    for args in (["list"], ["create", "ada@example.com", "--name", "Ada", "--no-password"]):
        result = invoke_app("--db", url, *args)
        assert result.exit_code == 2, (url, args, result.stderr)
        one_line(result.stderr)
    assert list(tmp_path.glob("*.db")) == []


def test_the_db_option_wins_over_the_environment(tmp_path: Path, db_path: Path) -> None:
    other = tmp_path / "other.db"
    result = invoke_app("--db", str(other), "create", "ada@example.com", "--name", "Ada", "--no-password")
    assert result.exit_code == 0, result.stderr
    assert other.is_file() and not db_path.exists()


def test_the_installed_command_reads_the_database_and_config_from_the_environment(tmp_path: Path, config_path: Path) -> None:
    db = tmp_path / "from-env.db"
    config_path.write_text("[security]\nbcrypt_round = 4\n")
    bad = run_usermgr("list", env={"USERMGR_DB": str(db)})
    assert bad.returncode == 2 and "bcrypt_round" in bad.stderr
    config_path.write_text("[security]\nbcrypt_rounds = 4\n")
    good = run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password", env={"USERMGR_DB": str(db)})
    assert good.returncode == 0, good.stderr
    assert db.is_file()
