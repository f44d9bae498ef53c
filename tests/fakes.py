"""In-memory stand-ins for the ports, for unit tests of handlers through the real
composition root (`bootstrap.build(settings, storage=FakeStorage(), ...)`)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from usermgr.application.handlers import user_view
from usermgr.application.ports import (
    CurrentUser,
    Delivery,
    HashInfo,
    StorageReport,
    UnitOfWork,
    Upgrade,
    UserRepository,
)
from usermgr.application.queries import Credentials, EventView, ExportedUser, Page, UserFilter, UserView
from usermgr.domain.audit import GENESIS, extend_chain
from usermgr.domain.events import Event
from usermgr.domain.model import User
from usermgr.domain.values import email_key, format_timestamp, text_key
from usermgr.errors import EmailTaken


class FakeUserRepository(UserRepository):
    def __init__(self, store: dict[str, User]) -> None:
        super().__init__()
        self._store = store

    def _add(self, user: User) -> None:
        self._store[user.id] = user

    def _add_all(self, users: list[User]) -> None:
        for user in users:
            self._add(user)

    def _get(self, user_id: str) -> User | None:
        return self._store.get(user_id)

    def _get_by_email_key(self, key: str) -> User | None:
        return next((u for u in self._store.values() if u.email.key == key), None)

    def existing(self, keys: list[str], ids: list[str]) -> tuple[set[str], dict[str, str]]:
        taken = {u.email.key for u in self._store.values()}
        return taken & set(keys), {i: self._store[i].email.key for i in ids if i in self._store}

    def current(self) -> list[CurrentUser]:
        return [
            CurrentUser(u.id, u.email.normalized, u.email.key, u.name, u.role.value, u.is_active, u.password_hash)
            for u in self._store.values()
        ]

    def remove(self, user: User) -> None:
        del self._store[user.id]

    def replace_password_hash(self, user_id: str, old: str, new: str) -> None:
        user = self._store.get(user_id)
        if user is not None and user.password_hash == old:
            user.password_hash = new


class FakeUnitOfWork(UnitOfWork):
    """Commits copy the working set over the committed one; rollback discards it."""

    def __init__(self, actor: str = "tester") -> None:
        super().__init__()
        self.committed_users: dict[str, User] = {}
        self.committed = False
        self.written_events: list[Event] = []
        self.event_log: list[EventView] = []
        self.actor = actor
        self.users = FakeUserRepository({})
        self.created_with: list[bool] = []

    def __enter__(self) -> FakeUnitOfWork:
        super().__enter__()
        self.users = FakeUserRepository(copy.deepcopy(self.committed_users))
        self._pending: list[Event] = []
        return self

    def _write(self, events: list[Event]) -> None:
        self._pending.extend(events)

    def _commit(self) -> None:
        events, self._pending = self._pending, []
        keys = [u.email.key for u in self.users._store.values()]
        if len(keys) != len(set(keys)):
            raise EmailTaken()
        self.committed_users = copy.deepcopy(self.users._store)
        for user in self.committed_users.values():
            user.events.clear()
        self.written_events.extend(events)
        records = [
            {
                "id": e.id,
                "type": e.type,
                "user_id": e.user_id,
                "occurred_at": format_timestamp(e.occurred_at),
                "actor": self.actor,
                "data": e.data(),
            }
            for e in events
        ]
        head = self.event_log[-1].hash if self.event_log else GENESIS
        for record, hashed in zip(records, extend_chain(records, head or GENESIS), strict=True):
            self.event_log.append(EventView(**record, hash=hashed))
        self.committed = True

    def rollback(self) -> None:
        pass


class FakeViews:
    """The read model over the fake unit of work's committed users."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def _users(self) -> list[User]:
        return list(self.uow.committed_users.values())

    def _by(self, test: Callable[[User], bool]) -> User | None:
        return next((u for u in self._users() if test(u)), None)

    def get_by_id(self, user_id: str) -> UserView | None:
        user = self._by(lambda u: u.id == user_id)
        return user_view(user) if user else None

    def get_by_email_key(self, key: str) -> UserView | None:
        user = self._by(lambda u: u.email.key == key)
        return user_view(user) if user else None

    def _credentials(self, user: User | None) -> Credentials | None:
        return Credentials(user.id, user.password_hash, user.is_active) if user else None

    def credentials_by_id(self, user_id: str) -> Credentials | None:
        return self._credentials(self._by(lambda u: u.id == user_id))

    def credentials_by_email_key(self, key: str) -> Credentials | None:
        return self._credentials(self._by(lambda u: u.email.key == key))

    def _matching(self, where: UserFilter) -> list[UserView]:
        users = sorted(self._users(), key=lambda u: u.created_at, reverse=True)
        if where.search:
            needle = text_key(where.search)
            users = [u for u in users if needle in text_key(u.name) or needle in u.email.key]
        if where.active is not None:
            users = [u for u in users if u.is_active is where.active]
        if where.role is not None:
            users = [u for u in users if u.role.value == where.role]
        return [user_view(u) for u in users]

    def page(self, where: UserFilter, page: int, per_page: int) -> Page:
        views = self._matching(where)
        start = (page - 1) * per_page
        return Page(items=views[start : start + per_page], total=len(views), page=page, per_page=per_page)

    def stream(self, where: UserFilter) -> Iterator[UserView]:
        yield from self._matching(where)

    def export(self, include_hashes: bool) -> Iterator[UserView | ExportedUser]:
        for user in sorted(self._users(), key=lambda u: u.created_at):
            view = user_view(user)
            if include_hashes:
                yield ExportedUser(**view.as_dict(), password_hash=user.password_hash)
            else:
                yield view

    def password_hashes(self) -> Iterator[tuple[str, str | None]]:
        for user in sorted(self._users(), key=lambda u: u.created_at):
            yield user.email.normalized, user.password_hash


