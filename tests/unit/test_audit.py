"""The audit chain's canonical form and chain functions (usermgr/domain/audit.py), on
plain dicts: the bytes each hash covers, and what verify_chain finds when a log was
edited, cut, or had events removed or inserted."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usermgr.domain.audit import CHAINED_FIELDS, GENESIS, Break, canonical, chain_hash, extend_chain, verify_chain

EVENT: dict[str, Any] = {
    "id": "6f1c7b52-0c1e-4c55-9d7e-2f0a1b3c4d5e",
    "type": "UserCreated",
    "user_id": "0b8e9d3a-5f4c-4e2b-8a1d-7c6b5a4f3e2d",
    "occurred_at": "2026-01-02T03:04:05.678901Z",
    "actor": "root (sudo: zoë)",
    "data": {"email": "zoë@example.com", "name": "Zoë Ærø", "role": "user", "is_active": True},
}
# Pinned: any change to the canonical form changes every hash of every existing log,
# so it must fail here first (and then needs a migration and a README change).
EVENT_CANONICAL = (
    b'{"actor":"root (sudo: zo\xc3\xab)",'
    b'"data":{"email":"zo\xc3\xab@example.com","is_active":true,"name":"Zo\xc3\xab \xc3\x86r\xc3\xb8","role":"user"},'
    b'"id":"6f1c7b52-0c1e-4c55-9d7e-2f0a1b3c4d5e","occurred_at":"2026-01-02T03:04:05.678901Z",'
    b'"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"type":"UserCreated","user_id":"0b8e9d3a-5f4c-4e2b-8a1d-7c6b5a4f3e2d"}'
)
EVENT_HASH = "f0643d51b5331fcc7631569e5ac60a4dd466263b73a701f24344d80b28e8854b"


def chained(count: int) -> list[dict[str, Any]]:
    """A log of `count` events, each with its stored hash, as the database holds them."""
    events = [
        {**EVENT, "id": f"event-{n}", "user_id": f"user-{n % 3}", "data": {"email": f"u{n}@example.com", "n": n}}
        for n in range(1, count + 1)
    ]
    return [{**event, "hash": h} for event, h in zip(events, extend_chain(events, GENESIS))]


def forged(n: int) -> dict[str, Any]:
    return {**EVENT, "id": f"forged-{n}", "type": "UserDeleted", "data": {"email": "someone@example.com"}}


# --- the canonical form -------------------------------------------------------------


def test_the_genesis_value_is_64_zeros() -> None:
    assert GENESIS == "0" * 64


def test_a_known_event_has_exactly_these_bytes_and_this_hash() -> None:
    assert canonical(EVENT, GENESIS) == EVENT_CANONICAL
    assert chain_hash(EVENT, GENESIS) == EVENT_HASH
    assert hashlib.sha256(EVENT_CANONICAL).hexdigest() == EVENT_HASH


def test_non_ascii_is_utf_8_never_a_unicode_escape() -> None:
    body = canonical(EVENT, GENESIS)
    assert "Zoë Ærø".encode() in body
    assert b"\\u" not in body
    body.decode("utf-8")  # strict: valid UTF-8 throughout


def test_the_canonical_form_is_json_of_the_fields_and_prev_with_sorted_keys_and_no_whitespace() -> None:
    event = {**EVENT, "actor": "root", "data": {"b": [1, {"d": None, "c": False}], "a": "x"}}
    body = canonical(event, "ab" * 32)
    assert json.loads(body) == {**event, "prev": "ab" * 32}
    assert body.startswith(b'{"actor":"root","data":{"a":"x","b":[1,{"c":false,"d":null}]},"id":')
    assert not any(c in body for c in b" \t\r\n")


def test_the_order_and_whitespace_of_stored_data_do_not_matter() -> None:
    stored_compact = '{"email":"zoë@example.com","name":"Zoë Ærø","role":"user","is_active":true}'
    stored_spaced = '{\n  "is_active" : true,\n  "role": "user",\t"name": "Zo\\u00eb \\u00c6r\\u00f8", "email": "zo\\u00eb@example.com"\n}'
    reversed_order = dict(reversed(list(EVENT["data"].items())))
    hashes = {
        chain_hash({**EVENT, "data": data}, GENESIS)
        for data in (json.loads(stored_compact), json.loads(stored_spaced), reversed_order)
    }
    assert hashes == {EVENT_HASH}


def test_fields_outside_the_chain_such_as_the_stored_hash_do_not_count() -> None:
    with_extra = {**EVENT, "hash": "f" * 64, "email_key": "zoë@example.com", "seq": 7}
    assert canonical(with_extra, GENESIS) == EVENT_CANONICAL


CHANGES = {
    "id": "6f1c7b52-0c1e-4c55-9d7e-2f0a1b3c4d5f",
    "type": "UserDeleted",
    "user_id": "0b8e9d3a-5f4c-4e2b-8a1d-7c6b5a4f3e2e",
    "occurred_at": "2026-01-02T03:04:05.678902Z",
    "actor": "mallory",
    "data": {**EVENT["data"], "role": "admin"},
}


@pytest.mark.parametrize("field", CHAINED_FIELDS)
def test_every_field_is_covered_by_the_hash(field: str) -> None:
    assert chain_hash({**EVENT, field: CHANGES[field]}, GENESIS) != EVENT_HASH


@pytest.mark.parametrize(
    "data",
    [
        {**EVENT["data"], "is_active": False},
        {**EVENT["data"], "is_active": 1},  # true and 1 are different JSON
        {k: v for k, v in EVENT["data"].items() if k != "role"},
        {**EVENT["data"], "extra": None},
        {**EVENT["data"], "name": "Zoe Ærø"},
    ],
)
def test_any_change_inside_data_changes_the_hash(data: dict[str, Any]) -> None:
    assert chain_hash({**EVENT, "data": data}, GENESIS) != EVENT_HASH


def test_the_previous_hash_is_covered_by_the_hash() -> None:
    assert chain_hash(EVENT, "0" * 63 + "1") != EVENT_HASH


def test_the_chain_fields_are_the_events_fields_of_the_contract() -> None:
    assert CHAINED_FIELDS == ("id", "type", "user_id", "occurred_at", "actor", "data")


# --- verify_chain -------------------------------------------------------------------


def test_an_intact_log_verifies_to_its_last_hash() -> None:
    log = chained(5)
    report = verify_chain(log)
    assert (report.events, report.head, report.broken, report.head_found) == (5, log[-1]["hash"], None, None)


def test_an_empty_log_verifies_and_its_head_is_genesis() -> None:
    report = verify_chain([])
    assert (report.events, report.head, report.broken, report.head_found) == (0, GENESIS, None, None)
    assert verify_chain([], GENESIS).head_found is True
    assert verify_chain([], "a" * 64).head_found is False


@pytest.mark.parametrize("position", [1, 3, 5])
@pytest.mark.parametrize("field", CHAINED_FIELDS)
def test_an_edited_event_is_the_first_that_does_not_match(position: int, field: str) -> None:
    log = chained(5)
    log[position - 1] = {**log[position - 1], field: CHANGES[field]}
    report = verify_chain(log)
    assert report.broken == Break(position, log[position - 1]["id"])
    assert report.events == position - 1
    assert report.head == (log[position - 2]["hash"] if position > 1 else GENESIS)


def test_an_edited_hash_breaks_the_chain_at_that_event() -> None:
    log = chained(5)
    log[2] = {**log[2], "hash": "e" * 64}
    assert verify_chain(log).broken == Break(3, "event-3")


def test_an_event_without_a_hash_breaks_the_chain() -> None:
    log = chained(3)
    del log[1]["hash"]
    assert verify_chain(log).broken == Break(2, "event-2")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_value_with_no_canonical_form_is_a_break_not_an_error(value: float) -> None:
    # Regression: json.loads reads NaN and 1e999 from a hand-edited row; canonical() refuses them.
    log = chained(3)
    log[1] = {**log[1], "data": {"email": value}}
    assert verify_chain(log).broken == Break(2, "event-2")


@pytest.mark.parametrize("removed", [1, 2, 4])
def test_a_removed_event_breaks_the_chain_at_the_one_after_it(removed: int) -> None:
    log = chained(5)
    del log[removed - 1]
    assert verify_chain(log).broken == Break(removed, f"event-{removed + 1}")


def test_two_events_swapped_break_the_chain_at_the_first_of_them() -> None:
    log = chained(5)
    log[1], log[2] = log[2], log[1]
    assert verify_chain(log).broken == Break(2, "event-3")


@pytest.mark.parametrize("position", [1, 3, 5])
def test_an_inserted_event_with_a_made_up_hash_breaks_the_chain_at_itself(position: int) -> None:
    log = chained(5)
    log.insert(position - 1, {**forged(position), "hash": "d" * 64})
    assert verify_chain(log).broken == Break(position, f"forged-{position}")


@pytest.mark.parametrize("position", [1, 3, 5])
def test_an_inserted_event_with_a_correct_hash_breaks_the_chain_at_the_next_event(position: int) -> None:
    # A forger who recomputes the forged event's own hash still cannot make the next
    # event's hash, which covers the hash before it, match.
    log = chained(5)
    prev = log[position - 2]["hash"] if position > 1 else GENESIS
    log.insert(position - 1, {**forged(position), "hash": chain_hash(forged(position), prev)})
    assert verify_chain(log).broken == Break(position + 1, f"event-{position}")


def test_an_event_appended_with_a_made_up_hash_breaks_the_chain_at_itself() -> None:
    log = chained(5)
    log.append({**forged(6), "hash": "d" * 64})
    assert verify_chain(log).broken == Break(6, "forged-6")


def test_an_event_appended_with_a_correct_hash_is_indistinguishable_from_a_real_one() -> None:
    # What the chain cannot prove: an append with a recomputed hash. The old head is
    # still in the chain, so --head passes too; this is the documented limit.
    log = chained(5)
    old_head = log[-1]["hash"]
    log.append({**forged(6), "hash": chain_hash(forged(6), old_head)})
    report = verify_chain(log, old_head)
    assert (report.events, report.broken, report.head_found) == (6, None, True)


@pytest.mark.parametrize("kept", [0, 1, 4])
def test_a_log_cut_back_verifies_alone_and_fails_only_with_the_old_head(kept: int) -> None:
    log = chained(5)
    old_head = log[-1]["hash"]
    cut = log[:kept]
    alone = verify_chain(cut)
    assert (alone.events, alone.broken, alone.head_found) == (kept, None, None)
    assert alone.head == (cut[-1]["hash"] if cut else GENESIS)
    with_head = verify_chain(cut, old_head)
    assert (with_head.broken, with_head.head_found) == (None, False)


def test_an_expected_head_from_earlier_in_the_chain_is_found() -> None:
    log = chained(5)
    assert verify_chain(log, log[1]["hash"]).head_found is True
    assert verify_chain(log, GENESIS).head_found is True


def test_a_log_rewritten_from_some_point_on_fails_only_with_the_old_head() -> None:
    log = chained(5)
    old_head = log[-1]["hash"]
    rewritten = log[:2]
    for n in (3, 4):
        rewritten.append({**forged(n), "hash": chain_hash(forged(n), rewritten[-1]["hash"])})
    assert verify_chain(rewritten).broken is None
    assert verify_chain(rewritten, old_head).head_found is False


# --- extend_chain: properties --------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
events_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.uuids().map(str),
            "type": st.sampled_from(["UserCreated", "UserUpdated", "UserDeleted", "UserRoleChanged"]),
            "user_id": st.uuids().map(str),
            "occurred_at": st.datetimes().map(lambda d: d.isoformat() + "Z"),
            "actor": st.text(min_size=1, max_size=30),
            "data": st.dictionaries(st.text(max_size=10), json_value, max_size=4),
        }
    ),
    max_size=12,
)


@given(events_strategy)
def test_extend_then_verify_round_trips_for_any_events(events: list[dict[str, Any]]) -> None:
    hashes = list(extend_chain(events, GENESIS))
    report = verify_chain([{**event, "hash": h} for event, h in zip(events, hashes)])
    assert report.broken is None
    assert report.events == len(events)
    assert report.head == (hashes[-1] if hashes else GENESIS)


@given(events_strategy, st.integers(min_value=0, max_value=12))
def test_extending_in_batches_gives_the_same_chain_as_extending_at_once(events: list[dict[str, Any]], cut: int) -> None:
    # Writers append batch after batch to the head they read: the split must not show.
    first = list(extend_chain(events[:cut], GENESIS))
    rest = list(extend_chain(events[cut:], first[-1] if first else GENESIS))
    assert first + rest == list(extend_chain(events, GENESIS))


@given(events_strategy.filter(bool), st.data())
def test_the_stored_json_text_of_data_does_not_matter(events: list[dict[str, Any]], data: st.DataObject) -> None:
    # The database keeps data as JSON text, written by whichever usermgr (or person)
    # wrote the row; any JSON text of the same value verifies.
    hashes = list(extend_chain(events, GENESIS))
    indent = data.draw(st.sampled_from([None, 0, 2]))
    ascii_only = data.draw(st.booleans())
    reread = [
        {**event, "data": json.loads(json.dumps(event["data"], indent=indent, ensure_ascii=ascii_only)), "hash": h}
        for event, h in zip(events, hashes)
    ]
    assert verify_chain(reread).broken is None


@given(events_strategy.filter(bool), st.data())
def test_any_changed_field_is_found_at_that_event(events: list[dict[str, Any]], data: st.DataObject) -> None:
    log = [{**event, "hash": h} for event, h in zip(events, extend_chain(events, GENESIS))]
    position = data.draw(st.integers(min_value=1, max_value=len(log)))
    field = data.draw(st.sampled_from(CHAINED_FIELDS))
    before = log[position - 1][field]
    after = {"changed": before} if field == "data" else before + "x"
    log[position - 1] = {**log[position - 1], field: after}
    assert verify_chain(log).broken == Break(position, log[position - 1]["id"])
