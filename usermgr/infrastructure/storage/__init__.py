"""Storage behind one factory: the database URL picks the engine, and nothing above
this package knows which one it got."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
import re
from urllib.parse import unquote

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


# A libpq keyword/value connection string, `host=db dbname=app ...`.
_CONNINFO = re.compile(r"\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|options)\s*=", re.I)


def _not_a_location(text: str) -> str:
    """`text` for the message that it is no database: a conninfo string with its password
    hidden, a mistyped URL (`postgresql:/…`) by its scheme alone."""
    if _CONNINFO.match(text):
        return shown(re.sub(r"(?i)(password\s*=\s*)('[^']*'|\S*)", r"\1***", text))
    return shown(text.partition(":")[0]) + ":…"


def url_secrets(url: str) -> list[str]:
    """Every string of a URL that may be (part of) a password, longest first, to scrub
    from any message. A password with an unencoded '/', '?', '#' or '@' makes parsers
    disagree on where it ends (libpq's error may echo a piece of it), so every reading
    counts: what follows the first ':' up to each '@', any `password=` value, each raw
    and percent-decoded, and their pieces between those characters."""
    rest = url.partition("://")[2]
    found: set[str] = set()
    for at in (n for n, c in enumerate(rest) if c == "@"):
        user, colon, password = rest[:at].partition(":")
        if colon:
            found.add(password)
    found.update(re.findall(r"(?i)password=([^&#]*)", rest))
    pieces = {piece for secret in found for piece in re.split(r"[/?#@:&]", secret) if len(piece) >= 3}
    every = {variant for text in found | pieces for variant in (text, unquote(text))}
    return sorted((text for text in every if text), key=len, reverse=True)


def without_password(url: str) -> str:
    """A URL fit for a message: `user@host` for `user:password@host`, and any other
    reading of a password replaced by ***."""
    scheme, separator, rest = url.partition("://")
    user = rest.partition(":")[0]
    for secret in url_secrets(url):
        if rest.startswith(f"{user}:{secret}@"):
            rest = user + rest[len(user) + 1 + len(secret) :]
        rest = rest.replace(secret, "***")
    return shown(scheme + separator + rest)


def parse_location(text: str | None, default: Callable[[], Path]) -> Location:
    """A file path or a database URL; None means usermgr.db in the per-user data directory."""
    if not text:
        return Location("sqlite", path=default())
    if "://" not in text:
        if _CONNINFO.match(text) or text.lower().startswith(tuple(f"{s}:" for s in (*POSTGRESQL_SCHEMES, *SQLITE_SCHEMES))):
            # `host=db dbname=app` or `postgresql:/db`: meant for a server, not a file to create here.
            raise InvalidInput(
                f"database {_not_a_location(text)} is neither a file path nor a URL:"
                " use postgresql://USER@HOST/DBNAME (or sqlite:///PATH)"
            )
        return Location("sqlite", path=Path(text).expanduser())
    scheme, _, rest = text.partition("://")
    if scheme.lower() in POSTGRESQL_SCHEMES:
        return Location("postgresql", url="postgresql://" + rest)  # libpq takes the scheme in lower case only
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
