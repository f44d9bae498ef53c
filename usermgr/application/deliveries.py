"""Hook deliveries: run after a commit, retried, listed and discarded.

A delivery names its hook; what runs is always the hook of that name as the config
defines it now. Nothing read from the database is ever executed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from usermgr.application import commands, queries
from usermgr.application.ports import Clock, Delivery, DeliveryLog, Hook, HookRunner, Report
from usermgr.domain.events import Event
from usermgr.domain.values import format_timestamp

# A claim outlives its hook's timeout by this much; past it, a crashed runner's
# claim lapses and the delivery can be retried.
CLAIM_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    error: str | None  # None: delivered


@dataclass(frozen=True)
class DeliveryStatus:
    delivery: Delivery
    state: str  # "orphaned", "claimed", "failed" or "pending"


@dataclass(frozen=True)
class HooksReport:
    hooks: tuple[Hook, ...]
    deliveries: list[DeliveryStatus]


@dataclass(frozen=True)
class RetrySummary:
    delivered: int
    failed: int
    orphaned: int  # recorded for a hook the config no longer has: not run, still failing
    elsewhere: int  # being run by another usermgr right now

    @property
    def still_failing(self) -> int:
        return self.failed + self.orphaned


class Hooks:
    """The configured hooks by name, and the one way a delivery is run."""

    def __init__(self, hooks: Iterable[Hook], log: DeliveryLog, run: HookRunner, clock: Clock, report: Report) -> None:
        self.by_name = {hook.name: hook for hook in hooks}
        self._log = log
        self._run = run
        self._clock = clock
        self._report = report

    def deliver(self, deliveries: Iterable[Delivery]) -> list[Outcome]:
        """Run each delivery whose hook is configured and that this runner can claim, in order."""
        outcomes = []
        for delivery in deliveries:
            hook = self.by_name.get(delivery.hook) if delivery.hook is not None else None
            if hook is None:
                continue
            now = self._clock()
            if not self._log.claim(delivery, now=now, until=now + timedelta(seconds=hook.timeout) + CLAIM_MARGIN):
                continue
            try:
                error = self._run(hook.command, delivery.event.as_dict(), hook.timeout)
            except BaseException:
                self._log.failed(delivery, "interrupted", now=self._clock())
                raise
            if error is None:
                self._log.succeeded(delivery)
            else:
                self._log.failed(delivery, error, now=self._clock())
                self._report(
                    f"hook {hook.name!r} failed for {delivery.event.type} {delivery.event.id}: {error}"
                    f" (kept as delivery {delivery.id}; run 'usermgr hooks retry')"
                )
            outcomes.append(Outcome(delivery, error))
        return outcomes

    def on_event(self, event: Event) -> None:
        """The bus subscriber: run the deliveries the commit wrote for this event."""
        self.deliver(self._log.for_event(event.id))


def list_hooks(query: queries.ListHooks, *, log: DeliveryLog, hooks: Hooks, clock: Clock) -> HooksReport:
    now = format_timestamp(clock())
    statuses = []
    for delivery in log.pending():
        if delivery.hook is None or delivery.hook not in hooks.by_name:
            state = "orphaned"
        elif delivery.claimed_until and delivery.claimed_until > now:
            state = "claimed"
        elif delivery.attempts:
            state = "failed"
        else:
            state = "pending"
        statuses.append(DeliveryStatus(delivery, state))
    return HooksReport(tuple(hooks.by_name.values()), statuses)


def retry_deliveries(cmd: commands.RetryDeliveries, *, log: DeliveryLog, hooks: Hooks) -> RetrySummary:
    pending = log.pending()
    orphaned = sum(1 for d in pending if d.hook is None or d.hook not in hooks.by_name)
    outcomes = hooks.deliver(pending)
    failed = sum(1 for o in outcomes if o.error is not None)
    return RetrySummary(
        delivered=len(outcomes) - failed,
        failed=failed,
        orphaned=orphaned,
        elsewhere=len(pending) - orphaned - len(outcomes),
    )


def discard_deliveries(cmd: commands.DiscardDeliveries, *, log: DeliveryLog) -> int:
    return log.discard(cmd.delivery_id)
