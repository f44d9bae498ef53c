"""The storage contract: what every engine's Storage must do, tested through the objects
`open_storage` returns, once per engine (the `db_url` fixture: a second engine is one
more parameter there). The application relies on nothing else below its ports."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from usermgr.application.ports import Hook
from usermgr.application.queries import ExportedUser, UserFilter, UserView
from usermgr.domain.audit import GENESIS, verify_chain
from usermgr.domain.model import User
from usermgr.domain.values import Email, Role
from usermgr.errors import EmailTaken, InvalidInput, StorageUnavailable
from usermgr.infrastructure.storage import Storage, open_storage, parse_location
from usermgr.infrastructure.storage.schema import SCHEMA_VERSION

T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
HASH = "$2b$04$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ."
OTHER_HASH = "$2b$04$" + "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba."
EVERYTHING = UserFilter()

Open = Callable[..., Storage]


@pytest.fixture
def notices() -> list[str]:
    return []


@pytest.fixture
def open_(db_url: str, notices: list[str]) -> Iterator[Open]:
    """Storage for the test's database (or another `location`); closed at the end."""
    opened: list[Storage] = []

    def open_storage_at(
        *, busy_timeout: float = 5.0, hooks: tuple[Hook, ...] = (), location: str | None = None
    ) -> Storage:
        where = parse_location(location or db_url, lambda: Path("unused"))
        storage = open_storage(where, busy_timeout=busy_timeout, hooks=hooks, actor="tests", notice=notices.append)
        opened.append(storage)
        return storage

    yield open_storage_at
    for storage in opened:
        storage.close()


@pytest.fixture
def store(open_: Open) -> Storage:
    return open_()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_user(
    email: str,
    name: str = "Ada",
    *,
    role: Role = Role.USER,
    active: bool = True,
    password_hash: str | None = None,
    created: datetime = T0,
) -> User:
    return User.create(
        email=Email.parse(email), name=name, role=role, is_active=active, password_hash=password_hash, now=created
    )


def commit(store: Storage, *users: User) -> list[User]:
    with store.unit_of_work(create=True) as work:
        for user in users:
            work.users.add(user)
        work.commit()
    return list(users)


def change(store: Storage, user_id: str, how: Callable[[User], None]) -> None:
    """Load a user in a unit of work, change it, commit."""
    with store.unit_of_work(create=True) as work:
        user = work.users.get(user_id)
        assert user is not None
        how(user)
        work.commit()


def emails(views: list[UserView] | Iterator[UserView]) -> list[str]:
    return [view.email for view in views]


def chain(store: Storage) -> list[dict]:
    return [event.as_dict() for event, _ in store.events.chain()]


# --- the repository --------------------------------------------------------------------


def test_a_committed_user_reads_back_whole_by_id_and_by_email_key(store: Storage, open_: Open) -> None:
    [ada] = commit(store, new_user("Ada@Example.com", "Ada Lovelace", role=Role.ADMIN, active=False, password_hash=HASH))

    with open_().unit_of_work(create=True) as work:
        found = work.users.get(ada.id)
        assert found is not None
        assert (found.id, found.email.normalized, found.email.key) == (ada.id, "Ada@example.com", "ada@example.com")
        assert (found.name, found.role, found.is_active) == ("Ada Lovelace", Role.ADMIN, False)
        assert (found.created_at, found.updated_at, found.password_hash) == (T0, None, HASH)
        assert work.users.get_by_email_key("ada@example.com") is found
        assert work.users.get("00000000-0000-4000-8000-000000000000") is None
        assert work.users.get_by_email_key("Ada@example.com") is None  # a key is case-folded already


def test_a_changed_user_is_written_back_on_commit(store: Storage) -> None:
    [ada] = commit(store, new_user("ada@example.com"))

    def rename(user: User) -> None:
        user.update(now=at(5), email=Email.parse("ada@lovelace.org"), name="Ada L")
        user.deactivate(at(6))

    change(store, ada.id, rename)

    view = store.users.get_by_id(ada.id)
    assert view is not None
    assert (view.email, view.name, view.is_active) == ("ada@lovelace.org", "Ada L", False)
    assert view.updated_at == "2026-03-04T05:06:13.123456Z"
    assert store.users.get_by_email_key("ada@example.com") is None
    assert store.users.get_by_email_key("ada@lovelace.org") == view


