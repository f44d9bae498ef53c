"""The SQLite engine: one private file in WAL mode, one writer at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from usermgr.application.ports import Hook
from usermgr.errors import shown
from usermgr.infrastructure.storage import Storage, schema
from usermgr.infrastructure.storage.sql import Dialect
from usermgr.infrastructure.storage.sqlite import connect
from usermgr.infrastructure.storage.sqlite.admin import SqliteAdmin
from usermgr.infrastructure.storage.sqlite.errors import SqliteDatabase
from usermgr.infrastructure.storage.unit_of_work import SqlUnitOfWork
from usermgr.infrastructure.storage.views import Reader, SqlDeliveryLog, SqlEventViews, SqlUserViews


class SqliteStorage(Storage):
    def __init__(
        self, path: Path, *, busy_timeout: float, hooks: tuple[Hook, ...], actor: str, notice: Callable[[str], None]
    ) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._context = schema.Context(hooks)
        self._hooks = hooks
        self._actor = actor
        self._notice = notice
        dialect = Dialect()
        self._reader = Reader(self._open_for_reading, dialect)
        self._writer = Reader(self._open_for_writing, dialect)
        self.users = SqlUserViews(self._reader)
        self.events = SqlEventViews(self._reader)
        self.deliveries = SqlDeliveryLog(self._writer)
        self.admin = SqliteAdmin(path, busy_timeout, self._context)
        self._units: list[SqlUnitOfWork] = []

    def _open_for_reading(self) -> SqliteDatabase | None:
        db = connect.open_for_reading(self._path, self._busy_timeout, self._context)
        if db is None:
            self._notice(f"no usermgr database at {shown(self._path)} yet: nothing to show")
        return db

    def _open_for_writing(self) -> SqliteDatabase | None:
        return connect.open_for_writing(self._path, self._busy_timeout, self._context, create=False)

    def unit_of_work(self, create: bool) -> SqlUnitOfWork:
        def open_db() -> SqliteDatabase:
            db = connect.open_for_writing(self._path, self._busy_timeout, self._context, create=create)
            # A writer that may not create the database works on an empty one in
            # memory: it finds nothing, and whatever it might write vanishes.
            return db if db is not None else connect.empty_database(self._path)

        unit = SqlUnitOfWork(open_db, actor=self._actor, hooks=self._hooks)
        self._units.append(unit)
        return unit

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
        for unit in self._units:
            unit.close()
