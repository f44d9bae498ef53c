"""`usermgr events` (the audit log) and `usermgr hooks list`, through the CLI on each
engine: in-process, and through the installed executable where the terminal matters."""

from __future__ import annotations

import json
import os
import pwd
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EVERY, OTHER_PASSWORD, PASSWORD, Cli, invoke_app, raw_sql, run_usermgr

pytestmark = pytest.mark.usefixtures("engine")

ENVELOPE = {"id", "type", "user_id", "occurred_at", "actor", "data", "hash"}
OS_USER = pwd.getpwuid(os.geteuid()).pw_name
RENDERING = "it checks how the table is printed, from events the other tests show each engine gives alike"


def is_utc(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() == timedelta(0)


@pytest.fixture
def history(cli: Cli) -> dict[str, Any]:
    """One user through every kind of change."""
    user = cli.create("ada@example.com", "Ada")
    cli.ok("update", "ada@example.com", "--name", "Ada Lovelace", "--email", "countess@example.com")
    cli.ok("set-role", "countess@example.com", "admin")
    cli.ok("deactivate", user["id"])
    cli.ok("activate", user["id"])
    cli.ok("passwd", "countess@example.com", "--password-stdin", input=OTHER_PASSWORD + "\n")
    cli.ok("delete", "countess@example.com", "--yes")
    return user


ALL_TYPES = [
    "UserCreated",
    "UserUpdated",
    "UserRoleChanged",
    "UserDeactivated",
    "UserActivated",
    "UserPasswordChanged",
    "UserDeleted",
]


# --- what the log holds --------------------------------------------------------------


class TestAuditLog:
    def test_every_change_is_an_event_in_order_oldest_first(self, cli: Cli, history: dict[str, Any]) -> None:
        found = cli.events()

        assert [e["type"] for e in found] == ALL_TYPES
        for event in found:
            assert set(event) == ENVELOPE
            assert event["user_id"] == history["id"]
            assert uuid.UUID(event["id"])
            assert is_utc(event["occurred_at"])
        assert len({e["id"] for e in found}) == len(found)
        times = [datetime.fromisoformat(e["occurred_at"]) for e in found]
        assert times == sorted(times)
        assert times[0] >= datetime.fromisoformat(history["created_at"]) - timedelta(seconds=1)

    def test_the_actor_is_the_os_user_who_ran_the_command(self, cli: Cli, history: dict[str, Any]) -> None:
        assert {e["actor"] for e in cli.events()} == {OS_USER}

    def test_the_actor_names_the_sudo_caller_too(self, cli: Cli) -> None:
        cli.create("ada@example.com", "Ada", env={"SUDO_USER": "alice"})
        cli.ok("deactivate", "ada@example.com", env={"SUDO_USER": "alice"})
        cli.ok("activate", "ada@example.com")

        sudo_created, sudo_deactivated, plain = cli.events()

        assert "alice" in sudo_created["actor"] and "alice" in sudo_deactivated["actor"]
        assert OS_USER in sudo_created["actor"] or sudo_created["actor"] == "alice"
        assert plain["actor"] == OS_USER

    def test_each_event_records_the_email_at_that_time_and_what_changed(
        self, cli: Cli, history: dict[str, Any]
    ) -> None:
        created, updated, role, deactivated, activated, password, deleted = cli.events()

        assert created["data"] == {"email": "ada@example.com", "name": "Ada", "role": "user", "is_active": True}
        assert updated["data"]["email"] == "countess@example.com"
        assert updated["data"]["changes"] == {
            "email": ["ada@example.com", "countess@example.com"],
            "name": ["Ada", "Ada Lovelace"],
        }
        assert role["data"] == {"email": "countess@example.com", "before": "user", "after": "admin"}
        for event in (deactivated, activated, password, deleted):
            assert event["data"] == {"email": "countess@example.com"}

    def test_an_update_of_the_name_only_records_only_the_name(self, cli: Cli) -> None:
        cli.create("ada@example.com", "Ada")
        cli.ok("update", "ada@example.com", "--name", "Ada L.", "--email", "ada@example.com")

        [_, updated] = cli.events()

        assert updated["data"] == {"email": "ada@example.com", "changes": {"name": ["Ada", "Ada L."]}}

    def test_no_event_holds_a_password_or_a_hash(self, cli: Cli, history: dict[str, Any]) -> None:
        cli.create("bob@example.com", "Bob")
        stored = cli.stored()["bob@example.com"]["password_hash"]
        raw = invoke_app("events", "--format", "jsonl", "--limit", EVERY).stdout

        assert stored.startswith("$2") and len(raw.splitlines()) == len(ALL_TYPES) + 1
        for secret in (PASSWORD, OTHER_PASSWORD, stored, "$2b$", "password_hash"):
            assert secret not in raw

    def test_a_rehash_during_verify_is_not_an_event_and_does_not_touch_updated_at(
        self, cli: Cli, config_path: Path
    ) -> None:
        cli.create("ada@example.com", "Ada")
        before = cli.stored()["ada@example.com"]["password_hash"]
        assert before.startswith("$2b$04$")
        config_path.write_text("[security]\nbcrypt_rounds = 5\n")

        verified = cli("verify", "ada@example.com", "--password-stdin", input=PASSWORD + "\n")

        assert verified.exit_code == 0
        after = cli.stored()["ada@example.com"]["password_hash"]
        assert after.startswith("$2b$05$"), "the verify did not re-hash: this test shows nothing"
        assert cli.types() == ["UserCreated"]
        assert json.loads(cli.ok("show", "ada@example.com", "--json").stdout)["updated_at"] is None

    def test_an_empty_log_is_an_empty_list(self, cli: Cli) -> None:
        assert cli.events() == []
        assert cli.ok("events", "--format", "jsonl").stdout == ""


# --- filters ---------------------------------------------------------------------------


class TestFilters:
    @pytest.fixture
    def people(self, cli: Cli) -> dict[str, str]:
        """ada changes her email (the old one goes to a newcomer); bob is deleted."""
        ada = cli.create("ada@example.com", "Ada")["id"]
        cli.ok("update", "ada@example.com", "--email", "countess@example.com")
        newcomer = cli.create("ada@example.com", "Another Ada")["id"]
        bob = cli.create("bob@example.com", "Bob")["id"]
        cli.ok("set-role", "bob@example.com", "moderator")
        cli.ok("delete", "bob@example.com", "--yes")
        cli.ok("deactivate", "countess@example.com")
        return {"ada": ada, "newcomer": newcomer, "bob": bob}

    def test_user_by_id_gives_that_users_events_only(self, cli: Cli, people: dict[str, str]) -> None:
        found = cli.events("--user", people["ada"])

        assert [e["type"] for e in found] == ["UserCreated", "UserUpdated", "UserDeactivated"]
        assert {e["user_id"] for e in found} == {people["ada"]}
        assert cli.events("--user", people["ada"].upper()) == found

    def test_user_by_a_deleted_users_email_or_id_still_finds_the_events(
        self, cli: Cli, people: dict[str, str]
    ) -> None:
        by_email = cli.events("--user", "bob@example.com")

        assert [e["type"] for e in by_email] == ["UserCreated", "UserRoleChanged", "UserDeleted"]
        assert {e["user_id"] for e in by_email} == {people["bob"]}
        assert cli.events("--user", people["bob"]) == by_email
        assert cli.events("--user", "BOB@Example.COM") == by_email

    def test_user_by_an_old_email_finds_everyone_who_had_it_with_all_their_events(
        self, cli: Cli, people: dict[str, str]
    ) -> None:
        found = cli.events("--user", "ada@example.com")

        assert {e["user_id"] for e in found} == {people["ada"], people["newcomer"]}
        assert [(e["type"], e["user_id"]) for e in found] == [
            ("UserCreated", people["ada"]),
            ("UserUpdated", people["ada"]),
            ("UserCreated", people["newcomer"]),
            ("UserDeactivated", people["ada"]),
        ]

    def test_user_by_the_new_email_finds_the_user_who_changed_to_it(self, cli: Cli, people: dict[str, str]) -> None:
        found = cli.events("--user", "countess@example.com")

        assert {e["user_id"] for e in found} == {people["ada"]}
        assert [e["type"] for e in found] == ["UserCreated", "UserUpdated", "UserDeactivated"]

    def test_user_nobody_ever_had_finds_nothing(self, cli: Cli, people: dict[str, str]) -> None:
        result = cli("events", "--user", "nobody@example.com", "--format", "json")
        assert result.exit_code in (0, 3)
        if result.exit_code == 0:
            assert json.loads(result.stdout) == []
        assert cli.events("--user", str(uuid.uuid4())) == []

    def test_type_keeps_only_events_of_that_type(self, cli: Cli, people: dict[str, str]) -> None:
        created = cli.events("--type", "UserCreated")

        assert [e["user_id"] for e in created] == [people["ada"], people["newcomer"], people["bob"]]
        assert cli.types("--type", "UserDeleted") == ["UserDeleted"]
        assert cli.types("--type", "UserPasswordChanged") == []
        assert cli.types("--type", "UserCreated", "--user", "bob@example.com") == ["UserCreated"]

    def test_limit_keeps_the_newest_n_printed_oldest_first(self, cli: Cli, people: dict[str, str]) -> None:
        every = cli.events()
        assert len(every) == 7

        assert cli.events("--limit", "3") == every[-3:]
        assert cli.events("--limit", "1") == every[-1:]
        assert cli.events("--limit", "7") == every
        assert cli.events("--limit", "50") == every
        assert cli.events("--user", "bob@example.com", "--limit", "2") == every[4:6]

    def test_without_limit_the_newest_100_are_shown(self, cli: Cli, tmp_path: Path) -> None:
        users = tmp_path / "users.csv"
        users.write_text("email,name\n" + "".join(f"user{i:03}@example.com,User {i}\n" for i in range(105)))
        cli.ok("import", str(users))

        found = cli.events()

        assert len(found) == 100
        assert found[0]["data"]["email"] == "user005@example.com"
        assert found[-1]["data"]["email"] == "user104@example.com"
        assert len(cli.events("--limit", "1000")) == 105
    def test_a_limit_larger_than_sqlite_integers_shows_every_event(self, cli: Cli, people: dict[str, str]) -> None:
        assert len(cli.events("--limit", "99999999999999999999")) == 7

    def test_since_a_duration_leaves_out_older_events(self, cli: Cli, people: dict[str, str]) -> None:
        every = cli.events()
        # Age the first three events by ten days, as if they had happened then.
        old = (datetime.now(timezone.utc) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for event in every[:3]:
            raw_sql("UPDATE events SET occurred_at = ? WHERE id = ?", (old, event["id"]))

        assert [e["id"] for e in cli.events("--since", "7d")] == [e["id"] for e in every[3:]]
        assert [e["id"] for e in cli.events("--since", "12h")] == [e["id"] for e in every[3:]]
        assert [e["id"] for e in cli.events("--since", "2w")] == [e["id"] for e in every]
        assert [e["id"] for e in cli.events("--since", "11d")] == [e["id"] for e in every]

    def test_since_an_iso_date_or_time_leaves_out_earlier_events(self, cli: Cli, people: dict[str, str]) -> None:
        every = cli.events()
        today = datetime.now(timezone.utc).date()

        assert cli.events("--since", (today - timedelta(days=1)).isoformat()) == every
        assert cli.events("--since", (today + timedelta(days=2)).isoformat()) == []
        # An exact event time includes that event (and everything after it).
        assert cli.events("--since", every[4]["occurred_at"]) == every[4:]
        # The same instant written with an offset.
        moment = datetime.fromisoformat(every[4]["occurred_at"]).astimezone(timezone(timedelta(hours=5, minutes=30)))
        assert cli.events("--since", moment.isoformat()) == every[4:]
        assert cli.events("--since", every[4]["occurred_at"], "--type", "UserDeleted") == every[5:6]

    def test_since_a_date_long_ago_shows_every_event(self, cli: Cli, people: dict[str, str]) -> None:
        # Stored times are compared as text: a year before 1000 must still sort first.
        assert len(cli.events("--since", "0300-01-01")) == 7
        assert len(cli.events("--since", "0001-01-01T00:00:00+00:00")) == 7


# --- output formats ------------------------------------------------------------------


class TestFormats:
    def test_jsonl_prints_one_object_per_line_the_same_as_json(self, cli: Cli, history: dict[str, Any]) -> None:
        as_json = cli.events()
        out = cli.ok("events", "--format", "jsonl").stdout

        assert out.endswith("\n")
        assert [json.loads(line) for line in out.splitlines()] == as_json

    def test_json_is_one_array(self, cli: Cli, history: dict[str, Any]) -> None:
        out = cli.ok("events", "--format", "json").stdout
        parsed = json.loads(out)
        assert isinstance(parsed, list) and len(parsed) == len(ALL_TYPES)
        assert out.strip().startswith("[") and out.strip().endswith("]")

    @pytest.mark.sqlite_only(RENDERING)
    def test_the_table_without_a_terminal_is_plain_and_shows_every_value_in_full(self) -> None:
        name = "Ada " + "Lovelace" * 24  # near the 200-character limit
        assert run_usermgr("create", "ada@example.com", "--name", name, "--no-password").returncode == 0
        assert run_usermgr("set-role", "ada@example.com", "moderator").returncode == 0
        listed = run_usermgr("events", "--format", "json")
        created, role = json.loads(listed.stdout)

        table = run_usermgr("events")

        assert table.returncode == 0
        assert table.stderr == ""
        assert "\x1b" not in table.stdout
        assert "…" not in table.stdout
        header, *rows = table.stdout.splitlines()
        assert header.split() == ["occurred_at", "type", "user_id", "email", "actor", "id", "data"]
        assert len(rows) == 2
        assert rows[0].split()[:6] == [
            created["occurred_at"],
            "UserCreated",
            created["user_id"],
            "ada@example.com",
            OS_USER,
            created["id"],
        ]
        assert name in rows[0]
        assert rows[1].split()[1] == "UserRoleChanged"
        assert '"before": "user"' in rows[1] and '"after": "moderator"' in rows[1]
        for line in table.stdout.splitlines():
            assert not set("┏━┃│─╇┡└┘") & set(line)

    @pytest.mark.sqlite_only(RENDERING)
    def test_the_table_shows_the_sudo_caller_in_the_actor_column(self) -> None:
        created = run_usermgr("create", "ada@example.com", "--name", "Ada", "--no-password", env={"SUDO_USER": "alice"})
        assert created.returncode == 0

        table = run_usermgr("events")

        [row] = table.stdout.splitlines()[1:]
        assert "alice" in row


# --- hooks list ----------------------------------------------------------------------


class TestHooksList:
    def test_hooks_list_with_no_hooks_says_so(self, cli: Cli) -> None:
        out = cli.ok("hooks", "list").stdout
        assert "hooks configured: 0" in out
        assert "deliveries pending: 0" in out

    def test_hooks_list_shows_each_configured_hook_with_its_event_command_and_timeout(
        self, cli: Cli, config_path: Path
    ) -> None:
        with config_path.open("a") as f:
            f.write(
                '\n[[hooks]]\non = "UserCreated"\ncommand = ["/usr/local/bin/send-welcome", "--quiet"]\n'
                '\n[[hooks]]\non = "*"\ncommand = ["/opt/audit/forward"]\ntimeout = 2.5\n'
            )

        out = cli.ok("hooks", "list").stdout

        assert "hooks configured: 2" in out
        [welcome] = [line for line in out.splitlines() if "send-welcome" in line]
        assert "UserCreated" in welcome
        assert '["/usr/local/bin/send-welcome", "--quiet"]' in welcome
        assert "10s" in welcome  # the default timeout
        [forward] = [line for line in out.splitlines() if "/opt/audit/forward" in line]
        assert "*" in forward and "2.5s" in forward
        assert "deliveries pending: 0" in out

    def test_a_bad_hook_in_the_config_is_exit_2_naming_the_key(self, cli: Cli, config_path: Path) -> None:
        with config_path.open("a") as f:
            f.write('\n[[hooks]]\non = "UserExploded"\ncommand = ["/bin/true"]\n')

        result = cli("hooks", "list")

        assert result.exit_code == 2
        [line] = result.stderr.splitlines()
        assert "hooks[1].on" in line and str(config_path) in line
