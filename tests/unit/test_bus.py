"""The in-process event bus: routing by type and "*", and isolation of failures."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from usermgr.application.bus import EventBus
from usermgr.domain import events

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def activated() -> events.UserActivated:
    return events.UserActivated(user_id="u1", email="alice@example.com", occurred_at=NOW)


def deleted() -> events.UserDeleted:
    return events.UserDeleted(user_id="u2", email="bob@example.com", occurred_at=NOW)


@pytest.fixture
def reports() -> list[str]:
    return []


@pytest.fixture
def bus(reports: list[str]) -> EventBus:
    return EventBus(reports.append)


def test_a_subscriber_receives_only_events_of_its_type(bus: EventBus) -> None:
    received: list[events.Event] = []
    bus.subscribe("UserActivated", received.append)
    a, d = activated(), deleted()

    bus.publish([a, d])

    assert received == [a]


def test_a_star_subscriber_receives_every_event_in_order(bus: EventBus) -> None:
    received: list[events.Event] = []
    bus.subscribe("*", received.append)
    a, d = activated(), deleted()

    bus.publish([a, d])

    assert received == [a, d]


def test_every_subscriber_of_a_type_is_called(bus: EventBus) -> None:
    first: list[events.Event] = []
    second: list[events.Event] = []
    bus.subscribe("UserDeleted", first.append)
    bus.subscribe("UserDeleted", second.append)
    d = deleted()

    bus.publish([d])

    assert first == second == [d]


def test_typed_subscribers_run_before_star_subscribers(bus: EventBus) -> None:
    order: list[str] = []
    bus.subscribe("*", lambda e: order.append("star"))
    bus.subscribe("UserActivated", lambda e: order.append("typed"))

    bus.publish([activated()])

    assert order == ["typed", "star"]


def test_publishing_with_no_subscribers_does_nothing(bus: EventBus, reports: list[str]) -> None:
    bus.publish([activated(), deleted()])

    assert reports == []


def test_publishing_no_events_calls_nobody(bus: EventBus) -> None:
    received: list[events.Event] = []
    bus.subscribe("*", received.append)

    bus.publish([])

    assert received == []


def test_a_failing_subscriber_is_reported_and_the_others_still_run(
    bus: EventBus, reports: list[str]
) -> None:
    received_typed: list[events.Event] = []
    received_star: list[events.Event] = []

    def send_welcome(event: events.Event) -> None:
        raise RuntimeError("mail server down")

    bus.subscribe("UserActivated", send_welcome)
    bus.subscribe("UserActivated", received_typed.append)
    bus.subscribe("*", received_star.append)
    event = activated()

    bus.publish([event])

    assert received_typed == [event]
    assert received_star == [event]
    [line] = reports
    assert "send_welcome" in line
    assert "UserActivated" in line
    assert event.id in line
    assert "mail server down" in line


def test_a_failure_on_one_event_does_not_stop_later_events(bus: EventBus, reports: list[str]) -> None:
    received: list[events.Event] = []

    def fail_on_activation(event: events.Event) -> None:
        if event.type == "UserActivated":
            raise ValueError("boom")
        received.append(event)

    bus.subscribe("*", fail_on_activation)
    d = deleted()

    bus.publish([activated(), d])

    assert received == [d]
    assert len(reports) == 1


def test_each_failure_is_reported_once(bus: EventBus, reports: list[str]) -> None:
    def broken(event: events.Event) -> None:
        raise RuntimeError("nope")

    bus.subscribe("*", broken)

    bus.publish([activated(), deleted()])

    assert len(reports) == 2
    assert "UserActivated" in reports[0] and "UserDeleted" in reports[1]


def test_a_keyboard_interrupt_in_a_subscriber_is_not_swallowed(bus: EventBus, reports: list[str]) -> None:
    def interrupted(event: events.Event) -> None:
        raise KeyboardInterrupt

    bus.subscribe("*", interrupted)

    with pytest.raises(KeyboardInterrupt):
        bus.publish([activated()])
    assert reports == []
