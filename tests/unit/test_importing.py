"""The import handler (usermgr.application.importing) through the composition root,
with fakes for every port: every row is checked before anything is written, each
bad row is reported as `line N: why`, and a good file is written whole, once."""

from __future__ import annotations

import csv
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import PASSWORD
from tests.fakes import FakeHasher, FakeStorage, FakeUnitOfWork, FixedClock
from usermgr.application.commands import CreateUser
from usermgr.application.importing import ImportSummary, ImportUsers, Record
from usermgr.application.bus import MessageBus as Services
from usermgr.bootstrap import build
from usermgr.cli.transfer import records_of
from usermgr.errors import InvalidInput, InvalidRows, RowsConflict
from usermgr.infrastructure.config import Settings
from usermgr.infrastructure.storage import Location

GOOD_HASH = "$2b$04$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ."  # 53 characters
USER_ID = "0b7d3c1e-6a55-4d2e-9f0a-3c4b5d6e7f80"


def records(*rows: dict[str, Any], first_line: int = 2) -> list[Record]:
    """Rows as a CSV reader hands them over: the header is line 1."""
    return [Record(line, values) for line, values in enumerate(rows, first_line)]


def row(email: str = "ada@example.com", name: str = "Ada", **values: Any) -> dict[str, Any]:
    return {"email": email, "name": name, **values}


def run_import(services: Services, *rows: dict[str, Any], **options: Any) -> ImportSummary:
    return services.handle(ImportUsers(records=records(*rows), **options))


def bad_lines(services: Services, *rows: dict[str, Any], **options: Any) -> tuple[str, ...]:
    with pytest.raises(InvalidRows) as caught:
        run_import(services, *rows, **options)
    return caught.value.details


def users_by_email(uow: FakeUnitOfWork) -> dict[str, Any]:
    return {u.email.normalized: u for u in uow.committed_users.values()}


def assert_nothing_written(uow: FakeUnitOfWork) -> None:
    assert uow.committed is False
    assert uow.committed_users == {}
    assert uow.written_events == []


# --- a good file -------------------------------------------------------------


def test_a_good_file_creates_every_user_in_one_commit_and_reports_the_count(
    services: Services, uow: FakeUnitOfWork
) -> None:
    summary = run_import(
        services,
        row("ada@example.com", "Ada", role="admin", password=PASSWORD),
        row("bob@example.com", "Bob", is_active="false"),
        row("cy@example.com", "Cy", role="moderator", password_hash=GOOD_HASH),
    )
    assert summary == ImportSummary(created=3, existed=0, dry_run=False)
    users = users_by_email(uow)
    assert set(users) == {"ada@example.com", "bob@example.com", "cy@example.com"}
    assert users["ada@example.com"].role.value == "admin"
    assert users["ada@example.com"].is_active is True
    assert users["bob@example.com"].is_active is False
    assert users["bob@example.com"].role.value == "user"
    assert users["cy@example.com"].role.value == "moderator"


def test_a_password_is_hashed_and_a_password_hash_is_kept_exactly_as_given(
    services: Services, uow: FakeUnitOfWork, hasher: FakeHasher
) -> None:
    run_import(
        services,
        row("ada@example.com", password=PASSWORD),
        row("bob@example.com", password_hash=GOOD_HASH),
        row("cy@example.com"),
    )
    users = users_by_email(uow)
    assert users["ada@example.com"].password_hash == hasher.hash(PASSWORD)
    assert users["bob@example.com"].password_hash == GOOD_HASH
    assert users["cy@example.com"].password_hash is None


def test_one_user_created_event_per_created_user_and_none_for_an_existing_one(
    services: Services, uow: FakeUnitOfWork
) -> None:
    services.handle(CreateUser(email="old@example.com", name="Old"))
    before = len(uow.written_events)
    run_import(
        services,
        row("old@example.com", "Old"),
        row("ada@example.com", "Ada", role="admin", is_active="no"),
        row("bob@example.com", "Bob"),
        exists_ok=True,
    )
    new_events = uow.written_events[before:]
    assert [e.type for e in new_events] == ["UserCreated", "UserCreated"]
    users = users_by_email(uow)
    assert sorted(e.user_id for e in new_events) == sorted(
        [users["ada@example.com"].id, users["bob@example.com"].id]
    )
    ada_event = next(e for e in new_events if e.user_id == users["ada@example.com"].id)
    assert ada_event.data() == {"email": "ada@example.com", "name": "Ada", "role": "admin", "is_active": False}


