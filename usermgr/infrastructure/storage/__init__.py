"""Storage behind one factory: the database URL picks the engine, and nothing above
this package knows which one it got."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from usermgr.application.ports import DeliveryLog, EventViews, Hook, StorageAdmin, UnitOfWork, UserViews
from usermgr.errors import InvalidInput, shown

POSTGRESQL_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")


@dataclass(frozen=True)
class Location:
    """Where the data lives: a SQLite file, or a PostgreSQL database (libpq URL)."""

    engine: str
    path: Path | None = None
    url: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return shown(self.path)
        return without_password(self.url or "")


def without_password(url: str) -> str:
    """A URL fit for a message: no password, neither in its user part nor in its parameters."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}@{host}"
        query = "&".join(
            f"{k}=***" if k.lower() == "password" else f"{k}={v}" for k, v in parse_qsl(parts.query, keep_blank_values=True)
        )
        return shown(urlunsplit((parts.scheme, netloc, parts.path, query, "")))
    except ValueError:
        return "the PostgreSQL database (its URL could not be shown safely)"


def parse_location(text: str | None, default: Callable[[], Path]) -> Location:
    """A file path or a database URL; None means usermgr.db in the per-user data directory."""
    if not text:
        return Location("sqlite", path=default())
    if "://" not in text:
        return Location("sqlite", path=Path(text).expanduser())
    scheme, _, rest = text.partition("://")
    if scheme.lower() in POSTGRESQL_SCHEMES:
        return Location("postgresql", url=text)
    if scheme.lower() in SQLITE_SCHEMES:
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise InvalidInput(f"database URL {shown(text)} names no file: use sqlite:///PATH")
        return Location("sqlite", path=Path(rest[1:]).expanduser())
    raise InvalidInput(
        f"unsupported database URL scheme {shown(scheme)!r}: use a file path, sqlite:///PATH or postgresql://..."
    )


class Storage(abc.ABC):
    """One engine's adapters for every port the application has on storage."""

    users: UserViews
    events: EventViews
    deliveries: DeliveryLog
    admin: StorageAdmin

    @abc.abstractmethod
    def unit_of_work(self, create: bool) -> UnitOfWork:
        """A unit of work; with `create`, its first use may bring a missing database into being."""

    @abc.abstractmethod
    def close(self) -> None: ...


def open_storage(
    location: Location,
    *,
    busy_timeout: float,
    hooks: tuple[Hook, ...],
    actor: str,
    notice: Callable[[str], None],
) -> Storage:
    """The engine for a location; its driver is imported only now, and connections
    open only when a command first needs one."""
    if location.engine == "postgresql":
        try:
            from usermgr.infrastructure.storage.postgresql import PostgresStorage
        except ImportError as e:
            if e.name is None or not e.name.startswith("psycopg2"):
                raise
            raise InvalidInput(
                "PostgreSQL needs the driver: install usermgr with its extra,"
                " pipx install 'usermgr[postgresql]' (or pip install 'usermgr[postgresql]')"
            ) from None
        assert location.url is not None
        return PostgresStorage(location.url, busy_timeout=busy_timeout, hooks=hooks, actor=actor, notice=notice)
    from usermgr.infrastructure.storage.sqlite import SqliteStorage

    assert location.path is not None
    return SqliteStorage(location.path, busy_timeout=busy_timeout, hooks=hooks, actor=actor, notice=notice)
