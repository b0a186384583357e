"""The Dramatiq side: broker set-up and the ``process_upload`` actor.

Run with ``dramatiq geo_service.worker --queues <queue>``. The API never
imports this module; it enqueues by actor name and queue.
"""

import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware

# Before anything that imports prometheus_client: importing it points
# prometheus_client at Dramatiq's multiprocess folder.
from geo_service.worker_metrics import WorkerMetrics

# isort: split
from geo_service import jobs
from geo_service.processors import ValidationFailed
from geo_service.store import UploadStore
from handoff.config import load_or_exit
from handoff.logs import setup_logging
from handoff.probe import beat

HEARTBEAT_SECONDS = 30.0

settings = load_or_exit()
setup_logging(settings.log_level, "worker")


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


# A worker that dies holding messages is noticed after the heartbeat timeout;
# the next queue maintenance (a chance per million commands) requeues them.
broker = RedisBroker(
    url=settings.redis_url or None,
    heartbeat_timeout=int(settings.broker_heartbeat_timeout * 1000),
    maintenance_chance=settings.broker_maintenance_chance,
)
broker.add_middleware(CurrentMessage())
broker.add_middleware(WorkerMetrics(settings.worker_metrics_port))
broker.add_middleware(Heartbeat())
dramatiq.set_broker(broker)

_store = UploadStore(settings.uploads_root)
_limits = {
    "zip_max_uncompressed": settings.zip_max_uncompressed,
    "zip_max_entries": settings.zip_max_entries,
}


@dramatiq.actor(
    actor_name="process_upload",
    queue_name=settings.queue,
    max_retries=settings.job_max_retries,
    min_backoff=int(settings.job_min_backoff * 1000),
    throws=(ValidationFailed,),
)
def process_upload(upload_id: str, purpose: str, metadata: dict[str, Any]) -> None:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message else 0
    jobs.run(_store, upload_id, purpose, metadata, _limits,
             final_attempt=retries >= settings.job_max_retries)