class FakeEventViews:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def user_ids_by_email_key(self, key: str) -> list[str]:
        return sorted({e.user_id for e in self.uow.event_log if email_key(e.data["email"]) == key})

    def recent(self, *, user_ids: list[str] | None, type: str | None, since: datetime | None, limit: int) -> list[EventView]:
        found = [
            e
            for e in self.uow.event_log
            if (user_ids is None or e.user_id in user_ids)
            and (type is None or e.type == type)
            and (since is None or e.occurred_at >= format_timestamp(since))
        ]
        return found[-limit:]

    def chain(self) -> Iterator[tuple[EventView, str]]:
        for event in self.uow.event_log:
            yield event, email_key(event.data["email"])


class FakeDeliveryLog:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.rows: dict[int, dict[str, Any]] = {}
        self._next = 1

    def record(self, event_id: str, hook: str | None) -> None:
        self.rows[self._next] = {"event_id": event_id, "hook": hook, "attempts": 0, "last_error": None, "last_attempt_at": None, "claimed_until": None}
        self._next += 1

    def _delivery(self, delivery_id: int) -> Delivery:
        row = self.rows[delivery_id]
        event = next(e for e in self.uow.event_log if e.id == row["event_id"])
        return Delivery(delivery_id, row["hook"], event, row["attempts"], row["last_error"], row["last_attempt_at"], row["claimed_until"])

    def pending(self) -> list[Delivery]:
        return [self._delivery(i) for i in sorted(self.rows)]

    def for_event(self, event_id: str) -> list[Delivery]:
        return [d for d in self.pending() if d.event.id == event_id]

    def claim(self, delivery: Delivery, *, now: datetime, until: datetime) -> bool:
        row = self.rows.get(delivery.id)
        if row is None or (row["claimed_until"] and row["claimed_until"] >= format_timestamp(now)):
            return False
        row["claimed_until"] = format_timestamp(until)
        return True

    def succeeded(self, delivery: Delivery) -> None:
        self.rows.pop(delivery.id, None)

    def failed(self, delivery: Delivery, error: str, *, now: datetime) -> None:
        row = self.rows[delivery.id]
        row.update(attempts=row["attempts"] + 1, last_error=error, last_attempt_at=format_timestamp(now), claimed_until=None)

    def discard(self, delivery_id: int | None) -> int:
        if delivery_id is None:
            count = len(self.rows)
            self.rows.clear()
            return count
        return 1 if self.rows.pop(delivery_id, None) is not None else 0


class FakeAdmin:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.backups: list[Path] = []

    def check(self) -> StorageReport:
        return StorageReport("memory", 5, len(self.uow.committed_users), len(self.uow.event_log), 0)

    def backup(self, target: Path, *, force: bool) -> None:
        self.backups.append(target)

    def upgrade(self) -> Upgrade:
        return Upgrade(5, 5, False)


class FakeStorage:
    """Every storage port over one fake unit of work; deliveries are recorded per hook, as the outbox does."""

    def __init__(self, uow: FakeUnitOfWork | None = None, hooks: tuple[Any, ...] = ()) -> None:
        self.uow = uow or FakeUnitOfWork()
        self.users = FakeViews(self.uow)
        self.events = FakeEventViews(self.uow)
        self.deliveries = FakeDeliveryLog(self.uow)
        self.admin = FakeAdmin(self.uow)
        self.hooks = hooks
        self.closed = False
        original = self.uow._write

        def write_with_outbox(events: list[Event]) -> None:
            original(events)
            for event in events:
                for hook in self.hooks:
                    if hook.matches(event.type):
                        self.deliveries.record(event.id, hook.name)

        self.uow._write = write_with_outbox  # type: ignore[method-assign]

    def unit_of_work(self, create: bool) -> FakeUnitOfWork:
        self.uow.created_with.append(create)
        return self.uow

    def close(self) -> None:
        self.closed = True


class FakeHasher:
    """Reversible 'hashes' that record their cost, so re-hashing is observable."""

    def __init__(self, rounds: int = 4) -> None:
        self.rounds = rounds
        self.verified: list[str | None] = []

    def hash(self, password: str) -> str:
        return f"fake${self.rounds}${password}"

    def verify(self, password: str, password_hash: str | None) -> bool:
        self.verified.append(password_hash)
        return password_hash is not None and "\0" not in password and password_hash.split("$", 2)[2] == password

    def inspect(self, password_hash: str) -> HashInfo:
        parts = password_hash.split("$", 2)
        if len(parts) == 3 and parts[0] == "fake" and parts[1].isdigit():
            return HashInfo(True, int(parts[1]))
        from usermgr.infrastructure.hashing import BcryptHasher

        return BcryptHasher(self.rounds).inspect(password_hash)

    def hash_many(self, passwords: list[str], progress=None) -> list[str]:  # type: ignore[no-untyped-def]
        hashes = [self.hash(p) for p in passwords]
        if progress:
            progress(len(hashes), len(hashes))
        return hashes


class FixedClock:
    """A clock that moves one second per reading."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class RecordingRunner:
    """A hook runner that records what it was asked to run and fails when told to."""

    def __init__(self, fail_with: str | None = None) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, Any], float]] = []
        self.fail_with = fail_with

    def __call__(self, command: tuple[str, ...], event: dict[str, Any], timeout: float) -> str | None:
        self.calls.append((command, event, timeout))
        return self.fail_with
