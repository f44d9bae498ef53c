"""`--since` parsing (usermgr.domain.values.parse_since) and the checks the events query
makes on its options before it reads anything, through the composition root with fakes.
(The same checks through the CLI are in tests/e2e/test_cli_events.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usermgr.application import queries
from usermgr.application.bus import MessageBus as Services
from usermgr.domain.events import EVENT_TYPES
from usermgr.domain.values import format_timestamp, parse_since
from usermgr.errors import InvalidInput

NOW = datetime(2024, 6, 15, 12, 30, 45, 123456, tzinfo=timezone.utc)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# --- durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("0m", timedelta(0)),
        ("1d", timedelta(days=1)),
        ("365d", timedelta(days=365)),
    ],
)
def test_a_duration_means_that_long_before_now(text: str, back: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - back


def test_a_duration_keeps_the_time_zone_of_now_so_it_compares_with_stored_utc_times() -> None:
    since = parse_since("12h", NOW)
    assert since.utcoffset() == timedelta(0)
    assert format_timestamp(since) == "2024-06-15T00:30:45.123456Z"


@given(
    n=st.integers(min_value=0, max_value=100_000),
    unit=st.sampled_from(sorted(UNITS)),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
    ),
)
def test_any_count_of_any_unit_gives_now_minus_that_many_units(n: int, unit: str, now: datetime) -> None:
    assert parse_since(f"{n}{unit}", now) == now - timedelta(seconds=n * UNITS[unit])


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30))]
        ),
    )
)
def test_any_iso_time_with_an_offset_names_the_same_instant_in_utc(moment: datetime) -> None:
    since = parse_since(moment.isoformat(), NOW)
    assert since == moment
    assert since.utcoffset() == timedelta(0)


def test_a_duration_reaching_before_year_one_is_invalid_input_not_a_crash() -> None:
    with pytest.raises(InvalidInput, match="since"):
        parse_since("99999999999999999999d", NOW)
def test_a_duration_with_thousands_of_digits_is_invalid_input_not_a_crash() -> None:
    with pytest.raises(InvalidInput):
        parse_since("9" * 5000 + "d", NOW)


# --- ISO dates and times -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=timezone.utc)),
        ("2024-01-02T03:04", datetime(2024, 1, 2, 3, 4, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05.25", datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05+00:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05-05:30", datetime(2024, 1, 2, 8, 34, 5, tzinfo=timezone.utc)),
        ("2024-01-01T01:00:00+03:00", datetime(2023, 12, 31, 22, 0, tzinfo=timezone.utc)),
    ],
)
def test_an_iso_date_or_time_is_read_as_utc_unless_it_gives_an_offset(text: str, expected: datetime) -> None:
    since = parse_since(text, NOW)
    assert since == expected
    assert since.utcoffset() == timedelta(0)
    # Stored times are compared as text: the result must format like them.
    assert format_timestamp(since) == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_an_iso_date_does_not_depend_on_now() -> None:
    assert parse_since("2020-05-05", NOW) == parse_since("2020-05-05", NOW - timedelta(days=900))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "7",
        "d",
        "m",
        "-5m",
        "+5m",
        "5 m",
        " 5m",
        "5m ",
        "5m\n",
        "1.5h",
        "5M",
        "7D",
        "7days",
        "7dd",
        "3y",
        "yesterday",
        "now",
        "2024-13-01",
        "2024-02-30",
        "2024-01-01T25:00",
        "01/02/2024",
        "\u0663d",  # an Arabic-Indic digit three
        "\uff17d",  # a full-width seven
        "2024-01-01; DROP TABLE events",
    ],
)
def test_anything_else_is_invalid_input_naming_the_option(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_since(text, NOW)
    assert "since" in str(raised.value)


# --- the events query through the composition root -----------------------------


def test_list_events_rejects_an_unknown_type_before_reading(services: Services) -> None:
    with pytest.raises(InvalidInput, match="UserCreated"):
        services.handle(queries.ListEvents(user=None, type="UserExploded", since=None, limit=10))


@pytest.mark.parametrize("limit", [0, -1])
def test_list_events_rejects_a_limit_below_one(services: Services, limit: int) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        services.handle(queries.ListEvents(user=None, type=None, since=None, limit=limit))


def test_list_events_rejects_a_bad_since(services: Services) -> None:
    with pytest.raises(InvalidInput, match="since"):
        services.handle(queries.ListEvents(user=None, type=None, since="last week", limit=10))


def test_list_events_accepts_every_event_type_of_the_contract(services: Services) -> None:
    assert set(EVENT_TYPES) == {
        "UserCreated",
        "UserUpdated",
        "UserActivated",
        "UserDeactivated",
        "UserRoleChanged",
        "UserPasswordChanged",
        "UserDeleted",
    }
    for event_type in EVENT_TYPES:
        # No database yet: a valid query finds nothing rather than failing.
        assert services.handle(queries.ListEvents(user=None, type=event_type, since="1d", limit=1)) == []
