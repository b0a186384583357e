"""The resumable way into ``/uploads/<id>``: made empty, then appended to at an offset.

- ``PUT /uploads/<id>`` (JSON: purpose, metadata, filename, content_type,
  length or null for one declared later) makes an empty upload: 201.
- ``PATCH /uploads/<id>`` appends its body at ``Upload-Offset`` (with an
  optional ``Upload-Checksum``, and ``Upload-Length`` to fix a deferred
  length): 200. The upload is sealed, as a multipart one, with its last byte.
- ``GET /uploads/<id>/offset`` is the durable offset, after a writer still
  holding the lock has been asked to let go: what a client resumes from. A
  sealed multipart upload answers too, as complete: offset and length its
  files' total.

Each answers with the same document (:func:`_document`). The geo service is
the only authority on an upload's offset: a body sent for another one is
refused with 409 and the offset. Appends run under the upload's lock; who
waits for it asks its holder to stop (:meth:`UploadStore.take_over`), and
the holder's :class:`StopWatch` ends even a read that its silent sender
would keep blocked.
"""

import contextlib
import socket
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, request

from geo_service.http import log
from geo_service.http.errors import BodyIncomplete, offset_mismatch, upload_problem
from geo_service.http.state import current_state, upload_slot
from geo_service.http.uploads import (
    body_chunks,
    checked_id,
    current_store,
    drain,
    request_tenant,
)
from geo_service.intake.append import (
    Appender,
    ChecksumMismatch,
    LengthError,
    OffsetMismatch,
    Progress,
)
from geo_service.intake.concat import Part, PartError, held_parts, join
from geo_service.intake.stop import Cancelled, Stopped, StopWatch
from geo_service.store import Busy, LockWait, State, UploadExists, UploadMissing, UploadStore
from handoff import tus_request
from handoff.form_consumer import TooLarge
from handoff.problems import Problem, bad_request, not_found
from handoff.server.request_body import close_after_answer
from handoff.server.web import current_settings, require_bearer
from handoff.tus_request import Append, UploadInfo

bp = Blueprint("resumable", __name__)


@bp.before_request
def _authenticate() -> None:
    require_bearer([current_settings().geo_secret], "secret")


@bp.put("/uploads/<upload_id>")
def create(upload_id: str) -> tuple[Response, int]:
    store = current_store()
    text = request.get_data(as_text=True) if request.is_json else None
    info = tus_request.parse_info_document(text, lambda: current_state().purposes,
                                           current_settings().max_upload_size)
    if info.concat is not None:
        parts = [checked_id(part) for part in info.concat]
        return _create_final(store, checked_id(upload_id), info, parts)
    _make(store, checked_id(upload_id), info)
    if info.length == 0 and not info.partial:
        with store.lock(upload_id):
            _seal(Appender(store, upload_id, 0), Progress.empty())
    log.info("resumable upload created", extra={"upload_id": upload_id, "length": info.length})
    return jsonify(_document(upload_id, 0)), 201


def _make(store: UploadStore, upload_id: str, info: UploadInfo) -> None:
    try:
        store.create_resumable(upload_id, request_tenant(), info.document(),
                               Progress.empty().record())
    except (UploadExists, OSError) as exc:
        raise upload_problem(exc, upload_id, kept=True) or exc from None


def _create_final(store: UploadStore, upload_id: str, info: UploadInfo,
                  part_ids: list[str]) -> tuple[Response, int]:
    """The final upload of tus's concatenation, made and sealed from its complete parts."""
    limit = current_settings().max_upload_size
    try:
        with held_parts(store, part_ids, request_tenant(), limit, LockWait.TAKE_OVER) as parts:
            length = sum(part.progress.offset for part in parts)
            if length > limit:
                raise Problem(413, "too-large", f"the parts add up to more than {limit} bytes")
            _make(store, upload_id, replace(info, length=length))
            _join_and_seal(store, upload_id, parts)
            for part in parts:
                store.remove(part.upload_id)
    except PartError as exc:
        raise bad_request(str(exc)) from None
    except Busy:
        raise _locked(upload_id) from None
    except OSError as exc:
        raise upload_problem(exc, upload_id, kept=True) or exc from None
    log.info("final upload made of its parts", extra={"upload_id": upload_id, "bytes": length,
                                                      "parts": len(part_ids)})
    return jsonify(_document(upload_id, length)), 201


def _join_and_seal(store: UploadStore, upload_id: str, parts: list[Part]) -> None:
    """Fill the new final upload from its parts and seal it; a failed join leaves nothing."""
    with store.lock(upload_id):
        appender = Appender(store, upload_id, current_settings().max_upload_size)
        try:
            progress = appender.save(join(store, upload_id, parts))
        except BaseException:
            store.remove(upload_id)
            raise
        _seal(appender, progress)


@bp.patch("/uploads/<upload_id>")
def append(upload_id: str) -> Response:
    checked_id(upload_id)
    body = tus_request.parse_append(request.headers)
    with upload_slot(upload_id):
        store = current_store()
        if _resumable(store, upload_id).get("concat") is not None:
            raise Problem(403, "final-upload", "a final upload is made of its parts and "
                          "takes no appends", upload_id=upload_id)
        try:
            with store.take_over(upload_id, LockWait.TAKE_OVER):
                return _append_locked(store, upload_id, body)
        except Busy:
            raise _locked(upload_id) from None


