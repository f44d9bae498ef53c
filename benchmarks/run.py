"""Whole-process benchmarks of the installed usermgr. Not a test: run it and read the table.

    python3 benchmarks/run.py            # everything (about 15 minutes on 2 cores)
    python3 benchmarks/run.py --quick    # fewer runs and rows

It installs this checkout into a fresh venv with pip (as pipx would: precompiled,
unlike a source checkout under PYTHONDONTWRITEBYTECODE=1) and times whole processes,
reporting the median of several runs next to `python -c pass` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A bcrypt hash (cost 4) of "correct horse battery staple", for pre-hashed imports.
FIXED_HASH = "$2b$04$flwOJnpFtTSVwCeMb9kZPeVbBOIgNRNOicSW2MHivqplVAoz9bru6"
PASSWORD = "correct horse battery staple"


def sh(*args: str, env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, input=stdin, text=True, check=True, capture_output=True)
    return time.perf_counter() - start


def median_ms(runs: int, *args: str, env: dict[str, str], stdin: str | None = None) -> float:
    sh(*args, env=env, stdin=stdin)  # warm the page cache
    return statistics.median(sh(*args, env=env, stdin=stdin) for _ in range(runs)) * 1000


def timed_peak(command: str, env: dict[str, str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of a shell pipeline's first command, via /usr/bin/time."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", "sh", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, kib = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fill_users(db: Path, count: int) -> None:
    """Insert users directly (the schema must exist already)."""
    conn = sqlite3.connect(db)
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with conn:
        conn.executemany(
            "INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'user', 1, ?, ?, NULL)",
            (
                (str(uuid.uuid4()), f"bulk{i}@example.com", f"bulk{i}@example.com", f"Bulk User {i}",
                 f"bulk user {i}", FIXED_HASH, stamp(base + timedelta(seconds=i)))
                for i in range(count)
            ),
        )
    conn.close()


def fill_events(db: Path, count: int) -> None:
    conn = sqlite3.connect(db)
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with conn:
        conn.executemany(
            "INSERT INTO events (id, type, user_id, email_key, occurred_at, actor, data)"
            " VALUES (?, 'UserUpdated', ?, ?, ?, 'bench', ?)",
            (
                (str(uuid.uuid4()), str(uuid.UUID(int=i % 100_000)), f"bulk{i % 100_000}@example.com",
                 stamp(base + timedelta(seconds=i)),
                 json.dumps({"email": f"bulk{i % 100_000}@example.com", "changes": {"name": ["a", "b"]}}))
                for i in range(count)
            ),
        )
    conn.close()


class Rows:
    """Prints each figure as a Markdown table row as soon as it is measured."""

    def __init__(self) -> None:
        print("| what | result |\n|---|---|", flush=True)

    def append(self, row: tuple[str, str]) -> None:
        print(f"| {row[0]} | {row[1]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hash-users", type=int, default=200, help="plain-password import size at cost 12")
    opts = parser.parse_args()
    runs = 5 if opts.quick else 11
    users = 100_000
    events = 100_000 if opts.quick else 1_000_000
    export_users = 100_000 if opts.quick else 1_000_000

    work = Path(tempfile.mkdtemp(prefix="usermgr-bench-"))
    try:
        measure(opts, runs, users, events, export_users, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(opts: argparse.Namespace, runs: int, users: int, events: int, export_users: int, work: Path) -> None:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", str(ROOT)], check=True)
    um = str(venv / "bin/usermgr")
    py = str(venv / "bin/python")
    config = work / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 12\n")
    env = {**os.environ, "HOME": str(work), "USERMGR_DB": str(work / "users.db"),
           "USERMGR_CONFIG": str(config), "NO_COLOR": "1"}
    rows = Rows()

    # 100,000 users through `usermgr import`, pre-hashed.
    csv_path = work / "users.csv"
    with csv_path.open("w") as f:
        f.write("email,name,password_hash\n")
        for i in range(users):
            f.write(f"bulk{i}@example.com,Bulk User {i},{FIXED_HASH}\n")
    seconds, kib = timed_peak(f"{um} import {csv_path} >/dev/null", env)
    rows.append((f"import {users:,} users, pre-hashed", f"{seconds:.1f} s, peak {kib // 1024} MiB"))

    # Start-up and single commands on the 100,000-user database.
    rows.append(("python -c pass (venv)", f"{median_ms(runs, py, '-c', 'pass', env=env):.0f} ms"))
    rows.append(("usermgr --version", f"{median_ms(runs, um, '--version', env=env):.0f} ms"))
    rows.append(("usermgr --help", f"{median_ms(runs, um, '--help', env=env):.0f} ms"))
    rows.append(("usermgr list", f"{median_ms(runs, um, 'list', env=env):.0f} ms"))
    rows.append(("usermgr list --search 'user 4242'", f"{median_ms(runs, um, 'list', '--search', 'user 4242', env=env):.0f} ms"))
    rows.append(("usermgr show EMAIL", f"{median_ms(runs, um, 'show', 'bulk4242@example.com', env=env):.0f} ms"))
    counter = iter(range(10**6))
    creates = []
    for _ in range(runs):
        creates.append(sh(um, "create", f"new{next(counter)}@example.com", "--name", "N", "--no-password", env=env))
    rows.append(("usermgr create --no-password", f"{statistics.median(creates) * 1000:.0f} ms"))
    creates = []
    for _ in range(runs):
        creates.append(sh(um, "create", f"new{next(counter)}@example.com", "--name", "N", "--password-stdin", env=env, stdin=PASSWORD + "\n"))
    rows.append(("usermgr create --password-stdin (bcrypt cost 12)", f"{statistics.median(creates) * 1000:.0f} ms"))
    rows.append(("usermgr verify (cost 12, no re-hash)", f"{median_ms(runs, um, 'verify', 'new' + str(runs) + '@example.com', '--password-stdin', env=env, stdin=PASSWORD + chr(10)):.0f} ms"))

    # The audit log with many events.
    fill_events(work / "users.db", events)
    rows.append((f"usermgr events --limit 100 ({events:,} events)", f"{median_ms(runs, um, 'events', '--limit', '100', env=env):.0f} ms"))
    rows.append(("usermgr events --user EMAIL --limit 100", f"{median_ms(runs, um, 'events', '--user', 'bulk42@example.com', env=env):.0f} ms"))
    rows.append(("usermgr list (same run)", f"{median_ms(runs, um, 'list', env=env):.0f} ms"))

    # Export of many users, next to sqlite3 -json on the same database.
    big = work / "big.db"
    subprocess.run([um, "--db", str(big), "db", "upgrade"], env=env, check=True, capture_output=True)
    fill_users(big, export_users)
    seconds, kib = timed_peak(f"{um} --db {big} export --format jsonl >/dev/null", env)
    rows.append((f"usermgr export --format jsonl ({export_users:,} users)", f"{seconds:.1f} s, peak {kib // 1024} MiB"))
    seconds, kib = timed_peak(
        f"sqlite3 -json {big} 'SELECT id, email, name, role, is_active, created_at, updated_at FROM users ORDER BY created_at' >/dev/null",
        env,
    )
    rows.append(("sqlite3 -json, same rows", f"{seconds:.1f} s, peak {kib // 1024} MiB"))

    # Plain passwords at cost 12: sequential versus parallel hashing.
    n = opts.hash_users
    script = (
        "import sys, time; from usermgr.infrastructure.hashing import BcryptHasher;"
        f"h = BcryptHasher(12); pw = ['password number %06d' % i for i in range({n})];"
        "t = time.perf_counter(); [h.hash(p) for p in pw]; s = time.perf_counter() - t;"
        "t = time.perf_counter(); h.hash_many(pw); p = time.perf_counter() - t;"
        "print(s, p)"
    )
    out = subprocess.run([py, "-c", script], env=env, capture_output=True, text=True, check=True)
    seq, par = map(float, out.stdout.split())
    rows.append((f"hash {n} passwords at cost 12, sequential", f"{seq:.1f} s ({seq / n * 10_000 / 60:.0f} min for 10,000)"))
    rows.append((f"hash {n} passwords at cost 12, parallel ({os.cpu_count()} cores)", f"{par:.1f} s ({par / n * 10_000 / 60:.0f} min for 10,000)"))
    plain = work / "plain.csv"
    with plain.open("w") as f:
        f.write("email,name,password\n")
        for i in range(n):
            f.write(f"plain{i}@example.com,Plain {i},password number {i:06d}\n")
    seconds, kib = timed_peak(f"{um} --db {work / 'plain.db'} import {plain} >/dev/null", env)
    rows.append((f"usermgr import {n} users with plain passwords (cost 12)", f"{seconds:.1f} s"))


if __name__ == "__main__":
    main()
