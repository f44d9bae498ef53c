"""Every command has help text and a section in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from usermgr.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"


def walk(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, object]]:
    """Every command and group below the root, by its full name (`hooks retry`)."""
    found: list[tuple[str, object]] = []
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        full = (*path, name)
        found.append((" ".join(full), sub))
        found.extend(walk(sub, full))
    return found


COMMANDS = walk(typer.main.get_command(app))
LEAVES = [(name, command) for name, command in COMMANDS if not getattr(command, "commands", None)]


def readme_headings() -> list[str]:
    if not README.exists():
        pytest.fail(f"{README} does not exist yet")
    return [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("### ")]


def test_the_core_commands_are_registered() -> None:
    names = {name for name, _ in COMMANDS}
    core = {"create", "list", "show", "update", "activate", "deactivate", "set-role", "passwd", "verify", "delete"}
    assert core <= names, core - names


@pytest.mark.parametrize("name, command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_has_help_text(name: str, command: object) -> None:
    help_text = getattr(command, "help", None) or ""
    assert help_text.strip(), f"`usermgr {name}` has no help text (docstring)"


@pytest.mark.parametrize("name, command", LEAVES, ids=[name for name, _ in LEAVES])
def test_every_command_has_a_readme_section(name: str, command: object) -> None:
    wanted = f"`usermgr {name}`"
    headings = readme_headings()
    assert any(wanted in heading for heading in headings), f"no '### ... {wanted}' heading in README.md"
