"""Shell completion (Typer's), through the installed executable: what a shell gets when
it asks through Typer's environment variables, the scripts `--show-completion` prints
and `--install-completion` writes, and bash itself running the generated function."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import USERMGR, run_usermgr

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")
COMMANDS = {
    "create", "list", "show", "update", "activate", "deactivate", "set-role", "passwd", "verify", "delete",
    "import", "export", "events", "hooks", "db", "apply", "hashes",
}  # fmt: skip
ROLES = ["user", "admin", "moderator"]


def bash_complete(line: str) -> list[str]:
    """What Typer answers bash for the last word of `line` (the empty word after a trailing space)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    result = run_usermgr(env={"_USERMGR_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)})
    assert result.returncode == 0 and result.stderr == "", (result.returncode, result.stderr)
    return [word for word in result.stdout.splitlines() if word]


def typer_complete(shell: str, line: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_usermgr(env={"_USERMGR_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line, **env})


def from_shell(shell: str, *args: str) -> subprocess.CompletedProcess[str]:
    """usermgr started by a process that calls itself `shell`, as a login shell would:
    Typer finds the shell by walking up the process tree (shellingham)."""
    assert BASH is not None
    command = " ".join([USERMGR, *args])
    # `; true` keeps bash from exec'ing usermgr in its place, so bash stays the parent.
    return subprocess.run(
        [BASH, "-c", f'exec -a {shell} {BASH} -c "{command}; true"'], capture_output=True, text=True, timeout=60
    )


# --- what each shell is told ----------------------------------------------------------


def test_bash_completes_cr_to_create() -> None:
    assert bash_complete("usermgr cr") == ["create"]


def test_bash_completes_every_command_after_usermgr() -> None:
    assert COMMANDS <= set(bash_complete("usermgr "))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("usermgr events ve", ["verify"]),
        ("usermgr db ", ["check", "backup", "upgrade"]),
        ("usermgr hooks ", ["list", "retry", "discard"]),
        ("usermgr has", ["hashes"]),
        ("usermgr set-r", ["set-role"]),
    ],
)
def test_bash_completes_subcommands(line: str, expected: list[str]) -> None:
    assert sorted(bash_complete(line)) == sorted(expected)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("usermgr list --format ", ["table", "json", "jsonl", "csv"]),
        ("usermgr list --format js", ["json", "jsonl"]),
        ("usermgr events --format ", ["table", "json", "jsonl"]),
        ("usermgr hashes --format ", ["table", "json"]),
        ("usermgr export --format ", ["csv", "jsonl"]),
        ("usermgr import users.csv --format ", ["csv", "jsonl"]),
    ],
)
def test_bash_completes_formats(line: str, expected: list[str]) -> None:
    assert sorted(bash_complete(line)) == sorted(expected)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("usermgr set-role ada@example.com ", ROLES),
        ("usermgr set-role ada@example.com mo", ["moderator"]),
        ("usermgr create ada@example.com --role ", ROLES),
        ("usermgr create ada@example.com --name Ada --role ad", ["admin"]),
        ("usermgr list --role ", ROLES),
        ("usermgr set-role ada@example.com x", []),
    ],
)
def test_bash_completes_roles(line: str, expected: list[str]) -> None:
    assert bash_complete(line) == expected


def test_bash_completes_options() -> None:
    assert "--format" in bash_complete("usermgr list --for")
    assert bash_complete("usermgr events verify --he") == ["--head", "--help"]


def test_completion_reads_no_config_and_opens_no_database(tmp_path: Path) -> None:
    # Tab on a machine with a broken config, or before any database exists, still works
    # and creates nothing.
    broken = tmp_path / "broken.toml"
    broken.write_text("[security\n")
    database = tmp_path / "never.db"
    result = run_usermgr(
        env={
            "_USERMGR_COMPLETE": "complete_bash",
            "COMP_WORDS": "usermgr set-role ada@example.com ",
            "COMP_CWORD": "3",
            "USERMGR_CONFIG": str(broken),
            "USERMGR_DB": str(database),
        }
    )
    assert (result.returncode, result.stdout.split(), result.stderr) == (0, ROLES, "")
    assert not database.exists()


def test_zsh_is_told_create_with_its_help() -> None:
    result = typer_complete("zsh", "usermgr cr")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("_arguments '*: :((")
    assert '"create":"Add a user."' in result.stdout
    assert '"list"' not in result.stdout


