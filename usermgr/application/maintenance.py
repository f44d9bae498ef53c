"""The database's own health: check, backup, upgrade, and the stored hashes' health."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from usermgr.application import commands, queries
from usermgr.application.handlers import verify_events
from usermgr.application.ports import EventViews, PasswordHasher, StorageAdmin, StorageReport, Upgrade, UserViews
from usermgr.domain.audit import ChainReport


@dataclass(frozen=True)
class CheckReport:
    storage: StorageReport
    chain: ChainReport


def check_storage(query: queries.CheckStorage, *, admin: StorageAdmin, events: EventViews) -> CheckReport:
    storage = admin.check()
    return CheckReport(storage, verify_events(queries.VerifyEvents(), events=events))


def backup_storage(cmd: commands.BackupStorage, *, admin: StorageAdmin) -> None:
    admin.backup(cmd.target, force=cmd.force)


def upgrade_storage(cmd: commands.UpgradeStorage, *, admin: StorageAdmin) -> Upgrade:
    return admin.upgrade()


@dataclass(frozen=True)
class HashReport:
    users: int
    no_password: int
    by_cost: dict[int, int]
    weaker: int
    malformed: int
    weaker_users: list[str]
    rounds: int

    @property
    def needs_attention(self) -> bool:
        return bool(self.weaker or self.malformed or self.no_password)


def hash_health(query: queries.HashHealth, *, views: UserViews, hasher: PasswordHasher) -> HashReport:
    """One streaming pass over every stored hash; only counts and emails leave it."""
    users = no_password = malformed = 0
    by_cost: Counter[int] = Counter()
    weaker_users: list[str] = []
    inspect = hasher.inspect
    rounds = hasher.rounds
    for email, password_hash in views.password_hashes():
        users += 1
        if password_hash is None:
            no_password += 1
            continue
        info = inspect(password_hash)
        if not info.well_formed or info.cost is None:
            malformed += 1
            continue
        by_cost[info.cost] += 1
        if info.cost < rounds:
            weaker_users.append(email)
    return HashReport(
        users=users,
        no_password=no_password,
        by_cost=dict(sorted(by_cost.items())),
        weaker=len(weaker_users),
        malformed=malformed,
        weaker_users=weaker_users,
        rounds=rounds,
    )
