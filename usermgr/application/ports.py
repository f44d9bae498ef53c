"""Ports: what the application needs from the outside world."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from usermgr.application.queries import (
    Credentials,
    EventView,
    ExportedUser,
    Page,
    UserFilter,
    UserView,
)

if TYPE_CHECKING:
    from usermgr.domain.events import Event
    from usermgr.domain.model import User

Clock = Callable[[], datetime]
Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """What a plan compares a desired row with: a user as stored, without loading the entity."""

    id: str
    email: str
    email_key: str
    name: str
    role: str
    is_active: bool
    password_hash: str | None


class UserRepository(abc.ABC):
    """Users by id or email key; remembers what it handed out so events can be collected."""

    def __init__(self) -> None:
        self._seen: dict[str, User] = {}

    @property
    def seen(self) -> list[User]:
        """Every user this repository handed out or took in, in that order."""
        return list(self._seen.values())

    def add(self, user: User) -> None:
        self._add(user)
        self._seen[user.id] = user

    def add_all(self, users: list[User]) -> None:
        """Add many new users at once (an import)."""
        self._add_all(users)
        self._seen.update((user.id, user) for user in users)

    def get(self, user_id: str) -> User | None:
        return self._remember(self._get(user_id))

    def get_by_email_key(self, key: str) -> User | None:
        return self._remember(self._get_by_email_key(key))

    def _remember(self, user: User | None) -> User | None:
        if user is None:
            return None
        return self._seen.setdefault(user.id, user)

    def forget(self) -> None:
        """Drop the users handed out so far: they were written."""
        self._seen = {}

    @abc.abstractmethod
    def _add(self, user: User) -> None: ...

    @abc.abstractmethod
    def _add_all(self, users: list[User]) -> None: ...

    @abc.abstractmethod
    def _get(self, user_id: str) -> User | None: ...

    @abc.abstractmethod
    def _get_by_email_key(self, key: str) -> User | None: ...

    @abc.abstractmethod
    def existing(self, keys: list[str], ids: list[str]) -> tuple[set[str], dict[str, str]]:
        """Which of these email keys are taken, and the email key of each of these ids that is."""

    @abc.abstractmethod
    def current(self) -> list[CurrentUser]:
        """Every user as stored now, read in one pass (an apply plans against these)."""

    @abc.abstractmethod
    def remove(self, user: User) -> None: ...

    @abc.abstractmethod
    def replace_password_hash(self, user_id: str, old: str, new: str) -> None:
        """Swap a hash in place (a re-hash: no event, no updated_at) unless it changed meanwhile."""


class UnitOfWork(abc.ABC):
    """One transaction under the write lock: work is rolled back unless committed."""

    users: UserRepository
    keep_events: bool = True
    """Whether committed events are kept for collect_new_events; the bus turns it off
    when nobody listens, so an import of a million users keeps none in memory."""

    def __init__(self) -> None:
        self._committed_events: list[Event] = []
        self._written: list[Event] = []
        self._writing = 0
        self.committed_changes = 0  # events committed so far, kept or not

    def __enter__(self) -> UnitOfWork:
        self._written, self._writing = [], 0
        return self

    def __exit__(self, *exc: object) -> None:
        self._written, self._writing = [], 0
        self.rollback()

    def flush(self) -> None:
        """Write what the work changed so far, with its events, still inside the
        transaction, and forget the users handed out (an import does it per batch)."""
        seen = self.users.seen
        events = [event for user in seen for event in user.events]
        self._write(events)
        for user in seen:
            user.events.clear()
        if self.keep_events:
            self._written.extend(events)
        self._writing += len(events)
        self.users.forget()

    def commit(self) -> None:
        self.flush()
        self._commit()
        self._committed_events.extend(self._written)
        self.committed_changes += self._writing
        self._written, self._writing = [], 0

    def collect_new_events(self) -> list[Event]:
        """Events of committed work, each handed out once."""
        collected, self._committed_events = self._committed_events, []
        return collected

    @abc.abstractmethod
    def _write(self, events: list[Event]) -> None:
        """Write the changes of the users handed out, and their events, in the open transaction."""

    @abc.abstractmethod
    def _commit(self) -> None:
        """Make everything written durable at once."""

    @abc.abstractmethod
    def rollback(self) -> None: ...


@dataclass(frozen=True)
class HashInfo:
    """What a stored hash's format says: never the hash itself."""

    well_formed: bool
    cost: int | None = None


