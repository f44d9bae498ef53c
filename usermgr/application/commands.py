"""Commands: what a caller wants done, with raw inputs. Handlers validate them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class CreateUser:
    email: str
    name: str
    role: str = "user"
    is_active: bool = True
    password: str | None = field(default=None, repr=False)
    exists_ok: bool = False


@dataclass(frozen=True, kw_only=True)
class UpdateUser:
    ref: str
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class ActivateUser:
    ref: str


@dataclass(frozen=True, kw_only=True)
class DeactivateUser:
    ref: str


@dataclass(frozen=True, kw_only=True)
class SetRole:
    ref: str
    role: str


@dataclass(frozen=True, kw_only=True)
class ChangePassword:
    ref: str
    password: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class VerifyPassword:
    ref: str
    password: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class DeleteUser:
    ref: str
