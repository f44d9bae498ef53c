"""Domain events: what happened to a user, in the past tense. Never a secret."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Event:
    user_id: str
    email: str
    occurred_at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    type: ClassVar[str] = "Event"

    def data(self) -> dict[str, Any]:
        """The event's payload: its fields but the envelope ones."""
        envelope = ("id", "user_id", "occurred_at")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in envelope}


@dataclass(frozen=True, kw_only=True)
class UserCreated(Event):
    name: str
    role: str
    is_active: bool
    type: ClassVar[str] = "UserCreated"


@dataclass(frozen=True, kw_only=True)
class UserUpdated(Event):
    changes: dict[str, list[str]]  # field -> [before, after]
    type: ClassVar[str] = "UserUpdated"


@dataclass(frozen=True, kw_only=True)
class UserActivated(Event):
    type: ClassVar[str] = "UserActivated"


@dataclass(frozen=True, kw_only=True)
class UserDeactivated(Event):
    type: ClassVar[str] = "UserDeactivated"


@dataclass(frozen=True, kw_only=True)
class UserRoleChanged(Event):
    before: str
    after: str
    type: ClassVar[str] = "UserRoleChanged"


@dataclass(frozen=True, kw_only=True)
class UserPasswordChanged(Event):
    type: ClassVar[str] = "UserPasswordChanged"


@dataclass(frozen=True, kw_only=True)
class UserDeleted(Event):
    type: ClassVar[str] = "UserDeleted"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        UserCreated,
        UserUpdated,
        UserActivated,
        UserDeactivated,
        UserRoleChanged,
        UserPasswordChanged,
        UserDeleted,
    )
}
