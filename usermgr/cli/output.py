"""Rendering users as text, a table, JSON, JSON lines or CSV. Rich loads only for a terminal."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from usermgr.application.queries import USER_FIELDS as FIELDS
from usermgr.errors import OutputFailed

if TYPE_CHECKING:
    from usermgr.application.queries import Page, UserView

TABLE_COLUMNS = ("id", "email", "name", "role", "active", "created_at", "updated_at")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


@contextlib.contextmanager
def output_errors() -> Iterator[None]:
    """A write to stdout that fails (a full disk, a closed terminal) is one line and
    exit 74; a reader that went away is left to the error boundary (exit 141)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputFailed(e.strerror or str(e)) from None


def emit(line: str = "") -> None:
    with output_errors():
        sys.stdout.write(line + "\n")


def flush() -> None:
    """Push out what was printed, so it is out before hooks run."""
    with output_errors():
        sys.stdout.flush()


def emit_json(value: Any) -> None:
    emit(json.dumps(value, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table_row(user: UserView, columns: Sequence[str] = FIELDS) -> list[str]:
    return [_cell(getattr(user, column)) for column in columns]


def render_user(user: UserView, *, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        emit_json({**user.as_dict(), **(extra or {})})
        return
    width = max(len(f) for f in FIELDS)
    for field in FIELDS:
        emit(f"{field:<{width}}  {_cell(getattr(user, field))}")


def render_page(page: Page, fmt: str) -> None:
    if fmt == "json":
        emit_json(page.as_dict())
    elif fmt == "table":
        caption = f"page {page.page} of {page.pages}, {page.total} user{'s' * (page.total != 1)}"
        render_table(TABLE_COLUMNS, [_table_row(u) for u in page.items], caption)
    else:
        render_stream(page.items, fmt)


def render_stream(users: Iterable[UserView], fmt: str, columns: Sequence[str] = FIELDS) -> None:
    """jsonl or csv, one user at a time, whatever their number."""
    if fmt == "jsonl":
        for user in users:
            emit_json(user.as_dict())
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        with output_errors():
            writer.writerow(columns)
            for user in users:
                writer.writerow(_table_row(user, columns))
    else:
        raise ValueError(fmt)


def render_table(columns: Sequence[str], rows: list[list[str]], caption: str) -> None:
    if not stdout_is_terminal():
        _plain_table(columns, rows)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(caption=caption, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text cells are printed literally: a name like "[bold]x[/]" is no markup.
        table.add_row(*(Text(cell) for cell in row))
    Console(no_color="NO_COLOR" in os.environ).print(table)


def _plain_table(columns: Sequence[str], rows: list[list[str]]) -> None:
    # No terminal: aligned columns, every value in full, nothing decorative.
    rows = [list(columns), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        emit("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())

