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
