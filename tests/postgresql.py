"""A throwaway PostgreSQL 15 server for the test suite (or an existing one named by
USERMGR_TEST_POSTGRESQL, a superuser URL), and a fresh empty database for each test.

Measured here: start_server() ~0.5-0.9 s (initdb -N, then pg_ctl start -w).
A database per test, CREATE DATABASE ... TEMPLATE template0 STRATEGY FILE_COPY, costs
9-17 ms (medians of 100) with the cluster on tmpfs but ~200 ms on this machine's disk
(FILE_COPY copies ~7.5 MB of catalog files and checkpoints twice), so the cluster lives
in /dev/shm. A schema per test would cost ~0.1 ms, but then every URL must carry a
search_path in libpq's `options`; a whole database is what usermgr is given in real
use, and at that cost (plus ~5 ms to drop it later) it is cheap enough. The next
database is made ahead, on a connection and thread of its own, while a test runs: a
test waits for its database only when it asks before the last one is made.
"""

from __future__ import annotations

import itertools
import os
import threading
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

BIN = Path("/usr/lib/postgresql/15/bin")
ENV_VAR = "USERMGR_TEST_POSTGRESQL"
UNAVAILABLE = "PostgreSQL 15 binaries not found and USERMGR_TEST_POSTGRESQL not set"

# A role that must give its password over TCP (scram-sha-256), for tests of password
# handling; every other login, over TCP or the Unix socket, is trusted.
PASSWORD_ROLE = "usermgr_pw"
PASSWORD = "s3cret-pw"

# fsync and friends off: a test server may lose its data in a crash, and these save
# most of the cost of each commit and checkpoint.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "password_encryption": "'scram-sha-256'",
}
HBA = f"""\
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""
# tmpfs: see the module's docstring for what the disk costs.
RAM_DISK = Path("/dev/shm")


class Unavailable(Exception):
    """Neither the binaries nor an existing server: the tests that need one can't run."""


class Server:
    """A PostgreSQL server reachable as superuser at `url`. `managed` is True for one
    that start_server() started: only that one can be restarted, and stop() deletes it."""

    def __init__(self, url: str, *, root: Path | None = None, watchdog: subprocess.Popen | None = None) -> None:
        self.url = url
        self.managed = root is not None
        # The folder holding the Unix socket, for tests of socket URLs (managed only).
        self.socket_dir = root
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 5432
        self._root = root
        self._watchdog = watchdog
        self._conn = None
        self._spare = _Spare(self)
        self._databases: set[str] = set()
        self._released: list[str] = []
        # Unique across runs too: an external server may be shared.
        self._names = (f"usermgr_test_{secrets.token_hex(3)}_{n}" for n in itertools.count(1))

    def execute(self, sql: str, params: tuple | None = None) -> list[tuple]:
        """Run one statement as superuser in autocommit mode (CREATE DATABASE refuses
        a transaction); the rows, if it returns any."""
        import psycopg2

        try:
            return self._execute(sql, params)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            # A test that terminated our backend leaves a dead connection: reconnect once.
            if self._conn is None or not self._conn.closed:
                raise
            self._close()
            return self._execute(sql, params)

    def url_for(self, database: str, *, user: str | None = None, password: str | None = None, **params: str) -> str:
        """This server's URL with another database and, optionally, another user
        (and password) or extra libpq parameters such as `options`."""
        parts = urlsplit(self.url)
        netloc = parts.netloc
        if user is not None:
            credentials = quote(user, safe="")
            if password is not None:
                credentials += ":" + quote(password, safe="")
            netloc = f"{credentials}@{netloc.rpartition('@')[2]}"
        query = "&".join(part for part in (parts.query, urlencode(params)) if part)
        return urlunsplit((parts.scheme, netloc, "/" + quote(database, safe=""), query, ""))

    def restart(self) -> None:
        """Stop (fast: open connections are closed) and start again on the same port."""
        if self._root is None:
            raise RuntimeError(f"cannot restart a server that start_server() did not start: {self.host}:{self.port}")
        self._spare.close()
        self._close()
        _pg_ctl(self._root, "stop", "-m", "fast")
        _start(self._root, self.port)

    def stop(self) -> None:
        """Managed: kill the server at once and delete its folder. External: drop the
        databases the tests left. Safe to call twice."""
        self._spare.close()
        if self._watchdog is not None:
            self._close()
            _release_watchdog(self._watchdog, self._root)
            self._watchdog = self._root = None
        elif not self.managed:
            for name in sorted(self._databases):
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._databases.clear()
            self._released.clear()
            self._close()

    def _execute(self, sql: str, params: tuple | None) -> list[tuple]:
        if self._conn is None or self._conn.closed:
            import psycopg2

            self._conn = psycopg2.connect(self.url)
            self._conn.autocommit = True
        with self._conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Spare:
    """The next database of fresh_database(), made in a thread of its own while the
    caller goes on: one CREATE DATABASE at a time, on its own connection."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._conn = None
        self._thread: threading.Thread | None = None
        self._template = ""
        self._made: tuple[str, BaseException | None] | None = None

    def start(self, name: str, template: str) -> None:
        def make() -> None:
            import psycopg2

            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg2.connect(self._server.url)
                    self._conn.autocommit = True
                with self._conn.cursor() as cursor:
                    cursor.execute(_create_database(name, template=template))
                self._made = (name, None)
            except BaseException as error:  # handed to take(), in the caller's thread
                self._made = (name, error)

        self._made = None
        self._template = template
        self._thread = threading.Thread(target=make, name="spare-database", daemon=True)
        self._thread.start()

    def take(self, template: str) -> str | None:
        """The name of the database made ahead from `template`, once it is made; None if
        none was started, or one of another template (then released, to be dropped)."""
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        assert self._made is not None
        name, error = self._made
        if error is not None:
            raise error
        if self._template != template:
            self._server._released.append(name)
            return None
        return name

    def close(self) -> None:
        """Wait for a database being made (it stays, and is dropped with the others)."""
        if self._thread is not None:
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _create_database(name: str, owner: str | None = None, template: str = "template0") -> str:
    sql = f"CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY ENCODING 'UTF8' LOCALE 'C.UTF-8'"
    return sql + (f' OWNER "{owner}"' if owner is not None else "")


def start_server() -> Server:
    """The server named by USERMGR_TEST_POSTGRESQL, or a new one in a temporary folder
    (on tmpfs where there is one). Raises Unavailable when neither can be had."""
    external = os.environ.get(ENV_VAR)
    if external:
        server = Server(external)
        _ensure_password_role(server)
        return server
    if not (BIN / "initdb").exists():
        raise Unavailable(UNAVAILABLE)
    base = RAM_DISK if RAM_DISK.is_dir() and os.access(RAM_DISK, os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="usermgr-pg-", dir=base))
    # However this process ends (a SIGTERM or SIGKILL runs no finalizer), its end
    # closes the watchdog's stdin, and the watchdog stops the server and deletes it.
    watchdog = subprocess.Popen(
        [sys.executable, __file__, str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        port = _start_managed(root)
        server = Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", root=root, watchdog=watchdog)
        _ensure_password_role(server)
    except BaseException:
        _release_watchdog(watchdog, root)
        raise
    return server


def fresh_database(server: Server, *, owner: str | None = None, template: str = "template0") -> str:
    """The URL of a new database with no tables, UTF8 and C.UTF-8 (text sorts byte by
    byte, as in SQLite), or a copy of `template` (a database of fresh_database() no one
    is connected to). `owner` (default: the superuser) owns it, may create tables in
    its public schema, and is the URL's user. Drops the databases released before."""
    made = None if owner is not None else server._spare.take(template)
    while server._released:
        name = server._released.pop()
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server._databases.discard(name)
    name = made or next(server._names)
    if made is None:  # the first call, an owner's database, or another template than the last
        server.execute(_create_database(name, owner, template))
    if owner is None:
        spare = next(server._names)
        server._databases.add(spare)
        server._spare.start(spare, template)
    server._databases.add(name)
    return server.url_for(name, user=owner)


