"""One plain function per command and query on users and their audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from usermgr.application import commands, queries
from usermgr.application.ports import (
    Clock,
    EventViews,
    PasswordHasher,
    UnitOfWork,
    UserViews,
)
from usermgr.application.queries import ExportedUser, UserView
from usermgr.domain.audit import ChainReport, verify_chain
from usermgr.domain.events import EVENT_TYPES
from usermgr.domain.model import User
from usermgr.domain.values import (
    Policy,
    Role,
    email_key,
    find_user,
    format_timestamp,
    parse_name,
    parse_since,
)
from usermgr.errors import (
    EmailTaken,
    InvalidField,
    InvalidInput,
    StorageUnavailable,
    UserNotFound,
    VerificationFailed,
)


@dataclass(frozen=True)
class Created:
    user: UserView
    created: bool


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        email=user.email.normalized,
        name=user.name,
        role=user.role.value,
        is_active=user.is_active,
        created_at=format_timestamp(user.created_at),
        updated_at=format_timestamp(user.updated_at) if user.updated_at else None,
    )


def _load(uow: UnitOfWork, ref: str, policy: Policy) -> User:
    user = find_user(ref, uow.users.get, uow.users.get_by_email_key, policy)
    if user is None:
        raise UserNotFound(ref)
    return user


def create_user(
    cmd: commands.CreateUser, *, uow: UnitOfWork, hasher: PasswordHasher, policy: Policy, clock: Clock
) -> Created:
    email = policy.email(cmd.email)
    name = parse_name(cmd.name)
    role = Role.parse(cmd.role)
    password_hash = None
    if cmd.password is not None:
        policy.check_password(cmd.password, email)
        # Hash before taking the write lock: bcrypt is slow, other writers should not wait on it.
        password_hash = hasher.hash(cmd.password)
    with uow:
        existing = uow.users.get_by_email_key(email.key)
        if existing is not None:
            if cmd.exists_ok:
                return Created(user_view(existing), created=False)
            raise EmailTaken(email.normalized)
        user = User.create(
            email=email, name=name, role=role, is_active=cmd.is_active, password_hash=password_hash, now=clock()
        )
        uow.users.add(user)
        uow.commit()
        return Created(user_view(user), created=True)


def update_user(cmd: commands.UpdateUser, *, uow: UnitOfWork, policy: Policy, clock: Clock) -> UserView:
    if cmd.email is None and cmd.name is None:
        raise InvalidInput("nothing to update: give a new email or name, or both")
    email = policy.email(cmd.email) if cmd.email is not None else None
    name = parse_name(cmd.name) if cmd.name is not None else None
    with uow:
        user = _load(uow, cmd.ref, policy)
        if email is not None and email.key != user.email.key:
            if uow.users.get_by_email_key(email.key) is not None:
                raise EmailTaken(email.normalized)
        user.update(email=email, name=name, now=clock())
        uow.commit()
        return user_view(user)


def _change(method: Callable[[User], None], ref: str, uow: UnitOfWork, policy: Policy) -> UserView:
    with uow:
        user = _load(uow, ref, policy)
        method(user)
        uow.commit()
        return user_view(user)


def activate_user(cmd: commands.ActivateUser, *, uow: UnitOfWork, policy: Policy, clock: Clock) -> UserView:
    return _change(lambda user: user.activate(clock()), cmd.ref, uow, policy)


def deactivate_user(cmd: commands.DeactivateUser, *, uow: UnitOfWork, policy: Policy, clock: Clock) -> UserView:
    return _change(lambda user: user.deactivate(clock()), cmd.ref, uow, policy)


def set_role(cmd: commands.SetRole, *, uow: UnitOfWork, policy: Policy, clock: Clock) -> UserView:
    role = Role.parse(cmd.role)
    return _change(lambda user: user.change_role(role, clock()), cmd.ref, uow, policy)


def change_password(
    cmd: commands.ChangePassword, *, uow: UnitOfWork, hasher: PasswordHasher, policy: Policy, clock: Clock
) -> UserView:
    # The policy needs the user's email; read it first, so that bcrypt runs
    # before the write transaction, not while other writers wait on its lock.
    with uow:
        email = _load(uow, cmd.ref, policy).email
    policy.check_password(cmd.password, email)
    password_hash = hasher.hash(cmd.password)
    return _change(lambda user: user.set_password_hash(password_hash, clock()), cmd.ref, uow, policy)


def delete_user(cmd: commands.DeleteUser, *, uow: UnitOfWork, policy: Policy, clock: Clock) -> UserView:
    with uow:
        user = _load(uow, cmd.ref, policy)
        user.delete(clock())
        uow.users.remove(user)
        uow.commit()
        return user_view(user)


def verify_password(
    cmd: commands.VerifyPassword, *, uow: UnitOfWork, views: UserViews, hasher: PasswordHasher, policy: Policy
) -> None:
    """Succeed only for an active user's matching password; every failure looks the same."""
    found = find_user(cmd.ref, views.credentials_by_id, views.credentials_by_email_key, policy, exact=True)
    stored = found.password_hash if found else None
    if not hasher.verify(cmd.password, stored) or not found or not found.is_active:
        raise VerificationFailed()
    assert stored is not None  # a match implies a hash
    if hasher.inspect(stored).cost != hasher.rounds:
        new_hash = hasher.hash(cmd.password)
        try:
            with uow:
                uow.users.replace_password_hash(found.user_id, stored, new_hash)
                uow.commit()
        except StorageUnavailable:
            pass  # the password matched; upgrading its hash can wait for the next verify


