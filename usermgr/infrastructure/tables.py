"""SQLModel rows for the write side. The schema itself is made by sqlite.MIGRATIONS."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class UserRow(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True)
    email: str
    email_key: str = Field(unique=True)
    name: str
    role: str
    is_active: bool
    password_hash: str | None = None
    created_at: str
    updated_at: str | None = None
    name_key: str | None = None


class EventRow(SQLModel, table=True):
    __tablename__ = "events"

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True)
    type: str
    user_id: str
    email_key: str
    occurred_at: str
    actor: str
    data: str


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "deliveries"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(foreign_key="events.id")
    command: str
    timeout: float
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: str | None = None
    claimed_until: str | None = None
