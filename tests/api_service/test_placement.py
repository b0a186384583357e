"""The placement rule: which replicas may take an upload, and which of them does."""

from collections import Counter

import pytest

from api_service.placement import RESERVE, Capacity, RoundRobin, by_affinity, refusal

IDLE = Capacity("geo-0", free_bytes=10 * RESERVE, in_flight=0, ready=True)


def test_a_ready_replica_with_room_may_take_the_upload() -> None:
    assert refusal("geo-0", IDLE, size=RESERVE) is None


@pytest.mark.parametrize(("capacity", "size", "reason"), [
    (None, 1, "unreachable"),
    (Capacity("geo-1", 10 * RESERVE, 0, True), 1, "calls itself 'geo-1'"),
    (Capacity(None, 10 * RESERVE, 0, True), 1, "calls itself None"),
    (Capacity("geo-0", 10 * RESERVE, 0, False), 1, "not ready"),
    (Capacity("geo-0", 100, 0, True), 101, "full"),
    (Capacity("geo-0", RESERVE - 1, 0, True), None, "full"),
])
def test_a_replica_is_skipped_when(capacity: Capacity | None, size: int | None,
                                   reason: str) -> None:
    assert refusal("geo-0", capacity, size) == reason


def test_an_upload_of_unknown_size_needs_the_reserve_only() -> None:
    assert refusal("geo-0", Capacity("geo-0", RESERVE, 0, True), None) is None


def test_the_fewest_uploads_arriving_wins() -> None:
    assert RoundRobin().choose([3, 1, 2]) == 1


def test_a_replica_that_may_not_take_uploads_is_never_chosen() -> None:
    turns = RoundRobin()
    assert {turns.choose([None, 5, None]) for _ in range(6)} == {1}


def test_no_eligible_replica_chooses_none() -> None:
    assert RoundRobin().choose([None, None]) is None


def test_ties_go_round_the_replicas_evenly() -> None:
    turns = RoundRobin()
    chosen = Counter(turns.choose([0, 0, 0]) for _ in range(60))
    assert chosen == {0: 20, 1: 20, 2: 20}


def test_ties_take_turns_among_the_least_busy_only() -> None:
    turns = RoundRobin()
    assert [turns.choose([0, 4, 0]) for _ in range(4)] == [0, 2, 0, 2]


def test_capacity_is_read_from_the_document_as_sent() -> None:
    document = {"replica": "geo-2", "free_bytes": 12, "in_flight": 3, "ready": True}
    assert Capacity.from_document(document) == Capacity("geo-2", 12, 3, True)


@pytest.mark.parametrize("document", [
    {"replica": 3, "free_bytes": 12, "in_flight": 3, "ready": True},
    {"replica": "geo-2", "free_bytes": "lots", "in_flight": 3, "ready": True},
    {"replica": "geo-2", "in_flight": 3, "ready": True},
])
def test_a_malformed_capacity_is_refused(document: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        Capacity.from_document(document)


def test_ready_must_be_true_itself() -> None:
    document = {"replica": "geo-2", "free_bytes": 12, "in_flight": 3, "ready": "yes"}
    assert not Capacity.from_document(document).ready


def test_an_affinity_key_picks_the_same_replica_every_time() -> None:
    names = ["geo-0", "geo-1", "geo-2"]
    chosen = {by_affinity("alice", names, [0, 5, 9]) for _ in range(5)}
    assert len(chosen) == 1


def test_an_affinity_key_skips_a_replica_that_cannot_take_uploads() -> None:
    names = ["geo-0", "geo-1", "geo-2"]
    first = by_affinity("alice", names, [0, 0, 0])
    assert first is not None
    loads: list[int | None] = [0, 0, 0]
    loads[first] = None
    assert by_affinity("alice", names, loads) not in (first, None)
    assert by_affinity("alice", names, [None, None, None]) is None


def test_affinity_keys_spread_over_the_replicas() -> None:
    names = ["geo-0", "geo-1", "geo-2"]
    chosen = {by_affinity(f"tenant-{n}", names, [0, 0, 0]) for n in range(30)}
    assert chosen == {0, 1, 2}
