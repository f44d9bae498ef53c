"""apply: make the users match a desired list. A pure planner turns the file's rows and
the current users into a list of changes; the handler computes that plan inside the
write transaction and carries it out through the entity's own methods, so what is
printed is exactly what happened, with the same events as the single commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from usermgr.application.commands import ApplyUsers
from usermgr.application.importing import COLUMNS, KEPT_FROM_ELSEWHERE, Row, check_rows, hash_passwords, new_user
from usermgr.application.ports import Clock, CurrentUser, PasswordHasher, UnitOfWork
from usermgr.domain.model import User
from usermgr.domain.values import Policy, Role
from usermgr.errors import InvalidInput, InvalidRows

APPLY_COLUMNS = tuple(c for c in COLUMNS if c not in KEPT_FROM_ELSEWHERE)
PRUNE = ("deactivate", "delete")
# The order of a user's changes in a plan, and the words of the summary line.
ACTIONS = {
    "create": "created",
    "update": "updated",
    "set-role": "role changed",
    "activate": "activated",
    "deactivate": "deactivated",
    "passwd": "password changed",
    "delete": "deleted",
}


@dataclass(frozen=True)
class Change:
    action: str
    email: str
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    user_id: str | None = None  # None: a user to create
    row: Row | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Plan:
    changes: list[Change]
    applied: bool

    def summary(self) -> str:
        counts = {action: 0 for action in ACTIONS}
        for change in self.changes:
            counts[change.action] += 1
        said = [f"{ACTIONS[action]} {n}" for action, n in counts.items() if n]
        return ", ".join(said) if said else "no changes"


PasswordCheck = Callable[[Row, CurrentUser], bool]
"""Whether a row's password (or hash) differs from the one stored: True means a passwd."""


def plan(
    rows: Iterable[Row],
    current: Iterable[CurrentUser],
    *,
    prune: str | None = None,
    password_differs: PasswordCheck | None = None,
) -> list[Change]:
    """The changes that make `current` match `rows`: a pure function of its inputs.

    Rows match users by email key; a cell left empty leaves that field as it is, and a
    new user without a name is an InvalidRows error, as a bad row is.
    `password_differs` is given only with --update-passwords."""
    by_key = {user.email_key: user for user in current}
    changes: list[Change] = []
    wanted: set[str] = set()
    nameless: list[str] = []
    for row in rows:
        wanted.add(row.email.key)
        user = by_key.get(row.email.key)
        if user is None:
            if row.name is None:
                nameless.append(f"line {row.line}: name is required to create {row.email.normalized}")
            changes.append(Change("create", row.email.normalized, row=row))
            continue
        email = user.email
        if row.name is not None and row.name != user.name:
            changes.append(Change("update", email, {"name": (user.name, row.name)}, user.id, row))
        if row.role is not None and row.role.value != user.role:
            changes.append(Change("set-role", email, {"role": (user.role, row.role.value)}, user.id, row))
        if row.is_active is not None and row.is_active != user.is_active:
            action = "activate" if row.is_active else "deactivate"
            changes.append(Change(action, email, {"is_active": (user.is_active, row.is_active)}, user.id, row))
        has_password = row.password is not None or row.password_hash is not None
        if password_differs is not None and has_password and password_differs(row, user):
            changes.append(Change("passwd", email, {}, user.id, row))
    if prune is not None:
        leaving = sorted((u for u in by_key.values() if u.email_key not in wanted and u.is_active), key=lambda u: u.email_key)
        for user in leaving:
            if prune == "delete":
                changes.append(Change("delete", user.email, {}, user.id))
            else:
                changes.append(Change("deactivate", user.email, {"is_active": (True, False)}, user.id))
    if nameless:
        raise InvalidRows(nameless)
    return changes


