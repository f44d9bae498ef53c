"""Input validation: NUL in passwords, names with nothing visible, internal email domains."""

from __future__ import annotations

import statistics
import time
import unicodedata
from collections.abc import Callable

import bcrypt
import email_validator
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usermgr.domain.values import MAX_NAME_LENGTH, Email, PasswordPolicy, parse_name
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

    @given(_with_nul(st.text(alphabet="abcdefgh12345", min_size=6, max_size=29)))  # 29 + 13 + 29 < 72 bytes
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


# --- Names with nothing visible ----------------------------------------------------

FORMAT_CHARACTERS = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"]
BLANK_GLYPHS = ["\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"]
COMBINING_MARKS = ["\u0301", "\u0308", "\u20dd", "\ufe0f", "\u0942"]

visible_chars = st.characters(categories=["L", "N", "P", "S"]).filter(lambda ch: ch not in BLANK_GLYPHS)
# Characters that draw nothing by themselves and are allowed inside a name.
invisible_chars = st.one_of(
    st.sampled_from(FORMAT_CHARACTERS + BLANK_GLYPHS + COMBINING_MARKS),
    st.characters(categories=["Mn", "Me", "Co", "Cn"]),
)
# Valid names: a visible first character, then anything allowed (marks, joiners, inner
# spaces included), then a visible character or a combining mark at the end.
inner_chars = st.one_of(visible_chars, invisible_chars, st.sampled_from([" ", "\u3000", "\u00a0"]))
valid_names = st.builds(
    lambda first, middle, last: first + middle + last,
    visible_chars,
    st.text(alphabet=inner_chars, max_size=MAX_NAME_LENGTH - 2),
    st.one_of(visible_chars, st.characters(categories=["Mn", "Mc"])),
)


class TestInvisibleNames:
    @pytest.mark.parametrize(
        "name",
        ["\u200b", "\u200b" * 5, "\ufeff", "\u2060\u200d", "\u3164", "\u2800\u2800", "\u0301", "\ue000", "\u115f\u1160"],
    )
    def test_a_name_with_no_visible_character_is_refused(self, name: str) -> None:
        with pytest.raises(InvalidInput, match="no visible character") as caught:
            parse_name(name)
        assert caught.value.exit_code == 2

    @pytest.mark.parametrize(
        "name", ["\ufeffAda", "\u200bAda", "Ada\u200b", "Ada\u2060", "Ada\ufeff", "\u3164Ada", "Ada\u00ad", "\ue000Ada", "Ada\U000e007f"]
    )
    def test_a_name_that_starts_or_ends_with_an_invisible_character_is_refused(self, name: str) -> None:
        with pytest.raises(InvalidInput, match="U\\+[0-9A-F]{4,5}, which is not a visible character"):
            parse_name(name)

    def test_a_name_that_starts_with_a_combining_mark_is_refused(self) -> None:
        with pytest.raises(InvalidInput, match="combining mark U\\+0301"):
            parse_name("\u0301Ada")

    @pytest.mark.parametrize(
        "name",
        [
            "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family emoji: ZWJ sequence
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with a ZWNJ
            "Jose\u0301",  # NFD: ends with a combining acute
            "\u0930\u093e\u091c\u0942",  # Devanagari: ends with a vowel sign
            "\u2764\ufe0f",  # ends with a variation selector
            "Ada\u200bLovelace",
            "Ada\u2060Lovelace",
            "Ada \u200d Lovelace",
        ],
    )
    def test_format_characters_and_marks_inside_a_name_stay_allowed(self, name: str) -> None:
        assert parse_name(name) == name

    def test_a_lone_surrogate_is_refused_not_a_crash(self) -> None:
        with pytest.raises(InvalidInput, match="surrogate"):
            parse_name("Ada\ud800")

    @given(st.text(alphabet=st.one_of(invisible_chars, st.sampled_from(["\u200b", " "])), min_size=1, max_size=20))
    def test_any_name_made_only_of_invisible_characters_is_refused(self, name: str) -> None:
        with pytest.raises(InvalidInput):
            parse_name(name)

    @given(name=valid_names, edge=st.one_of(st.sampled_from(FORMAT_CHARACTERS + BLANK_GLYPHS), st.characters(categories=["Cf", "Co", "Cn"])))
    def test_any_name_with_an_invisible_character_at_either_end_is_refused(self, name: str, edge: str) -> None:
        for padded in (edge + name, name + edge):
            if len(padded) <= MAX_NAME_LENGTH:
                with pytest.raises(InvalidInput):
                    parse_name(padded)

    @given(name=valid_names, mark=st.characters(categories=["Mn", "Mc", "Me"]))
    def test_any_name_starting_with_a_combining_mark_is_refused(self, name: str, mark: str) -> None:
        if len(name) < MAX_NAME_LENGTH:
            with pytest.raises(InvalidInput, match="combining mark"):
                parse_name(mark + name)

    @given(valid_names)
    def test_any_name_with_a_visible_character_at_its_start_is_accepted_unchanged(self, name: str) -> None:
        assert parse_name(name) == name

    @given(st.text(max_size=MAX_NAME_LENGTH))
    def test_every_accepted_name_shows_a_visible_character_first(self, name: str) -> None:
        try:
            assert parse_name(name) == name
        except InvalidInput:
            return
        first, last = unicodedata.category(name[0]), unicodedata.category(name[-1])
        assert first[0] in "LNPS" and name[0] not in BLANK_GLYPHS, ascii(name)
        assert last[0] in "LNPSM" and name[-1] not in BLANK_GLYPHS, ascii(name)


