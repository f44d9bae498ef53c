"""Opening a PostgreSQL database: libpq's own environment, usermgr's tables and their version.

usermgr creates and migrates its own tables in an existing database (never the
database itself). Its schema version lives in a table of its own, `usermgr_schema`,
which also marks the tables as usermgr's: a database with a `users`, `events` or
`deliveries` table but no such mark is someone else's, and is never written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg2

from usermgr.errors import StorageUnavailable
from usermgr.infrastructure.storage import schema, url_secrets, without_password
from usermgr.infrastructure.storage.postgresql.errors import PostgresDatabase, connection_error

APPLICATION = "usermgr"
DEFAULT_CONNECT_TIMEOUT = 10  # seconds; libpq's own default waits as long as TCP does
OUR_TABLES = ("users", "events", "deliveries")


@dataclass(frozen=True)
class State:
    marked: bool
    version: int
    foreign: list[str]  # tables with our names but not our mark
    trigger: str | None = None  # usermgr makes none: one is someone else's code on our tables


def connect(url: str, lock_timeout: float) -> PostgresDatabase:
    location = without_password(url)
    secrets = url_secrets(url)
    options: dict[str, Any] = {"application_name": APPLICATION}
    if "connect_timeout" not in url and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    try:
        conn = psycopg2.connect(url, **options)
    except psycopg2.Error as e:
        scrub = PostgresDatabase(None, location, secrets, lock_timeout).scrub
        raise connection_error(e, location, scrub) from None
    conn.autocommit = True
    db = PostgresDatabase(conn, location, secrets, lock_timeout)
    # Every lock a command waits for, a reader's behind `LOCK TABLE` or VACUUM FULL
    # included, waits at most busy_timeout (0: not at all; PostgreSQL's 0 is for ever).
    db.execute("SELECT set_config('lock_timeout', ?, false)", (f"{max(1, int(lock_timeout * 1000))}ms",))
    return db


def state(db: PostgresDatabase) -> State:
    found = db.rows(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
        " AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname IN ('usermgr_schema', 'users', 'events', 'deliveries')"
    )
    names = {name for (name,) in found}
    if "usermgr_schema" not in names:
        return State(False, 0, sorted(names & set(OUR_TABLES)))
    row = db.one(
        "SELECT version, (SELECT min(t.tgname) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal"
        " AND c.relname IN ('usermgr_schema', 'users', 'events', 'deliveries'))"
        " FROM usermgr_schema WHERE application = ?",
        (APPLICATION,),
    )
    if row is None:
        return State(False, 0, ["usermgr_schema"])
    return State(True, row[0], [], row[1])


def check_ours(found: State, location: str) -> None:
    if found.foreign:
        raise StorageUnavailable(
            f"{location} holds tables that are not usermgr's ({', '.join(found.foreign)});"
            " they were left untouched (give usermgr a database or schema of its own)"
        )
    schema.check_known(location, found.version, found.trigger)


def migrate(db: PostgresDatabase, context: schema.Context) -> State:
    """Create or bring the tables up to date in one transaction under the write lock,
    so that several hosts starting at once on an empty database make them once. The
    state it found under the lock: another host may have migrated since a first look."""
    db.begin_write()
    try:
        found = state(db)
        check_ours(found, db.location)
        if not found.marked:
            db.execute("CREATE TABLE usermgr_schema (application TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            db.execute("INSERT INTO usermgr_schema (application, version) VALUES (?, 0)", (APPLICATION,))
        schema.apply(db, found.version, context)
        db.execute("UPDATE usermgr_schema SET version = ? WHERE application = ?", (schema.SCHEMA_VERSION, APPLICATION))
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return found


def open_database(url: str, lock_timeout: float, context: schema.Context, *, create: bool) -> PostgresDatabase | None:
    """A connection at the current schema; None where usermgr has no tables yet and
    `create` is false (a reader, or a writer that must not create them)."""
    db = connect(url, lock_timeout)
    try:
        found = state(db)
        check_ours(found, db.location)
        if not found.marked and not create:
            db.close()
            return None
        if found.version < schema.SCHEMA_VERSION:
            migrate(db, context)
    except BaseException:
        db.close()
        raise
    return db
