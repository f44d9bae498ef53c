"""The tamper-evident audit log through the CLI, on both engines: `events verify`,
`db check`, the `hash` of each event, and a verifier of our own that shares no code
with usermgr. The tampering is done by hand, in SQL, as someone with write access to
the database would do it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.helpers import USERMGR, invoke_app, raw_sql, run_usermgr

RUNNER = CliRunner()
ALL = ("--limit", "1000000")


# --- a verifier that shares nothing with usermgr --------------------------------------


def independent_chain(jsonl: str) -> tuple[int, str]:
    """Recompute the chain from `usermgr events --format jsonl` as the README documents
    it, with hashlib and json only: (events, head). Raises AssertionError at a mismatch."""
    prev = "0" * 64
    count = 0
    for count, line in enumerate(jsonl.splitlines(), 1):
        event = json.loads(line)
        fields = {name: event[name] for name in ("id", "type", "user_id", "occurred_at", "actor", "data")}
        fields["prev"] = prev
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        digest = hashlib.sha256(body).hexdigest()
        assert digest == event["hash"], f"event {count} ({event['id']}) does not match"
        prev = digest
    return count, prev


# --- helpers ---------------------------------------------------------------------------


def um(db: str, *args: str, input: str | None = None) -> Result:
    return invoke_app("--db", db, *args, input=input)


def ok(db: str, *args: str, input: str | None = None) -> Result:
    result = um(db, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def sql(db: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return raw_sql(statement, params, location=db)


def jsonl(db: str) -> str:
    return ok(db, "events", "--format", "jsonl", *ALL).stdout


def events(db: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in jsonl(db).splitlines()]


def verified(db: str, *options: str) -> tuple[int, str]:
    """(events, head) as `events verify` prints them."""
    out = ok(db, "events", "verify", *options).stdout
    count, _, head = out.removesuffix("\n").partition(" events, head ")
    assert out.count("\n") == 1 and len(head) == 64, out
    return int(count), head


def broken(result: Result, code: int = 6) -> str:
    """The one stderr line of a failed command."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("usermgr: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def seed(db: str) -> list[dict[str, Any]]:
    """Three users through several kinds of change: seven events."""
    ok(db, "create", "ada@example.com", "--name", "Zoë Ærø", "--no-password")
    ok(db, "create", "bob@example.com", "--name", "Bob", "--no-password")
    ok(db, "update", "ada@example.com", "--name", "Ada Lovelace")
    ok(db, "set-role", "bob@example.com", "admin")
    ok(db, "deactivate", "bob@example.com")
    ok(db, "create", "cy@example.com", "--name", "Cy", "--no-password")
    ok(db, "delete", "bob@example.com", "--yes")
    found = events(db)
    assert len(found) == 7
    return found


EVENT_ROW = "id, type, user_id, email_key, occurred_at, actor, data, hash"


