"""Help text, misplaced global options, terminal tables, prompt retries and
spreadsheet-safe CSV, through the CLI: in-process where that shows it, on a real
pseudo-terminal where only a terminal does."""

from __future__ import annotations

import csv
import inspect
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from tests.helpers import OTHER_PASSWORD, PASSWORD, Cli, Terminal, usermgr_ok
from usermgr.cli import app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile(r"[\u2500-\u257f]")  # box drawing: ╭ │ ─ and the rest


def total_users() -> int:
    return json.loads(usermgr_ok("list", "--format", "json").stdout)["total"]


class Screen(Terminal):
    def lines(self) -> list[str]:
        return ANSI.sub("", self.text).splitlines()


# --- help ---------------------------------------------------------------------------


def leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found.extend(leaves(sub, (*path, name)) if getattr(sub, "commands", None) else [((*path, name), sub)])
    return found


LEAVES = leaves(typer.main.get_command(app))


@pytest.mark.parametrize("words", [w for w, _ in LEAVES], ids=[" ".join(w) for w, _ in LEAVES])
def test_usage_names_arguments_without_braces(cli: Cli, words: tuple[str, ...]) -> None:
    usage = cli.ok(*words, "--help").stdout.splitlines()[0]
    assert usage.startswith(f"Usage: usermgr {' '.join(words)} [OPTIONS]")
    assert "{" not in usage and "}" not in usage


@pytest.mark.parametrize(
    "words, usage",
    [
        (["create"], "usermgr create [OPTIONS] EMAIL"),
        (["set-role"], "usermgr set-role [OPTIONS] USER ROLE"),
        (["show"], "usermgr show [OPTIONS] USER"),
        (["import"], "usermgr import [OPTIONS] FILE"),
        (["db", "backup"], "usermgr db backup [OPTIONS] PATH"),
        (["hooks", "discard"], "usermgr hooks discard [OPTIONS] [ID]"),
    ],
)
def test_usage_writes_required_arguments_bare_and_optional_ones_in_brackets(
    cli: Cli, words: list[str], usage: str
) -> None:
    assert cli.ok(*words, "--help").stdout.splitlines()[0] == f"Usage: {usage}"


def command_summaries(help_text: str) -> dict[str, str]:
    """The Commands section of plain help: name -> summary, continuation lines joined."""
    summaries: dict[str, str] = {}
    name = ""
    for line in help_text.split("Commands:\n", 1)[1].splitlines():
        if re.match(r"  \S", line):
            name, _, text = line.strip().partition(" ")
            summaries[name] = text.strip()
        elif line.strip():
            summaries[name] += " " + line.strip()
    return summaries


@pytest.mark.parametrize("columns", ["80", "60"])
def test_piped_help_lists_every_command_summary_complete(cli: Cli, columns: str) -> None:
    summaries = command_summaries(cli.ok("--help", env={"COLUMNS": columns}).stdout)
    commands = dict(leaves(typer.main.get_command(app)))
    for name, summary in summaries.items():
        assert not summary.endswith("..."), (name, summary)
        if (name,) in commands:
            first_line = inspect.cleandoc(commands[(name,)].help).splitlines()[0]
            assert summary == first_line
            assert summary.endswith(".")


def test_piped_help_shows_the_defaults_of_db_and_config(cli: Cli) -> None:
    out = " ".join(cli.ok("--help", env={"COLUMNS": "200"}).stdout.split())
    assert "default: (usermgr.db in the per-user data directory)" in out
    assert "default: (config.toml in the per-user config directory)" in out


COMMANDS = ("create", "list", "show", "update", "activate", "deactivate", "set-role", "passwd", "verify", "delete")


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["--help"], COMMANDS + ("import", "export", "events", "hooks", "db")),
        (["create", "--help"], ("EMAIL", "--name", "--role", "--password-stdin", "--no-password")),
    ],
    ids=["usermgr", "create"],
)
def test_help_piped_from_the_installed_executable_is_plain_text(args: list[str], listed: tuple[str, ...]) -> None:
    out = usermgr_ok(*args, env={"TERM": "xterm-256color", "COLUMNS": "100"}).stdout
    assert "Usage" in out
    assert not BOX.search(out), out
    assert not ANSI.search(out), out
    for name in listed:
        assert re.search(rf"(?m)^ +{re.escape(name)}\s", out), (name, out)


