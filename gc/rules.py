"""When an upload may be deleted: pure decisions, no I/O.

Keeping the rules free of the file system lets every combination of state,
age and lock be tested as a table, and lets the sweeper ask the same
question twice (once cheaply, once under the lock) with the same answer
for the same facts.

Every age is measured from the marker that started the waiting, never from
the folder's creation: a slow upload that is still receiving is judged by
when its last byte arrived, an orphan by when its manifest was written.
"""

from dataclasses import dataclass

from handoff.states import State

ORPHAN = "orphan"
PARTIAL = "partial"
EXPIRED = "expired"
STALE_CLAIM = "stale-claim"

BUSY = "busy"
RECEIVING = "receiving"
AWAITING_JOB = "awaiting-job"
QUEUED = "queued"
PROCESSING = "processing"
RETAINED = "retained"
NO_TIMESTAMP = "no-timestamp"

DELETE_REASONS = (ORPHAN, PARTIAL, EXPIRED, STALE_CLAIM)


@dataclass(frozen=True)
class Ttls:
    """How long each kind of upload is left alone, in seconds."""

    orphan: float
    partial: float
    retention: float


@dataclass(frozen=True)
class Facts:
    """What the sweeper observed about one upload at time ``now``.

    Times are POSIX timestamps; a marker that does not exist is ``None``.
    ``last_activity`` is only needed for a receiving upload, so the sweeper
    may leave it ``None`` otherwise (walking a large upload is not free).
    ``lock_free`` is whether nobody else holds the upload's lock.
    """

    state: State
    now: float
    lock_free: bool
    last_activity: float | None = None
    manifest_time: float | None = None
    job_time: float | None = None
    claim_time: float | None = None
    result_time: float | None = None


@dataclass(frozen=True)
class Decision:
    delete: bool
    reason: str


# state -> (the marker the age is measured from, its TTL, delete reason, keep reason).
# A queued upload is accepted work: it is never deleted, only requeued or failed
# by the reconciler (see ``reconcile_decision``), after which retention applies.
_RULES: dict[State, tuple[str, str, str, str]] = {
    State.RECEIVING: ("last_activity", "partial", PARTIAL, RECEIVING),
    State.COMPLETE: ("manifest_time", "orphan", ORPHAN, AWAITING_JOB),
    State.CLAIMED: ("claim_time", "retention", STALE_CLAIM, PROCESSING),
    State.DONE: ("result_time", "retention", EXPIRED, RETAINED),
    State.FAILED: ("result_time", "retention", EXPIRED, RETAINED),
}


def decide(facts: Facts, ttls: Ttls) -> Decision:
    """Delete or keep, with the reason that goes into the log.

    A held lock always wins: whoever holds it (a writer still receiving, a
    worker processing, a DELETE in progress) owns the upload right now. A
    missing timestamp keeps the upload, because it means the facts were read
    while the upload changed and the next sweep will see it whole.
    """
    if not facts.lock_free:
        return Decision(False, BUSY)
    if facts.state is State.QUEUED:
        return Decision(False, QUEUED)
    since_field, ttl_field, delete_reason, keep_reason = _RULES[facts.state]
    since = getattr(facts, since_field)
    if since is None:
        return Decision(False, NO_TIMESTAMP)
    if facts.now - since > getattr(ttls, ttl_field):
        return Decision(True, delete_reason)
    return Decision(False, keep_reason)


# What the reconciler does with a queued upload.
WAIT = "wait"
HELD = "held"
REQUEUE = "requeue"
GIVE_UP = "give-up"


@dataclass(frozen=True)
class QueuedFacts:
    """What the reconciler observed about one queued, unclaimed upload.

    ``since`` is when its current message was enqueued (by the API, or by
    the last requeue); ``held`` is whether the broker still has that
    message, pending, delayed or in flight.
    """

    now: float
    since: float | None
    requeues: int
    held: bool


def requeue_due(now: float, since: float | None, requeue_after: float) -> bool:
    """Whether the current message is old enough to ask the broker about it."""
    return since is not None and now - since > requeue_after


def reconcile_decision(facts: QueuedFacts, requeue_after: float, max_requeues: int) -> str:
    """Wait, leave alone, requeue or fail one queued upload.

    Measuring from the current message's enqueue time allows at most one
    requeue per ``requeue_after`` per upload, so a long backlog is never
    flooded with duplicates; a message the broker still holds is never
    duplicated at all. Giving up after ``max_requeues`` turns a queue that
    keeps losing messages into a visible failure instead of a silent loop.
    """
    if not requeue_due(facts.now, facts.since, requeue_after):
        return WAIT
    if facts.held:
        return HELD
    if facts.requeues >= max_requeues:
        return GIVE_UP
    return REQUEUE
