"""usermgr next to its peers on the same data, on SQLite and PostgreSQL, in one run:
issue 12's figures, each with its ratio and its goal. Not a test: run it and read the table.

    python3 benchmarks/peers.py                 # 1,000,000 users, about 6 minutes on 2 cores
    python3 benchmarks/peers.py --quick         # 100,000 users, fewer runs, about 3.5 minutes
    python3 benchmarks/peers.py --full          # also import 1,000,000 pre-hashed users into an empty
                                                # database (each engine's import stops at 10 minutes)
    python3 benchmarks/peers.py --postgresql postgresql://u@host/emptydb

Any python3 (3.11+) runs it. It installs this checkout into a fresh venv with pip (as
run.py does: precompiled, as pipx would) and Django 5.2 into another, fills both
programs' databases with the same users by SQL, and times whole processes. Each ratio
is the median of usermgr's runs over the median of the peer's, the runs alternating
between the two so that a drift in the machine's load hits both alike.

The PostgreSQL server is a throwaway one (tests/postgresql.py) on tmpfs with fsync,
synchronous_commit and full_page_writes turned back on, as in engines.py; the SQLite
files sit on the same tmpfs, so neither engine pays for a disk. With --postgresql, the
URL names an empty database for usermgr; Django's tables go into another one
(--django-postgresql, or one this script creates beside it and drops at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from engines import durable_server, interleaved
from run import FIXED_HASH, PASSWORD, ROOT

NEEDLE = "quuxley"
MATCH_EVERY = 50_000  # one user in 50,000 has the needle in its name
# 2020-01-01T00:00:00Z; user i was created i seconds later.
EPOCH = 1_577_836_800
IMPORT_LIMIT = 600  # seconds before an import run is stopped
ONE_RUN_ENOUGH = 60  # seconds: an import run this slow is not repeated
EXPORT_SQL = "select id, email, name, role, is_active, created_at, updated_at from users order by created_at, seq"

# The same users in both engines and for Django: user i is bulk{i}@example.com; one in
# 100 is an admin, one in 100 a moderator, one in 20 inactive, one in 10 updated a day
# later. Ids are random UUIDs, as usermgr makes them.
SQLITE_USERS = f"""
INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash, created_at, updated_at)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count),
     u(i, h, name) AS (
         SELECT i, lower(hex(randomblob(16))),
                CASE WHEN i % {MATCH_EVERY} = {MATCH_EVERY // 2} THEN 'Quuxley Bulk ' || i ELSE 'Bulk User ' || i END
         FROM n)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' || substr('89ab', 1 + i % 4, 1)
           || substr(h, 18, 3) || '-' || substr(h, 21, 12),
       'bulk' || i || '@example.com', 'bulk' || i || '@example.com', name, lower(name),
       CASE i % 100 WHEN 0 THEN 'admin' WHEN 1 THEN 'moderator' ELSE 'user' END,
       i % 20 <> 7, :hash,
       strftime('%Y-%m-%dT%H:%M:%S', {EPOCH} + i, 'unixepoch') || printf('.%06dZ', i * 7919 % 1000000),
       CASE WHEN i % 10 = 3
            THEN strftime('%Y-%m-%dT%H:%M:%S', {EPOCH} + i + 86400, 'unixepoch') || printf('.%06dZ', i * 7919 % 1000000)
       END
FROM u
"""
POSTGRESQL_USERS = f"""
INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash, created_at, updated_at)
SELECT gen_random_uuid()::text, 'bulk' || i || '@example.com', 'bulk' || i || '@example.com', name, lower(name),
       CASE i %% 100 WHEN 0 THEN 'admin' WHEN 1 THEN 'moderator' ELSE 'user' END,
       i %% 20 <> 7, %(hash)s,
       to_char(to_timestamp({EPOCH} + i) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.')
           || lpad((i * 7919 %% 1000000)::text, 6, '0') || 'Z',
       CASE WHEN i %% 10 = 3
            THEN to_char(to_timestamp({EPOCH} + i + 86400) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.')
                 || lpad((i * 7919 %% 1000000)::text, 6, '0') || 'Z'
       END
FROM (SELECT i, CASE WHEN i %% {MATCH_EVERY} = {MATCH_EVERY // 2} THEN 'Quuxley Bulk ' || i ELSE 'Bulk User ' || i END
      FROM generate_series(0::bigint, %(count)s - 1) AS i) AS n (i, name)
"""
DJANGO_HASH = "bcrypt_sha256$" + FIXED_HASH
SQLITE_DJANGO_USERS = f"""
INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email, is_staff,
                       is_active, date_joined)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
SELECT :hash, NULL, 0, 'bulk' || i, 'Bulk', 'User ' || i, 'bulk' || i || '@example.com', 0, i % 20 <> 7,
       strftime('%Y-%m-%d %H:%M:%S', {EPOCH} + i, 'unixepoch')
FROM n
"""
POSTGRESQL_DJANGO_USERS = f"""
INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email, is_staff,
                       is_active, date_joined)
SELECT %(hash)s, NULL, false, 'bulk' || i, 'Bulk', 'User ' || i, 'bulk' || i || '@example.com', false,
       i %% 20 <> 7, to_timestamp({EPOCH} + i)
FROM generate_series(0, %(count)s - 1) AS i
"""

MANAGE_PY = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""
# A minimal project: auth's models, bcrypt_sha256 (cost 12) as the only hasher, and
# the database named by BENCH_DJANGO_DB (a SQLite path or a postgresql:// URL).
SETTINGS_PY = """\
import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = "benchmark-only"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.BCryptSHA256PasswordHasher"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
_target = os.environ["BENCH_DJANGO_DB"]
if _target.startswith(("postgresql://", "postgres://")):
    _url = urlsplit(_target)
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": unquote(_url.path[1:]), "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""), "HOST": _url.hostname or "", "PORT": str(_url.port or ""),
    }}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _target}}
