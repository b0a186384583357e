"""The public endpoints: ``POST <prefix>/uploads``, ``GET`` and ``DELETE <prefix>/uploads/<id>``.

The prefix is the app's choice (``/v1`` for the standalone service), made
when :class:`api_service.Handoff` registers this blueprint. Every upload
belongs to the tenant that sent it; to any other it does not exist (404),
so ids cannot be probed. Every refusal from these routes, an unexpected
error included, is problem+json by the blueprint's own error handlers,
whatever the app does with the errors of its other routes.
"""

import logging
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, url_for

from api_service.geo import GeoClient, GeoError
from api_service.pacing import MinimumRate, PacedBody
from api_service.relay import Relay, RelayError
from api_service.state import current_state
from api_service.tenants import visible_to
from handoff import problems
from handoff.auth import is_tenant_name
from handoff.config import Settings
from handoff.form import upload_limits
from handoff.ids import is_upload_id, new_upload_id
from handoff.jobs import JobQueue, QueueUnavailable
from handoff.problems import TITLES, Problem
from handoff.server import metrics
from handoff.server.request_body import Readable, body_reader, close_after_answer
from handoff.server.web import RETRY_AFTER, multipart_boundary
from handoff.states import PUBLIC_STATUS

log = logging.getLogger("handoff.api")
bp = Blueprint("handoff", __name__)
problems.register(bp)

# geo answers passed on to the client as they are; anything else is a 502
_GEO_PASSTHROUGH = {400, 413, 507}


def _geo() -> GeoClient:
    return current_state().geo


def _queue() -> JobQueue:
    return current_state().queue


def _tenant() -> str:
    return g.tenant


@bp.before_request
def _authenticate() -> None:
    tenant = current_state().authenticate(request)
    if not isinstance(tenant, str) or not is_tenant_name(tenant):
        # The app's own authenticate broke its contract: a 500, logged, not the client's fault.
        raise TypeError(f"authenticate returned {tenant!r}, not a tenant name")
    g.tenant = tenant


@bp.post("/uploads")
def create_upload() -> tuple[Response, int]:
    with metrics.IN_FLIGHT.track_inprogress():
        try:
            with current_state().slots.hold():
                answer = _create_upload()
        except Problem as problem:
            metrics.UPLOADS.labels(str(problem.status)).inc()
            close_after_answer(request.environ)
            raise
    metrics.UPLOADS.labels("accepted").inc()
    return answer


def _create_upload() -> tuple[Response, int]:
    settings = current_state().settings
    length = request.content_length
    boundary = multipart_boundary(settings.max_upload_size)
    upload_id = new_upload_id()
    relay = Relay(_client_body(settings), boundary, upload_limits(settings))
    started = time.monotonic()
    _relay(relay, upload_id, length)
    message_id = _enqueue(relay, upload_id)
    metrics.RELAY_SECONDS.observe(time.monotonic() - started)
    log.info("upload accepted", extra={"upload_id": upload_id, "tenant": _tenant(),
                                       "bytes": relay.received,
                                       "seconds": round(time.monotonic() - started, 3),
                                       "message_id": message_id})
    body = {"id": upload_id, "status": "queued", "purpose": relay.purpose,
            "files": relay.files, "links": _links(upload_id)}
    return jsonify(body), 202


def _client_body(settings: Settings) -> Readable:
    """The request body, cut off when the client is silent or too slow.

    gunicorn hands the client socket to the app; a read that waits longer
    than the client timeout (or one rate window) raises, and the relay turns
    that into 408. Below the minimum rate, :class:`PacedBody` raises too.
    """
    silence = settings.client_timeout
    if settings.client_min_rate:
        silence = min(silence, settings.client_rate_window)
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(silence)
    body = body_reader(request.environ)
    if not settings.client_min_rate:
        return body
    return PacedBody(body, MinimumRate(settings.client_min_rate, settings.client_rate_window))


def _relay(relay: Relay, upload_id: str, length: int | None) -> None:
    geo = _geo()
    try:
        relay.read_head(_geo_call(geo.purposes, upload_id))
    except RelayError as exc:
        raise _refused(exc, relay, upload_id) from None  # nothing reached the geo service
    log.info("upload started", extra={"upload_id": upload_id, "tenant": _tenant(),
                                      "purpose": relay.purpose, "content_length": length})
    try:
        manifest = geo.upload(upload_id, _tenant(), request.content_type or "", relay.body(),
                              length)
        relay.check(manifest["files"])
    except RelayError as exc:
        geo.delete(upload_id)
        raise _refused(exc, relay, upload_id) from None
    except GeoError as exc:
        geo.delete(upload_id)
        raise _geo_problem(exc, upload_id) from None


