"""The in-process event bus: after a commit, each event goes to its subscribers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from usermgr.domain.events import Event

Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, report: Callable[[str], None]) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._report = report

    def subscribe(self, event_type: str, subscriber: Subscriber) -> None:
        """Call `subscriber` for every event of `event_type`, or of any type with "*"."""
        self._subscribers[event_type].append(subscriber)

    def publish(self, events: Iterable[Event]) -> None:
        for event in events:
            for subscriber in [*self._subscribers[event.type], *self._subscribers["*"]]:
                # A subscriber runs after the change committed: its failure must
                # neither undo the change nor keep the other subscribers from running.
                try:
                    subscriber(event)
                except Exception as e:  # noqa: BLE001 - isolation is the point
                    name = getattr(subscriber, "__qualname__", repr(subscriber))
                    self._report(f"{name} failed on {event.type} {event.id}: {e}")
