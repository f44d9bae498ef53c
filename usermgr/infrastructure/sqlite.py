"""Opening the database with the driver alone: checks, private creation, migrations."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from usermgr.domain.values import text_key
from usermgr.errors import InvalidInput, StorageUnavailable

SQLITE_MAX_INT = 2**63 - 1
APPLICATION_ID = 0x75736D67  # "usmg": marks a file as a usermgr database

# Each entry upgrades the schema from the version before it; never edit a shipped one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE users (
            id TEXT PRIMARY KEY NOT NULL,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'admin', 'moderator')),
            is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
            password_hash TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT
        )""",
        "CREATE INDEX users_by_created ON users (created_at)",
        "CREATE INDEX users_by_role ON users (role, created_at)",
        "CREATE INDEX users_by_active ON users (is_active, created_at)",
    ),
    2: (
        # The audit log, written in the same transaction as the change it records.
        # email_key is the user's email at that time, so a lookup by email finds
        # every user who has had it, deleted ones too.
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            user_id TEXT NOT NULL,
            email_key TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX events_by_user ON events (user_id, seq)",
        "CREATE INDEX events_by_email ON events (email_key)",
        "CREATE INDEX events_by_type ON events (type, seq)",
        "CREATE INDEX events_by_time ON events (occurred_at)",
        # The outbox: one row per event and matching hook, written with the event,
        # deleted once the hook succeeds. A claim keeps two runners off one row.
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL REFERENCES events (id),
            command TEXT NOT NULL,
            timeout REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_attempt_at TEXT,
            claimed_until TEXT
        )""",
        "CREATE INDEX deliveries_by_event ON deliveries (event_id)",
    ),
    3: (
        # A search compares case-folded text; keep the folded name beside the name
        # so that a search is a plain scan in C, not a Python call per row.
        "ALTER TABLE users ADD COLUMN name_key TEXT",
        "UPDATE users SET name_key = text_key(name)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)


@contextlib.contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    """Turn the driver's errors into one line the user can act on."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        raise as_storage_error(e, path) from None


def as_storage_error(error: Exception, path: Path) -> StorageUnavailable:
    text = str(error)
    if "locked" in text or "busy" in text:
        return StorageUnavailable(
            f"database {path} is busy: another process holds its lock; retry later"
        )
    if "not a database" in text or "malformed" in text:
        return StorageUnavailable(f"{path} is not a readable usermgr database ({text})")
    return StorageUnavailable(f"database {path} is unavailable: {text}")


def connect(path: Path, busy_timeout: float, *, create: bool) -> sqlite3.Connection | None:
    """An open connection at the current schema, or None when there is no database yet
    and `create` is false. Writers (`create`) bring a new database into being, private."""
    if not path.exists():
        if not create:
            _check_location(path)
            return None
        _create_private_file(path)
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(path))}?mode=rw",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as e:
        raise StorageUnavailable(f"cannot open database {path}: {e}") from None
    _add_functions(conn)
    try:
        with storage_errors(path):
            if not _ready(conn, path, create):
                conn.close()
                return None
    except BaseException:
        conn.close()
        raise
    return conn


def _add_functions(conn: sqlite3.Connection) -> None:
    """SQL functions that migrations need: they compute what the application would."""
    conn.create_function("text_key", 1, text_key, deterministic=True)


def _check_location(path: Path) -> None:
    """A database not created yet reads as empty, unless it never could be created."""
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise StorageUnavailable(f"cannot use database {path}: {ancestor} is not a directory")
            return


