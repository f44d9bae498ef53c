"""The email fast path (a dot-atom local part at a domain already validated once) must
give exactly email-validator's result: the same accept or refuse, the same normalised
address, for every input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usermgr.domain import values
from usermgr.domain.values import Email, _validated
from usermgr.errors import InvalidInput

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_!#$%&'*+-/=?^`{|}~"
DOMAINS = [
    "example.com", "Example.COM", "EXAMPLE.com.", "sub.example.co.uk", "münchen.de", "xn--mnchen-3ya.de",
    "MÜNCHEN.DE", "straße.de", "corp.local", "host.test", "intranet", "10.0.0.1", "[10.0.0.1]", "a" * 63 + ".com",
    "a" * 64 + ".com", ("abcdefghij." * 23) + "com", "-bad.com", "bad-.com", "ex ample.com", "example..com", "",
    "xn--zz.com", "example.123", "ex_ample.com", "localhost", "example.com\n", "ſ.com", "ﬀ.org",
]


def outcome(raw: str, *, allow_internal: bool, full: bool) -> str:
    try:
        if full:
            return "ok " + _validated(raw, allow_internal).normalized
        return "ok " + Email.parse(raw, allow_internal=allow_internal).normalized
    except InvalidInput as e:
        return "refused " + str(e)


local_parts = st.one_of(
    st.text(alphabet=ATEXT + ".", min_size=0, max_size=70),
    st.sampled_from(["Postmaster", "ABUSE", "info", "Ada.Lovelace", "a..b", ".a", "a.", "x" * 64, "x" * 65]),
    st.text(max_size=10),
)
domains = st.one_of(st.sampled_from(DOMAINS), st.text(alphabet="abcxyz-.0123ÄÖ", max_size=20))


@settings(max_examples=1500)
@given(local=local_parts, domain=domains, allow_internal=st.booleans(), extra_at=st.booleans())
def test_the_fast_path_gives_exactly_email_validators_result(local: str, domain: str, allow_internal: bool, extra_at: bool) -> None:
    raw = f"{local}@{'x@' if extra_at else ''}{domain}"
    # The first parse may teach the cache the domain; the second surely uses it.
    first = outcome(raw, allow_internal=allow_internal, full=False)
    again = outcome(raw, allow_internal=allow_internal, full=False)
    assert first == again == outcome(raw, allow_internal=allow_internal, full=True)


@pytest.mark.parametrize(
    "raw",
    ["ada@example.com", "Ada.Lovelace+tag@Sub.Example.COM", "x@xn--mnchen-3ya.de", "o'brien@example.ie"],
)
def test_common_addresses_are_served_by_the_fast_path_once_their_domain_is_known(raw: str) -> None:
    _validated("someone@" + raw.partition("@")[2], False)  # warm, as an earlier row would
    Email.parse("first@" + raw.partition("@")[2])
    assert values._fast_normalized(raw, False) == _validated(raw, False).normalized


@given(st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], max_size=210))
def test_the_ascii_name_fast_path_accepts_exactly_what_the_full_check_accepts(raw: str) -> None:
    try:
        expected = values.check_name(raw)
    except InvalidInput:
        with pytest.raises(InvalidInput):
            values.parse_name(raw)
    else:
        assert values.parse_name(raw) == expected == raw
