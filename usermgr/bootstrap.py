"""The composition root: the one place that names concrete adapters.

Handlers are wired by name and their modules imported on first use, so a `list`
pays for neither the import, apply, hooks nor maintenance code."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from usermgr.application import commands, queries
from usermgr.application.bus import EventBus, MessageBus
from usermgr.domain.values import Policy

if TYPE_CHECKING:
    from usermgr.application.deliveries import Hooks
    from usermgr.application.ports import Clock, HookRunner, PasswordHasher, Report
    from usermgr.domain.events import Event
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


def handler(module: str, name: str, **deps: Any) -> Callable[..., Any]:
    """`usermgr.application.<module>.<name>` with its dependencies, imported when first called."""

    @functools.cache
    def resolved() -> Callable[..., Any]:
        function = getattr(importlib.import_module(f"usermgr.application.{module}"), name)
        return functools.partial(function, **{k: v() if isinstance(v, Lazy) else v for k, v in deps.items()})

    return lambda message, **options: resolved()(message, **options)


class Lazy:
    """A dependency built only when a handler that needs it is first called."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = functools.cache(make)

    def __call__(self) -> Any:
        return self._make()


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

    def make_hooks() -> Hooks:
        from usermgr.application.deliveries import Hooks

        return Hooks(settings.hooks, storage.deliveries, runner or run_hook, clock, report)

    hooks = Lazy(make_hooks)
    writes: dict[type, Callable[..., Any]] = {
        commands.CreateUser: handler("handlers", "create_user", hasher=hasher, policy=policy, clock=clock),
        commands.UpdateUser: handler("handlers", "update_user", policy=policy, clock=clock),
        commands.ActivateUser: handler("handlers", "activate_user", policy=policy, clock=clock),
        commands.DeactivateUser: handler("handlers", "deactivate_user", policy=policy, clock=clock),
        commands.SetRole: handler("handlers", "set_role", policy=policy, clock=clock),
        commands.ChangePassword: handler("handlers", "change_password", hasher=hasher, policy=policy, clock=clock),
        commands.DeleteUser: handler("handlers", "delete_user", policy=policy, clock=clock),
        commands.VerifyPassword: handler("handlers", "verify_password", views=storage.users, hasher=hasher, policy=policy),
        commands.ImportUsers: handler("importing", "import_users", hasher=hasher, policy=policy, clock=clock),
        commands.ApplyUsers: handler("provisioning", "apply_users", hasher=hasher, policy=policy, clock=clock),
    }
    others: dict[type, Callable[..., Any]] = {
        queries.GetUser: handler("handlers", "get_user", views=storage.users, policy=policy),
        queries.ListUsers: handler("handlers", "list_users", views=storage.users),
        queries.StreamUsers: handler("handlers", "stream_users", views=storage.users),
        queries.ExportUsers: handler("handlers", "export_users", views=storage.users),
        queries.ExportText: handler("handlers", "export_text", views=storage.users),
        queries.ListEvents: handler("handlers", "list_events", events=storage.events, policy=policy, clock=clock),
        queries.VerifyEvents: handler("handlers", "verify_events", events=storage.events),
        queries.ListHooks: handler("deliveries", "list_hooks", log=storage.deliveries, hooks=hooks, clock=clock),
        queries.CheckStorage: handler("maintenance", "check_storage", admin=storage.admin, events=storage.events),
        queries.HashHealth: handler("maintenance", "hash_health", views=storage.users, hasher=hasher),
        commands.RetryDeliveries: handler("deliveries", "retry_deliveries", log=storage.deliveries, hooks=hooks),
        commands.DiscardDeliveries: handler("deliveries", "discard_deliveries", log=storage.deliveries),
        commands.BackupStorage: handler("maintenance", "backup_storage", admin=storage.admin),
        commands.UpgradeStorage: handler("maintenance", "upgrade_storage", admin=storage.admin),
    }
    events = EventBus(report)
    if settings.hooks:

        def run_hooks(event: Event) -> None:
            hooks().on_event(event)

        # Deliveries were written with the events; run them once the change is committed.
        events.subscribe("*", run_hooks)
    return MessageBus({**writes, **others}, storage.unit_of_work, events, frozenset(writes), storage.close)
