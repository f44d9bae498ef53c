"""The read model: users and the audit log through the sqlite3 driver, no ORM on this path."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from usermgr.application.queries import (
    Credentials,
    EventView,
    ListUsers,
    Page,
    StreamUsers,
    UserView,
)
from usermgr.domain.values import Email, email_key, format_timestamp, text_key
from usermgr.infrastructure.sqlite import SQLITE_MAX_INT, Database, storage_errors

PUBLIC = "id, email, name, role, is_active, created_at, updated_at"
NEWEST_FIRST = "ORDER BY created_at DESC, rowid DESC"

T = TypeVar("T")


def by_email(ref: str, find: Callable[[str], T | None]) -> T | None:
    """Look an email up by its key. Most lookups give an address as stored, so try
    its folded form first; only a miss pays for email_validator to normalise it."""
    fast = email_key(ref)
    found = find(fast)
    if found:
        return found
    key = Email.parse(ref).key
    return find(key) if key != fast else found


def _view(row: tuple[Any, ...]) -> UserView:
    return {
        "id": row[0],
        "email": row[1],
        "name": row[2],
        "role": row[3],
        "is_active": bool(row[4]),
        "created_at": row[5],
        "updated_at": row[6],
    }


EVENT_COLUMNS = "id, type, user_id, occurred_at, actor, data"


def event_view(row: tuple[Any, ...]) -> EventView:
    """An event as `events` prints it and a hook receives it, from EVENT_COLUMNS."""
    return {
        "id": row[0],
        "type": row[1],
        "user_id": row[2],
        "occurred_at": row[3],
        "actor": row[4],
        "data": json.loads(row[5]),
    }


class SqliteUserViews:
    def __init__(self, db: Database) -> None:
        self._database = db

    def _first(self, columns: str, column: str, value: str) -> tuple[Any, ...] | None:
        rows = self._database.query(f"SELECT {columns} FROM users WHERE {column} = ?", (value,))
        return rows[0] if rows else None

    def _find(self, ref: str, columns: str) -> tuple[Any, ...] | None:
        if "@" in ref:
            return by_email(ref, lambda key: self._first(columns, "email_key", key))
        return self._first(columns, "id", ref.lower())

    def get(self, ref: str) -> UserView | None:
        row = self._find(ref, PUBLIC)
        return _view(row) if row else None

    def credentials(self, ref: str) -> Credentials | None:
        # A login check parses every email, found or not, so that an unknown
        # user costs what a known one does (no fast path to time).
        columns = "id, password_hash, is_active"
        if "@" in ref:
            row = self._first(columns, "email_key", Email.parse(ref).key)
        else:
            row = self._first(columns, "id", ref.lower())
        return Credentials(row[0], row[1], bool(row[2])) if row else None

    @staticmethod
    def _where(query: ListUsers | StreamUsers) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.search:
            # instr() has no wildcards, so % and _ stay ordinary characters.
            needle = text_key(query.search)
            clauses.append("(instr(name_key, ?) > 0 OR instr(email_key, ?) > 0)")
            params += [needle, needle]
        if query.active is not None:
            clauses.append("is_active = ?")
            params.append(int(query.active))
        if query.role is not None:
            clauses.append("role = ?")
            params.append(query.role)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def list(self, query: ListUsers) -> Page:
        where, params = self._where(query)
        total = self._database.query(f"SELECT count(*) FROM users {where}", params)
        rows = self._database.query(
            f"SELECT {PUBLIC} FROM users {where} {NEWEST_FIRST} LIMIT ? OFFSET ?",
            (*params, query.per_page, min((query.page - 1) * query.per_page, SQLITE_MAX_INT)),
        )
        return Page(
            items=[_view(r) for r in rows],
            total=total[0][0] if total else 0,
            page=query.page,
            per_page=query.per_page,
        )

    def iter_all(self, query: StreamUsers) -> Iterator[UserView]:
        db = self._database.connection()
        if db is None:
            return
        where, params = self._where(query)
        with storage_errors(self._database.path):
            cursor = db.execute(f"SELECT {PUBLIC} FROM users {where} {NEWEST_FIRST}", params)
            while batch := cursor.fetchmany(500):
                yield from map(_view, batch)


    def export(self, include_hashes: bool) -> Iterator[UserView]:
        """Every user, oldest first, streamed."""
        db = self._database.connection()
        if db is None:
            return
        columns = PUBLIC + (", password_hash" if include_hashes else "")
        with storage_errors(self._database.path):
            cursor = db.execute(f"SELECT {columns} FROM users ORDER BY created_at, rowid")
            while batch := cursor.fetchmany(1000):
                for row in batch:
                    view = _view(row)
                    if include_hashes:
                        view["password_hash"] = row[7]
                    yield view


class SqliteEventViews:
    def __init__(self, db: Database) -> None:
        self._database = db

    def _user_ids(self, ref: str) -> list[str]:
        if "@" not in ref:
            return [ref.lower()]
        rows = by_email(
            ref,
            lambda key: self._database.query(
                "SELECT DISTINCT user_id FROM events WHERE email_key = ?", (key,)
            ),
        )
        return [row[0] for row in rows or []]

    def list(
        self, *, user: str | None, type: str | None, since: datetime | None, limit: int
    ) -> list[EventView]:
        clauses: list[str] = []
        params: list[Any] = []
        if user is not None:
            ids = self._user_ids(user)
            clauses.append(f"user_id IN ({', '.join('?' * len(ids))})")
            params += ids
        if type is not None:
            clauses.append("type = ?")
            params.append(type)
        if since is not None:
            clauses.append("occurred_at >= ?")
            params.append(format_timestamp(since))
        where = "WHERE " + " AND ".join(clauses) if clauses else ""
        # The newest `limit`, like tail, then printed oldest first.
        rows = self._database.query(
            f"SELECT {EVENT_COLUMNS} FROM"
            f" (SELECT * FROM events {where} ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (*params, min(limit, SQLITE_MAX_INT)),
        )
        return [event_view(row) for row in rows]
