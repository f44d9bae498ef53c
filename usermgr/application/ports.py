"""Ports: what the application needs from the outside world."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol

from usermgr.application.queries import (
    Credentials,
    EventView,
    ListUsers,
    Page,
    StreamUsers,
    UserView,
)
from usermgr.domain.events import Event
from usermgr.domain.model import User

Clock = Callable[[], datetime]


class UserRepository(abc.ABC):
    """Users by id or email key; remembers what it handed out so events can be collected."""

    def __init__(self) -> None:
        self.seen: list[User] = []

    def add(self, user: User) -> None:
        self._add(user)
        self.seen.append(user)

    def add_all(self, users: list[User]) -> None:
        """Add many new users at once (an import)."""
        self._add_all(users)
        self.seen.extend(users)

    def get(self, user_id: str) -> User | None:
        return self._remember(self._get(user_id))

    def get_by_email_key(self, key: str) -> User | None:
        return self._remember(self._get_by_email_key(key))

    def _remember(self, user: User | None) -> User | None:
        if user is not None and user not in self.seen:
            self.seen.append(user)
        return user

    @abc.abstractmethod
    def _add(self, user: User) -> None: ...

    @abc.abstractmethod
    def _add_all(self, users: list[User]) -> None: ...

    @abc.abstractmethod
    def _get(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def existing(self, keys: list[str], ids: list[str]) -> tuple[set[str], dict[str, str]]:
        """Which of these email keys are taken, and the email key of each of these ids that is."""

    @abc.abstractmethod
    def _get_by_email_key(self, key: str) -> User | None: ...

    @abc.abstractmethod
    def remove(self, user: User) -> None: ...

    @abc.abstractmethod
    def replace_password_hash(self, user_id: str, old: str, new: str) -> None:
        """Swap a hash in place (a re-hash: no event, no updated_at) unless it changed meanwhile."""


class UnitOfWork(abc.ABC):
    """One transaction: work is rolled back unless committed."""

    users: UserRepository

    def __init__(self) -> None:
        self._committed_events: list[Event] = []

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def commit(self) -> None:
        events = [event for user in self.users.seen for event in user.events]
        self._commit(events)
        for user in self.users.seen:
            user.events.clear()
        self._committed_events.extend(events)

    def collect_new_events(self) -> list[Event]:
        """Events of committed work, each handed out once."""
        collected, self._committed_events = self._committed_events, []
        return collected

    @abc.abstractmethod
    def _commit(self, events: list[Event]) -> None:
        """Make the work durable, with the events it recorded, in one transaction."""

    @abc.abstractmethod
    def rollback(self) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password: str, password_hash: str | None) -> bool:
        """True on a match; with no hash, spends the same work and returns False."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...

    def hash_many(
        self, passwords: list[str], progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """Hash in parallel, in order; `progress(done, total)` after each."""
        ...


class UserViews(Protocol):
    """The read model: public user data straight from storage."""

    def get(self, ref: str) -> UserView | None: ...

    def list(self, query: ListUsers) -> Page: ...

    def iter_all(self, query: StreamUsers) -> Iterator[UserView]: ...

    def export(self, include_hashes: bool) -> Iterator[UserView]: ...

    def credentials(self, ref: str) -> Credentials | None: ...


class EventViews(Protocol):
    """The read side of the audit log."""

    def list(self, *, user: str | None, type: str | None, since: datetime | None, limit: int) -> list[EventView]:
        """The newest `limit` matching events, oldest first."""
        ...
