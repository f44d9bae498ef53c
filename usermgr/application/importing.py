"""Bulk import: check every row, then write them all in one transaction, or none.

The row checks here are the one place a file of users is validated: `apply` reads
the same columns through `check_rows`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from usermgr.application.commands import ImportUsers
from usermgr.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgr.domain.model import User
from usermgr.domain.values import Email, Policy, Role, parse_name, parse_timestamp
from usermgr.errors import InvalidInput, InvalidRows, RowsConflict

COLUMNS = ("email", "name", "role", "is_active", "password", "password_hash", "id", "created_at", "updated_at")
REQUIRED = ("email", "name")
KEPT_FROM_ELSEWHERE = ("id", "created_at", "updated_at")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
MIN_HASH_COST = 4
MAX_HASH_COST = 16  # or the configured bcrypt_rounds, if higher: a verify at cost 31 runs for days


@dataclass(frozen=True, slots=True)
class Record:
    """One row as read from the file: its line number and raw values, or why the
    reader could not make values of it."""

    line: int
    values: dict[str, Any]
    error: str | None = None


@dataclass(slots=True)
class Row:
    """A checked row; None means the file left that cell empty."""

    line: int
    email: Email
    name: str
    role: Role | None
    is_active: bool | None
    password: str | None
    password_hash: str | None
    id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ImportSummary:
    created: int
    existed: int
    dry_run: bool


def check_columns(names: Sequence[str], allowed: Sequence[str] = COLUMNS, *, header: bool = True) -> None:
    """A file's header (or one JSON object's keys): every column known, and a header
    has the required ones (a row without them fails its value check instead)."""
    for name in names:
        if name not in allowed:
            if name in COLUMNS:
                raise InvalidInput(f"column {name!r} is not allowed here; use {', '.join(allowed)}")
            raise InvalidInput(f"unknown column {name!r}; known: {', '.join(allowed)}")
    missing = [name for name in REQUIRED if name not in names]
    if header and missing:
        raise InvalidInput(f"missing column {missing[0]!r}")


def _text(values: dict[str, Any], column: str) -> str | None:
    value = values.get(column)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        shown = "" if column in ("password", "password_hash") else f", not {value!r}"
        raise InvalidInput(f"{column} must be text{shown}")
    return value


def _boolean(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in BOOLEANS:
        return BOOLEANS[value.lower()]
    raise InvalidInput(f"is_active must be true/false, 1/0 or yes/no, not {value!r}")


def _timestamp(values: dict[str, Any], column: str) -> datetime | None:
    text = _text(values, column)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        raise InvalidInput(f"{column} {text!r} is not an ISO 8601 time with a time zone") from None


def _uuid(values: dict[str, Any]) -> str | None:
    user_id = _text(values, "id")
    if user_id is None:
        return None
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        raise InvalidInput(f"id {user_id!r} is not a UUID") from None


class RowChecker:
    """Checks one record at a time against the policy and the hasher's formats."""

    def __init__(self, policy: Policy, hasher: PasswordHasher, allowed: Sequence[str], header_checked: bool) -> None:
        self._policy = policy
        self._hasher = hasher
        self._allowed = allowed
        self._header_checked = header_checked
        self._max_cost = max(MAX_HASH_COST, hasher.rounds)

    def __call__(self, record: Record) -> Row:
        if record.error is not None:
            raise InvalidInput(record.error)
        values = record.values
        if not self._header_checked:
            check_columns(list(values), self._allowed, header=False)
        raw_email, raw_name = _text(values, "email"), _text(values, "name")
        if raw_email is None or raw_name is None:
            raise InvalidInput("email and name are required")
        email = self._policy.email(raw_email)
        password, password_hash = _text(values, "password"), _text(values, "password_hash")
        if password is not None and password_hash is not None:
            raise InvalidInput("give password or password_hash, not both")
        if password is not None:
            self._policy.check_password(password, email)
        if password_hash is not None:
            self._check_hash(password_hash)
        role = _text(values, "role")
        return Row(
            line=record.line,
            email=email,
            name=parse_name(raw_name),
            role=Role.parse(role) if role is not None else None,
            is_active=_boolean(values.get("is_active")),
            password=password,
            password_hash=password_hash,
            id=_uuid(values),
            created_at=_timestamp(values, "created_at"),
            updated_at=_timestamp(values, "updated_at"),
        )

    def _check_hash(self, password_hash: str) -> None:
        info = self._hasher.inspect(password_hash)
        if not info.well_formed or info.cost is None:
            raise InvalidInput("password_hash is not a well-formed bcrypt hash ($2a$, $2b$ or $2y$)")
        if not MIN_HASH_COST <= info.cost <= self._max_cost:
            raise InvalidInput(
                f"password_hash has cost {info.cost}: usermgr takes {MIN_HASH_COST} to {self._max_cost}"
                " (a verify at a higher cost would take hours or days)"
            )


