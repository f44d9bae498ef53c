"""Value objects: Email, user names, roles and the password policy. No I/O."""

from __future__ import annotations

import enum
import functools
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from usermgr.errors import InvalidInput

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
    def parse(cls, raw: str) -> Email:
        validate_email, not_valid = _email_validator()
        try:
            result = validate_email(raw, check_deliverability=False, strict=True)
        except not_valid as e:
            raise InvalidInput(f"invalid email {raw!r}: {e}") from None
        return cls(result.normalized)

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


def text_key(text: str) -> str:
    """Text as compared case-insensitively, Unicode included (a search matches on this)."""
    return unicodedata.normalize("NFC", text.casefold())


def email_key(address: str) -> str:
    """The unique identity of a normalised email: the local part Unicode case-folded,
    the domain as email-validator normalised it (lower case; IDNA 2008 keeps ß and ς,
    which case folding would turn into ss and σ)."""
    local, _, domain = address.rpartition("@")
    return unicodedata.normalize("NFC", f"{local.casefold()}@{domain.lower()}")


def parse_name(raw: str) -> str:
    if not raw:
        raise InvalidInput("invalid name: it is empty")
    if len(raw) > MAX_NAME_LENGTH:
        raise InvalidInput(f"invalid name: longer than {MAX_NAME_LENGTH} characters")
    if raw != raw.strip():
        raise InvalidInput("invalid name: leading or trailing space")
    for ch in raw:
        if ch in _BIDI_FORMAT or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise InvalidInput(
                f"invalid name: control or bidi character U+{ord(ch):04X} is not allowed"
            )
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
        if len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
            raise InvalidInput(
                f"password too long: at most {BCRYPT_MAX_BYTES} bytes in UTF-8 (bcrypt's limit)"
            )


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
            raise InvalidInput(f"invalid --since {text!r}: too far back") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"invalid --since {text!r}: use an ISO 8601 date or time, or a duration like 30m, 12h, 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
