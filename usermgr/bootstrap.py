"""The composition root: the one place that names concrete adapters."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from usermgr.application import commands, deliveries, handlers, importing, maintenance, provisioning, queries
from usermgr.application.bus import EventBus, MessageBus
from usermgr.application.ports import Clock, HookRunner, PasswordHasher, Report
from usermgr.domain.values import Policy

if TYPE_CHECKING:
    from usermgr.infrastructure.config import Settings
    from usermgr.infrastructure.storage import Storage


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def report_to_stderr(line: str) -> None:
    print(f"usermgr: {line}", file=sys.stderr)


def load_settings(db: str | None, config: str | None) -> Settings:
    """Settings from the root options (or their environment variables) and the config file."""
    from usermgr.infrastructure import config as config_file

    return config_file.load(db, config)


def run_hook(command: tuple[str, ...], event: dict[str, Any], timeout: float) -> str | None:
    from usermgr.infrastructure.hooks import run_hook as run

    return run(command, event, timeout)


def build(
    settings: Settings,
    *,
    storage: Storage | None = None,
    hasher: PasswordHasher | None = None,
    runner: HookRunner | None = None,
    clock: Clock | None = None,
    report: Report = report_to_stderr,
    notice: Report | None = None,
) -> MessageBus:
    """A message bus with every handler wired to its adapters; tests pass fakes for any of them."""
    clock = clock or utc_now
    if storage is None:
        from usermgr.infrastructure.config import current_actor
        from usermgr.infrastructure.storage import open_storage

        storage = open_storage(
            settings.database,
            busy_timeout=settings.busy_timeout,
            hooks=settings.hooks,
            actor=current_actor(),
            notice=notice or report,
        )
    if hasher is None:
        from usermgr.infrastructure.hashing import BcryptHasher

        hasher = BcryptHasher(settings.bcrypt_rounds)
    policy = Policy(settings.min_password_length, settings.allow_internal_domains)
    hooks = deliveries.Hooks(settings.hooks, storage.deliveries, runner or run_hook, clock, report)
    writes: dict[type, Callable[..., Any]] = {
        commands.CreateUser: partial(handlers.create_user, hasher=hasher, policy=policy, clock=clock),
        commands.UpdateUser: partial(handlers.update_user, policy=policy, clock=clock),
        commands.ActivateUser: partial(handlers.activate_user, policy=policy, clock=clock),
        commands.DeactivateUser: partial(handlers.deactivate_user, policy=policy, clock=clock),
        commands.SetRole: partial(handlers.set_role, policy=policy, clock=clock),
        commands.ChangePassword: partial(handlers.change_password, hasher=hasher, policy=policy, clock=clock),
        commands.DeleteUser: partial(handlers.delete_user, policy=policy, clock=clock),
        commands.VerifyPassword: partial(handlers.verify_password, views=storage.users, hasher=hasher, policy=policy),
        importing.ImportUsers: partial(importing.import_users, hasher=hasher, policy=policy, clock=clock),
        provisioning.ApplyUsers: partial(provisioning.apply_users, hasher=hasher, policy=policy, clock=clock),
    }
    others: dict[type, Callable[..., Any]] = {
        queries.GetUser: partial(handlers.get_user, views=storage.users, policy=policy),
        queries.ListUsers: partial(handlers.list_users, views=storage.users),
        queries.StreamUsers: partial(handlers.stream_users, views=storage.users),
        queries.ExportUsers: partial(handlers.export_users, views=storage.users),
        queries.ListEvents: partial(handlers.list_events, events=storage.events, policy=policy, clock=clock),
        queries.VerifyEvents: partial(handlers.verify_events, events=storage.events),
        queries.ListHooks: partial(deliveries.list_hooks, log=storage.deliveries, hooks=hooks, clock=clock),
        queries.CheckStorage: partial(maintenance.check_storage, admin=storage.admin, events=storage.events),
        queries.HashHealth: partial(maintenance.hash_health, views=storage.users, hasher=hasher),
        commands.RetryDeliveries: partial(deliveries.retry_deliveries, log=storage.deliveries, hooks=hooks),
        commands.DiscardDeliveries: partial(deliveries.discard_deliveries, log=storage.deliveries),
        commands.BackupStorage: partial(maintenance.backup_storage, admin=storage.admin),
        commands.UpgradeStorage: partial(maintenance.upgrade_storage, admin=storage.admin),
    }
    events = EventBus(report)
    if settings.hooks:
        # Deliveries were written with the events; run them once the change is committed.
        events.subscribe("*", hooks.on_event)
    return MessageBus({**writes, **others}, storage.unit_of_work, events, frozenset(writes), storage.close)
