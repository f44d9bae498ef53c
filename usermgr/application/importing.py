"""Bulk import: check every row, then write them all in one transaction, or none.

The row checks here are the one place a file of users is validated: `apply` reads
the same columns through `check_rows`."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from usermgr.application.commands import ImportUsers
from usermgr.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgr.domain.model import User
from usermgr.domain.values import Email, Policy, Role, parse_name, parse_timestamp
from usermgr.errors import InvalidInput, InvalidRows, RowsConflict

BATCH = 5000

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
    name: str | None  # None only from apply, for a user who exists
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
    if len(set(names)) != len(names):
        twice = next(name for n, name in enumerate(names) if name in names[:n])
        raise InvalidInput(f"column {twice!r} is given twice")
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

    def __init__(
        self, policy: Policy, hasher: PasswordHasher, allowed: Sequence[str], header_checked: bool, name_required: bool
    ) -> None:
        self._name_required = name_required
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
        if raw_email is None or (raw_name is None and self._name_required):
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
            name=parse_name(raw_name) if raw_name is not None else None,
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


class RowCheck:
    """Checks a file's records one at a time: each bad one becomes a `line N: why`, and
    an email (or id) seen before in the file is an error on its second line."""

    def __init__(
        self,
        policy: Policy,
        hasher: PasswordHasher,
        header: Sequence[str] | None,
        allowed: Sequence[str] = COLUMNS,
        *,
        name_required: bool = True,
    ) -> None:
        if header is not None:
            check_columns(header, allowed)
        self._check = RowChecker(policy, hasher, allowed, header is not None, name_required)
        self.errors: list[str] = []
        self._lines_of_emails: dict[str, int] = {}
        self._lines_of_ids: dict[str, int] = {}

    def __call__(self, record: Record) -> Row | None:
        try:
            row = self._check(record)
        except InvalidInput as e:
            self.errors.append(f"line {record.line}: {e}")
            return None
        seen = self._lines_of_emails.setdefault(row.email.key, row.line)
        if seen != row.line:
            self.errors.append(f"line {row.line}: email {row.email.key!r} is also on line {seen}")
            return None
        if row.id is not None:
            seen = self._lines_of_ids.setdefault(row.id, row.line)
            if seen != row.line:
                self.errors.append(f"line {row.line}: id {row.id!r} is also on line {seen}")
                return None
        return row

    def finish(self) -> None:
        if self.errors:
            raise InvalidRows(self.errors)


def check_rows(
    records: Iterable[Record],
    *,
    policy: Policy,
    hasher: PasswordHasher,
    header: Sequence[str] | None = None,
    allowed: Sequence[str] = COLUMNS,
    name_required: bool = True,
) -> list[Row]:
    """Every record checked, or InvalidRows with one `line N: why` per bad one.
    Without `name_required`, an empty name cell is None (apply: leave the name as it is)."""
    check = RowCheck(policy, hasher, header, allowed, name_required=name_required)
    rows = [row for row in map(check, records) if row is not None]
    check.finish()
    return rows


class Spool:
    """Checked rows kept on disk in batches (a private temporary file, gone when
    closed), so that an import of a million rows holds one batch in memory. Plain
    passwords never go to disk: they stay in memory until hashed, by line."""

    def __init__(self) -> None:
        import tempfile

        self._file = tempfile.TemporaryFile()
        self._batch: list[tuple[Any, ...]] = []
        self.rows = 0
        self.passwords: dict[int, str] = {}
        self.hashes: dict[int, str] = {}  # of those passwords, once hashed

    def add(self, row: Row) -> None:
        if row.password is not None:
            self.passwords[row.line] = row.password
        self._batch.append(
            (
                row.line,
                row.email.normalized,
                row.name,
                row.role.value if row.role else None,
                row.is_active,
                row.password_hash,
                row.id,
                row.created_at,
                row.updated_at,
            )
        )
        self.rows += 1
        if len(self._batch) >= BATCH:
            self._dump()

    def _dump(self) -> None:
        if self._batch:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def batches(self) -> Iterator[list[Row]]:
        """The rows back, in file order, one batch at a time."""
        self._dump()
        self._file.seek(0)
        while True:
            try:
                batch = pickle.load(self._file)  # our own private file, written just now
            except EOFError:
                return
            yield [
                Row(
                    line,
                    Email(email),
                    name,
                    Role(role) if role else None,
                    active,
                    self.passwords.get(line),
                    self.hashes.get(line, password_hash),
                    id_,
                    created,
                    updated,
                )
                for line, email, name, role, active, password_hash, id_, created, updated in batch
            ]

    def close(self) -> None:
        self._file.close()


def _new_rows(rows: list[Row], uow: UnitOfWork, exists_ok: bool) -> tuple[list[Row], list[str]]:
    """The rows whose users do not exist yet, and the conflicts: an existing email is one
    unless exists_ok, an id that belongs to another user's email always is."""
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
    return new, conflicts


def _refuse(conflicts: list[str], exists_ok: bool) -> None:
    if conflicts:
        email_clash = any("already exists" in c for c in conflicts)
        hint = " (--exists-ok skips existing emails)" if email_clash and not exists_ok else ""
        raise RowsConflict(conflicts, hint=hint)


def new_user(row: Row, now: datetime) -> User:
    assert row.name is not None, "a new user's row always has a name"
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
    check = RowCheck(policy, hasher, cmd.header)
    spool = Spool()
    try:
        for row in map(check, cmd.records):
            if row is not None and not check.errors:
                spool.add(row)
        check.finish()
        if cmd.dry_run or spool.passwords:
            # Before any bcrypt work: would these rows go in?
            new = 0
            with uow:
                for batch in spool.batches():
                    fresh, conflicts = _new_rows(batch, uow, cmd.exists_ok)
                    _refuse(conflicts, cmd.exists_ok)
                    new += len(fresh)
            if cmd.dry_run:
                return ImportSummary(created=new, existed=spool.rows - new, dry_run=True)
        # Hash outside the write lock, so other writers need not wait on bcrypt.
        lines = list(spool.passwords)
        spool.hashes = dict(zip(lines, hasher.hash_many([spool.passwords[n] for n in lines], progress), strict=True))
        created = _write(spool, uow, clock, cmd.exists_ok)
        return ImportSummary(created=created, existed=spool.rows - created, dry_run=False)
    finally:
        spool.close()


def _write(spool: Spool, uow: UnitOfWork, clock: Clock, exists_ok: bool) -> int:
    """Every new user, batch by batch, in one transaction; conflicts (another writer may
    have come in meanwhile) are all found and reported, and then nothing is written."""
    created = 0
    conflicts: list[str] = []
    with uow:
        now = clock()
        for batch in spool.batches():
            fresh, found = _new_rows(batch, uow, exists_ok)
            conflicts += found
            if conflicts:
                continue
            uow.users.add_all([new_user(row, now) for row in fresh])
            uow.flush()
            created += len(fresh)
        _refuse(conflicts, exists_ok)
        uow.commit()
    return created