def release_database(server: Server, url: str) -> None:
    """A test is done with a database of fresh_database(): the next call drops it. At
    once, DROP DATABASE would wait ~100 ms for the backend of a just-closed connection
    to exit; by the next test it has, and the drop takes ~5 ms. Dropping keeps the
    cluster small: each database is ~7.5 MB of RAM on tmpfs."""
    server._released.append(unquote(urlsplit(url).path.lstrip("/")))


def _start_managed(root: Path) -> int:
    """initdb, configure and start a server in `root`; the TCP port it listens on."""
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    _run_as_postgres(
        [str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
         "-E", "UTF8", "--locale=C.UTF-8", "-N", "--no-instructions"]
    )
    settings = {**SETTINGS, "unix_socket_directories": f"'{root}'"}
    with (data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    (data / "pg_hba.conf").write_text(HBA)
    # The kernel names a free port, but another process may bind it before postgres does.
    for attempt in range(3):
        port = _free_port()
        try:
            _start(root, port)
            break
        except RuntimeError as error:
            if attempt == 2 or "could not bind" not in str(error):
                raise
    return port


def _ensure_password_role(server: Server) -> None:
    exists = server.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PASSWORD_ROLE,))
    verb = "ALTER" if exists else "CREATE"
    server.execute(f'{verb} ROLE "{PASSWORD_ROLE}" LOGIN PASSWORD %s', (PASSWORD,))


def _start(root: Path, port: int) -> None:
    _pg_ctl(root, "start", "-l", str(root / "server.log"), "-o", f"-p {port}")


def _pg_ctl(root: Path, action: str, *args: str) -> None:
    try:
        _run_as_postgres([str(BIN / "pg_ctl"), action, "-D", str(root / "data"), "-w", "-t", "30", *args])
    except RuntimeError as error:
        raise RuntimeError(f"{error}\n--- server.log ---\n{_log_tail(root)}") from None


def _release_watchdog(watchdog: subprocess.Popen, root: Path) -> None:
    """Close the watchdog's stdin and wait while it destroys the server; do it here if
    the watchdog is gone or hangs."""
    watchdog.stdin.close()
    try:
        watchdog.wait(timeout=60)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()
    if root.exists():
        _destroy(root)


def _destroy(root: Path) -> None:
    """pg_ctl stop -m immediate (if that fails, SIGKILL the postmaster named in its pid
    file: its backends exit on their own once it is gone), then delete the folder."""
    pid_file = root / "data" / "postmaster.pid"
    if pid_file.exists():
        try:
            _pg_ctl(root, "stop", "-m", "immediate")
        except RuntimeError:
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
    shutil.rmtree(root, ignore_errors=True)


def _run_as_postgres(command: list[str]) -> None:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}")


def _log_tail(root: Path) -> str:
    try:
        return "\n".join((root / "server.log").read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no server log)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    # The watchdog of start_server(): wait for the end of stdin, then destroy the server.
    sys.stdin.read()
    _destroy(Path(sys.argv[1]))
