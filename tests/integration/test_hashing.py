"""BcryptHasher against the real bcrypt library (cost 4, so it stays fast)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import bcrypt
import pytest

from usermgr.application.ports import HashInfo
from usermgr.infrastructure.hashing import BcryptHasher

PASSWORD = "correct horse battery staple"


@pytest.fixture
def hasher() -> BcryptHasher:
    return BcryptHasher(rounds=4)


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Record each call into the bcrypt library (and the cost of each salt made)."""
    calls: list[tuple[str, Any]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, args[0] if name == "gensalt" and args else kwargs.get("rounds")))
            return real(*args, **kwargs)

        return wrapper

    for name in ("hashpw", "checkpw", "gensalt", "kdf"):
        monkeypatch.setattr(bcrypt, name, spy(name, getattr(bcrypt, name)))
    return calls


def test_a_hash_is_bcrypt_at_the_configured_cost_and_verifies(hasher: BcryptHasher) -> None:
    hashed = hasher.hash(PASSWORD)
    assert hashed.startswith("$2b$04$")
    assert PASSWORD not in hashed
    assert hasher.verify(PASSWORD, hashed) is True
    assert hasher.verify(PASSWORD + " ", hashed) is False
    assert hasher.verify(PASSWORD.upper(), hashed) is False


def test_two_hashes_of_one_password_differ_by_their_salt(hasher: BcryptHasher) -> None:
    first, second = hasher.hash(PASSWORD), hasher.hash(PASSWORD)
    assert first != second
    assert hasher.verify(PASSWORD, first) and hasher.verify(PASSWORD, second)


def test_a_non_ascii_password_round_trips(hasher: BcryptHasher) -> None:
    password = "pässwörd-ünïcødé-🔑"
    hashed = hasher.hash(password)
    assert hasher.verify(password, hashed) is True
    assert hasher.verify("passwörd-ünïcødé-🔑", hashed) is False


def test_a_password_of_exactly_72_bytes_hashes_and_verifies(hasher: BcryptHasher) -> None:
    password = "é" * 36
    assert len(password.encode()) == 72
    hashed = hasher.hash(password)
    assert hasher.verify(password, hashed) is True


def test_hashing_more_than_72_bytes_is_refused_not_truncated(hasher: BcryptHasher) -> None:
    with pytest.raises(ValueError):
        hasher.hash("x" * 73)


def test_verifying_a_73_byte_password_returns_false_without_an_exception(hasher: BcryptHasher) -> None:
    stored = hasher.hash("x" * 72)
    assert hasher.verify("x" * 73, stored) is False
    assert hasher.verify("x" * 72 + "é", stored) is False
    assert hasher.verify("y" * 1000, stored) is False


def test_a_long_password_still_costs_a_bcrypt_computation(hasher: BcryptHasher, bcrypt_calls: list) -> None:
    stored = hasher.hash("x" * 72)
    bcrypt_calls.clear()
    assert hasher.verify("x" * 73, stored) is False
    assert {name for name, _ in bcrypt_calls} & {"hashpw", "checkpw", "kdf"}


def test_verifying_against_no_hash_returns_false(hasher: BcryptHasher) -> None:
    assert hasher.verify(PASSWORD, None) is False
    assert hasher.verify("", None) is False


def test_verifying_against_no_hash_still_does_bcrypt_work(hasher: BcryptHasher, bcrypt_calls: list) -> None:
    assert hasher.verify(PASSWORD, None) is False
    names = [name for name, _ in bcrypt_calls]
    assert {"hashpw", "checkpw", "kdf"} & set(names), names


def test_verifying_against_no_hash_takes_about_as_long_as_a_real_check() -> None:
    slow = BcryptHasher(rounds=9)
    stored = slow.hash(PASSWORD)

    def median(call: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    real = median(lambda: slow.verify("wrong password here", stored))
    missing = median(lambda: slow.verify("wrong password here", None))
    assert 0.5 < missing / real < 2.0, (missing, real)


def test_verifying_against_a_malformed_hash_returns_false(hasher: BcryptHasher) -> None:
    assert hasher.verify(PASSWORD, "not a bcrypt hash") is False
    assert hasher.verify(PASSWORD, "") is False


def test_inspect_reads_the_cost_of_a_real_hash_and_refuses_what_is_not_one(hasher: BcryptHasher) -> None:
    assert hasher.inspect(hasher.hash(PASSWORD)) == HashInfo(well_formed=True, cost=4)
    assert hasher.inspect(BcryptHasher(rounds=5).hash(PASSWORD)) == HashInfo(well_formed=True, cost=5)
    for scheme in ("$2a$", "$2y$"):
        assert hasher.inspect(hasher.hash(PASSWORD).replace("$2b$", scheme)).well_formed
    for bad in ("", "plain", "$2x$04$" + "a" * 53, hasher.hash(PASSWORD)[:-1], "$2b$03$" + "a" * 53, "$2b$32$" + "a" * 53):
        assert hasher.inspect(bad).well_formed is False


def test_a_hash_from_another_cost_still_verifies(hasher: BcryptHasher) -> None:
    at_five = BcryptHasher(rounds=5).hash(PASSWORD)
    assert hasher.verify(PASSWORD, at_five) is True