def empty_database() -> sqlite3.Connection:
    """An in-memory database at the current schema: what a missing file reads as,
    for writers that must not bring the file into being (a failed command, a dry run)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    _add_functions(conn)
    for step in sorted(MIGRATIONS):
        for statement in MIGRATIONS[step]:
            conn.execute(statement)
    return conn


def _create_private_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # SQLite would create the file with the umask's mode, and its -wal and -shm
        # files copy that mode: make the file private before SQLite first opens it.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    except OSError as e:
        raise StorageUnavailable(f"cannot create database {path}: {e.strerror}") from None


def _state(conn: sqlite3.Connection) -> tuple[int, int, bool]:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    empty = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    return app_id, version, empty


def _ready(conn: sqlite3.Connection, path: Path, create: bool) -> bool:
    app_id, version, empty = _state(conn)
    if app_id != APPLICATION_ID and not (app_id == 0 and empty):
        raise StorageUnavailable(f"{path} is not a usermgr database; it was left untouched")
    if version > SCHEMA_VERSION:
        raise StorageUnavailable(
            f"{path} has schema version {version}, newer than this usermgr knows"
            f" ({SCHEMA_VERSION}): upgrade usermgr"
        )
    if empty and not create:
        return False
    if empty:
        # An empty file someone else made (`touch users.db`) is about to hold
        # password hashes: make it private like a file usermgr creates.
        os.chmod(path, 0o600)
    if version < SCHEMA_VERSION:
        migrate(conn, path)
    conn.execute("PRAGMA foreign_keys = ON")
    return True


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to date in one transaction; return the version it started at."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while this one waited for the lock.
        app_id, version, empty = _state(conn)
        if app_id != APPLICATION_ID and not (app_id == 0 and empty):
            raise StorageUnavailable(f"{path} is not a usermgr database; it was left untouched")
        if version > SCHEMA_VERSION:
            raise StorageUnavailable(
                f"{path} was upgraded to schema version {version} by a newer usermgr: upgrade usermgr"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if empty:
        # Readers never wait for the writer in WAL mode; the setting lives in the file.
        conn.execute("PRAGMA journal_mode = WAL")
    return version


class Database:
    """A connection opened on first use, for the driver-level read side; None-safe:
    with no database yet, every query finds nothing."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._opened = False

    def connection(self) -> sqlite3.Connection | None:
        if not self._opened:
            self._conn = connect(self.path, self._busy_timeout, create=False)
            self._opened = True
        return self._conn

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
        db = self.connection()
        if db is None:
            return []
        with storage_errors(self.path):
            return db.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """A one-statement write; returns the rows it changed."""
        db = self.connection()
        if db is None:
            return 0
        with storage_errors(self.path):
            return db.execute(sql, params).rowcount


def check(path: Path, busy_timeout: float) -> dict[str, object]:
    """Integrity, foreign keys and schema version; raises StorageUnavailable on a problem."""
    conn = connect(path, busy_timeout, create=False)
    if conn is None:
        raise StorageUnavailable(f"no usermgr database at {path}")
    try:
        with storage_errors(path):
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if integrity != ["ok"]:
                raise StorageUnavailable(f"{path} is damaged: {'; '.join(integrity[:3])}")
            orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
            if orphans:
                raise StorageUnavailable(f"{path} has {len(orphans)} rows with a broken foreign key")
            return {
                "path": str(path),
                "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
                "users": conn.execute("SELECT count(*) FROM users").fetchone()[0],
                "events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
                "pending_deliveries": conn.execute("SELECT count(*) FROM deliveries").fetchone()[0],
            }
    finally:
        conn.close()


def upgrade(path: Path, busy_timeout: float) -> tuple[int, int]:
    """Migrate explicitly, creating a missing database; return (version before, after)."""
    if not path.exists():
        conn = connect(path, busy_timeout, create=True)
        assert conn is not None  # create=True always gives a connection
        conn.close()
        return 0, SCHEMA_VERSION
    with storage_errors(path):
        peek = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=busy_timeout)
        try:
            before = peek.execute("PRAGMA user_version").fetchone()[0]
        finally:
            peek.close()
    conn = connect(path, busy_timeout, create=False)
    if conn is None:
        raise StorageUnavailable(f"{path} is an empty file, not a usermgr database yet")
    conn.close()
    return before, SCHEMA_VERSION


def backup(path: Path, target: Path, busy_timeout: float, *, force: bool) -> None:
    """A consistent online copy: into a private temporary file beside the target,
    integrity-checked, then renamed into place."""
    if target.is_dir():
        raise InvalidInput(f"{target} is a directory: give the backup file's path")
    if target.exists() and not force:
        raise InvalidInput(f"{target} exists: add --force to replace it")
    if target.resolve() == path.resolve():
        raise InvalidInput("the backup cannot replace the database itself")
    source = connect(path, busy_timeout, create=False)
    if source is None:
        raise StorageUnavailable(f"no usermgr database at {path}")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError as e:
        source.close()
        raise InvalidInput(f"cannot write {target}: {e.strerror}") from None
    try:
        with storage_errors(path):
            copy = sqlite3.connect(temporary)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")
                if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise StorageUnavailable("the backup copy failed its integrity check")
            finally:
                copy.close()
        os.replace(temporary, target)
    finally:
        source.close()
        if temporary.exists():
            temporary.unlink()
