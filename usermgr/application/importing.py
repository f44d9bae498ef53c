"""Bulk import: check every row, then write them all in one transaction, or none."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from usermgr.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgr.domain.model import User
from usermgr.domain.values import (
    Email,
    PasswordPolicy,
    Role,
    parse_name,
    parse_timestamp,
)
from usermgr.errors import InvalidInput, InvalidRows, RowsConflict

COLUMNS = (
    "email",
    "name",
    "role",
    "is_active",
    "password",
    "password_hash",
    "id",
    "created_at",
    "updated_at",
)
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True, slots=True)
class Record:
    """One row as read from the file: its line number and raw values, or why the
    reader could not make values of it."""

    line: int
    values: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImportUsers:
    records: list[Record] = field(repr=False)
    exists_ok: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class ImportSummary:
    created: int
    existed: int
    dry_run: bool


@dataclass(slots=True)
class _Row:
    line: int
    email: Email
    name: str
    role: Role
    is_active: bool
    password: str | None
    password_hash: str | None
    id: str | None
    created_at: Any
    updated_at: Any


def _text(values: dict[str, Any], column: str) -> str | None:
    value = values.get(column)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        shown = "" if column in ("password", "password_hash") else f", not {value!r}"
        raise InvalidInput(f"{column} must be text{shown}")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in BOOLEANS:
        return BOOLEANS[value.lower()]
    raise InvalidInput(f"is_active must be true/false, 1/0 or yes/no, not {value!r}")


def _row(record: Record, policy: PasswordPolicy) -> _Row:
    if record.error is not None:
        raise InvalidInput(record.error)
    values = record.values
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        raise InvalidInput(f"unknown column {unknown[0]!r}")
    raw_email, raw_name = _text(values, "email"), _text(values, "name")
    if raw_email is None or raw_name is None:
        raise InvalidInput("email and name are required")
    email = Email.parse(raw_email)
    password, password_hash = _text(values, "password"), _text(values, "password_hash")
    if password is not None and password_hash is not None:
        raise InvalidInput("give password or password_hash, not both")
    if password is not None:
        policy.check(password, email)
    if password_hash is not None and not BCRYPT_HASH.fullmatch(password_hash):
        raise InvalidInput("password_hash is not a well-formed bcrypt hash")
    user_id = _text(values, "id")
    if user_id is not None:
        try:
            user_id = str(uuid.UUID(user_id))
        except ValueError:
            raise InvalidInput(f"id {user_id!r} is not a UUID") from None
    active = values.get("is_active")
    return _Row(
        line=record.line,
        email=email,
        name=parse_name(raw_name),
        role=Role.parse(_text(values, "role") or "user"),
        is_active=True if active in (None, "") else _boolean(active),
        password=password,
        password_hash=password_hash,
        id=user_id,
        created_at=_timestamp(values, "created_at"),
        updated_at=_timestamp(values, "updated_at"),
    )


def _timestamp(values: dict[str, Any], column: str) -> Any:
    text = _text(values, column)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        raise InvalidInput(f"{column} {text!r} is not an ISO 8601 time with a time zone") from None


def _check(records: list[Record], policy: PasswordPolicy) -> list[_Row]:
    rows: list[_Row] = []
    errors: list[str] = []
    first_line_of: dict[str, int] = {}
    for record in records:
        try:
            row = _row(record, policy)
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


def _new_rows(rows: list[_Row], uow: UnitOfWork, exists_ok: bool) -> list[_Row]:
    """The rows whose users do not exist yet; conflicts are errors unless exists_ok
    and the row's email (with its id, if given) is already there."""
    taken_keys, taken_ids = uow.users.existing(
        [r.email.key for r in rows], [r.id for r in rows if r.id]
    )
    new: list[_Row] = []
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
        raise RowsConflict(conflicts)
    return new


def import_users(
    cmd: ImportUsers,
    *,
    uow: UnitOfWork,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    clock: Clock,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    rows = _check(cmd.records, policy)
    with uow:
        new = _new_rows(rows, uow, cmd.exists_ok)
    if cmd.dry_run:
        return ImportSummary(created=len(new), existed=len(rows) - len(new), dry_run=True)
    # Hash outside the write lock, every core at once (bcrypt releases the GIL).
    plain = [r for r in new if r.password is not None]
    for row, hashed in zip(plain, hasher.hash_many([r.password for r in plain], progress), strict=True):
        row.password_hash = hashed
    with uow:
        # Another writer may have come in while we hashed: check again under the lock.
        new = _new_rows(new, uow, cmd.exists_ok)
        now = clock()
        users = []
        for row in new:
            user = User.create(
                id=row.id,
                email=row.email,
                name=row.name,
                role=row.role,
                is_active=row.is_active,
                password_hash=row.password_hash,
                now=now,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            users.append(user)
        uow.users.add_all(users)
        uow.commit()
    return ImportSummary(created=len(users), existed=len(rows) - len(users), dry_run=False)
