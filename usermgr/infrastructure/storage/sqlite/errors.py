"""The sqlite3 driver behind the shared Database, and its errors in the user's words."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from usermgr.errors import EmailTaken, StorageUnavailable, UsermgrError, shown
from usermgr.infrastructure.storage.sql import Database


_UNDECODABLE = re.compile(r"Could not decode to UTF-8 column '(.*?)' with text")


def translate(error: BaseException, path: Path) -> UsermgrError | None:
    """One line for a driver error, chosen by SQLite's result code, never by its text."""
    if not isinstance(error, sqlite3.Error):
        return None
    name = getattr(error, "sqlite_errorname", "") or ""
    where = shown(path)
    if name == "SQLITE_CONSTRAINT_UNIQUE":
        return EmailTaken()  # users.email_key is the only UNIQUE a write can break
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageUnavailable(f"database {where} is busy: another process holds its lock; retry later")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return StorageUnavailable(f"{where} is not a readable usermgr database ({error})")
    if name == "SQLITE_FULL":
        return StorageUnavailable(f"database {where} cannot grow: the disk is full; nothing was changed")
    if name.startswith("SQLITE_READONLY"):
        return StorageUnavailable(f"database {where} is read-only here: {error}")
    if name.startswith("SQLITE_CANTOPEN"):
        return StorageUnavailable(f"cannot open database {where}: check the path and its permissions")
    undecodable = _UNDECODABLE.match(str(error))
    if undecodable:  # Python's sqlite3 quotes the value, which may be a password hash: never show it
        return StorageUnavailable(
            f"database {where} has text that is not UTF-8 in column {shown(undecodable[1])}: it was edited by hand"
        )
    return StorageUnavailable(f"database {where} is unavailable: {error}")


class SqliteDatabase(Database):
    engine = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path | str) -> None:
        self.conn = conn
        self.path = path
        self.location = shown(path)
        self._search_index: bool | None = None
        self._bulk = False

    def _cursor(self) -> Any:
        return self.conn.cursor()

    def _sql(self, statement: str) -> str:
        return statement

    def translate(self, error: BaseException) -> Exception | None:
        return translate(error, self.path)

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not self._bulk:
            # Inserts by the thousand touch index pages all over the file: give them
            # a page cache of 64 MiB instead of the default 2 MiB (reads keep the default).
            self.execute("PRAGMA cache_size = -65536")
            self._bulk = True
        if table != "users" or not self.has_search_index():
            return super().insert_many(table, columns, rows)
        last = self.one("SELECT coalesce(max(seq), 0) FROM users")
        since = last[0] if last else 0
        super().insert_many(table, columns, rows)
        # The batch's rows go into the search index in one statement.
        self.execute(
            "INSERT INTO users_search (rowid, name_key, email_key) SELECT seq, name_key, email_key FROM users WHERE seq > ?",
            (since,),
        )
        return None

    def reindex(self, seq: int, old: tuple[str, str], new: tuple[str, str] | None) -> None:
        if not self.has_search_index():
            return
        self.execute(
            "INSERT INTO users_search (users_search, rowid, name_key, email_key) VALUES ('delete', ?, ?, ?)", (seq, *old)
        )
        if new is not None:
            self.execute("INSERT INTO users_search (rowid, name_key, email_key) VALUES (?, ?, ?)", (seq, *new))

    def has_search_index(self) -> bool:
        if self._search_index is None:
            self._search_index = self.one("SELECT 1 FROM sqlite_master WHERE name = 'users_search'") is not None
        return self._search_index

    def begin_write(self) -> None:
        # Take the write lock first, so that a read-check-write is atomic and waits
        # for other writers up to the busy timeout (a deferred BEGIN would fail at
        # once with SQLITE_BUSY_SNAPSHOT in WAL mode).
        self.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction
