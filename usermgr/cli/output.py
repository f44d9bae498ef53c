"""Rendering users as text, a table, JSON, JSON lines or CSV. Rich loads only for a terminal."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from usermgr.application.queries import USER_FIELDS as FIELDS
from usermgr.errors import OutputFailed

if TYPE_CHECKING:
    from rich.console import Console

    from usermgr.application.queries import Page, UserView

# OWASP's CSV-injection rule: a spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# The caption says what the terminal view leaves out, and where to find it in full.
TERMINAL_NOTE = "times in UTC; full ids and times: --format json"


def full(value: str) -> str:
    return value


def short_id(value: str) -> str:
    # Like `git log --oneline`: 8 hex digits tell rows apart at a glance; scripts get the
    # full id from --format json or piped output.
    return value[:8]


def to_the_minute(value: str) -> str:
    # Stored times have one fixed shape (values.format_timestamp), so slicing is exact:
    # "2026-11-27T09:15:36.123456Z" -> "2026-11-27 09:15".
    return f"{value[:10]} {value[11:16]}" if value else ""


@dataclass(frozen=True)
class Column:
    """A table column. Piped, every cell shows its value in full. On a terminal, `shown`
    may shorten it; a `fold` column wraps its text over lines, a `fold_last` one only
    when the row cannot fit otherwise, and any other never does; columns with a `drop`
    rank are left out, lowest rank first, while a row would not fit the width."""

    header: str
    shown: Callable[[str], str] = full
    fold: bool = False
    fold_last: bool = False
    drop: int = 0


USER_COLUMNS = (
    Column("id", short_id),
    Column("email", fold_last=True),
    Column("name", fold=True),
    Column("role"),
    Column("active"),
    Column("created_at", to_the_minute, drop=2),
    Column("updated_at", to_the_minute, drop=1),
)
# A folding column keeps at least this many characters (or its header) a line.
FOLD_MIN_WIDTH = 10
# Spaces between two columns, on a terminal as in piped output.
GAP = 2


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


# Control characters (escape sequences, BEL, backspace, C1) and bidirectional overrides:
# a value a hand-edited database holds must not drive the terminal or disguise a row.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text for a table or `show`, each control character written as its escape (\\x1b)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


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
        emit(f"{field:<{width}}  {terminal_safe(_cell(getattr(user, field)))}")


def render_page(page: Page, fmt: str, *, spreadsheet_safe: bool = False) -> None:
    if fmt == "json":
        emit_json(page.as_dict())
    elif fmt == "table":
        caption = f"page {page.page} of {page.pages}, {page.total} user{'s' * (page.total != 1)}"
        render_table(USER_COLUMNS, [_table_row(u) for u in page.items], caption)
    else:
        render_stream(page.items, fmt, spreadsheet_safe=spreadsheet_safe)


def spreadsheet_cell(text: str) -> str:
    """The cell with a leading ' when a spreadsheet would otherwise run it as a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def render_stream(
    users: Iterable[UserView],
    fmt: str,
    columns: Sequence[str] = FIELDS,
    *,
    spreadsheet_safe: bool = False,
) -> None:
    """jsonl or csv, one user at a time, whatever their number."""
    if fmt == "jsonl":
        for user in users:
            emit_json(user.as_dict())
    elif fmt == "csv":
        # The first row opens the database: one that cannot be read fails before the
        # header is out, so a failed export writes nothing to stdout.
        rest = iter(users)
        first = next(rest, None)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        with output_errors():
            writer.writerow(columns)
            for user in itertools.chain(() if first is None else (first,), rest):
                row = _table_row(user, columns)
                writer.writerow([spreadsheet_cell(c) for c in row] if spreadsheet_safe else row)
    else:
        raise ValueError(fmt)


def render_lines(lines: Iterable[str], *, header: str | None = None) -> None:
    """Lines the database built, written a thousand at a time; the header (csv) only
    once the first line is there, so a failure to read writes nothing."""
    with output_errors():
        batch: list[str] = []
        for line in lines:
            if header is not None:
                batch.append(header)
                header = None
            batch.append(line)
            if len(batch) >= 1000:
                sys.stdout.write("\n".join(batch) + "\n")
                batch = []
        if header is not None:
            batch.append(header)
        if batch:
            sys.stdout.write("\n".join(batch) + "\n")


def render_table(
    columns: Sequence[Column], rows: list[list[str]], caption: str, *, console: Console | None = None
) -> None:
    """Plain aligned columns with every value in full when stdout is not a terminal;
    else a Rich table sized to the console (`console` lets a test choose one)."""
    rows = [[terminal_safe(cell) for cell in row] for row in rows]
    if console is None:
        if not stdout_is_terminal():
            _plain_table([c.header for c in columns], rows)
            return
        from rich.console import Console

        console = Console(no_color="NO_COLOR" in os.environ)
    from rich.text import Text

    console.print(_rich_table(columns, rows, console.width))
    # Below the table rather than its caption, so it wraps at the console's width, not the table's.
    console.print(Text(f"{caption}; {TERMINAL_NOTE}", style="table.caption"))


def _rich_table(columns: Sequence[Column], rows: list[list[str]], width: int) -> Any:
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    cells = [[column.shown(value) for column, value in zip(columns, row)] for row in rows]

    def narrowest(index: int) -> int:
        # What a column needs so that nothing but a folding column's text is broken.
        natural = max([cell_len(columns[index].header), *(cell_len(row[index]) for row in cells)])
        if columns[index].fold:
            return min(natural, max(cell_len(columns[index].header), FOLD_MIN_WIDTH))
        return natural

    def needed(shown: list[int]) -> int:
        return sum(narrowest(i) for i in shown) + GAP * (len(shown) - 1)

    shown = list(range(len(columns)))
    for index in sorted((i for i in shown if columns[i].drop), key=lambda i: columns[i].drop):
        if needed(shown) <= width:
            break
        shown.remove(index)
    # A console too narrow even for that gets emails folded rather than cut off.
    fits = needed(shown) <= width
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, GAP - 1, 0, 0),
    )
    for index in shown:
        column = columns[index]
        folds = column.fold or (column.fold_last and not fits)
        table.add_column(column.header, no_wrap=not folds, overflow="fold")
    for row in cells:
        # Text cells are printed literally: a name like "[bold]x[/]" is no markup.
        table.add_row(*(Text(row[index]) for index in shown))
    return table


def _plain_table(columns: Sequence[str], rows: list[list[str]]) -> None:
    # No terminal: aligned columns, every value in full, nothing decorative.
    rows = [list(columns), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        emit("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
