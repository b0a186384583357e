"""The reconciler's decisions as a table: wait, leave alone, requeue or give up."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff_gc.rules import (
    GIVE_UP,
    HELD,
    REQUEUE,
    WAIT,
    QueuedFacts,
    reconcile_decision,
)

NOW = 1_700_000_000.0
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
def test_decision_table(given_facts: QueuedFacts, expected: str) -> None:
    assert reconcile_decision(given_facts, AFTER, MAX) == expected


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), st.integers(0, 10))
def test_a_held_message_is_never_requeued(age: float, requeues: int) -> None:
    assert reconcile_decision(queued(age, requeues, held=True), AFTER, MAX) in (WAIT, HELD)


@given(st.floats(min_value=-1e7, max_value=AFTER, allow_nan=False), st.integers(0, 10))
def test_nothing_happens_within_requeue_after(age: float, requeues: int) -> None:
    """At most one requeue per period: the requeue resets ``since``."""
    assert reconcile_decision(queued(age, requeues), AFTER, MAX) == WAIT