def test_id_created_at_and_updated_at_are_kept_as_given(services: Services, uow: FakeUnitOfWork) -> None:
    run_import(
        services,
        row(
            id=USER_ID.upper(),
            created_at="2020-02-03T04:05:06.123456+02:00",
            updated_at="2021-01-01T00:00:00Z",
        ),
    )
    (user,) = uow.committed_users.values()
    assert user.id == USER_ID
    assert user.created_at == datetime(2020, 2, 3, 2, 5, 6, 123456, tzinfo=timezone.utc)
    assert user.updated_at == datetime(2021, 1, 1, tzinfo=timezone.utc)


def test_without_id_and_times_the_user_gets_a_fresh_id_the_clock_time_and_no_updated_at(
    services: Services, uow: FakeUnitOfWork
) -> None:
    run_import(services, row(), row("bob@example.com", "Bob"))
    ada, bob = sorted(uow.committed_users.values(), key=lambda u: u.email.normalized)
    assert ada.id != bob.id
    assert datetime(2026, 1, 1, tzinfo=timezone.utc) < ada.created_at < datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert ada.updated_at is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True), ("TRUE", True), ("True", True), ("1", True), ("yes", True), ("YeS", True),
        ("false", False), ("FALSE", False), ("fAlSe", False), ("0", False), ("no", False), ("NO", False),
        ("", True),
    ],
)
def test_is_active_accepts_true_false_1_0_yes_no_in_any_case_and_empty_means_active(
    services: Services, uow: FakeUnitOfWork, text: str, expected: bool
) -> None:
    run_import(services, row(is_active=text))
    (user,) = uow.committed_users.values()
    assert user.is_active is expected


def test_empty_optional_columns_mean_their_defaults(services: Services, uow: FakeUnitOfWork) -> None:
    run_import(
        services,
        row(role="", is_active="", password="", password_hash="", id="", created_at="", updated_at=""),
    )
    (user,) = uow.committed_users.values()
    assert user.role.value == "user"
    assert user.is_active is True
    assert user.password_hash is None
    assert user.updated_at is None


def test_json_values_true_false_and_null_are_accepted(services: Services, uow: FakeUnitOfWork) -> None:
    run_import(services, row(is_active=False, role=None), row("bob@example.com", "Bob", is_active=True))
    users = users_by_email(uow)
    assert users["ada@example.com"].is_active is False
    assert users["ada@example.com"].role.value == "user"
    assert users["bob@example.com"].is_active is True