class PasswordHasher(Protocol):
    rounds: int

    def hash(self, password: str) -> str: ...

    def verify(self, password: str, password_hash: str | None) -> bool:
        """True on a match; with no usable hash, spends the same work and returns False."""
        ...

    def inspect(self, password_hash: str) -> HashInfo:
        """The format and cost of a stored hash, read in one place for import, verify and hashes."""
        ...

    def hash_many(self, passwords: list[str], progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Hash in parallel, in order; `progress(done, total)` after each."""
        ...


class UserViews(Protocol):
    """The read model: public user data straight from storage."""

    def get_by_id(self, user_id: str) -> UserView | None: ...

    def get_by_email_key(self, key: str) -> UserView | None: ...

    def credentials_by_id(self, user_id: str) -> Credentials | None: ...

    def credentials_by_email_key(self, key: str) -> Credentials | None: ...

    def page(self, where: UserFilter, page: int, per_page: int) -> Page: ...

    def stream(self, where: UserFilter) -> Iterator[UserView]:
        """Every matching user, newest first, in constant memory."""
        ...

    def export(self, include_hashes: bool) -> Iterator[UserView | ExportedUser]:
        """Every user, oldest first, in constant memory."""
        ...

    def export_text(self, format: str, include_hashes: bool) -> Iterator[str]:
        """Every user, oldest first, each as one line of `format` built by the database."""
        ...

    def password_hashes(self) -> Iterator[tuple[str, str | None]]:
        """(email, hash) of every user, for the hash-health report; never printed."""
        ...


class EventViews(Protocol):
    """The read side of the audit log."""

    def user_ids_by_email_key(self, key: str) -> list[str]:
        """Every user who has had this email, deleted ones too."""
        ...

    def recent(self, *, user_ids: list[str] | None, type: str | None, since: datetime | None, limit: int) -> list[EventView]:
        """The newest `limit` matching events, oldest first."""
        ...

    def chain(self) -> Iterator[tuple[EventView, str]]:
        """Every event in log order, with its stored hash, and the email key it is
        indexed under (what `events --user` finds it by)."""
        ...


@dataclass(frozen=True)
class Delivery:
    """A hook run owed for an event: the hook is named, never described."""

    id: int
    hook: str | None  # None: recorded by usermgr 0.1 for a hook no config names any more
    event: EventView
    attempts: int
    last_error: str | None
    last_attempt_at: str | None
    claimed_until: str | None


class DeliveryLog(Protocol):
    """Pending and failed hook deliveries, written with their events (the outbox)."""

    def pending(self) -> list[Delivery]: ...

    def for_event(self, event_id: str) -> list[Delivery]: ...

    def claim(self, delivery: Delivery, *, now: datetime, until: datetime) -> bool:
        """Take a delivery for this runner, unless another runner holds a live claim."""
        ...

    def succeeded(self, delivery: Delivery) -> None: ...

    def failed(self, delivery: Delivery, error: str, *, now: datetime) -> None: ...

    def discard(self, delivery_id: int | None) -> int:
        """Drop one delivery, or every one with None; how many went."""
        ...


@dataclass(frozen=True)
class Hook:
    """A local program run on events, as the config file defines it now."""

    name: str
    on: str
    command: tuple[str, ...]
    timeout: float = 10.0

    def matches(self, event_type: str) -> bool:
        return self.on in ("*", event_type)


class HookRunner(Protocol):
    def __call__(self, command: tuple[str, ...], event: dict[str, Any], timeout: float) -> str | None:
        """Run one hook on one event; None on success, else one line saying why not."""
        ...


@dataclass(frozen=True)
class StorageReport:
    location: str
    schema_version: int
    users: int
    events: int
    pending_deliveries: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Upgrade:
    before: int  # 0 when the database was created
    after: int
    created: bool


class StorageAdmin(Protocol):
    """Maintenance of the database itself."""

    def check(self) -> StorageReport:
        """Raises StorageUnavailable naming the first problem found."""
        ...

    def backup(self, target: Path, *, force: bool) -> None: ...

    def upgrade(self) -> Upgrade: ...

