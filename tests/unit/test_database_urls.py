"""Database URLs in messages: whatever a password holds ('/', '?', '#', '@', a bad
percent escape), no reading of the URL leaves it in what usermgr prints."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from usermgr.infrastructure.storage import url_secrets, without_password


@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_without_password_never_contains_the_password_of_a_url(password: str) -> None:
    url = f"postgresql://admin:{password}@db.internal:5432/app"
    shown = without_password(url)
    assert shown.startswith("postgresql://")
    if len(password) >= 3:
        assert password not in shown.partition("://")[2]
    assert password in url_secrets(url)
