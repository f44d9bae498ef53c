"""The composition root: the one place that names concrete adapters."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any

from usermgr.application import commands, handlers, queries
from usermgr.application.bus import EventBus
from usermgr.application.ports import Clock, PasswordHasher, UnitOfWork, UserViews
from usermgr.domain.values import PasswordPolicy
from usermgr.infrastructure.config import Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def report_to_stderr(line: str) -> None:
    print(f"usermgr: {line}", file=sys.stderr)


class Services:
    """Runs commands and queries. Storage is opened only when a message needs it,
    so a read never loads the ORM and `--help` loads nothing."""

    def __init__(
        self,
        *,
        uow: Callable[[], UnitOfWork],
        views: Callable[[], UserViews],
        hasher: PasswordHasher,
        clock: Clock,
        bus: EventBus,
        policy: PasswordPolicy,
    ) -> None:
        self.bus = bus
        self._uow = uow
        self._views = views
        self._command_handlers: dict[type, Callable[..., Any]] = {
            commands.CreateUser: partial(
                handlers.create_user, hasher=hasher, policy=policy, clock=clock
            ),
            commands.UpdateUser: partial(handlers.update_user, clock=clock),
            commands.ActivateUser: partial(handlers.activate_user, clock=clock),
            commands.DeactivateUser: partial(handlers.deactivate_user, clock=clock),
            commands.SetRole: partial(handlers.set_role, clock=clock),
            commands.ChangePassword: partial(
                handlers.change_password, hasher=hasher, policy=policy, clock=clock
            ),
            commands.DeleteUser: partial(handlers.delete_user, clock=clock),
        }
        self._query_handlers: dict[type, Callable[..., Any]] = {
            queries.GetUser: handlers.get_user,
            queries.ListUsers: handlers.list_users,
            commands.VerifyPassword: partial(handlers.verify_password, hasher=hasher, uow=uow),
        }

    def handle(self, message: object) -> Any:
        if type(message) in self._query_handlers:
            return self._query_handlers[type(message)](message, views=self._views())
        uow = self._uow()
        result = self._command_handlers[type(message)](message, uow=uow)
        self.bus.publish(uow.collect_new_events())
        return result

    def views(self) -> UserViews:
        return self._views()


def build(
    settings: Settings,
    *,
    uow: UnitOfWork | None = None,
    views: UserViews | None = None,
    hasher: PasswordHasher | None = None,
    clock: Clock | None = None,
    report: Callable[[str], None] = report_to_stderr,
) -> Services:
    def make_uow() -> UnitOfWork:
        if uow is not None:
            return uow
        from usermgr.infrastructure.repository import SqlUnitOfWork

        return SqlUnitOfWork(settings.db_path, settings.busy_timeout)

    opened: list[UserViews] = [views] if views is not None else []

    def make_views() -> UserViews:
        if not opened:
            from usermgr.infrastructure.views import SqliteUserViews

            opened.append(SqliteUserViews(settings.db_path, settings.busy_timeout))
        return opened[0]

    if hasher is None:
        from usermgr.infrastructure.hashing import BcryptHasher

        hasher = BcryptHasher(settings.bcrypt_rounds)

    bus = EventBus(report)
    return Services(
        uow=make_uow,
        views=make_views,
        hasher=hasher,
        clock=clock or utc_now,
        bus=bus,
        policy=PasswordPolicy(settings.min_password_length),
    )
