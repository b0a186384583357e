"""The worker's broker: Redis, handoff's middleware and actors, and an application's own.

``dramatiq geo_service.worker`` runs the broker :func:`build_broker` makes
(see :mod:`geo_service.worker`). An application that wants Dramatiq
middleware of its own in the worker (error reporting, tracing) runs the
same actors from a module of its own, started the same way::

    from geo_service.jobs.broker import build_broker  # before anything imports prometheus_client

    import dramatiq
    from handoff.config import load_or_exit

    dramatiq.set_broker(build_broker(load_or_exit(signs_webhooks=True), middleware=[Tracing()]))
"""

import threading
from collections.abc import Iterable

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware

# Before anything that imports prometheus_client: importing it points
# prometheus_client at Dramatiq's multiprocess folder.
from geo_service.jobs.metrics import WorkerMetrics

# isort: split
from geo_service.jobs.actors import declare_actors
from handoff.config import Settings
from handoff.server.probe import beat

HEARTBEAT_SECONDS = 30.0


class Heartbeat(Middleware):
    """Refreshes the worker's liveness file while the worker process runs."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop = threading.Event()
        threading.Thread(target=self._loop, name="heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            beat("worker")
            if self._stop.wait(HEARTBEAT_SECONDS):
                return


def build_broker(settings: Settings, middleware: Iterable[Middleware] = ()) -> RedisBroker:
    """A Redis broker with handoff's actors declared, ``middleware`` added after handoff's own.

    The application's middleware comes before the actors are declared, so
    its ``after_declare_actor`` hooks see them as they would in any app.
    """
    # A worker that dies holding messages is noticed after the heartbeat timeout;
    # the next queue maintenance (a chance per million commands) requeues them.
    broker = RedisBroker(
        url=settings.redis_url or None,
        heartbeat_timeout=int(settings.broker_heartbeat_timeout * 1000),
        maintenance_chance=settings.broker_maintenance_chance,
    )
    for each in (CurrentMessage(), WorkerMetrics(settings.worker_metrics_port), Heartbeat(),
                 *middleware):
        broker.add_middleware(each)
    declare_actors(broker, settings)
    return broker
