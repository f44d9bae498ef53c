"""bcrypt password hashing, imported only when a password is hashed or checked."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable

from usermgr.application.ports import HashInfo
from usermgr.domain.values import BCRYPT_MAX_BYTES

# $2a$ (htpasswd, older PHP), $2b$ (OpenBSD, Python) and $2y$ (PHP) hashes all verify.
BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def _checkable(password: str) -> bytes | None:
    """The bytes bcrypt would check, or None when checking them could match another
    password: bcrypt stops at a NUL byte (twelve NULs verified as one, or as thirteen)
    and refuses more than 72 bytes. No such password is ever hashed: it never verifies."""
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a JSON \ud800 escape) is no text
        return None
    return None if b"\0" in secret or len(secret) > BCRYPT_MAX_BYTES else secret


class BcryptHasher:
    def __init__(self, rounds: int = 12) -> None:
        self.rounds = rounds

    def hash(self, password: str) -> str:
        import bcrypt

        secret = password.encode("utf-8")
        if len(secret) > BCRYPT_MAX_BYTES:
            # The policy rejects these first; never let bcrypt see (or truncate) one.
            raise ValueError("password longer than 72 bytes")
        return bcrypt.hashpw(secret, bcrypt.gensalt(self.rounds)).decode("ascii")

    def verify(self, password: str, password_hash: str | None) -> bool:
        import bcrypt

        if password_hash is None:
            # Spend the same work as a real check, so a failure's timing tells nothing.
            bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(self.rounds))
            return False
        secret = _checkable(password)
        try:
            # A refused password is never checked; random bytes against the same hash
            # spend exactly the work of a real check, so the timing tells nothing.
            matched = bcrypt.checkpw(
                secrets.token_bytes(16) if secret is None else secret,
                password_hash.encode("ascii"),
            )
        except ValueError:
            return False
        return matched and secret is not None

    def inspect(self, password_hash: str) -> HashInfo:
        match = BCRYPT_HASH.fullmatch(password_hash)
        if match is None:
            return HashInfo(well_formed=False)
        cost = int(match.group(1))
        return HashInfo(well_formed=4 <= cost <= 31, cost=cost)

    def hash_many(
        self, passwords: list[str], progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        # bcrypt releases the GIL while it works: threads use every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            hashes = []
            for done, hashed in enumerate(pool.map(self.hash, passwords), 1):
                hashes.append(hashed)
                if progress:
                    progress(done, len(passwords))
        return hashes
