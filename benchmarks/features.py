"""What apply, the audit chain and `hashes` cost, on SQLite and PostgreSQL, in one run:
the figures issues 10 and 11 ask for. Not a test: run it and read the table.

    python3 benchmarks/features.py             # 100,000 users to apply, 1,000,000 for hashes; about 8 minutes
    python3 benchmarks/features.py --quick     # 20,000 and 200,000, fewer runs
    python3 benchmarks/features.py --sqlite-only

As peers.py does, it installs this checkout into a fresh venv with pip, starts a
throwaway PostgreSQL server on tmpfs (fsync and synchronous_commit on), keeps the
SQLite files on the same tmpfs and times whole processes; a pair of figures is
measured in interleaved runs, so a drift in the machine's load hits both alike.

- first `apply` of N pre-hashed users into an empty database, next to `import` of the
  same file into another empty one (issue 10: "close to import's speed");
- `apply` and `apply --check` of the same file again, where nothing changed;
- the audit chain's share of that import: the hashes of N UserCreated events computed
  in-process by the domain's extend_chain, next to the import's wall time;
- `events verify` over the N events the import wrote;
- `hashes` at M users (filled by SQL as in peers.py), next to `list`, and its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from engines import durable_server, interleaved
from peers import (
    POSTGRESQL_USERS,
    SQLITE_USERS,
    Failed,
    Log,
    borrow_psycopg2,
    fill_postgresql,
    fill_sqlite,
    load,
    ms,
    run,
    timed_usage,
)
from run import FIXED_HASH, ROOT


def install(work: Path) -> Path:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", f"{ROOT}[postgresql]"], check=True)
    return venv


def chain_seconds(count: int) -> float:
    """extend_chain over `count` events shaped as the unit of work records an import's."""
    sys.path.insert(0, str(ROOT))
    from usermgr.domain.audit import GENESIS, extend_chain
    from usermgr.domain.values import new_id

    moment = datetime(2026, 12, 1, tzinfo=timezone.utc).isoformat()
    records = [
        {"id": new_id(), "type": "UserCreated", "user_id": new_id(), "occurred_at": moment, "actor": "root",
         "data": {"name": f"Applied User {i}", "role": "user", "is_active": True}}
        for i in range(count)
    ]
    start = time.perf_counter()
    for _ in extend_chain(records, GENESIS):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 users to apply, 200,000 for hashes, 3 runs")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    opts = parser.parse_args()
    users = 20_000 if opts.quick else 100_000
    many = 200_000 if opts.quick else 1_000_000
    runs = 3 if opts.quick else 5
    log = Log()
    work = Path(tempfile.mkdtemp(prefix="usermgr-features-"))
    server = None
    rows: list[tuple[str, str, str]] = []
    data_dir = None
    try:
        log("installing usermgr into a fresh venv")
        venv = install(work)
        borrow_psycopg2(venv)
        sys.path.insert(0, str(ROOT))
        from tests import postgresql

        data_dir = Path(tempfile.mkdtemp(prefix="usermgr-features-data-", dir=postgresql.RAM_DISK))
        fresh = {"SQLite": iter(str(data_dir / f"db{n}.db") for n in range(10**6))}
        if not opts.sqlite_only:
            log("starting a throwaway PostgreSQL server")
            server = durable_server()
            fresh["PostgreSQL"] = iter(lambda: postgresql.fresh_database(server), None)
        print(f"usermgr {run([str(venv / 'bin/usermgr'), '--version'], dict(os.environ)).split()[-1]};"
              f" {os.cpu_count()} cores; load average at start {load()}", flush=True)
        for engine, databases in fresh.items():
            rows += measure(engine, databases, str(venv / "bin/usermgr"), work, users, many, runs, log)
        seconds = chain_seconds(users)
        rows.append(("both", f"the chain's hashes of {users:,} UserCreated events (extend_chain, in-process)",
                     f"{ms(seconds)}, {seconds / users * 1e6:.1f} µs per event"))
    except Failed as failure:
        sys.exit(f"features.py: {failure}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    log("done")
    print("\n| engine | figure | result |\n|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    print(f"\nload average at the end: {load()}")


def measure(engine: str, databases, um: str, work: Path, users: int, many: int, runs: int,
            log: Log) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    config = work / "config.toml"
    config.write_text("[security]\nbcrypt_rounds = 12\n")
    base = {**os.environ, "HOME": str(work), "NO_COLOR": "1", "USERMGR_CONFIG": str(config)}
    desired = work / "desired.csv"
    with desired.open("w") as f:
        f.write("email,name,role,is_active,password_hash\n")
        f.writelines(f"staff{i}@example.com,Applied User {i},{'admin' if i % 100 == 0 else 'user'},"
                     f"{'false' if i % 20 == 7 else 'true'},{FIXED_HASH}\n" for i in range(users))
    usage_file = work / "usage"

    log(f"{engine}: first apply vs import of {users:,} pre-hashed users, each into an empty database")
    applied: list[str] = []
    peaks: list[int] = []

    def first(name: str, env: dict[str, str], n: int) -> float:
        target = next(databases)
        if name == "apply":
            applied.append(target)
        usage = timed_usage([um, "--db", target, name, str(desired)], env, usage_file)
        if name == "apply":
            peaks.append(usage.peak_kib)
        return usage.seconds

    medians = interleaved(runs, {"import": base, "apply": base}, first)
    rows.append((engine, f"first `apply` of {users:,} pre-hashed users vs `import` of the same file",
                 f"{ms(medians['apply'] / 1000)} vs {ms(medians['import'] / 1000)}"
                 f" ({medians['apply'] / medians['import']:.2f}×; apply's peak {max(peaks) // 1024} MiB)"))

    log(f"{engine}: apply and apply --check where nothing changed")
    env = {**base, "USERMGR_DB": applied[-1]}
    before = run([um, "events", "--format", "json", "--limit", "1"], env)
    if run([um, "apply", str(desired)], env).strip() != "no changes":
        raise Failed(f"{engine}: a second apply of the same file changed something")
    medians = interleaved(runs, {"apply": env, "apply --check": env},
                          lambda name, e, n: timed_usage([um, *name.split(), str(desired)], e, usage_file).seconds)
    if run([um, "events", "--format", "json", "--limit", "1"], env) != before:
        raise Failed(f"{engine}: a no-change apply wrote an event")
    rows.append((engine, f"`apply` of the same {users:,} users again (no changes, no events)", ms(medians["apply"] / 1000)))
    rows.append((engine, "`apply --check` of them (no changes, exit 0)", ms(medians["apply --check"] / 1000)))

    log(f"{engine}: events verify over {users:,} events")
    verify = statistics.median(timed_usage([um, "events", "verify"], env, usage_file).seconds for _ in range(runs))
    rows.append((engine, f"`events verify` of {users:,} events", ms(verify)))

    log(f"{engine}: hashes vs list at {many:,} users")
    target = next(databases)
    env = {**base, "USERMGR_DB": target}
    run([um, "db", "upgrade"], env)
    if engine == "SQLite":
        fill_sqlite(Path(target), SQLITE_USERS, many, FIXED_HASH, search_index=True)
    else:
        fill_postgresql(target, POSTGRESQL_USERS, many, FIXED_HASH, "users")
    report = json.loads(run([um, "hashes", "--format", "json"], env))
    if report["users"] != many or report["by_cost"] != {"4": many}:
        raise Failed(f"{engine}: hashes reported {report['users']} users, by cost {report['by_cost']}")
    peaks.clear()

    def hashes(name: str, e: dict[str, str], n: int) -> float:
        usage = timed_usage([um, name], e, usage_file)
        if name == "hashes":
            peaks.append(usage.peak_kib)
        return usage.seconds

    medians = interleaved(runs, {"hashes": env, "list": env}, hashes)
    rows.append((engine, f"`hashes` at {many:,} users vs `list`",
                 f"{ms(medians['hashes'] / 1000)} vs {ms(medians['list'] / 1000)}, peak {max(peaks) // 1024} MiB"))
    return rows


if __name__ == "__main__":
    main()
