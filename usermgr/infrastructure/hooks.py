"""Running local hook programs for events, and the durable record of their deliveries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from usermgr.domain.events import Event
from usermgr.domain.values import format_timestamp
from usermgr.infrastructure.sqlite import SQLITE_MAX_INT, Database
from usermgr.infrastructure.views import EVENT_COLUMNS, event_view

# A claim outlives its hook's timeout by this much; past it, a crashed runner's
# claim lapses and the delivery can be retried.
CLAIM_MARGIN = timedelta(seconds=60)
ERROR_TAIL = 200


@dataclass(frozen=True)
class Delivery:
    id: int
    event: dict[str, Any]
    command: list[str]
    timeout: float
    attempts: int
    last_error: str | None
    last_attempt_at: str | None
    claimed_until: str | None


def run_hook(command: list[str], event: dict[str, Any], timeout: float) -> str | None:
    """Run one hook without a shell; None on success, else why it failed."""
    env = {
        **os.environ,
        "USERMGR_EVENT_TYPE": event["type"],
        "USERMGR_EVENT_ID": event["id"],
        "USERMGR_USER_ID": event["user_id"],
    }
    payload = json.dumps(event, ensure_ascii=False).encode("utf-8")
    # Output goes to a file, never to our stdout and never to a pipe that a
    # backgrounded grandchild could hold open past the hook's exit.
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                env=env,
                start_new_session=True,  # its own process group, killed whole on timeout
            )
        except OSError as e:
            return f"cannot run {command[0]}: {e.strerror or e}"
        try:
            proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return f"timed out after {timeout:g}s; killed with its children"
        except BaseException:
            _kill_group(proc)
            raise
        if proc.returncode == 0:
            return None
        output.seek(0)
        tail = _last_line(output.read())
        status = (
            f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        )
        return f"{status}: {tail}" if tail else status


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _last_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return ""
    printable = "".join(ch if ch.isprintable() else "?" for ch in lines[-1])
    return printable[-ERROR_TAIL:]


class DeliveryStore:
    """Pending and failed deliveries, claimed one at a time so no two runners
    deliver the same one."""

    def __init__(self, db: Database) -> None:
        self._database = db

    def _select(self, where: str, params: tuple[Any, ...]) -> list[Delivery]:
        event_columns = ", ".join(f"e.{c}" for c in EVENT_COLUMNS.split(", "))
        rows = self._database.query(
            "SELECT d.id, d.command, d.timeout, d.attempts, d.last_error, d.last_attempt_at,"
            " d.claimed_until,"
            f" {event_columns} FROM deliveries d JOIN events e ON e.id = d.event_id"
            f" {where} ORDER BY d.id",
            params,
        )
        return [
            Delivery(
                id=r[0],
                command=json.loads(r[1]),
                timeout=r[2],
                attempts=r[3],
                last_error=r[4],
                last_attempt_at=r[5],
                claimed_until=r[6],
                event=event_view(r[7:]),
            )
            for r in rows
        ]

    def pending(self) -> list[Delivery]:
        return self._select("", ())

    def for_event(self, event_id: str) -> list[Delivery]:
        return self._select("WHERE d.event_id = ?", (event_id,))

    def claim(self, delivery: Delivery) -> bool:
        """Take a delivery for this runner, unless another runner holds a live claim."""
        now = datetime.now(timezone.utc)
        until = format_timestamp(now + timedelta(seconds=delivery.timeout) + CLAIM_MARGIN)
        claimed = self._database.execute(
            "UPDATE deliveries SET claimed_until = ?"
            " WHERE id = ? AND (claimed_until IS NULL OR claimed_until < ?)",
            (until, delivery.id, format_timestamp(now)),
        )
        return claimed == 1

    def succeeded(self, delivery: Delivery) -> None:
        self._database.execute("DELETE FROM deliveries WHERE id = ?", (delivery.id,))

    def failed(self, delivery: Delivery, error: str) -> None:
        self._database.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?,"
            " last_attempt_at = ?, claimed_until = NULL WHERE id = ?",
            (error, format_timestamp(datetime.now(timezone.utc)), delivery.id),
        )

    def discard(self, delivery_id: int | None) -> int:
        """Drop one delivery, or all of them with None; return how many went."""
        if delivery_id is None:
            return self._database.execute("DELETE FROM deliveries")
        if not 0 < delivery_id <= SQLITE_MAX_INT:
            return 0
        return self._database.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    error: str | None


class HookDispatcher:
    """The bus subscriber that runs hooks, and `hooks retry` behind it."""

    def __init__(
        self,
        store: DeliveryStore,
        report: Callable[[str], None],
        run: Callable[[list[str], dict[str, Any], float], str | None] = run_hook,
    ) -> None:
        self.store = store
        self._report = report
        self._run = run

    def __call__(self, event: Event) -> None:
        for _ in self.deliver(self.store.for_event(event.id)):
            pass

    def deliver(self, deliveries: list[Delivery]) -> Iterator[Outcome]:
        """Run each delivery this runner can claim, oldest first; report each failure."""
        for delivery in deliveries:
            if not self.store.claim(delivery):
                continue
            try:
                error = self._run(delivery.command, delivery.event, delivery.timeout)
            except BaseException:
                self.store.failed(delivery, "interrupted")
                raise
            if error is None:
                self.store.succeeded(delivery)
            else:
                self.store.failed(delivery, error)
                self._report(
                    f"hook {delivery.command[0]} failed for {delivery.event['type']}"
                    f" {delivery.event['id']}: {error} (kept as delivery {delivery.id};"
                    " run 'usermgr hooks retry')"
                )
            yield Outcome(delivery, error)
