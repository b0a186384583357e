"""The worker's ``/metrics``: Dramatiq's exposition, bound where the settings say.

Dramatiq's Prometheus middleware serves its metrics from a process of its
own (a "fork" of the ``dramatiq`` command) bound to ``dramatiq_prom_host``
and ``dramatiq_prom_port`` (all interfaces, 9191): two variables Dramatiq
reads when it is imported, in a process that never loads handoff's
settings, so two workers on one machine fight over one port.
:class:`WorkerMetrics` keeps the middleware's metrics and replaces that
process with :func:`serve`, which binds ``HANDOFF_METRICS_HOST`` and
``HANDOFF_WORKER_METRICS_PORT`` (none at all for port 0). Job metrics
(``handoff_jobs_total``, ...) join Dramatiq's own in the multiprocess folder
``dramatiq_prom_db`` that both read, which is why this module sets
``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is first imported.
"""

import logging
import os
from collections.abc import Callable

from dramatiq.middleware.prometheus import DB_PATH, Prometheus

os.environ["PROMETHEUS_MULTIPROC_DIR"] = DB_PATH

from handoff.config import load_or_exit, variable
from handoff.server import metrics

log = logging.getLogger("handoff.worker")

#: Exit status of the metrics process when its port cannot be bound.
EXIT_UNAVAILABLE = 3


class WorkerMetrics(Prometheus):
    """Dramatiq's Prometheus middleware, serving from :func:`serve` when ``port`` is not 0."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._port = port

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve] if self._port else []


def serve() -> int:
    """Body of Dramatiq's fork process: serve until Dramatiq stops it with SIGTERM.

    A port that cannot be bound is logged and ends only this process: the
    worker goes on processing jobs without metrics rather than not at all.
    """
    settings = load_or_exit()
    try:
        thread = metrics.serve(settings.metrics_host, settings.worker_metrics_port,
                               variable("worker_metrics_port"))
    except metrics.MetricsUnavailable as exc:
        log.error("%s", exc)
        return EXIT_UNAVAILABLE
    thread.join()
    return 0