class PasswordChecks:
    """--update-passwords: a differing hash is a change; a password is one unless it
    verifies. Verdicts are computed once, before the write lock, on every core."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._verdicts: dict[tuple[str, str | None], bool] = {}

    def _key(self, row: Row, user: CurrentUser) -> tuple[str, str | None]:
        return row.email.key, user.password_hash

    def prepare(self, rows: Iterable[Row], current: Iterable[CurrentUser]) -> None:
        by_key = {user.email_key: user for user in current}
        pending = [(row, by_key[row.email.key]) for row in rows if row.password is not None and row.email.key in by_key]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor() as pool:  # bcrypt releases the GIL
            verdicts = pool.map(lambda pair: not self._verifies(*pair), pending)
            for (row, user), verdict in zip(pending, verdicts, strict=True):
                self._verdicts[self._key(row, user)] = verdict

    def _verifies(self, row: Row, user: CurrentUser) -> bool:
        assert row.password is not None
        return user.password_hash is not None and self._hasher.verify(row.password, user.password_hash)

    def __call__(self, row: Row, user: CurrentUser) -> bool:
        if row.password is None:  # the file gave a hash
            return row.password_hash != user.password_hash
        key = self._key(row, user)
        if key not in self._verdicts:  # the stored hash changed since prepare()
            self._verdicts[key] = not self._verifies(row, user)
        return self._verdicts[key]


def apply_users(
    cmd: ApplyUsers,
    *,
    uow: UnitOfWork,
    hasher: PasswordHasher,
    policy: Policy,
    clock: Clock,
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    if cmd.prune is not None and cmd.prune not in PRUNE:
        raise InvalidInput(f"invalid prune {cmd.prune!r}: choose deactivate or delete")
    rows = check_rows(
        cmd.records, policy=policy, hasher=hasher, header=cmd.header, allowed=APPLY_COLUMNS, name_required=False
    )
    if not rows and cmd.prune is not None:
        # An HR export that failed and wrote nothing must not lock everyone out.
        raise InvalidInput(f"the file lists no users: --prune would {cmd.prune} every active user; nothing was changed")
    checks = PasswordChecks(hasher) if cmd.update_passwords else None
    with uow:
        current = uow.users.current()
    if checks is not None:
        checks.prepare(rows, current)
    if cmd.check:
        return Plan(plan(rows, current, prune=cmd.prune, password_differs=checks), applied=False)
    # Hash outside the lock the passwords the plan will most likely need.
    early = plan(rows, current, prune=cmd.prune, password_differs=checks)
    needed = [c.row for c in early if c.row is not None and c.action in ("create", "passwd")]
    del early, current  # the plan under the lock reads the users again: hold one copy at a time
    hash_passwords(needed, hasher, progress)
    with uow:
        # The plan that is carried out is computed here, under the write lock.
        changes = plan(rows, uow.users.current(), prune=cmd.prune, password_differs=checks)
        _carry_out(changes, uow, hasher, clock)
        uow.commit()
    return Plan(changes, applied=True)


def _carry_out(changes: list[Change], uow: UnitOfWork, hasher: PasswordHasher, clock: Clock) -> None:
    """Each change through the entity's own method, in plan order, so the events are
    written in the order the plan printed them (new users go in by runs, as a batch)."""
    now = clock()
    created: list[User] = []
    for change in changes:
        row = change.row
        if row is not None and change.action in ("create", "passwd") and row.password is not None and row.password_hash is None:
            row.password_hash = hasher.hash(row.password)  # needed only because another writer came in
        if change.action == "create":
            assert row is not None
            created.append(new_user(row, now))
            continue
        if created:
            uow.users.add_all(created)
            created = []
        assert change.user_id is not None
        user = uow.users.get(change.user_id)
        assert user is not None  # the plan was made in this transaction
        if change.action == "update":
            user.update(name=change.changes["name"][1], now=now)
        elif change.action == "set-role":
            user.change_role(Role(change.changes["role"][1]), now)
        elif change.action == "activate":
            user.activate(now)
        elif change.action == "deactivate":
            user.deactivate(now)
        elif change.action == "passwd":
            assert row is not None
            user.set_password_hash(row.password_hash, now)
        elif change.action == "delete":
            user.delete(now)
            uow.users.remove(user)
    uow.users.add_all(created)