def _refused(exc: RelayError, relay: Relay, upload_id: str) -> Problem:
    log.info("upload refused", extra={"upload_id": upload_id, "tenant": _tenant(),
                                      "reason": exc.detail,
                                      "status": exc.status, "bytes": relay.received})
    return Problem(exc.status, exc.kind, exc.detail, upload_id=upload_id, limit=exc.limit)


def _enqueue(relay: Relay, upload_id: str) -> str:
    geo = _geo()
    try:
        message_id = _queue().enqueue(upload_id, relay.purpose, relay.metadata)
    except QueueUnavailable as exc:
        metrics.ENQUEUE_FAILURES.inc()
        geo.delete(upload_id)
        log.error("enqueue failed", extra={"upload_id": upload_id, "error": str(exc)})
        raise Problem(503, "queue-unavailable",
                      "the job queue is unavailable; the upload was discarded, retry later",
                      upload_id=upload_id) from None
    try:
        geo.record_job(upload_id, {"message_id": message_id, "enqueued_at": time.time()})
    except GeoError as exc:
        log.warning("could not record the job on the geo service",
                    extra={"upload_id": upload_id, "error": exc.detail})
    return message_id


def _geo_call(call: Any, upload_id: str) -> Any:
    try:
        return call()
    except GeoError as exc:
        raise _geo_problem(exc, upload_id) from None


def _geo_problem(exc: GeoError, upload_id: str) -> Problem:
    log.warning("geo service failed", extra={"upload_id": upload_id, "error": exc.detail})
    if _geo_kind(exc) == "cancelled":
        return Problem(409, "cancelled",
                       "the upload was cancelled while it was being sent", upload_id=upload_id)
    if _geo_kind(exc) == "busy":
        return Problem(503, "busy", "the geo service is full; retry later",
                       headers={"Retry-After": str(RETRY_AFTER)}, upload_id=upload_id)
    if exc.status in _GEO_PASSTHROUGH:
        kind = _geo_kind(exc) if _geo_kind(exc) in TITLES else "geo-error"
        return Problem(exc.status, kind, exc.detail, upload_id=upload_id)
    return Problem(502, "geo-unavailable",
                   f"the geo service failed: {exc.detail}", upload_id=upload_id)


def _geo_kind(exc: GeoError) -> str:
    """The slug of the geo service's problem type, if it sent one."""
    return str(exc.problem.get("type", "")).rsplit("/", 1)[-1]


@bp.get("/uploads/<upload_id>")
def show_upload(upload_id: str) -> Response:
    return jsonify(_public_status(_owned_status(upload_id)))


@bp.delete("/uploads/<upload_id>")
def cancel_upload(upload_id: str) -> tuple[str, int]:
    """Stop the upload wherever it is and remove it, unless a worker is processing it."""
    _owned_status(upload_id)
    try:
        removed = _geo().cancel(upload_id)
    except GeoError as exc:
        if exc.status == 409:
            raise Problem(409, "processing",
                          "a worker is processing the upload; it can be removed once it is "
                          "done or failed", upload_id=upload_id) from None
        raise _geo_problem(exc, upload_id) from None
    if not removed:
        raise _not_found(upload_id)
    log.info("upload cancelled", extra={"upload_id": upload_id, "tenant": _tenant()})
    return "", 204


def _owned_status(upload_id: str) -> dict[str, Any]:
    """The geo status of the asking tenant's upload; 404 for anyone else's, as for none."""
    if not is_upload_id(upload_id):
        raise _not_found(None)
    status = _geo_call(lambda: _geo().status(upload_id), upload_id)
    if status is None or not visible_to(_tenant(), status):
        raise _not_found(upload_id)
    return status


def _not_found(upload_id: str | None) -> Problem:
    return Problem(404, "not-found", "no upload with this id", upload_id=upload_id)


def _public_status(status: dict[str, Any]) -> dict[str, Any]:
    manifest = status.get("manifest") or {}
    result = status.get("result") or {}
    upload_id = status["id"]
    return {
        "id": upload_id,
        "status": PUBLIC_STATUS[status["state"]],
        "purpose": manifest.get("purpose"),
        "metadata": manifest.get("metadata"),
        "files": [{"name": f["name"], "size": f["size"], "sha256": f["sha256"]}
                  for f in manifest.get("files", [])],
        "created_at": manifest.get("created"),
        "enqueued_at": (status.get("job") or {}).get("enqueued_at"),
        "started_at": (status.get("claim") or {}).get("claimed_at"),
        "finished_at": result.get("finished_at"),
        "result": result.get("result"),
        "error": result.get("error"),
        "links": _links(upload_id),
    }


def _links(upload_id: str) -> dict[str, str]:
    return {"self": url_for(".show_upload", upload_id=upload_id)}
