"""In-memory stand-ins for the ports, for unit tests of handlers."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from usermgr.application.handlers import user_view
from usermgr.application.ports import UnitOfWork, UserRepository
from usermgr.application.queries import Credentials, ListUsers, Page, UserView
from usermgr.domain.events import Event
from usermgr.domain.model import User
from usermgr.domain.values import Email
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

    def existing(self, keys: list[str], ids: list[str]) -> tuple[set[str], dict[str, str]]:
        taken = {u.email.key for u in self._store.values()}
        return taken & set(keys), {i: self._store[i].email.key for i in ids if i in self._store}

    def _get_by_email_key(self, key: str) -> User | None:
        return next((u for u in self._store.values() if u.email.key == key), None)

    def remove(self, user: User) -> None:
        del self._store[user.id]

    def replace_password_hash(self, user_id: str, old: str, new: str) -> None:
        user = self._store.get(user_id)
        if user is not None and user.password_hash == old:
            user.password_hash = new


class FakeUnitOfWork(UnitOfWork):
    """Commits copy the working set over the committed one; rollback discards it."""

    def __init__(self) -> None:
        super().__init__()
        self.committed_users: dict[str, User] = {}
        self.committed = False
        self.written_events: list[Event] = []
        self.users = FakeUserRepository({})

    def __enter__(self) -> FakeUnitOfWork:
        self.users = FakeUserRepository(copy.deepcopy(self.committed_users))
        return self

    def _commit(self, events: list[Event]) -> None:
        keys = [u.email.key for u in self.users._store.values()]
        if len(keys) != len(set(keys)):
            raise EmailTaken()
        self.committed_users = copy.deepcopy(self.users._store)
        for user in self.committed_users.values():
            user.events.clear()
        self.written_events.extend(events)
        self.committed = True

    def rollback(self) -> None:
        pass


class FakeViews:
    """The read model over the fake unit of work's committed users."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def _find(self, ref: str) -> User | None:
        for user in self.uow.committed_users.values():
            if ref == user.id or ("@" in ref and Email.parse(ref).key == user.email.key):
                return user
        return None

    def get(self, ref: str) -> UserView | None:
        user = self._find(ref)
        return user_view(user) if user else None

    def credentials(self, ref: str) -> Credentials | None:
        user = self._find(ref)
        return Credentials(user.id, user.password_hash, user.is_active) if user else None

    def _matching(self, query: ListUsers) -> list[UserView]:
        users = sorted(self.uow.committed_users.values(), key=lambda u: u.created_at, reverse=True)
        views = [user_view(u) for u in users]
        if query.search:
            needle = query.search.casefold()
            views = [v for v in views if needle in v["name"].casefold() or needle in v["email"].casefold()]
        if query.active is not None:
            views = [v for v in views if v["is_active"] is query.active]
        if query.role is not None:
            views = [v for v in views if v["role"] == query.role]
        return views

    def list(self, query: ListUsers) -> Page:
        views = self._matching(query)
        start = (query.page - 1) * query.per_page
        return Page(items=views[start : start + query.per_page], total=len(views), page=query.page, per_page=query.per_page)

    def iter_all(self, query: ListUsers) -> Iterator[UserView]:
        yield from self._matching(query)


class FakeHasher:
    """Reversible 'hashes' that record their cost, so re-hashing is observable."""

    def __init__(self, rounds: int = 4) -> None:
        self.rounds = rounds
        self.verified: list[str | None] = []

    def hash(self, password: str) -> str:
        return f"fake${self.rounds}${password}"

    def verify(self, password: str, password_hash: str | None) -> bool:
        self.verified.append(password_hash)
        return password_hash is not None and password_hash.split("$", 2)[2] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return int(password_hash.split("$")[1]) != self.rounds

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
