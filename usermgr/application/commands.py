"""Commands: what a caller wants done, with raw inputs. Handlers validate them.

A command that may bring a new database into being says so with `creates_storage`;
for the others a missing database reads as empty, and their failure leaves no file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from usermgr.application.importing import Record


@dataclass(frozen=True, kw_only=True)
class CreateUser:
    email: str
    name: str
    role: str = "user"
    is_active: bool = True
    password: str | None = field(default=None, repr=False)
    exists_ok: bool = False

    creates_storage: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class UpdateUser:
    ref: str
    email: str | None = None
    name: str | None = None

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class ActivateUser:
    ref: str

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class DeactivateUser:
    ref: str

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class SetRole:
    ref: str
    role: str

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class ChangePassword:
    ref: str
    password: str = field(repr=False)

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class VerifyPassword:
    """A login check; a match whose hash has another cost re-hashes it (no event)."""

    ref: str
    password: str = field(repr=False)

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class DeleteUser:
    ref: str

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class RetryDeliveries:
    """Run every pending delivery again, oldest first, with the hooks configured now."""

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class DiscardDeliveries:
    delivery_id: int | None  # None: every one

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class BackupStorage:
    target: Path
    force: bool = False

    creates_storage: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class UpgradeStorage:
    """Apply migrations, creating a missing database."""

    creates_storage: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class ImportUsers:
    """Add users in bulk: every row checked first, then all written in one transaction, or none."""

    records: Iterable[Record] = field(repr=False)
    header: Sequence[str] | None = None  # a CSV file's columns, checked once
    exists_ok: bool = False
    dry_run: bool = False

    @property
    def creates_storage(self) -> bool:
        return not self.dry_run


@dataclass(frozen=True, kw_only=True)
class ApplyUsers:
    """Make the users match a desired list, printing the plan first."""

    records: Iterable[Record] = field(repr=False)
    header: Sequence[str] | None = None
    prune: str | None = None  # "deactivate" or "delete": what happens to active users not in the file
    update_passwords: bool = False
    check: bool = False  # plan only

    @property
    def creates_storage(self) -> bool:
        return not self.check
