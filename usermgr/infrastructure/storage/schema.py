"""The one schema, as numbered migrations that every engine applies in order.

A step is a statement both engines take, a pair of engine-specific statements, or a
Python function over the open transaction (for what SQL alone cannot compute, such
as case folding or the audit chain). Never edit a shipped migration: add one."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

from usermgr.application.ports import Hook
from usermgr.domain.audit import GENESIS, chain_hash
from usermgr.domain.values import text_key
from usermgr.errors import StorageUnavailable
from usermgr.infrastructure.storage.sql import Database
from usermgr.infrastructure.storage.views import event_data


@dataclass(frozen=True)
class Context:
    """What a migration may need beyond the database: the config's hooks, to name old deliveries."""

    hooks: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class PerEngine:
    """Statements in each engine's own SQL; an empty tuple where an engine needs none."""

    sqlite: str | tuple[str, ...]
    postgresql: str | tuple[str, ...]

    def statements(self, engine: str) -> tuple[str, ...]:
        chosen = getattr(self, engine)
        return (chosen,) if isinstance(chosen, str) else chosen


Step = Union[str, PerEngine, Callable[[Database, Context], None]]



def _fill_name_keys(db: Database, context: Context) -> None:
    # A search compares case-folded text; keep the folded name beside the name so
    # that a search is a plain scan in the database, not a Python call per row.
    rows = db.rows("SELECT id, name FROM users")
    db.executemany("UPDATE users SET name_key = ? WHERE id = ?", [(text_key(name), user_id) for user_id, name in rows])


def _name_old_deliveries(db: Database, context: Context) -> None:
    # usermgr 0.1 stored each delivery's argv, which made the database a command
    # channel. Keep only a hook's name: the configured hook with that same command
    # for that event type, if there is one; else NULL, an orphan never run again.
    rows = db.rows("SELECT d.id, d.command, e.type FROM deliveries d JOIN events e ON e.id = d.event_id")
    named = []
    for delivery_id, command, event_type in rows:
        try:
            argv = tuple(json.loads(command))
        except (TypeError, ValueError):
            argv = None
        hook = next((h for h in context.hooks if h.command == argv and h.matches(event_type)), None)
        named.append((hook.name if hook else None, delivery_id))
    db.executemany("UPDATE deliveries SET hook = ? WHERE id = ?", named)


def _chain_existing_events(db: Database, context: Context) -> None:
    prev = GENESIS
    updates = []
    for seq, *fields in db.rows("SELECT seq, id, type, user_id, occurred_at, actor, data FROM events ORDER BY seq"):
        event = dict(zip(("id", "type", "user_id", "occurred_at", "actor", "data"), fields))
        event["data"] = event_data(event["data"])
        prev = chain_hash(event, prev)
        updates.append((prev, seq))
    db.executemany("UPDATE events SET hash = ? WHERE seq = ?", updates)


def _search_index(db: Database, context: Context) -> None:
    # Substring search served by an index: FTS5's trigram tokenizer over the folded
    # keys on SQLite, pg_trgm GIN indexes on PostgreSQL. Where the engine lacks it
    # (an SQLite built without FTS5, a server without postgresql-contrib or without
    # the right to create the extension) a search stays a scan, as right and slower.
    statements = SEARCH_INDEX[db.engine]
    try:
        with db.savepoint():
            for statement in statements:
                db.execute(statement)
    except StorageUnavailable:
        pass


SEARCH_INDEX = {
    # usermgr keeps the FTS5 index in step with the users table itself, in the same
    # transaction as each change (storage/sqlite/errors.py): triggers, even ones that
    # do nothing, made every insert three times as slow.
    "sqlite": (
        "CREATE VIRTUAL TABLE users_search USING fts5(name_key, email_key, content='users',"
        " content_rowid='seq', tokenize='trigram case_sensitive 1')",
        "INSERT INTO users_search (users_search) VALUES ('rebuild')",
    ),
    # On expressions (`|| ''` changes no value) rather than the columns: pg_trgm also
    # serves `=`, and the planner chose it for a lookup of 2,000 emails, which took 40 s
    # instead of 10 ms. A search names the same expressions (see PostgresDialect).
    "postgresql": (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "CREATE INDEX users_name_trgm ON users USING gin ((name_key || '') gin_trgm_ops)",
        "CREATE INDEX users_email_trgm ON users USING gin ((email_key || '') gin_trgm_ops)",
    ),
}


