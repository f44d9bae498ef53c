"""Annotated option types shared by several commands."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from usermgr.errors import InvalidInput

# Help is drawn with Rich boxes on a terminal only: piped, it is plain text.
HELP_MARKUP = "rich" if sys.stdout is not None and sys.stdout.isatty() else None

UserArg = Annotated[str, typer.Argument(metavar="USER", help="The user's email (any case) or id.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the user as one JSON object.")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of standard input."),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="PATH",
        dir_okay=False,
        help="Read the password from the first line of this file.",
    ),
]
GeneratePassword = Annotated[
    bool,
    typer.Option("--generate-password", help="Generate a strong password and print it once."),
]

SpreadsheetSafe = Annotated[
    bool,
    typer.Option(
        "--spreadsheet-safe",
        help=(
            "csv only: put a ' before any cell that starts with =, +, -, @, a tab or a carriage"
            " return, so a spreadsheet shows it as text instead of running it as a formula."
            " Such a file is for spreadsheets, not for re-import."
        ),
    ),
]


def require_csv(spreadsheet_safe: bool, fmt: str) -> None:
    if spreadsheet_safe and fmt != "csv":
        raise InvalidInput(f"--spreadsheet-safe is for --format csv only, not {fmt}")


class ListFormat(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def complete_role(incomplete: str) -> list[str]:
    """Shell completion for a ROLE: the roles there are."""
    from usermgr.domain.values import Role

    return [role.value for role in Role if role.value.startswith(incomplete)]