# --- Internal email domains ----------------------------------------------------------

INTERNAL = [
    "admin@corp.local",
    "admin@host.test",
    "admin@test",
    "admin@intranet",
    "admin@server01",
    "admin@localhost",
    "admin@build.localhost",
    "admin@x.internal",
    "admin@hidden.onion",
    "admin@mail.home.arpa",
    "admin@example.invalid",
    "admin@münchen",
]


class TestInternalDomains:
    @pytest.mark.parametrize("raw", [a for a in INTERNAL if a != "admin@x.internal"])
    def test_special_use_and_single_label_domains_are_refused_by_default(self, raw: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            Email.parse(raw)
        assert caught.value.exit_code == 2

    @pytest.mark.parametrize("raw", INTERNAL)
    def test_allow_internal_accepts_them(self, raw: str) -> None:
        assert Email.parse(raw, allow_internal=True).normalized == raw

    def test_an_internal_address_is_normalised_like_any_other(self) -> None:
        email = Email.parse("Admin@CORP.Local", allow_internal=True)
        assert email.normalized == "Admin@corp.local"
        assert email.key == "admin@corp.local"
        assert Email.parse("admin@xn--mnchen-3ya", allow_internal=True) == Email.parse("admin@münchen", allow_internal=True)

    @pytest.mark.parametrize(
        "raw",
        ["admin@10.0.0.1", "admin@127.0.0.1", "admin@1234", "admin@", "@corp.local", "admin@corp..local",
         "admin@-corp.local", "admin@corp_x.local", " admin@corp.local", "admin@corp.local\n", "a" * 65 + "@corp.local"],
    )
    def test_allow_internal_still_refuses_what_is_no_address(self, raw: str) -> None:
        with pytest.raises(InvalidInput, match="invalid email"):
            Email.parse(raw, allow_internal=True)

    def test_the_library_list_is_restored_after_each_call_even_a_failing_one(self) -> None:
        before = list(email_validator.SPECIAL_USE_DOMAIN_NAMES)
        Email.parse("admin@corp.local", allow_internal=True)
        with pytest.raises(InvalidInput):
            Email.parse("not an address", allow_internal=True)
        assert email_validator.SPECIAL_USE_DOMAIN_NAMES == before
        assert "local" in before
        with pytest.raises(InvalidInput, match="special-use"):
            Email.parse("admin@corp.local")

    @given(
        local=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_+", min_size=1, max_size=20),
        domain=st.sampled_from(["example.com", "Example.ORG", "münchen.de", "xn--mnchen-3ya.de", "a.b.c.example.net"]),
    )
    def test_allow_internal_accepts_every_ordinary_address_and_normalises_it_the_same(self, local: str, domain: str) -> None:
        raw = f"{local}@{domain}"
        try:
            plain = Email.parse(raw)
        except InvalidInput:
            with pytest.raises(InvalidInput):
                Email.parse(raw, allow_internal=True)
            return
        assert Email.parse(raw, allow_internal=True) == plain

    @given(
        label=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
            # IDNA reserves "--" in the third and fourth places (as in xn--).
            lambda s: s[0] != "-" and s[-1] != "-" and s[2:4] != "--" and not s.isdigit()
        ),
        suffix=st.sampled_from(["", ".local", ".test", ".localhost", ".internal", ".home.arpa", ".onion"]),
    )
    def test_allow_internal_accepts_any_hostname_label_on_any_internal_suffix(self, label: str, suffix: str) -> None:
        raw = f"admin@{label}{suffix}"
        assert Email.parse(raw, allow_internal=True).normalized == raw
