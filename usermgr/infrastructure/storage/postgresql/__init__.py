"""The PostgreSQL engine: one database that several hosts share, one writer at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg2  # noqa: F401 - imported first: without the driver, open_storage names the extra

from usermgr.application.ports import Hook
from usermgr.infrastructure.storage import Storage, schema, without_password
from usermgr.infrastructure.storage.postgresql import connect
from usermgr.infrastructure.storage.postgresql.admin import PostgresAdmin
from usermgr.infrastructure.storage.postgresql.errors import PostgresDatabase
from usermgr.infrastructure.storage.sql import Database, Dialect
from usermgr.infrastructure.storage.sqlite.connect import empty_database
from usermgr.infrastructure.storage.unit_of_work import SqlUnitOfWork
from usermgr.infrastructure.storage.views import Reader, SqlDeliveryLog, SqlEventViews, SqlUserViews


class PostgresDialect(Dialect):
    newline = "chr(10)"

    def json_line(self, columns: Sequence[str]) -> str:
        # Written out rather than json_build_object, whose ' : ' and ', ' would make an
        # export from PostgreSQL differ from one from SQLite by its spaces.
        parts = [f"'{'{' if i == 0 else ','}\"{c}\":' || coalesce(to_json({c})::text, 'null')" for i, c in enumerate(columns)]
        return "(" + " || ".join(parts) + " || '}')"

    @staticmethod
    def position(text: str, needle: str) -> str:
        return f"strpos({text}, {needle})"

    def search(self, db: Database, needle: str) -> tuple[str, tuple[Any, ...]]:
        # LIKE, with its wildcards escaped, is what a pg_trgm GIN index serves; without
        # the index it is the same scan, as exact.
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return "((name_key || '') LIKE ? ESCAPE '\\' OR (email_key || '') LIKE ? ESCAPE '\\')", (pattern, pattern)

    # Concurrent runners skip a row another one is claiming instead of waiting for it.
    claim = (
        "UPDATE deliveries SET claimed_until = ? WHERE id = ("
        "SELECT id FROM deliveries WHERE id = ? AND (claimed_until IS NULL OR claimed_until < ?)"
        " FOR UPDATE SKIP LOCKED)"
    )


class PostgresStorage(Storage):
    def __init__(
        self, url: str, *, busy_timeout: float, hooks: tuple[Hook, ...], actor: str, notice: Callable[[str], None]
    ) -> None:
        self._url = url
        self._busy_timeout = busy_timeout
        self._context = schema.Context(hooks)
        self._hooks = hooks
        self._actor = actor
        self._notice = notice
        dialect = PostgresDialect()
        # One connection serves every read and the delivery log; a unit of work has its own.
        self._reader = Reader(self._open_for_reading, dialect)
        self.users = SqlUserViews(self._reader)
        self.events = SqlEventViews(self._reader)
        self.deliveries = SqlDeliveryLog(self._reader)
        self.admin = PostgresAdmin(url, busy_timeout, self._context)
        self._units: list[SqlUnitOfWork] = []

    def _open_for_reading(self) -> PostgresDatabase | None:
        db = connect.open_database(self._url, self._busy_timeout, self._context, create=False)
        if db is None:
            self._notice(f"no usermgr tables in {without_password(self._url)} yet: nothing to show")
        return db

    def unit_of_work(self, create: bool) -> SqlUnitOfWork:
        def open_db() -> Database:
            db = connect.open_database(self._url, self._busy_timeout, self._context, create=create)
            # A writer that may not create usermgr's tables works on an empty database
            # in memory: it finds nothing, and whatever it might write vanishes.
            return db if db is not None else empty_database(without_password(self._url))

        unit = SqlUnitOfWork(open_db, actor=self._actor, hooks=self._hooks)
        self._units.append(unit)
        return unit

    def close(self) -> None:
        self._reader.close()
        for unit in self._units:
            unit.close()
