"""One connection to one engine, as the shared SQL code sees it.

Statements are written once, with `?` placeholders; an engine whose driver wants
another style rewrites them. Every driver error leaves as a UsermgrError."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

Row = tuple[Any, ...]
MAX_INT = 2**63 - 1  # both engines' largest integer: bigger numbers in a query are clamped


class Database(abc.ABC):
    """A driver connection with the engine's policies: private files, the write lock,
    the busy timeout, and errors translated into one line the user can act on."""

    engine: str
    location: str  # what messages call it: a path, or a URL without its password

    @abc.abstractmethod
    def _cursor(self) -> Any: ...

    @abc.abstractmethod
    def _sql(self, statement: str) -> str:
        """A statement in the driver's placeholder style."""

    @abc.abstractmethod
    def translate(self, error: BaseException) -> Exception | None:
        """The UsermgrError for a driver error, or None if it is not the driver's."""

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as e:
            translated = self.translate(e)
            if translated is None:
                raise
            raise translated from None

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        with self.errors():
            cursor = self._cursor()
            cursor.execute(self._sql(statement), tuple(params))
            return cursor.rowcount

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.errors():
            self._cursor().executemany(self._sql(statement), rows)

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A batch of new rows, by the engine's fastest way in."""
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def reindex(self, seq: int, old: tuple[str, str], new: tuple[str, str] | None) -> None:
        """Keep a search index the engine does not maintain itself in step with a user
        whose (name_key, email_key) changed, or who is gone (`new` None)."""

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.errors():
            cursor = self._cursor()
            cursor.execute(self._sql(statement), tuple(params))
            return cursor.fetchall()

    def one(self, statement: str, params: Sequence[Any] = ()) -> Row | None:
        found = self.rows(statement, params)
        return found[0] if found else None

    def count(self, table: str) -> int:
        """How many rows one of usermgr's own tables has."""
        found = self.one(f"SELECT count(*) FROM {table}")
        return found[0] if found else 0

    def stream(self, statement: str, params: Sequence[Any] = (), size: int = 2000) -> Iterator[Row]:
        """Rows one batch at a time, in constant memory."""
        with self.errors():
            cursor = self._cursor()
            cursor.execute(self._sql(statement), tuple(params))
            while batch := cursor.fetchmany(size):
                yield from batch

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Statements that may fail without failing the transaction around them."""
        self.execute("SAVEPOINT usermgr_attempt")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK TO SAVEPOINT usermgr_attempt")
            self.execute("RELEASE SAVEPOINT usermgr_attempt")
            raise
        self.execute("RELEASE SAVEPOINT usermgr_attempt")

    @abc.abstractmethod
    def begin_write(self) -> None:
        """Start a transaction holding the engine's single writer lock, waiting up to the busy timeout."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    def in_transaction(self) -> bool:
        return False


class Dialect:
    """What the shared SQL needs to know of an engine, beyond placeholders."""

    claim = (
        "UPDATE deliveries SET claimed_until = ?"
        " WHERE id = ? AND (claimed_until IS NULL OR claimed_until < ?)"
    )

    # Output lines built by the database, value for value what cli/output.py renders:
    # JSON objects with the fields in order, and CSV quoted as Python's csv module does
    # with lineterminator="\n" (a field with a comma, a quote or a newline is quoted).
    def json_line(self, columns: Sequence[str]) -> str:
        pairs = ", ".join(f"'{c}', {self._json_value(c)}" for c in columns)
        return f"json_object({pairs})"

    @staticmethod
    def _json_value(column: str) -> str:
        return "json(CASE WHEN is_active THEN 'true' ELSE 'false' END)" if column == "is_active" else column

    def csv_line(self, columns: Sequence[str]) -> str:
        return " || ',' || ".join(self._csv_cell(c) for c in columns)

    def _csv_cell(self, column: str) -> str:
        if column == "is_active":
            return "(CASE WHEN is_active THEN 'true' ELSE 'false' END)"
        text = f"coalesce({column}, '')"
        special = " OR ".join(f"{self.position(text, ch)} > 0" for ch in ("','", "'\"'", self.newline))
        return f"(CASE WHEN {special} THEN '\"' || replace({text}, '\"', '\"\"') || '\"' ELSE {text} END)"

    newline = "char(10)"

    @staticmethod
    def position(text: str, needle: str) -> str:
        return f"instr({text}, {needle})"

    def search(self, db: Any, needle: str) -> tuple[str, tuple[Any, ...]]:
        """A condition: the folded name or email holds `needle` as a plain substring
        (no wildcards). FTS5's trigram index serves needles of three characters or more."""
        if len(needle) >= 3 and db.has_search_index():
            return "seq IN (SELECT rowid FROM users_search WHERE users_search MATCH ?)", ('"' + needle.replace('"', '""') + '"',)
        return "(instr(name_key, ?) > 0 OR instr(email_key, ?) > 0)", (needle, needle)
