"""Input validation: NUL in passwords, names with nothing visible, internal email domains."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usermgr.domain.values import Email, PasswordPolicy
from usermgr.errors import InvalidInput
from usermgr.infrastructure.hashing import BcryptHasher

EMAIL = Email.parse("someone@example.com")
HASHER = BcryptHasher(rounds=4)

# --- NUL in passwords ------------------------------------------------------------


def _with_nul(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Passwords that hold at least one NUL, anywhere, among any other characters."""
    return st.tuples(text, st.integers(min_value=1, max_value=13), text).map(
        lambda parts: parts[0] + "\x00" * parts[1] + parts[2]
    )


any_text = st.text(max_size=30)
passwords_with_nul = _with_nul(any_text)


class TestNulInPasswords:
    @pytest.mark.parametrize("password", ["\x00" * 12, "\x00" + "a" * 11, "correct horse\x00battery", "a" * 30 + "\x00"])
    def test_the_policy_refuses_a_nul_character(self, password: str) -> None:
        with pytest.raises(InvalidInput, match="must not contain a NUL character") as caught:
            PasswordPolicy().check(password, EMAIL)
        assert caught.value.exit_code == 2

    @given(_with_nul(st.text(alphabet="abcdefgh12345", min_size=6, max_size=30)))
    def test_the_policy_refuses_any_password_of_a_valid_length_with_a_nul(self, password: str) -> None:
        with pytest.raises(InvalidInput, match="NUL"):
            PasswordPolicy().check(password, EMAIL)

    @given(passwords_with_nul)
    def test_the_policy_refuses_any_password_with_a_nul(self, password: str) -> None:
        with pytest.raises(InvalidInput):
            PasswordPolicy().check(password, EMAIL)

    def test_twelve_nuls_no_longer_verify_against_one_nul_or_thirteen(self) -> None:
        # Hashes made by bcrypt itself, as another system would have stored them.
        for stored in ("\x00" * 12, "\x00", ""):
            hashed = bcrypt.hashpw(stored.encode(), bcrypt.gensalt(4)).decode()
            for attempt in ("\x00", "\x00" * 12, "\x00" * 13, "\x00" * 72):
                assert HASHER.verify(attempt, hashed) is False, (stored, attempt)

    @settings(max_examples=40, deadline=None)
    @given(password=passwords_with_nul, other=any_text)
    def test_a_password_with_a_nul_never_verifies_against_any_hash(self, password: str, other: str) -> None:
        secret = password.encode()
        candidates = [
            secret,  # the very bytes: bcrypt alone would say yes
            secret.split(b"\x00")[0],  # what bcrypt actually reads
            other.encode()[:72],
        ]
        for stored in candidates:
            if len(stored) > 72:
                continue
            hashed = bcrypt.hashpw(stored, bcrypt.gensalt(4)).decode()
            assert HASHER.verify(password, hashed) is False

    @given(passwords_with_nul)
    def test_a_password_with_a_nul_does_not_verify_against_no_hash_or_a_malformed_one(self, password: str) -> None:
        assert HASHER.verify(password, None) is False
        assert HASHER.verify(password, "not a bcrypt hash") is False

    def test_a_password_with_a_nul_costs_the_work_of_the_stored_hash(self) -> None:
        # The stored hash is costlier than the configured one: a refusal must spend what
        # a wrong password against that hash spends, not the configured cost.
        stored = bcrypt.hashpw(b"correct horse battery staple", bcrypt.gensalt(9)).decode()

        def median(call: Callable[[], object]) -> float:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            return statistics.median(times)

        wrong = median(lambda: HASHER.verify("a wrong password", stored))
        for refused in ("\x00" * 12, "correct horse\x00", "x" * 73):
            seconds = median(lambda: HASHER.verify(refused, stored))
            assert 0.5 < seconds / wrong < 2.0, (refused, seconds, wrong)

    def test_the_72_byte_limit_still_holds(self) -> None:
        exact = "é" * 36
        hashed = HASHER.hash(exact)
        assert HASHER.verify(exact, hashed) is True
        assert HASHER.verify(exact + "x", hashed) is False
        assert HASHER.verify("é" * 35 + "\x00\x00", hashed) is False
        PasswordPolicy().check(exact, EMAIL)
        with pytest.raises(InvalidInput, match="too long"):
            PasswordPolicy().check(exact + "x", EMAIL)

    def test_a_valid_password_still_verifies_and_only_itself(self) -> None:
        hashed = HASHER.hash("correct horse battery staple")
        assert HASHER.verify("correct horse battery staple", hashed) is True
        assert HASHER.verify("correct horse battery staple\x00", hashed) is False
        assert HASHER.verify("correct horse battery stapl", hashed) is False

    def test_a_lone_surrogate_is_refused_by_the_policy_and_never_verifies(self) -> None:
        # json.loads('"\\ud800"') makes one; it used to crash with exit 1.
        password = "correct horse\ud800"
        with pytest.raises(InvalidInput, match="surrogate"):
            PasswordPolicy().check(password, EMAIL)
        assert HASHER.verify(password, HASHER.hash("correct horse")) is False
