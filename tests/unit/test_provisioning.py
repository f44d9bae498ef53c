"""apply (usermgr.application.provisioning): the pure planner with plain objects, its
properties (the plan converges, and planning again finds nothing to do), and the
handler through the composition root with fakes for every port."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import PASSWORD
from tests.fakes import FakeHasher, FakeStorage, FakeUnitOfWork, FixedClock
from usermgr.application import commands
from usermgr.application.bus import MessageBus as Services
from usermgr.application.importing import Record, Row
from usermgr.application.ports import CurrentUser
from usermgr.application.provisioning import ApplyUsers, Change, PasswordChecks, Plan, plan
from usermgr.bootstrap import build
from usermgr.domain.events import Event
from usermgr.domain.values import Email, Role
from usermgr.errors import InvalidInput, InvalidRows, VerificationFailed
from usermgr.infrastructure.config import Settings
from usermgr.infrastructure.storage import Location

NEW_PASSWORD = "another long passphrase"
HASH_A = "fake$4$first password"
HASH_B = "fake$4$second password"


# --- plain objects -------------------------------------------------------------


def row(
    email: str,
    name: str | None = "Ada",
    *,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    password_hash: str | None = None,
    line: int = 2,
) -> Row:
    """A checked row; the email is parsed as check_rows parses it (case kept, domain lowered)."""
    return Row(
        line=line,
        email=Email.parse(email),
        name=name,
        role=Role(role) if role else None,
        is_active=is_active,
        password=password,
        password_hash=password_hash,
    )


def user(
    email: str,
    name: str = "Ada",
    *,
    role: str = "user",
    is_active: bool = True,
    password_hash: str | None = None,
) -> CurrentUser:
    parsed = Email.parse(email)
    return CurrentUser(f"id-{parsed.key}", parsed.normalized, parsed.key, name, role, is_active, password_hash)


def actions(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.action, c.email) for c in changes]


# --- each kind of change -------------------------------------------------------


def test_a_row_for_a_user_who_does_not_exist_is_a_create_carrying_its_row() -> None:
    wanted = row("grace@example.com", "Grace", role="admin", is_active=False)
    [change] = plan([wanted], [user("ada@example.com")])
    assert (change.action, change.email, change.user_id, change.changes) == ("create", "grace@example.com", None, {})
    assert change.row is wanted


def test_a_different_name_is_an_update_with_before_and_after() -> None:
    [change] = plan([row("ada@example.com", "Ada King")], [user("ada@example.com", "Ada")])
    assert change == Change("update", "ada@example.com", {"name": ("Ada", "Ada King")}, "id-ada@example.com")


def test_a_different_role_is_a_set_role() -> None:
    [change] = plan([row("ada@example.com", role="admin")], [user("ada@example.com", role="user")])
    assert change == Change("set-role", "ada@example.com", {"role": ("user", "admin")}, "id-ada@example.com")


def test_is_active_true_for_an_inactive_user_is_an_activate() -> None:
    [change] = plan([row("cy@example.com", is_active=True)], [user("cy@example.com", is_active=False)])
    assert change == Change("activate", "cy@example.com", {"is_active": (False, True)}, "id-cy@example.com")


def test_is_active_false_for_an_active_user_is_a_deactivate() -> None:
    [change] = plan([row("bob@example.com", is_active=False)], [user("bob@example.com")])
    assert change == Change("deactivate", "bob@example.com", {"is_active": (True, False)}, "id-bob@example.com")


def test_a_password_that_differs_is_a_passwd_with_no_fields_shown() -> None:
    [change] = plan(
        [row("ada@example.com", password_hash=HASH_B)],
        [user("ada@example.com", password_hash=HASH_A)],
        password_differs=lambda r, u: True,
    )
    assert change == Change("passwd", "ada@example.com", {}, "id-ada@example.com")


def test_prune_delete_deletes_an_active_user_missing_from_the_file() -> None:
    changes = plan([row("ada@example.com")], [user("ada@example.com"), user("old@example.com")], prune="delete")
    assert changes == [Change("delete", "old@example.com", {}, "id-old@example.com")]


def test_one_row_can_carry_every_kind_of_change_for_its_user_in_a_fixed_order() -> None:
    changes = plan(
        [row("ada@example.com", "Ada King", role="admin", is_active=False, password_hash=HASH_B)],
        [user("ada@example.com", "Ada", password_hash=HASH_A)],
        password_differs=lambda r, u: r.password_hash != u.password_hash,
    )
    assert [c.action for c in changes] == ["update", "set-role", "deactivate", "passwd"]
    assert {c.user_id for c in changes} == {"id-ada@example.com"}


# --- no-ops and empty cells ----------------------------------------------------


def test_a_row_that_matches_its_user_is_no_change() -> None:
    current = [user("ada@example.com", "Ada", role="admin", is_active=False, password_hash=HASH_A)]
    wanted = [row("ada@example.com", "Ada", role="admin", is_active=False, password_hash=HASH_A)]
    assert plan(wanted, current) == []
    assert plan(wanted, current, password_differs=PasswordChecks(FakeHasher())) == []


def test_empty_cells_leave_role_and_is_active_as_they_are() -> None:
    current = [user("ada@example.com", role="moderator", is_active=False, password_hash=HASH_A)]
    assert plan([row("ada@example.com", role=None, is_active=None)], current) == []


def test_an_empty_name_cell_leaves_an_existing_users_name_as_it_is() -> None:
    current = [user("ada@example.com", "Ada Lovelace", role="user")]
    assert plan([row("ada@example.com", None)], current) == []
    [change] = plan([row("ada@example.com", None, role="admin")], current)
    assert change.action == "set-role"


def test_a_new_user_without_a_name_is_an_invalid_row_naming_its_line() -> None:
    with pytest.raises(InvalidRows) as raised:
        plan([row("ada@example.com", None), row("new@example.com", None, line=3)], [user("ada@example.com")])
    assert raised.value.details == ("line 3: name is required to create new@example.com",)


def test_a_row_without_a_password_changes_no_password_even_with_update_passwords() -> None:
    asked: list[str] = []

    def differs(r: Row, u: CurrentUser) -> bool:
        asked.append(u.email)
        return True

    assert plan([row("ada@example.com")], [user("ada@example.com", password_hash=HASH_A)], password_differs=differs) == []
    assert asked == []


def test_nothing_at_all_plans_nothing() -> None:
    assert plan([], []) == []
    assert plan([], [], prune="delete") == []


# --- matching by email key -----------------------------------------------------


def test_rows_match_users_case_insensitively_and_report_the_stored_email() -> None:
    changes = plan([row("Ada@Example.com", "Ada King")], [user("ada@example.com", "Ada")])
    assert actions(changes) == [("update", "ada@example.com")]


def test_a_stored_email_in_another_case_is_matched_too() -> None:
    assert plan([row("ada@example.com", "Ada")], [user("ADA@example.com", "Ada")]) == []


@pytest.mark.parametrize("written", ["Élise@example.com", "ÉLISE@EXAMPLE.COM", "E\u0301lise@example.com", "élise@Example.com"])
def test_unicode_case_folding_matches_elise_however_it_is_written(written: str) -> None:
    current = [user("élise@example.com", "Élise")]
    assert plan([row(written, "Élise")], current) == []
    assert actions(plan([row(written, "Élise B")], current)) == [("update", "élise@example.com")]


def test_a_create_reports_the_rows_normalised_email() -> None:
    [change] = plan([row("Grace@EXAMPLE.com", "Grace")], [])
    assert change.email == "Grace@example.com"


# --- prune ---------------------------------------------------------------------


@pytest.mark.parametrize(("prune", "action"), [("deactivate", "deactivate"), ("delete", "delete")])
def test_prune_touches_only_active_users_who_are_not_in_the_file(prune: str, action: str) -> None:
    current = [
        user("ada@example.com"),
        user("inactive@example.com", is_active=False),
        user("gone@example.com"),
        user("kept@example.com", is_active=False),
    ]
    # kept@ is in the file and inactive; the row leaves is_active alone: never pruned.
    changes = plan([row("ada@example.com"), row("KEPT@example.com")], current, prune=prune)
    assert actions(changes) == [(action, "gone@example.com")]


def test_a_user_in_the_file_is_never_pruned_even_when_the_row_deactivates_it() -> None:
    changes = plan([row("ada@example.com", is_active=False)], [user("ada@example.com")], prune="delete")
    assert actions(changes) == [("deactivate", "ada@example.com")]


def test_prune_deactivate_records_the_state_change() -> None:
    [change] = plan([], [user("bob@example.com")], prune="deactivate")
    assert change == Change("deactivate", "bob@example.com", {"is_active": (True, False)}, "id-bob@example.com")


def test_without_prune_users_missing_from_the_file_are_left_alone() -> None:
    assert plan([row("ada@example.com")], [user("ada@example.com"), user("bob@example.com")]) == []


# --- update-passwords ----------------------------------------------------------


def test_without_update_passwords_a_differing_password_or_hash_is_no_change() -> None:
    current = [user("ada@example.com", password_hash=HASH_A), user("bob@example.com", password_hash=HASH_A)]
    rows = [row("ada@example.com", password_hash=HASH_B), row("bob@example.com", password=NEW_PASSWORD)]
    assert plan(rows, current) == []


def test_with_update_passwords_a_differing_hash_is_a_passwd_and_the_same_hash_is_not() -> None:
    checks = PasswordChecks(FakeHasher())
    current = [user("ada@example.com", password_hash=HASH_A), user("bob@example.com", password_hash=HASH_A)]
    rows = [row("ada@example.com", password_hash=HASH_B), row("bob@example.com", password_hash=HASH_A)]
    assert actions(plan(rows, current, password_differs=checks)) == [("passwd", "ada@example.com")]


def test_with_update_passwords_a_password_that_verifies_is_no_change_and_one_that_does_not_is() -> None:
    hasher = FakeHasher()
    current = [
        user("ada@example.com", password_hash=hasher.hash(PASSWORD)),
        user("bob@example.com", password_hash=hasher.hash(PASSWORD)),
        user("cy@example.com", password_hash=None),  # no usable password: nothing verifies
    ]
    rows = [
        row("ada@example.com", password=PASSWORD),
        row("bob@example.com", password=NEW_PASSWORD),
        row("cy@example.com", password=PASSWORD),
    ]
    changes = plan(rows, current, password_differs=PasswordChecks(hasher))
    assert actions(changes) == [("passwd", "bob@example.com"), ("passwd", "cy@example.com")]


def test_password_verdicts_prepared_once_are_reused_not_verified_again() -> None:
    hasher = FakeHasher()
    current = [user("ada@example.com", password_hash=hasher.hash(PASSWORD)), user("bob@example.com", password_hash=HASH_A)]
    rows = [row("ada@example.com", password=PASSWORD), row("bob@example.com", password=NEW_PASSWORD), row("new@example.com", password=PASSWORD)]
    checks = PasswordChecks(hasher)
    checks.prepare(rows, current)
    assert len(hasher.verified) == 2  # one per existing user with a password row; none for new@
    first = plan(rows, current, password_differs=checks)
    second = plan(rows, current, password_differs=checks)
    assert first == second
    assert actions(first) == [("passwd", "bob@example.com"), ("create", "new@example.com")]
    assert len(hasher.verified) == 2


def test_a_hash_stored_since_the_verdicts_were_prepared_is_verified_again() -> None:
    hasher = FakeHasher()
    rows = [row("ada@example.com", password=PASSWORD)]
    checks = PasswordChecks(hasher)
    checks.prepare(rows, [user("ada@example.com", password_hash=HASH_A)])
    # Another writer set the very password meanwhile: the plan under the lock sees it.
    assert plan(rows, [user("ada@example.com", password_hash=hasher.hash(PASSWORD))], password_differs=checks) == []


# --- order ---------------------------------------------------------------------


def test_the_plan_follows_the_file_then_pruned_users_by_email() -> None:
    current = [user("zed@example.com"), user("mia@example.com", "Mia"), user("Abe@example.com"), user("kim@example.com", "Kim")]
    rows = [row("new2@example.com"), row("mia@example.com", "Mia B"), row("new1@example.com"), row("kim@example.com", "Kim", role="admin")]
    changes = plan(rows, current, prune="deactivate")
    assert actions(changes) == [
        ("create", "new2@example.com"),
        ("update", "mia@example.com"),
        ("create", "new1@example.com"),
        ("set-role", "kim@example.com"),
        ("deactivate", "Abe@example.com"),  # ordered by email key: abe < zed
        ("deactivate", "zed@example.com"),
    ]


def test_the_summary_counts_each_kind_in_plan_order_and_says_no_changes_for_none() -> None:
    changes = [Change("delete", "a@x.io"), Change("create", "b@x.io"), Change("create", "c@x.io"), Change("passwd", "d@x.io")]
    assert Plan(changes, applied=True).summary() == "created 2, password changed 1, deleted 1"
    assert Plan([], applied=True).summary() == "no changes"


def test_a_change_never_shows_its_rows_password() -> None:
    [change] = plan([row("grace@example.com", password=PASSWORD)], [])
    assert PASSWORD not in repr(change)
    assert PASSWORD not in repr(Plan([change], applied=False))


# --- properties: the plan converges, and is then empty ---------------------------

LOCALS = ["ada", "Ada", "ADA", "bob", "Bob", "élise", "Élise", "cy"]
NAMES = ["Ada", "Bob", "Élise B"]
HASHES = [None, HASH_A, HASH_B]
PASSWORDS = ["first password", "second password"]


@st.composite
def current_users(draw: st.DrawFn) -> list[CurrentUser]:
    users: dict[str, CurrentUser] = {}
    for local in draw(st.lists(st.sampled_from(LOCALS), max_size=6)):
        found = user(
            f"{local}@example.com",
            draw(st.sampled_from(NAMES)),
            role=draw(st.sampled_from([r.value for r in Role])),
            is_active=draw(st.booleans()),
            password_hash=draw(st.sampled_from(HASHES)),
        )
        users.setdefault(found.email_key, found)
    return list(users.values())


@st.composite
def desired_rows(draw: st.DrawFn) -> list[Row]:
    rows: dict[str, Row] = {}
    for line, local in enumerate(draw(st.lists(st.sampled_from(LOCALS), max_size=6)), 2):
        secret = draw(st.sampled_from(["none", "password", "hash"]))
        wanted = row(
            f"{local}@Example.com",
            draw(st.sampled_from(NAMES)),
            role=draw(st.sampled_from([None, *(r.value for r in Role)])),
            is_active=draw(st.sampled_from([None, True, False])),
            password=draw(st.sampled_from(PASSWORDS)) if secret == "password" else None,
            password_hash=draw(st.sampled_from(HASHES[1:])) if secret == "hash" else None,
            line=line,
        )
        rows.setdefault(wanted.email.key, wanted)  # check_rows refuses an email twice
    return list(rows.values())


def carry_out(changes: list[Change], current: list[CurrentUser], hasher: FakeHasher) -> list[CurrentUser]:
    """A tiny model of the handler: each change applied to the users, asserting that its
    `before` is what the user holds and that it really changes something."""
    by_id = {u.id: u for u in current}
    for change in changes:
        if change.action == "create":
            assert change.user_id is None and change.row is not None
            r = change.row
            assert all(u.email_key != r.email.key for u in by_id.values())
            stored = hasher.hash(r.password) if r.password is not None else r.password_hash
            role = (r.role or Role.USER).value
            active = True if r.is_active is None else r.is_active
            by_id[f"new-{r.email.key}"] = CurrentUser(f"new-{r.email.key}", r.email.normalized, r.email.key, r.name, role, active, stored)
            continue
        assert change.user_id is not None
        before = by_id[change.user_id]
        assert change.email == before.email
        fields: dict[str, Any] = {}
        for name, (old, new) in change.changes.items():
            assert getattr(before, name) == old != new
            fields[name] = new
        if change.action == "delete":
            del by_id[change.user_id]
            continue
        if change.action == "passwd":
            assert change.row is not None
            r = change.row
            fields["password_hash"] = hasher.hash(r.password) if r.password is not None else r.password_hash
            assert fields["password_hash"] != before.password_hash
        assert fields, change
        by_id[change.user_id] = dataclasses.replace(before, **fields)
    return list(by_id.values())


def password_matches(r: Row, found: CurrentUser, hasher: FakeHasher) -> bool:
    if r.password is not None:
        return hasher.verify(r.password, found.password_hash)
    return r.password_hash is None or r.password_hash == found.password_hash


@given(desired_rows(), current_users(), st.sampled_from([None, "deactivate", "delete"]), st.booleans())
def test_carrying_out_the_plan_makes_the_users_match_the_rows_and_a_second_plan_is_empty(
    rows: list[Row], current: list[CurrentUser], prune: str | None, update_passwords: bool
) -> None:
    hasher = FakeHasher()
    checks = PasswordChecks(hasher) if update_passwords else None
    changes = plan(rows, current, prune=prune, password_differs=checks)
    assert len({(c.email, c.action) for c in changes}) == len(changes)

    after = {u.email_key: u for u in carry_out(changes, current, hasher)}
    before = {u.email_key: u for u in current}
    for r in rows:
        found = after[r.email.key]
        assert found.name == r.name
        assert r.role is None or found.role == r.role.value
        assert r.is_active is None or found.is_active == r.is_active
        if r.email.key not in before or update_passwords:
            assert password_matches(r, found, hasher)
        else:
            assert found.password_hash == before[r.email.key].password_hash
    wanted = {r.email.key for r in rows}
    for key, was in before.items():
        if key in wanted:
            continue
        if prune == "delete" and was.is_active:
            assert key not in after
        elif prune == "deactivate":
            assert after[key] == dataclasses.replace(was, is_active=False)
        else:
            assert after[key] == was

    assert plan(rows, list(after.values()), prune=prune, password_differs=PasswordChecks(hasher) if update_passwords else None) == []


@given(current_users())
def test_no_rows_with_prune_deactivate_deactivates_every_active_user_and_nothing_else(current: list[CurrentUser]) -> None:
    changes = plan([], current, prune="deactivate")
    active = sorted((u for u in current if u.is_active), key=lambda u: u.email_key)
    assert changes == [Change("deactivate", u.email, {"is_active": (True, False)}, u.id) for u in active]


# --- the handler, through the composition root with fakes --------------------------


def make_services(storage: FakeStorage, hasher: FakeHasher, tmp_path: Path) -> Services:
    return build(
        Settings(database=Location("sqlite", path=tmp_path / "unused.db")),
        storage=storage,  # type: ignore[arg-type]
        hasher=hasher,
        clock=FixedClock(),
        report=lambda line: None,
    )


def records(*values: dict[str, Any]) -> list[Record]:
    return [Record(line, v) for line, v in enumerate(values, 2)]


def apply(services: Services, *values: dict[str, Any], header: list[str] | None = None, **options: Any) -> Plan:
    return services.handle(ApplyUsers(records=records(*values), header=header, **options))


def seed(services: Services) -> None:
    """ada (user, active, PASSWORD), bob (active), cy (inactive), old (active)."""
    services.handle(commands.CreateUser(email="ada@example.com", name="Ada", password=PASSWORD))
    services.handle(commands.CreateUser(email="bob@example.com", name="Bob"))
    services.handle(commands.CreateUser(email="cy@example.com", name="Cy", is_active=False))
    services.handle(commands.CreateUser(email="old@example.com", name="Old"))


EVERY_KIND = (
    {"email": "Ada@Example.com", "name": "Ada King", "role": "admin", "password": NEW_PASSWORD},
    {"email": "bob@example.com", "name": "Bob", "is_active": "false"},
    {"email": "cy@example.com", "name": "Cy", "is_active": "true"},
    {"email": "grace@example.com", "name": "Grace", "role": "moderator"},
)


def single_commands(services: Services) -> None:
    """What an admin would run by hand for EVERY_KIND with --update-passwords --prune delete."""
    services.handle(commands.UpdateUser(ref="ada@example.com", name="Ada King"))
    services.handle(commands.SetRole(ref="ada@example.com", role="admin"))
    services.handle(commands.ChangePassword(ref="ada@example.com", password=NEW_PASSWORD))
    services.handle(commands.DeactivateUser(ref="bob@example.com"))
    services.handle(commands.ActivateUser(ref="cy@example.com"))
    services.handle(commands.CreateUser(email="grace@example.com", name="Grace", role="moderator"))
    services.handle(commands.DeleteUser(ref="old@example.com"))


def event_payloads(events: list[Event]) -> list[tuple[str, Any]]:
    return sorted(((e.type, e.data()) for e in events), key=repr)


def committed_state(uow: FakeUnitOfWork) -> tuple[dict[str, Any], int]:
    users = {u.email.key: (u.name, u.role.value, u.is_active, u.password_hash) for u in uow.committed_users.values()}
    return users, len(uow.written_events)


def by_email(uow: FakeUnitOfWork) -> dict[str, Any]:
    return {u.email.key: u for u in uow.committed_users.values()}


def test_each_change_writes_the_event_its_single_command_writes(tmp_path: Path) -> None:
    applied_storage, by_hand_storage = FakeStorage(), FakeStorage()
    applied, by_hand = make_services(applied_storage, FakeHasher(), tmp_path), make_services(by_hand_storage, FakeHasher(), tmp_path)
    for services in (applied, by_hand):
        seed(services)
    seeded = len(applied_storage.uow.written_events)

    result = apply(applied, *EVERY_KIND, prune="delete", update_passwords=True)
    single_commands(by_hand)

    assert result.applied is True
    assert [(c.action, c.email) for c in result.changes] == [
        ("update", "ada@example.com"),
        ("set-role", "ada@example.com"),
        ("passwd", "ada@example.com"),
        ("deactivate", "bob@example.com"),
        ("activate", "cy@example.com"),
        ("create", "grace@example.com"),
        ("delete", "old@example.com"),
    ]
    written = applied_storage.uow.written_events[seeded:]
    assert len(written) == len(result.changes)
    assert event_payloads(written) == event_payloads(by_hand_storage.uow.written_events[seeded:])
    assert committed_state(applied_storage.uow)[0] == committed_state(by_hand_storage.uow)[0]


def test_the_applied_changes_are_committed_once_and_published_once_each(
    services: Services, storage: FakeStorage, uow: FakeUnitOfWork
) -> None:
    seed(services)
    published: list[Event] = []
    services.events.subscribe("*", published.append)
    result = apply(services, *EVERY_KIND, prune="deactivate")
    assert [e.type for e in published] == [e.type for e in uow.written_events[-len(result.changes) :]]
    assert sorted(e.type for e in published) == sorted(
        ["UserUpdated", "UserRoleChanged", "UserDeactivated", "UserActivated", "UserCreated", "UserDeactivated"]
    )
    users = by_email(uow)
    assert users["ada@example.com"].name == "Ada King"
    assert users["ada@example.com"].password_hash == FakeHasher().hash(PASSWORD)  # no --update-passwords
    assert users["grace@example.com"].role is Role.MODERATOR and users["grace@example.com"].password_hash is None
    assert users["old@example.com"].is_active is False


def test_update_passwords_stores_the_new_password_and_verify_then_takes_it(services: Services, uow: FakeUnitOfWork) -> None:
    seed(services)
    result = apply(services, {"email": "ada@example.com", "name": "Ada", "password": NEW_PASSWORD}, update_passwords=True)
    assert [c.action for c in result.changes] == ["passwd"]
    services.handle(commands.VerifyPassword(ref="ada@example.com", password=NEW_PASSWORD))
    with pytest.raises(VerificationFailed):
        services.handle(commands.VerifyPassword(ref="ada@example.com", password=PASSWORD))


def test_check_plans_against_the_database_and_commits_nothing(services: Services, storage: FakeStorage, uow: FakeUnitOfWork) -> None:
    seed(services)
    before = committed_state(uow)
    result = apply(services, *EVERY_KIND, prune="delete", update_passwords=True, check=True)
    assert result.applied is False
    assert len(result.changes) == 7
    assert committed_state(uow) == before
    assert storage.uow.created_with[-1] is False  # --check never creates a database


def test_check_on_an_empty_store_commits_nothing(services: Services, uow: FakeUnitOfWork) -> None:
    result = apply(services, {"email": "ada@example.com", "name": "Ada"}, check=True)
    assert [c.action for c in result.changes] == ["create"]
    assert uow.committed is False and uow.committed_users == {}


def test_invalid_rows_are_reported_by_line_and_nothing_is_committed(services: Services, uow: FakeUnitOfWork) -> None:
    seed(services)
    before = committed_state(uow)
    with pytest.raises(InvalidRows) as caught:
        apply(
            services,
            {"email": "ada@example.com", "name": "Ada King"},
            {"email": "not-an-email", "name": "X"},
            {"email": "z@example.com", "name": "Z", "role": "boss"},
            {"email": "ADA@example.com", "name": "Ada"},
            {"email": "p@example.com", "name": "P", "password": "Xq7#zz"},
        )
    lines = caught.value.details
    assert [line.split(":")[0] for line in lines] == ["line 3", "line 4", "line 5", "line 6"]
    assert "boss" in lines[1] and "also on line 2" in lines[2]
    assert "Xq7#zz" not in " ".join(lines)  # a bad password is never echoed
    assert committed_state(uow) == before


@pytest.mark.parametrize("column", ["id", "created_at", "updated_at"])
def test_columns_kept_from_elsewhere_are_refused_in_a_header(services: Services, uow: FakeUnitOfWork, column: str) -> None:
    with pytest.raises(InvalidInput, match=f"column '{column}' is not allowed here"):
        apply(services, {"email": "ada@example.com", "name": "Ada", column: ""}, header=["email", "name", column])
    assert uow.committed is False


@pytest.mark.parametrize("column", ["id", "created_at", "updated_at"])
def test_columns_kept_from_elsewhere_are_refused_in_a_json_line(services: Services, uow: FakeUnitOfWork, column: str) -> None:
    value = "0b7d3c1e-6a55-4d2e-9f0a-3c4b5d6e7f80" if column == "id" else "2020-01-01T00:00:00Z"
    with pytest.raises(InvalidRows) as caught:
        apply(services, {"email": "ada@example.com", "name": "Ada"}, {"email": "bob@example.com", "name": "Bob", column: value})
    assert caught.value.details == (f"line 3: column '{column}' is not allowed here; use email, name, role, is_active, password, password_hash",)
    assert uow.committed is False


def test_an_unknown_prune_is_invalid_input(services: Services, uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidInput, match="prune"):
        apply(services, {"email": "ada@example.com", "name": "Ada"}, prune="archive")
    assert uow.committed is False


def test_a_second_apply_of_the_same_rows_writes_no_event(services: Services, uow: FakeUnitOfWork) -> None:
    seed(services)
    rows = (*EVERY_KIND, {"email": "dee@example.com", "name": "Dee", "password_hash": HASH_A})
    first = apply(services, *rows, prune="deactivate", update_passwords=True)
    assert first.changes
    written = len(uow.written_events)
    second = apply(services, *rows, prune="deactivate", update_passwords=True)
    assert second == Plan([], applied=True)
    assert len(uow.written_events) == written


def run_once(action: Callable[[], None]) -> Callable[[int, int], None]:
    """A progress callback (called while apply hashes, between its read and its write
    transaction) that lets another writer in, once."""
    done: list[bool] = []

    def progress(_done: int, _total: int) -> None:
        if not done:
            done.append(True)
            action()

    return progress


def test_a_user_created_by_another_writer_while_apply_hashes_is_updated_not_created(
    services: Services, uow: FakeUnitOfWork
) -> None:
    other = run_once(lambda: services.handle(commands.CreateUser(email="grace@example.com", name="Someone Else")))
    result = services.handle(
        ApplyUsers(records=records({"email": "grace@example.com", "name": "Grace", "password": PASSWORD})),
        progress=other,
    )
    grace = by_email(uow)["grace@example.com"]
    assert [(c.action, c.changes) for c in result.changes] == [("update", {"name": ("Someone Else", "Grace")})]
    assert [e.type for e in uow.written_events] == ["UserCreated", "UserUpdated"]
    assert grace.name == "Grace" and grace.password_hash is None  # the other writer's account, renamed


def test_a_user_deleted_by_another_writer_while_apply_hashes_is_created_with_its_password(
    services: Services, uow: FakeUnitOfWork
) -> None:
    services.handle(commands.CreateUser(email="ada@example.com", name="Ada"))
    other = run_once(lambda: services.handle(commands.DeleteUser(ref="ada@example.com")))
    result = services.handle(
        ApplyUsers(
            records=records(
                {"email": "ada@example.com", "name": "Ada King", "password": PASSWORD},
                {"email": "new@example.com", "name": "New", "password": NEW_PASSWORD},  # makes apply hash
            )
        ),
        progress=other,
    )
    assert [(c.action, c.email) for c in result.changes] == [("create", "ada@example.com"), ("create", "new@example.com")]
    assert by_email(uow)["ada@example.com"].password_hash == FakeHasher().hash(PASSWORD)
    assert [e.type for e in uow.written_events] == ["UserCreated", "UserDeleted", "UserCreated", "UserCreated"]


def test_a_user_created_by_another_writer_meanwhile_is_pruned_in_the_applied_plan(services: Services, uow: FakeUnitOfWork) -> None:
    other = run_once(lambda: services.handle(commands.CreateUser(email="late@example.com", name="Late")))
    result = services.handle(
        ApplyUsers(records=records({"email": "ada@example.com", "name": "Ada", "password": PASSWORD}), prune="deactivate"),
        progress=other,
    )
    assert [(c.action, c.email) for c in result.changes] == [("create", "ada@example.com"), ("deactivate", "late@example.com")]
    assert by_email(uow)["late@example.com"].is_active is False


def test_events_are_written_in_the_order_the_plan_prints_the_changes(services: Services, uow: FakeUnitOfWork) -> None:
    apply(services, {"email": "b@example.com", "name": "B"}, {"email": "old@example.com", "name": "Old"})
    uow.written_events.clear()
    plan = apply(
        services,
        {"email": "a@example.com", "name": "A"},
        {"email": "b@example.com", "name": "B two"},
        {"email": "c@example.com", "name": "C"},
        prune="delete",
    )
    assert [c.action for c in plan.changes] == ["create", "update", "create", "delete"]
    assert [e.type for e in uow.written_events] == ["UserCreated", "UserUpdated", "UserCreated", "UserDeleted"]
    assert [e.email for e in uow.written_events] == ["a@example.com", "b@example.com", "c@example.com", "old@example.com"]


@pytest.mark.parametrize("prune", ["deactivate", "delete"])
def test_a_file_with_no_users_and_prune_is_refused_so_a_failed_export_locks_nobody_out(
    services: Services, uow: FakeUnitOfWork, prune: str
) -> None:
    apply(services, {"email": "a@example.com", "name": "A"})
    before = committed_state(uow)
    with pytest.raises(InvalidInput, match="lists no users"):
        apply(services, header=["email", "name"], prune=prune)
    assert committed_state(uow) == before


def test_a_file_with_no_users_and_no_prune_is_no_changes(services: Services, uow: FakeUnitOfWork) -> None:
    apply(services, {"email": "a@example.com", "name": "A"})
    assert apply(services, header=["email", "name"]).summary() == "no changes"
