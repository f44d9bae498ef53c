"""PostgreSQL against SQLite, whole processes of the installed usermgr, on the same
100,000 users in each engine. Not a test: run it and read the table.

    .venv/bin/python benchmarks/engines.py                 # a throwaway server (tests/postgresql.py)
    .venv/bin/python benchmarks/engines.py --quick         # fewer runs
    .venv/bin/python benchmarks/engines.py --postgresql postgresql://u@host/emptydb

Run it with an interpreter that has psycopg2 (the test venv: pip install -e '.[test]'):
it fills the databases and starts the server itself. The timed usermgr is installed
into a fresh venv, as run.py does. Each figure is the median of runs that alternate
between the engines, so a drift in the machine's load hits both alike. The goals are
issue 9's: PostgreSQL read commands (list, show, export) at most 1.5x SQLite's; for 8
concurrent writers, no failure and at least as many users per second as SQLite.

With the throwaway server, its data and the SQLite file both live on tmpfs, and the
server's fsync and synchronous_commit are turned back on: neither engine pays for a
disk, and neither skips the work a durable commit does.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from run import FIXED_HASH, PASSWORD, ROOT, sh, stamp

sys.path.insert(0, str(ROOT))

USERS = 100_000
IMPORT_USERS = 10_000
WRITERS, PER_WRITER = 8, 50
READ_GOAL = 1.5
COLUMNS = ("id", "email", "email_key", "name", "name_key", "role", "is_active", "password_hash", "created_at")
WRITER_SCRIPT = f"""\
import os, subprocess, sys, time
usermgr, barrier, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
open(os.path.join(barrier, "ready-" + name), "w").close()
while not os.path.exists(os.path.join(barrier, "go")):
    time.sleep(0.002)
failures = 0
for n in range(count):
    done = subprocess.run([usermgr, "create", f"w{{name}}-{{n}}@example.com", "--name", "Writer", "--password-stdin"],
                          input={PASSWORD + chr(10)!r}, capture_output=True, text=True)
    failures += done.returncode != 0
