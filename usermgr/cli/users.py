"""Commands on one user, and listing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from usermgr.cli import passwords
from usermgr.cli.options import (
    complete_role,
    GeneratePassword,
    JsonFlag,
    ListFormat,
    PasswordFile,
    PasswordStdin,
    SpreadsheetSafe,
    UserArg,
    require_csv,
)
from usermgr.cli.output import emit, flush, render_page, render_stream, render_user
from usermgr.cli.passwords import stdin_is_terminal
from usermgr.errors import InvalidInput


def _run(ctx: typer.Context, message: object, render: Callable[[Any], None] | None = None) -> Any:
    """Hand a message to its handler; `render` prints the result before any hook runs."""

    def rendered(result: Any) -> None:
        if render is not None:
            render(result)
            flush()

    return ctx.obj.bus().handle(message, render=rendered)


def _length_check(ctx: typer.Context) -> passwords.Check:
    """The configured length limits, so the prompt can ask again for a password they refuse."""
    from usermgr.domain.values import PasswordPolicy

    return PasswordPolicy(ctx.obj.settings().min_password_length).check_length


def create(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The new user's email address.")],
    *,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Display name, 1-200 characters.")],
    role: Annotated[
        str, typer.Option("--role", metavar="ROLE", help="user, admin or moderator.", autocompletion=complete_role)
    ] = "user",
    inactive: Annotated[bool, typer.Option("--inactive", help="Create the account deactivated.")] = False,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
    generate_password: GeneratePassword = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Create an account with no usable password.")
    ] = False,
    exists_ok: Annotated[
        bool, typer.Option("--exists-ok", help="An existing email is success: change nothing, exit 0.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a user.

    \b
    Example:
      echo "$PW" | usermgr create ada@example.com --name "Ada Lovelace" --password-stdin
    """
    from usermgr.application import commands

    password = passwords.resolve(
        stdin=password_stdin,
        file=password_file,
        generated=generate_password,
        none=no_password,
        check=_length_check(ctx),
    )
    def render(result: Any) -> None:
        show_password = password.generated and result.created
        if as_json:
            extra: dict[str, object] = {"created": result.created}
            if show_password:
                extra["password"] = password.value
            render_user(result.user, as_json=True, extra=extra)
            return
        verb = "created" if result.created else "exists, unchanged:"
        emit(f"{verb} {result.user.email} ({result.user.id})")
        if show_password:
            emit(f"password: {password.value}")

    _run(
        ctx,
        commands.CreateUser(
            email=email,
            name=name,
            role=role,
            is_active=not inactive,
            password=password.value,
            exists_ok=exists_ok,
        ),
        render,
    )


