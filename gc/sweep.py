"""One pass of the sweeper over the upload store.

Each upload is judged twice. First without its lock, which is cheap and
leaves uploads that are obviously fine untouched (no lock traffic for the
common case). Only if that says "delete" is the lock taken, without
waiting, and the facts are read again under it: between the two reads a
job may have been enqueued, a worker may have claimed it, or another
sweeper may have removed it. Whoever holds the lock owns the upload, so an
upload whose lock is taken is skipped, never waited for.

Deleting goes through :meth:`UploadStore.remove`, which makes the upload
vanish for readers at once and finishes the removal after; each sweep starts
by emptying the store's trash, so a sweep killed half-way through a removal
is finished by the next one.
Two sweepers may run at once: the lock makes each removal happen once, and
an upload that vanished under one of them is simply gone, not an error.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from geo_service.store import Busy, LockFile, UploadMissing, UploadStore
from geo_service.store.bucket import BucketUnavailable
from handoff.server import metrics

from .rules import BUSY, Decision, Facts, Ttls, decide

log = logging.getLogger("handoff.gc")

#: A lock file younger than this may belong to a writer that locks an id
#: before it creates the upload's folder, so it is left alone.
STALE_LOCK_AGE = 60.0

Clock = Callable[[], float]


class Deletion(NamedTuple):
    upload_id: str
    reason: str
    bytes: int


@dataclass
class SweepReport:
    """What one sweep did (or, in a dry run, would have done)."""

    dry_run: bool = False
    deletions: list[Deletion] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    bytes_freed: int = 0
    resumed_bytes: int = 0
    stale_locks: int = 0
    strays: int = 0
    errors: int = 0
    skipped_busy: int = 0
    aborted_writes: int = 0
    interrupted: bool = False

    def record(self, deletion: Deletion) -> None:
        self.deletions.append(deletion)
        self.counts[deletion.reason] += 1
        self.bytes_freed += deletion.bytes
        if not self.dry_run:
            metrics.GC_DELETIONS.labels(deletion.reason).inc()
            metrics.GC_FREED_BYTES.labels(deletion.reason).inc(deletion.bytes)


def sweep(
    store: UploadStore,
    ttls: Ttls,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    clock: Clock = time.time,
) -> SweepReport:
    """Sweep ``store`` once and report what was deleted and why.

    ``dry_run`` decides exactly as a real sweep would (locks included, so
    busy uploads are reported as such) but removes nothing. Setting ``stop``
    ends the sweep between two uploads, so a shutdown never waits for a
    whole pass over a large store.
    """
    report = SweepReport(dry_run=dry_run)
    _empty_trash(store, report)
    _abort_abandoned(store, ttls, report, clock)
    for upload_id in store.upload_ids():
        if stop is not None and stop.is_set():
            report.interrupted = True
            log.info("sweep interrupted by shutdown")
            return report
        _sweep_upload(store, upload_id, ttls, report, clock)
    _clean_stale_locks(store, report, clock)
    _report_strays(store, report)
    _log_summary(report)
    return report


def read_facts(store: UploadStore, upload_id: str, now: float, lock_free: bool) -> Facts:
    """The facts the rules need about one upload; raises UploadMissing if it is gone.

    An entry that is not a real directory (for instance a symlink swapped in
    after the listing) counts as missing: the sweeper never acts through a
    link.
    """
    timeline = store.timeline(upload_id)
    return Facts(
        state=timeline.state,
        now=now,
        lock_free=lock_free,
        last_activity=timeline.last_activity,
        manifest_time=timeline.manifest_time,
        job_time=timeline.job_time,
        claim_time=timeline.claim_time,
        result_time=timeline.result_time,
    )


def _empty_trash(store: UploadStore, report: SweepReport) -> None:
    if report.dry_run:
        return
    try:
        report.resumed_bytes = store.empty_trash()
    except OSError:
        log.exception("could not empty the trash")
        report.errors += 1
        return
    report.bytes_freed += report.resumed_bytes
    if report.resumed_bytes:
        log.info(
            "finished interrupted removals, %d bytes",
            report.resumed_bytes,
            extra={"bytes": report.resumed_bytes},
        )


def _abort_abandoned(store: UploadStore, ttls: Ttls, report: SweepReport, clock: Clock) -> None:
    """Abort files whose writer went quiet longer ago than the partial TTL (object stores).

    A multipart upload nobody completes is listed nowhere and kept, and paid
    for, until it is aborted; its upload may even be gone already.
    """
    if report.dry_run:
        return
    try:
        report.aborted_writes = store.abort_abandoned(clock() - ttls.partial)
    except (OSError, BucketUnavailable):
        log.exception("could not abort abandoned writes")
        report.errors += 1
        return
    metrics.GC_ABORTED_WRITES.inc(report.aborted_writes)
    if report.aborted_writes:
        log.info("aborted %d abandoned writes", report.aborted_writes,
                 extra={"aborted": report.aborted_writes})


def _sweep_upload(
    store: UploadStore, upload_id: str, ttls: Ttls, report: SweepReport, clock: Clock
) -> None:
    """Judge one upload; any failure is counted and logged, never raised.

    One unreadable upload must not stop the sweeper from collecting the
    others, so every exception ends up in ``report.errors``.
    """
    try:
        _judge(store, upload_id, ttls, report, clock)
    except UploadMissing:
        log.debug("upload vanished during the sweep", extra={"upload_id": upload_id})
    except Exception:
        log.exception("could not sweep upload %s", upload_id, extra={"upload_id": upload_id})
        report.errors += 1


def _verdict(
    store: UploadStore, upload_id: str, ttls: Ttls, report: SweepReport, clock: Clock
) -> Decision | None:
    """The rules' decision on the upload as it is now; None, counted as kept, for keep."""
    decision = decide(read_facts(store, upload_id, clock(), lock_free=True), ttls)
    if decision.delete:
        return decision
    report.kept[decision.reason] += 1
    return None