def test_add_all_and_existing_find_taken_email_keys_and_ids_in_any_number(store: Storage) -> None:
    users = [new_user(f"user{i:04d}@example.com", created=at(i / 1000)) for i in range(1200)]
    with store.unit_of_work(create=True) as work:
        work.users.add_all(users)
        work.commit()

    with store.unit_of_work(create=True) as work:
        keys, ids = work.users.existing(
            [u.email.key for u in users] + ["nobody@example.com"], [u.id for u in users] + ["not-an-id"]
        )
    assert keys == {u.email.key for u in users}
    assert ids == {u.id: u.email.key for u in users}
    assert store.users.page(EVERYTHING, 1, 1).total == 1200


def test_a_removed_user_is_gone_and_its_email_free_again(store: Storage) -> None:
    [ada, bob] = commit(store, new_user("ada@example.com"), new_user("bob@example.com", created=at(1)))

    def delete(user: User) -> None:
        user.delete(at(2))

    with store.unit_of_work(create=True) as work:
        user = work.users.get(ada.id)
        assert user is not None
        delete(user)
        work.users.remove(user)
        work.commit()
    [again] = commit(store, new_user("ADA@example.com", created=at(3)))

    assert emails(store.users.stream(EVERYTHING)) == ["ADA@example.com", "bob@example.com"]
    assert store.users.get_by_id(ada.id) is None
    assert store.users.get_by_email_key("ada@example.com").id == again.id  # type: ignore[union-attr]


def test_replace_password_hash_swaps_only_the_hash_it_was_given_with_no_event(store: Storage) -> None:
    [ada] = commit(store, new_user("ada@example.com", password_hash=HASH))
    before = chain(store)

    with store.unit_of_work(create=True) as work:
        work.users.replace_password_hash(ada.id, "$2b$04$not-the-stored-one", OTHER_HASH)
        work.commit()
    assert store.users.credentials_by_id(ada.id).password_hash == HASH  # type: ignore[union-attr]

    with store.unit_of_work(create=True) as work:
        work.users.replace_password_hash(ada.id, HASH, OTHER_HASH)
        work.commit()
    assert store.users.credentials_by_id(ada.id).password_hash == OTHER_HASH  # type: ignore[union-attr]
    assert store.users.get_by_id(ada.id).updated_at is None  # type: ignore[union-attr]
    assert chain(store) == before


# --- the unit of work ------------------------------------------------------------------


def test_work_that_is_not_committed_is_rolled_back(store: Storage) -> None:
    with store.unit_of_work(create=True) as work:
        work.users.add(new_user("ada@example.com"))
    with pytest.raises(RuntimeError):
        with store.unit_of_work(create=True) as work:
            work.users.add(new_user("bob@example.com"))
            raise RuntimeError("boom")

    assert store.users.page(EVERYTHING, 1, 20).total == 0
    assert chain(store) == []


def test_commit_writes_each_event_chained_to_the_log_in_commit_order(store: Storage) -> None:
    [ada, bob] = commit(store, new_user("ada@example.com"), new_user("bob@example.com", created=at(1)))
    # Committed later with an earlier time: the log keeps the order of the commits.
    change(store, ada.id, lambda user: user.deactivate(at(-60)))
    work = store.unit_of_work(create=True)
    with work:
        user = work.users.get(bob.id)
        assert user is not None
        user.change_role(Role.MODERATOR, at(2))
        work.commit()
    [collected] = work.collect_new_events()
    assert work.collect_new_events() == []

    events = chain(store)
    assert [(e["type"], e["user_id"]) for e in events] == [
        ("UserCreated", ada.id),
        ("UserCreated", bob.id),
        ("UserDeactivated", ada.id),
        ("UserRoleChanged", bob.id),
    ]
    assert collected.id == events[-1]["id"]
    assert {e["actor"] for e in events} == {"tests"}
    assert events[2]["occurred_at"] == "2026-03-04T05:05:07.123456Z"
    assert events[3]["data"] == {"email": "bob@example.com", "before": "user", "after": "moderator"}
    report = verify_chain(events)
    assert (report.events, report.broken, report.head) == (4, None, events[-1]["hash"])
    assert report.head != GENESIS and len({e["hash"] for e in events}) == 4


