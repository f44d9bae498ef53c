"""The message bus: each command or query goes to its handler; after a commit, each
event goes to its subscribers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from usermgr.errors import HooksInterrupted, OutputFailed

if TYPE_CHECKING:
    from usermgr.application.ports import Report, UnitOfWork
    from usermgr.domain.events import Event

Subscriber = Callable[["Event"], None]


class EventBus:
    def __init__(self, report: Report) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._report = report

    @property
    def listened_to(self) -> bool:
        return any(self._subscribers.values())

    def subscribe(self, event_type: str, subscriber: Subscriber) -> None:
        """Call `subscriber` for every event of `event_type`, or of any type with "*"."""
        self._subscribers[event_type].append(subscriber)

    def publish(self, events: Iterable[Event]) -> None:
        try:
            for event in events:
                for subscriber in [*self._subscribers[event.type], *self._subscribers["*"]]:
                    # A subscriber runs after the change committed: its failure must
                    # neither undo the change nor keep the other subscribers from running.
                    try:
                        subscriber(event)
                    except Exception as e:  # noqa: BLE001 - isolation is the point
                        name = getattr(subscriber, "__qualname__", repr(subscriber))
                        self._report(f"the change is committed, but {name} failed on {event.type} {event.id}: {e}")
        except KeyboardInterrupt:
            raise HooksInterrupted() from None


Handler = Callable[..., Any]


class MessageBus:
    """Runs a message's handler with a fresh unit of work for commands, hands the
    result to `render` (so output is out before any hook runs), then publishes the
    events the handler committed."""

    def __init__(
        self,
        handlers: dict[type, Handler],
        unit_of_work: Callable[[bool], UnitOfWork],
        events: EventBus,
        uses_uow: frozenset[type],
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self._handlers = handlers
        self._unit_of_work = unit_of_work
        self._uses_uow = uses_uow
        self._on_close = on_close
        self.events = events

    def close(self) -> None:
        """Release what the handlers opened (database connections)."""
        self._on_close()

    def handle(self, message: object, *, render: Callable[[Any], None] | None = None, **options: Any) -> Any:
        handler = self._handlers[type(message)]
        if type(message) not in self._uses_uow:
            result = handler(message, **options)
            if render is not None:
                render(result)
            return result
        uow = self._unit_of_work(bool(getattr(message, "creates_storage", False)))
        uow.keep_events = self.events.listened_to
        result = handler(message, uow=uow, **options)
        committed = uow.collect_new_events()
        try:
            if render is not None:
                render(result)
        except OutputFailed as e:
            e.committed = uow.committed_changes > 0
            raise
        finally:
            # The change is in: its hooks run even when the output could not be written.
            self.events.publish(committed)
        return result