"""
T_HASH_SCRIPT = """\
import statistics, time, bcrypt
salt = bcrypt.gensalt(12)
times = []
for n in range(3):
    start = time.perf_counter()
    bcrypt.hashpw(b"password number %06d" % n, salt)
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


class Failed(Exception):
    """A command of the benchmark failed: what ran, its exit code, its stderr."""


class TimedOut(Failed):
    """A command ran past its time limit and was killed, with its children."""


def run(args: list[str], env: dict[str, str], *, stdin: str | None = None, quiet_stdout: bool = False,
        timeout: float | None = None) -> str:
    # Its own process group, so that a timeout kills what /usr/bin/time started too.
    with subprocess.Popen(
        args, env=env, text=True, start_new_session=True,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.DEVNULL if quiet_stdout else subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:
        try:
            stdout, stderr = process.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise TimedOut(f"{' '.join(args)} ran past {timeout:.0f} s and was stopped") from None
    if process.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        raise Failed(f"{' '.join(args)} exited {process.returncode}:\n{tail}")
    return stdout or ""


def timed(args: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    run(args, env, stdin=stdin, quiet_stdout=True)
    return time.perf_counter() - start


@dataclass
class Usage:
    seconds: float  # wall clock, the whole process
    cpu: float  # user + system seconds
    peak_kib: int  # peak RSS


def timed_usage(args: list[str], env: dict[str, str], usage_file: Path, timeout: float | None = None) -> Usage:
    """A whole process under /usr/bin/time, its output to /dev/null."""
    start = time.perf_counter()
    run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(usage_file), *args], env, quiet_stdout=True, timeout=timeout)
    seconds = time.perf_counter() - start
    kib, user, system = usage_file.read_text().split()[-3:]
    return Usage(seconds, float(user) + float(system), int(kib))


@dataclass
class Row:
    engine: str
    figure: str
    usermgr: str
    peer: str
    ratio: float | None
    goal: str
    met: bool | None