def test_commit_records_one_delivery_for_each_hook_that_matches_each_event(open_: Open) -> None:
    hooks = (
        Hook("welcome", "UserCreated", ("/bin/true",)),
        Hook("audit", "*", ("/bin/true",)),
        Hook("farewell", "UserDeleted", ("/bin/true",)),
    )
    store = open_(hooks=hooks)
    [ada] = commit(store, new_user("ada@example.com"))
    with store.unit_of_work(create=True) as work:
        user = work.users.get(ada.id)
        assert user is not None
        user.delete(at(1))
        work.users.remove(user)
        work.commit()

    created, deleted = chain(store)
    pending = store.deliveries.pending()
    assert [(d.hook, d.event.type, d.attempts, d.last_error) for d in pending] == [
        ("welcome", "UserCreated", 0, None),
        ("audit", "UserCreated", 0, None),
        ("audit", "UserDeleted", 0, None),
        ("farewell", "UserDeleted", 0, None),
    ]
    assert pending[0].event.as_dict() == created
    assert [d.hook for d in store.deliveries.for_event(deleted["id"])] == ["audit", "farewell"]
    assert len({d.id for d in pending}) == 4 and [d.id for d in pending] == sorted(d.id for d in pending)


@pytest.mark.parametrize(("first", "second"), [("ada@example.com", "ADA@example.com"), ("Élise@example.com", "élise@example.com")])
def test_the_unique_email_key_is_the_last_line_of_defence(store: Storage, open_: Open, first: str, second: str) -> None:
    # Two units of work insert the same email without looking first (the handlers do
    # look): the database itself refuses the second, as EmailTaken.
    [kept] = commit(store, new_user(first))
    with pytest.raises(EmailTaken):
        with open_().unit_of_work(create=True) as work:
            work.users.add(new_user(second, "Other", created=at(1)))
            work.commit()

    assert [(v.id, v.email) for v in store.users.stream(EVERYTHING)] == [(kept.id, first.replace("Example", "example"))]
    assert [e["user_id"] for e in chain(store)] == [kept.id]


def test_an_update_onto_a_taken_email_key_is_email_taken_and_changes_nothing(store: Storage) -> None:
    [ada, bob] = commit(store, new_user("ada@example.com"), new_user("bob@example.com", created=at(1)))
    before = (list(store.users.export(True)), chain(store))

    with pytest.raises(EmailTaken):
        change(store, bob.id, lambda user: user.update(now=at(2), email=Email.parse("Ada@example.com")))

    assert (list(store.users.export(True)), chain(store)) == before


def test_a_unit_of_work_holds_the_write_lock_from_its_start(store: Storage, open_: Open) -> None:
    commit(store, new_user("seed@example.com"))  # the database exists, so only the lock is in the way
    other = open_(busy_timeout=0.2)
    with store.unit_of_work(create=True) as first:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="busy"):
            with other.unit_of_work(create=True) as second:
                second.users.add(new_user("grace@example.com"))
                second.commit()
        waited = time.monotonic() - started
        first.users.add(new_user("ada@example.com", created=at(1)))
        first.commit()

    assert 0.2 <= waited < 3, waited
    assert emails(store.users.stream(EVERYTHING)) == ["ada@example.com", "seed@example.com"]
    with other.unit_of_work(create=True) as third:  # the lock went with the first unit's commit
        third.users.add(new_user("grace@example.com", created=at(2)))
        third.commit()


