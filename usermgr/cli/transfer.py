"""Bulk import and export."""

from __future__ import annotations

import csv
import enum
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from usermgr.cli.options import SpreadsheetSafe, require_csv
from usermgr.cli.output import emit, emit_json, flush, render_lines, render_stream
from usermgr.errors import InvalidInput, WorkToDo, shown

if TYPE_CHECKING:
    from usermgr.application.importing import Record


class FileFormat(str, enum.Enum):
    csv = "csv"
    jsonl = "jsonl"


def _read_csv(stream: IO[str]) -> tuple[list[str], Iterator[Record]]:
    from usermgr.application.importing import Record

    reader = csv.DictReader(stream)
    header = list(reader.fieldnames or [])

    def records() -> Iterator[Record]:
        for values in reader:
            wrong = None in values or None in values.values()
            error = f"{len(header)} fields expected, as in the header" if wrong else None
            yield Record(reader.line_num, values, error)

    return header, records()


class _KeyTwice(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    values = dict(pairs)
    if len(values) != len(pairs):  # json.loads would silently keep the last
        twice = next(key for n, (key, _) in enumerate(pairs) if key in dict(pairs[:n]))
        raise _KeyTwice(f"key {twice!r} is given twice")
    return values


def _read_jsonl(stream: IO[str]) -> Iterator[Record]:
    from usermgr.application.importing import Record

    decode = json.JSONDecoder(object_pairs_hook=_object).decode  # one decoder, not one per line
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            values = decode(line)
        except json.JSONDecodeError as e:
            yield Record(number, {}, f"not JSON ({e.msg})")
            continue
        except _KeyTwice as e:
            yield Record(number, {}, str(e))
            continue
        if not isinstance(values, dict):
            yield Record(number, {}, "not a JSON object")
            continue
        yield Record(number, values)


@contextmanager
def _open(source: str) -> Iterator[IO[str]]:
    if source == "-":
        yield sys.stdin
        return
    try:
        stream = open(source, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except OSError as e:
        raise InvalidInput(f"cannot read {shown(source)}: {e.strerror}") from None
    with stream:
        yield stream


@contextmanager
def _read_errors(source: str) -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read {shown(source)}: it is not UTF-8 text") from None
    except csv.Error as e:
        raise InvalidInput(f"cannot read {shown(source)} as CSV: {e}") from None


@contextmanager
def records_of(source: str, fmt: FileFormat | None) -> Iterator[tuple[list[str] | None, Iterator[Record]]]:
    """The file's header when it has one (CSV), and its records read one at a time,
    while the file is open; the application checks both."""
    if fmt is None:
        fmt = FileFormat.jsonl if source.endswith((".jsonl", ".ndjson")) else FileFormat.csv

    def guarded(records: Iterator[Record]) -> Iterator[Record]:
        with _read_errors(source):
            yield from records

    with _open(source) as stream, _read_errors(source):
        if fmt is FileFormat.jsonl:
            yield None, guarded(_read_jsonl(stream))
        else:
            header, records = _read_csv(stream)
            yield (header if header else None), guarded(records)


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


SourceFormat = Annotated[
    FileFormat | None,
    typer.Option("--format", help="Default: jsonl for *.jsonl or *.ndjson, else csv."),
]


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="CSV or JSON-lines file; - reads stdin.")],
    *,
    fmt: SourceFormat = None,
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
    from usermgr.application.commands import ImportUsers
    from usermgr.application.importing import ImportSummary

    def render(summary: ImportSummary) -> None:
        prefix = "dry run: would have " if summary.dry_run else ""
        emit(f"{prefix}created {summary.created}, existed {summary.existed}")
        flush()

    with records_of(file, fmt) as (header, records), _progress_bar() as progress:
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
    columns = queries.EXPORT_FIELDS if include_hashes else queries.USER_FIELDS
    if spreadsheet_safe:
        users = ctx.obj.bus().handle(queries.ExportUsers(include_hashes=include_hashes))
        render_stream(users, fmt.value, columns, spreadsheet_safe=True)
        return
    lines = ctx.obj.bus().handle(queries.ExportText(format=fmt.value, include_hashes=include_hashes))
    render_lines(lines, header=",".join(columns) if fmt is FileFormat.csv else None)


class Prune(str, enum.Enum):
    deactivate = "deactivate"
    delete = "delete"


PLAN_SIGNS = {"create": "+", "delete": "-"}


def _plan_line(change: Any) -> str:
    sign = PLAN_SIGNS.get(change.action, "~")
    line = f"{sign} {change.action} {shown(change.email)}"
    if change.action == "update":
        before, after = change.changes["name"]
        line += f": name {shown(repr(before))} -> {shown(repr(after))}"
    elif change.action == "set-role":
        before, after = change.changes["role"]
        line += f": {before} -> {after}"
    return line


def apply(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="CSV or JSON-lines file of every user there should be; - reads stdin.")],
    *,
    fmt: SourceFormat = None,
    prune: Annotated[
        Prune | None,
        typer.Option("--prune", help="What happens to active users not in the file: deactivate or delete."),
    ] = None,
    update_passwords: Annotated[
        bool,
        typer.Option("--update-passwords", help="Also set the file's password or password_hash on existing users."),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Print the plan and change nothing; exit 8 if there is something to change.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
) -> None:
    """Make the users match a file: print the plan, then apply it in one transaction.

    \b
    Example:
      usermgr apply staff.csv --prune deactivate --check || usermgr apply staff.csv --prune deactivate
    """
    from usermgr.application.commands import ApplyUsers

    def render(result: Any) -> None:
        if as_json:
            entries = []
            for change in result.changes:
                entry: dict[str, Any] = {"action": change.action, "email": change.email}
                if change.changes:
                    entry["changes"] = {k: list(v) for k, v in change.changes.items()}
                entries.append(entry)
            emit_json({"changes": entries, "applied": result.applied})
        else:
            for change in result.changes:
                emit(_plan_line(change))
            summary = result.summary()
            emit(f"{summary} (check only: nothing was changed)" if not result.applied and result.changes else summary)
        flush()

    with records_of(file, fmt) as (header, records), _progress_bar() as progress:
        result = ctx.obj.bus().handle(
            ApplyUsers(
                records=records,
                header=header,
                prune=prune.value if prune else None,
                update_passwords=update_passwords,
                check=check,
            ),
            render=render,
            progress=progress,
        )
    if check and result.changes:
        count = len(result.changes)
        raise WorkToDo(f"{count} change{'s' * (count != 1)} to apply (--check changed nothing)")


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command()(export)
    app.command()(apply)
