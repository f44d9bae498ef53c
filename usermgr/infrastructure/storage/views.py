"""The read model, shared by the engines: plain SQL through the driver, no ORM, and
nothing opened until a query needs it. With no database yet, every query finds nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from usermgr.application.ports import Delivery
from usermgr.application.queries import (
    EXPORT_FIELDS,
    USER_FIELDS,
    Credentials,
    EventView,
    ExportedUser,
    Page,
    UserFilter,
    UserView,
)
from usermgr.domain.values import format_timestamp, text_key
from usermgr.infrastructure.storage.sql import MAX_INT, Database, Dialect

PUBLIC = ", ".join(USER_FIELDS)
EVENT_FIELDS = "id, type, user_id, occurred_at, actor, data, hash"


def _user(row: tuple[Any, ...]) -> UserView:
    return UserView(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


def _exported(row: tuple[Any, ...]) -> ExportedUser:
    return ExportedUser(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def event_data(text: Any) -> Any:
    """An event's stored data, parsed; text edited by hand into something that is not
    strict JSON (NaN included) stays the text it is, and its hash no longer matches."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested thousands deep
        return text


def event_view(row: tuple[Any, ...]) -> EventView:
    return EventView(row[0], row[1], row[2], row[3], row[4], event_data(row[5]), row[6])


