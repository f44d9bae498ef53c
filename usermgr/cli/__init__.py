"""The command-line entry point. `usermgr --version` answers before anything heavy loads."""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): say so before anything is changed, rather
        # than create a user whose generated password could never be shown.
        from usermgr.errors import OutputFailed

        if sys.stderr is not None:
            print("usermgr: standard output is closed; nothing was done", file=sys.stderr)
        sys.exit(OutputFailed.exit_code)
    if sys.argv[1:] == ["--version"]:
        from usermgr import __version__

        print(f"usermgr {__version__}")
        return
    from usermgr.cli.root import app

    app()


def __getattr__(name: str) -> Any:
    # `from usermgr.cli import app` keeps working without loading Typer for --version.
    if name == "app":
        from usermgr.cli.root import app

        return app
    raise AttributeError(name)
