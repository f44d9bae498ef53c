"""The audit log, hook deliveries, the database itself, and the stored hashes' health."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from usermgr.cli.options import HELP_MARKUP
from usermgr.cli.output import Column, emit, emit_json, flush, render_table, short_id, to_the_minute
from usermgr.errors import DeliveriesFailed, InvalidInput, WorkToDo, shown


class EventFormat(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


class ReportFormat(str, enum.Enum):
    table = "table"
    json = "json"


EVENT_TABLE_COLUMNS = (
    Column("occurred_at", to_the_minute),
    Column("type"),
    Column("user_id", short_id, drop=2),
    Column("email", fold_last=True),
    Column("actor", drop=3),
    Column("id", short_id, drop=1),
    Column("data", fold=True),
)


def _event_row(event: Any) -> list[str]:
    if isinstance(event.data, dict):
        email, data = str(event.data.get("email", "")), {k: v for k, v in event.data.items() if k != "email"}
    else:  # a row edited by hand into something else: shown as it is
        email, data = "", event.data
    return [
        event.occurred_at,
        event.type,
        event.user_id,
        email,
        event.actor,
        event.id,
        json.dumps(data, ensure_ascii=False) if data else "",
    ]


def _handle(ctx: typer.Context, message: object, render: Any = None, **options: Any) -> Any:
    def rendered(result: Any) -> None:
        if render is not None:
            render(result)
            flush()

    return ctx.obj.bus().handle(message, render=rendered, **options)


events_app = typer.Typer(
    name="events",
    help="Show the audit log, oldest first, or verify its hash chain.",
    invoke_without_command=True,
    rich_markup_mode=HELP_MARKUP,
)


@events_app.callback()
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
    if ctx.invoked_subcommand is not None:
        flags = {"user": "--user", "type_": "--type", "since": "--since", "limit": "--limit", "fmt": "--format"}
        given = [flag for name, flag in flags.items() if ctx.get_parameter_source(name).name != "DEFAULT"]
        if given:
            raise InvalidInput(f"{given[0]} does not apply to events {ctx.invoked_subcommand}: it checks the whole log")
        return
    from usermgr.application import queries

    def render(found: list[Any]) -> None:
        if fmt is EventFormat.json:
            emit_json([event.as_dict() for event in found])
        elif fmt is EventFormat.jsonl:
            for event in found:
                emit_json(event.as_dict())
        else:
            render_table(EVENT_TABLE_COLUMNS, [_event_row(e) for e in found], f"{len(found)} events")

    _handle(ctx, queries.ListEvents(user=user, type=type_, since=since, limit=limit), render)


@events_app.command("verify")
def events_verify(
    ctx: typer.Context,
    *,
    head: Annotated[
        str | None,
        typer.Option("--head", metavar="HASH", help="A head printed by an earlier verify: it must still be in the chain."),
    ] = None,
) -> None:
    """Check the audit log's hash chain; exit 6 naming the first event that does not match.

    \b
    Example:
      usermgr events verify --head "$(cat /var/backups/usermgr-head)"
    """
    from usermgr.application import queries

    _handle(ctx, queries.VerifyEvents(head=head), lambda r: emit(f"{r.events} events, head {r.head}"))


hooks_app = typer.Typer(
    name="hooks",
    help="Configured hooks and their failed deliveries.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)

STATES = {
    "orphaned": "its hook is no longer configured: not run (discard it, or configure a hook of that name)",
    "pending": "not yet run",
}


def _state(status: Any) -> str:
    d = status.delivery
    if status.state == "claimed":
        return f"being delivered by another usermgr (claim ends {d.claimed_until})"
    if status.state == "failed":
        return f"failed {d.attempts}x, last {d.last_attempt_at}: {shown(d.last_error)}"
    return STATES[status.state]


@hooks_app.command("list")
def hooks_list(ctx: typer.Context) -> None:
    """Show the configured hooks and the deliveries waiting for a retry.

    \b
    Example:
      usermgr hooks list
    """
    from usermgr.application import queries

    def render(report: Any) -> None:
        emit(f"hooks configured: {len(report.hooks)}")
        for hook in report.hooks:
            emit(f"  {hook.name!r} on {hook.on}: {json.dumps(list(hook.command))} (timeout {hook.timeout:g}s)")
        emit(f"deliveries pending: {len(report.deliveries)}")
        for status in report.deliveries:
            d = status.delivery
            hook = repr(d.hook) if d.hook is not None else "(a hook of usermgr 0.1)"
            emit(f"  {d.id}: {d.event.type} {d.event.id} user {d.event.user_id} -> hook {shown(hook)}; {_state(status)}")

    _handle(ctx, queries.ListHooks(), render)


@hooks_app.command("retry")
def hooks_retry(ctx: typer.Context) -> None:
    """Run every pending delivery again, oldest first; exit 7 if some still fail.

    \b
    Example:
      usermgr hooks retry || echo "some hooks still fail"
    """
    from usermgr.application import commands

    def render(summary: Any) -> None:
        extra = ""
        if summary.orphaned:
            extra += f", {summary.orphaned} without a configured hook"
        if summary.elsewhere:
            extra += f", {summary.elsewhere} being delivered by another usermgr"
        emit(f"delivered {summary.delivered}, failed {summary.failed}{extra}")

    summary = _handle(ctx, commands.RetryDeliveries(), render)
    if summary.still_failing:
        raise DeliveriesFailed(f"{summary.still_failing} deliveries still fail; see 'usermgr hooks list'")


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
    from usermgr.application import commands

    if (delivery is None) == (not all_):
        raise InvalidInput("give a delivery ID or --all (see 'usermgr hooks list')")
    dropped = _handle(ctx, commands.DiscardDeliveries(delivery_id=delivery))
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
    """Check integrity, the schema version and the audit chain; exit 6 on a problem.

    \b
    Example:
      usermgr db check
    """
    from usermgr.application import queries

    def render(report: Any) -> None:
        s = report.storage
        emit(
            f"ok: {s.location}, schema version {s.schema_version}, {s.users} users,"
            f" {s.events} events, {s.pending_deliveries} pending deliveries, audit chain head {report.chain.head}"
        )
        for note in s.notes:
            emit(f"note: {note}")

    _handle(ctx, queries.CheckStorage(), render)


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
    from usermgr.application import commands

    _handle(ctx, commands.BackupStorage(target=path, force=force), lambda _: emit(f"backed up to {shown(path)}"))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply schema migrations (any command also does this first, automatically).

    \b
    Example:
      usermgr db upgrade
    """
    from usermgr.application import commands

    def render(result: Any) -> None:
        if result.created:
            emit(f"created the database at schema version {result.after}")
        elif result.before != result.after:
            emit(f"schema version {result.after} (upgraded from {result.before})")
        else:
            emit(f"schema version {result.after}, up to date")

    _handle(ctx, commands.UpgradeStorage(), render)