def list_(
    ctx: typer.Context,
    *,
    search: Annotated[
        str | None, typer.Option("--search", metavar="TEXT", help="Case-insensitive text in the name or email.")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Only active users.")] = False,
    inactive: Annotated[bool, typer.Option("--inactive", help="Only inactive users.")] = False,
    role: Annotated[
        str | None,
        typer.Option("--role", metavar="ROLE", help="Only users with this role.", autocompletion=complete_role),
    ] = None,
    page: Annotated[int, typer.Option("--page", metavar="N", help="Page number, from 1.")] = 1,
    per_page: Annotated[int, typer.Option("--per-page", metavar="N", help="Users a page, 1 to 1000.")] = 20,
    all_: Annotated[bool, typer.Option("--all", help="Every matching user, no pages.")] = False,
    fmt: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = ListFormat.table,
    spreadsheet_safe: SpreadsheetSafe = False,
) -> None:
    """List users, newest first.

    \b
    Example:
      usermgr list --role admin --active --format csv
    """
    from usermgr.application import queries

    require_csv(spreadsheet_safe, fmt.value)
    if active and inactive:
        raise InvalidInput("give --active or --inactive, not both")
    where = queries.UserFilter(search=search, active=True if active else False if inactive else None, role=role)
    if not all_:
        _run(
            ctx,
            queries.ListUsers(filter=where, page=page, per_page=per_page),
            lambda p: render_page(p, fmt.value, spreadsheet_safe=spreadsheet_safe),
        )
        return
    users = _run(ctx, queries.StreamUsers(filter=where))
    if fmt in (ListFormat.jsonl, ListFormat.csv):
        render_stream(users, fmt.value, spreadsheet_safe=spreadsheet_safe)
        return
    items = list(users)
    everything = queries.Page(items=items, total=len(items), page=1, per_page=max(len(items), 1))
    render_page(everything, fmt.value, spreadsheet_safe=spreadsheet_safe)


def show(ctx: typer.Context, user: UserArg, *, as_json: JsonFlag = False) -> None:
    """Show one user.

    \b
    Example:
      usermgr show ada@example.com --json
    """
    from usermgr.application import queries

    _run(ctx, queries.GetUser(ref=user), lambda view: render_user(view, as_json=as_json))


def update(
    ctx: typer.Context,
    user: UserArg,
    *,
    email: Annotated[str | None, typer.Option("--email", metavar="EMAIL", help="The new email address.")] = None,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", help="The new display name.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a user's email and/or name.

    \b
    Example:
      usermgr update ada@example.com --email ada@lovelace.org
    """
    from usermgr.application import commands

    _run(ctx, commands.UpdateUser(ref=user, email=email, name=name), lambda view: render_user(view, as_json=as_json))


def activate(ctx: typer.Context, user: UserArg) -> None:
    """Activate a user (nothing happens if already active).

    \b
    Example:
      usermgr activate ada@example.com
    """
    from usermgr.application import commands

    _run(ctx, commands.ActivateUser(ref=user), lambda view: emit(f"active: {view.email}"))


def deactivate(ctx: typer.Context, user: UserArg) -> None:
    """Deactivate a user (nothing happens if already inactive).

    \b
    Example:
      usermgr deactivate ada@example.com
    """
    from usermgr.application import commands

    _run(ctx, commands.DeactivateUser(ref=user), lambda view: emit(f"inactive: {view.email}"))


def set_role(
    ctx: typer.Context,
    user: UserArg,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="user, admin or moderator.", autocompletion=complete_role)],
) -> None:
    """Change a user's role.

    \b
    Example:
      usermgr set-role ada@example.com admin
    """
    from usermgr.application import commands

    _run(ctx, commands.SetRole(ref=user, role=role), lambda view: emit(f"role {view.role}: {view.email}"))


def passwd(
    ctx: typer.Context,
    user: UserArg,
    *,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
    generate_password: GeneratePassword = False,
    as_json: JsonFlag = False,
) -> None:
    """Set a new password.

    \b
    Example:
      usermgr passwd ada@example.com --password-file /run/secrets/ada
    """
    from usermgr.application import commands

    password = passwords.resolve(
        stdin=password_stdin, file=password_file, generated=generate_password, check=_length_check(ctx)
    )
    assert password.value is not None

    def render(view: Any) -> None:
        if as_json:
            render_user(view, as_json=True, extra={"password": password.value} if password.generated else None)
            return
        emit(f"password changed: {view.email}")
        if password.generated:
            emit(f"password: {password.value}")

    _run(ctx, commands.ChangePassword(ref=user, password=password.value), render)


def verify(
    ctx: typer.Context,
    user: UserArg,
    *,
    password_stdin: PasswordStdin = False,
    password_file: PasswordFile = None,
) -> None:
    """Check a password: exit 0 if it matches an active user, else exit 5.

    \b
    Example:
      printf '%s\\n' "$PW" | usermgr verify ada@example.com --password-stdin && echo ok
    """
    from usermgr.application import commands

    password = passwords.resolve_for_check(stdin=password_stdin, file=password_file)
    _run(ctx, commands.VerifyPassword(ref=user, password=password))


def delete(
    ctx: typer.Context,
    user: UserArg,
    *,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a user (asks first on a terminal; --yes is required without one).

    \b
    Example:
      usermgr delete ada@example.com --yes
    """
    from usermgr.application import commands

    if not yes:
        if not stdin_is_terminal():
            raise InvalidInput("refusing to delete without confirmation: add --yes")
        try:
            confirmed = typer.confirm(f"Delete user {user}?", default=False)
        except typer.Abort:  # Ctrl-C or Ctrl-D at the prompt
            confirmed = False
        if not confirmed:
            raise InvalidInput("not confirmed; nothing was deleted")
    _run(ctx, commands.DeleteUser(ref=user), lambda view: emit(f"deleted: {view.email} ({view.id})"))


def register(app: typer.Typer) -> None:
    app.command()(create)
    app.command("list")(list_)
    app.command()(show)
    app.command()(update)
    app.command()(activate)
    app.command()(deactivate)
    app.command("set-role")(set_role)
    app.command()(passwd)
    app.command()(verify)
    app.command()(delete)