# --- bad rows: each reported, nothing written ----------------------------------


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (row(email="not-an-email"), "email"),
        (row(email=" ada@example.com"), "email"),
        (row(email=""), "required"),
        ({"name": "Ada"}, "required"),
        (row(name=""), "required"),
        (row(name=" Ada"), "name"),
        (row(name="A\x1bB"), "name"),
        (row(name="x" * 201), "name"),
        (row(role="root"), "role"),
        (row(role="Admin"), "role"),
        (row(is_active="maybe"), "is_active"),
        (row(is_active=" true"), "is_active"),
        (row(is_active="y"), "is_active"),
        (row(is_active="2"), "is_active"),
        (row(password="short"), "password"),
        (row(password="x" * 73), "password"),
        (row(password="ada@example.com"), "password"),
        (row(password=PASSWORD, password_hash=GOOD_HASH), "password"),
        (row(password_hash="not a hash"), "password_hash"),
        (row(password_hash=GOOD_HASH[:-1]), "password_hash"),
        (row(password_hash=GOOD_HASH + "a"), "password_hash"),
        (row(password_hash=GOOD_HASH.replace("$04$", "$03$")), "password_hash"),
        (row(password_hash=GOOD_HASH.replace("$04$", "$32$")), "password_hash"),
        (row(password_hash=GOOD_HASH.replace("$04$", "$4$")), "password_hash"),
        (row(password_hash=GOOD_HASH.replace("$2b$", "$2x$")), "password_hash"),
        (row(password_hash=GOOD_HASH[:-1] + "!"), "password_hash"),
        (row(password_hash=" " + GOOD_HASH), "password_hash"),
        (row(id="42"), "UUID"),
        (row(id="not-a-uuid"), "UUID"),
        (row(created_at="2024-01-01T00:00:00"), "time zone"),
        (row(updated_at="2024-01-01 12:00"), "time zone"),
        (row(created_at="yesterday"), "created_at"),
        (row(nickname="ada"), "unknown column 'nickname'"),
        (row(name=5), "name"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_and_reason_and_nothing_is_written(
    services: Services, uow: FakeUnitOfWork, values: dict[str, Any], why: str
) -> None:
    details = bad_lines(services, row("first@example.com", "First"), values, row("last@example.com", "Last"))
    assert len(details) == 1, details
    assert details[0].startswith("line 3: "), details
    assert why.lower() in details[0].lower(), details
    assert_nothing_written(uow)


@pytest.mark.parametrize("cost", ["04", "10", "12", "16"])
def test_a_well_formed_bcrypt_hash_of_any_valid_cost_is_accepted(
    services: Services, uow: FakeUnitOfWork, cost: str
) -> None:
    given_hash = GOOD_HASH.replace("$04$", f"${cost}$")
    run_import(services, row(password_hash=given_hash))
    (user,) = uow.committed_users.values()
    assert user.password_hash == given_hash


def test_every_bad_row_is_reported_not_only_the_first(services: Services, uow: FakeUnitOfWork) -> None:
    details = bad_lines(
        services,
        row("a@example.com", "A"),
        row("bad-email", "B"),
        row("c@example.com", "C", role="boss"),
        row("d@example.com", "D"),
        row("e@example.com", "E", is_active="perhaps"),
        row("f@example.com", "F", password="tiny"),
    )
    assert [d.split(":", 1)[0] for d in details] == ["line 3", "line 4", "line 6", "line 7"]
    assert_nothing_written(uow)


def test_the_message_says_how_many_rows_are_bad_and_that_nothing_was_written(services: Services) -> None:
    with pytest.raises(InvalidRows) as caught:
        run_import(services, row(role="x"), row("b@example.com", "B", role="y"))
    assert isinstance(caught.value, InvalidInput) and caught.value.exit_code == 2
    assert "2" in str(caught.value) and "nothing" in str(caught.value)


def test_line_numbers_are_those_the_reader_gave(services: Services) -> None:
    bad = [Record(17, row("a@example.com", "A")), Record(42, row("b@example.com", "B", role="nope"))]
    with pytest.raises(InvalidRows) as caught:
        services.handle(ImportUsers(records=bad))
    assert len(caught.value.details) == 1
    assert caught.value.details[0].startswith("line 42: ")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ada@example.com", "ada@example.com"),
        ("ada@example.com", "ADA@EXAMPLE.COM"),
        ("Ada@Example.com", "aDA@example.COM"),
        ("élise@example.com", "Élise@example.com"),
        ("x@münchen.de", "x@xn--mnchen-3ya.de"),
        ("x@MÜNCHEN.de", "X@münchen.DE"),
    ],
)
def test_the_same_email_twice_in_a_file_is_an_error_on_the_later_line_whatever_its_case(
    services: Services, uow: FakeUnitOfWork, first: str, second: str
) -> None:
    details = bad_lines(services, row(first, "One"), row("other@example.com", "Other"), row(second, "Two"))
    assert len(details) == 1, details
    assert details[0].startswith("line 4: ")
    assert "line 2" in details[0]
    assert_nothing_written(uow)


def test_the_same_id_twice_in_a_file_is_an_error_whatever_its_case(
    services: Services, uow: FakeUnitOfWork
) -> None:
    details = bad_lines(
        services, row("a@example.com", "A", id=USER_ID), row("b@example.com", "B", id=USER_ID.upper())
    )
    assert len(details) == 1, details
    assert details[0].startswith("line 3: ") and "id" in details[0] and "line 2" in details[0]
    assert_nothing_written(uow)


def test_a_duplicate_email_is_reported_on_every_repeated_line(services: Services) -> None:
    details = bad_lines(services, row(), row(), row("b@example.com", "B"), row())
    assert [d.split(":", 1)[0] for d in details] == ["line 3", "line 5"]


# --- the database: conflicts, exists_ok, dry_run -------------------------------


