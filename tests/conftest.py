from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests import postgresql
from tests.fakes import FakeHasher, FakeStorage, FakeUnitOfWork, FixedClock
from usermgr.application.bus import MessageBus
from usermgr.bootstrap import build
from usermgr.infrastructure.config import Settings
from usermgr.infrastructure.storage import Location

PASSWORD = "correct horse battery staple"
# The installed console script, next to the interpreter running the tests.
USERMGR = str(Path(sys.executable).with_name("usermgr"))


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own database, config (bcrypt cost 4) and home."""
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 4\n")
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "USERMGR_DEBUG", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERMGR_DB", str(tmp_path / "users.db"))
    monkeypatch.setenv("USERMGR_CONFIG", str(config))
    return tmp_path


@pytest.fixture(scope="session")
def click_command() -> object:
    import typer.main

    from usermgr.cli import app

    return typer.main.get_command(app)


@pytest.fixture(autouse=True)
def build_the_cli_once(monkeypatch: pytest.MonkeyPatch, click_command: object) -> None:
    """typer's CliRunner rebuilds the Click tree from the app on every invoke (~40 ms of
    signature parsing); a real process builds it once. Build it once here too."""
    import typer.testing

    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: click_command)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "users.db"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


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


def invoke_app(
    runner: CliRunner, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run the CLI in-process; whatever happens, it ends in a clean exit, never a traceback."""
    from usermgr.cli import app

    result = runner.invoke(app, list(args), input=input, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def run_usermgr(*args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed executable as cron would: no terminal, plain pipes."""
    return subprocess.run(
        [USERMGR, *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty database on each engine in turn, for a test written once for both:
    a SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "users.db")
    return request.getfixturevalue("postgresql_url")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # So that `-m "not postgresql"` leaves out every test that needs the server.
    for item in items:
        if "postgresql_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)
