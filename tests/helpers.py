"""Helpers shared by test modules (no fixtures: those live in conftest.py)."""

from __future__ import annotations

from usermgr.infrastructure.storage.schema import MIGRATIONS, PerEngine


def sqlite_migration(number: int) -> list[str]:
    """The SQL statements of one shipped migration, as SQLite runs them (Python steps left out)."""
    statements: list[str] = []
    for step in MIGRATIONS[number]:
        if isinstance(step, str):
            statements.append(step)
        elif isinstance(step, PerEngine):
            statements.extend(step.statements("sqlite"))
    return statements