def test_a_reader_does_not_wait_for_a_writer_and_sees_only_committed_data(store: Storage, open_: Open) -> None:
    commit(store, new_user("seed@example.com"))
    reader = open_(busy_timeout=0.2)
    with store.unit_of_work(create=True) as writer:
        writer.users.add(new_user("uncommitted@example.com", created=at(1)))
        # A reader that waited for the lock would give up after 0.2 s: StorageUnavailable.
        assert emails(reader.users.stream(EVERYTHING)) == ["seed@example.com"]
        assert [e["type"] for e in chain(reader)] == ["UserCreated"]
        assert reader.users.get_by_email_key("uncommitted@example.com") is None


# --- a database that is not there yet ---------------------------------------------------


def test_a_missing_database_reads_as_empty_and_reading_creates_nothing(store: Storage, notices: list[str]) -> None:
    page = store.users.page(EVERYTHING, 1, 20)
    assert (page.items, page.total) == ([], 0)
    assert list(store.users.stream(EVERYTHING)) == []
    assert list(store.users.export(True)) == list(store.users.password_hashes()) == []
    assert store.users.get_by_id("00000000-0000-4000-8000-000000000000") is None
    assert store.users.get_by_email_key("ada@example.com") is None
    assert store.users.credentials_by_email_key("ada@example.com") is None
    assert store.events.recent(user_ids=None, type=None, since=None, limit=10) == []
    assert store.events.user_ids_by_email_key("ada@example.com") == []
    assert list(store.events.chain()) == []
    assert store.deliveries.pending() == []
    assert len(notices) == 1 and "nothing to show" in notices[0], notices

    with pytest.raises(StorageUnavailable):
        store.admin.check()  # still nothing there


def test_a_writer_that_may_not_create_the_database_creates_nothing(store: Storage, open_: Open) -> None:
    with store.unit_of_work(create=False) as work:
        assert work.users.get_by_email_key("ada@example.com") is None
        work.users.add(new_user("ada@example.com"))
        work.commit()

    later = open_()
    with pytest.raises(StorageUnavailable):
        later.admin.check()
    assert list(later.users.stream(EVERYTHING)) == []

    commit(later, new_user("ada@example.com"))
    assert open_().admin.check().users == 1


# --- the read model -----------------------------------------------------------------------


@pytest.fixture
def five(store: Storage) -> list[User]:
    """Created at 0 s and 1 s, then three at the same instant, inserted in the order c, d, e."""
    users = [
        new_user("a@example.com", "Alpha", role=Role.ADMIN, password_hash=HASH, created=at(0)),
        new_user("b@example.com", "Bravo", active=False, created=at(1)),
        new_user("c@example.com", "Charlie", role=Role.MODERATOR, password_hash=OTHER_HASH, created=at(2)),
        new_user("d@example.com", "Delta", created=at(2)),
        new_user("e@example.com", "Echo", role=Role.ADMIN, active=False, created=at(2)),
    ]
    return commit(store, *users)


def test_a_user_view_and_credentials_by_id_or_email_key(store: Storage, five: list[User]) -> None:
    a = five[0]
    view = store.users.get_by_id(a.id)
    assert view == UserView(a.id, "a@example.com", "Alpha", "admin", True, "2026-03-04T05:06:07.123456Z", None)
    assert store.users.get_by_email_key("a@example.com") == view
    by_id, by_key = store.users.credentials_by_id(a.id), store.users.credentials_by_email_key("b@example.com")
    assert (by_id.user_id, by_id.password_hash, by_id.is_active) == (a.id, HASH, True)  # type: ignore[union-attr]
    assert (by_key.user_id, by_key.password_hash, by_key.is_active) == (five[1].id, None, False)  # type: ignore[union-attr]
    assert store.users.credentials_by_id("not-an-id") is None


