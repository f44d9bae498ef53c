"""Bulk import and export."""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Annotated

import typer

from usermgr.cli.options import SpreadsheetSafe, require_csv
from usermgr.cli.output import emit, flush, render_stream
from usermgr.errors import InvalidInput, shown

if TYPE_CHECKING:
    from usermgr.application.importing import Record


class FileFormat(str, enum.Enum):
    csv = "csv"
    jsonl = "jsonl"


def _read_csv(stream: IO[str]) -> tuple[list[str], list[Record]]:
    from usermgr.application.importing import Record

    reader = csv.DictReader(stream)
    header = list(reader.fieldnames or [])
    records = []
    for values in reader:
        wrong = None in values or None in values.values()
        error = f"{len(header)} fields expected, as in the header" if wrong else None
        records.append(Record(reader.line_num, values, error))
    return header, records


def _read_jsonl(stream: IO[str]) -> list[Record]:
    from usermgr.application.importing import Record

    records = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as e:
            records.append(Record(number, {}, f"not JSON ({e.msg})"))
            continue
        if not isinstance(values, dict):
            records.append(Record(number, {}, "not a JSON object"))
            continue
        records.append(Record(number, values))
    return records


@contextmanager
def _open(source: str) -> Iterator[IO[str]]:
    if source == "-":
        yield sys.stdin
        return
    try:
        with open(source, encoding="utf-8-sig", newline="") as stream:
            yield stream
    except OSError as e:
        raise InvalidInput(f"cannot read {shown(source)}: {e.strerror}") from None


def read_records(source: str, fmt: FileFormat | None) -> tuple[list[str] | None, list[Record]]:
    """The file's records, and its header when it has one (CSV); the application checks both."""
    if fmt is None:
        fmt = FileFormat.jsonl if source.endswith((".jsonl", ".ndjson")) else FileFormat.csv
    try:
        with _open(source) as stream:
            if fmt is FileFormat.jsonl:
                return None, _read_jsonl(stream)
            header, records = _read_csv(stream)
            return (header if header else None), records
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read {shown(source)}: it is not UTF-8 text") from None
    except csv.Error as e:
        raise InvalidInput(f"cannot read {shown(source)} as CSV: {e}") from None


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar for hashing, on a terminal only."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("hashing passwords", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="CSV or JSON-lines file; - reads stdin.")],
    *,
    fmt: Annotated[
        FileFormat | None,
        typer.Option("--format", help="Default: jsonl for *.jsonl or *.ndjson, else csv."),
    ] = None,
    exists_ok: Annotated[
        bool, typer.Option("--exists-ok", help="Skip rows whose email already exists.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything and report; write nothing.")
    ] = False,
) -> None:
    """Add users in bulk: every row is checked first, then all are written, or none.

    \b
    Example:
      usermgr import users.csv --exists-ok
    """
    from usermgr.application.importing import ImportSummary, ImportUsers

    header, records = read_records(file, fmt)

    def render(summary: ImportSummary) -> None:
        prefix = "dry run: would have " if summary.dry_run else ""
        emit(f"{prefix}created {summary.created}, existed {summary.existed}")
        flush()

    with _progress_bar() as progress:
        ctx.obj.bus().handle(
            ImportUsers(records=records, header=header, exists_ok=exists_ok, dry_run=dry_run),
            render=render,
            progress=progress,
        )


def export(
    ctx: typer.Context,
    *,
    fmt: Annotated[FileFormat, typer.Option("--format", help="Output format.")] = FileFormat.csv,
    include_hashes: Annotated[
        bool,
        typer.Option("--include-hashes", help="Add password_hash, so an import keeps passwords working."),
    ] = False,
    spreadsheet_safe: SpreadsheetSafe = False,
) -> None:
    """Write every user to stdout, oldest first, in constant memory.

    \b
    Example:
      usermgr export --format jsonl --include-hashes > users.jsonl
    """
    from usermgr.application import queries

    require_csv(spreadsheet_safe, fmt.value)
    users = ctx.obj.bus().handle(queries.ExportUsers(include_hashes=include_hashes))
    columns = queries.EXPORT_FIELDS if include_hashes else queries.USER_FIELDS
    render_stream(users, fmt.value, columns, spreadsheet_safe=spreadsheet_safe)


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command()(export)
