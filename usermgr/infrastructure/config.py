"""Settings: defaults, the TOML config file and the platform's per-user paths."""

from __future__ import annotations

import math
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usermgr.application.ports import Hook
from usermgr.domain.events import EVENT_TYPES
from usermgr.errors import InvalidInput
from usermgr.infrastructure.storage import Location, parse_location

APP = "usermgr"
MAX_HOOK_TIMEOUT = 86400
# SQLite takes its busy timeout in whole milliseconds in a C int: past about 24 days
# it overflows and is not honoured. An hour is already far longer than any writer.
MAX_BUSY_TIMEOUT = 3600
MAX_HOOK_NAME_LENGTH = 200
# A config file is a few lines; a bound keeps `--config /dev/zero` from reading forever.
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Settings:
    database: Location
    bcrypt_rounds: int = 12
    min_password_length: int = 12
    busy_timeout: float = 5.0
    allow_internal_domains: bool = False
    hooks: tuple[Hook, ...] = field(default=())


def current_actor() -> str:
    """Who runs this command: the OS user, and the sudo caller behind it if any."""
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        import getpass

        user = getpass.getuser()
    sudo_user = os.environ.get("SUDO_USER")
    return f"{user} (sudo: {sudo_user})" if sudo_user and sudo_user != user else user


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def data_dir() -> Path:
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / APP
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", _home() / "AppData" / "Local")) / APP
    base = os.environ.get("XDG_DATA_HOME") or _home() / ".local" / "share"
    return Path(base) / APP


def config_dir() -> Path:
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / APP
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", _home() / "AppData" / "Roaming")) / APP
    base = os.environ.get("XDG_CONFIG_HOME") or _home() / ".config"
    return Path(base) / APP


def load(db: str | None, config: str | None) -> Settings:
    path = parse_location(db, default=lambda: data_dir() / "usermgr.db")
    if config:
        config_path = Path(config).expanduser()
    else:
        config_path = config_dir() / "config.toml"
        if not config_path.is_file():
            return Settings(database=path)
    return _parse(config_path, Settings(database=path))


def _parse(path: Path, defaults: Settings) -> Settings:
    def bad(key: str, why: str) -> InvalidInput:
        return InvalidInput(f"config {path}: {key}: {why}")

    try:
        raw = tomllib.loads(_read(path).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"config {path}: cannot parse: {e}") from None

    values: dict[str, Any] = {}
    known = {"security", "database", "email", "hooks"}
    for key in raw:
        if key not in known:
            raise bad(key, "unknown key")

    security = _table(raw, "security", bad)
    for key, value in security.items():
        if key == "bcrypt_rounds":
            values["bcrypt_rounds"] = _int(value, 4, 31, f"security.{key}", bad)
        elif key == "min_password_length":
            values["min_password_length"] = _int(value, 1, 72, f"security.{key}", bad)
        else:
            raise bad(f"security.{key}", "unknown key")

    database = _table(raw, "database", bad)
    for key, value in database.items():
        if key == "busy_timeout":
            seconds = _number(value, f"database.{key}", bad)
            if seconds > MAX_BUSY_TIMEOUT:
                raise bad(f"database.{key}", f"must be at most {MAX_BUSY_TIMEOUT} seconds, not {value!r}")
            values["busy_timeout"] = seconds
        else:
            raise bad(f"database.{key}", "unknown key")

    email = _table(raw, "email", bad)
    for key, value in email.items():
        if key == "allow_internal_domains":
            if not isinstance(value, bool):
                raise bad(f"email.{key}", f"must be true or false, not {value!r}")
            values["allow_internal_domains"] = value
        else:
            raise bad(f"email.{key}", "unknown key")

    hooks = raw.get("hooks", [])
    if not isinstance(hooks, list):
        raise bad("hooks", "must be an array of tables: write [[hooks]]")
    values["hooks"] = tuple(_hook(entry, i, bad) for i, entry in enumerate(hooks, 1))
    _check_unique_names(values["hooks"], hooks, bad)
    return Settings(**{**defaults.__dict__, **values})


def _read(path: Path) -> bytes:
    """The file's bytes. Whatever reads like a file counts as one: `--config /dev/null`
    means no settings, and `--config <(printf ...)` reads the pipe."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"config file {path} is a directory") from None
    except OSError as e:
        raise InvalidInput(f"config {path}: cannot read: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"config {path}: larger than {MAX_CONFIG_BYTES >> 20} MiB")
    return data


def _table(raw: dict[str, Any], key: str, bad: Any) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise bad(key, "must be a table")
    return value


def _int(value: Any, low: int, high: int, key: str, bad: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(key, f"must be a whole number from {low} to {high}, not {value!r}")
    return value


def _number(value: Any, key: str, bad: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise bad(key, f"must be a number of seconds, 0 or more, not {value!r}")
    return float(value)


def _hook(entry: Any, index: int, bad: Any) -> Hook:
    where = f"hooks[{index}]"
    if not isinstance(entry, dict):
        raise bad(where, "must be a table")
    for key in entry:
        if key not in ("name", "on", "command", "timeout"):
            raise bad(f"{where}.{key}", "unknown key")
    on = entry.get("on")
    if not isinstance(on, str) or (on != "*" and on not in EVENT_TYPES):
        choices = ", ".join(EVENT_TYPES)
        raise bad(f"{where}.on", f"must be \"*\" or one of {choices}, not {on!r}")
    command = entry.get("command")
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise bad(f"{where}.command", "must be a non-empty list of strings (the program and its arguments)")
    if any("\x00" in part for part in command):
        raise bad(f"{where}.command", "must not contain a NUL character")
    timeout = entry.get("timeout", 10)
    timeout = _number(timeout, f"{where}.timeout", bad)
    if not 0 < timeout <= MAX_HOOK_TIMEOUT:
        raise bad(f"{where}.timeout", f"must be more than 0 and at most {MAX_HOOK_TIMEOUT} seconds")
    # A delivery names its hook, and a retry runs the hook of that name: by default the
    # event type and the command, so one command on two event types is two hooks.
    name = entry.get("name", " ".join([on, *command]))
    if (
        not isinstance(name, str)
        or not name
        or not name.isprintable()
        or name != name.strip()
        or len(name) > MAX_HOOK_NAME_LENGTH
    ):
        rule = (
            f"1 to {MAX_HOOK_NAME_LENGTH} printable characters, no leading or trailing space"
        )
        if "name" in entry:
            raise bad(f"{where}.name", f"must be {rule}, not {name!r}")
        raise bad(where, f"its default name (on and command) is not {rule}: give it a name")
    return Hook(name=name, on=on, command=tuple(command), timeout=timeout)


def _check_unique_names(hooks: tuple[Hook, ...], entries: list[Any], bad: Any) -> None:
    first: dict[str, int] = {}
    for index, hook in enumerate(hooks, 1):
        if hook.name in first:
            if "name" in entries[index - 1]:
                where, how = f"hooks[{index}].name", ""
            else:
                where, how = f"hooks[{index}]", " (its default name): give it a name"
            raise bad(where, f'"{hook.name}" is also the name of hooks[{first[hook.name]}]{how}')
        first[hook.name] = index
