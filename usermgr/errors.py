"""The errors usermgr reports to its user; the CLI maps each to an exit code."""


class UsermgrError(Exception):
    """An expected failure, shown to the user as one line (after its `details`,
    one line each, for failures about many rows)."""

    exit_code = 1
    details: tuple[str, ...] = ()


class InvalidInput(UsermgrError):
    """Bad input: email, name, role, password, file, flags or config."""

    exit_code = 2


class InvalidField(InvalidInput):
    """A bad value of one named field of a command; the CLI names its flag instead."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"invalid {field}: {detail}")
        self.field = field
        self.detail = detail


class InvalidRows(InvalidInput):
    """Some rows of an import are invalid; each is one `line N: why` detail."""

    def __init__(self, details: list[str]) -> None:
        super().__init__(f"{len(details)} invalid row(s); nothing was written")
        self.details = tuple(details)


class UserNotFound(UsermgrError):
    """No user has that id or email."""

    exit_code = 3

    def __init__(self, ref: str) -> None:
        super().__init__(f"no user {ref!r}")


class EmailTaken(UsermgrError):
    """Another user already has that email."""

    exit_code = 4

    def __init__(self, email: str | None = None) -> None:
        what = f"email {email!r}" if email else "that email"
        super().__init__(f"a user with {what} already exists")


class RowsConflict(EmailTaken):
    """Some imported rows name users that already exist."""

    def __init__(self, details: list[str], *, hint: str = "") -> None:
        UsermgrError.__init__(
            self, f"{len(details)} row(s) name existing users; nothing was written{hint}"
        )
        self.details = tuple(details)


class VerificationFailed(UsermgrError):
    """Wrong password, inactive user, unknown user or no usable password."""

    exit_code = 5

    def __init__(self) -> None:
        super().__init__("verification failed")


class StorageUnavailable(UsermgrError):
    """The database is busy, unreadable, corrupt, foreign or of a newer schema."""

    exit_code = 6


class DeliveriesFailed(UsermgrError):
    """Some hook deliveries still fail after a retry."""

    exit_code = 7


class WorkToDo(UsermgrError):
    """A check found something to do: drift to apply, weak or missing hashes."""

    exit_code = 8


class OutputFailed(UsermgrError):
    """Standard output could not be written (a full disk, a closed terminal)."""

    exit_code = 74  # EX_IOERR of sysexits.h

    def __init__(self, why: str) -> None:
        super().__init__(f"cannot write the output: {why}")
        self.committed = False

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; the change itself was made" if self.committed else text


class HooksInterrupted(KeyboardInterrupt):
    """Ctrl-C while hooks ran: unlike any other interruption, the change is committed."""


def shown(value: object) -> str:
    """A path or other text for a message, with anything unprintable escaped, so a
    name holding terminal escapes or newlines prints as one harmless line."""
    text = str(value)
    if text.isprintable():
        return text
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")
