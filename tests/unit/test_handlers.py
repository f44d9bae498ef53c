"""Handlers through the real composition root, with fakes for every port.

Assertions look at state: what the unit of work committed, the events it wrote,
what the bus delivered and what the hasher was asked to do.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import PASSWORD
from tests.fakes import FakeHasher, FakeUnitOfWork
from usermgr.application import commands, queries
from usermgr.application.handlers import Created
from usermgr.application.bus import MessageBus as Services
from usermgr.domain import events
from usermgr.domain.model import User
from usermgr.errors import EmailTaken, InvalidInput, UserNotFound, VerificationFailed

PUBLIC_FIELDS = {"id", "email", "name", "role", "is_active", "created_at", "updated_at"}


def create(services: Services, email: str = "alice@example.com", **kwargs: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "Alice", "password": PASSWORD, **kwargs}
    result: Created = services.handle(commands.CreateUser(email=email, **fields))
    return result.user


def stored(uow: FakeUnitOfWork, user_id: str) -> User:
    return uow.committed_users[user_id]


def event_types(uow: FakeUnitOfWork) -> list[str]:
    return [e.type for e in uow.written_events]


@pytest.fixture
def published(services: Services) -> list[events.Event]:
    received: list[events.Event] = []
    services.events.subscribe("*", received.append)
    return received


def assert_nothing_committed(uow: FakeUnitOfWork) -> None:
    assert uow.committed_users == {}
    assert uow.written_events == []


class TestCreateUser:
    def test_creating_a_user_commits_it_with_one_created_event(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        result = services.handle(
            commands.CreateUser(email="Alice@Example.COM", name="Alice", role="admin", password=PASSWORD)
        )

        assert result.created is True
        assert set(result.user.as_dict()) == PUBLIC_FIELDS
        user = stored(uow, result.user.id)
        assert str(user.email) == "Alice@example.com"
        assert (user.name, user.role.value, user.is_active) == ("Alice", "admin", True)
        assert user.updated_at is None
        assert event_types(uow) == ["UserCreated"]
        assert uow.written_events[0].user_id == user.id

    def test_the_password_is_stored_as_the_hashers_hash(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher
    ) -> None:
        view = create(services)

        user = stored(uow, view.id)
        assert user.password_hash == hasher.hash(PASSWORD)
        assert user.password_hash != PASSWORD

    def test_neither_the_result_nor_the_event_holds_the_password_or_hash(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher
    ) -> None:
        view = create(services)

        text = repr(view) + repr(uow.written_events) + repr([e.data() for e in uow.written_events])
        assert PASSWORD not in text
        assert hasher.hash(PASSWORD) not in text

    def test_an_inactive_user_can_be_created(self, services: Services, uow: FakeUnitOfWork) -> None:
        view = create(services, is_active=False)

        assert view.is_active is False
        assert stored(uow, view.id).is_active is False

    def test_a_user_without_a_password_has_no_hash(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services, password=None)

        assert stored(uow, view.id).password_hash is None

    def test_a_duplicate_email_in_any_case_is_email_taken(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        create(services, "alice@example.com")

        with pytest.raises(EmailTaken):
            create(services, "ALICE@EXAMPLE.COM", name="Other")

        assert len(uow.committed_users) == 1
        assert event_types(uow) == ["UserCreated"]

    def test_the_punycode_form_of_an_existing_email_is_email_taken(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        create(services, "x@münchen.de")

        with pytest.raises(EmailTaken):
            create(services, "x@xn--mnchen-3ya.de")

        assert len(uow.committed_users) == 1
    def test_a_user_at_a_distinct_idna_domain_can_be_created(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        create(services, "x@straße.de")

        create(services, "x@strasse.de", name="Other")

        assert sorted(str(u.email) for u in uow.committed_users.values()) == ["x@strasse.de", "x@straße.de"]
    def test_an_address_at_a_distinct_idna_domain_does_not_name_an_existing_user(
        self, services: Services
    ) -> None:
        create(services, "x@straße.de")

        try:
            found = services.handle(queries.GetUser(ref="x@strasse.de"))
        except UserNotFound:
            found = None

        assert found is None

    def test_exists_ok_on_an_existing_email_returns_it_and_changes_nothing(
        self, services: Services, uow: FakeUnitOfWork, published: list[events.Event]
    ) -> None:
        original = create(services, "alice@example.com", name="Alice", role="user")
        before_users = {i: (u.name, u.role, u.is_active, u.password_hash) for i, u in uow.committed_users.items()}
        before_events = list(uow.written_events)
        published.clear()

        result = services.handle(
            commands.CreateUser(
                email="ALICE@example.com",
                name="Someone Else",
                role="admin",
                is_active=False,
                password="another long password",
                exists_ok=True,
            )
        )

        assert result.created is False
        assert result.user == original
        after_users = {i: (u.name, u.role, u.is_active, u.password_hash) for i, u in uow.committed_users.items()}
        assert after_users == before_users
        assert uow.written_events == before_events
        assert published == []

    @pytest.mark.parametrize(
        "fields",
        [
            {"email": "not-an-email"},
            {"email": " alice@example.com"},
            {"email": "alice@example.com\n"},
            {"name": ""},
            {"name": " Alice"},
            {"name": "Al\u202eice"},
            {"name": "A" * 201},
            {"role": "root"},
            {"password": "short"},
            {"password": "€" * 25},
            {"password": "ALICE@EXAMPLE.COM"},
        ],
        ids=lambda f: "-".join(f"{k}={v!r}"[:30] for k, v in f.items()),
    )
    def test_invalid_input_is_rejected_and_nothing_is_committed(
        self, services: Services, uow: FakeUnitOfWork, published: list[events.Event], fields: dict[str, str]
    ) -> None:
        values = {"email": "alice@example.com", "name": "Alice", "role": "user", "password": PASSWORD, **fields}

        with pytest.raises(InvalidInput):
            services.handle(commands.CreateUser(**values))

        assert_nothing_committed(uow)
        assert published == []

    def test_events_are_published_after_the_commit(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        seen: list[tuple[str, bool]] = []
        services.events.subscribe("*", lambda e: seen.append((e.type, e.user_id in uow.committed_users)))

        view = create(services)

        assert seen == [("UserCreated", True)]
        assert uow.written_events[0].user_id == view.id

    def test_the_bus_receives_exactly_the_written_events(
        self, services: Services, uow: FakeUnitOfWork, published: list[events.Event]
    ) -> None:
        create(services, "alice@example.com")
        create(services, "bob@example.com", name="Bob")

        assert [e.id for e in published] == [e.id for e in uow.written_events]
        assert len(published) == 2

    def test_a_failed_create_publishes_nothing(
        self, services: Services, published: list[events.Event]
    ) -> None:
        create(services)
        published.clear()

        with pytest.raises(EmailTaken):
            create(services)

        assert published == []

    def test_a_failing_subscriber_is_reported_and_the_user_stays_created(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        def broken(event: events.Event) -> None:
            raise RuntimeError("hook exploded")

        services.events.subscribe("UserCreated", broken)

        view = create(services)

        assert view.id in uow.committed_users
        assert any("hook exploded" in line for line in services.reports)  # type: ignore[attr-defined]


class TestUpdateUser:
    def test_renaming_commits_the_name_and_one_update_event(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services)

        result = services.handle(commands.UpdateUser(ref=view.id, name="Alicia"))

        assert result.name == "Alicia"
        assert result.updated_at is not None
        assert stored(uow, view.id).name == "Alicia"
        assert event_types(uow) == ["UserCreated", "UserUpdated"]
        assert uow.written_events[-1].data()["changes"] == {"name": ["Alice", "Alicia"]}

    def test_changing_the_email_makes_the_user_findable_by_the_new_one_only(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services, "alice@example.com")

        services.handle(commands.UpdateUser(ref="alice@example.com", email="alicia@example.org"))

        assert services.handle(queries.GetUser(ref="alicia@example.org")).id == view.id
        with pytest.raises(UserNotFound):
            services.handle(queries.GetUser(ref="alice@example.com"))

    def test_taking_another_users_email_is_email_taken_and_changes_nothing(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        alice = create(services, "alice@example.com")
        create(services, "bob@example.com", name="Bob")

        with pytest.raises(EmailTaken):
            services.handle(commands.UpdateUser(ref=alice.id, email="BOB@example.com", name="Alicia"))

        user = stored(uow, alice.id)
        assert (str(user.email), user.name) == ("alice@example.com", "Alice")
        assert event_types(uow) == ["UserCreated", "UserCreated"]

    def test_changing_only_the_case_of_ones_own_email_is_not_a_conflict(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services, "alice@example.com")

        result = services.handle(commands.UpdateUser(ref=view.id, email="Alice@example.com"))

        assert result.email == "Alice@example.com"
        assert str(stored(uow, view.id).email) == "Alice@example.com"

    def test_an_update_to_the_same_values_records_no_event(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services)

        result = services.handle(commands.UpdateUser(ref=view.id, name="Alice", email="alice@EXAMPLE.com"))

        assert result.updated_at is None
        assert stored(uow, view.id).updated_at is None
        assert event_types(uow) == ["UserCreated"]

    def test_nothing_to_update_is_invalid_input(self, services: Services, uow: FakeUnitOfWork) -> None:
        view = create(services)

        with pytest.raises(InvalidInput, match="nothing to update"):
            services.handle(commands.UpdateUser(ref=view.id))

        assert event_types(uow) == ["UserCreated"]

    @pytest.mark.parametrize("fields", [{"email": "bad email"}, {"name": "Bad\x00Name"}, {"name": ""}])
    def test_an_invalid_new_value_is_invalid_input_and_changes_nothing(
        self, services: Services, uow: FakeUnitOfWork, fields: dict[str, str]
    ) -> None:
        view = create(services)

        with pytest.raises(InvalidInput):
            services.handle(commands.UpdateUser(ref=view.id, **fields))

        user = stored(uow, view.id)
        assert (str(user.email), user.name) == ("alice@example.com", "Alice")

    @pytest.mark.parametrize("ref", ["nobody@example.com", "00000000-0000-4000-8000-000000000000"])
    def test_updating_an_unknown_user_is_user_not_found(
        self, services: Services, uow: FakeUnitOfWork, ref: str
    ) -> None:
        with pytest.raises(UserNotFound):
            services.handle(commands.UpdateUser(ref=ref, name="Nobody"))

        assert_nothing_committed(uow)


class TestActivation:
    def test_activating_an_inactive_user_commits_it_with_one_event(
        self, services: Services, uow: FakeUnitOfWork, published: list[events.Event]
    ) -> None:
        view = create(services, is_active=False)

        result = services.handle(commands.ActivateUser(ref=view.id))

        assert result.is_active is True
        assert stored(uow, view.id).is_active is True
        assert stored(uow, view.id).updated_at is not None
        assert event_types(uow) == ["UserCreated", "UserActivated"]
        assert [e.type for e in published] == ["UserCreated", "UserActivated"]

    def test_activating_an_active_user_records_no_event(
        self, services: Services, uow: FakeUnitOfWork, published: list[events.Event]
    ) -> None:
        view = create(services, is_active=True)

        result = services.handle(commands.ActivateUser(ref=view.id))

        assert result.is_active is True
        assert result.updated_at is None
        assert event_types(uow) == ["UserCreated"]
        assert [e.type for e in published] == ["UserCreated"]

    def test_deactivating_an_active_user_commits_it_with_one_event(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services)

        services.handle(commands.DeactivateUser(ref="ALICE@example.com"))

        assert stored(uow, view.id).is_active is False
        assert event_types(uow) == ["UserCreated", "UserDeactivated"]

    def test_deactivating_twice_records_one_event_and_keeps_the_first_updated_at(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services)

        first = services.handle(commands.DeactivateUser(ref=view.id))
        second = services.handle(commands.DeactivateUser(ref=view.id))

        assert second.updated_at == first.updated_at
        assert event_types(uow) == ["UserCreated", "UserDeactivated"]

    @pytest.mark.parametrize("command", [commands.ActivateUser, commands.DeactivateUser])
    def test_an_unknown_user_is_user_not_found(
        self, services: Services, uow: FakeUnitOfWork, command: type
    ) -> None:
        with pytest.raises(UserNotFound):
            services.handle(command(ref="nobody@example.com"))

        assert_nothing_committed(uow)


class TestSetRole:
    def test_changing_the_role_commits_it_with_before_and_after(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services, role="user")

        result = services.handle(commands.SetRole(ref=view.id, role="moderator"))

        assert result.role == "moderator"
        assert stored(uow, view.id).role.value == "moderator"
        event = uow.written_events[-1]
        assert event.type == "UserRoleChanged"
        assert (event.data()["before"], event.data()["after"]) == ("user", "moderator")

    def test_setting_the_current_role_records_no_event(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services, role="admin")

        services.handle(commands.SetRole(ref=view.id, role="admin"))

        assert event_types(uow) == ["UserCreated"]
        assert stored(uow, view.id).updated_at is None

    def test_an_unknown_role_is_invalid_input_and_changes_nothing(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        view = create(services, role="user")

        with pytest.raises(InvalidInput):
            services.handle(commands.SetRole(ref=view.id, role="superuser"))

        assert stored(uow, view.id).role.value == "user"
        assert event_types(uow) == ["UserCreated"]

    def test_an_unknown_user_is_user_not_found(self, services: Services, uow: FakeUnitOfWork) -> None:
        with pytest.raises(UserNotFound):
            services.handle(commands.SetRole(ref="nobody@example.com", role="admin"))

        assert_nothing_committed(uow)


class TestChangePassword:
    NEW = "a brand new passphrase"

    def test_a_new_password_is_hashed_and_stored_with_an_event_without_the_hash(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher
    ) -> None:
        view = create(services)

        result = services.handle(commands.ChangePassword(ref=view.id, password=self.NEW))

        user = stored(uow, view.id)
        assert user.password_hash == hasher.hash(self.NEW)
        assert result.updated_at is not None
        assert event_types(uow) == ["UserCreated", "UserPasswordChanged"]
        event = uow.written_events[-1]
        assert self.NEW not in repr(event.data())
        assert hasher.hash(self.NEW) not in repr(event.data()) + repr(event)

    def test_after_a_change_only_the_new_password_verifies(self, services: Services) -> None:
        view = create(services)

        services.handle(commands.ChangePassword(ref=view.id, password=self.NEW))

        services.handle(commands.VerifyPassword(ref=view.id, password=self.NEW))
        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))

    def test_a_user_without_a_password_can_be_given_one(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher
    ) -> None:
        view = create(services, password=None)

        services.handle(commands.ChangePassword(ref=view.email, password=self.NEW))

        assert stored(uow, view.id).password_hash == hasher.hash(self.NEW)

    @pytest.mark.parametrize("password", ["too short", "x" * 73, "€" * 25, "Alice@Example.com", "ALICE"])
    def test_a_password_against_the_policy_is_invalid_input_and_changes_nothing(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher, password: str
    ) -> None:
        view = create(services, "alice@example.com")

        with pytest.raises(InvalidInput):
            services.handle(commands.ChangePassword(ref=view.id, password=password))

        assert stored(uow, view.id).password_hash == hasher.hash(PASSWORD)
        assert event_types(uow) == ["UserCreated"]

    def test_an_unknown_user_is_user_not_found(self, services: Services, uow: FakeUnitOfWork) -> None:
        with pytest.raises(UserNotFound):
            services.handle(commands.ChangePassword(ref="nobody@example.com", password=self.NEW))

        assert_nothing_committed(uow)


class TestDeleteUser:
    def test_deleting_removes_the_user_and_records_user_deleted(
        self, services: Services, uow: FakeUnitOfWork, published: list[events.Event]
    ) -> None:
        view = create(services)

        result = services.handle(commands.DeleteUser(ref="alice@example.com"))

        assert result.id == view.id
        assert uow.committed_users == {}
        assert event_types(uow) == ["UserCreated", "UserDeleted"]
        assert uow.written_events[-1].data() == {"email": "alice@example.com"}
        assert published[-1].type == "UserDeleted"

    def test_a_deleted_user_is_no_longer_found(self, services: Services) -> None:
        view = create(services)
        services.handle(commands.DeleteUser(ref=view.id))

        with pytest.raises(UserNotFound):
            services.handle(queries.GetUser(ref=view.id))

    def test_a_deleted_users_email_can_be_used_again(
        self, services: Services, uow: FakeUnitOfWork
    ) -> None:
        old = create(services)
        services.handle(commands.DeleteUser(ref=old.id))

        new = create(services)

        assert new.id != old.id
        assert list(uow.committed_users) == [new.id]

    def test_deleting_one_user_leaves_the_others(self, services: Services, uow: FakeUnitOfWork) -> None:
        alice = create(services, "alice@example.com")
        bob = create(services, "bob@example.com", name="Bob")

        services.handle(commands.DeleteUser(ref=alice.id))

        assert list(uow.committed_users) == [bob.id]

    def test_an_unknown_user_is_user_not_found(self, services: Services, uow: FakeUnitOfWork) -> None:
        create(services)

        with pytest.raises(UserNotFound):
            services.handle(commands.DeleteUser(ref="nobody@example.com"))

        assert len(uow.committed_users) == 1
        assert event_types(uow) == ["UserCreated"]


class TestVerifyPassword:
    def test_the_right_password_of_an_active_user_verifies(
        self, services: Services, hasher: FakeHasher
    ) -> None:
        view = create(services)

        assert services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD)) is None
        assert hasher.verified == [hasher.hash(PASSWORD)]

    def test_the_user_can_be_named_by_email_in_any_case(self, services: Services, hasher: FakeHasher) -> None:
        create(services, "alice@example.com")

        services.handle(commands.VerifyPassword(ref="ALICE@Example.com", password=PASSWORD))

        assert hasher.verified == [hasher.hash(PASSWORD)]

    def test_a_wrong_password_fails(self, services: Services) -> None:
        view = create(services)

        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=view.id, password="not the password"))

    def test_the_right_password_of_an_inactive_user_fails(
        self, services: Services, hasher: FakeHasher
    ) -> None:
        view = create(services, is_active=False)

        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))
        assert hasher.verified == [hasher.hash(PASSWORD)]

    @pytest.mark.parametrize("ref", ["nobody@example.com", "00000000-0000-4000-8000-000000000000"])
    def test_an_unknown_user_fails_after_the_same_hashing_work(
        self, services: Services, hasher: FakeHasher, ref: str
    ) -> None:
        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=ref, password=PASSWORD))

        assert hasher.verified == [None]

    def test_a_user_without_a_password_fails_after_the_same_hashing_work(
        self, services: Services, hasher: FakeHasher
    ) -> None:
        view = create(services, password=None)

        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))

        assert hasher.verified == [None]

    def test_every_kind_of_failure_looks_the_same(self, services: Services) -> None:
        active = create(services, "alice@example.com")
        inactive = create(services, "bob@example.com", name="Bob", is_active=False)
        no_password = create(services, "carol@example.com", name="Carol", password=None)
        attempts = [
            (active.id, "wrong password here"),
            (inactive.id, PASSWORD),
            (no_password.id, PASSWORD),
            ("nobody@example.com", PASSWORD),
        ]

        messages = set()
        for ref, password in attempts:
            with pytest.raises(VerificationFailed) as caught:
                services.handle(commands.VerifyPassword(ref=ref, password=password))
            messages.add(str(caught.value))

        assert len(messages) == 1

    def test_a_hash_of_another_cost_is_replaced_without_an_event_or_updated_at(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher, published: list[events.Event]
    ) -> None:
        view = create(services)
        uow.committed_users[view.id].password_hash = f"fake$5${PASSWORD}"  # hashed at cost 5 earlier
        events_before = list(uow.written_events)
        published.clear()

        services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))

        user = stored(uow, view.id)
        assert hasher.rounds == 4
        assert user.password_hash == f"fake$4${PASSWORD}"
        assert user.updated_at is None
        assert uow.written_events == events_before
        assert published == []

    def test_the_rehashed_password_still_verifies(self, services: Services, uow: FakeUnitOfWork) -> None:
        view = create(services)
        uow.committed_users[view.id].password_hash = f"fake$5${PASSWORD}"

        services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))
        services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))

        assert stored(uow, view.id).password_hash == f"fake$4${PASSWORD}"

    def test_a_hash_of_the_configured_cost_is_left_alone(
        self, services: Services, uow: FakeUnitOfWork, hasher: FakeHasher
    ) -> None:
        view = create(services)
        uow.committed = False

        services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))

        assert stored(uow, view.id).password_hash == hasher.hash(PASSWORD)
        assert uow.committed is False

    def test_a_wrong_password_does_not_rehash(self, services: Services, uow: FakeUnitOfWork) -> None:
        view = create(services)
        uow.committed_users[view.id].password_hash = f"fake$5${PASSWORD}"

        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=view.id, password="wrong password!"))

        assert stored(uow, view.id).password_hash == f"fake$5${PASSWORD}"

    def test_an_inactive_user_is_not_rehashed(self, services: Services, uow: FakeUnitOfWork) -> None:
        view = create(services, is_active=False)
        uow.committed_users[view.id].password_hash = f"fake$5${PASSWORD}"

        with pytest.raises(VerificationFailed):
            services.handle(commands.VerifyPassword(ref=view.id, password=PASSWORD))

        assert stored(uow, view.id).password_hash == f"fake$5${PASSWORD}"


class TestGetUser:
    def test_a_user_is_found_by_id_and_by_email_in_any_case(self, services: Services) -> None:
        view = create(services, "alice@example.com")

        assert services.handle(queries.GetUser(ref=view.id)) == view
        assert services.handle(queries.GetUser(ref="ALICE@EXAMPLE.COM")) == view

    def test_the_view_holds_only_public_fields(self, services: Services, hasher: FakeHasher) -> None:
        view = create(services)

        found = services.handle(queries.GetUser(ref=view.id))

        assert set(found.as_dict()) == PUBLIC_FIELDS
        assert hasher.hash(PASSWORD) not in repr(found)

    def test_timestamps_are_iso_8601_utc(self, services: Services) -> None:
        view = create(services)

        assert view.created_at.endswith("Z")
        assert view.created_at.startswith("2026-01-01T00:00:")

    def test_an_unknown_user_is_user_not_found(self, services: Services) -> None:
        with pytest.raises(UserNotFound, match="nobody@example.com"):
            services.handle(queries.GetUser(ref="nobody@example.com"))


class TestListUsers:
    @pytest.fixture
    def many(self, services: Services) -> list[dict[str, Any]]:
        """45 users, oldest first: every third an admin, every fifth inactive."""
        return [
            create(
                services,
                f"user{i:02d}@example.com",
                name=f"User {i:02d}",
                role="admin" if i % 3 == 0 else "user",
                is_active=i % 5 != 0,
                password=None,
            )
            for i in range(45)
        ]

    def test_the_first_page_holds_the_newest_users(self, services: Services, many: list[dict[str, Any]]) -> None:
        page = services.handle(queries.ListUsers())

        assert page.total == 45
        assert (page.page, page.per_page, page.pages) == (1, 20, 3)
        assert [u.id for u in page.items] == [u.id for u in reversed(many)][:20]

    def test_the_last_page_holds_the_remainder(self, services: Services, many: list[dict[str, Any]]) -> None:
        page = services.handle(queries.ListUsers(page=3))

        assert [u.email for u in page.items] == [f"user{i:02d}@example.com" for i in range(4, -1, -1)]

    def test_a_page_past_the_end_is_empty_but_keeps_the_total(
        self, services: Services, many: list[dict[str, Any]]
    ) -> None:
        page = services.handle(queries.ListUsers(page=4))

        assert page.items == []
        assert (page.total, page.pages) == (45, 3)

    def test_pages_together_hold_every_user_once(self, services: Services, many: list[dict[str, Any]]) -> None:
        ids = [u.id for p in (1, 2, 3, 4, 5) for u in services.handle(queries.ListUsers(page=p, per_page=10)).items]

        assert sorted(ids) == sorted(u.id for u in many)

    def test_an_empty_list_has_one_page(self, services: Services) -> None:
        page = services.handle(queries.ListUsers())

        assert page.as_dict() == {"items": [], "total": 0, "page": 1, "per_page": 20, "pages": 1}

    @pytest.mark.parametrize(("total", "per_page", "pages"), [(1, 20, 1), (20, 20, 1), (21, 20, 2), (45, 1000, 1), (45, 1, 45)])
    def test_the_page_count_rounds_up(self, total: int, per_page: int, pages: int) -> None:
        assert queries.Page(items=[], total=total, page=1, per_page=per_page).pages == pages

    def test_filtering_by_role(self, services: Services, many: list[dict[str, Any]]) -> None:
        page = services.handle(queries.ListUsers(filter=queries.UserFilter(role="admin"), per_page=1000))

        assert page.total == 15
        assert {u.role for u in page.items} == {"admin"}

    def test_filtering_by_activity(self, services: Services, many: list[dict[str, Any]]) -> None:
        inactive = services.handle(queries.ListUsers(filter=queries.UserFilter(active=False), per_page=1000))
        active = services.handle(queries.ListUsers(filter=queries.UserFilter(active=True), per_page=1000))

        assert inactive.total == 9 and all(u.is_active is False for u in inactive.items)
        assert active.total == 36 and all(u.is_active is True for u in active.items)

    def test_searching_by_name_or_email_ignores_case(self, services: Services, many: list[dict[str, Any]]) -> None:
        by_name = services.handle(queries.ListUsers(filter=queries.UserFilter(search="USER 07")))
        by_email = services.handle(queries.ListUsers(filter=queries.UserFilter(search="User07@")))

        assert [u.email for u in by_name.items] == ["user07@example.com"]
        assert [u.email for u in by_email.items] == ["user07@example.com"]

    def test_filters_combine(self, services: Services, many: list[dict[str, Any]]) -> None:
        page = services.handle(queries.ListUsers(filter=queries.UserFilter(role="admin", active=False), per_page=1000))

        assert sorted(u.email for u in page.items) == [f"user{i:02d}@example.com" for i in (0, 15, 30)]

    def test_the_largest_page_size_is_allowed(self, services: Services, many: list[dict[str, Any]]) -> None:
        page = services.handle(queries.ListUsers(per_page=1000))

        assert len(page.items) == 45

    @pytest.mark.parametrize(
        "query",
        [
            queries.ListUsers(page=0),
            queries.ListUsers(page=-1),
            queries.ListUsers(per_page=0),
            queries.ListUsers(per_page=-5),
            queries.ListUsers(per_page=1001),
            queries.ListUsers(filter=queries.UserFilter(role="root")),
        ],
        ids=repr,
    )
    def test_a_bad_page_page_size_or_role_is_invalid_input(
        self, services: Services, query: queries.ListUsers
    ) -> None:
        with pytest.raises(InvalidInput):
            services.handle(query)
