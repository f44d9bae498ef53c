"""Value objects: Email, names, roles, the password policy and timestamps."""

from __future__ import annotations

import socket
import string
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usermgr.domain.values import (
    BCRYPT_MAX_BYTES,
    MAX_NAME_LENGTH,
    Email,
    PasswordPolicy,
    Role,
    email_key,
    format_timestamp,
    parse_name,
    parse_timestamp,
)
from usermgr.errors import InvalidInput

BIDI_FORMAT = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


# --- Email -----------------------------------------------------------------


@pytest.fixture
def dns_attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every name lookup or connection fail, and record that one was tried."""
    attempts: list[str] = []

    def refuse(name: str):  # type: ignore[no-untyped-def]
        def refused(*args: object, **kwargs: object) -> object:
            attempts.append(name)
            raise OSError(f"network use in a unit test: {name}")

        return refused

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, refuse(name))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    try:
        import dns.resolver
    except ImportError:  # pragma: no cover - dnspython comes with email-validator
        pass
    else:
        monkeypatch.setattr(dns.resolver.Resolver, "resolve", refuse("dns.resolve"))
        monkeypatch.setattr(dns.resolver, "resolve", refuse("dns.resolve"))
    return attempts


class TestEmailParse:
    def test_a_plain_address_parses_to_itself(self) -> None:
        email = Email.parse("alice@example.com")

        assert email.normalized == "alice@example.com"
        assert str(email) == "alice@example.com"
        assert email.local_part == "alice"

    def test_the_domain_is_lowercased_but_the_local_part_keeps_its_case(self) -> None:
        assert Email.parse("Alice@EXAMPLE.COM").normalized == "Alice@example.com"

    def test_addresses_differing_only_in_case_share_a_key(self) -> None:
        assert Email.parse("Alice@EXAMPLE.COM").key == Email.parse("alice@example.com").key

    def test_a_unicode_domain_and_its_punycode_form_share_a_key(self) -> None:
        unicode_form = Email.parse("x@münchen.de")
        ascii_form = Email.parse("x@xn--mnchen-3ya.de")

        assert unicode_form.key == ascii_form.key
        assert unicode_form.normalized == ascii_form.normalized == "x@münchen.de"

    def test_a_unicode_local_part_is_matched_case_insensitively(self) -> None:
        assert Email.parse("Élise@x.com").key == Email.parse("élise@X.COM").key

    def test_composed_and_decomposed_accents_share_a_key(self) -> None:
        composed = Email.parse("\u00e9lise@x.com")
        decomposed = Email.parse("e\u0301lise@x.com")

        assert composed.key == decomposed.key

    def test_different_local_parts_have_different_keys(self) -> None:
        assert Email.parse("alice@example.com").key != Email.parse("alicia@example.com").key

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            # IDNA 2008 keeps ß and ς: these are distinct, registrable domains.
            ("x@straße.de", "x@strasse.de"),
            ("x@xn--strae-oqa.de", "x@strasse.de"),
            ("x@ς.gr", "x@σ.gr"),
        ],
    )
    def test_distinct_idna_domains_have_distinct_keys(self, first: str, second: str) -> None:
        a, b = Email.parse(first), Email.parse(second)
        assert a.normalized != b.normalized  # precondition: really different addresses

        assert a.key != b.key

    @pytest.mark.parametrize(
        "raw",
        [
            " alice@example.com",
            "alice@example.com ",
            " alice@example.com ",
            "alice@example.com\n",
            "\talice@example.com",
        ],
    )
    def test_surrounding_whitespace_is_invalid_not_trimmed(self, raw: str) -> None:
        with pytest.raises(InvalidInput, match="invalid email"):
            Email.parse(raw)

    def test_a_local_part_of_64_characters_is_accepted(self) -> None:
        assert Email.parse("a" * 64 + "@example.com").local_part == "a" * 64

    def test_a_local_part_of_65_characters_is_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="too long"):
            Email.parse("a" * 65 + "@example.com")

    @pytest.mark.parametrize(
        "raw",
        ["", "alice", "@example.com", "alice@", "alice@@example.com", "alice@example", "a b@example.com"],
    )
    def test_malformed_addresses_are_invalid_input(self, raw: str) -> None:
        with pytest.raises(InvalidInput):
            Email.parse(raw)

    def test_the_error_message_quotes_the_input(self) -> None:
        with pytest.raises(InvalidInput) as caught:
            Email.parse("not-an-email")

        assert "'not-an-email'" in str(caught.value)

    def test_an_address_at_a_domain_that_does_not_exist_parses_without_any_lookup(
        self, dns_attempts: list[str]
    ) -> None:
        email = Email.parse("user@no-such-host.usermgr-tests-nonexistent.com")

        assert email.normalized == "user@no-such-host.usermgr-tests-nonexistent.com"
        assert dns_attempts == []

    def test_a_special_use_domain_is_rejected_by_syntax_not_by_a_lookup(
        self, dns_attempts: list[str]
    ) -> None:
        # email-validator refuses RFC 6761 names (.invalid, .test, .local, ...) whatever
        # the deliverability setting; what matters here is that no lookup was tried.
        with pytest.raises(InvalidInput, match="special-use"):
            Email.parse("user@example.invalid")

        assert dns_attempts == []


_LOCAL_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
ascii_local_parts = st.lists(
    st.text(alphabet=_LOCAL_CHARS, min_size=1, max_size=10), min_size=1, max_size=4
).map(".".join).filter(lambda s: len(s) <= 64)
domains = st.sampled_from(["example.com", "Example.ORG", "mail.example.net", "münchen.de", "xn--mnchen-3ya.de"])


class TestEmailProperties:
    @given(local=ascii_local_parts, domain=domains)
    def test_any_ascii_local_part_parses_unchanged_and_parsing_is_idempotent(
        self, local: str, domain: str
    ) -> None:
        email = Email.parse(f"{local}@{domain}")

        assert email.local_part == local
        assert Email.parse(email.normalized) == email

    @given(local=ascii_local_parts, domain=domains)
    def test_the_key_ignores_the_case_of_an_ascii_local_part(self, local: str, domain: str) -> None:
        keys = {
            Email.parse(f"{variant}@{domain}").key
            for variant in (local, local.lower(), local.upper(), local.swapcase())
        }

        assert len(keys) == 1

    @given(local=ascii_local_parts, domain=domains)
    def test_the_key_is_idempotent(self, local: str, domain: str) -> None:
        key = Email.parse(f"{local}@{domain}").key

        assert email_key(key) == key
        assert Email.parse(key).key == key

    @given(st.text(max_size=30))
    def test_email_key_is_idempotent_on_any_text(self, text: str) -> None:
        key = email_key(text)

        assert email_key(key) == key

    @given(local=ascii_local_parts, domain=domains, pad=st.sampled_from([" ", "\n", "\t", "\r\n"]))
    def test_any_address_with_surrounding_whitespace_is_rejected(
        self, local: str, domain: str, pad: str
    ) -> None:
        for raw in (pad + f"{local}@{domain}", f"{local}@{domain}" + pad):
            with pytest.raises(InvalidInput):
                Email.parse(raw)


# --- Names -----------------------------------------------------------------


class TestParseName:
    @pytest.mark.parametrize(
        "name",
        ["A", "Alice Smith", "Élise Ñúñez", "李小龙", "O'Brien-Smith", "a" * MAX_NAME_LENGTH, "🙂" * MAX_NAME_LENGTH],
    )
    def test_a_valid_name_is_returned_unchanged(self, name: str) -> None:
        assert parse_name(name) == name

    @pytest.mark.parametrize("name", ["[bold]x[/]", "[/]", "[link=https://evil.example]x[/link]", "<b>x</b>", "$(rm -rf /)"])
    def test_markup_is_accepted_as_typed(self, name: str) -> None:
        assert parse_name(name) == name

    def test_an_empty_name_is_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="empty"):
            parse_name("")

    def test_a_name_of_201_characters_is_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="200"):
            parse_name("a" * (MAX_NAME_LENGTH + 1))

    @pytest.mark.parametrize("name", [" Alice", "Alice ", "Alice\u00a0", "\u3000Alice", "Alice\n"])
    def test_leading_or_trailing_space_is_rejected(self, name: str) -> None:
        with pytest.raises(InvalidInput):
            parse_name(name)

    @pytest.mark.parametrize("ch", ["\x00", "\x07", "\x1b", "\t", "\n", "\r", "\x7f", "\x85", "\u2028", "\u2029"])
    def test_a_control_character_inside_a_name_is_rejected(self, ch: str) -> None:
        with pytest.raises(InvalidInput, match=f"U\\+{ord(ch):04X}"):
            parse_name(f"Al{ch}ice")

    @pytest.mark.parametrize("ch", list(BIDI_FORMAT))
    def test_a_bidi_format_character_is_rejected(self, ch: str) -> None:
        with pytest.raises(InvalidInput, match=f"U\\+{ord(ch):04X}"):
            parse_name(f"admin{ch}txt.exe")

    def test_the_right_to_left_override_and_isolate_are_rejected(self) -> None:
        for name in ("Alice\u202eecilA", "Alice\u2066x\u2069"):
            with pytest.raises(InvalidInput):
                parse_name(name)

    def test_inner_spaces_are_kept(self) -> None:
        assert parse_name("Mary  Ann   Smith") == "Mary  Ann   Smith"


_forbidden = st.one_of(
    st.characters(categories=["Cc"]),
    st.sampled_from(list(BIDI_FORMAT) + ["\u2028", "\u2029"]),
)
# A name starts and ends with a visible character (test_values_validation.py has the
# rules for invisible ones); in between, anything but controls and bidi characters.
_visible = st.characters(categories=["L", "N", "P", "S"], exclude_characters="\u115f\u1160\u3164\uffa0\u2800")
valid_names = st.builds(
    "{}{}{}".format,
    _visible,
    st.text(
        alphabet=st.characters(
            exclude_categories=["Cc", "Cs", "Zl", "Zp"], exclude_characters=BIDI_FORMAT
        ),
        max_size=MAX_NAME_LENGTH - 2,
    ),
    _visible,
)


class TestNameProperties:
    @given(valid_names)
    def test_any_valid_name_round_trips_unchanged(self, name: str) -> None:
        assert parse_name(name) == name

    @given(name=valid_names, bad=_forbidden, where=st.integers(min_value=0))
    def test_any_name_containing_a_control_or_bidi_character_is_rejected(
        self, name: str, bad: str, where: int
    ) -> None:
        at = where % (len(name) + 1)
        with pytest.raises(InvalidInput):
            parse_name(name[:at] + bad + name[at:])

    @given(st.text(min_size=MAX_NAME_LENGTH + 1, max_size=MAX_NAME_LENGTH + 50))
    def test_any_name_longer_than_the_limit_is_rejected(self, name: str) -> None:
        with pytest.raises(InvalidInput):
            parse_name(name)

    @given(name=valid_names, space=st.sampled_from([" ", "\u00a0", "\u2003", "\u3000"]))
    def test_any_name_with_surrounding_space_is_rejected(self, name: str, space: str) -> None:
        for padded in (space + name, name + space):
            with pytest.raises(InvalidInput):
                parse_name(padded)


# --- Roles -----------------------------------------------------------------


class TestRoleParse:
    @pytest.mark.parametrize(
        ("raw", "role"), [("user", Role.USER), ("admin", Role.ADMIN), ("moderator", Role.MODERATOR)]
    )
    def test_each_known_role_parses(self, raw: str, role: Role) -> None:
        assert Role.parse(raw) is role
        assert Role.parse(raw).value == raw

    @pytest.mark.parametrize("raw", ["", "root", "superuser", " admin", "admin ", "users"])
    def test_an_unknown_role_is_invalid_input_listing_the_choices(self, raw: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            Role.parse(raw)

        message = str(caught.value)
        assert repr(raw) in message
        assert all(choice in message for choice in ("user", "admin", "moderator"))

    @given(st.text().filter(lambda s: s not in {"user", "admin", "moderator"}))
    def test_any_other_text_is_rejected(self, raw: str) -> None:
        with pytest.raises(InvalidInput):
            Role.parse(raw)


# --- Password policy -------------------------------------------------------

EMAIL = Email.parse("administrator@example.com")


class TestPasswordPolicy:
    def test_a_password_of_the_minimum_length_is_accepted(self) -> None:
        PasswordPolicy().check("a" * 12, EMAIL)  # does not raise

    def test_a_password_one_character_short_is_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="at least 12"):
            PasswordPolicy().check("a" * 11, EMAIL)

    def test_the_minimum_length_is_configurable(self) -> None:
        policy = PasswordPolicy(min_length=20)

        with pytest.raises(InvalidInput, match="at least 20"):
            policy.check("a" * 19, EMAIL)
        policy.check("a" * 20, EMAIL)

    def test_the_minimum_length_counts_characters_not_bytes(self) -> None:
        with pytest.raises(InvalidInput, match="too short"):
            PasswordPolicy().check("€" * 11, EMAIL)  # 33 bytes, 11 characters
        PasswordPolicy().check("€" * 12, EMAIL)

    def test_exactly_72_bytes_is_accepted(self) -> None:
        PasswordPolicy().check("a" * BCRYPT_MAX_BYTES, EMAIL)
        PasswordPolicy().check("€" * 24, EMAIL)  # 24 × 3 bytes = 72

    def test_73_ascii_bytes_are_rejected(self) -> None:
        with pytest.raises(InvalidInput, match="72 bytes"):
            PasswordPolicy().check("a" * 73, EMAIL)

    def test_25_euro_signs_are_75_bytes_and_rejected_though_only_25_characters(self) -> None:
        password = "€" * 25
        assert len(password) == 25 and len(password.encode()) == 75

        with pytest.raises(InvalidInput, match="72 bytes"):
            PasswordPolicy().check(password, EMAIL)

    @pytest.mark.parametrize(
        "password",
        [
            "administrator@example.com",
            "ADMINISTRATOR@EXAMPLE.COM",
            "Administrator@Example.Com",
            "administrator",
            "ADMINISTRATOR",
            "AdMiNiStRaToR",
        ],
    )
    def test_the_email_or_its_local_part_in_any_case_is_rejected(self, password: str) -> None:
        with pytest.raises(InvalidInput, match="email"):
            PasswordPolicy().check(password, EMAIL)

    def test_a_password_merely_containing_the_local_part_is_accepted(self) -> None:
        PasswordPolicy().check("administrator-2026!", EMAIL)

    def test_a_unicode_email_is_compared_case_insensitively_too(self) -> None:
        email = Email.parse("Élisabeth.Dupont@example.fr")

        with pytest.raises(InvalidInput):
            PasswordPolicy().check("élisabeth.dupont", email)


class TestPasswordPolicyProperties:
    @given(st.text(alphabet=string.printable, min_size=12, max_size=72))
    def test_any_ascii_password_of_12_to_72_characters_is_accepted(self, password: str) -> None:
        PasswordPolicy().check(password, Email.parse("someone@example.com"))

    @given(st.text(min_size=12, max_size=120).filter(lambda p: len(p.encode("utf-8")) > BCRYPT_MAX_BYTES))
    def test_any_password_over_72_utf8_bytes_is_rejected(self, password: str) -> None:
        with pytest.raises(InvalidInput, match="too long"):
            PasswordPolicy().check(password, Email.parse("someone@example.com"))

    @given(st.text(max_size=11))
    def test_any_password_under_the_minimum_is_rejected(self, password: str) -> None:
        with pytest.raises(InvalidInput, match="too short"):
            PasswordPolicy().check(password, Email.parse("someone@example.com"))


# --- Timestamps ------------------------------------------------------------

UTC = timezone.utc
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=30))]
)
moments = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)


class TestTimestamps:
    def test_a_timestamp_is_iso_8601_utc_with_microseconds(self) -> None:
        moment = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)

        assert format_timestamp(moment) == "2026-03-04T05:06:07.000089Z"

    def test_another_zone_is_converted_to_utc(self) -> None:
        moment = datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))

        assert format_timestamp(moment) == "2025-12-31T23:30:00.000000Z"

    def test_parsing_gives_an_aware_utc_datetime(self) -> None:
        parsed = parse_timestamp("2026-01-01T02:00:00+02:00")

        assert parsed == datetime(2026, 1, 1, tzinfo=UTC)
        assert parsed.utcoffset() == timedelta(0)

    def test_a_timestamp_without_a_zone_is_refused(self) -> None:
        with pytest.raises(ValueError, match="time zone"):
            parse_timestamp("2026-01-01T00:00:00")

    def test_a_stored_timestamp_parses_back(self) -> None:
        assert parse_timestamp("2026-03-04T05:06:07.000089Z") == datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    @pytest.mark.parametrize("year", [1, 5, 999])
    def test_a_year_before_1000_is_zero_padded_and_round_trips(self, year: int) -> None:
        moment = datetime(year, 6, 1, tzinfo=UTC)

        text = format_timestamp(moment)

        assert text == f"{year:04d}-06-01T00:00:00.000000Z"
        assert parse_timestamp(text) == moment

    @given(moments)
    def test_any_timestamp_round_trips(self, moment: datetime) -> None:
        assert parse_timestamp(format_timestamp(moment)) == moment

    @given(moments)
    def test_every_timestamp_has_the_same_width(self, moment: datetime) -> None:
        assert len(format_timestamp(moment)) == len("2026-01-01T00:00:00.000000Z")

    @given(moments, moments)
    def test_timestamps_sort_lexicographically_in_time_order(self, a: datetime, b: datetime) -> None:
        fa, fb = format_timestamp(a), format_timestamp(b)

        assert (fa < fb) == (a < b)
        assert (fa == fb) == (a == b)