MIGRATIONS: dict[int, Sequence[Step]] = {
    1: (
        PerEngine(
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
            # Text compared and sorted byte by byte, as SQLite does, whatever the
            # database's collation; seq orders users created in the same microsecond.
            """CREATE TABLE users (
                seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
                id TEXT COLLATE "C" PRIMARY KEY,
                email TEXT NOT NULL,
                email_key TEXT COLLATE "C" NOT NULL CONSTRAINT users_email_key UNIQUE,
                name TEXT NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('user', 'admin', 'moderator')),
                is_active BOOLEAN NOT NULL,
                password_hash TEXT,
                created_at TEXT COLLATE "C" NOT NULL,
                updated_at TEXT COLLATE "C"
            )""",
        ),
        PerEngine(
            "CREATE INDEX users_by_created ON users (created_at)",
            "CREATE INDEX users_by_created ON users (created_at, seq)",
        ),
        "CREATE INDEX users_by_role ON users (role, created_at)",
        "CREATE INDEX users_by_active ON users (is_active, created_at)",
    ),
    2: (
        # The audit log, written in the same transaction as the change it records.
        # email_key is the user's email at that time, so a lookup by email finds
        # every user who has had it, deleted ones too.
        PerEngine(
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
            """CREATE TABLE events (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT COLLATE "C" NOT NULL UNIQUE,
                type TEXT COLLATE "C" NOT NULL,
                user_id TEXT COLLATE "C" NOT NULL,
                email_key TEXT COLLATE "C" NOT NULL,
                occurred_at TEXT COLLATE "C" NOT NULL,
                actor TEXT NOT NULL,
                data TEXT NOT NULL
            )""",
        ),
        "CREATE INDEX events_by_user ON events (user_id, seq)",
        "CREATE INDEX events_by_email ON events (email_key)",
        "CREATE INDEX events_by_type ON events (type, seq)",
        "CREATE INDEX events_by_time ON events (occurred_at)",
        # The outbox: one row per event and matching hook, written with the event,
        # deleted once the hook succeeds. A claim keeps two runners off one row.
        PerEngine(
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
            """CREATE TABLE deliveries (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id TEXT COLLATE "C" NOT NULL REFERENCES events (id),
                command TEXT NOT NULL,
                timeout DOUBLE PRECISION NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                last_attempt_at TEXT COLLATE "C",
                claimed_until TEXT COLLATE "C"
            )""",
        ),
        "CREATE INDEX deliveries_by_event ON deliveries (event_id)",
    ),
    3: (
        PerEngine("ALTER TABLE users ADD COLUMN name_key TEXT", 'ALTER TABLE users ADD COLUMN name_key TEXT COLLATE "C"'),
        _fill_name_keys,
    ),
    4: (
        # Deliveries name their hook and keep no command (see _name_old_deliveries).
        "ALTER TABLE deliveries ADD COLUMN hook TEXT",
        _name_old_deliveries,
        PerEngine(
            # A rebuild rather than DROP COLUMN, which SQLite only has since 3.35.
            (
                """CREATE TABLE deliveries_v4 (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id TEXT NOT NULL REFERENCES events (id),
                    hook TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    last_attempt_at TEXT,
                    claimed_until TEXT
                )""",
                "INSERT INTO deliveries_v4 (id, event_id, hook, attempts, last_error, last_attempt_at, claimed_until)"
                " SELECT id, event_id, hook, attempts, last_error, last_attempt_at, claimed_until FROM deliveries",
                "DROP TABLE deliveries",
                "ALTER TABLE deliveries_v4 RENAME TO deliveries",
                "CREATE INDEX deliveries_by_event ON deliveries (event_id)",
            ),
            "ALTER TABLE deliveries DROP COLUMN command, DROP COLUMN timeout",
        ),
    ),
    5: (
        # The audit chain: each event's hash covers it and the hash before it.
        "ALTER TABLE events ADD COLUMN hash TEXT",
        _chain_existing_events,
    ),
    6: (
        # SQLite users get a stable integer key (seq, as on PostgreSQL): the search index
        # refers to rows by it, and a VACUUM may renumber a plain rowid. A rebuild keeps
        # every row in its order.
        PerEngine(
            (
                """CREATE TABLE users_v6 (
                    seq INTEGER PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    email TEXT NOT NULL,
                    email_key TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    role TEXT NOT NULL CHECK (role IN ('user', 'admin', 'moderator')),
                    is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
                    password_hash TEXT,
                    created_at TEXT NOT NULL,
                    updated_at TEXT,
                    name_key TEXT NOT NULL
                )""",
                "INSERT INTO users_v6 (seq, id, email, email_key, name, role, is_active, password_hash, created_at,"
                " updated_at, name_key) SELECT rowid, id, email, email_key, name, role, is_active, password_hash,"
                " created_at, updated_at, name_key FROM users ORDER BY rowid",
                "DROP TABLE users",
                "ALTER TABLE users_v6 RENAME TO users",
                "CREATE INDEX users_by_created ON users (created_at, seq)",
                "CREATE INDEX users_by_role ON users (role, created_at)",
                "CREATE INDEX users_by_active ON users (is_active, created_at)",
            ),
            "ALTER TABLE users ALTER COLUMN name_key SET NOT NULL",
        ),
        _search_index,
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)


def apply(db: Database, version: int, context: Context) -> None:
    """Run every migration after `version`, inside the caller's write transaction."""
    for number in range(version + 1, SCHEMA_VERSION + 1):
        for step in MIGRATIONS[number]:
            if isinstance(step, str):
                db.execute(step)
            elif isinstance(step, PerEngine):
                for statement in step.statements(db.engine):
                    db.execute(statement)
            else:
                step(db, context)


def check_known(location: str, version: int, trigger: str | None) -> None:
    """What either engine refuses in a database that is usermgr's: a newer schema, and
    a trigger (usermgr makes none, and one would run inside usermgr's own writes, e.g.
    copying a new password hash into a name that every list prints)."""
    if version > SCHEMA_VERSION:
        raise StorageUnavailable(
            f"{location} has schema version {version}, newer than this usermgr knows ({SCHEMA_VERSION}): upgrade usermgr"
        )
    if trigger is not None:
        raise StorageUnavailable(
            f"{location} has a trigger usermgr did not create ({trigger}), so its schema was changed by hand;"
            " nothing was done: inspect it, then DROP TRIGGER it"
        )
