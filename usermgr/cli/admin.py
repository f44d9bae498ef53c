"""The audit log and hook deliveries."""

from __future__ import annotations

import enum
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from usermgr.cli.options import HELP_MARKUP
from usermgr.cli.output import Column, emit, emit_json, render_table, short_id, to_the_minute
from usermgr.errors import DeliveriesFailed, InvalidInput


class EventFormat(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


EVENT_TABLE_COLUMNS = (
    Column("occurred_at", to_the_minute),
    Column("type"),
    Column("user_id", short_id, drop=2),
    Column("email", fold_last=True),
    Column("actor", drop=3),
    Column("id", short_id, drop=1),
    Column("data", fold=True),
)


def _event_row(event: dict) -> list[str]:
    data = {k: v for k, v in event["data"].items() if k != "email"}
    return [
        event["occurred_at"],
        event["type"],
        event["user_id"],
        event["data"].get("email", ""),
        event["actor"],
        event["id"],
        json.dumps(data, ensure_ascii=False) if data else "",
    ]


def events(
    ctx: typer.Context,
    *,
    user: Annotated[
        str | None, typer.Option("--user", metavar="USER", help="An id or email; every user who has had that email.")
    ] = None,
    type_: Annotated[str | None, typer.Option("--type", metavar="TYPE", help="Only this event type.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="WHEN", help="ISO 8601 date or time, or a duration: 30m, 12h, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Keep the newest N (like tail).")] = 100,
    fmt: Annotated[EventFormat, typer.Option("--format", help="Output format.")] = EventFormat.table,
) -> None:
    """Show the audit log, oldest first.

    \b
    Example:
      usermgr events --user ada@example.com --since 7d --format jsonl
    """
    from usermgr.application import queries

    found = ctx.obj.services().handle(
        queries.ListEvents(user=user, type=type_, since=since, limit=limit)
    )
    if fmt is EventFormat.json:
        emit_json(found)
    elif fmt is EventFormat.jsonl:
        for event in found:
            emit_json(event)
    else:
        render_table(EVENT_TABLE_COLUMNS, [_event_row(e) for e in found], f"{len(found)} events")


hooks_app = typer.Typer(
    name="hooks",
    help="Configured hooks and their failed deliveries.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)


@hooks_app.command("list")
def hooks_list(ctx: typer.Context) -> None:
    """Show the configured hooks and the deliveries waiting for a retry.

    \b
    Example:
      usermgr hooks list
    """
    services = ctx.obj.services()
    configured = services.settings.hooks
    emit(f"hooks configured: {len(configured)}")
    for hook in configured:
        emit(f"  on {hook.on}: {json.dumps(list(hook.command))} (timeout {hook.timeout:g}s)")
    pending = services.hooks.store.pending()
    emit(f"deliveries pending: {len(pending)}")
    from usermgr.domain.values import format_timestamp

    now = format_timestamp(datetime.now(timezone.utc))
    for d in pending:
        if d.claimed_until and d.claimed_until > now:
            state = f"being delivered by another usermgr (claim ends {d.claimed_until})"
        elif d.attempts:
            state = f"failed {d.attempts}x, last {d.last_attempt_at}: {d.last_error}"
        else:
            state = "not yet run"
        emit(
            f"  {d.id}: {d.event['type']} {d.event['id']} user {d.event['user_id']}"
            f" -> {json.dumps(d.command)}; {state}"
        )


@hooks_app.command("retry")
def hooks_retry(ctx: typer.Context) -> None:
    """Run every pending delivery again, oldest first; exit 7 if some still fail.

    \b
    Example:
      usermgr hooks retry || echo "some hooks still fail"
    """
    dispatcher = ctx.obj.services().hooks
    pending = dispatcher.store.pending()
    outcomes = list(dispatcher.deliver(pending))
    failed = sum(1 for o in outcomes if o.error is not None)
    elsewhere = len(pending) - len(outcomes)
    busy = f", {elsewhere} being delivered by another usermgr" if elsewhere else ""
    emit(f"delivered {len(outcomes) - failed}, failed {failed}{busy}")
    if failed:
        raise DeliveriesFailed(f"{failed} deliveries still fail; see 'usermgr hooks list'")


@hooks_app.command("discard")
def hooks_discard(
    ctx: typer.Context,
    delivery: Annotated[int | None, typer.Argument(metavar="[ID]", help="The delivery to drop.")] = None,
    *,
    all_: Annotated[bool, typer.Option("--all", help="Drop every pending delivery.")] = False,
) -> None:
    """Drop deliveries that should not be retried.

    \b
    Example:
      usermgr hooks discard 12
    """
    if (delivery is None) == (not all_):
        raise InvalidInput("give a delivery ID or --all (see 'usermgr hooks list')")
    dropped = ctx.obj.services().hooks.store.discard(delivery)
    if delivery is not None and not dropped:
        raise InvalidInput(f"no pending delivery {delivery} (see 'usermgr hooks list')")
    emit(f"discarded {dropped}")


db_app = typer.Typer(
    name="db",
    help="Check, back up and upgrade the database.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)


@db_app.command("check")
def db_check(ctx: typer.Context) -> None:
    """Check integrity, foreign keys and the schema version; exit 6 on a problem.

    \b
    Example:
      usermgr db check
    """
    from usermgr.infrastructure.sqlite import check

    settings = ctx.obj.settings()
    report = check(settings.db_path, settings.busy_timeout)
    emit(
        f"ok: {report['path']}, schema version {report['schema_version']}, {report['users']} users,"
        f" {report['events']} events, {report['pending_deliveries']} pending deliveries"
    )


@db_app.command("backup")
def db_backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the copy.")],
    *,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing PATH.")] = False,
) -> None:
    """Write a consistent copy of the database (mode 0600), even while others write.

    \b
    Example:
      usermgr db backup /var/backups/usermgr-$(date +%F).db
    """
    from usermgr.infrastructure.sqlite import backup

    settings = ctx.obj.settings()
    backup(settings.db_path, path, settings.busy_timeout, force=force)
    emit(f"backed up to {path}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply schema migrations (any command also does this first, automatically).

    \b
    Example:
      usermgr db upgrade
    """
    from usermgr.infrastructure.sqlite import upgrade

    settings = ctx.obj.settings()
    before, after = upgrade(settings.db_path, settings.busy_timeout)
    emit(f"schema version {after}" + (f" (upgraded from {before})" if before != after else ", up to date"))


def register(app: typer.Typer) -> None:
    app.command()(events)
    app.add_typer(hooks_app)
    app.add_typer(db_app)
