"""Requeue queued or claimed uploads whose message the broker lost, or fail them.

Dramatiq's Redis broker keeps messages only in Redis' memory: a restart
without persistence, a flush, a failover or an eviction drops them, and the
upload would wait as ``queued`` for ever. Each sweep asks the broker, for
every queued upload whose message is older than ``requeue_after``, whether
it still holds that message; if not, the same job is enqueued again (the
worker is idempotent by upload id). A claimed upload counts too: a worker
that dies mid-job leaves its message to the broker's requeueing of dead
workers' messages, which a broker that loses its messages also loses; a
live worker holds the upload's lock for the whole job, so such an upload is
only looked at once nobody works on it. After ``max_requeues`` the upload fails
with a reason that says so, and retention then applies to it as to any
failed upload. The decisions are pure (:func:`rules.reconcile_decision`);
this module only gathers facts and acts, under the upload's lock taken
without waiting, so a busy upload is left to the next sweep.

The same pass sends the announcements of finished uploads that the broker
did not take when they finished (:func:`handoff.announce.announce_pending`),
and a give-up is announced like any other failure.
"""

import logging
import time
from collections import Counter
from typing import Protocol

from geo_service.store import Busy, State, UploadMissing, UploadStore
from handoff.announce import SILENT, Announcer, Sender, announce_pending, finish_upload
from handoff.config import Settings
from handoff.queue import QueueUnavailable
from handoff.server import metrics
from handoff.states import FINISHED

from .rules import GIVE_UP, REQUEUE, QueuedFacts, reconcile_decision, requeue_due

log = logging.getLogger("handoff.gc")

#: The states whose job message the broker must still hold: not taken yet, or
#: taken by a worker that no longer holds the lock (the message is unacked).
AWAITING_WORK = (State.QUEUED, State.CLAIMED)


class Broker(Sender, Protocol):
    """What the reconciler needs of the queue."""

    def held_message_ids(self) -> set[str]: ...

    def enqueue(self, upload_id: str, purpose: str, metadata: dict) -> str: ...


def reconcile_settings(store: UploadStore, broker: Broker, settings: Settings) -> Counter[str]:
    """One pass with the configured period and bound; a broker that is down skips it."""
    try:
        return reconcile(store, broker, settings.requeue_after, settings.max_requeues,
                         Announcer.from_settings(settings, broker))
    except QueueUnavailable as exc:
        log.warning("cannot reconcile queued uploads: broker unavailable: %s", exc)
    except OSError:
        log.exception("could not list the uploads root")
    return Counter({"not-run": 1})


class _HeldMessages:
    """The broker's messages, read once per pass when first needed.

    A job marker written after the read may name a message the read could
    not see; such an upload counts as held and waits for the next pass.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._ids: set[str] | None = None
        self._taken_at = 0.0

    def holds(self, message_id: str | None, since: float | None) -> bool:
        if self._ids is None:
            self._taken_at = time.time()
            self._ids = self._broker.held_message_ids()
        if since is None or since >= self._taken_at:
            return True
        return message_id in self._ids


def reconcile(store: UploadStore, broker: Broker, requeue_after: float,
              max_requeues: int, announcer: Announcer = SILENT) -> Counter[str]:
    """One pass over the queued uploads; returns how many got each decision."""
    outcomes: Counter[str] = Counter()
    held = _HeldMessages(broker)
    for upload_id in store.upload_ids():
        try:
            timeline = store.timeline(upload_id)
            if timeline.state in FINISHED:
                outcomes.update(_announce_left_over(store, upload_id, announcer))
                continue
            if timeline.state not in AWAITING_WORK:
                continue
            if not requeue_due(time.time(), timeline.job_time, requeue_after):
                continue
            with store.lock(upload_id):
                outcomes[_reconcile_one(store, broker, held, upload_id, requeue_after,
                                        max_requeues, announcer)] += 1
        except Busy:
            outcomes["busy"] += 1
        except UploadMissing:
            continue
        except QueueUnavailable:
            raise
        except Exception:  # one broken upload must not stop the others; the sweep counts it
            log.exception("could not reconcile upload %s", upload_id,
                          extra={"upload_id": upload_id})
            outcomes["error"] += 1
    return outcomes


def _announce_left_over(store: UploadStore, upload_id: str, announcer: Announcer) -> list[str]:
    """Send what a finished upload still owes the application, if anything."""
    if store.announcement(upload_id) is None:
        return []
    with store.lock(upload_id):
        return ["announced"] if announce_pending(store, upload_id, announcer) else []


def _reconcile_one(store: UploadStore, broker: Broker, held: _HeldMessages, upload_id: str,
                   requeue_after: float, max_requeues: int, announcer: Announcer) -> str:
    """Decide and act for one upload; the caller holds its lock."""
    timeline = store.timeline(upload_id)
    if timeline.state not in AWAITING_WORK:
        return "moved-on"
    job = store.job(upload_id) or {}
    requeues = int(job.get("requeues", 0))
    since = timeline.job_time
    facts = QueuedFacts(now=time.time(), since=since, requeues=requeues,
                        held=held.holds(job.get("message_id"), since))
    decision = reconcile_decision(facts, requeue_after, max_requeues)
    if decision == REQUEUE:
        _requeue(store, broker, upload_id)
    elif decision == GIVE_UP:
        _give_up(store, upload_id, requeues + 1, announcer)
    return decision


def _requeue(store: UploadStore, broker: Broker, upload_id: str) -> None:
    manifest = store.manifest(upload_id) or {}
    new_id = broker.enqueue(upload_id, manifest.get("purpose", ""), manifest.get("metadata") or {})
    count = store.requeued(upload_id, new_id)
    metrics.GC_REQUEUED.inc()
    log.warning("requeued %s: the broker lost its message (requeue %d)", upload_id, count,
                extra={"upload_id": upload_id, "requeues": count, "message_id": new_id})


def _give_up(store: UploadStore, upload_id: str, losses: int, announcer: Announcer) -> None:
    error = f"the queue lost this upload's message {losses} times; gave up"
    finish_upload(store, upload_id, {"status": str(State.FAILED), "finished_at": time.time(),
                                     "error": error}, announcer)
    log.error("failed %s: %s", upload_id, error, extra={"upload_id": upload_id})
