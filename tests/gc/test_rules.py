"""The sweep rules as a table, plus properties that must hold for any facts."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo_service.store import State
from handoff_gc.rules import (
    AWAITING_JOB,
    BUSY,
    DELETE_REASONS,
    EXPIRED,
    GIVE_UP,
    HELD,
    NO_TIMESTAMP,
    ORPHAN,
    PARTIAL,
    PROCESSING,
    QUEUED,
    RECEIVING,
    REQUEUE,
    RETAINED,
    STALE_CLAIM,
    WAIT,
    Decision,
    Facts,
    QueuedFacts,
    Ttls,
    decide,
    reconcile_decision,
)

NOW = 1_700_000_000.0
TTLS = Ttls(orphan=100.0, partial=200.0, retention=1000.0)

# state -> the Facts field its age is measured from, and that age's TTL
MEASURED_FROM = {
    State.RECEIVING: ("last_activity", TTLS.partial),
    State.COMPLETE: ("manifest_time", TTLS.orphan),
    State.CLAIMED: ("claim_time", TTLS.retention),
    State.DONE: ("result_time", TTLS.retention),
    State.FAILED: ("result_time", TTLS.retention),
}

MARKERS = ("last_activity", "manifest_time", "job_time", "claim_time", "result_time")


def facts(state: State, lock_free: bool = True, **ages: float | None) -> Facts:
    """Facts at NOW with each given marker ``age`` seconds old (None: no marker)."""
    times = {name: None if age is None else NOW - age for name, age in ages.items()}
    return Facts(state=state, now=NOW, lock_free=lock_free, **times)


@pytest.mark.parametrize(
    ("given_facts", "expected"),
    [
        # receiving: judged by the last byte written, never by the folder's age
        (facts(State.RECEIVING, last_activity=201), Decision(True, PARTIAL)),
        (facts(State.RECEIVING, last_activity=200), Decision(False, RECEIVING)),
        (facts(State.RECEIVING, last_activity=5), Decision(False, RECEIVING)),
        (facts(State.RECEIVING, False, last_activity=10_000), Decision(False, BUSY)),
        (facts(State.RECEIVING), Decision(False, NO_TIMESTAMP)),
        # complete, no job: an orphan once ORPHAN_TTL passed since the manifest
        (facts(State.COMPLETE, manifest_time=101), Decision(True, ORPHAN)),
        (
            facts(State.COMPLETE, manifest_time=99, last_activity=5000),
            Decision(False, AWAITING_JOB),
        ),
        (facts(State.COMPLETE, False, manifest_time=5000), Decision(False, BUSY)),
        # queued: accepted work, never deleted however old (the reconciler's business)
        (facts(State.QUEUED, manifest_time=5000, job_time=10**6), Decision(False, QUEUED)),
        (facts(State.QUEUED, manifest_time=5000, job_time=999), Decision(False, QUEUED)),
        (facts(State.QUEUED, False, job_time=5000), Decision(False, BUSY)),
        # claimed: a dead worker's claim expires after RETENTION; a live one holds the lock
        (facts(State.CLAIMED, job_time=5000, claim_time=1001), Decision(True, STALE_CLAIM)),
        (facts(State.CLAIMED, job_time=5000, claim_time=10), Decision(False, PROCESSING)),
        (facts(State.CLAIMED, False, claim_time=5000), Decision(False, BUSY)),
        # done / failed: kept for RETENTION after the result
        (facts(State.DONE, claim_time=5000, result_time=1001), Decision(True, EXPIRED)),
        (facts(State.DONE, claim_time=5000, result_time=999), Decision(False, RETAINED)),
        (facts(State.FAILED, result_time=1001), Decision(True, EXPIRED)),
        (facts(State.FAILED, result_time=0), Decision(False, RETAINED)),
        (facts(State.FAILED, False, result_time=5000), Decision(False, BUSY)),
        (facts(State.DONE, claim_time=5000), Decision(False, NO_TIMESTAMP)),
        # a clock that went backwards makes nothing old
        (facts(State.DONE, result_time=-5000), Decision(False, RETAINED)),
    ],
)
def test_decision_table(given_facts: Facts, expected: Decision) -> None:
    assert decide(given_facts, TTLS) == expected


@pytest.mark.parametrize("state", [state for state in State if state is not State.QUEUED])
def test_every_state_but_queued_has_a_rule(state: State) -> None:
    marker, ttl = MEASURED_FROM[state]
    old = Facts(state=state, now=NOW, lock_free=True, **{marker: NOW - ttl - 1})
    assert decide(old, TTLS).delete
    assert not decide(replace(old, lock_free=False), TTLS).delete


ages = st.none() | st.floats(min_value=-1e6, max_value=1e7, allow_nan=False)
states = st.sampled_from(list(State))


@st.composite
def any_facts(draw: st.DrawFn) -> Facts:
    return facts(draw(states), draw(st.booleans()), **{name: draw(ages) for name in MARKERS})


@given(any_facts())
def test_queued_is_never_deleted(f: Facts) -> None:
    assert not decide(replace(f, state=State.QUEUED), TTLS).delete


@given(any_facts())
def test_a_held_lock_always_keeps(f: Facts) -> None:
    assert decide(replace(f, lock_free=False), TTLS) == Decision(False, BUSY)


@given(any_facts())
def test_deletes_only_what_outlived_its_ttl(f: Facts) -> None:
    decision = decide(f, TTLS)
    assert decision.delete == (decision.reason in DELETE_REASONS)
    if decision.delete:
        marker, ttl = MEASURED_FROM[f.state]
        assert f.lock_free
        assert f.now - getattr(f, marker) > ttl


@given(any_facts(), st.floats(min_value=0, max_value=1e7))
def test_waiting_longer_never_saves_an_upload(f: Facts, later: float) -> None:
    if decide(f, TTLS).delete:
        assert decide(replace(f, now=f.now + later), TTLS).delete


@given(any_facts(), st.sampled_from(MARKERS), ages)
def test_only_the_states_own_marker_counts(f: Facts, other: str, age: float | None) -> None:
    if other == MEASURED_FROM.get(f.state, ("job_time",))[0]:
        return
    moved = replace(f, **{other: None if age is None else NOW - age})
    assert decide(moved, TTLS) == decide(f, TTLS)


# the reconciler's decisions: wait, leave alone, requeue or give up
AFTER = 600.0
MAX = 3


def queued(age: float | None, requeues: int = 0, held: bool = False) -> QueuedFacts:
    return QueuedFacts(now=NOW, since=None if age is None else NOW - age,
                       requeues=requeues, held=held)


@pytest.mark.parametrize(
    ("given_facts", "expected"),
    [
        # a young message is left alone, held or not: the worker may be busy
        (queued(10), WAIT),
        (queued(AFTER), WAIT),
        (queued(10, held=True), WAIT),
        # no job marker time: facts read while the upload changed
        (queued(None), WAIT),
        # old, and the broker still has it (a long backlog): never duplicated
        (queued(AFTER + 1, held=True), HELD),
        (queued(10**6, requeues=MAX, held=True), HELD),
        # old and lost: requeued, until the bound
        (queued(AFTER + 1), REQUEUE),
        (queued(AFTER + 1, requeues=MAX - 1), REQUEUE),
        (queued(AFTER + 1, requeues=MAX), GIVE_UP),
        (queued(AFTER + 1, requeues=MAX + 5), GIVE_UP),
        # a clock that went backwards makes nothing old
        (queued(-10**6), WAIT),
    ],
)
def test_reconcile_decision_table(given_facts: QueuedFacts, expected: str) -> None:
    assert reconcile_decision(given_facts, AFTER, MAX) == expected


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), st.integers(0, 10))
def test_a_held_message_is_never_requeued(age: float, requeues: int) -> None:
    assert reconcile_decision(queued(age, requeues, held=True), AFTER, MAX) in (WAIT, HELD)


@given(st.floats(min_value=-1e7, max_value=AFTER, allow_nan=False), st.integers(0, 10))
def test_nothing_happens_within_requeue_after(age: float, requeues: int) -> None:
    """At most one requeue per period: the requeue resets ``since``."""
    assert reconcile_decision(queued(age, requeues), AFTER, MAX) == WAIT
