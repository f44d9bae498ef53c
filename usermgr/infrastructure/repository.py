"""The write side: a SQLite repository and unit of work over SQLModel."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event, insert, update
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, select

from usermgr.application.ports import UnitOfWork, UserRepository
from usermgr.domain.events import Event
from usermgr.domain.model import User
from usermgr.domain.values import (
    Email,
    Role,
    email_key,
    format_timestamp,
    parse_timestamp,
    text_key,
)
from usermgr.errors import EmailTaken
from usermgr.infrastructure.config import Hook
from usermgr.infrastructure.sqlite import as_storage_error, connect, empty_database
from usermgr.infrastructure.tables import DeliveryRow, EventRow, UserRow


def _entity(row: UserRow) -> User:
    return User(
        id=row.id,
        email=Email(row.email),
        name=row.name,
        role=Role(row.role),
        is_active=row.is_active,
        created_at=parse_timestamp(row.created_at),
        updated_at=parse_timestamp(row.updated_at) if row.updated_at else None,
        password_hash=row.password_hash,
    )


def _columns(user: User) -> dict[str, object]:
    return {
        "id": user.id,
        "email": user.email.normalized,
        "email_key": user.email.key,
        "name": user.name,
        "name_key": text_key(user.name),
        "role": user.role.value,
        "is_active": user.is_active,
        "password_hash": user.password_hash,
        "created_at": format_timestamp(user.created_at),
        "updated_at": format_timestamp(user.updated_at) if user.updated_at else None,
    }


def _copy(user: User, row: UserRow) -> None:
    for column, value in _columns(user).items():
        setattr(row, column, value)


T = TypeVar("T")


def _chunks(items: list[T], size: int = 500) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


INSERT_BATCH = 5000


class SqlUserRepository(UserRepository):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._rows: dict[str, UserRow] = {}

    def _track(self, row: UserRow | None) -> User | None:
        if row is None:
            return None
        self._rows[row.id] = row
        known = next((u for u in self.seen if u.id == row.id), None)
        return known or _entity(row)

    def _add(self, user: User) -> None:
        row = UserRow(**_columns(user))
        self._rows[user.id] = row
        self.session.add(row)

    def _add_all(self, users: list[User]) -> None:
        # Core inserts: an import adds users by the thousand. Batches keep the
        # parameter lists, not the whole import, in memory at once.
        for batch in _chunks(users, INSERT_BATCH):
            self.session.execute(insert(UserRow), [_columns(user) for user in batch])

    def existing(self, keys: list[str], ids: list[str]) -> tuple[set[str], dict[str, str]]:
        taken_keys: set[str] = set()
        taken_ids: dict[str, str] = {}
        for chunk in _chunks(keys):
            taken_keys.update(
                self.session.exec(select(UserRow.email_key).where(UserRow.email_key.in_(chunk)))
            )
        for chunk in _chunks(ids):
            rows = self.session.exec(select(UserRow.id, UserRow.email_key).where(UserRow.id.in_(chunk)))
            taken_ids.update((user_id, key) for user_id, key in rows)
        return taken_keys, taken_ids

    def _get(self, user_id: str) -> User | None:
        return self._track(self.session.get(UserRow, user_id))

    def _get_by_email_key(self, key: str) -> User | None:
        return self._track(self.session.exec(select(UserRow).where(UserRow.email_key == key)).first())

    def remove(self, user: User) -> None:
        self.session.delete(self._rows.pop(user.id))

    def replace_password_hash(self, user_id: str, old: str, new: str) -> None:
        self.session.exec(
            update(UserRow)
            .where(UserRow.id == user_id, UserRow.password_hash == old)
            .values(password_hash=new)
        )

    def sync(self) -> None:
        """Write every entity handed out back to its row."""
        for user in self.seen:
            row = self._rows.get(user.id)
            if row is not None:
                _copy(user, row)


def _engine(conn: sqlite3.Connection) -> Engine:
    engine = create_engine(
        "sqlite+pysqlite://",
        creator=lambda: conn,
        poolclass=StaticPool,
        hide_parameters=True,  # a failing statement's parameters may hold a hash
    )

    @event.listens_for(engine, "begin")
    def _take_write_lock(connection):  # type: ignore[no-untyped-def]
        # Every unit of work writes: lock first so the read-check-write is atomic
        # and waits for other writers up to the busy timeout (SQLAlchemy's pysqlite recipe).
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SqlUnitOfWork(UnitOfWork):
    """One BEGIN IMMEDIATE transaction; commit writes the changes, their events and
    a pending delivery for each hook an event matches (the outbox)."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float,
        *,
        actor: str,
        hooks: tuple[Hook, ...] = (),
        create: bool = True,
    ) -> None:
        super().__init__()
        self._create = create
        self._path = path
        self._busy_timeout = busy_timeout
        self._actor = actor
        self._hooks = hooks
        self._engine: Engine | None = None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError as e:
            if "email_key" not in str(e.orig):
                raise
            raise EmailTaken() from None
        except DBAPIError as e:
            raise as_storage_error(e.orig or e, self._path) from None

    def __enter__(self) -> SqlUnitOfWork:
        if self._engine is None:
            # Only a command that adds users brings a new database into being; for
            # the others a missing one is empty, and their failure leaves no file.
            conn = connect(self._path, self._busy_timeout, create=self._create)
            self._engine = _engine(conn if conn is not None else empty_database())
        self.session = Session(self._engine, expire_on_commit=False)
        self.users = SqlUserRepository(self.session)
        with self._errors():
            self.session.connection()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.session.close()

    def _commit(self, events: list[Event]) -> None:
        with self._errors():
            self.users.sync()
            self.session.flush()
            for batch in _chunks(events, INSERT_BATCH):
                # Core inserts: an import writes one event per user, by the thousand.
                self.session.execute(insert(EventRow), [self._event_row(e) for e in batch])
                deliveries = [
                    {"event_id": e.id, "command": json.dumps(hook.command), "timeout": hook.timeout}
                    for e in batch
                    for hook in self._hooks
                    if hook.on in ("*", e.type)
                ]
                if deliveries:
                    self.session.execute(insert(DeliveryRow), deliveries)
            self.session.commit()

    def _event_row(self, event: Event) -> dict[str, object]:
        return {
            "id": event.id,
            "type": event.type,
            "user_id": event.user_id,
            "email_key": email_key(event.email),
            "occurred_at": format_timestamp(event.occurred_at),
            "actor": self._actor,
            "data": json.dumps(event.data(), ensure_ascii=False),
        }

    def rollback(self) -> None:
        self.session.rollback()