def insert_before(db: str, position: int, row: tuple[Any, ...]) -> None:
    """Put an event row at `position` (1-based) of the log: the rows from there on are
    taken out and put back after it, as a forger without a free seq would do."""
    later = sql(db, f"SELECT {EVENT_ROW} FROM events ORDER BY seq")[position - 1 :]
    for (event_id, *_rest) in later:
        sql(db, "DELETE FROM events WHERE id = ?", (event_id,))
    for values in (row, *later):
        sql(db, f"INSERT INTO events ({EVENT_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)


def forged_row(prev: str | None) -> tuple[Any, ...]:
    """A UserDeleted nobody wrote; with `prev`, its hash is recomputed as a forger would."""
    event = {
        "id": str(uuid.uuid4()),
        "type": "UserDeleted",
        "user_id": str(uuid.uuid4()),
        "occurred_at": "2026-01-01T00:00:00.000000Z",
        "actor": "root",
        "data": {"email": "ghost@example.com"},
    }
    digest = "ab" * 32
    if prev is not None:
        body = json.dumps({**event, "prev": prev}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(body.encode()).hexdigest()
    return (event["id"], event["type"], event["user_id"], "ghost@example.com", event["occurred_at"], event["actor"],
            json.dumps(event["data"]), digest)


def assert_broken_at(db: str, position: int, event_id: str) -> None:
    line = broken(um(db, "events", "verify"))
    assert f"event {position} ({event_id})" in line, line
    assert f"the {position - 1} events before it verify" in line, line
    checked = broken(um(db, "db", "check"))
    assert f"event {position} ({event_id})" in checked, checked


# --- the hash of each event ------------------------------------------------------------


def test_json_and_jsonl_show_each_events_hash_and_both_verifiers_agree(db_url: str) -> None:
    seeded = seed(db_url)
    as_json = json.loads(ok(db_url, "events", "--format", "json", *ALL).stdout)
    assert as_json == seeded
    hashes = [e["hash"] for e in seeded]
    assert all(len(h) == 64 and set(h) <= set("0123456789abcdef") for h in hashes)
    assert len(set(hashes)) == 7
    assert verified(db_url) == independent_chain(jsonl(db_url)) == (7, hashes[-1])
    assert f"audit chain head {hashes[-1]}" in ok(db_url, "db", "check").stdout


def test_an_empty_log_verifies_with_the_genesis_head(db_url: str) -> None:
    ok(db_url, "db", "upgrade")
    assert verified(db_url) == (0, "0" * 64)
    assert verified(db_url, "--head", "0" * 64) == (0, "0" * 64)


def test_events_verify_by_the_installed_executable_prints_one_line(db_url: str) -> None:
    seed(db_url)
    result = run_usermgr("--db", db_url, "events", "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"7 events, head {events(db_url)[-1]['hash']}\n"
    assert result.stderr == ""


def test_a_head_that_is_not_a_sha256_in_hex_is_a_usage_error(db_url: str) -> None:
    seed(db_url)
    for bad in ("abc", "g" * 64, "a" * 65, ""):
        line = broken(um(db_url, "events", "verify", "--head", bad), code=2)
        assert "invalid --head" in line, line


def test_a_head_in_capitals_is_the_same_head(db_url: str) -> None:
    head = seed(db_url)[-1]["hash"]
    assert verified(db_url, "--head", head.upper()) == (7, head)


# --- tampering, by hand ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("data", '{"email": "ada@example.com", "changes": {"name": ["Zoë Ærø", "Someone Else"]}}'),
        ("actor", "mallory"),
        ("occurred_at", "2026-01-01T00:00:00.000000Z"),
        ("type", "UserActivated"),
        ("user_id", "00000000-0000-4000-8000-000000000000"),
    ],
)
def test_an_edited_event_is_named_by_verify_and_db_check(db_url: str, column: str, value: str) -> None:
    third = seed(db_url)[2]
    sql(db_url, f"UPDATE events SET {column} = ? WHERE id = ?", (value, third["id"]))
    assert_broken_at(db_url, 3, third["id"])


@pytest.mark.parametrize(
    "text", ["not json", '{"email": NaN}', '{"email": 1e999}', "[1, 2]", '"just text"'],
    ids=["not-json", "nan", "infinity", "array", "string"],
)
def test_data_edited_into_something_usermgr_never_writes_is_a_break_not_a_crash(db_url: str, text: str) -> None:
    # Regression: these made verify, db check and the events table exit 1 ("unexpected error").
    third = seed(db_url)[2]
    sql(db_url, "UPDATE events SET data = ? WHERE id = ?", (text, third["id"]))
    assert_broken_at(db_url, 3, third["id"])
    shown = ok(db_url, "events", *ALL).stdout
    assert third["id"][:8] in shown
    ok(db_url, "events", "--format", "jsonl", *ALL)


def test_an_edit_of_the_last_event_is_found_too(db_url: str) -> None:
    last = seed(db_url)[-1]
    sql(db_url, "UPDATE events SET actor = ? WHERE id = ?", ("mallory", last["id"]))
    assert_broken_at(db_url, 7, last["id"])


def test_an_edited_email_key_that_would_hide_an_event_from_events_user_is_found(db_url: str) -> None:
    fifth = seed(db_url)[4]  # bob's deactivation
    assert fifth["id"] in ok(db_url, "events", "--user", "bob@example.com", "--format", "jsonl").stdout
    sql(db_url, "UPDATE events SET email_key = ? WHERE id = ?", ("nobody@example.com", fifth["id"]))
    for args in (["events", "verify"], ["db", "check"]):
        line = broken(um(db_url, *args))
        assert f"index edited at event 5 ({fifth['id']})" in line and "events --user" in line


def test_an_edited_hash_is_found(db_url: str) -> None:
    fourth = seed(db_url)[3]
    sql(db_url, "UPDATE events SET hash = ? WHERE id = ?", ("cd" * 32, fourth["id"]))
    assert_broken_at(db_url, 4, fourth["id"])


def test_data_rewritten_with_other_whitespace_and_key_order_still_verifies(db_url: str) -> None:
    # The chain covers the values, not the text a driver or another tool stores.
    seeded = seed(db_url)
    for event in seeded:
        spaced = json.dumps(dict(reversed(list(event["data"].items()))), indent=2, ensure_ascii=True)
        sql(db_url, "UPDATE events SET data = ? WHERE id = ?", (spaced, event["id"]))
    assert verified(db_url) == (7, seeded[-1]["hash"])


@pytest.mark.parametrize("position", [1, 4])
def test_a_removed_event_is_found_at_the_event_after_it(db_url: str, position: int) -> None:
    seeded = seed(db_url)
    sql(db_url, "DELETE FROM events WHERE id = ?", (seeded[position - 1]["id"],))
    assert_broken_at(db_url, position, seeded[position]["id"])


@pytest.mark.parametrize("recomputed", [False, True], ids=["made-up-hash", "recomputed-hash"])
def test_an_event_inserted_between_two_is_found(db_url: str, recomputed: bool) -> None:
    seeded = seed(db_url)
    row = forged_row(seeded[1]["hash"] if recomputed else None)
    insert_before(db_url, 3, row)
    assert [e["id"] for e in events(db_url)] == [e["id"] for e in seeded[:2]] + [row[0]] + [e["id"] for e in seeded[2:]]
    if recomputed:
        # The forged event itself matches; the one after it no longer does.
        assert_broken_at(db_url, 4, seeded[2]["id"])
    else:
        assert_broken_at(db_url, 3, row[0])


def test_an_event_appended_with_a_made_up_hash_is_found(db_url: str) -> None:
    seed(db_url)
    row = forged_row(None)
    sql(db_url, f"INSERT INTO events ({EVENT_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
    assert_broken_at(db_url, 8, row[0])


def test_a_log_cut_back_passes_alone_and_fails_with_the_old_head(db_url: str) -> None:
    seeded = seed(db_url)
    old = verified(db_url)[1]
    for event in seeded[5:]:
        sql(db_url, "DELETE FROM events WHERE id = ?", (event["id"],))

    assert verified(db_url) == (5, seeded[4]["hash"])
    assert ok(db_url, "db", "check").stdout.count(seeded[4]["hash"]) == 1
    line = broken(um(db_url, "events", "verify", "--head", old))
    assert f"does not contain head {old}" in line and f"head now {seeded[4]['hash']}" in line, line
    # A head from before the cut is still in the chain.
    assert verified(db_url, "--head", seeded[2]["hash"]) == (5, seeded[4]["hash"])


def test_a_log_rewritten_after_the_kept_head_fails_with_that_head(db_url: str) -> None:
    seeded = seed(db_url)
    old = seeded[-1]["hash"]
    sql(db_url, "DELETE FROM events WHERE id = ?", (seeded[-1]["id"],))
    row = forged_row(seeded[-2]["hash"])
    sql(db_url, f"INSERT INTO events ({EVENT_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)

    assert verified(db_url) == (7, row[-1])  # what the chain alone cannot see
    assert "does not contain head" in broken(um(db_url, "events", "verify", "--head", old))


def test_the_installed_executable_reports_a_break_in_one_line_without_a_traceback(db_url: str) -> None:
    third = seed(db_url)[2]
    sql(db_url, "UPDATE events SET actor = 'mallory' WHERE id = ?", (third["id"],))
    for args in (["events", "verify"], ["db", "check"]):
        result = run_usermgr("--db", db_url, *args)
        assert result.returncode == 6, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and f"event 3 ({third['id']})" in result.stderr, result.stderr
        assert result.stdout == ""


def test_new_events_after_a_break_do_not_hide_it(db_url: str) -> None:
    third = seed(db_url)[2]
    sql(db_url, "UPDATE events SET actor = 'mallory' WHERE id = ?", (third["id"],))
    ok(db_url, "create", "dee@example.com", "--name", "Dee", "--no-password")
    assert_broken_at(db_url, 3, third["id"])


# --- imports and concurrent writers ----------------------------------------------------------


def test_an_import_chains_its_events_in_file_order_after_the_existing_ones(db_url: str, tmp_path: Path) -> None:
    ok(db_url, "create", "first@example.com", "--name", "First", "--no-password")
    count = 5003  # more than one batch of rows (unit_of_work.BATCH is 5000)
    emails = [f"user{n:05}@example.com" for n in reversed(range(count))]
    rows = tmp_path / "users.csv"
    rows.write_text("email,name\n" + "".join(f"{e},Ünïcode {n}\n" for n, e in enumerate(emails)))
    ok(db_url, "import", str(rows))

    found = events(db_url)
    assert [e["data"]["email"] for e in found[1:]] == emails
    assert {e["type"] for e in found[1:]} == {"UserCreated"}
    assert verified(db_url) == independent_chain(jsonl(db_url)) == (count + 1, found[-1]["hash"])


# Each worker waits on a pipe that the test closes once all have started, then runs
# its usermgr commands one after the other.
WORKER = """\
import json, os, subprocess, sys
os.read(int(sys.argv[1]), 1)
for argv in json.loads(sys.argv[2]):
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{argv[5:]}: exit {done.returncode}: {done.stderr}")
"""


@pytest.mark.slow
def test_concurrent_writers_and_readers_keep_one_valid_chain(db_url: str, tmp_path: Path) -> None:
    ok(db_url, "db", "upgrade")
    config = tmp_path / "concurrent.toml"
    config.write_text("[security]\nbcrypt_rounds = 4\n[database]\nbusy_timeout = 60\n")
    base = [USERMGR, "--db", db_url, "--config", str(config)]
    scripts = []
    for w in range(4):
        a, b = f"w{w}a@example.com", f"w{w}b@example.com"
        scripts.append(
            [
                [*base, "create", a, "--name", f"Worker {w} A", "--no-password"],
                [*base, "create", b, "--name", f"Worker {w} B", "--no-password"],
                [*base, "update", a, "--name", f"Worker {w} A2"],
                [*base, "set-role", b, "admin"],
                [*base, "deactivate", a],
            ]
        )
    rows = tmp_path / "bulk.csv"
    rows.write_text("email,name\n" + "".join(f"bulk{n}@example.com,Bulk {n}\n" for n in range(30)))
    scripts.append([[*base, "import", str(rows)]])
    # A reader checking the chain while it grows: each verify sees one consistent log.
    scripts.append([[*base, "events", "verify"] for _ in range(6)])

    gate, release = os.pipe()
    try:
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(gate), json.dumps(script)], pass_fds=(gate,),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for script in scripts
        ]
    finally:
        os.close(gate)
        os.close(release)  # the barrier: every worker's read returns now
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err

    found = events(db_url)
    assert len(found) == 4 * 5 + 30
    assert sorted(e["type"] for e in found).count("UserCreated") == 4 * 2 + 30
    assert len({e["id"] for e in found}) == len(found)
    assert verified(db_url) == independent_chain(jsonl(db_url)) == (50, found[-1]["hash"])
    # Each worker's own changes are in the order it made them.
    for w in range(4):
        mine = [e["type"] for e in found if e["data"].get("email", "").startswith(f"w{w}")]
        assert mine == ["UserCreated", "UserCreated", "UserUpdated", "UserRoleChanged", "UserDeactivated"]


# --- a database of usermgr 0.1 -----------------------------------------------------------------


def usermgr_0_1_database(path: Path) -> list[str]:
    """A schema-3 database as usermgr 0.1 left it: no hash column, data as Python's
    default json.dumps (ASCII escapes, spaces), times not in the log's order. The ids
    of its events, in log order."""
    from tests.helpers import sqlite_migration
    from usermgr.infrastructure.storage.sqlite.connect import APPLICATION_ID

    conn = sqlite3.connect(path, isolation_level=None)
    for number in (1, 2, 3):
        for statement in sqlite_migration(number):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    zoe, bob, gone = (str(uuid.uuid4()) for _ in range(3))
    for user_id, email, name in ((zoe, "zoe@example.com", "Zoë Ærø"), (bob, "bob@example.com", "Bob")):
        conn.execute(
            "INSERT INTO users (id, email, email_key, name, name_key, role, is_active, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, 'user', 1, NULL, '2025-06-01T10:00:00.000000Z')",
            (user_id, email, email, name, name.casefold()),
        )
    history = [
        (zoe, "UserCreated", "zoe@example.com", "2025-06-01T10:00:00.000000Z", {"email": "zoe@example.com", "name": "Zoë Ærø", "role": "user", "is_active": True}),
        (bob, "UserCreated", "bob@example.com", "2025-06-01T10:00:00.000000Z", {"email": "bob@example.com", "name": "Bob", "role": "user", "is_active": True}),
        (gone, "UserCreated", "gone@example.com", "2025-06-01T09:59:59.000000Z", {"email": "gone@example.com", "name": "Gone", "role": "user", "is_active": True}),
        (bob, "UserRoleChanged", "bob@example.com", "2025-06-02T08:00:00.000000Z", {"email": "bob@example.com", "before": "user", "after": "moderator"}),
        (gone, "UserDeleted", "gone@example.com", "2025-06-01T12:00:00.000000Z", {"email": "gone@example.com"}),
        (zoe, "UserUpdated", "zoe@example.com", "2025-06-03T00:00:00.000000Z", {"email": "zoe@example.com", "changes": {"name": ["Zoë", "Zoë Ærø"]}}),
    ]
    ids = []
    for user_id, event_type, key, when, data in history:
        event_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO events (id, type, user_id, email_key, occurred_at, actor, data) VALUES (?, ?, ?, ?, ?, 'root', ?)",
            (event_id, event_type, user_id, key, when, json.dumps(data)),
        )
        ids.append(event_id)
    conn.close()
    return ids


def test_a_migrated_0_1_database_is_chained_in_log_order_and_verifies(db_path: Path) -> None:
    ids = usermgr_0_1_database(db_path)
    db = str(db_path)
    ok(db, "list")  # any command migrates first

    found = events(db)
    assert [e["id"] for e in found] == ids
    assert found[0]["data"]["name"] == "Zoë Ærø"
    assert verified(db) == independent_chain(jsonl(db)) == (6, found[-1]["hash"])
    ok(db, "db", "check")

    # New events extend the migrated chain.
    ok(db, "set-role", "zoe@example.com", "admin")
    assert verified(db, "--head", found[-1]["hash"]) == independent_chain(jsonl(db))
    assert verified(db)[0] == 7
