"""The internal upload endpoint: ``/uploads/<id>``, reachable only with the shared secret."""

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from geo_service.http import log
from geo_service.http.errors import BodyIncomplete, upload_problem
from geo_service.http.state import current_state, upload_slot
from geo_service.intake.receive import Receiver
from geo_service.intake.stop import Cancelled
from geo_service.store import (
    Busy,
    InvalidId,
    LockWait,
    State,
    UploadExists,
    UploadMissing,
    UploadStore,
    check_id,
)
from geo_service.store.bucket import BucketUnavailable
from handoff.auth import ANONYMOUS, is_tenant_name
from handoff.config import Settings
from handoff.form import upload_limits
from handoff.problems import Problem, not_found
from handoff.server import metrics
from handoff.server.request_body import body_reader, close_after_answer
from handoff.server.web import current_settings, multipart_boundary, require_bearer

bp = Blueprint("uploads", __name__)
TENANT_HEADER = "Handoff-Tenant"


def current_store() -> UploadStore:
    return current_state().store


@bp.before_request
def _authenticate() -> None:
    require_bearer([current_settings().geo_secret], "secret")


def request_tenant() -> str:
    """The tenant the API creates the upload for (only holders of the secret get here)."""
    tenant = request.headers.get(TENANT_HEADER, ANONYMOUS)
    if not is_tenant_name(tenant):
        raise Problem(400, "invalid-tenant",
                      f"the {TENANT_HEADER} header is not a valid tenant name")
    return tenant


def checked_id(upload_id: str) -> str:
    try:
        check_id(upload_id)
    except InvalidId:
        raise Problem(400, "invalid-id",
                      "upload ids are canonical lowercase UUIDs") from None
    return upload_id


def body_chunks(size: int) -> Iterator[bytes]:
    stream = body_reader(request.environ)
    while True:
        try:
            chunk = stream.read(size)
        except Exception as exc:
            raise BodyIncomplete(type(exc).__name__) from exc
        if not chunk:
            return
        yield chunk


def drain(chunks: Iterator[bytes]) -> None:
    """Read what is left of the body so the relay gets our answer, not a reset."""
    try:
        for _ in chunks:
            pass
    except Exception:  # the sender is gone; nobody is left to answer
        log.info("sender went away while draining")


@bp.post("/uploads/<upload_id>")
def create(upload_id: str) -> tuple[Response, int]:
    settings = current_settings()
    checked_id(upload_id)
    boundary = multipart_boundary(settings.max_upload_size, upload_id)
    with upload_slot(upload_id):
        return _create(upload_id, boundary, settings)


def _create(upload_id: str, boundary: bytes, settings: Settings) -> tuple[Response, int]:
    tenant = request_tenant()
    store = current_store()
    try:
        store.create(upload_id, tenant)
    except (UploadExists, OSError) as exc:
        raise upload_problem(exc, upload_id, kept=False) or exc from None
    log.info("upload receiving", extra={"upload_id": upload_id, "tenant": tenant,
                                        "content_length": request.content_length})
    with store.lock(upload_id):
        try:
            manifest = _receive(store, upload_id, boundary, settings, tenant)
        except Problem as problem:
            metrics.STORED_UPLOADS.labels(str(problem.status)).inc()
            raise
    metrics.STORED_UPLOADS.labels("stored").inc()
    log.info("upload complete", extra={"upload_id": upload_id, "bytes": manifest["size"]})
    return jsonify(manifest), 201


