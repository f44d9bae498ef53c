"""`usermgr import` and `usermgr export` as an admin's script uses them, on each engine:
the installed executable (no terminal) where a real stdin and the bytes it prints
matter, in-process for the rest."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import postgresql
from tests.helpers import (
    FIELDS,
    OTHER_PASSWORD,
    PASSWORD,
    USERMGR,
    Cli,
    bcrypt_hash,
    seed_users,
    usermgr_ok,
    write_csv,
)

pytestmark = pytest.mark.usefixtures("engine")


# --- helpers -------------------------------------------------------------------


def summary(stdout: str) -> tuple[int, int]:
    """(created, existed) from the one summary line; existed is 0 when not printed."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    created = re.search(r"\bcreated (\d+)\b", lines[0])
    existed = re.search(r"\bexisted (\d+)\b", lines[0])
    assert created, stdout
    return int(created.group(1)), int(existed.group(1)) if existed else 0


def reported_lines(stderr: str) -> list[int]:
    """The N of every `line N: why` on stderr, in order."""
    return [int(m.group(1)) for m in re.finditer(r"^line (\d+): \S", stderr, re.MULTILINE)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def emails_in(cli: Cli) -> list[str]:
    return sorted(cli.stored())


# --- import: formats and sources ----------------------------------------------------


def test_import_of_a_csv_file_creates_the_users_and_prints_a_one_line_summary(tmp_path: Path, cli: Cli) -> None:
    source = write_csv(
        tmp_path / "users.csv",
        ["email", "name", "role", "is_active", "password"],
        [
            ["ada@example.com", "Ada, Countess", "admin", "TRUE", PASSWORD],
            ["bob@example.com", 'Bob "the builder"', "", "no", ""],
        ],
    )
    result = usermgr_ok("import", str(source))
    assert summary(result.stdout) == (2, 0)
    assert PASSWORD not in result.stdout + result.stderr
    users = {u["email"]: u for u in map(json.loads, cli.ok("export", "--format", "jsonl").stdout.splitlines())}
    assert users["ada@example.com"]["name"] == "Ada, Countess"
    assert users["ada@example.com"]["role"] == "admin"
    assert users["ada@example.com"]["is_active"] is True
    assert users["bob@example.com"]["name"] == 'Bob "the builder"'
    assert users["bob@example.com"]["is_active"] is False
    assert cli("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n").exit_code == 0


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_import_reads_json_lines_from_a_file_named_jsonl_or_ndjson(tmp_path: Path, cli: Cli, suffix: str) -> None:
    source = write_jsonl(
        tmp_path / f"users{suffix}",
        [
            {"email": "ada@example.com", "name": "Ada", "role": "moderator", "is_active": False},
            {"email": "bob@example.com", "name": "Bøb, Jr.", "is_active": "yes", "password": PASSWORD},
        ],
    )
    assert summary(cli.ok("import", str(source)).stdout) == (2, 0)
    users = {u["email"]: u for u in map(json.loads, cli.ok("export", "--format", "jsonl").stdout.splitlines())}
    assert users["ada@example.com"]["role"] == "moderator"
    assert users["ada@example.com"]["is_active"] is False
    assert users["bob@example.com"]["name"] == "Bøb, Jr."


def test_format_option_overrides_the_file_name(tmp_path: Path, cli: Cli) -> None:
    jsonl_in_txt = write_jsonl(tmp_path / "users.txt", [{"email": "ada@example.com", "name": "Ada"}])
    csv_in_jsonl = write_csv(tmp_path / "users.jsonl", ["email", "name"], [["bob@example.com", "Bob"]])
    assert summary(cli.ok("import", str(jsonl_in_txt), "--format", "jsonl").stdout) == (1, 0)
    assert summary(cli.ok("import", str(csv_in_jsonl), "--format", "csv").stdout) == (1, 0)
    assert emails_in(cli) == ["ada@example.com", "bob@example.com"]


def test_a_jsonl_file_without_format_is_read_as_csv_unless_its_name_says_so(tmp_path: Path, cli: Cli) -> None:
    source = write_jsonl(tmp_path / "users.json", [{"email": "ada@example.com", "name": "Ada"}])
    result = cli("import", str(source))
    assert result.exit_code == 2, result
    assert cli.stored() == {}


def test_dash_reads_csv_from_stdin(cli: Cli) -> None:
    result = usermgr_ok("import", "-", input="email,name\nada@example.com,Ada\nbob@example.com,Bob\n")
    assert summary(result.stdout) == (2, 0)
    assert emails_in(cli) == ["ada@example.com", "bob@example.com"]


def test_dash_with_format_jsonl_reads_json_lines_from_stdin(cli: Cli) -> None:
    data = '{"email": "ada@example.com", "name": "Ada"}\n\n{"email": "bob@example.com", "name": "Bob"}\n'
    assert summary(cli.ok("import", "-", "--format", "jsonl", input=data).stdout) == (2, 0)
    assert emails_in(cli) == ["ada@example.com", "bob@example.com"]


def test_a_csv_with_a_utf8_byte_order_mark_imports(tmp_path: Path, cli: Cli) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes("\ufeffemail,name\r\nada@example.com,Ada\r\n".encode())
    assert summary(cli.ok("import", str(source)).stdout) == (1, 0)
    assert emails_in(cli) == ["ada@example.com"]


# --- import: failures -------------------------------------------------------------------


def test_bad_rows_exit_2_with_each_bad_line_on_stderr_and_nothing_written(tmp_path: Path, cli: Cli) -> None:
    cli.create("old@example.com", "Old")
    before = cli.state()
    source = write_csv(
        tmp_path / "users.csv",
        ["email", "name", "role", "is_active", "password", "password_hash", "id", "created_at"],
        [
            ["good@example.com", "Good", "", "", "", "", "", ""],  # line 2
            ["not-an-email", "Bad", "", "", "", "", "", ""],  # line 3
            ["c@example.com", "C", "boss", "", "", "", "", ""],  # line 4
            ["d@example.com", "D", "", "maybe", "", "", "", ""],  # line 5
            ["e@example.com", "E", "", "", "short", "", "", ""],  # line 6
            ["f@example.com", "F", "", "", "", "$2b$12$tooShort", "", ""],  # line 7
            ["g@example.com", "G", "", "", "", "", "1234", ""],  # line 8
            ["h@example.com", "H", "", "", "", "", "", "2024-01-01T00:00:00"],  # line 9
            ["GOOD@example.com", "Good again", "", "", "", "", "", ""],  # line 10
            ["k@example.com", "K", "", "", "", "", "", ""],  # line 11
        ],
    )
    result = cli("import", str(source))
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert reported_lines(result.stderr) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "short" not in result.stderr.replace("too short", "")  # the password itself is never echoed
    assert cli.state() == before


def test_import_errors_name_the_line_and_column_but_never_echo_a_password_or_hash(tmp_path: Path, cli: Cli) -> None:
    source = tmp_path / "users.jsonl"
    source.write_text(
        json.dumps({"email": "a@example.com", "name": "A", "password": 123456789012345}) + "\n"
        + json.dumps({"email": "b@example.com", "name": "B", "password_hash": ["$2b$04$x"]}) + "\n"
    )
    result = cli("import", str(source), secrets=("123456789012345", "$2b$04$x"))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert re.search(r"line 1\b.*\bpassword\b", result.stderr), result.stderr
    assert re.search(r"line 2\b.*\bpassword_hash\b", result.stderr), result.stderr
    assert cli.stored() == {}


def test_jsonl_line_numbers_count_blank_lines_too(cli: Cli) -> None:
    data = '{"email": "a@example.com", "name": "A"}\n\n{"email": "b@example.com", "name": "B", "role": "x"}\n'
    result = cli("import", "-", "--format", "jsonl", input=data)
    assert result.exit_code == 2, result
    assert reported_lines(result.stderr) == [3]
    assert cli.stored() == {}


def test_an_unknown_csv_column_is_exit_2_naming_it(tmp_path: Path, cli: Cli) -> None:
    source = write_csv(tmp_path / "users.csv", ["email", "name", "nickname"], [["ada@example.com", "Ada", "ada"]])
    result = cli("import", str(source))
    assert result.exit_code == 2, result
    assert "nickname" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert cli.stored() == {}


def test_an_unknown_jsonl_key_is_exit_2_on_its_line(tmp_path: Path, cli: Cli) -> None:
    source = write_jsonl(
        tmp_path / "users.jsonl",
        [{"email": "ada@example.com", "name": "Ada"}, {"email": "bob@example.com", "name": "Bob", "nick": "b"}],
    )
    result = cli("import", str(source))
    assert result.exit_code == 2, result
    assert reported_lines(result.stderr) == [2]
    assert "nick" in result.stderr
    assert cli.stored() == {}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.csv", None),
        ("latin1.csv", "email,name\nada@example.com,Ad\xe9\n".encode("latin-1")),
        ("noname.csv", b"email\nada@example.com\n"),
    ],
)
def test_an_unreadable_file_is_exit_2_with_one_line(tmp_path: Path, cli: Cli, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = cli("import", str(path))
    assert result.exit_code == 2, result
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("usermgr: ")
    assert cli.stored() == {}


def test_existing_emails_exit_4_with_each_line_and_nothing_written(tmp_path: Path, cli: Cli) -> None:
    cli.create("old@example.com", "Old")
    cli.create("older@example.com", "Older")
    before = cli.state()
    source = write_csv(
        tmp_path / "users.csv",
        ["email", "name"],
        [["new@example.com", "New"], ["OLD@example.com", "Old"], ["older@EXAMPLE.com", "Older"]],
    )
    result = cli("import", str(source))
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    assert reported_lines(result.stderr) == [3, 4]
    assert "--exists-ok" in result.stderr
    assert cli.state() == before


def test_exists_ok_creates_the_new_users_skips_the_existing_ones_and_counts_both(tmp_path: Path, cli: Cli) -> None:
    old = cli.create("old@example.com", "Old", "--role", "admin")
    source = write_csv(
        tmp_path / "users.csv",
        ["email", "name", "role"],
        [["new@example.com", "New", "user"], ["Old@Example.com", "Renamed", "user"]],
    )
    result = cli.ok("import", str(source), "--exists-ok")
    assert summary(result.stdout) == (1, 1)
    shown = json.loads(cli.ok("show", "old@example.com", "--json").stdout)
    assert shown == {k: old[k] for k in FIELDS}
    assert emails_in(cli) == ["new@example.com", "old@example.com"]
    again = cli.ok("import", str(source), "--exists-ok")
    assert summary(again.stdout) == (0, 2)


def test_dry_run_reports_what_would_happen_and_writes_nothing(tmp_path: Path, cli: Cli) -> None:
    cli.create("old@example.com", "Old")
    before = cli.state()
    source = write_csv(
        tmp_path / "users.csv",
        ["email", "name", "password"],
        [["a@example.com", "A", PASSWORD], ["b@example.com", "B", ""], ["old@example.com", "Old", ""]],
    )
    result = cli.ok("import", str(source), "--dry-run", "--exists-ok")
    assert summary(result.stdout) == (2, 1)
    assert "dry" in result.stdout.lower() or "would" in result.stdout.lower()
    assert cli.state() == before
    conflict = cli("import", str(source), "--dry-run")
    assert conflict.exit_code == 4
    assert cli.state() == before


def test_dry_run_on_bad_rows_is_exit_2_too(cli: Cli) -> None:
    result = cli("import", "-", "--dry-run", input="email,name,role\nada@example.com,Ada,boss\n")
    assert result.exit_code == 2
    assert reported_lines(result.stderr) == [2]
def test_a_csv_row_with_the_wrong_number_of_fields_says_so(cli: Cli) -> None:
    result = cli("import", "-", input="email,name\nada@example.com,Ada\nbob@example.com,Bob,extra\n")
    assert result.exit_code == 2
    assert reported_lines(result.stderr) == [3]
    line = next(l for l in result.stderr.splitlines() if l.startswith("line 3:"))
    assert "field" in line and "'?'" not in line, line
def test_a_jsonl_line_that_is_not_json_says_so(cli: Cli) -> None:
    data = '{"email": "ada@example.com", "name": "Ada"}\n{not json\n'
    result = cli("import", "-", "--format", "jsonl", input=data)
    assert result.exit_code == 2
    assert reported_lines(result.stderr) == [2]
    line = next(l for l in result.stderr.splitlines() if l.startswith("line 2:"))
    assert "JSON" in line and "'?'" not in line, line
def test_jsonl_is_active_accepts_the_numbers_1_and_0(cli: Cli) -> None:
    data = '{"email": "a@example.com", "name": "A", "is_active": 0}\n{"email": "b@example.com", "name": "B", "is_active": 1}\n'
    result = cli("import", "-", "--format", "jsonl", input=data)
    assert result.exit_code == 0, result.stderr
    active = {email: user["is_active"] for email, user in cli.stored().items()}
    assert active == {"a@example.com": False, "b@example.com": True}


# --- export ----------------------------------------------------------------------


def test_export_csv_has_the_public_columns_oldest_first_and_no_hash(cli: Cli) -> None:
    ada = cli.create("ada@example.com", "Ada, Countess", "--role", "admin")
    bob = cli.create("bob@example.com", "Bob", "--inactive", password=None)
    result = cli.ok("export")
    assert result.stdout.splitlines()[0] == "id,email,name,role,is_active,created_at,updated_at"
    assert "$2b$" not in result.stdout and "$2a$" not in result.stdout and "$2y$" not in result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["email"] for r in rows] == ["ada@example.com", "bob@example.com"]
    assert rows[0] == {**{k: str(ada[k]) for k in FIELDS}, "is_active": "true", "updated_at": ""}
    assert rows[1]["is_active"] == "false"
    assert rows[1]["id"] == bob["id"]