def test_a_page_is_newest_first_and_the_export_read_backwards(store: Storage, five: list[User]) -> None:
    # Users created at the same instant come in insertion order in the export, and
    # the other way round in a listing: one total order, both ways.
    page = store.users.page(EVERYTHING, 1, 20)
    assert emails(page.items) == ["e@example.com", "d@example.com", "c@example.com", "b@example.com", "a@example.com"]
    assert page.items == list(reversed(list(store.users.export(False))))
    assert (page.total, page.page, page.per_page) == (5, 1, 20)

    pages = [store.users.page(EVERYTHING, n, 2) for n in (1, 2, 3, 4)]
    assert [emails(p.items) for p in pages] == [
        ["e@example.com", "d@example.com"], ["c@example.com", "b@example.com"], ["a@example.com"], []
    ]
    assert {p.total for p in pages} == {5}
    huge = store.users.page(EVERYTHING, 2**62, 1000)
    assert (huge.items, huge.total) == ([], 5)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (UserFilter(active=True), ["d", "c", "a"]),
        (UserFilter(active=False), ["e", "b"]),
        (UserFilter(role="admin"), ["e", "a"]),
        (UserFilter(role="admin", active=True), ["a"]),
        (UserFilter(role="user", active=False), ["b"]),
        (UserFilter(search="ALPHA"), ["a"]),
        (UserFilter(search="@EXAMPLE.COM", active=False), ["e", "b"]),
        (UserFilter(search="a", role="moderator"), ["c"]),
        (UserFilter(search="nobody"), []),
    ],
)
def test_filters_narrow_a_page_and_a_stream_alike(store: Storage, five: list[User], where: UserFilter, expected: list[str]) -> None:
    want = [f"{letter}@example.com" for letter in expected]
    page = store.users.page(where, 1, 20)
    assert (emails(page.items), page.total) == (want, len(want))
    assert emails(store.users.stream(where)) == want


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("%", ["100% Real"]),
        ("0%", ["100% Real"]),
        ("_", ["a_b"]),
        ("a_b", ["a_b"]),
        ("ÉLISE", ["Élise Ünal"]),
        ("E\u0301LISE", ["Élise Ünal"]),
        ("ünal", ["Élise Ünal"]),
        ("STRASSE", ["Straße"]),
        ("münchen", ["Max"]),
    ],
)
def test_search_is_a_plain_substring_with_unicode_case_folding(store: Storage, search: str, expected: list[str]) -> None:
    names = ["100% Real", "a_b", "axb", "abc", "100 Real", "Élise Ünal", "Straße", "Max"]
    commit(store, *(new_user(f"user{i}@example.com" if name != "Max" else "max@münchen.de", name, created=at(i)) for i, name in enumerate(names)))

    where = UserFilter(search=search)
    assert [v.name for v in store.users.page(where, 1, 20).items] == expected
    assert [v.name for v in store.users.stream(where)] == expected


def test_export_is_oldest_first_with_hashes_only_when_asked(store: Storage, five: list[User]) -> None:
    plain = list(store.users.export(False))
    hashed = list(store.users.export(True))

    assert emails(plain) == emails(hashed) == [f"{c}@example.com" for c in "abcde"]
    assert not any(isinstance(view, ExportedUser) for view in plain)
    assert all(isinstance(view, ExportedUser) for view in hashed)
    assert [h.password_hash for h in hashed] == [HASH, None, OTHER_HASH, None, None]  # type: ignore[union-attr]
    assert [UserView(**{k: v for k, v in h.as_dict().items() if k != "password_hash"}) for h in hashed] == plain
    assert list(store.users.password_hashes()) == [(f"{c}@example.com", h) for c, h in zip("abcde", [HASH, None, OTHER_HASH, None, None])]


# --- the audit log --------------------------------------------------------------------------