def get_user(query: queries.GetUser, *, views: UserViews, policy: Policy) -> UserView:
    user = find_user(query.ref, views.get_by_id, views.get_by_email_key, policy)
    if user is None:
        raise UserNotFound(query.ref)
    return user


def _check_filter(where: queries.UserFilter) -> None:
    if where.role is not None:
        Role.parse(where.role)


def list_users(query: queries.ListUsers, *, views: UserViews) -> queries.Page:
    _check_filter(query.filter)
    if query.page < 1:
        raise InvalidField("page", "must be 1 or more")
    if not 1 <= query.per_page <= queries.MAX_PER_PAGE:
        raise InvalidField("per_page", f"must be between 1 and {queries.MAX_PER_PAGE}")
    return views.page(query.filter, query.page, query.per_page)


def stream_users(query: queries.StreamUsers, *, views: UserViews) -> Iterator[UserView]:
    _check_filter(query.filter)
    return views.stream(query.filter)


def export_users(query: queries.ExportUsers, *, views: UserViews) -> Iterator[UserView | ExportedUser]:
    return views.export(query.include_hashes)


def export_text(query: queries.ExportText, *, views: UserViews) -> Iterator[str]:
    if query.format not in ("jsonl", "csv"):
        raise InvalidField("format", f"{query.format!r}: choose csv or jsonl")
    return views.export_text(query.format, query.include_hashes)


def list_events(
    query: queries.ListEvents, *, events: EventViews, policy: Policy, clock: Clock
) -> list[queries.EventView]:
    if query.type is not None and query.type not in EVENT_TYPES:
        raise InvalidField("type", f"{query.type!r}: choose one of {', '.join(EVENT_TYPES)}")
    if query.limit < 1:
        raise InvalidField("limit", "must be 1 or more")
    since = parse_since(query.since, clock()) if query.since is not None else None
    user_ids = None
    if query.user is not None:
        user_ids = find_user(query.user, lambda user_id: [user_id], _ids_by_email(events), policy) or []
    return events.recent(user_ids=user_ids, type=query.type, since=since, limit=query.limit)


def _ids_by_email(events: EventViews) -> Callable[[str], list[str] | None]:
    return lambda key: events.user_ids_by_email_key(key) or None


def verify_events(query: queries.VerifyEvents, *, events: EventViews) -> ChainReport:
    head = query.head.lower() if query.head is not None else None
    if head is not None and (len(head) != 64 or not all(c in "0123456789abcdef" for c in head)):
        raise InvalidField("head", f"{query.head!r} is not a SHA-256 hash in hex (64 characters)")
    misindexed: list[tuple[int, str]] = []

    def checked() -> Iterator[dict[str, Any]]:
        # The email key column is outside the chain (an index of data.email): a hand edit
        # of it would hide an event from `events --user` while every hash still matched.
        for position, (event, key) in enumerate(events.chain(), 1):
            email = event.data.get("email") if isinstance(event.data, dict) else None
            if not misindexed and isinstance(email, str) and key != email_key(email):
                misindexed.append((position, event.id))
            yield event.as_dict()

    report = verify_chain(checked(), head)
    if report.broken is not None:
        broken = report.broken
        raise StorageUnavailable(
            f"audit log broken at event {broken.position} ({broken.event_id}): it was edited, removed"
            f" or inserted; the {report.events} events before it verify"
        )
    if misindexed:
        position, event_id = misindexed[0]
        raise StorageUnavailable(
            f"audit log index edited at event {position} ({event_id}): its email key does not match its data,"
            " so `events --user` would not find it"
        )
    if report.head_found is False:
        raise StorageUnavailable(
            f"audit log does not contain head {head}: it was cut back or rewritten after that event"
            f" ({report.events} events, head now {report.head})"
        )
    return report

