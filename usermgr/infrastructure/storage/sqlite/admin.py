"""Maintenance of a SQLite database: integrity check, online backup, explicit upgrade."""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
from pathlib import Path

from usermgr.application.ports import StorageReport, Upgrade
from usermgr.errors import InvalidInput, StorageUnavailable, shown
from usermgr.infrastructure.storage import schema
from usermgr.infrastructure.storage.sqlite import connect
from usermgr.infrastructure.storage.sqlite.errors import translate


def check_backup_target(target: Path, force: bool) -> None:
    """A backup goes to a new file, or replaces a regular file with --force; anything
    else at that path (a directory, a device such as /dev/null, a FIFO) is left alone."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        if os.path.lexists(target) and not force:  # a dangling symlink is something there too
            raise InvalidInput(f"{shown(target)} exists (a symlink to nothing): add --force to replace it") from None
        return
    except OSError as e:
        raise InvalidInput(f"cannot write {shown(target)}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{shown(target)} is a directory: give the backup file's path")
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{shown(target)} is not a regular file; usermgr left it untouched")
    if not force:
        raise InvalidInput(f"{shown(target)} exists: add --force to replace it")


def private_temporary(target: Path) -> Path:
    """A new 0600 file beside `target`, to be renamed over it once complete."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise InvalidInput(f"cannot write {shown(target)}: {e.strerror}") from None
    return temporary


class SqliteAdmin:
    def __init__(self, path: Path, busy_timeout: float, context: schema.Context) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._context = context

    def _open(self) -> connect.SqliteDatabase:
        db = connect.open_for_reading(self._path, self._busy_timeout, self._context)
        if db is None:
            raise StorageUnavailable(f"no usermgr database at {shown(self._path)}")
        return db

    def check(self) -> StorageReport:
        db = self._open()
        try:
            integrity = [row[0] for row in db.rows("PRAGMA integrity_check")]
            if integrity != ["ok"]:
                raise StorageUnavailable(f"{shown(self._path)} is damaged: {'; '.join(integrity[:3])}")
            orphans = db.rows("PRAGMA foreign_key_check")
            if orphans:
                raise StorageUnavailable(f"{shown(self._path)} has {len(orphans)} rows with a broken foreign key")

            notes = self._check_search_index(db)
            version = db.one("PRAGMA user_version")
            return StorageReport(
                location=db.location,
                schema_version=version[0] if version else 0,
                users=db.count("users"),
                events=db.count("events"),
                pending_deliveries=db.count("deliveries"),
                notes=notes,
            )
        finally:
            db.close()

    def _check_search_index(self, db: connect.SqliteDatabase) -> tuple[str, ...]:
        if not db.has_search_index():
            return ("search scans every user: this SQLite has no FTS5 trigram tokenizer (SQLite 3.34 or newer)",)
        try:
            db.conn.execute("INSERT INTO users_search (users_search, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as e:
            if getattr(e, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
                return ("the search index was not checked: the database is read-only here",)
            raise StorageUnavailable(
                f"{shown(self._path)}: the search index does not match the users ({e}); rebuild it with"
                " sqlite3 FILE \"INSERT INTO users_search (users_search) VALUES ('rebuild')\""
            ) from None
        return ()

    def upgrade(self) -> Upgrade:
        db, created = connect.create_or_open(self._path, self._busy_timeout, self._context)
        try:
            # Up to date: nothing to lock for (as on PostgreSQL), however busy the writers.
            version = connect.schema_version(db)
            before = connect.migrate(db, self._context) if version < schema.SCHEMA_VERSION else version
        finally:
            db.close()
        return Upgrade(before=0 if created else before, after=schema.SCHEMA_VERSION, created=created or before == 0)

    def backup(self, target: Path, *, force: bool) -> None:
        """A consistent online copy: into a private temporary file beside the target,
        integrity-checked, then renamed into place."""
        check_backup_target(target, force)
        try:
            same = target.exists() and os.path.samefile(target, self._path)
        except OSError:
            same = False
        if same:
            raise InvalidInput("the backup cannot replace the database itself")
        source = self._open()
        temporary = private_temporary(target)
        try:
            try:
                copy = sqlite3.connect(temporary)
                try:
                    source.conn.backup(copy)
                    copy.execute("PRAGMA journal_mode = DELETE")
                    if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                        raise StorageUnavailable("the backup copy failed its integrity check")
                finally:
                    copy.close()
            except sqlite3.Error as e:
                if getattr(e, "sqlite_errorname", "") == "SQLITE_FULL":
                    raise StorageUnavailable(f"cannot write the backup {shown(target)}: the disk is full") from None
                raise translate(e, self._path) or e from None
            os.replace(temporary, target)
        finally:
            source.close()
            for leftover in (temporary, temporary.with_name(temporary.name + "-journal")):
                if leftover.exists():
                    leftover.unlink()
