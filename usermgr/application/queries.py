"""Queries and the views they return. The read side never loads the domain model."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

MAX_PER_PAGE = 1000


@dataclass(frozen=True, slots=True)
class UserView:
    """A user's public fields: what every output shows, in this order."""

    id: str
    email: str
    name: str
    role: str
    is_active: bool
    created_at: str
    updated_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in USER_FIELDS}


USER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(UserView))
"""The public fields of a user, in output order: the CSV header and every JSON object."""


@dataclass(frozen=True, slots=True)
class ExportedUser(UserView):
    """A user as `export --include-hashes` writes it: the only view with a hash."""

    password_hash: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**UserView.as_dict(self), "password_hash": self.password_hash}


EXPORT_FIELDS: tuple[str, ...] = (*USER_FIELDS, "password_hash")


@dataclass(frozen=True, slots=True)
class EventView:
    """An audit-log entry, as `events` prints it and a hook receives it."""

    id: str
    type: str
    user_id: str
    occurred_at: str
    actor: str
    data: dict[str, Any]
    hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "user_id": self.user_id,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "data": self.data,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: str
    password_hash: str | None
    is_active: bool


@dataclass(frozen=True, kw_only=True)
class UserFilter:
    """Which users a listing shows; `search` is matched case-insensitively in name and email."""

    search: str | None = None
    active: bool | None = None
    role: str | None = None


@dataclass(frozen=True, kw_only=True)
class GetUser:
    ref: str


@dataclass(frozen=True, kw_only=True)
class ListUsers:
    filter: UserFilter = UserFilter()
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True, kw_only=True)
class StreamUsers:
    """Every user matching the filter, newest first, one at a time."""

    filter: UserFilter = UserFilter()


@dataclass(frozen=True, kw_only=True)
class ExportUsers:
    """Every user, oldest first, one at a time; with their hashes only if asked."""

    include_hashes: bool = False


@dataclass(frozen=True, kw_only=True)
class ExportText:
    """Every user, oldest first, as lines of jsonl or csv (no header) that the database
    builds itself: the same values as rendering ExportUsers, at the database's speed."""

    format: str  # "jsonl" or "csv"
    include_hashes: bool = False


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[UserView]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page)) if self.per_page else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": [item.as_dict() for item in self.items],
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
        }


@dataclass(frozen=True, kw_only=True)
class ListEvents:
    user: str | None = None
    type: str | None = None
    since: str | None = None
    limit: int = 100


@dataclass(frozen=True, kw_only=True)
class VerifyEvents:
    """Recompute the audit chain; `head` is a hash an earlier verify printed."""

    head: str | None = None


@dataclass(frozen=True, kw_only=True)
class ListHooks:
    """The configured hooks and the deliveries waiting for a retry."""


@dataclass(frozen=True, kw_only=True)
class CheckStorage:
    """Integrity, schema version and the audit chain."""


@dataclass(frozen=True, kw_only=True)
class HashHealth:
    """How many stored password hashes are weak, malformed or missing."""
