"""One plain function per command and query."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from usermgr.application import commands, queries
from usermgr.application.ports import (
    Clock,
    EventViews,
    PasswordHasher,
    UnitOfWork,
    UserViews,
)
from usermgr.application.queries import UserView
from usermgr.domain.events import EVENT_TYPES
from usermgr.domain.model import User
from usermgr.domain.values import (
    Email,
    PasswordPolicy,
    Role,
    format_timestamp,
    parse_name,
    parse_since,
)
from usermgr.errors import (
    EmailTaken,
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
    return {
        "id": user.id,
        "email": user.email.normalized,
        "name": user.name,
        "role": user.role.value,
        "is_active": user.is_active,
        "created_at": format_timestamp(user.created_at),
        "updated_at": format_timestamp(user.updated_at) if user.updated_at else None,
    }


def _load(uow: UnitOfWork, ref: str) -> User:
    if "@" in ref:
        user = uow.users.get_by_email_key(Email.parse(ref).key)
    else:
        user = uow.users.get(ref.lower())
    if user is None:
        raise UserNotFound(ref)
    return user


def create_user(
    cmd: commands.CreateUser,
    *,
    uow: UnitOfWork,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    clock: Clock,
) -> Created:
    email = Email.parse(cmd.email)
    name = parse_name(cmd.name)
    role = Role.parse(cmd.role)
    password_hash = None
    if cmd.password is not None:
        policy.check(cmd.password, email)
        # Hash before taking the write lock: bcrypt is slow, other writers should not wait on it.
        password_hash = hasher.hash(cmd.password)
    with uow:
        existing = uow.users.get_by_email_key(email.key)
        if existing is not None:
            if cmd.exists_ok:
                return Created(user_view(existing), created=False)
            raise EmailTaken(email.normalized)
        user = User.create(
            email=email,
            name=name,
            role=role,
            is_active=cmd.is_active,
            password_hash=password_hash,
            now=clock(),
        )
        uow.users.add(user)
        uow.commit()
        return Created(user_view(user), created=True)


def update_user(cmd: commands.UpdateUser, *, uow: UnitOfWork, clock: Clock) -> UserView:
    if cmd.email is None and cmd.name is None:
        raise InvalidInput("nothing to update: give --email and/or --name")
    email = Email.parse(cmd.email) if cmd.email is not None else None
    name = parse_name(cmd.name) if cmd.name is not None else None
    with uow:
        user = _load(uow, cmd.ref)
        if email is not None and email.key != user.email.key:
            if uow.users.get_by_email_key(email.key) is not None:
                raise EmailTaken(email.normalized)
        user.update(email=email, name=name, now=clock())
        uow.commit()
        return user_view(user)


def _change(method: Callable[[User], None], ref: str, uow: UnitOfWork) -> UserView:
    with uow:
        user = _load(uow, ref)
        method(user)
        uow.commit()
        return user_view(user)


def activate_user(cmd: commands.ActivateUser, *, uow: UnitOfWork, clock: Clock) -> UserView:
    return _change(lambda user: user.activate(clock()), cmd.ref, uow)


def deactivate_user(cmd: commands.DeactivateUser, *, uow: UnitOfWork, clock: Clock) -> UserView:
    return _change(lambda user: user.deactivate(clock()), cmd.ref, uow)


def set_role(cmd: commands.SetRole, *, uow: UnitOfWork, clock: Clock) -> UserView:
    role = Role.parse(cmd.role)
    return _change(lambda user: user.change_role(role, clock()), cmd.ref, uow)


def change_password(
    cmd: commands.ChangePassword,
    *,
    uow: UnitOfWork,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    clock: Clock,
) -> UserView:
    # The policy needs the user's email; read it first, so that bcrypt runs
    # before the write transaction, not while other writers wait on its lock.
    with uow:
        email = _load(uow, cmd.ref).email
    policy.check(cmd.password, email)
    password_hash = hasher.hash(cmd.password)
    return _change(lambda user: user.set_password_hash(password_hash, clock()), cmd.ref, uow)


def delete_user(cmd: commands.DeleteUser, *, uow: UnitOfWork, clock: Clock) -> UserView:
    with uow:
        user = _load(uow, cmd.ref)
        user.delete(clock())
        uow.users.remove(user)
        uow.commit()
        return user_view(user)


def verify_password(
    cmd: commands.VerifyPassword,
    *,
    views: UserViews,
    hasher: PasswordHasher,
    uow: Callable[[], UnitOfWork],
) -> None:
    """Succeed only for an active user's matching password; every failure looks the same."""
    found = views.credentials(cmd.ref)
    stored = found.password_hash if found else None
    if not hasher.verify(cmd.password, stored) or not found or not found.is_active:
        raise VerificationFailed()
    assert stored is not None  # a match implies a hash
    if hasher.needs_rehash(stored):
        new_hash = hasher.hash(cmd.password)
        try:
            with uow() as work:
                work.users.replace_password_hash(found.user_id, stored, new_hash)
                work.commit()
        except StorageUnavailable:
            pass  # the password matched; upgrading its hash can wait for the next verify


def get_user(query: queries.GetUser, *, views: UserViews) -> UserView:
    user = views.get(query.ref)
    if user is None:
        raise UserNotFound(query.ref)
    return user


def list_users(query: queries.ListUsers, *, views: UserViews) -> queries.Page:
    if query.role is not None:
        Role.parse(query.role)
    if query.page < 1:
        raise InvalidInput("--page must be 1 or more")
    if not 1 <= query.per_page <= queries.MAX_PER_PAGE:
        raise InvalidInput(f"--per-page must be between 1 and {queries.MAX_PER_PAGE}")
    return views.list(query)


def stream_users(query: queries.StreamUsers, *, views: UserViews) -> Iterator[UserView]:
    if query.role is not None:
        Role.parse(query.role)
    return views.iter_all(query)


def list_events(
    query: queries.ListEvents, *, events: EventViews, clock: Clock
) -> list[queries.EventView]:
    if query.type is not None and query.type not in EVENT_TYPES:
        raise InvalidInput(f"invalid --type {query.type!r}: choose one of {', '.join(EVENT_TYPES)}")
    if query.limit < 1:
        raise InvalidInput("--limit must be 1 or more")
    since = parse_since(query.since, clock()) if query.since is not None else None
    return events.list(user=query.user, type=query.type, since=since, limit=query.limit)