def test_export_with_include_hashes_adds_a_password_hash_column(cli: Cli) -> None:
    cli.create("ada@example.com", "Ada")
    cli.create("bob@example.com", "Bob", password=None)
    result = cli.ok("export", "--include-hashes")
    assert result.stdout.splitlines()[0] == "id,email,name,role,is_active,created_at,updated_at,password_hash"
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert re.fullmatch(r"\$2b\$04\$[./A-Za-z0-9]{53}", rows["ada@example.com"]["password_hash"])
    assert rows["bob@example.com"]["password_hash"] == ""


def test_export_jsonl_prints_one_object_per_user_with_hashes_only_when_asked(cli: Cli) -> None:
    cli.create("ada@example.com", "Ada")
    cli.create("bob@example.com", "Bob", password=None)
    plain = [json.loads(line) for line in cli.ok("export", "--format", "jsonl").stdout.splitlines()]
    assert [set(u) for u in plain] == [set(FIELDS)] * 2
    assert [u["email"] for u in plain] == ["ada@example.com", "bob@example.com"]
    assert isinstance(plain[0]["is_active"], bool)
    hashed = [json.loads(line) for line in cli.ok("export", "--format", "jsonl", "--include-hashes").stdout.splitlines()]
    assert [set(u) for u in hashed] == [{*FIELDS, "password_hash"}] * 2
    assert hashed[0]["password_hash"].startswith("$2b$04$")
    assert hashed[1]["password_hash"] is None


