"""export's lines are built by the database (SQLite's json_object, PostgreSQL's
json_build_object, CSV quoting in SQL): they must carry exactly what rendering the
typed views gives, whatever a row holds, hostile bytes of a hand-edited file included."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usermgr.application.queries import EXPORT_FIELDS, USER_FIELDS
from usermgr.cli.output import render_lines, render_stream
from usermgr.infrastructure.storage import Storage, open_storage, parse_location

# Any text a database cell can hold: commas, quotes, newlines, carriage returns,
# controls, non-ASCII and astral characters.
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
ROWS = st.lists(
    st.tuples(TEXT, TEXT, st.sampled_from(["user", "admin", "moderator"]), st.booleans(), st.none() | TEXT, st.none() | TEXT),
    max_size=6,
)


@pytest.fixture
def storage(db_url: str, tmp_path: Path) -> Iterator[Storage]:
    opened = open_storage(
        parse_location(db_url, default=lambda: tmp_path / "unused.db"), busy_timeout=5, hooks=(), actor="t", notice=print
    )
    opened.admin.upgrade()
    yield opened
    opened.close()


def replace_users(db_url: str, rows: list[tuple[Any, ...]]) -> None:
    """Put rows in by hand, as someone editing the database would: no usermgr checks."""
    values = [
        (f"id-{i}", email, f"{i}:{email}", name, name.casefold(), role, active, password_hash, f"2026-01-0{i % 9 + 1}T00:00:00.000000Z", updated)
        for i, (email, name, role, active, updated, password_hash) in enumerate(rows)
    ]
    insert = (
        "INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash, created_at, updated_at)"
        " VALUES ({})"
    )
    if db_url.startswith("postgresql"):
        import psycopg2

        conn = psycopg2.connect(db_url)
        with conn, conn.cursor() as cursor:
            cursor.execute("DELETE FROM users")
            for row in values:
                cursor.execute(insert.format(", ".join(["%s"] * 10)), row)
        conn.close()
    else:
        conn = sqlite3.connect(db_url)
        with conn:
            conn.execute("DELETE FROM users")
            conn.executemany(insert.format(", ".join("?" * 10)), [(*r[:6], int(r[6]), *r[7:]) for r in values])
        conn.close()


def printed(render: Any, *args: Any, **kwargs: Any) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        render(*args, **kwargs)
    return out.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, include_hashes=st.booleans())
def test_database_built_csv_is_byte_for_byte_what_the_csv_module_writes(
    storage: Storage, db_url: str, rows: list[tuple[Any, ...]], include_hashes: bool
) -> None:
    replace_users(db_url, [r for r in rows if "\x00" not in "".join(map(str, r))])
    columns = EXPORT_FIELDS if include_hashes else USER_FIELDS
    expected = printed(render_stream, storage.users.export(include_hashes), "csv", columns)
    built = printed(render_lines, storage.users.export_text("csv", include_hashes), header=",".join(columns))
    assert built == expected
    assert list(csv.reader(io.StringIO(built, newline=""))) == list(csv.reader(io.StringIO(expected, newline="")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, include_hashes=st.booleans())
def test_database_built_json_lines_parse_to_the_same_objects_in_the_same_key_order(
    storage: Storage, db_url: str, rows: list[tuple[Any, ...]], include_hashes: bool
) -> None:
    replace_users(db_url, [r for r in rows if "\x00" not in "".join(map(str, r))])
    expected = [view.as_dict() for view in storage.users.export(include_hashes)]
    built = [json.loads(line) for line in storage.users.export_text("jsonl", include_hashes)]
    assert built == expected
    assert [list(obj) for obj in built] == [list(obj) for obj in expected]
