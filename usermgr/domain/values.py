"""Value objects: Email, user names, roles and the password policy. No I/O."""

from __future__ import annotations

import enum
import functools
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from usermgr.errors import InvalidField, InvalidInput

T = TypeVar("T")

MAX_NAME_LENGTH = 200
BCRYPT_MAX_BYTES = 72

# Characters that reorder or hide text when a name is printed in a terminal.
_BIDI_FORMAT = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


class Role(str, enum.Enum):
    USER = "user"
    ADMIN = "admin"
    MODERATOR = "moderator"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise InvalidInput(f"invalid role {value!r}: choose one of {choices}") from None


@dataclass(frozen=True)
class Email:
    """A validated, normalised address; `key` is its case-insensitive identity."""

    normalized: str

    @classmethod
    def parse(cls, raw: str, *, allow_internal: bool = False) -> Email:
        """`allow_internal` also accepts special-use and internal domains (corp.local,
        host.test) and a single label (admin@intranet), for a company's own mail."""
        normalized = _fast_normalized(raw, allow_internal)
        if normalized is not None:
            return cls(normalized)
        return cls(_validated(raw, allow_internal).normalized)

    @functools.cached_property
    def key(self) -> str:
        return email_key(self.normalized)

    @property
    def local_part(self) -> str:
        return self.normalized.rpartition("@")[0]

    def __str__(self) -> str:
        return self.normalized


@functools.cache
def _email_validator() -> tuple[Any, type[Exception]]:
    # email_validator costs ~50 ms to import: only the paths that parse an email pay it.
    from email_validator import EmailNotValidError, validate_email

    return validate_email, EmailNotValidError


def _validated(raw: str, allow_internal: bool) -> Any:
    """email-validator's full check: its result, or InvalidInput with its reason."""
    validate_email, not_valid = _email_validator()
    try:
        if allow_internal:
            return _validate_internal(raw, validate_email)
        return validate_email(raw, check_deliverability=False, strict=True)
    except not_valid as e:
        raise InvalidInput(f"invalid email {raw!r}: {e}") from None


# The fast path: an ASCII dot-atom local part (RFC 5322, as email-validator reads it)
# at a domain email-validator already accepted in this process. Most users of one
# deployment share a few domains, so a bulk import validates each domain once; the
# result is email-validator's own, which a differential property test checks.
_DOT_ATOM = re.compile(r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+)*\Z")
LOCAL_PART_MAX = 64
ADDRESS_MAX_BYTES = 254
_DOMAINS: dict[tuple[str, bool], tuple[str, str] | None] = {}
_DOMAINS_MAX = 10_000


def _fast_normalized(raw: str, allow_internal: bool) -> str | None:
    local, at, domain = raw.partition("@")
    if not at or len(local) > LOCAL_PART_MAX or not _DOT_ATOM.match(local) or _mailbox_names(local):
        return None
    known = _DOMAINS.get((domain, allow_internal), False)
    if known is False:
        known = _learn_domain(domain, allow_internal)
    if known is None:
        return None
    unicode_domain, ascii_domain = known
    normalized = f"{local}@{unicode_domain}"
    longest = max(len(raw.encode("utf-8")), len(normalized.encode("utf-8")), len(local) + 1 + len(ascii_domain))
    return normalized if longest <= ADDRESS_MAX_BYTES else None


def _learn_domain(domain: str, allow_internal: bool) -> tuple[str, str] | None:
    try:
        result = _validated("a@" + domain, allow_internal)
    except InvalidInput:
        known = None  # the full check of the real address says why
    else:
        known = (result.domain, result.ascii_domain)
    if len(_DOMAINS) < _DOMAINS_MAX:
        _DOMAINS[(domain, allow_internal)] = known
    return known


def _mailbox_names(local: str) -> bool:
    """RFC 2142's role mailboxes, which email-validator lower-cases: left to it."""
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

    return local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES


def _validate_internal(raw: str, validate_email: Any) -> Any:
    import email_validator

    # email-validator has no argument that lifts its special-use list (.local, .test,
    # .localhost, .onion, .invalid, .arpa): its documented way is to edit the
    # module-level SPECIAL_USE_DOMAIN_NAMES, which it reads on every call. Empty it
    # for this one call only and put it back whatever happens, so every other parse
    # keeps the library's rules (usermgr parses emails on one thread only, so no other
    # call can run while the list is empty). globally_deliverable=False is the
    # library's own switch for a domain without a dot (a single label).
    saved = email_validator.SPECIAL_USE_DOMAIN_NAMES
    email_validator.SPECIAL_USE_DOMAIN_NAMES = []
    try:
        result = validate_email(
            raw, check_deliverability=False, strict=True, globally_deliverable=False
        )
    finally:
        email_validator.SPECIAL_USE_DOMAIN_NAMES = saved
    # globally_deliverable=False also drops the check that the last label holds a
    # letter: keep refusing "admin@10.0.0.1", an IP address that is no domain name.
    if result.ascii_domain.rpartition(".")[2].isdigit():
        raise InvalidInput(
            f"invalid email {raw!r}: the part after the @-sign is an IP address, not a domain name"
        )
    return result