print(failures)
"""


def the_users() -> list[tuple]:
    """The same rows for both engines: ids, keys and times as usermgr writes them."""
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    return [
        (str(uuid.UUID(int=i + 1)), f"bulk{i}@example.com", f"bulk{i}@example.com", f"Bulk User {i}", f"bulk user {i}",
         "user", True, FIXED_HASH, stamp(base + timedelta(seconds=i)))
        for i in range(USERS)
    ]


def fill_sqlite(db: Path, rows: list[tuple]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(f"INSERT INTO users ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    conn.close()


def fill_postgresql(url: str, rows: list[tuple]) -> None:
    import psycopg2

    text = io.StringIO("".join("\t".join("t" if v is True else str(v) for v in row) + "\n" for row in rows))
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cursor:
        cursor.copy_expert(f"COPY users ({', '.join(COLUMNS)}) FROM STDIN", text)
        cursor.execute("ANALYZE")
    conn.close()


Timed = Callable[[str, dict[str, str], int], float]  # (engine, env, run number) -> seconds


def interleaved(runs: int, engines: dict[str, dict[str, str]], timed: Timed) -> dict[str, float]:
    """Median milliseconds per engine; run n of every engine before run n + 1 of any."""
    for name, env in engines.items():
        timed(name, env, -1)  # warm the page cache and the server
    times: dict[str, list[float]] = {name: [] for name in engines}
    for n in range(runs):
        for name, env in engines.items():
            times[name].append(timed(name, env, n))
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def concurrent_creates(um: str, py: str, env: dict[str, str], work: Path, tag: str) -> tuple[float, int]:
    """8 processes, each creating 50 users with a password one command at a time,
    started together: users per second over the whole run, and failed commands."""
    script = work / "writer.py"
    script.write_text(WRITER_SCRIPT)
    barrier = work / f"barrier-{tag}"
    barrier.mkdir()
    writers = [
        subprocess.Popen([py, str(script), um, str(barrier), f"{tag}{n}", str(PER_WRITER)],
                         env=env, stdout=subprocess.PIPE, text=True)
        for n in range(WRITERS)
    ]
    while len(list(barrier.glob("ready-*"))) < WRITERS:
        time.sleep(0.01)
    start = time.perf_counter()
    (barrier / "go").touch()
    failures = sum(int(writer.communicate()[0]) for writer in writers)
    seconds = time.perf_counter() - start
    return WRITERS * PER_WRITER / seconds, failures


def driver_import(py: str, env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """psycopg2's own -X importtime total (ms), and whole-process medians of
    `python -c "import psycopg2"` and `python -c pass`, interleaved."""
    out = subprocess.run([py, "-X", "importtime", "-c", "import psycopg2"], env=env, capture_output=True, text=True, check=True)
    cumulative = [int(line.split("|")[1]) for line in out.stderr.splitlines() if line.rstrip().endswith("| psycopg2")]
    with_driver, bare = [], []
    sh(py, "-c", "import psycopg2", env=env)
    for _ in range(runs * 2):
        with_driver.append(sh(py, "-c", "import psycopg2", env=env))
        bare.append(sh(py, "-c", "pass", env=env))
    return cumulative[-1] / 1000, statistics.median(with_driver) * 1000, statistics.median(bare) * 1000


def durable_server():  # -> tests.postgresql.Server
    """A throwaway server (tests/postgresql.py, on tmpfs) with fsync, synchronous_commit
    and full_page_writes turned back on: it skips no work a durable commit does."""
    from tests import postgresql

    server = postgresql.start_server()
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        server.execute(f"ALTER SYSTEM SET {setting} = on")
    server.execute("SELECT pg_reload_conf()")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 runs of each command instead of 11")
    parser.add_argument("--postgresql", metavar="URL", help="an existing database with no tables, instead of a throwaway server")
    opts = parser.parse_args()
    runs = 5 if opts.quick else 11
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        sys.exit("engines.py needs psycopg2: run it with the test venv's python (pip install -e '.[test]')")
    from tests import postgresql

    server = None
    if opts.postgresql:
        url = opts.postgresql
        data_dir = Path(tempfile.mkdtemp(prefix="usermgr-engines-"))
    else:
        server = durable_server()
        url = postgresql.fresh_database(server)
        data_dir = Path(tempfile.mkdtemp(prefix="usermgr-engines-", dir=postgresql.RAM_DISK))
    try:
        run_all(url, data_dir, runs)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run_all(url: str, data_dir: Path, runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="usermgr-engines-venv-"))
    try:
        measure(url, data_dir, work, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(url: str, data_dir: Path, work: Path, runs: int) -> None:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", f"{ROOT}[postgresql]"], check=True)
    um, py = str(venv / "bin/usermgr"), str(venv / "bin/python")
    config = work / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 4\n")
    base = {**os.environ, "HOME": str(work), "USERMGR_CONFIG": str(config), "NO_COLOR": "1"}
    sqlite_db = data_dir / "users.db"
    engines = {"sqlite": {**base, "USERMGR_DB": str(sqlite_db)}, "postgresql": {**base, "USERMGR_DB": url}}
    for env in engines.values():
        subprocess.run([um, "db", "upgrade"], env=env, check=True, capture_output=True)
    rows = the_users()
    fill_sqlite(sqlite_db, rows)
    fill_postgresql(url, rows)
    del rows

    results: list[tuple[str, dict[str, float], str]] = []

    def command(*args: str) -> Timed:
        return lambda name, env, n: sh(um, *args, env=env)

    results.append(("`list`", interleaved(runs, engines, command("list")), "read"))
    results.append(("`show EMAIL`", interleaved(runs, engines, command("show", "bulk4242@example.com")), "read"))
    results.append((f"`export --format jsonl` ({USERS:,} users)",
                    interleaved(runs, engines, command("export", "--format", "jsonl")), "read"))
    results.append(("`create --no-password`", interleaved(
        runs, engines, lambda name, env, n: sh(um, "create", f"new{n}@example.com", "--name", "New", "--no-password", env=env)
    ), ""))
    batches = {}
    for n in range(-1, runs):
        path = work / f"import-{n}.csv"
        path.write_text("email,name,password_hash\n" + "".join(
            f"imp{n}-{i}@example.com,Imported {i},{FIXED_HASH}\n" for i in range(IMPORT_USERS)))
        batches[n] = path
    results.append((f"pre-hashed `import` of {IMPORT_USERS:,} users", interleaved(
        runs, engines, lambda name, env, n: sh(um, "import", str(batches[n]), env=env)
    ), ""))
    concurrent = {name: concurrent_creates(um, py, env, work, name[0]) for name, env in engines.items()}
    importtime, with_driver, bare = driver_import(py, base, runs)

    print(f"\n{USERS:,} users in each engine; medians of {runs} interleaved runs; usermgr {version(um, base)}\n")
    print("| measurement | SQLite | PostgreSQL | PostgreSQL / SQLite | goal | met |")
    print("|---|---|---|---|---|---|")
    for label, medians, kind in results:
        ratio = medians["postgresql"] / medians["sqlite"]
        goal = f"at most {READ_GOAL}x" if kind == "read" else "(none)"
        met = ("yes" if ratio <= READ_GOAL else "NO") if kind == "read" else ""
        print(f"| {label} | {medians['sqlite']:.0f} ms | {medians['postgresql']:.0f} ms | {ratio:.2f}x | {goal} | {met} |")
    (sqlite_rate, sqlite_failed), (pg_rate, pg_failed) = concurrent["sqlite"], concurrent["postgresql"]
    label = f"{WRITERS} processes x {PER_WRITER} `create --password-stdin` (cost 4)"
    none_failed = "yes" if sqlite_failed == pg_failed == 0 else "NO"
    met = "yes" if pg_rate >= sqlite_rate else "NO"
    print(f"| {label}: users/s | {sqlite_rate:.1f} | {pg_rate:.1f} | {pg_rate / sqlite_rate:.2f}x | at least 1x | {met} |")
    print(f"| same: failed commands | {sqlite_failed} | {pg_failed} | | 0 | {none_failed} |")
    print()
    print("| driver import | result |\n|---|---|")
    print(f"| `python -X importtime -c 'import psycopg2'`, cumulative | {importtime:.1f} ms |")
    print(f"| `python -c 'import psycopg2'` (whole process) | {with_driver:.0f} ms |")
    print(f"| `python -c pass` (whole process) | {bare:.0f} ms |")
    print(f"| psycopg2's whole-process cost | +{with_driver - bare:.0f} ms |")


def version(um: str, env: dict[str, str]) -> str:
    return subprocess.run([um, "--version"], env=env, capture_output=True, text=True, check=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
