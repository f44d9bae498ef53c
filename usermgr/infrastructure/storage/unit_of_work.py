"""The write side, shared by the engines: users as rows, and one transaction that
writes a change with its events, their place in the audit chain, and the hook
deliveries they owe (the outbox)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from usermgr.application.ports import CurrentUser, Hook, UnitOfWork, UserRepository
from usermgr.domain.audit import GENESIS, extend_chain
from usermgr.domain.events import Event
from usermgr.domain.model import User
from usermgr.domain.values import Email, Role, email_key, format_timestamp, parse_timestamp, text_key
from usermgr.infrastructure.storage.sql import Database

USER_COLUMNS = (
    "id",
    "email",
    "email_key",
    "name",
    "name_key",
    "role",
    "is_active",
    "password_hash",
    "created_at",
    "updated_at",
)
_SELECT_USER = f"SELECT {', '.join(USER_COLUMNS)}, seq FROM users"
_UPDATE_USER = f"UPDATE users SET {', '.join(f'{c} = ?' for c in USER_COLUMNS[1:])} WHERE id = ?"
EVENT_COLUMNS = ("id", "type", "user_id", "email_key", "occurred_at", "actor", "data", "hash")
BATCH = 5000
LOOKUP_BATCH = 2000  # keys a query looks up at once, well under SQLite's 32,766 parameters
_data_json = json.JSONEncoder(ensure_ascii=False).encode

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def user_row(user: User) -> tuple[Any, ...]:
    return (
        user.id,
        user.email.normalized,
        user.email.key,
        user.name,
        text_key(user.name),
        user.role.value,
        user.is_active,
        user.password_hash,
        format_timestamp(user.created_at),
        format_timestamp(user.updated_at) if user.updated_at else None,
    )


def _entity(row: tuple[Any, ...]) -> User:
    user_id, email, _key, name, _name_key, role, is_active, password_hash, created_at, updated_at = row[:10]
    return User(
        id=user_id,
        email=Email(email),
        name=name,
        role=Role(role),
        is_active=bool(is_active),
        created_at=parse_timestamp(created_at),
        updated_at=parse_timestamp(updated_at) if updated_at else None,
        password_hash=password_hash,
    )


class SqlUserRepository(UserRepository):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.new: set[str] = set()
        self.removed: set[str] = set()
        self._stored: dict[str, tuple[int, tuple[str, str]]] = {}  # id -> seq and keys, as loaded

    def _one(self, where: str, value: str) -> User | None:
        row = self.db.one(f"{_SELECT_USER} WHERE {where} = ?", (value,))
        if row is None:
            return None
        self._stored.setdefault(row[0], (row[10], (row[4], row[2])))
        return _entity(row)

    def _get(self, user_id: str) -> User | None:
        return self._one("id", user_id)

    def _get_by_email_key(self, key: str) -> User | None:
        return self._one("email_key", key)

    def _add(self, user: User) -> None:
        self.db.insert_many("users", USER_COLUMNS, [user_row(user)])
        self.new.add(user.id)

    def _add_all(self, users: list[User]) -> None:
        # Batches keep the parameter lists, not the whole import, in memory at once.
        for batch in _chunks(users, BATCH):
            self.db.insert_many("users", USER_COLUMNS, [user_row(user) for user in batch])
        self.new.update(user.id for user in users)

    def existing(self, keys: list[str], ids: list[str]) -> tuple[set[str], dict[str, str]]:
        taken_keys: set[str] = set()
        taken_ids: dict[str, str] = {}
        for chunk in _chunks(keys, LOOKUP_BATCH):
            marks = ", ".join("?" * len(chunk))
            taken_keys.update(k for (k,) in self.db.rows(f"SELECT email_key FROM users WHERE email_key IN ({marks})", chunk))
        for chunk in _chunks(ids, LOOKUP_BATCH):
            marks = ", ".join("?" * len(chunk))
            taken_ids.update(self.db.rows(f"SELECT id, email_key FROM users WHERE id IN ({marks})", chunk))
        return taken_keys, taken_ids

    def current(self) -> list[CurrentUser]:
        rows = self.db.stream("SELECT id, email, email_key, name, role, is_active, password_hash FROM users")
        return [CurrentUser(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def remove(self, user: User) -> None:
        self.db.execute("DELETE FROM users WHERE id = ?", (user.id,))
        self.removed.add(user.id)
        if user.id in self._stored:
            seq, keys = self._stored[user.id]
            self.db.reindex(seq, keys, None)

    def replace_password_hash(self, user_id: str, old: str, new: str) -> None:
        self.db.execute("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?", (new, user_id, old))

    def forget(self) -> None:
        super().forget()
        self.new = set()
        self.removed = set()
        self._stored = {}

    def write_changes(self) -> None:
        """Write back every user that was handed out, changed, and is neither new nor gone."""
        for user in self.seen:
            if user.events and user.id not in self.new and user.id not in self.removed:
                row = user_row(user)
                self.db.execute(_UPDATE_USER, (*row[1:], row[0]))
                seq, keys = self._stored[user.id]
                if (row[4], row[2]) != keys:
                    self.db.reindex(seq, keys, (row[4], row[2]))


class SqlUnitOfWork(UnitOfWork):
    """One transaction under the engine's write lock; commit writes the changes,
    their events chained to the log's head, and a delivery for each matching hook."""

    def __init__(self, open_db: Callable[[], Database], *, actor: str, hooks: tuple[Hook, ...] = ()) -> None:
        super().__init__()
        self._open_db = open_db
        self._db: Database | None = None
        self._actor = actor
        self._hooks = hooks

    def __enter__(self) -> SqlUnitOfWork:
        super().__enter__()
        if self._db is None:
            self._db = self._open_db()
        self._db.begin_write()
        self.users = SqlUserRepository(self._db)
        return self

    def _write(self, events: list[Event]) -> None:
        db = self.users.db
        self.users.write_changes()
        if events:
            head = db.one("SELECT hash FROM events ORDER BY seq DESC LIMIT 1")
            prev = head[0] if head and head[0] else GENESIS
            # A batch of records at a time: a large apply holds one batch, not every event twice.
            for batch in _chunks(events, BATCH):
                records = [self._record(event) for event in batch]
                hashes = list(extend_chain(records, prev))
                prev = hashes[-1]
                db.insert_many(
                    "events",
                    EVENT_COLUMNS,
                    [
                        (r["id"], r["type"], r["user_id"], email_key(e.email), r["occurred_at"], r["actor"], r["data_text"], h)
                        for e, r, h in zip(batch, records, hashes)
                    ],
                )
                deliveries = [(e.id, hook.name) for e in batch for hook in self._hooks if hook.matches(e.type)]
                if deliveries:
                    db.insert_many("deliveries", ("event_id", "hook"), deliveries)

    def _commit(self) -> None:
        self.users.db.commit()

    def _record(self, event: Event) -> dict[str, Any]:
        data = event.data()
        return {
            "id": event.id,
            "type": event.type,
            "user_id": event.user_id,
            "occurred_at": format_timestamp(event.occurred_at),
            "actor": self._actor,
            "data": data,
            "data_text": _data_json(data),
        }

    def rollback(self) -> None:
        if self._db is not None:
            self._db.rollback()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