@pytest.fixture
def history(store: Storage) -> dict[str, str]:
    """ada changes her email to countess@ and a newcomer takes ada@; bob is deleted."""
    ada, bob = commit(store, new_user("ada@example.com", created=at(0)), new_user("bob@example.com", created=at(1)))
    change(store, ada.id, lambda u: u.update(now=at(2), email=Email.parse("countess@example.com")))
    [newcomer] = commit(store, new_user("ada@example.com", "Another Ada", created=at(3)))
    change(store, bob.id, lambda u: u.change_role(Role.MODERATOR, at(4)))
    with store.unit_of_work(create=True) as work:
        user = work.users.get(bob.id)
        assert user is not None
        user.delete(at(5))
        work.users.remove(user)
        work.commit()
    change(store, ada.id, lambda u: u.deactivate(at(6)))
    return {"ada": ada.id, "bob": bob.id, "newcomer": newcomer.id}


def test_recent_keeps_the_newest_limit_oldest_first(store: Storage, history: dict[str, str]) -> None:
    every = store.events.recent(user_ids=None, type=None, since=None, limit=100)

    assert [e.type for e in every] == [
        "UserCreated", "UserCreated", "UserUpdated", "UserCreated", "UserRoleChanged", "UserDeleted", "UserDeactivated"
    ]
    assert [e.as_dict() for e in every] == chain(store)
    assert store.events.recent(user_ids=None, type=None, since=None, limit=3) == every[-3:]
    assert store.events.recent(user_ids=None, type=None, since=None, limit=2**70) == every


def test_recent_filters_by_users_type_and_time(store: Storage, history: dict[str, str]) -> None:
    every = store.events.recent(user_ids=None, type=None, since=None, limit=100)

    def recent(**where: object) -> list[str]:
        found = store.events.recent(**{"user_ids": None, "type": None, "since": None, "limit": 100, **where})  # type: ignore[arg-type]
        return [e.id for e in found]

    assert recent(user_ids=[history["ada"]]) == [every[i].id for i in (0, 2, 6)]
    assert recent(user_ids=[history["ada"], history["bob"]], limit=2) == [every[i].id for i in (5, 6)]
    assert recent(user_ids=[]) == []
    assert recent(type="UserCreated") == [every[i].id for i in (0, 1, 3)]
    assert recent(since=at(4)) == [e.id for e in every[4:]]
    assert recent(since=at(4), type="UserDeleted") == [every[5].id]
    assert recent(since=at(7)) == []


def test_user_ids_by_email_key_finds_everyone_who_ever_had_the_email(store: Storage, history: dict[str, str]) -> None:
    assert sorted(store.events.user_ids_by_email_key("ada@example.com")) == sorted([history["ada"], history["newcomer"]])
    assert store.events.user_ids_by_email_key("countess@example.com") == [history["ada"]]
    assert store.events.user_ids_by_email_key("bob@example.com") == [history["bob"]]  # deleted
    assert store.events.user_ids_by_email_key("nobody@example.com") == []


# --- the delivery log ---------------------------------------------------------------------


@pytest.fixture
def hooked(open_: Open) -> Storage:
    store = open_(hooks=(Hook("mailer", "UserCreated", ("/bin/true",)),))
    commit(store, *(new_user(f"{name}@example.com", created=at(i)) for i, name in enumerate(("ada", "bob", "cy"))))
    return store


def test_of_two_runners_claiming_one_delivery_one_wins_until_its_claim_ends(hooked: Storage, open_: Open) -> None:
    other = open_()
    delivery = hooked.deliveries.pending()[0]
    now = datetime.now(timezone.utc)

    assert hooked.deliveries.claim(delivery, now=now, until=now + timedelta(minutes=5)) is True
    assert other.deliveries.claim(delivery, now=now, until=now + timedelta(minutes=5)) is False
    assert hooked.deliveries.claim(delivery, now=now, until=now + timedelta(minutes=5)) is False
    [claimed] = other.deliveries.for_event(delivery.event.id)
    assert claimed.claimed_until is not None
    # A runner that died holding a claim holds it no longer once it ends.
    later = now + timedelta(minutes=6)
    assert other.deliveries.claim(delivery, now=later, until=later + timedelta(minutes=5)) is True


