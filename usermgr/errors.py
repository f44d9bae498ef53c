"""The errors usermgr reports to its user; the CLI maps each to an exit code."""


class UsermgrError(Exception):
    """An expected failure, shown to the user as one line (after its `details`,
    one line each, for failures about many rows)."""

    exit_code = 1
    details: tuple[str, ...] = ()


class InvalidInput(UsermgrError):
    """Bad input: email, name, role, password, file, flags or config."""

    exit_code = 2


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

    def __init__(self, details: list[str]) -> None:
        UsermgrError.__init__(
            self,
            f"{len(details)} row(s) name existing users; nothing was written"
            " (--exists-ok skips existing emails)",
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