class Reader:
    """A database opened on first use; None-safe, so a missing database reads as empty."""

    def __init__(self, open_db: Callable[[], Database | None], dialect: Dialect) -> None:
        self._open_db = open_db
        self._db: Database | None = None
        self._opened = False
        self.dialect = dialect

    @property
    def db(self) -> Database | None:
        if not self._opened:
            self._db = self._open_db()
            self._opened = True
        return self._db

    def rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self.db
        return db.rows(statement, params) if db is not None else []

    def one(self, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        found = self.rows(statement, params)
        return found[0] if found else None

    def stream(self, statement: str, params: tuple[Any, ...] = (), size: int = 2000) -> Iterator[tuple[Any, ...]]:
        db = self.db
        if db is not None:
            yield from db.stream(statement, params, size)

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> int:
        """A one-statement write in its own transaction."""
        db = self.db
        return db.execute(statement, params) if db is not None else 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db = None
        self._opened = False


class SqlUserViews:
    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._newest_first = "ORDER BY created_at DESC, seq DESC"
        self._oldest_first = "ORDER BY created_at, seq"

    def _first(self, columns: str, column: str, value: str) -> tuple[Any, ...] | None:
        return self._reader.one(f"SELECT {columns} FROM users WHERE {column} = ?", (value,))

    def get_by_id(self, user_id: str) -> UserView | None:
        row = self._first(PUBLIC, "id", user_id)
        return _user(row) if row else None

    def get_by_email_key(self, key: str) -> UserView | None:
        row = self._first(PUBLIC, "email_key", key)
        return _user(row) if row else None

    def credentials_by_id(self, user_id: str) -> Credentials | None:
        row = self._first("id, password_hash, is_active", "id", user_id)
        return Credentials(row[0], row[1], bool(row[2])) if row else None

    def credentials_by_email_key(self, key: str) -> Credentials | None:
        row = self._first("id, password_hash, is_active", "email_key", key)
        return Credentials(row[0], row[1], bool(row[2])) if row else None

    def _where(self, where: UserFilter) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        db = self._reader.db
        if where.search and db is not None:
            clause, values = self._reader.dialect.search(db, text_key(where.search))
            clauses.append(clause)
            params += values
        if where.active is not None:
            clauses.append("is_active = ?")
            params.append(where.active)
        if where.role is not None:
            clauses.append("role = ?")
            params.append(where.role)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def page(self, where: UserFilter, page: int, per_page: int) -> Page:
        clause, params = self._where(where)
        total = self._reader.one(f"SELECT count(*) FROM users {clause}", params)
        offset = min((page - 1) * per_page, MAX_INT)
        rows = self._reader.rows(
            f"SELECT {PUBLIC} FROM users {clause} {self._newest_first} LIMIT ? OFFSET ?", (*params, per_page, offset)
        )
        return Page(items=[_user(r) for r in rows], total=total[0] if total else 0, page=page, per_page=per_page)

    def stream(self, where: UserFilter) -> Iterator[UserView]:
        clause, params = self._where(where)
        return map(_user, self._reader.stream(f"SELECT {PUBLIC} FROM users {clause} {self._newest_first}", params))

    def export(self, include_hashes: bool) -> Iterator[UserView | ExportedUser]:
        if include_hashes:
            return map(_exported, self._reader.stream(f"SELECT {PUBLIC}, password_hash FROM users {self._oldest_first}"))
        return map(_user, self._reader.stream(f"SELECT {PUBLIC} FROM users {self._oldest_first}"))

    def export_text(self, format: str, include_hashes: bool) -> Iterator[str]:
        columns = EXPORT_FIELDS if include_hashes else USER_FIELDS
        dialect = self._reader.dialect
        line = dialect.json_line(columns) if format == "jsonl" else dialect.csv_line(columns)
        return (row[0] for row in self._reader.stream(f"SELECT {line} FROM users {self._oldest_first}", size=5000))

    def password_hashes(self) -> Iterator[tuple[str, str | None]]:
        return self._reader.stream(f"SELECT email, password_hash FROM users {self._oldest_first}")  # type: ignore[return-value]


class SqlEventViews:
    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def user_ids_by_email_key(self, key: str) -> list[str]:
        return [row[0] for row in self._reader.rows("SELECT DISTINCT user_id FROM events WHERE email_key = ?", (key,))]

    def recent(self, *, user_ids: list[str] | None, type: str | None, since: datetime | None, limit: int) -> list[EventView]:
        clauses: list[str] = []
        params: list[Any] = []
        if user_ids is not None:
            if not user_ids:
                return []
            clauses.append(f"user_id IN ({', '.join('?' * len(user_ids))})")
            params += user_ids
        if type is not None:
            clauses.append("type = ?")
            params.append(type)
        if since is not None:
            clauses.append("occurred_at >= ?")
            params.append(format_timestamp(since))
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        # The newest `limit`, like tail, then printed oldest first.
        rows = self._reader.rows(
            f"SELECT {EVENT_FIELDS} FROM (SELECT * FROM events {where} ORDER BY seq DESC LIMIT ?) AS newest ORDER BY seq",
            (*params, min(limit, MAX_INT)),
        )
        return [event_view(row) for row in rows]

    def chain(self) -> Iterator[tuple[EventView, str]]:
        for row in self._reader.stream(f"SELECT {EVENT_FIELDS}, email_key FROM events ORDER BY seq"):
            yield event_view(row[:-1]), row[-1]


class SqlDeliveryLog:
    """Pending and failed deliveries; each claim, success or failure is its own
    one-statement transaction, so no two runners deliver the same one at once."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    def _select(self, where: str, params: tuple[Any, ...]) -> list[Delivery]:
        event_columns = ", ".join(f"e.{c}" for c in EVENT_FIELDS.split(", "))
        rows = self._reader.rows(
            "SELECT d.id, d.hook, d.attempts, d.last_error, d.last_attempt_at, d.claimed_until,"
            f" {event_columns} FROM deliveries d JOIN events e ON e.id = d.event_id {where} ORDER BY d.id",
            params,
        )
        return [Delivery(r[0], r[1], event_view(r[6:]), r[2], r[3], r[4], r[5]) for r in rows]

    def pending(self) -> list[Delivery]:
        return self._select("", ())

    def for_event(self, event_id: str) -> list[Delivery]:
        return self._select("WHERE d.event_id = ?", (event_id,))

    def claim(self, delivery: Delivery, *, now: datetime, until: datetime) -> bool:
        claimed = self._reader.execute(
            self._reader.dialect.claim, (format_timestamp(until), delivery.id, format_timestamp(now))
        )
        return claimed == 1

    def succeeded(self, delivery: Delivery) -> None:
        self._reader.execute("DELETE FROM deliveries WHERE id = ?", (delivery.id,))

    def failed(self, delivery: Delivery, error: str, *, now: datetime) -> None:
        self._reader.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?,"
            " claimed_until = NULL WHERE id = ?",
            (error, format_timestamp(now), delivery.id),
        )

    def discard(self, delivery_id: int | None) -> int:
        if delivery_id is None:
            return self._reader.execute("DELETE FROM deliveries")
        if not 0 < delivery_id <= MAX_INT:
            return 0
        return self._reader.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))