def test_an_email_that_already_exists_is_a_conflict_with_exit_4_and_nothing_is_written(
    services: Services, uow: FakeUnitOfWork
) -> None:
    services.handle(CreateUser(email="Old@Example.com", name="Old"))
    before_users = {u.id for u in uow.committed_users.values()}
    before_events = len(uow.written_events)
    with pytest.raises(RowsConflict) as caught:
        run_import(services, row("new@example.com", "New"), row("OLD@example.com", "Old again"))
    assert caught.value.exit_code == 4
    assert len(caught.value.details) == 1
    assert caught.value.details[0].startswith("line 3: ")
    assert "exists" in caught.value.details[0]
    assert {u.id for u in uow.committed_users.values()} == before_users
    assert len(uow.written_events) == before_events


def test_exists_ok_skips_existing_emails_and_creates_the_others(services: Services, uow: FakeUnitOfWork) -> None:
    services.handle(CreateUser(email="old@example.com", name="Old", role="admin"))
    summary = run_import(
        services,
        row("new@example.com", "New"),
        row("OLD@EXAMPLE.COM", "Changed name", role="user"),
        exists_ok=True,
    )
    assert summary == ImportSummary(created=1, existed=1, dry_run=False)
    users = users_by_email(uow)
    assert set(users) == {"old@example.com", "new@example.com"}
    assert users["old@example.com"].name == "Old"
    assert users["old@example.com"].role.value == "admin"


def test_an_id_that_belongs_to_another_user_is_a_conflict_even_with_exists_ok(
    services: Services, uow: FakeUnitOfWork
) -> None:
    run_import(services, row("old@example.com", "Old", id=USER_ID))
    with pytest.raises(RowsConflict) as caught:
        run_import(services, row("new@example.com", "New", id=USER_ID), exists_ok=True)
    assert caught.value.details[0].startswith("line 2: ") and "id" in caught.value.details[0]
    assert set(users_by_email(uow)) == {"old@example.com"}


def test_exists_ok_treats_a_row_with_the_same_email_and_id_as_existing(
    services: Services, uow: FakeUnitOfWork
) -> None:
    run_import(services, row("old@example.com", "Old", id=USER_ID))
    summary = run_import(services, row("old@example.com", "Old", id=USER_ID), exists_ok=True)
    assert summary == ImportSummary(created=0, existed=1, dry_run=False)
    assert len(uow.committed_users) == 1


def test_an_invalid_row_wins_over_a_conflict_and_is_exit_2(services: Services, uow: FakeUnitOfWork) -> None:
    services.handle(CreateUser(email="old@example.com", name="Old"))
    with pytest.raises(InvalidRows):
        run_import(services, row("old@example.com", "Old"), row("new@example.com", "New", role="x"))
    assert set(users_by_email(uow)) == {"old@example.com"}


def test_dry_run_reports_the_counts_and_writes_nothing(services: Services, uow: FakeUnitOfWork) -> None:
    services.handle(CreateUser(email="old@example.com", name="Old"))
    snapshot = {u.id: (u.email.normalized, u.name) for u in uow.committed_users.values()}
    before_events = len(uow.written_events)
    summary = run_import(
        services,
        row("old@example.com", "Old"),
        row("a@example.com", "A", password=PASSWORD),
        row("b@example.com", "B"),
        exists_ok=True,
        dry_run=True,
    )
    assert summary == ImportSummary(created=2, existed=1, dry_run=True)
    assert {u.id: (u.email.normalized, u.name) for u in uow.committed_users.values()} == snapshot
    assert len(uow.written_events) == before_events


def test_dry_run_still_reports_bad_rows_and_conflicts(services: Services, uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidRows):
        run_import(services, row(role="boss"), dry_run=True)
    services.handle(CreateUser(email="old@example.com", name="Old"))
    with pytest.raises(RowsConflict):
        run_import(services, row("old@example.com", "Old"), dry_run=True)


def test_an_empty_file_creates_nothing_and_succeeds(services: Services, uow: FakeUnitOfWork) -> None:
    assert services.handle(ImportUsers(records=[])) == ImportSummary(created=0, existed=0, dry_run=False)
    assert uow.committed_users == {}
    assert uow.written_events == []


# --- properties -----------------------------------------------------------------


def fresh_services() -> tuple[Services, FakeUnitOfWork]:
    """What the `services` fixture builds, for one Hypothesis example."""
    uow = FakeUnitOfWork()
    built = build(
        Settings(database=Location("sqlite", path=Path(tempfile.gettempdir()) / "unused-usermgr.db")),
        storage=FakeStorage(uow),  # type: ignore[arg-type]
        hasher=FakeHasher(),
        clock=FixedClock(),
        report=lambda line: None,
    )
    return built, uow


BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from(sorted({c.lower(), c.upper()})) for c in word)).map("".join)


@given(st.sampled_from(sorted(BOOLEAN_WORDS)).flatmap(lambda w: st.tuples(st.just(w), any_case(w))))
@settings(max_examples=60, deadline=None)
def test_property_every_casing_of_an_accepted_boolean_word_is_read_as_its_value(pair: tuple[str, str]) -> None:
    word, text = pair
    services, uow = fresh_services()
    run_import(services, row(is_active=text))
    (user,) = uow.committed_users.values()
    assert user.is_active is BOOLEAN_WORDS[word]


@given(st.text(max_size=8).filter(lambda t: t != "" and t.lower() not in BOOLEAN_WORDS))
@settings(max_examples=80, deadline=None)
def test_property_any_other_non_empty_text_is_not_a_boolean(text: str) -> None:
    services, uow = fresh_services()
    with pytest.raises(InvalidRows) as caught:
        run_import(services, row(is_active=text))
    assert caught.value.details[0].startswith("line 2: is_active")
    assert_nothing_written(uow)


NAME_CHARACTERS = st.characters(
    blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
    blacklist_characters="\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
)
# A name starts and ends with a visible character (a letter, digit, punctuation such as
# a quote or a comma, or a symbol); anything allowed in between.
_VISIBLE = st.characters(categories=["L", "N", "P", "S"], exclude_characters="\u115f\u1160\u3164\uffa0\u2800")
names = st.builds("{}{}{}".format, _VISIBLE, st.text(NAME_CHARACTERS, max_size=38), _VISIBLE)
rows_strategy = st.lists(
    st.tuples(
        names,
        st.sampled_from(["user", "admin", "moderator", ""]),
        st.sampled_from(["true", "FALSE", "1", "0", "Yes", "no", ""]),
    ),
    min_size=1,
    max_size=8,
)


@given(rows_strategy)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_a_csv_written_by_the_csv_module_reads_back_and_imports_exactly(
    generated: list[tuple[str, str, str]],
) -> None:
    """Names with commas, quotes and any printable Unicode survive the CSV reader,
    line numbers count from the header, and the import keeps every value."""
    table = [
        {"email": f"user{i}@example.com", "name": name, "role": role, "is_active": active}
        for i, (name, role, active) in enumerate(generated)
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "users.csv"
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=["email", "name", "role", "is_active"])
            writer.writeheader()
            writer.writerows(table)
        with records_of(str(path), None) as (header, records):
            read = list(records)
    assert header == ["email", "name", "role", "is_active"]
    assert [r.line for r in read] == list(range(2, len(table) + 2))
    assert [r.values for r in read] == table

    services, uow = fresh_services()
    summary = services.handle(ImportUsers(records=read, header=header))
    assert summary.created == len(table)
    users = users_by_email(uow)
    for values in table:
        user = users[values["email"]]
        assert user.name == values["name"]
        assert user.role.value == (values["role"] or "user")
        assert user.is_active is BOOLEAN_WORDS.get(values["is_active"].lower(), True)


@given(st.lists(st.sampled_from(["a", "A", "b", "B", "c"]), min_size=1, max_size=6))
@settings(max_examples=40, deadline=None)
def test_property_in_file_duplicates_are_found_exactly_when_two_local_parts_match_ignoring_case(
    locals_: list[str],
) -> None:
    services, uow = fresh_services()
    rows = [row(f"{local}@example.com", f"User {i}") for i, local in enumerate(locals_)]
    folded = [local.lower() for local in locals_]
    repeated_lines = [i + 2 for i, local in enumerate(folded) if local in folded[:i]]
    if repeated_lines:
        with pytest.raises(InvalidRows) as caught:
            run_import(services, *rows)
        assert [int(d.split(":")[0].split()[1]) for d in caught.value.details] == repeated_lines
        assert_nothing_written(uow)
    else:
        assert run_import(services, *rows).created == len(rows)


def test_line_numbers_in_a_csv_count_physical_lines_so_a_blank_line_is_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("email,name\na@example.com,A\n\nb@example.com,B,\n", encoding="utf-8")
    with records_of(str(path), None) as (header, records):
        read = list(records)
    assert header == ["email", "name"]
    assert [r.line for r in read] == [2, 4]
    assert read[0].values == {"email": "a@example.com", "name": "A"}
