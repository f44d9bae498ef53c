"""Maintenance of a PostgreSQL database: a cheap check, a backup into a SQLite file
any usermgr can open, and an explicit upgrade."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from usermgr.application.ports import StorageReport, Upgrade
from usermgr.errors import InvalidInput, StorageUnavailable, shown
from usermgr.infrastructure.storage import schema
from usermgr.infrastructure.storage.postgresql import connect
from usermgr.infrastructure.storage.postgresql.errors import PostgresDatabase
from usermgr.infrastructure.storage.sqlite import connect as sqlite_connect
from usermgr.infrastructure.storage.sqlite.admin import check_backup_target, private_temporary
from usermgr.infrastructure.storage.sqlite.errors import SqliteDatabase, translate

# Copied table by table, in the order that keeps foreign keys and insertion order.
BACKUP_TABLES = {
    "users": ("id, email, email_key, name, name_key, role, is_active, password_hash, created_at, updated_at", "seq"),
    "events": ("seq, id, type, user_id, email_key, occurred_at, actor, data, hash", "seq"),
    "deliveries": ("id, event_id, hook, attempts, last_error, last_attempt_at, claimed_until", "id"),
}
COPY_BATCH = 5000


class PostgresAdmin:
    def __init__(self, url: str, lock_timeout: float, context: schema.Context) -> None:
        self._url = url
        self._lock_timeout = lock_timeout
        self._context = context

    def _open(self) -> PostgresDatabase:
        db = connect.open_database(self._url, self._lock_timeout, self._context, create=False)
        if db is None:
            raise StorageUnavailable(f"no usermgr tables in {connect.without_password(self._url)} yet")
        return db

    def check(self) -> StorageReport:
        db = self._open()
        try:
            found = connect.state(db)
            constraint = db.one(
                "SELECT 1 FROM pg_constraint WHERE conname = 'users_email_key'"
                " AND conrelid = (current_schema() || '.users')::regclass AND contype = 'u'"
            )
            if constraint is None:
                raise StorageUnavailable(f"{db.location}: the unique email constraint users_email_key is missing")

            indexed = db.one("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
                             " AND indexname IN ('users_name_trgm', 'users_email_trgm')")
            notes: tuple[str, ...] = ()
            if not indexed or indexed[0] != 2:
                notes = (
                    "search scans every user: the pg_trgm extension could not be created (it is in"
                    " postgresql-contrib); as a superuser: CREATE EXTENSION pg_trgm; then"
                    " CREATE INDEX users_name_trgm ON users USING gin ((name_key || '') gin_trgm_ops);"
                    " CREATE INDEX users_email_trgm ON users USING gin ((email_key || '') gin_trgm_ops)",
                )

            return StorageReport(
                location=db.location,
                schema_version=found.version,
                users=db.count("users"),
                events=db.count("events"),
                pending_deliveries=db.count("deliveries"),
                notes=notes,
            )
        finally:
            db.close()

    def upgrade(self) -> Upgrade:
        db = connect.connect(self._url, self._lock_timeout)
        try:
            found = connect.state(db)
            connect.check_ours(found, db.location)
            if found.version < schema.SCHEMA_VERSION:
                found = connect.migrate(db, self._context)
        finally:
            db.close()
        return Upgrade(before=found.version, after=schema.SCHEMA_VERSION, created=not found.marked)

    def backup(self, target: Path, *, force: bool) -> None:
        """One REPEATABLE READ snapshot of every table, written into a new private
        usermgr SQLite file beside the target and renamed into place once checked."""
        check_backup_target(target, force)
        source = self._open()
        temporary = private_temporary(target)
        try:
            copy = SqliteDatabase(sqlite3.connect(temporary, isolation_level=None), temporary)
            try:
                sqlite_connect.migrate(copy, schema.Context())
                copy.begin_write()
                with source.snapshot():
                    self._copy_tables(source, copy)
                copy.commit()
                copy.execute("PRAGMA journal_mode = DELETE")
                if copy.one("PRAGMA integrity_check") != ("ok",):
                    raise StorageUnavailable("the backup copy failed its integrity check")
            finally:
                copy.close()
            os.replace(temporary, target)
        except sqlite3.Error as e:
            raise translate(e, target) or InvalidInput(f"cannot write {shown(target)}: {e}") from None
        finally:
            source.close()
            if temporary.exists():
                temporary.unlink()

    @staticmethod
    def _copy_tables(source: PostgresDatabase, copy: SqliteDatabase) -> None:
        for table, (columns, order) in BACKUP_TABLES.items():
            marks = ", ".join("?" * len(columns.split(", ")))
            rows = source.stream(f"SELECT {columns} FROM {table} ORDER BY {order}")
            batch = []
            for row in rows:
                batch.append(row)
                if len(batch) >= COPY_BATCH:
                    copy.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", batch)
                    batch = []
            copy.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", batch)
        if copy.has_search_index():
            copy.execute("INSERT INTO users_search (users_search) VALUES ('rebuild')")
