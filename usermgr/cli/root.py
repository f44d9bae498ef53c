"""The Typer application: global options, the commands and the single error boundary."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from usermgr import __version__
from usermgr.cli.options import HELP_MARKUP
from usermgr.errors import HooksInterrupted, InvalidField, OutputFailed, UsermgrError


class Runtime:
    """What the root options resolve to, handed to each command on `ctx.obj`."""

    def __init__(self, db: str | None, config: str | None, debug: bool) -> None:
        self.debug = debug
        self._options = (db, config)
        self._settings: Any = None
        self._bus: Any = None
        self.notices: list[str] = []

    def settings(self) -> Any:
        # Read the config only when a command runs, so `usermgr CMD --help` always works.
        if self._settings is None:
            from usermgr import bootstrap

            self._settings = bootstrap.load_settings(*self._options)
        return self._settings

    def bus(self) -> Any:
        if self._bus is None:
            from usermgr import bootstrap

            self._bus = bootstrap.build(self.settings(), notice=self.notices.append)
        return self._bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()


# The flag that sets each field a handler may call invalid.
FLAGS = {
    "page": "--page",
    "per_page": "--per-page",
    "since": "--since",
    "limit": "--limit",
    "type": "--type",
    "head": "--head",
}


def _message(error: UsermgrError) -> str:
    if isinstance(error, InvalidField) and error.field in FLAGS:
        return f"invalid {FLAGS[error.field]}: {error.detail}"
    return str(error)


def fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"usermgr: {' '.join(message.splitlines())}\n")
    return typer.Exit(code)


def _is_utf8(text: str) -> bool:
    # Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Options of `usermgr` itself, as the hint for one given after the command writes them.
GLOBAL_OPTIONS = {"--db": "--db PATH", "--config": "--config PATH", "--debug": "--debug"}


def _misplaced_global_option(error: Exception) -> str | None:
    """Click's "No such option: --db" for a global option given after the command,
    with where to put it instead."""
    from typer._click.exceptions import NoSuchOption  # Typer's own copy of Click

    if not isinstance(error, NoSuchOption) or error.option_name not in GLOBAL_OPTIONS:
        return None
    ctx, words = error.ctx, []
    while ctx is not None and ctx.parent is not None:  # up to the root: "hooks list"
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    prog = ctx.info_name if ctx is not None else "usermgr"
    name = error.option_name
    return (
        f"{error.message} ({name} is a global option: put it before the command,"
        f" as in {prog} {GLOBAL_OPTIONS[name]} {' '.join(words)})"
    )


class Command(TyperCommand):
    """A command whose usage line and summary read as admins expect."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # Typer 0.28 writes a required argument as {EMAIL}, which reads as literal braces
        # or a set of choices; the POSIX form is EMAIL, and [ID] when it is optional.
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not isinstance(param, TyperArgument):
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            metavar = param.make_metavar(ctx)
            pieces.append(metavar if param.required or metavar.startswith("[") else f"[{metavar}]")
        return pieces

    def get_short_help_str(self, limit: int = 45) -> str:
        # Click cuts a summary longer than the help's width with "..."; keep the first
        # sentence whole and let the command list wrap it.
        return super().get_short_help_str(limit=sys.maxsize)


def _use_command_class(group: typer.Typer) -> None:
    """Every command of the tree, added here or in a module, gets `Command`."""
    for info in group.registered_commands:
        if info.cls is TyperCommand:
            info.cls = Command
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _use_command_class(sub.typer_instance)


class ErrorBoundary(TyperGroup):
    """Every failure becomes one line on stderr and the contract's exit code."""

    def main(self, args: Any = None, *rest: Any, **options: Any) -> Any:
        argv = sys.argv[1:] if args is None else list(args)
        if not all(_is_utf8(arg) for arg in argv):
            raise SystemExit(fail("an argument is not valid UTF-8 text", 2).exit_code)
        return super().main(args, *rest, **options)

    def invoke(self, ctx: Any) -> Any:
        try:
            try:
                result = super().invoke(ctx)
                _flush_stdout()
            finally:
                runtime = ctx.obj if isinstance(ctx.obj, Runtime) else None
                if runtime is not None:
                    runtime.close()
            for notice in runtime.notices if runtime else ():
                sys.stderr.write(f"usermgr: {notice}\n")
            return result
        except UsermgrError as e:
            for detail in e.details:
                sys.stderr.write(f"{' '.join(detail.splitlines())}\n")
            raise fail(_message(e), e.exit_code) from None
        except HooksInterrupted:
            raise fail(
                "interrupted while hooks ran; the change itself is committed"
                " (unfinished deliveries stay pending: run 'usermgr hooks retry')",
                130,
            ) from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing more was changed", 130) from None
        except BrokenPipeError:
            # The reader went away (`usermgr export | head`): stop quietly with the
            # status a shell reports for a process ended by SIGPIPE.
            _silence_stdout()
            raise typer.Exit(141) from None
        except Exception as e:
            if type(e).__module__.startswith(("typer", "click")):
                hint = _misplaced_global_option(e)
                if hint is not None:
                    raise fail(hint, 2) from None
                raise
            runtime = ctx.obj if isinstance(ctx.obj, Runtime) else None
            if (runtime and runtime.debug) or os.environ.get("USERMGR_DEBUG") == "1":
                import traceback

                traceback.print_exc()
            raise fail(f"unexpected error ({type(e).__name__}); run with --debug for the traceback", 1) from None


def _flush_stdout() -> None:
    """Buffered output fails only when flushed: flush inside the boundary, not at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        _silence_stdout()
        raise OutputFailed(e.strerror or str(e)) from None


def _silence_stdout() -> None:
    # stdout must stay valid for the interpreter's own flush at exit.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115


app = typer.Typer(
    cls=ErrorBoundary,
    name="usermgr",
    help="Administer the user accounts of an application, in an embedded SQLite file or a shared PostgreSQL database.",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
    pretty_exceptions_enable=False,
    # Never show local variables in a traceback: they may hold a password.
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"usermgr {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="USERMGR_DB",
            metavar="PATH|URL",
            help="SQLite file, sqlite:///PATH, or postgresql://[USER@]HOST[:PORT]/DBNAME[?PARAMS] (or postgres://; a password: PGPASSWORD or ~/.pgpass, not the URL).",
            # A text default, which Typer writes as "[default: ...]" in plain and Rich help
            # alike (in the help text itself, Rich markup would take the brackets for a tag).
            show_default="usermgr.db in the per-user data directory",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="USERMGR_CONFIG",
            metavar="PATH",
            help="TOML config file.",
            show_default="config.toml in the per-user config directory",
            readable=False,  # the loader reads it and says in one line why it cannot
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="USERMGR_DEBUG", help="Show the traceback of an unexpected error."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Administer the user accounts of an application, in an embedded SQLite file or a shared PostgreSQL database."""
    ctx.obj = Runtime(db, str(config) if config else None, debug)


def _register() -> None:
    from usermgr.cli import admin, transfer, users

    users.register(app)
    transfer.register(app)
    admin.register(app)
    _use_command_class(app)


_register()