def check_rows(
    records: list[Record],
    *,
    policy: Policy,
    hasher: PasswordHasher,
    header: Sequence[str] | None = None,
    allowed: Sequence[str] = COLUMNS,
) -> list[Row]:
    """Every record checked, or InvalidRows with one `line N: why` per bad one; an email
    (or id) twice in the file is an error on its second line."""
    if header is not None:
        check_columns(header, allowed)
    check = RowChecker(policy, hasher, allowed, header_checked=header is not None)
    rows: list[Row] = []
    errors: list[str] = []
    first_line_of: dict[str, int] = {}
    for record in records:
        try:
            row = check(record)
        except InvalidInput as e:
            errors.append(f"line {record.line}: {e}")
            continue
        for key, what in ((row.email.key, "email"), (row.id, "id")):
            if key is None:
                continue
            seen = first_line_of.setdefault(f"{what}:{key}", row.line)
            if seen != row.line:
                errors.append(f"line {row.line}: {what} {key!r} is also on line {seen}")
                break
        else:
            rows.append(row)
    if errors:
        raise InvalidRows(errors)
    return rows


def _new_rows(rows: list[Row], uow: UnitOfWork, exists_ok: bool) -> list[Row]:
    """The rows whose users do not exist yet; conflicts are errors unless exists_ok
    and the row's email (with its id, if given) is already there."""
    taken_keys, taken_ids = uow.users.existing([r.email.key for r in rows], [r.id for r in rows if r.id])
    new: list[Row] = []
    conflicts: list[str] = []
    for row in rows:
        if row.id in taken_ids and taken_ids[row.id] != row.email.key:
            conflicts.append(f"line {row.line}: id {row.id} belongs to another user")
        elif row.email.key in taken_keys:
            if not exists_ok:
                conflicts.append(f"line {row.line}: email {row.email.normalized!r} already exists")
        else:
            new.append(row)
    if conflicts:
        email_clash = any("already exists" in c for c in conflicts)
        hint = " (--exists-ok skips existing emails)" if email_clash and not exists_ok else ""
        raise RowsConflict(conflicts, hint=hint)
    return new


def new_user(row: Row, now: datetime) -> User:
    return User.create(
        id=row.id,
        email=row.email,
        name=row.name,
        role=row.role or Role.USER,
        is_active=True if row.is_active is None else row.is_active,
        password_hash=row.password_hash,
        now=now,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def hash_passwords(rows: list[Row], hasher: PasswordHasher, progress: Callable[[int, int], None] | None) -> None:
    """Hash the rows' plain passwords on every core at once (bcrypt releases the GIL)."""
    plain = [r for r in rows if r.password is not None]
    hashes = hasher.hash_many([r.password for r in plain if r.password is not None], progress)
    for row, hashed in zip(plain, hashes, strict=True):
        row.password_hash = hashed


def import_users(
    cmd: ImportUsers,
    *,
    uow: UnitOfWork,
    hasher: PasswordHasher,
    policy: Policy,
    clock: Clock,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    rows = check_rows(cmd.records, policy=policy, hasher=hasher, header=cmd.header)
    with uow:
        new = _new_rows(rows, uow, cmd.exists_ok)
    if cmd.dry_run:
        return ImportSummary(created=len(new), existed=len(rows) - len(new), dry_run=True)
    # Hash outside the write lock, so other writers need not wait on bcrypt.
    hash_passwords(new, hasher, progress)
    with uow:
        # Another writer may have come in while we hashed: check again under the lock.
        new = _new_rows(new, uow, cmd.exists_ok)
        now = clock()
        users = [new_user(row, now) for row in new]
        uow.users.add_all(users)
        uow.commit()
    return ImportSummary(created=len(users), existed=len(rows) - len(users), dry_run=False)