WEAKER_SHOWN = 20  # a table names the first few; --format json names every one


def hashes(
    ctx: typer.Context,
    *,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 8 if a hash is weaker than bcrypt_rounds or malformed, or a user has none.")
    ] = False,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.table,
) -> None:
    """Report the health of stored password hashes, never showing one.

    \b
    Example:
      usermgr hashes --check >/dev/null || usermgr hashes
    """
    from usermgr.application import queries

    def render(r: Any) -> None:
        if fmt is ReportFormat.json:
            emit_json(
                {
                    "users": r.users,
                    "no_password": r.no_password,
                    "by_cost": {str(cost): n for cost, n in r.by_cost.items()},
                    "weaker": r.weaker,
                    "malformed": r.malformed,
                    "weaker_users": r.weaker_users,
                }
            )
            return
        emit(f"users: {r.users}")
        emit(f"no usable password: {r.no_password}")
        for cost, n in r.by_cost.items():
            emit(f"bcrypt cost {cost}: {n}")
        emit(f"weaker than bcrypt_rounds ({r.rounds}): {r.weaker} (re-hashed at their next successful verify)")
        emit(f"malformed: {r.malformed}")
        for email in r.weaker_users[:WEAKER_SHOWN]:
            emit(f"  weaker: {shown(email)}")
        if len(r.weaker_users) > WEAKER_SHOWN:
            emit(f"  ... and {len(r.weaker_users) - WEAKER_SHOWN} more (--format json lists every one)")

    report = _handle(ctx, queries.HashHealth(), render)
    if check and report.needs_attention:
        raise WorkToDo(
            f"{report.weaker} weaker, {report.malformed} malformed, {report.no_password} without a password"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(events_app)
    app.add_typer(hooks_app)
    app.add_typer(db_app)
    app.command()(hashes)
