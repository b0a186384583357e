"""The public endpoints: ``POST <prefix>/uploads``, ``GET`` and ``DELETE <prefix>/uploads/<id>``.

The same URLs speak tus 1.0 (``OPTIONS``, ``HEAD``, ``PATCH``, and a
``POST`` or ``DELETE`` that carries ``Tus-Resumable``), answered by
:mod:`api_service.tus`.

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

from api_service import cors, tus
from api_service.errors import geo_problem, relay_problem
from api_service.geo import GeoError
from api_service.relay import Relay, RelayError
from api_service.state import current_state
from api_service.uploads import (
    client_body,
    enqueue,
    geo,
    geo_call,
    owned_status,
    place,
    tenant,
)
from handoff import problems
from handoff.auth import is_tenant_name
from handoff.form import upload_limits
from handoff.ids import new_upload_id
from handoff.problems import Problem, not_found
from handoff.server import metrics
from handoff.server.request_body import close_after_answer
from handoff.server.web import multipart_boundary
from handoff.states import PUBLIC_STATUS, State

log = logging.getLogger("handoff.api")
bp = Blueprint("handoff", __name__)
problems.register(bp)
cors.register(bp)

@bp.before_request
def _authenticate() -> None:
    """Who is asking; an OPTIONS request (tus discovery, a CORS preflight) needs no one."""
    if request.method == "OPTIONS":
        return
    who = current_state().authenticate(request)
    if not isinstance(who, str) or not is_tenant_name(who):
        # The app's own authenticate broke its contract: a 500, logged, not the client's fault.
        raise TypeError(f"authenticate returned {who!r}, not a tenant name")
    g.tenant = who


bp.before_request(tus.check_version)
bp.after_request(tus.mark_response)


@bp.route("/uploads", methods=["OPTIONS"])
def upload_options() -> Response:
    return tus.options()


@bp.post("/uploads", provide_automatic_options=False)
def create_upload() -> Response | tuple[Response, int]:
    if tus.requested():
        return tus.create()
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
    relay = Relay(client_body(settings), boundary, upload_limits(settings))
    started = time.monotonic()
    _relay(relay, upload_id, length)
    message_id = enqueue(upload_id, relay.purpose, relay.metadata)
    metrics.RELAY_SECONDS.observe(time.monotonic() - started)
    log.info("upload accepted", extra={"upload_id": upload_id, "tenant": tenant(),
                                       "bytes": relay.received,
                                       "seconds": round(time.monotonic() - started, 3),
                                       "message_id": message_id})
    body = {"id": upload_id, "status": PUBLIC_STATUS[State.QUEUED], "purpose": relay.purpose,
            "files": relay.files, "links": _links(upload_id)}
    return jsonify(body), 202


def _relay(relay: Relay, upload_id: str, length: int | None) -> None:
    client = place(upload_id, length)
    try:
        relay.read_head(geo_call(client.purposes, upload_id))
    except RelayError as exc:
        raise _refused(exc, relay, upload_id) from None  # nothing reached the geo service
    log.info("upload started", extra={"upload_id": upload_id, "tenant": tenant(),
                                      "purpose": relay.purpose, "content_length": length})
    try:
        manifest = client.upload(upload_id, tenant(), request.content_type or "", relay.body(),
                                 length)
        relay.check(manifest["files"])
    except RelayError as exc:
        client.delete(upload_id)
        raise _refused(exc, relay, upload_id) from None
    except GeoError as exc:
        client.delete(upload_id)
        raise geo_problem(exc, upload_id) from None


def _refused(exc: RelayError, relay: Relay, upload_id: str) -> Problem:
    log.info("upload refused", extra={"upload_id": upload_id, "tenant": tenant(),
                                      "reason": exc.detail,
                                      "status": exc.status, "bytes": relay.received})
    return relay_problem(exc, upload_id)


@bp.get("/uploads/<upload_id>")
def show_upload(upload_id: str) -> Response:
    if request.method == "HEAD" and tus.requested():
        return tus.head(upload_id)
    return jsonify(_public_status(owned_status(upload_id)))


@bp.patch("/uploads/<upload_id>")
def append_to_upload(upload_id: str) -> Response:
    return tus.append(upload_id)


@bp.delete("/uploads/<upload_id>")
def cancel_upload(upload_id: str) -> tuple[str, int]:
    """Stop the upload wherever it is and remove it, unless a worker is processing it."""
    owned_status(upload_id)
    try:
        removed = geo(upload_id).cancel(upload_id)
    except GeoError as exc:
        if exc.status == 409:
            raise Problem(409, "processing",
                          "a worker is processing the upload; it can be removed once it is "
                          "done or failed", upload_id=upload_id) from None
        raise geo_problem(exc, upload_id) from None
    if not removed:
        raise not_found(upload_id)
    log.info("upload cancelled", extra={"upload_id": upload_id, "tenant": tenant()})
    return "", 204


def _public_status(status: dict[str, Any]) -> dict[str, Any]:
    """The status document; a resumable upload still receiving also says how far it got."""
    manifest = status.get("manifest") or {}
    info = status.get("info") or {}
    result = status.get("result") or {}
    upload_id = status["id"]
    document = {
        "id": upload_id,
        "status": PUBLIC_STATUS[status["state"]],
        "purpose": manifest.get("purpose", info.get("purpose")),
        "metadata": manifest.get("metadata", info.get("metadata")),
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
    if info and status["state"] == State.RECEIVING:
        document.update(offset=status.get("offset"), length=info.get("length"))
    return document


def _links(upload_id: str) -> dict[str, str]:
    return {"self": url_for(".show_upload", upload_id=upload_id)}