class Log:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.0f} s] {message}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def install(work: Path) -> tuple[Path, Path]:
    """usermgr from this checkout, and Django 5.2 with bcrypt and psycopg2, each in its
    own fresh venv, both installed at once."""
    usermgr, django = work / "venv-usermgr", work / "venv-django"
    for venv in (usermgr, django):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pips = [
        subprocess.Popen([str(venv / "bin/pip"), "install", "-q", *packages], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for venv, packages in ((usermgr, [f"{ROOT}[postgresql]"]), (django, ["django>=5.2,<5.3", "bcrypt", "psycopg2-binary"]))
    ]
    for pip in pips:
        output = pip.communicate()[0]
        if pip.returncode != 0:
            raise Failed(f"{' '.join(pip.args)} exited {pip.returncode}:\n{output.strip()}")
    return usermgr, django


def borrow_psycopg2(venv: Path) -> None:
    """The harness fills and drives PostgreSQL through psycopg2: take it from usermgr's
    venv (made by this same interpreter) when this interpreter has none of its own."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        sys.path.append(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


def make_django_project(work: Path) -> Path:
    project = work / "django-project"
    (project / "benchsite").mkdir(parents=True)
    (project / "manage.py").write_text(MANAGE_PY)
    (project / "benchsite/__init__.py").write_text("")
    (project / "benchsite/settings.py").write_text(SETTINGS_PY)
    return project / "manage.py"


def fill_sqlite(db: Path, statement: str, count: int, password_hash: str, search_index: bool) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(statement, {"count": count, "hash": password_hash})
    if search_index:
        conn.execute("INSERT INTO users_search (users_search) VALUES ('rebuild')")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def fill_postgresql(url: str, statement: str, count: int, password_hash: str, table: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(statement, {"count": count, "hash": password_hash})
        # A vacuumed table, as autovacuum leaves it soon after: else it would start in
        # the middle of the measurements, and count(*) could not use an index-only scan.
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")
    except psycopg2.Error as error:
        raise Failed(f"filling {table} on PostgreSQL failed: {str(error).strip()}") from None
    finally:
        conn.close()


class Databases:
    """Empty PostgreSQL databases on demand: on the throwaway server, or beside the
    database of --postgresql (created through its URL, dropped at the end)."""

    def __init__(self, server, base_url: str | None) -> None:
        self.server = server
        self.base_url = base_url
        self.created: list[str] = []

    def new(self, suffix: str) -> str:
        from tests import postgresql

        if self.server is not None:
            return postgresql.fresh_database(self.server)
        parts = urlsplit(self.base_url)
        name = f"{unquote(parts.path.lstrip('/'))}_{suffix}"
        self._admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))

    def drop_created(self) -> None:
        self._admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.created))

    def _admin(self, *statements: str) -> None:
        import psycopg2

        try:
            conn = psycopg2.connect(self.base_url)
        except psycopg2.Error as error:
            raise Failed(f"cannot connect to --postgresql: {str(error).strip()}") from None
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        except psycopg2.Error as error:
            raise Failed(f"{statements[-1]} failed ({str(error).strip()}): give a role that may create databases,"
                         " or --django-postgresql URL (without --full)") from None
        finally:
            conn.close()


@dataclass
class Engine:
    name: str
    usermgr: dict[str, str]  # usermgr's environment, USERMGR_DB included
    django: dict[str, str]  # Django's, BENCH_DJANGO_DB included
    export_peer: list[str]
    export_peer_name: str
    target: str  # usermgr's database, for a fresh one of the same engine
    fresh: Callable[[str], str]  # a new empty database of this engine, for --full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, help="users in each database (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--runs", type=int, help="interleaved runs of each command (default 11; 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="100,000 users and fewer runs")
    parser.add_argument("--full", action="store_true", help="also import as many pre-hashed users as --users into an empty database")
    parser.add_argument("--import-users", type=int, help="pre-hashed users per import run (default 100,000; 50,000 with --quick)")
    parser.add_argument("--hash-users", type=int, default=40, help="users per plain-password import at cost 12 (default 40)")
    parser.add_argument("--postgresql", metavar="URL", help="an empty database for usermgr instead of a throwaway server")
    parser.add_argument("--django-postgresql", metavar="URL", help="an empty database for Django (with --postgresql)")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    opts = parser.parse_args()
    users = opts.users or (100_000 if opts.quick else 1_000_000)
    runs = opts.runs or (5 if opts.quick else 11)
    import_users = opts.import_users or (50_000 if opts.quick else 100_000)
    log = Log()
    log(f"load average {load()}")

    work = Path(tempfile.mkdtemp(prefix="usermgr-peers-"))
    server = None
    databases = None
    try:
        log("installing usermgr and Django into fresh venvs")
        usermgr_venv, django_venv = install(work)
        borrow_psycopg2(usermgr_venv)
        sys.path.insert(0, str(ROOT))
        from tests import postgresql

        if opts.sqlite_only:
            data_dir = Path(tempfile.mkdtemp(prefix="usermgr-peers-data-", dir=postgresql.RAM_DISK))
        elif opts.postgresql:
            databases = Databases(None, opts.postgresql)
            data_dir = Path(tempfile.mkdtemp(prefix="usermgr-peers-data-"))
        else:
            log("starting a throwaway PostgreSQL server")
            server = durable_server()
            databases = Databases(server, None)
            data_dir = Path(tempfile.mkdtemp(prefix="usermgr-peers-data-", dir=postgresql.RAM_DISK))
        try:
            rows = measure(opts, users, runs, import_users, work, data_dir, usermgr_venv, django_venv, databases, log)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
            if databases is not None and databases.created:
                databases.drop_created()
    except Failed as failure:
        sys.exit(f"peers.py: {failure}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    log("done")
    report(rows)
    print(f"\nload average at the end: {load()}")


def measure(opts, users: int, runs: int, import_users: int, work: Path, data_dir: Path,
            usermgr_venv: Path, django_venv: Path, databases: Databases | None, log: Log) -> list[Row]:
    um = str(usermgr_venv / "bin/usermgr")
    py = str(usermgr_venv / "bin/python")
    djpy = str(django_venv / "bin/python")
    manage = str(make_django_project(work))
    config = work / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 12\n")
    base = {**os.environ, "HOME": str(work), "NO_COLOR": "1"}
    usermgr_env = {**base, "USERMGR_CONFIG": str(config)}
    django_env = {**base, "DJANGO_SETTINGS_MODULE": "benchsite.settings", "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    version = run([um, "--version"], base).split()[-1]
    django_version = run([djpy, "-c", "import django; print(django.get_version())"], base).strip()
    sqlite_version = run(["sqlite3", "--version"], base).split()[0]
    print(f"usermgr {version}, Django {django_version}, sqlite3 {sqlite_version}; {users:,} users;"
          f" medians of {runs} interleaved runs; {os.cpu_count()} cores; load average at start {load()}", flush=True)

    engines: list[Engine] = []
    sqlite_db = data_dir / "usermgr.db"
    counter = iter(range(1, 1000))
    engines.append(Engine(
        "SQLite", {**usermgr_env, "USERMGR_DB": str(sqlite_db)}, {**django_env, "BENCH_DJANGO_DB": str(data_dir / "django.db")},
        ["sqlite3", "-json", str(sqlite_db), EXPORT_SQL], "`sqlite3 -json`", str(sqlite_db),
        lambda suffix: str(data_dir / f"{suffix}-{next(counter)}.db"),
    ))
    if databases is not None:
        url = opts.postgresql or databases.new("usermgr")
        django_url = opts.django_postgresql or databases.new("django")
        engines.append(Engine(
            "PostgreSQL", {**usermgr_env, "USERMGR_DB": url}, {**django_env, "BENCH_DJANGO_DB": django_url},
            ["psql", "-X", "-q", url, "-c", f"\\copy ({EXPORT_SQL}) to stdout"], "`psql \\copy … to stdout`", url,
            lambda suffix: databases.new(suffix),
        ))

    for engine in engines:
        log(f"{engine.name}: filling usermgr's and Django's databases with {users:,} users")
        run([um, "db", "upgrade"], engine.usermgr)
        run([djpy, manage, "migrate", "-v", "0"], engine.django)
        if engine.name == "SQLite":
            fill_sqlite(Path(engine.target), SQLITE_USERS, users, FIXED_HASH, search_index=True)
            fill_sqlite(Path(engine.django["BENCH_DJANGO_DB"]), SQLITE_DJANGO_USERS, users, DJANGO_HASH, search_index=False)
        else:
            fill_postgresql(engine.target, POSTGRESQL_USERS, users, FIXED_HASH, "users")
            fill_postgresql(engine.django["BENCH_DJANGO_DB"], POSTGRESQL_DJANGO_USERS, users, DJANGO_HASH, "auth_user")
        count = run([djpy, manage, "shell", "-c", "from django.contrib.auth.models import User; print(User.objects.count())"],
                    engine.django).split()[-1]
        total = json.loads(run([um, "list", "--format", "json", "--per-page", "1"], engine.usermgr))["total"]
        if (count, total) != (str(users), users):
            raise Failed(f"{engine.name}: the databases hold {total} usermgr users and {count} Django users, not {users}")

    rows: list[Row] = []
    for engine in engines:
        rows += measure_engine(engine, users, runs, import_users, opts.hash_users, um, py, djpy, manage, work, log)
    if opts.full:
        for engine in engines:
            rows.append(full_import(engine, users, um, work, log))
    return rows


def measure_engine(engine: Engine, users: int, runs: int, import_users: int, hash_users: int,
                   um: str, py: str, djpy: str, manage: str, work: Path, log: Log) -> list[Row]:
    rows: list[Row] = []
    env, denv = engine.usermgr, engine.django
    count = "from django.contrib.auth.models import User; print(User.objects.count())"

    def pair(label: str, mine: list[str], theirs: list[str], their_env: dict[str, str]) -> tuple[float, float]:
        log(f"{engine.name}: {label}")
        medians = interleaved(runs, {"usermgr": env, "peer": their_env},
                              lambda name, e, n: timed(mine if name == "usermgr" else theirs, e))
        return medians["usermgr"] / 1000, medians["peer"] / 1000

    def figure(label: str, mine: float, theirs: float, goal: float | None, unit: Callable[[float], str] = ms) -> None:
        ratio = mine / theirs
        goal_text = f"≤ {goal:g}" if goal is not None else ""
        rows.append(Row(engine.name, label, unit(mine), unit(theirs), ratio, goal_text,
                        None if goal is None else ratio <= goal))

    mine, theirs = pair("list vs Django count", [um, "list", "--format", "json"], [djpy, manage, "shell", "-c", count], denv)
    figure("`list --format json` (first page) vs Django `shell -c \"User.objects.count()\"`", mine, theirs, 1.0)
    mine, theirs = pair("list --search vs list", [um, "list", "--search", NEEDLE], [um, "list"], env)
    figure(f"`list --search {NEEDLE}` (1 user in {MATCH_EVERY:,}) vs `list`", mine, theirs, 1.2)

    log(f"{engine.name}: export vs {engine.export_peer_name}")
    usage_file = work / "usage"
    peaks: dict[str, list[int]] = {"usermgr": [], "peer": []}

    def export(name: str, e: dict[str, str], n: int) -> float:
        usage = timed_usage([um, "export", "--format", "jsonl"] if name == "usermgr" else engine.export_peer, e, usage_file)
        peaks[name].append(usage.peak_kib)
        return usage.seconds

    medians = interleaved(runs, {"usermgr": env, "peer": env}, export)
    figure(f"`export --format jsonl` vs {engine.export_peer_name}, same rows", medians["usermgr"] / 1000,
           medians["peer"] / 1000, 2.0)
    peak, peer_peak = max(peaks["usermgr"]), max(peaks["peer"])
    rows.append(Row(engine.name, "`export --format jsonl`: peak RSS (the peer's beside it)", f"{peak / 1024:.0f} MiB",
                    f"{peer_peak / 1024:.0f} MiB", None, "≤ 64 MiB", peak <= 64 * 1024))

    log(f"{engine.name}: create (cost 12) vs Django createsuperuser")
    medians = interleaved(runs, {"usermgr": env, "peer": denv}, lambda name, e, n: timed(
        [um, "create", f"pw{n + 1}@example.com", "--name", "Bench Password", "--password-stdin"], e, stdin=PASSWORD + "\n"
    ) if name == "usermgr" else timed(
        [djpy, manage, "createsuperuser", "--noinput", "--username", f"admin{n + 1}", "--email", f"admin{n + 1}@example.com"], e
    ))
    figure("`create --password-stdin` (cost 12) vs Django `createsuperuser --noinput` (bcrypt_sha256, cost 12)",
           medians["usermgr"] / 1000, medians["peer"] / 1000, 1.0)
    log(f"{engine.name}: create --no-password vs list")
    medians = interleaved(runs, {"usermgr": env, "peer": env}, lambda name, e, n: timed(
        [um, "create", f"np{n + 1}@example.com", "--name", "Bench", "--no-password"] if name == "usermgr" else [um, "list"], e
    ))
    figure("`create --no-password` vs `list`", medians["usermgr"] / 1000, medians["peer"] / 1000, 1.5)

    import_runs = max(3, runs // 4)
    log(f"{engine.name}: up to {import_runs} pre-hashed imports of {import_users:,} users")
    rows.append(prehashed_imports(engine, env, um, work, log, "imp", import_users, import_runs,
                                  f"pre-hashed `import` of {import_users:,} users into {users:,}"))

    log(f"{engine.name}: plain-password imports of {hash_users} users at cost 12, next to one hash")
    cores = os.cpu_count() or 1
    hashes: list[float] = []
    imports: list[Usage] = []
    for n in range(import_runs):
        hashes.append(float(run([py, "-c", T_HASH_SCRIPT], env)))
        path = work / "plain.csv"
        path.write_text("email,name,password\n" + "".join(
            f"plain{n}-{i}@example.com,Plain {i},password number {i:06d}\n" for i in range(hash_users)))
        imports.append(timed_usage([um, "import", str(path)], env, usage_file))
    t_hash = statistics.median(hashes)
    t_import = statistics.median(usage.seconds for usage in imports)
    # CPU over wall time: how many cores the import kept busy (a loaded machine lends fewer).
    busy = statistics.median(usage.cpu / usage.seconds for usage in imports)
    achieved, bound = hash_users / t_import, cores / t_hash
    rows.append(Row(engine.name, f"plain-password `import` of {hash_users} users (cost 12) vs cores ÷ t_hash"
                    f" ({cores} ÷ {t_hash * 1000:.0f} ms)", f"{achieved:.2f} rows/s (CPU {busy:.2f}× wall)",
                    f"{bound:.2f} rows/s", achieved / bound, "≥ 0.9", achieved / bound >= 0.9))
    return rows


def prehashed_imports(engine: Engine, env: dict[str, str], um: str, work: Path, log: Log, prefix: str, count: int,
                      runs: int, label: str) -> Row:
    """Rows per second of `import` of pre-hashed users with new emails (median of the
    runs), and the peak RSS. A run slower than ONE_RUN_ENOUGH is not repeated, one past
    IMPORT_LIMIT is stopped, so a slow engine cannot stretch the benchmark for hours; a
    failed run is shown in the table (and its stderr in the log) and the others go on."""
    done: list[Usage] = []
    ended = ""
    path = work / "import.csv"
    for n in range(runs):
        with path.open("w") as f:
            f.write("email,name,password_hash\n")
            f.writelines(f"{prefix}{n}-{i}@example.com,Imported User {i},{FIXED_HASH}\n" for i in range(count))
        start = time.perf_counter()
        try:
            done.append(timed_usage([um, "import", str(path)], env, work / "usage", timeout=IMPORT_LIMIT))
        except TimedOut:
            ended = f"stopped after {IMPORT_LIMIT} s"
            break
        except Failed as failure:
            log(f"{engine.name}: {failure}")
            code = re.search(r"exited (-?\d+)", str(failure))
            ended = f"failed after {time.perf_counter() - start:.0f} s (exit {code.group(1) if code else '?'})"
            break
        finally:
            path.unlink()
        if done[-1].seconds > ONE_RUN_ENOUGH:
            break
    goal = 50_000 if engine.name == "SQLite" else None
    if done:
        rate = count / statistics.median(usage.seconds for usage in done)
        runs_text = f"{len(done)} run{'s' if len(done) > 1 else ''}" + (f"; the next {ended}" if ended else "")
        value = f"{rate:,.0f} rows/s, {max(u.peak_kib for u in done) / 1024:.0f} MiB peak ({runs_text})"
    else:
        rate = 0.0
        value = f"< {count / IMPORT_LIMIT:,.0f} rows/s ({ended})" if ended.startswith("stopped") else ended
    return Row(engine.name, f"{label}: rows/s, peak RSS", value, "", None,
               f"≥ {goal:,} rows/s" if goal else "(report)", rate >= goal if goal else None)


def full_import(engine: Engine, count: int, um: str, work: Path, log: Log) -> Row:
    log(f"{engine.name}: pre-hashed import of {count:,} users into an empty database")
    env = {**engine.usermgr, "USERMGR_DB": engine.fresh("full")}
    return prehashed_imports(engine, env, um, work, log, "full", count, 1,
                             f"pre-hashed `import` of {count:,} users into an empty database")


def report(rows: list[Row]) -> None:
    print("\n| engine | figure | usermgr | peer | ratio | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        met = {True: "yes", False: "NO", None: ""}[row.met]
        print(f"| {row.engine} | {row.figure} | {row.usermgr} | {row.peer} | {ratio} | {row.goal} | {met} |")


if __name__ == "__main__":
    main()
