"""`usermgr hashes`: the health of stored password hashes, on both engines, with hashes
of several bcrypt costs made here, accounts without a password, and malformed hashes
put in by hand. No output of any format may hold a hash."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import bcrypt
import pytest
from typer.testing import CliRunner, Result

from tests.helpers import PASSWORD, invoke_app, raw_sql, run_usermgr

RUNNER = CliRunner()
ROUNDS = 5  # the configured cost: cost 4 is weaker, 6 is not
MALFORMED = ("not a bcrypt hash", "$2b$03$" + "a" * 53, "$2b$05$tooshort")


@functools.cache
def bcrypt_hash(cost: int, password: str = PASSWORD) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "rounds5.toml"
    path.write_text(f"[security]\nbcrypt_rounds = {ROUNDS}\n")
    return str(path)


def um(db: str, config: str, *args: str, input: str | None = None) -> Result:
    result = invoke_app("--db", db, "--config", config, *args, input=input)
    assert "$2" not in result.stdout + result.stderr, "a hash was printed"
    return result


def ok(db: str, config: str, *args: str, input: str | None = None) -> Result:
    result = um(db, config, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def import_users(db: str, config: str, tmp_path: Path, users: list[tuple[str, str]]) -> None:
    """(email, password_hash) per user; an empty hash is a user with no usable password."""
    rows = tmp_path / "hashes.csv"
    rows.write_text("email,name,password_hash\n" + "".join(f"{e},{e.split('@')[0]},{h}\n" for e, h in users))
    ok(db, config, "import", str(rows))


def report(db: str, config: str, *options: str, code: int = 0) -> dict[str, object]:
    result = um(db, config, "hashes", "--format", "json", *options)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def mixed(db_url: str, config: str, tmp_path: Path) -> str:
    """Ten users: costs 4 (2), 5 (1) and 6 (3), two without a password (one imported,
    one created), and two whose stored hash was replaced by hand with a malformed one."""
    import_users(
        db_url,
        config,
        tmp_path,
        [
            ("c4a@example.com", bcrypt_hash(4)),
            ("c5@example.com", bcrypt_hash(5)),
            ("c6a@example.com", bcrypt_hash(6)),
            ("none1@example.com", ""),
            ("c4b@example.com", bcrypt_hash(4, "another long passphrase")),
            ("c6b@example.com", bcrypt_hash(6, "another long passphrase")),
            ("c6c@example.com", bcrypt_hash(6, "a third long passphrase")),
            ("bad1@example.com", bcrypt_hash(5)),
            ("bad2@example.com", bcrypt_hash(5)),
        ],
    )
    ok(db_url, config, "create", "none2@example.com", "--name", "None 2", "--no-password")
    for email, bad in (("bad1@example.com", MALFORMED[0]), ("bad2@example.com", MALFORMED[1])):
        raw_sql("UPDATE users SET password_hash = ? WHERE email = ?", (bad, email), location=db_url)
    return db_url


EXPECTED = {
    "users": 10,
    "no_password": 2,
    "by_cost": {"4": 2, "5": 1, "6": 3},
    "weaker": 2,
    "malformed": 2,
    "weaker_users": ["c4a@example.com", "c4b@example.com"],
}


def test_json_has_the_contracts_shape_and_counts(mixed: str, config: str) -> None:
    found = report(mixed, config)
    assert list(found) == list(EXPECTED)
    assert {**found, "weaker_users": sorted(found["weaker_users"])} == EXPECTED  # type: ignore[arg-type]


def test_check_exits_8_with_one_line_and_still_prints_the_report(mixed: str, config: str) -> None:
    result = um(mixed, config, "hashes", "--check", "--format", "json")
    assert result.exit_code == 8
    assert result.stderr == "usermgr: 2 weaker, 2 malformed, 2 without a password\n"
    assert json.loads(result.stdout)["users"] == 10


def test_the_table_gives_the_same_counts(mixed: str, config: str) -> None:
    lines = ok(mixed, config, "hashes").stdout.splitlines()
    for expected in (
        "users: 10",
        "no usable password: 2",
        "bcrypt cost 4: 2",
        "bcrypt cost 5: 1",
        "bcrypt cost 6: 3",
        "malformed: 2",
        "  weaker: c4a@example.com",
        "  weaker: c4b@example.com",
    ):
        assert expected in lines, (expected, lines)
    assert any(line.startswith(f"weaker than bcrypt_rounds ({ROUNDS}): 2") for line in lines), lines


@pytest.mark.parametrize("args", [[], ["--check"], ["--format", "json"], ["--format", "json", "--check"], ["--format", "table"]])
def test_no_output_of_any_format_holds_a_hash(mixed: str, config: str, args: list[str]) -> None:
    stored = [h for (h,) in raw_sql("SELECT password_hash FROM users", location=mixed) if h]
    assert len(stored) == 8
    result = run_usermgr("--db", mixed, "--config", config, "hashes", *args)
    assert result.returncode == (8 if "--check" in args else 0), result.stderr
    output = result.stdout + result.stderr
    assert "$2" not in output
    for stored_hash in stored:
        assert stored_hash not in output
    assert "Traceback" not in output


def test_a_successful_verify_rehashes_a_weaker_hash_and_the_report_follows(mixed: str, config: str) -> None:
    ok(mixed, config, "verify", "c4a@example.com", "--password-stdin", input=PASSWORD + "\n")
    found = report(mixed, config)
    assert found["by_cost"] == {"4": 1, "5": 2, "6": 3}
    assert (found["weaker"], found["weaker_users"]) == (1, ["c4b@example.com"])


def test_a_hash_costlier_than_configured_is_not_weaker(db_url: str, config: str, tmp_path: Path) -> None:
    import_users(db_url, config, tmp_path, [("c6@example.com", bcrypt_hash(6)), ("c5@example.com", bcrypt_hash(5))])
    assert report(db_url, config, "--check") == {
        "users": 2, "no_password": 0, "by_cost": {"5": 1, "6": 1}, "weaker": 0, "malformed": 0, "weaker_users": []
    }


@pytest.mark.parametrize(
    ("users", "malformed", "message"),
    [
        ([("c4@example.com", 4)], (), "1 weaker, 0 malformed, 0 without a password"),
        ([("none@example.com", None)], (), "0 weaker, 0 malformed, 1 without a password"),
        ([("bad@example.com", 5)], ("bad@example.com",), "0 weaker, 1 malformed, 0 without a password"),
    ],
    ids=["weaker", "no-password", "malformed"],
)
def test_check_exits_8_for_each_kind_of_trouble_alone(
    db_url: str, config: str, tmp_path: Path, users: list[tuple[str, int | None]], malformed: tuple[str, ...], message: str
) -> None:
    healthy = [("ok5@example.com", bcrypt_hash(5)), ("ok6@example.com", bcrypt_hash(6))]
    import_users(db_url, config, tmp_path, healthy + [(e, bcrypt_hash(c) if c else "") for e, c in users])
    for email in malformed:
        raw_sql("UPDATE users SET password_hash = ? WHERE email = ?", (MALFORMED[2], email), location=db_url)
    assert ok(db_url, config, "hashes").stderr == ""  # without --check, a report is no failure
    result = um(db_url, config, "hashes", "--check")
    assert result.exit_code == 8
    assert result.stderr == f"usermgr: {message}\n"


def test_check_passes_on_healthy_hashes_and_on_an_empty_database(db_url: str, config: str, tmp_path: Path) -> None:
    missing = um(db_url, config, "hashes", "--check")
    assert missing.exit_code == 0 and "nothing to show" in missing.stderr, missing.stderr  # no database yet
    ok(db_url, config, "db", "upgrade")
    empty = um(db_url, config, "hashes", "--check", "--format", "json")
    assert (empty.exit_code, empty.stderr) == (0, "")
    assert json.loads(empty.stdout) == {
        "users": 0, "no_password": 0, "by_cost": {}, "weaker": 0, "malformed": 0, "weaker_users": []
    }
    import_users(db_url, config, tmp_path, [("ok@example.com", bcrypt_hash(5))])
    result = um(db_url, config, "hashes", "--check")
    assert (result.exit_code, result.stderr) == (0, "")
    assert "users: 1" in result.stdout.splitlines()
