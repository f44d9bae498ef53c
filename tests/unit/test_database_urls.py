"""Database URLs in messages: whatever a password holds ('/', '?', '#', '@', a bad
percent escape), no reading of the URL leaves it in what usermgr prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usermgr.errors import InvalidInput
from usermgr.infrastructure.storage import Location, parse_location, url_secrets, without_password


@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_without_password_never_contains_the_password_of_a_url(password: str) -> None:
    url = f"postgresql://admin:{password}@db.internal:5432/app"
    shown = without_password(url)
    assert shown.startswith("postgresql://")
    if len(password) >= 3:
        assert password not in shown.partition("://")[2]
    assert password in url_secrets(url)


@pytest.mark.parametrize(
    "text",
    [
        "host=db.internal dbname=app user=usermgr password=s3cret",
        "dbname=app",
        "postgresql:/usermgr:s3cret@db.internal/app",
        "postgres:db.internal",
        "sqlite:/tmp/users.db",
    ],
)
def test_a_connection_string_or_a_mistyped_url_is_refused_not_taken_for_a_file(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_location(text, default=lambda: Path("unused"))
    assert "neither a file path nor a URL" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_file_name_with_an_equals_sign_is_still_a_file() -> None:
    assert parse_location("my=users.db", default=lambda: Path("unused")) == Location("sqlite", path=Path("my=users.db"))


def test_the_scheme_in_capitals_is_handed_to_libpq_in_lower_case() -> None:
    found = parse_location("POSTGRESQL://app@db.internal/users", default=lambda: Path("unused"))
    assert found == Location("postgresql", url="postgresql://app@db.internal/users")
