"""Every Prometheus metric of the product, defined once.

gunicorn runs several worker processes and Dramatiq several worker
processes, so values live in prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, set before this module is imported: by
``handoff.server.gunicorn_conf`` for the web services, by ``geo_service.worker``
for the worker). Single-process programs (the sweeper) use the default
registry.
"""

import os
import threading

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

_DURATIONS = (0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400)

# API
RECEIVED_BYTES = Counter("handoff_api_received_bytes", "Bytes of upload bodies read from clients.")
RELAYED_BYTES = Counter("handoff_api_relayed_bytes",
                        "Bytes of upload bodies sent to the geo service.")
UPLOADS = Counter("handoff_api_uploads", "Uploads answered by the API, by outcome.", ["outcome"])
IN_FLIGHT = Gauge("handoff_api_uploads_in_flight", "Uploads being relayed now.",
                  multiprocess_mode="livesum")
RELAY_SECONDS = Histogram("handoff_api_relay_seconds",
                          "From the request's start to the job being enqueued.", buckets=_DURATIONS)
ENQUEUE_FAILURES = Counter("handoff_api_enqueue_failures", "Jobs the queue refused.")

# geo service
STORED_BYTES = Counter("handoff_geo_stored_bytes", "File bytes written to the upload store.")
STORED_UPLOADS = Counter("handoff_geo_uploads", "Upload requests by outcome.", ["outcome"])
GEO_IN_FLIGHT_NAME = "handoff_geo_uploads_in_flight"
GEO_IN_FLIGHT = Gauge(GEO_IN_FLIGHT_NAME, "Uploads being received now.",
                      multiprocess_mode="livesum")

# worker
JOBS = Counter("handoff_jobs", "Jobs finished, by purpose and outcome.", ["purpose", "outcome"])
JOB_SECONDS = Histogram("handoff_job_seconds", "Time a job spent processing.", ["purpose"],
                        buckets=_DURATIONS)

# sweeper
GC_DELETIONS = Counter("handoff_gc_deletions", "Uploads deleted by the sweeper.", ["reason"])
GC_FREED_BYTES = Counter("handoff_gc_freed_bytes", "Bytes freed by the sweeper.", ["reason"])
GC_ABORTED_WRITES = Counter("handoff_gc_aborted_writes",
                            "Half-written objects (multipart uploads) the sweeper aborted.")
GC_REQUEUED = Counter("handoff_gc_requeued",
                      "Queued uploads whose lost message was enqueued again.")


class MetricsUnavailable(OSError):
    """The metrics port cannot be listened on (in use, or a host this machine does not have)."""


def _registry() -> CollectorRegistry:
    """This process's metrics, merged across processes when they live in files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition() -> tuple[bytes, str]:
    """The text format for ``/metrics``, merged across processes when needed."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST


def total(name: str) -> float:
    """The value of the metric ``name`` summed over this service's processes.

    Read from the same files ``/metrics`` merges, so a gunicorn worker
    learns what its siblings are doing without asking them.
    """
    return sum(sample.value for family in _registry().collect() for sample in family.samples
               if sample.name == name)


def serve(host: str, port: int, setting: str) -> threading.Thread:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the thread.

    For the processes without a web server of their own (the worker, the
    sweeper). A port that cannot be bound names ``setting``, the variable to
    change, instead of ending in a bare traceback.
    """
    try:
        _, thread = start_http_server(port, addr=host, registry=_registry())
    except OSError as exc:
        raise MetricsUnavailable(
            f"cannot serve metrics on {host}:{port} ({setting}): {exc.strerror or exc}") from None
    return thread
