"""Opening a SQLite database: what is ours to touch, private creation, migrations.

usermgr never changes a file it did not create: a path that is not a regular file
is refused before anything opens it, a mode is set only on a file or folder this
process just made, and a file that is not a usermgr database is never written."""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from usermgr.errors import StorageUnavailable, shown
from usermgr.infrastructure.storage import schema
from usermgr.infrastructure.storage.sqlite.errors import SqliteDatabase, translate

APPLICATION_ID = 0x75736D67  # "usmg": marks a file as a usermgr database


def check_path(path: Path) -> bool:
    """Whether a database file is there; refuse what is not a regular file, untouched."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        _check_location(path)
        return False
    except NotADirectoryError:
        raise StorageUnavailable(f"cannot use database {shown(path)}: a folder on its path is a file") from None
    except OSError as e:
        raise StorageUnavailable(f"cannot use database {shown(path)}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise StorageUnavailable(
            f"{shown(path)} is {kind}, not a database file; usermgr left it untouched (give a file path)"
        )
    return True


def _check_location(path: Path) -> None:
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise StorageUnavailable(f"cannot use database {shown(path)}: {shown(ancestor)} is not a directory")
            return


def _connect(uri: str, path: Path, busy_timeout: float) -> SqliteDatabase:
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise StorageUnavailable(f"cannot open database {shown(path)}: {e}") from None
    return SqliteDatabase(conn, path)


def _uri(path: Path, mode: str) -> str:
    return f"file:{quote(str(path))}?mode={mode}"


def open_for_reading(path: Path, busy_timeout: float, context: schema.Context) -> SqliteDatabase | None:
    """A connection for reads at the current schema, or None where there is no database yet.

    It opens read-write when it may (SQLite then tidies the -wal and -shm files away
    when it closes; the file itself is not written) and falls back to read-only."""
    if not check_path(path):
        return None
    db = _connect(_uri(path, "rw"), path, busy_timeout)
    try:
        db.conn.execute("PRAGMA application_id")
    except sqlite3.Error as e:
        db.close()
        if getattr(e, "sqlite_errorname", "") != "SQLITE_READONLY_DIRECTORY":
            raise translate(e, path) or e from None
        # A WAL database in a folder we may not write: SQLite cannot make its
        # shared-memory file. No writer can be at work without one: read the file as is.
        db = _connect(_uri(path, "ro") + "&immutable=1", path, busy_timeout)
    try:
        state = _state(db)
        _check_ours(state, path)
    except BaseException:
        db.close()
        raise
    if state.empty:
        db.close()
        return None
    if state.version < schema.SCHEMA_VERSION:
        db.close()
        migrated = open_for_writing(path, busy_timeout, context, create=False)
        if migrated is not None:
            migrated.close()
        return open_for_reading(path, busy_timeout, context)
    return db


def open_for_writing(path: Path, busy_timeout: float, context: schema.Context, *, create: bool) -> SqliteDatabase | None:
    """A read-write connection at the current schema; None where there is no database
    and `create` is false. A new database appears whole: built privately beside its
    path and linked into place, so no process ever sees it empty."""
    if not check_path(path):
        if not create:
            return None
        _create(path, busy_timeout, context)
    return _open_existing(path, busy_timeout, context, upgrade=True)


def create_or_open(path: Path, busy_timeout: float, context: schema.Context) -> tuple[SqliteDatabase, bool]:
    """A read-write connection, and whether this process created the database."""
    created = not check_path(path) and _create(path, busy_timeout, context)
    return _open_existing(path, busy_timeout, context, upgrade=False), created


def _open_existing(path: Path, busy_timeout: float, context: schema.Context, upgrade: bool) -> SqliteDatabase:
    db = _connect(_uri(path, "rw"), path, busy_timeout)
    try:
        state = _state(db)
        _check_ours(state, path)
        if upgrade and state.version < schema.SCHEMA_VERSION:
            migrate(db, context)
    except BaseException:
        db.close()
        raise
    return db


def _make_private_folders(folder: Path) -> None:
    """Create the missing folders on the way, each 0700 whatever the umask."""
    missing = []
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            break
        missing.append(ancestor)
    for new in reversed(missing):
        try:
            os.mkdir(new, 0o700)
        except FileExistsError:
            continue  # another process made it: it is not ours to change
        os.chmod(new, 0o700)  # we just made it; the umask may have taken bits away


def _create(path: Path, busy_timeout: float, context: schema.Context) -> bool:
    """Bring a new database into being; whether this process did (another may have won)."""
    try:
        _make_private_folders(path.parent)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError as e:
        raise StorageUnavailable(f"cannot create database {shown(path)}: {e.strerror}") from None
    try:
        db = _connect(_uri(temporary, "rw"), path, busy_timeout)
        try:
            migrate(db, context)
        finally:
            db.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False  # another process created it first: use theirs
        except OSError as e:
            raise StorageUnavailable(f"cannot create database {shown(path)}: {e.strerror}") from None
        return True
    finally:
        for leftover in (temporary, *(temporary.with_name(temporary.name + s) for s in ("-wal", "-shm"))):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


class State:
    def __init__(self, application_id: int, version: int, empty: bool, trigger: str | None) -> None:
        self.application_id = application_id
        self.version = version
        self.empty = empty
        self.trigger = trigger  # usermgr makes none: one is someone else's code in the file


def _state(db: SqliteDatabase) -> State:
    application_id = db.one("PRAGMA application_id")
    version = db.one("PRAGMA user_version")
    found = db.one("SELECT count(*), min(CASE WHEN type = 'trigger' THEN name END) FROM sqlite_master")
    assert application_id is not None and version is not None and found is not None
    return State(application_id[0], version[0], found[0] == 0, found[1])


def schema_version(db: SqliteDatabase) -> int:
    return _state(db).version


def _check_ours(state: State, path: Path) -> None:
    if state.application_id != APPLICATION_ID and not (state.application_id == 0 and state.empty):
        raise StorageUnavailable(f"{shown(path)} is not a usermgr database; it was left untouched")
    schema.check_known(shown(path), state.version, None if state.trigger is None else shown(state.trigger))


def migrate(db: SqliteDatabase, context: schema.Context) -> int:
    """Bring the schema up to date in one transaction; the version it started at."""
    db.begin_write()
    try:
        # Another process may have migrated while this one waited for the lock.
        state = _state(db)
        _check_ours(state, db.path)
        if state.empty:
            _refuse_if_shared(db.path)
        schema.apply(db, state.version, context)
        db.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.commit()
    except BaseException:
        db.rollback()
        raise
    if state.empty:
        # Readers never wait for the writer in WAL mode; the setting lives in the file.
        db.execute("PRAGMA journal_mode = WAL")
    return state.version


def _refuse_if_shared(path: Path) -> None:
    # An empty file someone else made (`touch users.db`) is about to hold password
    # hashes. It is not ours to chmod; if others may read it, leave it as it is.
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        raise StorageUnavailable(
            f"{shown(path)} is an empty file that others may read (mode {mode:04o}), so it was left untouched:"
            " chmod 600 it, or remove it and usermgr creates a private one"
        )


def empty_database(path: Path | str) -> SqliteDatabase:
    """An in-memory database at the current schema: what a missing file reads as,
    for writers that must not bring the file into being (a failed command, a dry run)."""
    db = SqliteDatabase(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False), path)
    db.begin_write()
    schema.apply(db, 0, schema.Context())
    db.commit()
    return db
