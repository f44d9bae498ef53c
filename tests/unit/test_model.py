"""The User entity: each state change records exactly the event it should."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from usermgr.domain import events
from usermgr.domain.model import User
from usermgr.domain.values import Email, Role

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)
HASH = "$2b$04$abcdefghijklmnopqrstuuVJ8E0yQk3lU9pQ1x1cW1cW1cW1cW1cW"


def make_user(*, is_active: bool = True, role: Role = Role.USER, password_hash: str | None = HASH) -> User:
    user = User.create(
        email=Email.parse("alice@example.com"),
        name="Alice",
        role=role,
        is_active=is_active,
        password_hash=password_hash,
        now=T0,
    )
    user.events.clear()  # start each test from a committed user
    return user


def serialised(event: events.Event) -> str:
    return json.dumps(event.data(), default=str) + repr(event)


class TestCreate:
    def test_creating_a_user_records_one_user_created_event(self) -> None:
        user = User.create(
            email=Email.parse("alice@example.com"),
            name="Alice",
            role=Role.ADMIN,
            is_active=False,
            password_hash=HASH,
            now=T0,
        )

        [event] = user.events
        assert isinstance(event, events.UserCreated)
        assert event.type == "UserCreated"
        assert event.user_id == user.id
        assert event.occurred_at == T0
        assert event.data() == {
            "email": "alice@example.com",
            "name": "Alice",
            "role": "admin",
            "is_active": False,
        }

    def test_a_new_user_has_its_fields_and_no_updated_at(self) -> None:
        user = User.create(
            email=Email.parse("alice@example.com"),
            name="Alice",
            role=Role.USER,
            is_active=True,
            password_hash=HASH,
            now=T0,
        )

        assert (user.name, user.role, user.is_active, user.password_hash) == ("Alice", Role.USER, True, HASH)
        assert user.created_at == T0
        assert user.updated_at is None

    def test_the_created_event_holds_no_password_or_hash(self) -> None:
        user = User.create(
            email=Email.parse("alice@example.com"),
            name="Alice",
            role=Role.USER,
            is_active=True,
            password_hash=HASH,
            now=T0,
        )

        [event] = user.events
        assert not any("password" in key or "hash" in key for key in event.data())
        assert HASH not in serialised(event)

    def test_the_hash_is_not_in_the_users_repr(self) -> None:
        assert HASH not in repr(make_user())

    def test_each_new_user_gets_its_own_uuid(self) -> None:
        a, b = make_user(), make_user()

        assert a.id != b.id
        assert len(a.id) == 36

    def test_a_given_id_is_kept(self) -> None:
        user = User.create(
            email=Email.parse("alice@example.com"),
            name="Alice",
            role=Role.USER,
            is_active=True,
            password_hash=None,
            now=T0,
            id="0b6c2f6e-7c1f-4c36-9f43-3f3c5a1a6b4e",
        )

        assert user.id == "0b6c2f6e-7c1f-4c36-9f43-3f3c5a1a6b4e"
        assert user.events[0].user_id == user.id


class TestActivation:
    def test_activating_an_inactive_user_records_one_event_and_touches_updated_at(self) -> None:
        user = make_user(is_active=False)

        user.activate(T1)

        assert user.is_active is True
        assert user.updated_at == T1
        assert [type(e) for e in user.events] == [events.UserActivated]
        assert user.events[0].data() == {"email": "alice@example.com"}

    def test_activating_an_active_user_records_no_event(self) -> None:
        user = make_user(is_active=True)

        user.activate(T1)

        assert user.is_active is True
        assert user.events == []
        assert user.updated_at is None

    def test_deactivating_an_active_user_records_one_event_and_touches_updated_at(self) -> None:
        user = make_user(is_active=True)

        user.deactivate(T1)

        assert user.is_active is False
        assert user.updated_at == T1
        assert [type(e) for e in user.events] == [events.UserDeactivated]

    def test_deactivating_an_inactive_user_records_no_event(self) -> None:
        user = make_user(is_active=False)

        user.deactivate(T1)

        assert user.is_active is False
        assert user.events == []
        assert user.updated_at is None

    def test_a_repeated_activation_keeps_the_first_updated_at(self) -> None:
        user = make_user(is_active=False)

        user.activate(T1)
        user.activate(T2)

        assert user.updated_at == T1
        assert len(user.events) == 1


class TestChangeRole:
    def test_changing_the_role_records_before_and_after(self) -> None:
        user = make_user(role=Role.USER)

        user.change_role(Role.MODERATOR, T1)

        assert user.role is Role.MODERATOR
        assert user.updated_at == T1
        [event] = user.events
        assert isinstance(event, events.UserRoleChanged)
        assert event.data() == {"email": "alice@example.com", "before": "user", "after": "moderator"}

    def test_setting_the_same_role_records_no_event(self) -> None:
        user = make_user(role=Role.ADMIN)

        user.change_role(Role.ADMIN, T1)

        assert user.role is Role.ADMIN
        assert user.events == []
        assert user.updated_at is None


class TestUpdate:
    def test_renaming_records_one_update_with_before_and_after(self) -> None:
        user = make_user()

        user.update(name="Alicia", now=T1)

        assert user.name == "Alicia"
        assert user.updated_at == T1
        [event] = user.events
        assert isinstance(event, events.UserUpdated)
        assert event.changes == {"name": ["Alice", "Alicia"]}

    def test_changing_email_and_name_together_records_a_single_event(self) -> None:
        user = make_user()

        user.update(email=Email.parse("alicia@example.org"), name="Alicia", now=T1)

        assert str(user.email) == "alicia@example.org"
        [event] = user.events
        assert event.data()["changes"] == {
            "email": ["alice@example.com", "alicia@example.org"],
            "name": ["Alice", "Alicia"],
        }

    def test_the_update_event_carries_the_new_email(self) -> None:
        user = make_user()

        user.update(email=Email.parse("alicia@example.org"), now=T1)

        assert user.events[0].email == "alicia@example.org"

    def test_an_update_to_the_current_values_records_no_event(self) -> None:
        user = make_user()

        user.update(email=Email.parse("alice@EXAMPLE.com"), name="Alice", now=T1)

        assert user.events == []
        assert user.updated_at is None

    def test_an_update_with_nothing_given_records_no_event(self) -> None:
        user = make_user()

        user.update(now=T1)

        assert user.events == []
        assert user.updated_at is None

    def test_only_the_fields_that_really_changed_are_in_the_event(self) -> None:
        user = make_user()

        user.update(email=Email.parse("alice@example.com"), name="Alicia", now=T1)

        assert user.events[0].changes == {"name": ["Alice", "Alicia"]}


class TestPassword:
    def test_setting_a_password_hash_records_an_event_without_the_hash(self) -> None:
        user = make_user(password_hash=None)

        user.set_password_hash(HASH, T1)

        assert user.password_hash == HASH
        assert user.updated_at == T1
        [event] = user.events
        assert isinstance(event, events.UserPasswordChanged)
        assert event.data() == {"email": "alice@example.com"}
        assert HASH not in serialised(event)

    def test_clearing_the_password_records_an_event(self) -> None:
        user = make_user()

        user.set_password_hash(None, T1)

        assert user.password_hash is None
        assert [type(e) for e in user.events] == [events.UserPasswordChanged]


class TestDelete:
    def test_deleting_records_user_deleted_with_the_email(self) -> None:
        user = make_user()

        user.delete(T1)

        [event] = user.events
        assert isinstance(event, events.UserDeleted)
        assert event.user_id == user.id
        assert event.occurred_at == T1
        assert event.data() == {"email": "alice@example.com"}


class TestEvents:
    def test_every_event_type_is_registered_under_its_name(self) -> None:
        assert set(events.EVENT_TYPES) == {
            "UserCreated",
            "UserUpdated",
            "UserActivated",
            "UserDeactivated",
            "UserRoleChanged",
            "UserPasswordChanged",
            "UserDeleted",
        }
        assert all(cls.type == name for name, cls in events.EVENT_TYPES.items())

    def test_events_are_immutable(self) -> None:
        user = make_user()
        user.delete(T1)

        with pytest.raises(AttributeError):
            user.events[0].email = "mallory@example.com"  # type: ignore[misc]

    def test_each_event_gets_its_own_id(self) -> None:
        user = make_user(is_active=True)
        user.deactivate(T1)
        user.activate(T2)

        assert len({e.id for e in user.events}) == 2