def test_a_failed_delivery_counts_the_attempt_and_gives_up_its_claim(hooked: Storage, open_: Open) -> None:
    delivery = hooked.deliveries.pending()[0]
    now = datetime.now(timezone.utc)
    assert hooked.deliveries.claim(delivery, now=now, until=now + timedelta(minutes=5))

    hooked.deliveries.failed(delivery, "exit status 3: mail server refused", now=now)
    hooked.deliveries.failed(delivery, "exit status 4: still refused", now=now + timedelta(seconds=1))

    [failed] = open_().deliveries.for_event(delivery.event.id)
    assert (failed.id, failed.hook, failed.attempts) == (delivery.id, "mailer", 2)
    assert (failed.last_error, failed.claimed_until) == ("exit status 4: still refused", None)
    assert failed.last_attempt_at is not None and failed.last_attempt_at.endswith("Z")
    assert open_().deliveries.claim(failed, now=now, until=now + timedelta(minutes=5)) is True


def test_succeeded_and_discard_drop_deliveries(hooked: Storage) -> None:
    first, second, third = hooked.deliveries.pending()

    hooked.deliveries.succeeded(first)
    assert [d.id for d in hooked.deliveries.pending()] == [second.id, third.id]
    assert hooked.deliveries.discard(second.id) == 1
    assert hooked.deliveries.discard(second.id) == 0
    assert hooked.deliveries.discard(2**70) == 0
    assert [d.id for d in hooked.deliveries.pending()] == [third.id]
    commit(hooked, new_user("dee@example.com", created=at(9)))
    assert hooked.deliveries.discard(None) == 2
    assert hooked.deliveries.pending() == []
    assert len(chain(hooked)) == 4  # the events stay


# --- maintenance --------------------------------------------------------------------------


def test_check_reports_the_schema_version_and_what_the_database_holds(hooked: Storage) -> None:
    change(hooked, hooked.users.get_by_email_key("ada@example.com").id, lambda u: u.deactivate(at(5)))  # type: ignore[union-attr]

    report = hooked.admin.check()

    assert (report.schema_version, report.users, report.events, report.pending_deliveries) == (SCHEMA_VERSION, 3, 4, 3)


def test_upgrade_creates_a_missing_database_then_finds_it_up_to_date(store: Storage, open_: Open) -> None:
    created = store.admin.upgrade()
    again = open_().admin.upgrade()

    assert (created.before, created.after, created.created) == (0, SCHEMA_VERSION, True)
    assert (again.before, again.after, again.created) == (SCHEMA_VERSION, SCHEMA_VERSION, False)
    assert open_().admin.check().users == 0


def test_backup_is_a_private_sqlite_file_that_opens_as_the_same_usermgr_database(
    hooked: Storage, open_: Open, tmp_path: Path
) -> None:
    change(hooked, hooked.users.get_by_email_key("bob@example.com").id, lambda u: u.set_password_hash(HASH, at(7)))  # type: ignore[union-attr]
    target = tmp_path / "backups" / "copy.db"
    target.parent.mkdir()
    previous = os.umask(0o022)
    try:
        hooked.admin.backup(target, force=False)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    copy = open_(location=f"sqlite:///{target}")
    assert list(copy.users.export(True)) == list(hooked.users.export(True))
    assert chain(copy) == chain(hooked)
    assert verify_chain(chain(copy)).broken is None
    assert [(d.hook, d.event.id) for d in copy.deliveries.pending()] == [(d.hook, d.event.id) for d in hooked.deliveries.pending()]
    report = copy.admin.check()
    assert (report.schema_version, report.users, report.events, report.pending_deliveries) == (SCHEMA_VERSION, 3, 4, 3)

    copy.close()
    before = target.read_bytes()
    with pytest.raises(InvalidInput, match="--force"):
        hooked.admin.backup(target, force=False)
    assert target.read_bytes() == before
    commit(hooked, new_user("dee@example.com", created=at(9)))
    hooked.admin.backup(target, force=True)
    assert open_(location=str(target)).admin.check().users == 4
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.db"]  # no temporary file left
