"""Queries and their results. The read side never loads the domain model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_PER_PAGE = 1000

UserView = dict[str, Any]
"""A user's public fields: id, email, name, role, is_active, created_at, updated_at."""


@dataclass(frozen=True, kw_only=True)
class GetUser:
    ref: str


@dataclass(frozen=True, kw_only=True)
class ListUsers:
    search: str | None = None
    active: bool | None = None
    role: str | None = None
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True, kw_only=True)
class StreamUsers:
    """Every user matching the filters, newest first, one at a time."""

    search: str | None = None
    active: bool | None = None
    role: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExportUsers:
    """Every user, oldest first, one at a time; with their hashes only if asked."""

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
            "items": self.items,
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


EventView = dict[str, Any]
"""An audit-log entry: id, type, user_id, occurred_at, actor, data."""


@dataclass(frozen=True)
class Credentials:
    user_id: str
    password_hash: str | None
    is_active: bool
