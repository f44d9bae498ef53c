"""PASSWORD SOURCE: a hidden prompt, stdin, a file, a generated one, or none."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from usermgr.errors import InvalidInput

# Raises InvalidInput for a password the policy refuses; the message never holds the password.
Check = Callable[[str], None]
# As passwd(1): a mistyped repeat or a refused password is asked again, three times in all.
ATTEMPTS = 3

NO_SOURCE = (
    "no password source: there is no terminal to ask on; use --password-stdin or"
    " --password-file PATH"
)


@dataclass(frozen=True)
class Password:
    value: str | None
    generated: bool = False


# How much of a password's line is read: far more than any policy allows (bcrypt uses
# 72 bytes), so that /dev/zero or a file with no newline cannot fill the memory.
LINE_LIMIT = 64 * 1024


def _first_line(text: str, where: str) -> str:
    if len(text) >= LINE_LIMIT and not text.endswith("\n"):
        raise InvalidInput(f"the password is too long: {where} has no line end in its first {LINE_LIMIT // 1024} KiB")
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise InvalidInput(f"no password: {where} is empty")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # stdin decodes with surrogateescape
        raise InvalidInput(f"cannot read the password: {where} is not UTF-8 text") from None
    return line


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def from_stdin() -> str:
    if sys.stdin is None:
        raise InvalidInput("no password: standard input is closed")
    try:
        line = sys.stdin.readline(LINE_LIMIT)
    except UnicodeDecodeError:
        raise InvalidInput("cannot read the password: standard input is not UTF-8 text") from None
    return _first_line(line, "standard input")


def from_file(path: Path) -> str:
    try:
        # Lines end at "\n" only, as on standard input: a lone "\r" is part of the password.
        with path.open(encoding="utf-8", newline="\n") as f:
            return _first_line(f.readline(LINE_LIMIT), f"the first line of {path}")
    except UnicodeDecodeError:
        raise InvalidInput(f"cannot read password file {path}: it is not UTF-8 text") from None
    except OSError as e:
        raise InvalidInput(f"cannot read password file {path}: {e.strerror}") from None


def prompt(confirm: bool, check: Check | None = None) -> str:
    """A hidden prompt on the terminal, asked again after a refused or mistyped password."""
    if not stdin_is_terminal():
        raise InvalidInput(NO_SOURCE + (" (or --generate-password)" if confirm else ""))
    import getpass

    for attempt in range(1, ATTEMPTS + 1):
        try:
            password = getpass.getpass("Password: ")
            problem = _refused(password, check)
            if problem is None and confirm and getpass.getpass("Repeat password: ") != password:
                problem = "the passwords did not match"
        except EOFError:
            raise InvalidInput("no password given") from None
        if problem is None:
            return password
        if attempt < ATTEMPTS:
            sys.stderr.write(f"{problem}; try again\n")
    raise InvalidInput(f"{problem} ({ATTEMPTS} attempts); nothing was changed")


def _refused(password: str, check: Check | None) -> str | None:
    if not password:
        return "no password given"
    if check is not None:
        try:
            check(password)
        except InvalidInput as e:
            return str(e)
    return None


def generate() -> str:
    import secrets

    # 24 URL-safe characters: 144 bits, well inside bcrypt's 72 bytes.
    return secrets.token_urlsafe(18)


def resolve(
    *,
    stdin: bool = False,
    file: Path | None = None,
    generated: bool = False,
    none: bool = False,
    check: Check | None = None,
) -> Password:
    """The one password source given, or a confirmed prompt on a terminal that asks
    again for a password `check` refuses."""
    chosen = [stdin, file is not None, generated, none]
    if sum(chosen) > 1:
        raise InvalidInput(
            "give only one of --password-stdin, --password-file, --generate-password, --no-password"
        )
    if stdin:
        return Password(from_stdin())
    if file is not None:
        return Password(from_file(file))
    if generated:
        return Password(generate(), generated=True)
    if none:
        return Password(None)
    return Password(prompt(confirm=True, check=check))


def resolve_for_check(*, stdin: bool, file: Path | None) -> str:
    """The password to verify: stdin, a file, or an unconfirmed prompt on a terminal."""
    if stdin and file is not None:
        raise InvalidInput("give only one of --password-stdin and --password-file")
    if stdin:
        return from_stdin()
    if file is not None:
        return from_file(file)
    return prompt(confirm=False)
