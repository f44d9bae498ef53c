from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import postgresql
from tests.fakes import FakeHasher, FakeStorage, FakeUnitOfWork, FixedClock
from tests.helpers import Cli
from usermgr.application.bus import MessageBus
from usermgr.bootstrap import build
from usermgr.infrastructure.config import Settings
from usermgr.infrastructure.storage import Location

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.fixture(scope="session")
def bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bytecode")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bytecode_cache: Path) -> Path:
    """Every test gets its own database, config (bcrypt cost 4) and home."""
    # The processes a test starts compile usermgr once per session, into a cache
    # outside the checkout, as an installed usermgr comes compiled: with
    # PYTHONDONTWRITEBYTECODE=1 (set on these machines) each would recompile it (~30 ms).
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(bytecode_cache))
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 4\n")
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "USERMGR_DEBUG", "NO_COLOR", "SUDO_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERMGR_DB", str(tmp_path / "users.db"))
    monkeypatch.setenv("USERMGR_CONFIG", str(config))
    return tmp_path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite file USERMGR_DB names, unless the test runs on another engine."""
    return tmp_path / "users.db"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def ada(cli: Cli) -> dict[str, Any]:
    """A user, ada@example.com, whose password is PASSWORD; as create --json printed it."""
    return cli.create("ada@example.com", "Ada Lovelace")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


@pytest.fixture
def storage(uow: FakeUnitOfWork) -> FakeStorage:
    return FakeStorage(uow)


@pytest.fixture
def services(storage: FakeStorage, hasher: FakeHasher, tmp_path: Path) -> MessageBus:
    """Handlers wired through the real composition root, with fakes for every port."""
    reports: list[str] = []
    built = build(
        Settings(database=Location("sqlite", path=tmp_path / "unused.db")),
        storage=storage,  # type: ignore[arg-type]
        hasher=hasher,
        clock=FixedClock(),
        report=reports.append,
    )
    built.reports = reports  # type: ignore[attr-defined]
    return built


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[postgresql.Server]:
    """One PostgreSQL server for the whole session, started by the first test that asks.
    Without one the tests that need it are skipped, except in CI, where that fails them."""
    try:
        server = postgresql.start_server()
    except postgresql.Unavailable as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(str(missing), pytrace=False)
        pytest.skip(str(missing))
    yield server
    server.stop()


@pytest.fixture
def postgresql_url(postgresql_server: postgresql.Server) -> Iterator[str]:
    """A new empty database on the session's server, as a postgresql:// URL."""
    url = postgresql.fresh_database(postgresql_server)
    yield url
    postgresql.release_database(postgresql_server, url)


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty database on each engine in turn, for a test written once for both:
    a SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "users.db")
    return request.getfixturevalue("postgresql_url")


@pytest.fixture(scope="session")
def usermgr_template(postgresql_server: postgresql.Server) -> str:
    """A database holding usermgr's tables and nothing else, to copy from."""
    from usermgr.infrastructure.storage import open_storage, parse_location

    url = postgresql.fresh_database(postgresql_server)
    where = parse_location(url, lambda: Path("unused"))
    storage = open_storage(where, busy_timeout=5, hooks=(), actor="tests", notice=lambda line: None)
    try:
        storage.admin.upgrade()
    finally:
        storage.close()
    return url.rpartition("/")[2]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once per engine. On postgresql USERMGR_DB names a new database that
    holds usermgr's tables already (a copy of a template: creating them takes more than
    the copy, in every test), and db_path names no file. A module opts in with
    `pytestmark = pytest.mark.usefixtures("engine")`; a test in it that no engine can
    change the outcome of is marked `sqlite_only(reason)`. What a first command does
    on a database with no tables is tested by the storage contract and test_operations."""
    if request.param == "sqlite":
        yield request.param
        return
    server = request.getfixturevalue("postgresql_server")
    url = postgresql.fresh_database(server, template=request.getfixturevalue("usermgr_template"))
    monkeypatch.setenv("USERMGR_DB", url)
    yield request.param
    postgresql.release_database(server, url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        on_postgresql = "postgresql" in (params.get("engine"), params.get("db_url"))
        only = item.get_closest_marker("sqlite_only")
        if only is not None and not only.args:
            raise pytest.UsageError(f"{item.nodeid}: say why it runs on SQLite only, sqlite_only(reason)")
        if on_postgresql and only is not None:
            dropped.append(item)
            continue
        # So that `-m "not postgresql"` leaves out every test that needs the server.
        if "postgresql_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
