"""What both ways into an upload share: its replica, who owns it, the geo service's errors, the job.

A multipart POST (:mod:`api_service.routes`) and tus (:mod:`api_service.tus`)
make the same kind of upload, so they find it, refuse it and enqueue its job
with the same code.
"""

import logging
import time
from typing import Any

from flask import g, request

from api_service.errors import geo_problem, replica_unavailable
from api_service.geo import GeoClient, GeoError, GeoUnreachable
from api_service.pacing import MinimumRate, PacedBody
from api_service.records import RecordUnavailable
from api_service.replicas import NoReplica, ReplicaUnavailable
from api_service.state import current_state
from api_service.tenants import visible_to
from handoff.config import Settings
from handoff.ids import is_upload_id
from handoff.problems import Problem, not_found
from handoff.queue import QueueUnavailable
from handoff.server import metrics, shutdown
from handoff.server.request_body import Readable, body_reader
from handoff.server.web import RETRY_AFTER

log = logging.getLogger("handoff.api")

def place(upload_id: str, size: int | None, affinity: str | None = None) -> GeoClient:
    """The replica a new upload goes to, chosen and recorded; 503 if none can take it."""
    try:
        client = current_state().replicas.place(upload_id, size, affinity)
    except NoReplica as exc:
        raise _no_replica(exc) from None
    except RecordUnavailable as exc:
        raise _unrecorded(upload_id, exc) from None
    _found()[upload_id] = client
    return client


def _no_replica(exc: NoReplica) -> Problem:
    log.warning("no geo replica can take an upload", extra={"reasons": str(exc)})
    return Problem(503, "no-replica", "no geo replica can take the upload now; retry later",
                   headers={"Retry-After": str(RETRY_AFTER)})


def keep_on(upload_id: str, client: GeoClient) -> None:
    """Make the new upload ``upload_id`` on ``client``'s replica, recorded; 503 if it cannot be."""
    try:
        current_state().replicas.keep(upload_id, client)
    except RecordUnavailable as exc:
        raise _unrecorded(upload_id, exc) from None
    _found()[upload_id] = client


def _unrecorded(upload_id: str, exc: RecordUnavailable) -> Problem:
    log.error("could not record the upload's replica", extra={"upload_id": upload_id,
                                                             "error": str(exc)})
    return Problem(503, "queue-unavailable", "the job queue is unavailable; retry later",
                   headers={"Retry-After": str(RETRY_AFTER)})


def geo(upload_id: str) -> GeoClient:
    """The replica that holds the upload, found once per request.

    404 if no replica has it; 503 if it may be on one that does not answer.
    With a shared store, every replica that may answer (503 if none can).
    """
    found = _found()
    if upload_id not in found:
        try:
            client = current_state().replicas.find(upload_id)
        except ReplicaUnavailable as exc:
            raise replica_unavailable(upload_id, str(exc)) from None
        except NoReplica as exc:
            raise _no_replica(exc) from None
        if client is None:
            raise not_found(upload_id)
        found[upload_id] = client
    return found[upload_id]


def _found() -> dict[str, GeoClient]:
    return g.setdefault("handoff_replicas", {})


def purposes() -> set[str]:
    """The purposes the geo replicas accept."""
    return geo_call(current_state().replicas.purposes, None)


def tenant() -> str:
    return g.tenant


def client_body(settings: Settings) -> Readable:
    """The request body, cut off when the client is silent or too slow, or the service stops.

    gunicorn hands the client socket to the app; a read that waits longer
    than the client timeout raises, and the relay turns that into 408.
    Below the minimum rate, :class:`PacedBody` raises too. A shutdown ends
    the reads at the end of its grace (:mod:`handoff.server.shutdown`).
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(settings.client_timeout)
        shutdown.track(sock)
    body = body_reader(request.environ)
    if not settings.client_min_rate:
        return body
    return PacedBody(body, MinimumRate(settings.client_min_rate, settings.client_rate_window))


def enqueue(upload_id: str, purpose: str, metadata: dict[str, Any]) -> str:
    """Enqueue the sealed upload's job on its replica's queue and record it.

    With a shared store the client names no replica: the job goes to the one queue.

    503 (and the upload discarded) if the queue is down.
    """
    try:
        message_id = current_state().queue.enqueue(upload_id, purpose, metadata,
                                                   replica=geo(upload_id).name)
    except QueueUnavailable as exc:
        metrics.ENQUEUE_FAILURES.inc()
        geo(upload_id).delete(upload_id)
        log.error("enqueue failed", extra={"upload_id": upload_id, "error": str(exc)})
        raise Problem(503, "queue-unavailable",
                      "the job queue is unavailable; the upload was discarded, retry later",
                      upload_id=upload_id) from None
    try:
        geo(upload_id).record_job(upload_id, {"message_id": message_id, "enqueued_at": time.time()})
    except GeoError as exc:
        log.warning("could not record the job on the geo service",
                    extra={"upload_id": upload_id, "error": exc.detail})
    return message_id


def geo_call(call: Any, upload_id: str | None) -> Any:
    try:
        return call()
    except GeoError as exc:
        raise geo_problem(exc, upload_id) from None


def owned_status(upload_id: str) -> dict[str, Any]:
    """The geo status of the asking tenant's upload; 404 for anyone else's, as for none.

    An unreachable replica that holds the upload is 503 replica-unavailable;
    with a shared store, where no replica holds it alone, every replica
    unreachable is geo-unavailable, as for any other call.
    """
    if not is_upload_id(upload_id):
        raise not_found(None)
    client = geo(upload_id)
    try:
        status = client.status(upload_id)
    except GeoUnreachable as exc:
        if current_state().replicas.anywhere:
            raise geo_problem(exc, upload_id) from None
        raise replica_unavailable(upload_id, exc.detail) from None
    except GeoError as exc:
        raise geo_problem(exc, upload_id) from None
    if status is None or not visible_to(tenant(), status):
        raise not_found(upload_id)
    return status

