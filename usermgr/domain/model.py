"""The User entity: state changes go through its methods, which record events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from usermgr.domain import events
from usermgr.domain.values import Email, Role, new_id


@dataclass(eq=False)
class User:
    id: str
    email: Email
    name: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime | None = None
    password_hash: str | None = field(default=None, repr=False)
    events: list[events.Event] = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls,
        *,
        email: Email,
        name: str,
        role: Role,
        is_active: bool,
        password_hash: str | None,
        now: datetime,
        id: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> User:
        """A new user; an import may keep the id and times it had elsewhere."""
        user = cls(
            id=id or new_id(),
            email=email,
            name=name,
            role=role,
            is_active=is_active,
            created_at=created_at or now,
            updated_at=updated_at,
            password_hash=password_hash,
        )
        user._record(
            events.UserCreated,
            now,
            name=name,
            role=role.value,
            is_active=is_active,
        )
        return user

    def _record(self, event_type: type[events.Event], now: datetime, **data: object) -> None:
        self.events.append(
            event_type(user_id=self.id, email=str(self.email), occurred_at=now, **data)
        )

    def _touch(self, now: datetime) -> None:
        self.updated_at = now

    def activate(self, now: datetime) -> None:
        if not self.is_active:
            self.is_active = True
            self._touch(now)
            self._record(events.UserActivated, now)

    def deactivate(self, now: datetime) -> None:
        if self.is_active:
            self.is_active = False
            self._touch(now)
            self._record(events.UserDeactivated, now)

    def change_role(self, role: Role, now: datetime) -> None:
        if role != self.role:
            before, self.role = self.role, role
            self._touch(now)
            self._record(events.UserRoleChanged, now, before=before.value, after=role.value)

    def update(self, *, now: datetime, email: Email | None = None, name: str | None = None) -> None:
        """Rename and/or change the email; one UserUpdated event for what really changed."""
        changes: dict[str, list[str]] = {}
        if email is not None and email.normalized != self.email.normalized:
            changes["email"] = [self.email.normalized, email.normalized]
            self.email = email
        if name is not None and name != self.name:
            changes["name"] = [self.name, name]
            self.name = name
        if changes:
            self._touch(now)
            self._record(events.UserUpdated, now, changes=changes)

    def set_password_hash(self, password_hash: str | None, now: datetime) -> None:
        self.password_hash = password_hash
        self._touch(now)
        self._record(events.UserPasswordChanged, now)

    def delete(self, now: datetime) -> None:
        self._record(events.UserDeleted, now)