def test_zsh_completes_roles_after_a_trailing_space() -> None:
    out = typer_complete("zsh", "usermgr set-role ada@example.com ").stdout
    assert all(f'"{role}"' in out for role in ROLES), out


def test_fish_is_told_create_and_that_there_are_arguments() -> None:
    got = typer_complete("fish", "usermgr cr", _TYPER_COMPLETE_FISH_ACTION="get-args")
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == ["create\tAdd a user."]
    assert typer_complete("fish", "usermgr cr", _TYPER_COMPLETE_FISH_ACTION="is-args").returncode == 0
    assert typer_complete("fish", "usermgr zz", _TYPER_COMPLETE_FISH_ACTION="is-args").returncode == 1


# --- the scripts -------------------------------------------------------------------------

SCRIPT_MARKS = {
    "bash": "complete -o default -F _usermgr_completion usermgr",
    "zsh": "compdef _usermgr_completion usermgr",
    "fish": "complete --command usermgr",
}


@pytest.mark.parametrize("shell", sorted(SCRIPT_MARKS))
def test_the_script_of_a_named_shell_as_the_readme_shows(shell: str) -> None:
    result = run_usermgr(env={"_USERMGR_COMPLETE": f"source_{shell}"})
    assert result.returncode == 0, result.stderr
    assert SCRIPT_MARKS[shell] in result.stdout
    assert f"_USERMGR_COMPLETE=complete_{shell}" in result.stdout


@needs_bash
@pytest.mark.parametrize("shell", sorted(SCRIPT_MARKS))
def test_show_completion_prints_the_script_of_the_shell_it_was_started_from(shell: str) -> None:
    result = from_shell(shell, "--show-completion")
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout
    assert SCRIPT_MARKS[shell] in result.stdout
    assert all(mark not in result.stdout for other, mark in SCRIPT_MARKS.items() if other != shell)


@needs_bash
def test_a_shell_name_after_show_completion_is_ignored_as_the_readme_says() -> None:
    # With shellingham installed (a Typer dependency) the option is a flag: the README
    # tells users to name another shell with _USERMGR_COMPLETE instead.
    result = from_shell("bash", "--show-completion", "zsh")
    assert result.returncode == 0, result.stderr
    assert SCRIPT_MARKS["bash"] in result.stdout and SCRIPT_MARKS["zsh"] not in result.stdout


INSTALLED = {
    "bash": (".bash_completions/usermgr.sh", ".bashrc", "source '{home}/.bash_completions/usermgr.sh'"),
    "zsh": (".zfunc/_usermgr", ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit"),
    "fish": (".config/fish/completions/usermgr.fish", None, None),
}


@needs_bash
@pytest.mark.parametrize("shell", sorted(INSTALLED))
def test_install_completion_writes_the_script_and_the_rc_line_under_home(shell: str) -> None:
    home = Path(os.environ["HOME"])  # the test's own (conftest)
    result = from_shell(shell, "--install-completion")
    assert result.returncode == 0, result.stderr
    script, rc, line = INSTALLED[shell]
    assert f"{shell} completion installed in {home / script}" in result.stdout
    assert SCRIPT_MARKS[shell] in (home / script).read_text()
    # Once more adds nothing (Typer's bash install does add a blank line to .bashrc).
    assert from_shell(shell, "--install-completion").returncode == 0
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()) == sorted(
        path for path in (script, rc) if path
    )
    if rc is not None:
        assert (home / rc).read_text().splitlines().count(line.format(home=home)) == 1


@needs_bash
def test_the_generated_bash_script_completes_in_bash_itself(tmp_path: Path) -> None:
    script = tmp_path / "usermgr-completion.bash"
    script.write_text(run_usermgr(env={"_USERMGR_COMPLETE": "source_bash"}).stdout)
    driver = (
        f"source {script}\n"
        "complete -p usermgr\n"  # registered for the command
        "ask() { COMP_WORDS=($1); COMP_CWORD=$2; COMPREPLY=(); _usermgr_completion usermgr; echo \"${COMPREPLY[*]}\"; }\n"
        "ask 'usermgr cr' 1\n"
        "ask 'usermgr set-role ada@example.com mo' 3\n"
        "ask 'usermgr list --format j' 3\n"
    )
    assert BASH is not None
    result = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", driver],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{Path(USERMGR).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "complete -o default -F _usermgr_completion usermgr",
        "create",
        "moderator",
        "json jsonl",
    ]