def test_export_of_an_empty_database_is_just_the_header(cli: Cli) -> None:
    assert cli.ok("export").stdout == "id,email,name,role,is_active,created_at,updated_at\n"
    assert cli.ok("export", "--format", "jsonl").stdout == ""


# --- the round trip -----------------------------------------------------------------


@pytest.fixture
def populated(cli: Cli) -> dict[str, str | None]:
    """Users of every kind; returns each email's password (None: no usable password)."""
    cli.create("ada@example.com", "Ada Lovelace", "--role", "admin")
    cli.create("bob@example.com", "Bob", "--inactive", password=OTHER_PASSWORD)
    cli.create("cy@example.com", "Cy", password=None)
    cli.create("Dee@Example.com", "Dee", "--role", "moderator")
    cli.ok("update", "dee@example.com", "--name", "Dee Renamed", "--email", "Dee.New@Example.com")
    cli.create("élise@exämple.de", "Élise «quoted, with comma»")
    cli.create("fred@example.com", "[bold]Fred[/] \"the\" 'tester'", password=OTHER_PASSWORD)
    cli.ok("passwd", "fred@example.com", "--password-stdin", input=PASSWORD + "\n")
    return {
        "ada@example.com": PASSWORD,
        "bob@example.com": OTHER_PASSWORD,
        "cy@example.com": None,
        "Dee.New@example.com": PASSWORD,
        "élise@exämple.de": PASSWORD,
        "fred@example.com": PASSWORD,
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_with_hashes_reimports_into_an_empty_database_unchanged_and_passwords_still_verify(
    tmp_path: Path, cli: Cli, populated: dict[str, str | None], fmt: str
) -> None:
    original = usermgr_ok("export", "--format", fmt, "--include-hashes").stdout
    assert len(original.strip().splitlines()) == len(populated) + (fmt == "csv")
    dump = tmp_path / f"users.{fmt}"
    dump.write_text(original, encoding="utf-8")

    other = tmp_path / "elsewhere" / "other.db"
    result = cli.ok("--db", str(other), "import", str(dump), "--format", fmt)
    assert summary(result.stdout) == (len(populated), 0)
    copied = cli.ok("--db", str(other), "export", "--format", fmt, "--include-hashes").stdout
    assert copied == original  # and what the process printed is what the command writes
    # The other public formats agree as well.
    assert cli.ok("--db", str(other), "export").stdout == cli.ok("export").stdout

    for email, password in populated.items():
        code = cli("--db", str(other), "verify", email, "--password-stdin", input=(password or PASSWORD) + "\n").exit_code
        expected = 5 if password is None or email == "bob@example.com" else 0  # no password / inactive
        assert code == expected, email
        assert cli("--db", str(other), "verify", email, "--password-stdin", input="wrong password!!\n").exit_code == 5
    cli.ok("--db", str(other), "activate", "bob@example.com")
    assert cli("--db", str(other), "verify", "bob@example.com", "--password-stdin", input=OTHER_PASSWORD + "\n").exit_code == 0

    events = json.loads(cli.ok("--db", str(other), "events", "--type", "UserCreated", "--format", "json").stdout)
    assert len(events) == len(populated)
    assert len({e["user_id"] for e in events}) == len(populated)
    for event in events:
        assert "password" not in json.dumps(event) and "$2b$" not in json.dumps(event)


def test_reimporting_an_export_into_the_same_database_with_exists_ok_changes_nothing(
    tmp_path: Path, cli: Cli, populated: dict[str, str | None]
) -> None:
    dump = tmp_path / "users.csv"
    dump.write_text(cli.ok("export", "--include-hashes").stdout, encoding="utf-8")
    before = cli.state()
    assert cli("import", str(dump)).exit_code == 4
    assert summary(cli.ok("import", str(dump), "--exists-ok").stdout) == (0, len(populated))
    assert cli.state() == before


# --- export streams ----------------------------------------------------------------------

PEAK_RSS = textwrap.dedent(
    """
    import resource, subprocess, sys
    with open(sys.argv[1], "wb") as out:
        code = subprocess.run(sys.argv[2:], stdout=out).returncode
    print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)


def export_peak_rss_kib(db: str, out: Path, *options: str) -> int:
    """Peak RSS of one `usermgr export`, the only child of a fresh interpreter."""
    measured = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(out), USERMGR, "--db", db, "export", *options],
        capture_output=True, text=True, check=True, timeout=120,
    )
    code, peak = map(int, measured.stdout.split())
    assert code == 0, measured.stderr
    return peak


@pytest.fixture
def second_database(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another empty database on the test's engine."""
    if engine == "sqlite":
        yield str(tmp_path / "second.db")
        return
    server = request.getfixturevalue("postgresql_server")
    url = postgresql.fresh_database(server)
    yield url
    postgresql.release_database(server, url)


@pytest.mark.slow
def test_export_of_20000_users_streams_in_modest_memory(tmp_path: Path, cli: Cli, second_database: str) -> None:
    count = 20_000
    seed_users(count, password_hash=bcrypt_hash())
    big, small = os.environ["USERMGR_DB"], second_database
    cli.ok("--db", small, "import", "-", input="email,name\nsolo@example.com,Solo\n")

    out = tmp_path / "export.csv"
    small_peak = export_peak_rss_kib(small, out, "--include-hashes")
    big_peak = export_peak_rss_kib(big, out, "--include-hashes")
    with out.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    assert len(rows) == count + 1
    assert rows[1][1] == "user00000@example.com" and rows[-1][1] == f"user{count - 1:05d}@example.com"
    assert rows[1][7].startswith("$2b$04$")
    # Streaming costs a constant; holding 20,000 rows in memory costs tens of MiB.
    assert big_peak - small_peak < 16 * 1024, (small_peak, big_peak)

    jsonl_peak = export_peak_rss_kib(big, out, "--format", "jsonl")
    assert sum(1 for _ in out.open(encoding="utf-8")) == count
    assert jsonl_peak - small_peak < 16 * 1024, (small_peak, jsonl_peak)
