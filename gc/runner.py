"""The long-lived sweeper: one sweep every ``gc_interval`` seconds.

APScheduler's ``BlockingScheduler`` owns the main thread; the sweep runs in
its worker thread. ``max_instances=1`` and ``coalesce=True`` mean a sweep
that overruns its interval is never run twice at once and missed runs
collapse into one. SIGTERM (Kubernetes stopping the pod) and SIGINT stop
the scheduler and ask a running sweep to stop between two uploads, so the
process exits well within the grace period; whatever a sweep left half
done is finished by the next one.
"""

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.base import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from geo_service.store import UploadStore, open_store
from handoff.config import Settings, variable
from handoff.queue import JobQueue
from handoff.server import metrics
from handoff.server.probe import beat

from .reconcile import reconcile_settings
from .rules import DELETE_REASONS, Ttls
from .sweep import sweep

log = logging.getLogger("handoff.gc")

JOB_ID = "sweep"


def ttls_from(settings: Settings) -> Ttls:
    return Ttls(
        orphan=settings.orphan_ttl,
        partial=settings.partial_ttl,
        retention=settings.retention,
    )


def sweep_and_beat(store: UploadStore, ttls: Ttls, stop: threading.Event,
                   broker: JobQueue, settings: Settings) -> None:
    """One scheduled sweep and reconciliation, then the heartbeat the liveness probe reads.

    The heartbeat is written only after a sweep that ran to its end: a
    sweeper that keeps failing (its root unreadable, say) stops beating and
    gets restarted by its probe.
    """
    reconcile_settings(store, broker, settings)
    report = sweep(store, ttls, stop=stop)
    if not report.interrupted:
        beat("gc")
    if report.errors:
        log.warning("sweep finished with %d errors", report.errors)


def build_scheduler(settings: Settings, stop: threading.Event) -> BlockingScheduler:
    """A scheduler whose only job sweeps now and then every ``gc_interval`` seconds."""
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        sweep_and_beat,
        "interval",
        args=(open_store(settings), ttls_from(settings), stop, JobQueue(settings),
              settings),
        seconds=settings.gc_interval,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )
    return scheduler


def run(settings: Settings) -> int:
    """Run sweeps until SIGTERM or SIGINT; returns the exit status (0).

    Raises :class:`metrics.MetricsUnavailable` before the first sweep when
    the metrics port cannot be bound.
    """
    stop = threading.Event()
    scheduler = build_scheduler(settings, stop)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()
        try:
            scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            return

    _quiet_scheduler_log()
    if settings.gc_metrics_port:
        for reason in DELETE_REASONS:  # every series visible from the start, at zero
            metrics.GC_DELETIONS.labels(reason)
            metrics.GC_FREED_BYTES.labels(reason)
        metrics.GC_REQUEUED.inc(0)
        metrics.GC_ABORTED_WRITES.inc(0)
        metrics.serve(settings.metrics_host, settings.gc_metrics_port,
                      variable("gc_metrics_port"))
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("sweeping %s every %.0f s", settings.store_root, settings.gc_interval)
        if not stop.is_set():
            scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _quiet_scheduler_log() -> None:
    """Drop APScheduler's per-run lines unless debugging.

    A line when each run starts and one when it succeeds say nothing the
    sweep's own summary does not; failures and missed runs stay warnings.
    """
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
