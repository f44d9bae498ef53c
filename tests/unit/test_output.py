"""cli/output.py: tables sized to a terminal, plain tables when piped, spreadsheet-safe CSV."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from usermgr.cli.admin import EVENT_TABLE_COLUMNS, _event_row
from usermgr.cli.output import (
    FIELDS,
    FORMULA_TRIGGERS,
    USER_COLUMNS,
    _table_row,
    render_stream,
    render_table,
    short_id,
    spreadsheet_cell,
    to_the_minute,
)
from usermgr.application.queries import EventView, UserView
from usermgr.domain.values import format_timestamp

ANSI = re.compile(r"\x1b\[[0-9;]*m")
START = datetime(2026, 11, 27, 9, 15, 2, 123456, tzinfo=timezone.utc)


def user(email: str, name: str, *, role: str = "user", minutes: int = 0, updated: bool = True) -> UserView:
    created = START + timedelta(minutes=minutes)
    return UserView(
        id=str(uuid.uuid4()),
        email=email,
        name=name,
        role=role,
        is_active=True,
        created_at=format_timestamp(created),
        updated_at=format_timestamp(created + timedelta(hours=3)) if updated else None,
    )


USERS = [
    user("ada@example.com", "Ada Lovelace", role="admin"),
    user("grace.hopper@navy.example.mil", "Grace Brewster Murray Hopper, Rear Admiral", role="moderator", minutes=1),
    user("x@münchen.de", "[bold]Not bold[/]", minutes=2, updated=False),
]


def event(u: UserView, type_: str, data: dict[str, Any], minutes: int) -> EventView:
    return EventView(
        id=str(uuid.uuid4()),
        type=type_,
        user_id=u.id,
        occurred_at=format_timestamp(START + timedelta(minutes=minutes)),
        actor="root",
        data={"email": u.email, **data},
    )


EVENTS = [
    event(USERS[0], "UserCreated", {"name": "Ada Lovelace", "role": "user", "is_active": True}, 0),
    event(USERS[1], "UserRoleChanged", {"before": "user", "after": "moderator"}, 1),
    event(USERS[0], "UserPasswordChanged", {}, 2),
    event(USERS[2], "UserUpdated", {"changes": {"name": ["X", "[bold]Not bold[/]"]}}, 3),
]


def on_terminal(columns: Any, rows: list[list[str]], width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system="standard")
    render_table(columns, rows, "caption", console=console)
    return ANSI.sub("", out.getvalue()).splitlines()


def user_rows(users: list[dict[str, Any]]) -> list[list[str]]:
    return [_table_row(u) for u in users]  # type: ignore[arg-type]


def headers(lines: list[str]) -> list[str]:
    return lines[0].split()


def test_short_ids_keep_the_first_eight_characters_and_times_go_to_the_minute() -> None:
    assert short_id("5f2d72bf-9d3f-421c-a084-a57492894bc8") == "5f2d72bf"
    assert to_the_minute("2026-11-27T09:15:59.999999Z") == "2026-11-27 09:15"
    assert to_the_minute("") == ""


@pytest.mark.parametrize("width", [80, 120])
def test_a_user_table_fits_the_width_and_never_breaks_an_id_email_or_time(width: int) -> None:
    lines = on_terminal(USER_COLUMNS, user_rows(USERS), width)
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    for u in USERS:
        row = next(line for line in lines if line.startswith(u.id[:8] + " "))
        assert u.email in row
        assert u.id not in "\n".join(lines)  # only the short id shows on a terminal
        if "created_at" in headers(lines):
            assert to_the_minute(u.created_at) in row
        if "updated_at" in headers(lines) and u.updated_at:
            assert to_the_minute(u.updated_at) in row


def test_a_narrow_terminal_drops_updated_at_first_then_created_at() -> None:
    wide = headers(on_terminal(USER_COLUMNS, user_rows(USERS), 160))
    assert wide == ["id", "email", "name", "role", "active", "created_at", "updated_at"]
    assert headers(on_terminal(USER_COLUMNS, user_rows(USERS), 100))[-1] == "created_at"
    assert headers(on_terminal(USER_COLUMNS, user_rows(USERS), 80)) == ["id", "email", "name", "role", "active"]


def test_only_names_fold_over_lines() -> None:
    lines = on_terminal(USER_COLUMNS, user_rows(USERS), 80)
    long_name = USERS[1].name
    assert long_name not in "\n".join(lines)  # folded...
    assert all(word in "\n".join(lines) for word in long_name.split())  # ...but all there
    assert "[bold]Not bold[/]" in "\n".join(lines)  # printed literally, not as markup


@pytest.mark.parametrize("width", [80, 120])
def test_an_event_table_fits_the_width_and_never_breaks_an_id_email_or_time(width: int) -> None:
    lines = on_terminal(EVENT_TABLE_COLUMNS, [_event_row(e) for e in EVENTS], width)
    assert max(len(line) for line in lines) <= width, "\n".join(lines)
    shown = headers(lines)
    assert shown[:2] == ["occurred_at", "type"] and "email" in shown and shown[-1] == "data"
    for e in EVENTS:
        row = next(line for line in lines if line.startswith(to_the_minute(e.occurred_at)))
        assert e.type in row and e.data["email"] in row
        assert ("user_id" in shown) == (e.user_id[:8] in row)
        assert ("actor" in shown) == (f" {e.actor} " in row)
        assert ("id" in shown) == (e.id[:8] in row)


def test_event_columns_give_way_to_the_width_event_id_first_then_user_id_then_actor() -> None:
    rows = [_event_row(e) for e in EVENTS]
    every = ["occurred_at", "type", "user_id", "email", "actor", "id", "data"]
    assert headers(on_terminal(EVENT_TABLE_COLUMNS, rows, 160)) == every
    assert headers(on_terminal(EVENT_TABLE_COLUMNS, rows, 100)) == ["occurred_at", "type", "user_id", "email", "actor", "data"]
    assert headers(on_terminal(EVENT_TABLE_COLUMNS, rows, 90)) == ["occurred_at", "type", "email", "actor", "data"]
    assert headers(on_terminal(EVENT_TABLE_COLUMNS, rows, 80)) == ["occurred_at", "type", "email", "data"]


def test_too_narrow_a_terminal_folds_emails_but_never_ids() -> None:
    lines = on_terminal(USER_COLUMNS, user_rows(USERS), 50)
    assert max(len(line) for line in lines) <= 50
    for u in USERS:
        assert any(line.startswith(u.id[:8] + " ") for line in lines)


def test_the_caption_says_times_are_utc_and_where_the_full_values_are() -> None:
    lines = on_terminal(USER_COLUMNS, user_rows(USERS), 120)
    assert lines[-1].startswith("caption; times in UTC")
    assert "--format json" in lines[-1]


def test_piped_tables_show_every_value_in_full_as_plain_aligned_columns(capsys: pytest.CaptureFixture[str]) -> None:
    render_table(USER_COLUMNS, user_rows(USERS), "caption")
    out = capsys.readouterr().out
    table = [["id", "email", "name", "role", "active", "created_at", "updated_at"], *user_rows(USERS)]
    width = [max(len(row[i]) for row in table) for i in range(7)]
    assert out.splitlines() == ["  ".join(c.ljust(w) for c, w in zip(row, width)).rstrip() for row in table]
    assert all(u.id in out and u.created_at in out for u in USERS)


def test_piped_event_tables_keep_their_columns_and_full_values(capsys: pytest.CaptureFixture[str]) -> None:
    render_table(EVENT_TABLE_COLUMNS, [_event_row(e) for e in EVENTS], "caption")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["occurred_at", "type", "user_id", "email", "actor", "id", "data"]
    for line, e in zip(lines[1:], EVENTS):
        assert line.startswith(e.occurred_at + "  ")
        assert e.id in line and e.user_id in line


# --- spreadsheet-safe CSV -----------------------------------------------------------

# Text a name or email could hold (no line breaks: names refuse control characters),
# often starting with a formula trigger.
CELL_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20),
    st.tuples(st.sampled_from(FORMULA_TRIGGERS[:5]), st.text(max_size=10)).map(
        lambda t: t[0] + t[1].replace("\r", "").replace("\n", "")
    ),
)
USER_VIEWS = st.lists(
    st.fixed_dictionaries({field: CELL_TEXT for field in FIELDS}).map(lambda d: UserView(**{**d, "is_active": True})),
    max_size=5,
)


def csv_cells(users: list[dict[str, Any]], **options: Any) -> list[list[str]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        render_stream(users, "csv", **options)  # type: ignore[arg-type]
    header, *rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert header == list(FIELDS)
    return rows


@given(USER_VIEWS)
def test_csv_cells_are_the_values_exactly_without_the_flag(users: list[dict[str, Any]]) -> None:
    assert csv_cells(users) == [_table_row(u) for u in users]  # type: ignore[arg-type]


@given(USER_VIEWS)
def test_spreadsheet_safe_cells_never_start_a_formula_and_give_the_value_back(users: list[dict[str, Any]]) -> None:
    for cells, u in zip(csv_cells(users, spreadsheet_safe=True), users, strict=True):
        for cell, value in zip(cells, _table_row(u), strict=True):  # type: ignore[arg-type]
            assert not cell.startswith(FORMULA_TRIGGERS)
            if value.startswith(FORMULA_TRIGGERS):
                assert cell == "'" + value
            else:
                assert cell == value


@given(st.text())
def test_spreadsheet_cell_adds_one_quote_exactly_when_the_text_starts_with_a_trigger(text: str) -> None:
    cell = spreadsheet_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert cell == ("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text)
