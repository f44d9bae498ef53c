"""The composition root: the one place that names concrete adapters."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from usermgr.application import commands, handlers, importing, queries
from usermgr.application.bus import EventBus
from usermgr.application.ports import (
    Clock,
    EventViews,
    PasswordHasher,
    UnitOfWork,
    UserViews,
)
from usermgr.domain.events import Event
from usermgr.domain.values import PasswordPolicy
from usermgr.infrastructure.config import Settings, current_actor

if TYPE_CHECKING:
    from usermgr.infrastructure.hooks import HookDispatcher
    from usermgr.infrastructure.sqlite import Database


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def report_to_stderr(line: str) -> None:
    print(f"usermgr: {line}", file=sys.stderr)


class Services:
    """Runs commands and queries. Adapters are built on first use, so a read never
    loads the ORM, and nothing touches the database before a command needs it."""

    def __init__(
        self,
        settings: Settings,
        *,
        uow: Callable[[bool], UnitOfWork],
        hasher: PasswordHasher,
        clock: Clock,
        report: Callable[[str], None],
        views: UserViews | None = None,
        events: EventViews | None = None,
    ) -> None:
        self.settings = settings
        self.report = report
        self.bus = EventBus(report)
        self._uow = uow
        if views is not None:
            self.views = views
        if events is not None:
            self.events = events
        policy = PasswordPolicy(settings.min_password_length)
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
            importing.ImportUsers: partial(
                importing.import_users, hasher=hasher, policy=policy, clock=clock
            ),
        }
        self._query_handlers: dict[type, Callable[[Any], Any]] = {
            queries.GetUser: lambda q: handlers.get_user(q, views=self.views),
            queries.ListUsers: lambda q: handlers.list_users(q, views=self.views),
            queries.StreamUsers: lambda q: handlers.stream_users(q, views=self.views),
            queries.ExportUsers: lambda q: self.views.export(q.include_hashes),
            queries.ListEvents: lambda q: handlers.list_events(q, events=self.events, clock=clock),
            commands.VerifyPassword: lambda c: handlers.verify_password(
                c, views=self.views, hasher=hasher, uow=uow
            ),
        }

    def handle(self, message: object, **options: Any) -> Any:
        """Run a message's handler; `options` reach a command handler as keywords."""
        if type(message) in self._query_handlers:
            return self._query_handlers[type(message)](message)
        adds_users = isinstance(message, commands.CreateUser) or (
            isinstance(message, importing.ImportUsers) and not message.dry_run
        )
        uow = self._uow(adds_users)
        result = self._command_handlers[type(message)](message, uow=uow, **options)
        self.bus.publish(uow.collect_new_events())
        return result

    def run_hooks(self, event: Event) -> None:
        self.hooks(event)

    @cached_property
    def database(self) -> Database:
        from usermgr.infrastructure.sqlite import Database

        return Database(self.settings.db_path, self.settings.busy_timeout)

    @cached_property
    def views(self) -> UserViews:
        from usermgr.infrastructure.views import SqliteUserViews

        return SqliteUserViews(self.database)

    @cached_property
    def events(self) -> EventViews:
        from usermgr.infrastructure.views import SqliteEventViews

        return SqliteEventViews(self.database)

    @cached_property
    def hooks(self) -> HookDispatcher:
        from usermgr.infrastructure.hooks import DeliveryStore, HookDispatcher

        return HookDispatcher(DeliveryStore(self.database), self.report)


def build(
    settings: Settings,
    *,
    uow: UnitOfWork | None = None,
    views: UserViews | None = None,
    events: EventViews | None = None,
    hasher: PasswordHasher | None = None,
    clock: Clock | None = None,
    report: Callable[[str], None] = report_to_stderr,
) -> Services:
    def make_uow(create: bool = False) -> UnitOfWork:
        if uow is not None:
            return uow
        from usermgr.infrastructure.repository import SqlUnitOfWork

        return SqlUnitOfWork(
            settings.db_path,
            settings.busy_timeout,
            actor=current_actor(),
            hooks=settings.hooks,
            create=create,
        )

    if hasher is None:
        from usermgr.infrastructure.hashing import BcryptHasher

        hasher = BcryptHasher(settings.bcrypt_rounds)

    services = Services(
        settings,
        uow=make_uow,
        hasher=hasher,
        clock=clock or utc_now,
        report=report,
        views=views,
        events=events,
    )
    if settings.hooks and uow is None:
        # Deliveries were written with the events; run them once the change is committed.
        services.bus.subscribe("*", services.run_hooks)
    return services
