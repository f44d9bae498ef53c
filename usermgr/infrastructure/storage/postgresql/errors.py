"""The psycopg2 driver behind the shared Database, and its errors in the user's words.

A password given in the URL is never part of a message: messages name the database
by its URL without the password, and any text from the driver is scrubbed of it."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg2
import psycopg2.extras

from usermgr.errors import EmailTaken, StorageUnavailable, UsermgrError
from usermgr.infrastructure.storage.sql import Database

UNIQUE_VIOLATION = "23505"
LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
READ_ONLY_TRANSACTION = "25006"
DISK_FULL = "53100"
INSUFFICIENT_PRIVILEGE = "42501"
EMAIL_CONSTRAINT = "users_email_key"
_cursor_names = itertools.count()
# Both engines take the same statements: `?` placeholders, and no `%` but as data.
_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=256)
def to_pyformat(statement: str) -> str:
    return _PLACEHOLDER.sub("%s", statement.replace("%", "%%"))


def _copy_text(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _first_line(error: BaseException) -> str:
    text = (getattr(error, "pgerror", None) or str(error)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class PostgresDatabase(Database):
    engine = "postgresql"

    def __init__(self, conn: Any, location: str, secrets: list[str], lock_timeout: float) -> None:
        self.conn = conn
        self.location = location
        self._secrets = secrets
        self._lock_timeout = lock_timeout
        self._bulk = False

    def _cursor(self) -> Any:
        return self.conn.cursor()

    def _sql(self, statement: str) -> str:
        return to_pyformat(statement)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def translate(self, error: BaseException) -> Exception | None:
        if not isinstance(error, psycopg2.Error):
            return None
        return translate(error, self.location, self.scrub)

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        # COPY is PostgreSQL's bulk path: one round trip for the whole batch.
        if not rows:
            return
        if table == "users" and not self._bulk:
            # New rows wait in the trigram indexes' pending list, merged in large steps,
            # instead of each entering the GIN trees one by one (five times slower).
            self.execute("SELECT set_config('gin_pending_list_limit', '65536', true)")
            self._bulk = True
        data = io.StringIO("".join("\t".join(map(_copy_text, row)) + "\n" for row in rows))
        with self.errors():
            self._cursor().copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", data)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        # psycopg2's executemany is a round trip per row; execute_batch sends pages.
        with self.errors():
            psycopg2.extras.execute_batch(self._cursor(), self._sql(statement), rows, page_size=1000)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read-only REPEATABLE READ transaction: every read inside sees the same data."""
        with self.errors():
            self.conn.set_session(readonly=True, isolation_level="REPEATABLE READ", autocommit=False)
        try:
            yield
        finally:
            self._end()

    def stream(self, statement: str, params: Sequence[Any] = (), size: int = 2000) -> Iterator[tuple[Any, ...]]:
        """Rows through a server-side cursor (in a snapshot of their own unless one is
        open already): constant memory on both sides, however many rows."""
        if self.conn.autocommit:
            with self.snapshot():
                yield from self._cursor_rows(statement, params, size)
        else:
            yield from self._cursor_rows(statement, params, size)

    def _cursor_rows(self, statement: str, params: Sequence[Any], size: int) -> Iterator[tuple[Any, ...]]:
        with self.errors():
            cursor = self.conn.cursor(name=f"usermgr_{next(_cursor_names)}")
            cursor.itersize = size
            cursor.execute(self._sql(statement), tuple(params))
            while batch := cursor.fetchmany(size):
                yield from batch
            cursor.close()

    def _end(self) -> None:
        try:
            self.conn.rollback()
            self.conn.set_session(readonly=False, isolation_level="DEFAULT", autocommit=True)
        except psycopg2.Error:
            pass  # the connection is gone; the error that ended the work says why

    def begin_write(self) -> None:
        with self.errors():
            self.conn.autocommit = False
        # One writer at a time, as SQLite's BEGIN IMMEDIATE: a transaction-scoped
        # advisory lock taken first, released by COMMIT or ROLLBACK, waited for up to
        # the busy timeout. Readers never wait for it.
        if self._lock_timeout <= 0:
            got = self.one("SELECT pg_try_advisory_xact_lock(?, hashtext(current_schema()))", (LOCK_KEY,))
            if not got or not got[0]:
                self.rollback()
                raise busy(self.location)
            return
        # lock_timeout, set for the session at connect, bounds this wait.
        self.execute("SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))", (LOCK_KEY,))

    def commit(self) -> None:
        if self._bulk:
            # Merge what waits in the trigram indexes' pending lists now, in bulk, so the
            # first search after an import is served by the index, not a pending-list scan.
            self.execute(
                "SELECT gin_clean_pending_list(c.oid) FROM pg_class c"
                " WHERE c.relname IN ('users_name_trgm', 'users_email_trgm')"
                " AND c.relnamespace = current_schema()::regnamespace"
            )
        with self.errors():
            self.conn.commit()
            self.conn.autocommit = True
        self._bulk = False

    def rollback(self) -> None:
        if not self.conn.closed and not self.conn.autocommit:
            self._end()

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()

    @property
    def in_transaction(self) -> bool:
        return not self.conn.autocommit


LOCK_KEY = 0x75736D67  # "usmg", with the schema's hash: one writer lock per usermgr schema


def busy(location: str) -> StorageUnavailable:
    return StorageUnavailable(
        f"database {location} is busy: another usermgr holds its write lock, or a session a lock on its tables"
        " (LOCK TABLE, VACUUM FULL, an open transaction); retry later"
    )


def translate(error: psycopg2.Error, location: str, scrub: Any) -> UsermgrError:
    """One line for a driver error, chosen by SQLSTATE and constraint name where the
    server gives them, never by a message's text."""
    code = getattr(error, "pgcode", None)
    diag = getattr(error, "diag", None)
    if code == UNIQUE_VIOLATION and diag is not None and diag.constraint_name == EMAIL_CONSTRAINT:
        return EmailTaken()
    if code == LOCK_NOT_AVAILABLE:
        return busy(location)
    if code == QUERY_CANCELED:
        return StorageUnavailable(f"database {location}: a statement timed out; nothing was changed")
    if code == DISK_FULL:
        return StorageUnavailable(f"database {location}: the server's disk is full; nothing was changed")
    if code in (READ_ONLY_TRANSACTION, INSUFFICIENT_PRIVILEGE):
        return StorageUnavailable(f"database {location}: not allowed: {scrub(_first_line(error))}")
    if isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError)) and code is None:
        return StorageUnavailable(
            f"lost the connection to PostgreSQL at {location}: {scrub(_first_line(error))};"
            " whatever it had not committed yet was rolled back (run it again if it had not finished)"
        )
    return StorageUnavailable(f"database {location} is unavailable: {scrub(_first_line(error))}")


def connection_error(error: psycopg2.Error, location: str, scrub: Any) -> StorageUnavailable:
    """Why a connection could not be made, with what to do about it."""
    text = scrub(_first_line(error))
    hint = "check the host, port and that the server runs"
    lowered = text.lower()
    if "password" in lowered or "authentication" in lowered:
        hint = "check the user and its password (PGPASSWORD, ~/.pgpass or a service file)"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "create the database first (usermgr creates its tables, never the database)"
    elif "does not exist" in lowered and "role" in lowered:
        hint = "check the user name"
    return StorageUnavailable(f"cannot connect to PostgreSQL at {location}: {text} ({hint})")
