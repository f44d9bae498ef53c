"""The audit log's hash chain: each event's hash covers the event and the hash before it.

The canonical form of an event is the UTF-8 bytes of one JSON object holding its
fields `id`, `type`, `user_id`, `occurred_at`, `actor`, `data` and `prev` (the hash
of the event before it, GENESIS for the first), keys sorted, no whitespace,
non-ASCII characters as themselves (RFC 8785's form for this data: every key is
ASCII and no value is a float). Its SHA-256, in lower-case hex, is the event's hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
CHAINED_FIELDS = ("id", "type", "user_id", "occurred_at", "actor", "data")

_canonical_json = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical(event: dict[str, Any], prev: str) -> bytes:
    """The bytes an event's hash is computed over."""
    fields = {name: event[name] for name in CHAINED_FIELDS}
    fields["prev"] = prev
    return _canonical_json(fields).encode("utf-8")


def chain_hash(event: dict[str, Any], prev: str) -> str:
    from hashlib import sha256  # OpenSSL's start-up: only the paths that hash pay it

    return sha256(canonical(event, prev)).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first event whose stored hash is not what the chain gives."""

    position: int  # 1-based, in log order
    event_id: str


@dataclass(frozen=True)
class ChainReport:
    events: int
    head: str  # the last event's hash, GENESIS for an empty log
    broken: Break | None
    head_found: bool | None  # whether an expected head is in the chain; None when none was asked


def verify_chain(events: Iterable[dict[str, Any]], expected_head: str | None = None) -> ChainReport:
    """Recompute the chain over events in log order, each with its stored `hash`."""
    prev = GENESIS
    count = 0
    found = None if expected_head is None else expected_head == GENESIS
    for count, event in enumerate(events, 1):
        try:
            matches = chain_hash(event, prev) == event.get("hash")
        except (ValueError, RecursionError):  # no canonical form (NaN, nesting thousands deep): not usermgr's
            matches = False
        if not matches:
            return ChainReport(count - 1, prev, Break(count, str(event.get("id"))), found)
        prev = event["hash"]
        if prev == expected_head:
            found = True
    return ChainReport(count, prev, None, found)


def extend_chain(events: Iterable[dict[str, Any]], head: str) -> Iterator[str]:
    """The hashes of new events appended after `head`, in order."""
    prev = head
    for event in events:
        prev = chain_hash(event, prev)
        yield prev
