"""The read model: public user data through the sqlite3 driver, no ORM on this path."""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from usermgr.application.queries import Credentials, ListUsers, Page, UserView
from usermgr.domain.values import Email, email_key
from usermgr.infrastructure.sqlite import connect, storage_errors

PUBLIC = "id, email, name, role, is_active, created_at, updated_at"
NEWEST_FIRST = "ORDER BY created_at DESC, rowid DESC"


def _fold(text: str | None) -> str | None:
    return None if text is None else unicodedata.normalize("NFC", text.casefold())


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


class SqliteUserViews:
    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._opened = False

    def _db(self) -> sqlite3.Connection | None:
        if not self._opened:
            self._conn = connect(self._path, self._busy_timeout, create=False)
            if self._conn is not None:
                self._conn.create_function("fold", 1, _fold, deterministic=True)
            self._opened = True
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self._db()
        if db is None:
            return []
        with storage_errors(self._path):
            return db.execute(sql, params).fetchall()

    def _find(self, ref: str, columns: str) -> tuple[Any, ...] | None:
        if "@" not in ref:
            rows = self._query(f"SELECT {columns} FROM users WHERE id = ?", (ref.lower(),))
            return rows[0] if rows else None
        # Most lookups give an address as stored: try its folded form before paying
        # for email_validator, which is needed to normalise anything else.
        fast = email_key(ref)
        rows = self._query(f"SELECT {columns} FROM users WHERE email_key = ?", (fast,))
        if rows:
            return rows[0]
        key = Email.parse(ref).key
        if key == fast:
            return None
        rows = self._query(f"SELECT {columns} FROM users WHERE email_key = ?", (key,))
        return rows[0] if rows else None

    def get(self, ref: str) -> UserView | None:
        row = self._find(ref, PUBLIC)
        return _view(row) if row else None

    def credentials(self, ref: str) -> Credentials | None:
        row = self._find(ref, "id, password_hash, is_active")
        return Credentials(row[0], row[1], bool(row[2])) if row else None

    @staticmethod
    def _where(query: ListUsers) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.search:
            # instr() has no wildcards, so % and _ stay ordinary characters.
            needle = _fold(query.search)
            clauses.append("(instr(fold(name), ?) > 0 OR instr(email_key, ?) > 0)")
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
        total = self._query(f"SELECT count(*) FROM users {where}", params)
        rows = self._query(
            f"SELECT {PUBLIC} FROM users {where} {NEWEST_FIRST} LIMIT ? OFFSET ?",
            (*params, query.per_page, (query.page - 1) * query.per_page),
        )
        return Page(
            items=[_view(r) for r in rows],
            total=total[0][0] if total else 0,
            page=query.page,
            per_page=query.per_page,
        )

    def iter_all(self, query: ListUsers) -> Iterator[UserView]:
        db = self._db()
        if db is None:
            return
        where, params = self._where(query)
        with storage_errors(self._path):
            cursor = db.execute(f"SELECT {PUBLIC} FROM users {where} {NEWEST_FIRST}", params)
            while batch := cursor.fetchmany(500):
                yield from map(_view, batch)