def test_help_on_a_terminal_shows_the_defaults_of_db_and_config_and_plain_usage() -> None:
    screen = Screen("--help", env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert screen.finish() == 0, screen.text
    text = " ".join(ANSI.sub("", screen.text).split())
    assert "╭" in text  # this is Rich's help, not the plain one
    assert "[default: (usermgr.db in the per-user data directory)]" in text
    assert "[default: (config.toml in the per-user config directory)]" in text
    screen = Screen("create", "--help", env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert screen.finish() == 0, screen.text
    assert "Usage: usermgr create [OPTIONS] EMAIL " in ANSI.sub("", screen.text)


@pytest.mark.parametrize(
    "args, hint",
    [
        (["list", "--db", "x.db"], "as in usermgr --db PATH list)"),
        (["list", "--db=x.db"], "as in usermgr --db PATH list)"),
        (["show", "a@example.com", "--config", "c.toml"], "as in usermgr --config PATH show)"),
        (["hooks", "list", "--debug"], "as in usermgr --debug hooks list)"),
    ],
)
def test_a_global_option_after_the_command_is_exit_2_with_where_to_put_it(
    cli: Cli, args: list[str], hint: str
) -> None:
    line = cli.fails(2, *args).stderr.strip()
    option = next(a for a in args if a.startswith("--")).split("=")[0]
    assert line.startswith(f"usermgr: No such option: {option} ({option} is a global option: put it before the command,")
    assert line.endswith(hint)


def test_an_unknown_option_keeps_clicks_usage_message(cli: Cli) -> None:
    result = cli("list", "--nope")
    assert result.exit_code == 2
    assert "No such option: --nope" in result.stderr
    assert "global option" not in result.stderr


def test_the_global_options_still_work_before_the_command(cli: Cli, tmp_path: Path) -> None:
    cli.ok("--db", str(tmp_path / "other.db"), "--debug", "list")


# --- terminal tables ------------------------------------------------------------------


@pytest.fixture
def population(cli: Cli) -> list[dict[str, Any]]:
    """Users and events whose full values would not fit 80 columns."""
    users = [
        cli.create("ada@example.com", "Ada Lovelace", "--role", "admin", password=None),
        cli.create("grace.hopper@navy.example.mil", "Grace Brewster Murray Hopper, Rear Admiral", password=None),
        cli.create("x@münchen.de", "[bold]Not bold[/]", "--role", "moderator", password=None),
    ]
    cli.ok("update", "ada@example.com", "--name", "Ada King, Countess of Lovelace")
    cli.ok("deactivate", "x@münchen.de")
    return users


def whole_on_one_line(value: str, lines: list[str]) -> bool:
    return any(value in line for line in lines)


@pytest.mark.parametrize("width", [80, 120])
def test_list_on_a_terminal_fits_the_width_and_keeps_ids_emails_and_times_whole(
    population: list[dict[str, Any]], width: int
) -> None:
    screen = Screen("list", env={"COLUMNS": str(width), "NO_COLOR": "1"})
    assert screen.finish() == 0, screen.text
    lines = screen.lines()
    assert max(len(line) for line in lines) <= width, screen.text
    shown = lines[0].split()
    assert shown[:5] == ["id", "email", "name", "role", "active"]
    for u in population:
        row = next(line for line in lines if line.startswith(u["id"][:8] + " "))
        assert u["email"] in row
        if "created_at" in shown:
            assert u["created_at"][:10] + " " + u["created_at"][11:16] in row
    assert not any(u["id"] in screen.text for u in population)  # ids are short on a terminal
    assert whole_on_one_line("[bold]Not bold[/]", lines)


@pytest.mark.parametrize("width", [80, 120])
def test_events_on_a_terminal_fit_the_width_and_keep_ids_emails_and_times_whole(
    population: list[dict[str, Any]], width: int
) -> None:
    events = json.loads(usermgr_ok("events", "--format", "json").stdout)
    screen = Screen("events", env={"COLUMNS": str(width), "NO_COLOR": "1"})
    assert screen.finish() == 0, screen.text
    lines = screen.lines()
    assert max(len(line) for line in lines) <= width, screen.text
    shown = lines[0].split()
    rows = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d  ", line)]
    assert len(rows) == len(events)
    for row, e in zip(rows, events):
        assert row.startswith(e["occurred_at"][:10] + " " + e["occurred_at"][11:16])
        assert e["type"] in row and e["data"]["email"] in row
        assert ("user_id" in shown) == (e["user_id"][:8] in row)
    assert f"{len(events)} events; times in UTC" in screen.text


def test_piped_list_and_events_still_show_every_value_in_full(population: list[dict[str, Any]]) -> None:
    listed = usermgr_ok("list", env={"COLUMNS": "80"}).stdout.splitlines()
    assert listed[0].split() == ["id", "email", "name", "role", "active", "created_at", "updated_at"]
    assert len(listed) == 1 + len(population)
    for u in population:
        row = next(line for line in listed if line.startswith(u["id"] + "  "))
        assert u["email"] in row and u["created_at"] in row
    events = usermgr_ok("events", env={"COLUMNS": "80"}).stdout.splitlines()
    assert events[0].split() == ["occurred_at", "type", "user_id", "email", "actor", "id", "data"]
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  ", line) for line in events[1:])


# --- the password prompt asks again -------------------------------------------------


def test_a_mismatched_repeat_is_asked_again_and_the_second_try_creates_the_user() -> None:
    screen = Screen("create", "ada@example.com", "--name", "Ada")
    screen.expect("Password:")
    screen.send(PASSWORD + "\n")
    screen.expect("Repeat password:")
    screen.send(OTHER_PASSWORD + "\n")
    screen.expect("the passwords did not match; try again")
    screen.expect("Password:", count=2)
    screen.send(PASSWORD + "\n")
    screen.expect("Repeat password:", count=2)
    screen.send(PASSWORD + "\n")
    assert screen.finish() == 0, screen.text
    assert PASSWORD not in screen.text and OTHER_PASSWORD not in screen.text
    usermgr_ok("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")


def test_three_mismatches_exit_2_and_create_nobody() -> None:
    screen = Screen("create", "ada@example.com", "--name", "Ada")
    for attempt in (1, 2, 3):
        screen.expect("Password:", count=attempt)
        screen.send(PASSWORD + "\n")
        screen.expect("Repeat password:", count=attempt)
        screen.send(OTHER_PASSWORD + "\n")
    assert screen.finish() == 2, screen.text
    assert screen.text.count("the passwords did not match; try again") == 2
    assert "usermgr: the passwords did not match (3 attempts); nothing was changed" in screen.text
    assert "Traceback" not in screen.text
    assert total_users() == 0


def test_a_too_short_password_is_refused_at_the_prompt_and_asked_again() -> None:
    screen = Screen("create", "ada@example.com", "--name", "Ada")
    screen.expect("Password:")
    screen.send("short\n")
    screen.expect("password too short: use at least 12 characters; try again")
    assert "Repeat password:" not in screen.text  # refused before the repeat
    screen.expect("Password:", count=2)
    screen.send(PASSWORD + "\n")
    screen.expect("Repeat password:")
    screen.send(PASSWORD + "\n")
    assert screen.finish() == 0, screen.text
    assert total_users() == 1


def test_passwd_at_the_prompt_uses_the_configured_minimum_length(cli: Cli, config_path: Path) -> None:
    cli.create("ada@example.com", "Ada")
    config_path.write_text("[security]\nbcrypt_rounds = 4\nmin_password_length = 30\n")
    longer = PASSWORD + " and more"
    screen = Screen("passwd", "ada@example.com")
    screen.expect("Password:")
    screen.send(PASSWORD + "\n")  # 28 characters
    screen.expect("password too short: use at least 30 characters; try again")
    screen.expect("Password:", count=2)
    screen.send(longer + "\n")
    screen.expect("Repeat password:")
    screen.send(longer + "\n")
    assert screen.finish() == 0, screen.text
    assert longer not in screen.text
    usermgr_ok("verify", "ada@example.com", "--password-stdin", input=longer + "\n")


# --- spreadsheet-safe CSV -----------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://x.example","click")', "+1 555 0100", "-2+3", "@SUM(A1:A2)"]


@pytest.fixture
def formula_names(cli: Cli) -> list[str]:
    for i, name in enumerate([*FORMULAS, "Plain Name"]):
        cli.ok("create", f"u{i}@example.com", "--name", name, "--no-password")
    return [*FORMULAS, "Plain Name"]


def names_in(text: str) -> set[str]:
    return {row["name"] for row in csv.DictReader(io.StringIO(text))}


@pytest.mark.parametrize(
    "args",
    [["list", "--format", "csv"], ["list", "--all", "--format", "csv"], ["export"], ["export", "--format", "csv"]],
)
def test_csv_shows_names_exactly_by_default_and_quoted_with_spreadsheet_safe(
    cli: Cli, formula_names: list[str], args: list[str]
) -> None:
    assert names_in(cli.ok(*args).stdout) == set(formula_names)
    safe = names_in(cli.ok(*args, "--spreadsheet-safe").stdout)
    assert safe == {"'" + n for n in FORMULAS} | {"Plain Name"}


def test_a_default_export_re_imports_unchanged(cli: Cli, formula_names: list[str], tmp_path: Path) -> None:
    exported = cli.ok("export", "--include-hashes").stdout
    other = str(tmp_path / "other.db")
    cli.ok("--db", other, "import", "-", input=exported)
    assert cli.ok("--db", other, "export", "--include-hashes").stdout == exported


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--spreadsheet-safe"],
        ["list", "--format", "json", "--spreadsheet-safe"],
        ["list", "--all", "--format", "jsonl", "--spreadsheet-safe"],
        ["export", "--format", "jsonl", "--spreadsheet-safe"],
    ],
)
def test_spreadsheet_safe_with_another_format_than_csv_is_exit_2(cli: Cli, args: list[str]) -> None:
    assert "--spreadsheet-safe is for --format csv only" in cli.fails(2, *args).stderr


@pytest.mark.parametrize("command", ["list", "export"])
def test_help_says_a_spreadsheet_safe_file_is_not_for_re_import(cli: Cli, command: str) -> None:
    out = " ".join(cli.ok(command, "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "--spreadsheet-safe" in out
    assert "for spreadsheets, not for re-import" in out
