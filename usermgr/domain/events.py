"""Domain events: what happened to a user, in the past tense. Never a secret."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from usermgr.domain.values import new_id

ENVELOPE = ("id", "user_id", "occurred_at")


@dataclass(frozen=True, kw_only=True)
class Event:
    user_id: str
    email: str
    occurred_at: datetime
    id: str = field(default_factory=new_id)

    type: ClassVar[str] = "Event"

    def data(self) -> dict[str, Any]:
        """The event's payload: its fields but the envelope ones."""
        return {name: getattr(self, name) for name in _payload(type(self))}


@functools.cache
def _payload(cls: type[Event]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in ENVELOPE)


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
