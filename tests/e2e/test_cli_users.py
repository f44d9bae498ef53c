"""The user commands of CONTRACT.md, driven in-process, on each engine.

Every invocation goes through `Cli` (tests/helpers.py), which fails the test if any
output holds a traceback, a bcrypt hash or a password the test handed in. `Cli.fails`
also checks that a failure is one line on stderr and that the database did not change."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FIELDS, OTHER_PASSWORD, PASSWORD, Cli, one_line

pytestmark = pytest.mark.usefixtures("engine")


def is_utc_iso(text: str) -> bool:
    moment = datetime.fromisoformat(text)
    return moment.utcoffset() == timedelta(0)


# --- create -----------------------------------------------------------------


class TestCreate:
    def test_create_with_password_stdin_prints_the_public_fields_as_json(self, cli: Cli) -> None:
        user = cli.create("ada@example.com", "Ada Lovelace")
        assert set(user) == {*FIELDS, "created"}
        assert user["created"] is True
        assert uuid.UUID(user["id"])
        assert user["email"] == "ada@example.com"
        assert user["name"] == "Ada Lovelace"
        assert user["role"] == "user"
        assert user["is_active"] is True
        assert is_utc_iso(user["created_at"])
        assert user["updated_at"] is None
        assert cli.verify("ada@example.com", PASSWORD) == 0

    def test_create_without_json_says_what_it_created_on_one_line(self, cli: Cli) -> None:
        result = cli.ok("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
        assert "ada@example.com" in result.stdout
        assert cli.json("show", "ada@example.com", "--json")["name"] == "Ada"

    def test_create_takes_only_the_first_line_of_stdin_and_removes_its_newline(self, cli: Cli) -> None:
        cli.ok("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\nsecond line\n")
        assert cli.verify("ada@example.com", PASSWORD) == 0
        assert cli.verify("ada@example.com", "second line") == 5

    def test_create_keeps_spaces_around_a_password_from_stdin(self, cli: Cli) -> None:
        cli.ok("create", "ada@example.com", "--name", "Ada", "--password-stdin", input=f" {PASSWORD} \n")
        assert cli.verify("ada@example.com", PASSWORD) == 5
        assert cli.verify("ada@example.com", f" {PASSWORD} ") == 0

    def test_create_reads_the_first_line_of_a_password_file(self, cli: Cli, tmp_path: Path) -> None:
        secret = tmp_path / "secret"
        secret.write_text(PASSWORD + "\nignored\n")
        cli.ok("create", "ada@example.com", "--name", "Ada", "--password-file", str(secret))
        assert cli.verify("ada@example.com", PASSWORD) == 0

    def test_create_with_generate_password_prints_it_once_and_it_works(self, cli: Cli) -> None:
        result = cli.ok("create", "ada@example.com", "--name", "Ada", "--generate-password")
        found = re.findall(r"^password: (\S+)$", result.stdout, re.MULTILINE)
        assert len(found) == 1
        password = found[0]
        assert len(password) >= 12
        assert result.stdout.count(password) == 1
        assert cli.verify("ada@example.com", password) == 0

    def test_create_with_generate_password_and_json_puts_it_in_a_password_key(self, cli: Cli) -> None:
        result = cli.ok("create", "ada@example.com", "--name", "Ada", "--generate-password", "--json")
        user = json.loads(result.stdout)
        assert set(user) == {*FIELDS, "created", "password"}
        assert user["created"] is True
        assert result.stdout.count(user["password"]) == 1
        assert cli.verify("ada@example.com", user["password"]) == 0

    def test_two_generated_passwords_differ(self, cli: Cli) -> None:
        first = cli.json("create", "a@example.com", "--name", "A", "--generate-password", "--json")
        second = cli.json("create", "b@example.com", "--name", "B", "--generate-password", "--json")
        assert first["password"] != second["password"]

    def test_create_with_no_password_makes_an_account_that_never_verifies(self, cli: Cli) -> None:
        user = cli.json("create", "ada@example.com", "--name", "Ada", "--no-password", "--json")
        assert user["created"] is True and "password" not in user
        assert cli.stored()["ada@example.com"]["password_hash"] is None
        assert cli.verify("ada@example.com", PASSWORD) == 5

    def test_create_with_role_and_inactive(self, cli: Cli) -> None:
        user = cli.create("ada@example.com", "Ada", "--role", "moderator", "--inactive")
        assert user["role"] == "moderator"
        assert user["is_active"] is False
        assert cli.json("show", "ada@example.com", "--json")["is_active"] is False

    @pytest.mark.parametrize("role", ["user", "admin", "moderator"])
    def test_create_accepts_each_role(self, cli: Cli, role: str) -> None:
        assert cli.create("ada@example.com", "Ada", "--role", role)["role"] == role

    def test_an_email_at_a_domain_that_does_not_resolve_is_accepted_without_a_dns_lookup(self, cli: Cli) -> None:
        started = time.perf_counter()
        user = cli.create("ada@no-such-domain-4f9c2e7a.com", "Ada")
        assert user["email"] == "ada@no-such-domain-4f9c2e7a.com"
        assert time.perf_counter() - started < 5

    def test_create_stores_the_email_normalised_by_email_validator(self, cli: Cli) -> None:
        user = cli.create("Ada@EXAMPLE.com", "Ada")
        assert user["email"] == "Ada@example.com"

    def test_a_duplicate_email_in_another_case_exits_4(self, cli: Cli, ada: dict[str, Any]) -> None:
        result = cli.fails(4, "create", "ADA@example.COM", "--name", "Other", "--password-stdin", input=PASSWORD + "\n")
        assert "ada@example.com" in result.stderr.lower()

    def test_exists_ok_on_an_existing_email_changes_nothing_and_says_so(self, cli: Cli, ada: dict[str, Any]) -> None:
        before = cli.state()
        result = cli.ok(
            "create", "ADA@example.com", "--name", "Somebody Else", "--role", "admin",
            "--password-stdin", "--exists-ok", input=OTHER_PASSWORD + "\n",
        )
        assert "exist" in result.stdout.lower()
        assert cli.state() == before
        assert cli.verify("ada@example.com", PASSWORD) == 0
        assert cli.verify("ada@example.com", OTHER_PASSWORD) == 5

    def test_exists_ok_with_json_reports_created_false_and_the_existing_user(self, cli: Cli, ada: dict[str, Any]) -> None:
        user = cli.json("create", "ada@example.com", "--name", "Other", "--no-password", "--exists-ok", "--json")
        assert user["created"] is False
        assert user["id"] == ada["id"]
        assert user["name"] == "Ada Lovelace"

    def test_exists_ok_with_generate_password_prints_no_password_when_the_user_exists(self, cli: Cli, ada: dict[str, Any]) -> None:
        before = cli.state()
        user = cli.json("create", "ada@example.com", "--name", "Ada", "--generate-password", "--exists-ok", "--json")
        assert user["created"] is False
        assert "password" not in user
        text = cli.ok("create", "ada@example.com", "--name", "Ada", "--generate-password", "--exists-ok")
        assert "password" not in text.stdout.lower()
        assert cli.state() == before
        assert cli.verify("ada@example.com", PASSWORD) == 0

    def test_exists_ok_on_a_new_email_creates_it(self, cli: Cli) -> None:
        user = cli.create("ada@example.com", "Ada", "--exists-ok")
        assert user["created"] is True
        assert cli.listing()["total"] == 1

    def test_a_name_of_exactly_200_characters_is_accepted(self, cli: Cli) -> None:
        assert cli.create("ada@example.com", "x" * 200)["name"] == "x" * 200
        cli.fails(2, "create", "b@example.com", "--name", "x" * 201, "--no-password")

    @pytest.mark.parametrize("password", ["p" * 72, "é" * 36, "x" * 12])
    def test_passwords_of_12_characters_to_72_bytes_are_accepted(self, cli: Cli, password: str) -> None:
        cli.create("ada@example.com", "Ada", password=password)
        assert cli.verify("ada@example.com", password) == 0


# --- list ---------------------------------------------------------------------


@pytest.fixture
def five(cli: Cli) -> list[dict[str, Any]]:
    """Five users created in order u0..u4, so newest first is u4..u0."""
    return [
        cli.json("create", f"u{i}@example.com", "--name", f"User {i}", "--no-password", "--json")
        for i in range(5)
    ]


class TestList:
    def test_json_is_one_object_with_items_and_page_numbers(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        page = cli.json("list", "--format", "json")
        assert set(page) == {"items", "total", "page", "per_page", "pages"}
        assert page["total"] == 5 and page["page"] == 1 and page["per_page"] == 20 and page["pages"] == 1
        assert all(set(item) == set(FIELDS) for item in page["items"])

    def test_users_are_listed_newest_first(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        emails = [u["email"] for u in cli.json("list", "--format", "json")["items"]]
        assert emails == [f"u{i}@example.com" for i in reversed(range(5))]

    def test_pages_split_the_users(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        pages = [cli.json("list", "--format", "json", "--per-page", "2", "--page", str(n)) for n in (1, 2, 3)]
        assert [p["pages"] for p in pages] == [3, 3, 3]
        assert [p["page"] for p in pages] == [1, 2, 3]
        assert [len(p["items"]) for p in pages] == [2, 2, 1]
        emails = [u["email"] for p in pages for u in p["items"]]
        assert emails == [f"u{i}@example.com" for i in reversed(range(5))]

    def test_default_page_holds_twenty_users(self, cli: Cli) -> None:
        for i in range(23):
            cli.ok("create", f"u{i:02}@example.com", "--name", f"User {i}", "--no-password")
        page = cli.json("list", "--format", "json")
        assert (len(page["items"]), page["total"], page["pages"]) == (20, 23, 2)
        assert len(cli.ok("list", "--format", "jsonl").stdout.splitlines()) == 20
        assert len(cli.ok("list", "--format", "csv").stdout.splitlines()) == 21
        assert len(cli.json("list", "--format", "json", "--page", "2")["items"]) == 3

    def test_all_returns_every_user_in_each_format(self, cli: Cli) -> None:
        for i in range(23):
            cli.ok("create", f"u{i:02}@example.com", "--name", f"User {i}", "--no-password")
        everything = cli.json("list", "--all", "--format", "json")
        assert len(everything["items"]) == 23
        assert (everything["total"], everything["page"], everything["pages"]) == (23, 1, 1)
        jsonl = cli.ok("list", "--all", "--format", "jsonl").stdout.splitlines()
        assert [json.loads(line) for line in jsonl] == everything["items"]
        rows = list(csv.DictReader(io.StringIO(cli.ok("list", "--all", "--format", "csv").stdout)))
        assert [r["email"] for r in rows] == [u["email"] for u in everything["items"]]
        table = cli.ok("list", "--all", "--format", "table").stdout
        assert all(u["email"] in table for u in everything["items"])
        assert cli.ok("list", "--all").stdout == table

    def test_all_applies_the_filters(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        cli.ok("set-role", "u1@example.com", "admin")
        cli.ok("set-role", "u3@example.com", "admin")
        cli.ok("deactivate", "u3@example.com")
        for fmt in ("json", "jsonl", "csv", "table"):
            out = cli.ok("list", "--all", "--role", "admin", "--active", "--format", fmt).stdout
            assert "u1@example.com" in out
            assert "u3@example.com" not in out and "u0@example.com" not in out

    def test_jsonl_prints_one_user_object_a_line(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        lines = cli.ok("list", "--format", "jsonl").stdout.splitlines()
        users = [json.loads(line) for line in lines]
        assert len(users) == 5
        assert all(set(u) == set(FIELDS) for u in users)
        assert users == cli.json("list", "--format", "json")["items"]

    def test_csv_has_the_contract_header_and_one_row_a_user(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        cli.ok("deactivate", "u0@example.com")
        out = cli.ok("list", "--format", "csv").stdout
        assert out.splitlines()[0] == ",".join(FIELDS)
        rows = list(csv.DictReader(io.StringIO(out)))
        assert len(rows) == 5
        by_email = {r["email"]: r for r in rows}
        assert by_email["u0@example.com"]["is_active"] == "false"
        assert by_email["u1@example.com"]["is_active"] == "true"
        assert by_email["u1@example.com"]["updated_at"] == ""
        assert by_email["u0@example.com"]["updated_at"] != ""

    def test_csv_quotes_names_with_commas_and_quotes(self, cli: Cli) -> None:
        name = 'Lovelace, Ada "the Countess"'
        cli.ok("create", "ada@example.com", "--name", name, "--no-password")
        rows = list(csv.DictReader(io.StringIO(cli.ok("list", "--format", "csv").stdout)))
        assert rows[0]["name"] == name

    def test_table_is_the_default_and_shows_every_user(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        out = cli.ok("list").stdout
        assert out == cli.ok("list", "--format", "table").stdout
        assert "email" in out.splitlines()[0]
        assert all(u["email"] in out and u["id"] in out for u in five)

    def test_table_without_a_terminal_has_no_escapes_or_box_characters(self, cli: Cli) -> None:
        long_name = "Augusta Ada King, Countess of Lovelace " * 5
        cli.ok("create", "ada@example.com", "--name", long_name.strip(), "--no-password")
        out = cli.ok("list").stdout
        assert "\x1b" not in out
        assert not re.search(r"[\u2500-\u257f\u2026]", out)
        assert any(long_name.strip() in line for line in out.splitlines())

    def test_search_matches_name_or_email_case_insensitively(self, cli: Cli) -> None:
        cli.ok("create", "ada@example.com", "--name", "Ada Lovelace", "--no-password")
        cli.ok("create", "grace@navy.mil", "--name", "Grace Hopper", "--no-password")
        def found(text: str) -> list[str]:
            return [u["email"] for u in cli.json("list", "--format", "json", "--search", text)["items"]]
        assert found("LOVELACE") == ["ada@example.com"]
        assert found("NAVY") == ["grace@navy.mil"]
        assert found("a") == ["grace@navy.mil", "ada@example.com"]
        assert found("nobody") == []

    def test_search_is_unicode_case_insensitive(self, cli: Cli) -> None:
        cli.ok("create", "élise@example.com", "--name", "Élise Ünal", "--no-password")
        cli.ok("create", "bob@example.com", "--name", "Bob", "--no-password")
        for text in ("ÉLISE", "ünal", "ÜNAL", "ÉLISE@EXAMPLE", "E\u0301LISE"):
            items = cli.json("list", "--format", "json", "--search", text)["items"]
            assert [u["email"] for u in items] == ["élise@example.com"], text

    @pytest.mark.parametrize("text, expected", [("%", ["100% Real"]), ("_", ["a_b"]), ("a_b", ["a_b"]), ("0%", ["100% Real"])])
    def test_search_treats_percent_and_underscore_as_ordinary_characters(self, cli: Cli, text: str, expected: list[str]) -> None:
        for i, name in enumerate(["100% Real", "a_b", "axb", "abc", "100 Real"]):
            cli.ok("create", f"user{i}@example.com", "--name", name, "--no-password")
        items = cli.json("list", "--format", "json", "--search", text)["items"]
        assert [u["name"] for u in items] == expected
        all_items = cli.ok("list", "--all", "--format", "jsonl", "--search", text).stdout.splitlines()
        assert [json.loads(line)["name"] for line in all_items] == expected

    def test_active_and_inactive_filter(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        cli.ok("deactivate", "u2@example.com")
        active = cli.json("list", "--format", "json", "--active")
        inactive = cli.json("list", "--format", "json", "--inactive")
        assert active["total"] == 4 and "u2@example.com" not in [u["email"] for u in active["items"]]
        assert [u["email"] for u in inactive["items"]] == ["u2@example.com"]

    def test_role_filter(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        cli.ok("set-role", "u4@example.com", "moderator")
        assert [u["email"] for u in cli.json("list", "--format", "json", "--role", "moderator")["items"]] == ["u4@example.com"]
        assert cli.json("list", "--format", "json", "--role", "admin")["items"] == []
        assert cli.json("list", "--format", "json", "--role", "user")["total"] == 4

    def test_an_empty_database_lists_nothing(self, cli: Cli) -> None:
        assert cli.json("list", "--format", "json") == {"items": [], "total": 0, "page": 1, "per_page": 20, "pages": 1}
        assert cli.ok("list", "--format", "jsonl").stdout == ""
        assert cli.ok("list", "--format", "csv").stdout.splitlines() == [",".join(FIELDS)]

    def test_per_page_accepts_one_thousand(self, cli: Cli, five: list[dict[str, Any]]) -> None:
        assert cli.json("list", "--format", "json", "--per-page", "1000")["per_page"] == 1000

    @pytest.mark.parametrize("page", ["99999999999999999999", "999999999999999999", str(2**63)])
    def test_a_huge_page_number_is_an_empty_page_or_exit_2(self, cli: Cli, ada: dict[str, Any], page: str) -> None:
        for fmt in ("json", "table"):
            result = cli("list", "--format", fmt, "--page", page)
            assert result.exit_code in (0, 2), (fmt, result.stderr)
            if result.exit_code == 0 and fmt == "json":
                assert json.loads(result.stdout)["items"] == []
            if result.exit_code == 2:
                assert len(result.stderr.splitlines()) == 1


# --- show, update, activate, deactivate, set-role, delete -----------------------


class TestShow:
    def test_show_finds_a_user_by_email_in_any_case_or_by_id(self, cli: Cli, ada: dict[str, Any]) -> None:
        public = {k: ada[k] for k in FIELDS}
        for ref in ("ada@example.com", "ADA@Example.COM", ada["id"], ada["id"].upper()):
            assert cli.json("show", ref, "--json") == public

    def test_show_json_has_exactly_the_public_fields(self, cli: Cli, ada: dict[str, Any]) -> None:
        assert set(cli.json("show", "ada@example.com", "--json")) == set(FIELDS)

    def test_show_without_json_prints_every_field(self, cli: Cli, ada: dict[str, Any]) -> None:
        out = cli.ok("show", "ada@example.com").stdout
        for field in FIELDS:
            assert field in out
        assert ada["id"] in out and "Ada Lovelace" in out


class TestUpdate:
    def test_update_changes_the_name_and_sets_updated_at(self, cli: Cli, ada: dict[str, Any]) -> None:
        user = cli.json("update", "ada@example.com", "--name", "Countess Lovelace", "--json")
        assert set(user) == set(FIELDS)
        assert user["name"] == "Countess Lovelace"
        assert user["updated_at"] is not None and is_utc_iso(user["updated_at"])
        assert user["created_at"] == ada["created_at"]
        assert cli.json("show", ada["id"], "--json") == user

    def test_update_changes_the_email_and_the_user_is_found_by_it(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("update", "ada@example.com", "--email", "ada@lovelace.org")
        assert cli.json("show", "ada@lovelace.org", "--json")["id"] == ada["id"]
        cli.fails(3, "show", "ada@example.com")
        assert cli.verify("ada@lovelace.org", PASSWORD) == 0

    def test_update_can_change_the_case_of_its_own_email(self, cli: Cli, ada: dict[str, Any]) -> None:
        user = cli.json("update", "ada@example.com", "--email", "Ada@example.com", "--json")
        assert user["email"] == "Ada@example.com"

    def test_update_to_an_email_another_user_has_exits_4(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.create("grace@example.com", "Grace")
        cli.fails(4, "update", "grace@example.com", "--email", "ADA@example.com")


class TestActivation:
    def test_deactivate_then_activate(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("deactivate", "ada@example.com")
        assert cli.json("show", "ada@example.com", "--json")["is_active"] is False
        assert cli.verify("ada@example.com", PASSWORD) == 5
        cli.ok("activate", "ada@example.com")
        assert cli.json("show", "ada@example.com", "--json")["is_active"] is True
        assert cli.verify("ada@example.com", PASSWORD) == 0

    def test_activate_of_an_active_user_is_an_idempotent_no_op(self, cli: Cli, ada: dict[str, Any]) -> None:
        before = cli.state()
        cli.ok("activate", "ada@example.com")
        cli.ok("activate", "ada@example.com")
        assert cli.state() == before
        assert cli.json("show", "ada@example.com", "--json")["updated_at"] is None

    def test_deactivate_twice_exits_0_and_changes_only_once(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("deactivate", "ada@example.com")
        after_first = cli.state()
        cli.ok("deactivate", "ada@example.com")
        assert cli.state() == after_first


class TestSetRole:
    def test_set_role_changes_the_role(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("set-role", "ada@example.com", "admin")
        user = cli.json("show", "ada@example.com", "--json")
        assert user["role"] == "admin" and user["updated_at"] is not None

    def test_set_role_to_the_same_role_changes_nothing(self, cli: Cli, ada: dict[str, Any]) -> None:
        before = cli.state()
        cli.ok("set-role", "ada@example.com", "user")
        assert cli.state() == before


class TestDelete:
    def test_delete_with_yes_removes_the_user(self, cli: Cli, ada: dict[str, Any]) -> None:
        result = cli.ok("delete", "ADA@example.com", "--yes")
        assert "ada@example.com" in result.stdout
        assert cli.listing()["total"] == 0
        cli.fails(3, "show", ada["id"])
        assert cli.verify("ada@example.com", PASSWORD) == 5

    def test_delete_by_id(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("delete", ada["id"], "--yes")
        assert cli.listing()["total"] == 0

    def test_delete_without_yes_and_without_a_terminal_exits_2_and_keeps_the_user(self, cli: Cli, ada: dict[str, Any]) -> None:
        result = cli.fails(2, "delete", "ada@example.com")
        assert "--yes" in result.stderr
        cli.fails(2, "delete", "ada@example.com", input="y\n")

    def test_an_email_freed_by_delete_can_be_used_again(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("delete", "ada@example.com", "--yes")
        again = cli.create("ada@example.com", "Ada Again")
        assert again["id"] != ada["id"]


# --- passwd and verify --------------------------------------------------------


class TestPasswd:
    def test_passwd_from_stdin_replaces_the_password(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.ok("passwd", "ada@example.com", "--password-stdin", input=OTHER_PASSWORD + "\n")
        assert cli.verify("ada@example.com", OTHER_PASSWORD) == 0
        assert cli.verify("ada@example.com", PASSWORD) == 5
        assert cli.json("show", "ada@example.com", "--json")["updated_at"] is not None

    def test_passwd_from_a_file(self, cli: Cli, ada: dict[str, Any], tmp_path: Path) -> None:
        secret = tmp_path / "secret"
        secret.write_text(OTHER_PASSWORD + "\n")
        cli.ok("passwd", ada["id"], "--password-file", str(secret))
        assert cli.verify("ada@example.com", OTHER_PASSWORD) == 0

    def test_passwd_with_generate_password_prints_it_once(self, cli: Cli, ada: dict[str, Any]) -> None:
        result = cli.ok("passwd", "ada@example.com", "--generate-password")
        found = re.findall(r"^password: (\S+)$", result.stdout, re.MULTILINE)
        assert len(found) == 1 and result.stdout.count(found[0]) == 1
        assert cli.verify("ada@example.com", found[0]) == 0
        assert cli.verify("ada@example.com", PASSWORD) == 5

    def test_passwd_gives_a_password_to_an_account_created_without_one(self, cli: Cli) -> None:
        cli.ok("create", "ada@example.com", "--name", "Ada", "--no-password")
        cli.ok("passwd", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
        assert cli.verify("ada@example.com", PASSWORD) == 0

    @pytest.mark.parametrize("password", ["short1", "p" * 73, "é" * 37, "ada@example.com", "ADA@EXAMPLE.COM"])
    def test_passwd_with_a_password_against_the_policy_exits_2_and_keeps_the_old_one(
        self, cli: Cli, ada: dict[str, Any], password: str
    ) -> None:
        cli.fails(2, "passwd", "ada@example.com", "--password-stdin", input=password + "\n")
        assert cli.verify("ada@example.com", PASSWORD) == 0

    def test_passwd_has_no_no_password_option(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.fails(2, "passwd", "ada@example.com", "--no-password", usage=True)
        assert cli.verify("ada@example.com", PASSWORD) == 0


class TestVerify:
    def test_verify_exits_0_for_the_right_password_by_email_or_id(self, cli: Cli, ada: dict[str, Any]) -> None:
        assert cli.verify("ada@example.com", PASSWORD) == 0
        assert cli.verify("ADA@EXAMPLE.COM", PASSWORD) == 0
        assert cli.verify(ada["id"], PASSWORD) == 0

    def test_verify_reads_a_password_file(self, cli: Cli, ada: dict[str, Any], tmp_path: Path) -> None:
        secret = tmp_path / "secret"
        secret.write_text(PASSWORD + "\n")
        assert cli("verify", "ada@example.com", "--password-file", str(secret)).exit_code == 0
        secret.write_text(OTHER_PASSWORD + "\n")
        assert cli("verify", "ada@example.com", "--password-file", str(secret)).exit_code == 5

    def test_every_verification_failure_exits_5_with_the_same_message(self, cli: Cli) -> None:
        cli.create("wrong@example.com", "Wrong")
        cli.create("inactive@example.com", "Inactive", "--inactive")
        cli.ok("create", "nopass@example.com", "--name", "No Pass", "--no-password")
        too_long = "x" * 73
        attempts = [
            ("wrong@example.com", OTHER_PASSWORD),
            ("wrong@example.com", too_long),
            ("inactive@example.com", PASSWORD),
            ("nopass@example.com", PASSWORD),
            ("nobody@example.com", PASSWORD),
            (str(uuid.uuid4()), PASSWORD),
        ]
        messages = set()
        for user, password in attempts:
            result = cli.fails(5, "verify", user, "--password-stdin", input=password + "\n")
            messages.add(result.stderr)
        assert len(messages) == 1, messages

    @pytest.mark.sqlite_only("it times bcrypt's work, which no engine changes")
    def test_every_verification_failure_costs_about_the_same_bcrypt_work(self, cli: Cli, config_path: Path) -> None:
        config_path.write_text("[security]\nbcrypt_rounds = 10\n")
        cli.create("known@example.com", "Known")
        cli.create("inactive@example.com", "Inactive", "--inactive")
        cli.ok("create", "nopass@example.com", "--name", "No Pass", "--no-password")
        cli.fails(5, "verify", "nobody@example.com", "--password-stdin", input=OTHER_PASSWORD + "\n")  # warm up

        def median_seconds(user: str, password: str) -> float:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                assert cli.verify(user, password) == 5
                times.append(time.perf_counter() - started)
            return statistics.median(times)

        wrong = median_seconds("known@example.com", OTHER_PASSWORD)
        others = {
            "unknown": median_seconds("nobody@example.com", OTHER_PASSWORD),
            "inactive": median_seconds("inactive@example.com", PASSWORD),
            "no password": median_seconds("nopass@example.com", PASSWORD),
            "too long": median_seconds("known@example.com", "x" * 73),
        }
        for case, seconds in others.items():
            assert 0.5 < seconds / wrong < 2.0, (case, seconds, wrong)

    def test_verify_of_a_long_wrong_password_exits_5_not_a_crash(self, cli: Cli, ada: dict[str, Any]) -> None:
        for password in ("y" * 73, "é" * 40, "z" * 1000):
            cli.fails(5, "verify", "ada@example.com", "--password-stdin", input=password + "\n")

    def test_a_password_is_never_truncated_to_72_bytes(self, cli: Cli) -> None:
        exact = "p" * 72
        cli.create("ada@example.com", "Ada", password=exact)
        assert cli.verify("ada@example.com", exact) == 0
        cli.fails(5, "verify", "ada@example.com", "--password-stdin", input=exact + "q\n")
        cli.fails(5, "verify", "ada@example.com", "--password-stdin", input=exact + "p" * 28 + "\n")

    def test_verify_on_an_empty_database_exits_5(self, cli: Cli) -> None:
        cli.fails(5, "verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")
        assert cli.state() == ("", "")

    def test_a_changed_bcrypt_cost_rehashes_on_successful_verify_without_touching_updated_at(
        self, cli: Cli, ada: dict[str, Any], config_path: Path
    ) -> None:
        def stored_hash() -> str:
            return cli.stored()["ada@example.com"]["password_hash"]

        assert stored_hash().startswith("$2b$04$")
        config_path.write_text("[security]\nbcrypt_rounds = 5\n")
        assert cli.verify("ada@example.com", OTHER_PASSWORD) == 5
        assert stored_hash().startswith("$2b$04$")
        assert cli.verify("ada@example.com", PASSWORD) == 0
        assert stored_hash().startswith("$2b$05$")
        assert cli.json("show", "ada@example.com", "--json") == {k: ada[k] for k in FIELDS}
        assert cli.verify("ada@example.com", PASSWORD) == 0


# --- users that are not there ------------------------------------------------------


class TestUnknownUsers:
    @pytest.mark.parametrize(
        "command",
        [
            ["show"],
            ["show", "--json"],
            ["update", "--name", "X"],
            ["update", "--email", "fresh@example.com"],
            ["activate"],
            ["deactivate"],
            ["set-role", "admin"],
            ["delete", "--yes"],
        ],
    )
    def test_an_unknown_user_exits_3(self, cli: Cli, ada: dict[str, Any], command: list[str]) -> None:
        name, *rest = command
        before = cli.state()
        for ref in ("nobody@example.com", "NOBODY@example.com", "00000000-0000-4000-8000-000000000000", "not-an-id"):
            result = cli(name, ref, *rest)
            assert (result.exit_code, result.stdout) == (3, ""), (ref, result.stdout, result.stderr)
            one_line(result.stderr)
        assert cli.state() == before

    def test_passwd_of_an_unknown_user_exits_3(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.fails(3, "passwd", "nobody@example.com", "--password-stdin", input=OTHER_PASSWORD + "\n")
        cli.fails(3, "passwd", str(uuid.uuid4()), "--password-stdin", input=OTHER_PASSWORD + "\n")

    def test_unknown_users_on_an_empty_database_exit_3(self, cli: Cli) -> None:
        cli.fails(3, "show", "nobody@example.com")
        cli.fails(3, "deactivate", "nobody@example.com")
        assert cli.listing()["total"] == 0

    def test_debug_does_not_turn_an_expected_failure_into_a_traceback(self, cli: Cli, ada: dict[str, Any]) -> None:
        cli.fails(2, "--debug", "create", "bad email", "--name", "Bad", "--no-password")
        cli.fails(4, "--debug", "create", "ada@example.com", "--name", "Ada", "--no-password")
        cli.fails(3, "--debug", "show", "nobody@example.com")


class TestUnicodeEmails:
    def test_an_idn_domain_and_its_punycode_form_are_the_same_email(self, cli: Cli) -> None:
        user = cli.create("x@münchen.de", "X")
        cli.fails(4, "create", "x@xn--mnchen-3ya.de", "--name", "Y", "--no-password")
        cli.fails(4, "create", "X@MÜNCHEN.DE", "--name", "Y", "--no-password")
        assert cli.json("show", "x@xn--mnchen-3ya.de", "--json")["id"] == user["id"]
        assert cli.verify("x@xn--mnchen-3ya.de", PASSWORD) == 0

    def test_a_punycode_domain_then_its_unicode_form_is_a_duplicate(self, cli: Cli) -> None:
        cli.create("x@xn--mnchen-3ya.de", "X")
        cli.fails(4, "create", "x@münchen.de", "--name", "Y", "--no-password")

    def test_unicode_local_parts_are_unique_case_insensitively(self, cli: Cli) -> None:
        cli.create("Élise@example.com", "Élise")
        cli.fails(4, "create", "élise@example.com", "--name", "Other", "--no-password")
        cli.fails(4, "create", "ÉLISE@example.com", "--name", "Other", "--no-password")
        assert cli.json("show", "élise@example.com", "--json")["email"] == "Élise@example.com"

    def test_a_decomposed_local_part_is_the_same_email_as_the_composed_one(self, cli: Cli) -> None:
        cli.create("\u00e9lise@example.com", "Élise")
        cli.fails(4, "create", "e\u0301lise@example.com", "--name", "Other", "--no-password")

    def test_update_to_a_unicode_case_variant_of_another_users_email_exits_4(self, cli: Cli) -> None:
        cli.create("élise@example.com", "Élise")
        cli.create("bob@example.com", "Bob")
        cli.fails(4, "update", "bob@example.com", "--email", "ÉLISE@example.com")


class TestNamesPrintedLiterally:
    @pytest.mark.parametrize(
        "name",
        ["[bold]x[/]", "[/]", "[link=https://evil.example]click[/link]", "[red]Ada[/red] <b>x</b> &amp; %s {0}"],
    )
    def test_a_name_with_markup_is_shown_as_typed(self, cli: Cli, name: str) -> None:
        user = cli.json("create", "ada@example.com", "--name", name, "--no-password", "--json")
        assert user["name"] == name
        assert name in cli.ok("show", "ada@example.com").stdout
        assert cli.json("show", "ada@example.com", "--json")["name"] == name
        table = cli.ok("list").stdout
        assert name in table
        assert "\x1b" not in table
        assert cli.json("list", "--format", "json")["items"][0]["name"] == name
        rows = list(csv.DictReader(io.StringIO(cli.ok("list", "--format", "csv").stdout)))
        assert rows[0]["name"] == name
        renamed = cli.json("update", "ada@example.com", "--name", name + "!", "--json")
        assert renamed["name"] == name + "!"


class TestSecretsNeverPrinted:
    def test_no_command_prints_a_hash_or_the_password(self, cli: Cli, tmp_path: Path) -> None:
        # Cli.__call__ checks every output for "$2b$" and for PASSWORD.
        user = cli.create("ada@example.com", "Ada")
        cli.ok("show", "ada@example.com")
        cli.ok("show", "ada@example.com", "--json")
        for fmt in ("table", "json", "jsonl", "csv"):
            out = cli.ok("list", "--format", fmt).stdout
            assert "password" not in out.lower()
            cli.ok("list", "--all", "--format", fmt)
        cli.ok("update", user["id"], "--name", "Ada L", "--json")
        cli.ok("set-role", user["id"], "admin")
        cli.ok("deactivate", user["id"])
        cli.ok("activate", user["id"])
        cli.ok("passwd", user["id"], "--password-stdin", "--json", input=OTHER_PASSWORD + "\n")
        assert cli.verify(user["id"], OTHER_PASSWORD) == 0
        assert cli.verify(user["id"], PASSWORD) == 5
        cli.fails(4, "create", "ada@example.com", "--name", "Ada", "--password-stdin", input=PASSWORD + "\n")
        cli.ok("delete", user["id"], "--yes")
        assert cli.stored() == {}

    def test_passwd_json_has_no_password_key_unless_generated(self, cli: Cli, ada: dict[str, Any]) -> None:
        user = cli.json("passwd", "ada@example.com", "--password-stdin", "--json", input=OTHER_PASSWORD + "\n")
        assert "password" not in user and "password_hash" not in user
        generated = cli.json("passwd", "ada@example.com", "--generate-password", "--json")
        assert cli.verify("ada@example.com", generated["password"]) == 0