def _append_locked(store: UploadStore, upload_id: str, body: Append) -> Response:
    if store.state(upload_id) is not State.RECEIVING:
        return _append_to_sealed(store, upload_id, body.offset)
    appender = Appender(store, upload_id, current_settings().max_upload_size)
    progress = appender.settle()
    chunks = body_chunks(current_settings().relay_chunk_size)
    try:
        if body.offset != progress.offset:
            raise OffsetMismatch(progress.offset)
        if body.length is not None:
            appender.declare_length(body.length, body.offset)
        if body.offset + (request.content_length or 0) > appender.limit():
            raise TooLarge(f"the body goes past the upload's length of {appender.limit()} bytes")
        with StopWatch(store, upload_id, _end_read()) as watch:
            progress = _appended(appender, progress, body, chunks, watch)
    except BaseException as exc:
        raise _refusal(exc, store, upload_id, chunks) from None
    if progress.offset == appender.length and not appender.info.get("partial"):
        _seal(appender, progress)
    return jsonify(_document(upload_id, progress.offset))


def _appended(appender: Appender, progress: Progress, body: Append, chunks: Any,
              watch: StopWatch) -> Progress:
    try:
        return appender.append(progress, body.offset, chunks, body.checksum, watch.check)
    except BodyIncomplete:
        watch.check()  # a read ended by the watch is a stop, not a broken sender
        raise


def _append_to_sealed(store: UploadStore, upload_id: str, offset: int) -> Response:
    """A retried last append finds the upload sealed: fine if it carries nothing new."""
    size = int((store.manifest(upload_id) or {})["size"])
    if offset != size or request.content_length:
        raise offset_mismatch(size, upload_id)
    return jsonify(_document(upload_id, size))


def _seal(appender: Appender, progress: Progress) -> None:
    appender.store.seal(appender.upload_id, appender.manifest(progress))
    log.info("resumable upload complete", extra={"upload_id": appender.upload_id,
                                                 "bytes": progress.offset})


def _end_read() -> Any:
    """What ends the blocked read of this request's body: its socket shut for reading."""
    sock = request.environ.get("gunicorn.socket")

    def end() -> None:
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed: the read has ended anyway
                sock.shutdown(socket.SHUT_RD)

    return end


def _refusal(exc: BaseException, store: UploadStore, upload_id: str, chunks: Any) -> BaseException:
    """The answer to an append that did not complete; its durable bytes are kept."""
    if isinstance(exc, (OffsetMismatch, LengthError, TooLarge)):
        drain(chunks)
    elif not isinstance(exc, ChecksumMismatch):
        close_after_answer(request.environ)
    if isinstance(exc, Cancelled):
        store.remove_if_cancelled(upload_id)
    if isinstance(exc, Stopped):
        log.info("append stopped for another request", extra={"upload_id": upload_id})
    return upload_problem(exc, upload_id, kept=True) or exc


@bp.get("/uploads/<upload_id>/offset")
def offset(upload_id: str) -> Response:
    """The durable offset to resume from; a writer still holding the upload lets go first."""
    store = current_store()
    manifest = store.manifest(checked_id(upload_id))
    if manifest is not None and store.info(upload_id) is None:
        return jsonify(_multipart_document(upload_id, manifest))
    _resumable(store, upload_id)
    if store.state(upload_id) is not State.RECEIVING:
        return _sealed_document(store, upload_id)
    try:
        with store.take_over(upload_id, LockWait.TAKE_OVER):
            if store.state(upload_id) is not State.RECEIVING:
                return _sealed_document(store, upload_id)
            progress = Appender(store, upload_id, current_settings().max_upload_size).settle()
    except Busy:
        raise _locked(upload_id) from None
    return jsonify(_document(upload_id, progress.offset))


def _sealed_document(store: UploadStore, upload_id: str) -> Response:
    return jsonify(_document(upload_id, int((store.manifest(upload_id) or {})["size"])))


def _resumable(store: UploadStore, upload_id: str) -> dict[str, Any]:
    """Its info; 404 unless ``upload_id`` is a resumable upload (a multipart one has none)."""
    try:
        info = store.info(upload_id)
    except UploadMissing:
        info = None
    if info is not None:
        return info
    raise not_found(upload_id, "no resumable upload with this id")


def _document(upload_id: str, offset: int) -> dict[str, Any]:
    """What every answer here says of the upload; ``expires`` only while it is receiving.

    An upload left receiving is the sweeper's ``partial_ttl`` after its last
    activity, the same time the sweeper measures from.
    """
    store = current_store()
    info = store.info(upload_id) or {}
    state = store.state(upload_id)
    expires = None
    if state is State.RECEIVING:
        expires = store.last_activity(upload_id) + current_settings().partial_ttl
    return {"id": upload_id, "state": str(state), "offset": offset, "length": info.get("length"),
            "purpose": info.get("purpose"), "metadata": info.get("metadata"),
            "filename": info.get("filename"), "expires": expires,
            "partial": bool(info.get("partial")), "concat": info.get("concat")}


def _multipart_document(upload_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """A sealed multipart upload, as a complete tus one: at its length, nothing to resume.

    Its length is the total of its files; only a single file gives it a file name.
    """
    files = manifest["files"]
    return {"id": upload_id, "state": str(current_store().state(upload_id)),
            "offset": manifest["size"], "length": manifest["size"],
            "purpose": manifest["purpose"], "metadata": manifest["metadata"],
            "filename": files[0]["name"] if len(files) == 1 else None, "expires": None,
            "partial": False, "concat": None}


def _locked(upload_id: str) -> Problem:
    return Problem(423, "locked",
                   f"another request held the upload for more than {LockWait.TAKE_OVER:.0f} s",
                   upload_id=upload_id)