def _judge(
    store: UploadStore, upload_id: str, ttls: Ttls, report: SweepReport, clock: Clock
) -> None:
    """Decide without the lock (assuming it free); if that says delete, lock and decide again."""
    if _verdict(store, upload_id, ttls, report, clock) is None:
        return
    try:
        with store.lock(upload_id):
            _delete_locked(store, upload_id, ttls, report, clock)
    except Busy:
        report.kept[BUSY] += 1
        report.skipped_busy += 1
        log.info("skipped busy upload %s", upload_id, extra={"upload_id": upload_id})


def _delete_locked(
    store: UploadStore, upload_id: str, ttls: Ttls, report: SweepReport, clock: Clock
) -> None:
    """Re-read the facts under the lock, and delete only if they still say so."""
    decision = _verdict(store, upload_id, ttls, report, clock)
    if decision is None:
        return
    freed = store.size(upload_id) if report.dry_run else store.remove(upload_id)
    report.record(Deletion(upload_id, decision.reason, freed))
    log.info(
        "%s upload %s (%s, %d bytes)",
        "would delete" if report.dry_run else "deleted",
        upload_id,
        decision.reason,
        freed,
        extra={"upload_id": upload_id, "reason": decision.reason, "bytes": freed},
    )


def _clean_stale_locks(store: UploadStore, report: SweepReport, clock: Clock) -> None:
    """Remove lock files whose upload is gone, so the store's locks do not grow forever.

    Lock files are kept on release (waiters must share one inode), so every
    deleted upload leaves one behind. One is removed only when its upload
    folder is gone, it is older than :data:`STALE_LOCK_AGE`, and its lock can
    be taken at once; a process that opened it just before the unlink finds
    the inode unlinked after locking and does not count it as held.
    """
    try:
        candidates = [lock.upload_id for lock in store.lock_files()
                      if _is_stale_lock(store, lock, clock())]
    except OSError:
        log.exception("could not list lock files")
        report.errors += 1
        return
    for upload_id in candidates:
        _remove_lock_file(store, upload_id, report)


def _is_stale_lock(store: UploadStore, lock: LockFile, now: float) -> bool:
    return now - lock.mtime > STALE_LOCK_AGE and not store.has_entry(lock.upload_id)


def _remove_lock_file(store: UploadStore, upload_id: str, report: SweepReport) -> None:
    try:
        with store.lock(upload_id):
            if store.has_entry(upload_id):
                return
            if not report.dry_run:
                store.remove_lock_file(upload_id)
            report.stale_locks += 1
    except Busy:
        return
    except OSError:
        log.exception("could not remove the lock file of %s", upload_id,
                      extra={"upload_id": upload_id})
        report.errors += 1


def _report_strays(store: UploadStore, report: SweepReport) -> None:
    """Log entries that are not uploads; the sweeper never deletes what it does not own."""
    try:
        strays = list(store.stray_entries())
    except OSError:
        log.exception("could not list the uploads root")
        report.errors += 1
        return
    for name in strays:
        report.strays += 1
        log.warning("left alone %r in the uploads root: not an upload", name, extra={"entry": name})


def _log_summary(report: SweepReport) -> None:
    log.info(
        "sweep %s: %d %s, %d bytes, %d busy, %d errors",
        "dry run" if report.dry_run else "done",
        len(report.deletions),
        "would be deleted" if report.dry_run else "deleted",
        report.bytes_freed,
        report.skipped_busy,
        report.errors,
        extra={
            "deleted": dict(report.counts),
            "bytes": report.bytes_freed,
            "busy": report.skipped_busy,
            "aborted": report.aborted_writes,
            "errors": report.errors,
        },
    )