class _RandomIds:
    """Version 4 UUIDs as text, from os.urandom read a few KiB at a time: an import
    makes two per row, and one system call per id was a tenth of its time."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        if self._at + 16 > len(self._pool):
            self._pool, self._at = os.urandom(4096), 0
        raw = bytearray(self._pool[self._at : self._at + 16])
        self._at += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_id = _RandomIds()


def text_key(text: str) -> str:
    """Text as compared case-insensitively, Unicode included (a search matches on this)."""
    return unicodedata.normalize("NFC", text.casefold())


def email_key(address: str) -> str:
    """The unique identity of a normalised email: the local part Unicode case-folded,
    the domain as email-validator normalised it (lower case; IDNA 2008 keeps ß and ς,
    which case folding would turn into ss and σ)."""
    local, _, domain = address.rpartition("@")
    return unicodedata.normalize("NFC", f"{local.casefold()}@{domain.lower()}")


# A name must show something: at least one visible character, which here means a
# letter, digit, punctuation mark or symbol (categories L, N, P, S) other than the few
# of those that draw nothing (these blank glyphs: the Hangul fillers, which Unicode
# makes default-ignorable, and the blank Braille pattern). Not visible: spaces (Z),
# controls, format characters such as U+200B and U+FEFF, private-use and unassigned
# code points (C), and combining marks (M), which only decorate the character before
# them. Format characters and marks stay allowed inside a name (ZWJ joins emoji, ZWNJ
# is part of Persian spelling), but a name starts with a visible character and ends
# with one or with a mark (marks end many names: NFD accents, Indic vowel signs, the
# emoji variation selector). A leading mark would attach to whatever is printed
# before the name.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _is_visible(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNPS" and ch not in _BLANK_GLYPHS


def parse_name(raw: str) -> str:
    if raw.isascii() and raw.isprintable() and 0 < len(raw) <= MAX_NAME_LENGTH and raw[0] != " " != raw[-1]:
        return raw  # printable ASCII: every rule of check_name holds, each non-space character is visible
    return check_name(raw)


def check_name(raw: str) -> str:
    """Every rule a name must follow, character by character."""
    if not raw:
        raise InvalidInput("invalid name: it is empty")
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidInput(f"invalid name: longer than {MAX_NAME_LENGTH} characters")
    if raw != raw.strip():
        raise InvalidInput("invalid name: leading or trailing space")
    for ch in raw:
        category = unicodedata.category(ch)
        if ch in _BIDI_FORMAT or category in ("Cc", "Zl", "Zp"):
            raise InvalidInput(
                f"invalid name: control or bidi character U+{ord(ch):04X} is not allowed"
            )
        if category == "Cs":
            # A JSON \ud800 escape makes one; it can be neither stored nor printed.
            raise InvalidInput(f"invalid name: U+{ord(ch):04X} is a lone surrogate, not a character")
    if not any(_is_visible(ch) for ch in raw):
        raise InvalidInput("invalid name: it has no visible character")
    first, last = raw[0], raw[-1]
    if unicodedata.category(first).startswith("M"):
        raise InvalidInput(f"invalid name: starts with the combining mark U+{ord(first):04X}")
    if not _is_visible(first):
        raise InvalidInput(f"invalid name: starts with U+{ord(first):04X}, which is not a visible character")
    if not (_is_visible(last) or unicodedata.category(last).startswith("M")):
        raise InvalidInput(f"invalid name: ends with U+{ord(last):04X}, which is not a visible character")
    return raw


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12

    def check(self, password: str, email: Email) -> None:
        self.check_length(password)
        folded = password.casefold()
        if folded in (email.normalized.casefold(), email.local_part.casefold()):
            raise InvalidInput("password must not be the email or its local part")

    def check_length(self, password: str) -> None:
        """The part of the policy that needs no user, so a prompt can ask again at once."""
        if len(password) < self.min_length:
            raise InvalidInput(f"password too short: use at least {self.min_length} characters")
        try:
            size = len(password.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate, from a JSON \ud800 escape
            raise InvalidInput("password is not valid text: it holds a lone surrogate") from None
        if size > BCRYPT_MAX_BYTES:
            raise InvalidInput(
                f"password too long: at most {BCRYPT_MAX_BYTES} bytes in UTF-8 (bcrypt's limit)"
            )
        if "\x00" in password:
            # bcrypt stops at a NUL byte: "a\0b" would verify as "a", so refuse it.
            raise InvalidInput("password must not contain a NUL character")


@functools.lru_cache(maxsize=256)  # an import stamps a hundred thousand rows with one moment
def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a fixed width, so stored text sorts in time order."""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.astimezone(timezone.utc)


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise), or a duration
    back from `now` such as 30m, 12h or 7d."""
    unit = _DURATION_UNITS.get(text[-1:])
    if unit is not None and text[:-1].isascii() and text[:-1].isdigit():
        try:
            return now - timedelta(seconds=int(text[:-1]) * unit)
        except (OverflowError, ValueError):  # ValueError: more digits than int() takes
            raise InvalidField("since", f"{text!r} is too far back") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(
            "since", f"{text!r}: use an ISO 8601 date or time, or a duration like 30m, 12h, 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Policy:
    """The input rules this deployment configured: emails, and passwords."""

    min_password_length: int = 12
    allow_internal_domains: bool = False

    def email(self, raw: str) -> Email:
        return Email.parse(raw, allow_internal=self.allow_internal_domains)

    def check_password(self, password: str, email: Email) -> None:
        PasswordPolicy(self.min_password_length).check(password, email)


def find_user(
    ref: str,
    by_id: Callable[[str], T | None],
    by_email_key: Callable[[str], T | None],
    policy: Policy,
    *,
    exact: bool = False,
) -> T | None:
    """The one parser of a USER reference: an email (any case) or an id.

    Most references give an address as stored, so its folded form is tried first and
    only a miss pays for email_validator to normalise it; `exact` always normalises
    (a login check, so that an unknown user costs what a known one does)."""
    if "@" not in ref:
        return by_id(ref.lower())
    if exact:
        return by_email_key(policy.email(ref).key)
    fast = email_key(ref)
    found = by_email_key(fast)
    if found is not None:
        return found
    key = policy.email(ref).key
    return by_email_key(key) if key != fast else None