def _receive(store: UploadStore, upload_id: str, boundary: bytes, settings: Settings,
             tenant: str) -> dict:
    limits = upload_limits(settings)
    receiver = Receiver(store, upload_id, current_state().purposes, limits, tenant)
    chunks = body_chunks(limits.chunk_size)
    try:
        return receiver.receive(chunks, boundary)
    except BaseException as exc:
        _discard(store, upload_id)
        problem = upload_problem(exc, upload_id, kept=False)
        if problem is None:
            raise
        # A cancelled upload's sender is not drained: the point is to stop it. Nor is the
        # sender's rest drained into a store that is down: it could be gigabytes.
        if isinstance(exc, (BodyIncomplete, Cancelled, BucketUnavailable)):
            log.info("upload ended while receiving", extra={"upload_id": upload_id,
                                                            "reason": problem.kind})
            close_after_answer(request.environ)
        else:
            drain(chunks)
        raise problem from None


def _discard(store: UploadStore, upload_id: str) -> None:
    """Remove a broken upload; a store that is down cannot, and must not hide why it broke.

    What it left has no manifest, so no job ever reads it; the sweeper
    removes it once the store is back and the upload is past its TTL.
    """
    try:
        store.remove(upload_id)
    except BucketUnavailable as exc:
        log.warning("broken upload left to the sweeper", extra={"upload_id": upload_id,
                                                                "error": str(exc)})


@bp.get("/uploads/<upload_id>")
def show(upload_id: str) -> Response:
    try:
        return jsonify(current_store().status(checked_id(upload_id)))
    except UploadMissing:
        raise not_found(upload_id) from None


@bp.delete("/uploads/<upload_id>")
def delete(upload_id: str) -> tuple[str, int]:
    store = current_store()
    try:
        state = _cancel(store, checked_id(upload_id))
    except Busy:
        raise Problem(409, "in-use", "a worker is processing the upload",
                      upload_id=upload_id) from None
    except UploadMissing:
        raise not_found(upload_id) from None
    log.info("upload removed on request", extra={"upload_id": upload_id, "state": str(state)})
    return "", 204


def _cancel(store: UploadStore, upload_id: str) -> State:
    """Stop and remove the upload unless a worker is processing it (Busy).

    The writer of a receiving upload holds its lock, perhaps in another
    process or on another replica, so it is told through the store and
    removes the partial itself at its next chunk (and a worker that gets
    the lock first, should the writer just have sealed it, skips the job
    and removes it). Once the lock is free nobody is working on the
    upload, so it is removed whatever its state; a claimed upload whose
    lock is free lost its worker. Returns the state the upload was in.
    """
    state = store.state(upload_id)
    if state is State.RECEIVING:
        store.mark_cancelled(upload_id)
    try:
        wait = LockWait.NONE if state is State.CLAIMED else LockWait.CANCEL
        with store.lock(upload_id, timeout=wait):
            store.remove(upload_id)
    except (UploadMissing, Busy):
        # A writer that has not read on since stops at its next chunk;
        # until then the upload is hidden as cancelled.
        if state is not State.RECEIVING:
            raise
    return state


@bp.put("/uploads/<upload_id>/job")
def record_job(upload_id: str) -> tuple[str, int]:
    """The API says a job was enqueued: the upload is no longer an orphan."""
    job: dict[str, Any] = request.get_json(force=True, silent=True) or {}
    try:
        current_store().mark_queued(checked_id(upload_id), job)
    except UploadMissing:
        raise not_found(upload_id) from None
    return "", 204


@bp.get("/capacity")
def capacity() -> Response:
    """What the API places uploads by: this replica's name, free space, uploads arriving, ready.

    ``ready`` is the verdict ``/readyz`` gives; the uploads arriving are
    counted over all of this service's processes. ``store`` is the URL of a
    shared store (None for a store of its own): an API that shares one sends
    nothing to a replica on another.
    """
    settings = current_settings()
    failures = current_state().ready()
    return jsonify(replica=settings.replica or None,
                   store=str(settings.store_url) if settings.shared_store else None,
                   free_bytes=current_store().free_bytes(),
                   in_flight=int(metrics.total(metrics.GEO_IN_FLIGHT_NAME)),
                   ready=not failures)


@bp.get("/purposes")
def purposes() -> Response:
    return jsonify(sorted(current_state().purposes))

