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
import errno
import logging
import socket
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from geo_service.http.uploads import (
    BodyIncomplete,
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
from handoff import tus
from handoff.fields import MAX_METADATA_DEPTH, FieldError
from handoff.form import MAX_FILENAME, parse_purpose
from handoff.form_consumer import TooLarge
from handoff.jsontext import JsonRefused, loads
from handoff.problems import Problem
from handoff.server.request_body import close_after_answer
from handoff.server.web import current_settings, require_bearer, upload_slot

log = logging.getLogger("handoff.geo")
bp = Blueprint("resumable", __name__)


@bp.before_request
def _authenticate() -> None:
    require_bearer([current_settings().geo_secret], "secret")


@bp.put("/uploads/<upload_id>")
def create(upload_id: str) -> tuple[Response, int]:
    store = current_store()
    body = _creation_body()
    info = _creation_info(body)
    parts = _part_ids(body)
    if parts is not None:
        return _create_final(store, checked_id(upload_id), info, parts)
    _make(store, checked_id(upload_id), info)
    if info["length"] == 0 and not info["partial"]:
        with store.lock(upload_id):
            _seal(Appender(store, upload_id, 0), Progress.empty())
    log.info("resumable upload created", extra={"upload_id": upload_id,
                                                "length": info["length"]})
    return jsonify(_document(upload_id, 0)), 201


def _make(store: UploadStore, upload_id: str, info: dict[str, Any]) -> None:
    try:
        store.create_resumable(upload_id, request_tenant(), info, Progress.empty().record())
    except UploadExists:
        raise Problem(409, "exists", "an upload with this id already exists",
                      upload_id=upload_id) from None
    except OSError as exc:
        raise _storage_problem(exc, upload_id) or exc from None


def _create_final(store: UploadStore, upload_id: str, info: dict[str, Any],
                  part_ids: list[str]) -> tuple[Response, int]:
    """The final upload of tus's concatenation, made and sealed from its complete parts."""
    limit = current_settings().max_upload_size
    try:
        with held_parts(store, part_ids, request_tenant(), limit, LockWait.TAKE_OVER) as parts:
            length = sum(part.progress.offset for part in parts)
            if length > limit:
                raise Problem(413, "too-large", f"the parts add up to more than {limit} bytes")
            _make(store, upload_id, {**info, "length": length, "concat": part_ids})
            _join_and_seal(store, upload_id, parts)
            for part in parts:
                store.remove(part.upload_id)
    except PartError as exc:
        raise _bad(str(exc)) from None
    except Busy:
        raise _locked(upload_id) from None
    except OSError as exc:
        raise _storage_problem(exc, upload_id) or exc from None
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


def _part_ids(body: Any) -> list[str] | None:
    """The ids of the final upload's parts, in order; None for any other upload."""
    parts = body.get("concat")
    if parts is None:
        return None
    if (not isinstance(parts, list) or not parts
            or not all(isinstance(part, str) for part in parts)):
        raise _bad("concat must be a non-empty list of upload ids")
    return [checked_id(part) for part in parts]


def _creation_body() -> Any:
    """The creation's JSON, read as the API reads metadata (:func:`handoff.fields.parse_metadata`).

    Metadata sits one level inside the body, so the body may nest one level
    deeper than metadata may; nothing else in it nests at all.
    """
    if not request.is_json:
        return None
    try:
        return loads(request.get_data(as_text=True), MAX_METADATA_DEPTH + 1)
    except JsonRefused as exc:
        raise _bad(f"the body {exc}; metadata may nest at most {MAX_METADATA_DEPTH} levels "
                   "and hold only finite numbers") from None


def _creation_info(body: Any) -> dict[str, Any]:
    """The info of a new upload, checked as the multipart form's fields are.

    A partial upload (``"partial": true``) is only bytes for a final upload
    to be made of: it has no purpose, and its name and metadata are never used.
    """
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    partial = body.get("partial", False)
    if type(partial) is not bool:
        raise _bad("partial must be true or false")
    if partial:
        body = {"filename": "part", "content_type": "application/octet-stream",
                "length": body.get("length")}
    length, metadata = body.get("length"), body.get("metadata", {})
    filename, content_type = body.get("filename"), body.get("content_type")
    purpose = None if partial else _purpose(body)
    if length is not None and (type(length) is not int or length < 0):
        raise _bad("length must be a non-negative integer or null")
    if length is not None and length > current_settings().max_upload_size:
        raise Problem(413, "too-large",
                      f"the upload exceeds {current_settings().max_upload_size} bytes")
    if not isinstance(metadata, dict):
        raise _bad("metadata must be a JSON object")
    if not isinstance(filename, str) or not filename or len(filename.encode()) > MAX_FILENAME:
        raise _bad(f"filename must be a name of 1 to {MAX_FILENAME} bytes of UTF-8")
    if not isinstance(content_type, str):
        raise _bad("content_type must be a string")
    return {"purpose": purpose, "metadata": metadata, "filename": filename,
            "content_type": content_type, "length": length, "partial": partial}


def _purpose(body: dict[str, Any]) -> str:
    try:
        return parse_purpose(body.get("purpose"), current_app.config["PURPOSES"])
    except FieldError as exc:
        raise _bad(str(exc)) from None


@bp.patch("/uploads/<upload_id>")
def append(upload_id: str) -> Response:
    checked_id(upload_id)
    offset, checksum, declared = _append_headers()
    with upload_slot(upload_id):
        store = current_store()
        if _resumable(store, upload_id).get("concat") is not None:
            raise Problem(403, "final-upload", "a final upload is made of its parts and "
                          "takes no appends", upload_id=upload_id)
        try:
            with store.take_over(upload_id, LockWait.TAKE_OVER):
                return _append_locked(store, upload_id, offset, checksum, declared)
        except Busy:
            raise _locked(upload_id) from None


def _append_headers() -> tuple[int, tus.Checksum | None, int | None]:
    if request.mimetype != tus.OFFSET_MEDIA_TYPE:
        raise Problem(415, "unsupported-media-type",
                      f"an append's Content-Type is {tus.OFFSET_MEDIA_TYPE}")
    try:
        offset = tus.parse_offset(request.headers.get("Upload-Offset"), "Upload-Offset")
        checksum = tus.parse_checksum(request.headers.get("Upload-Checksum"))
        declared = tus.parse_offset(request.headers.get("Upload-Length"), "Upload-Length")
    except tus.HeaderError as exc:
        raise _bad(str(exc)) from None
    if offset is None:
        raise _bad("Upload-Offset is required")
    return offset, checksum, declared


def _append_locked(store: UploadStore, upload_id: str, offset: int,
                   checksum: tus.Checksum | None, declared: int | None) -> Response:
    if store.state(upload_id) is not State.RECEIVING:
        return _append_to_sealed(store, upload_id, offset)
    appender = Appender(store, upload_id, current_settings().max_upload_size)
    progress = appender.settle()
    chunks = body_chunks(current_settings().relay_chunk_size)
    try:
        if offset != progress.offset:
            raise OffsetMismatch(progress.offset)
        if declared is not None:
            appender.declare_length(declared, offset)
        if offset + (request.content_length or 0) > appender.limit():
            raise TooLarge(f"the body goes past the upload's length of {appender.limit()} bytes")
        with StopWatch(store, upload_id, _end_read()) as watch:
            progress = _appended(appender, progress, offset, chunks, checksum, watch)
    except BaseException as exc:
        raise _refusal(exc, store, upload_id, chunks) from None
    if progress.offset == appender.length and not appender.info.get("partial"):
        _seal(appender, progress)
    return jsonify(_document(upload_id, progress.offset))


def _appended(appender: Appender, progress: Progress, offset: int, chunks: Any,
              checksum: tus.Checksum | None, watch: StopWatch) -> Progress:
    try:
        return appender.append(progress, offset, chunks, checksum, watch.check)
    except BodyIncomplete:
        watch.check()  # a read ended by the watch is a stop, not a broken sender
        raise


def _append_to_sealed(store: UploadStore, upload_id: str, offset: int) -> Response:
    """A retried last append finds the upload sealed: fine if it carries nothing new."""
    size = int((store.manifest(upload_id) or {})["size"])
    if offset != size or request.content_length:
        raise _mismatch(size, upload_id)
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
    if isinstance(exc, OffsetMismatch):
        return _mismatch(exc.offset, upload_id)
    if isinstance(exc, LengthError):
        return _bad(str(exc))
    if isinstance(exc, TooLarge):
        return Problem(413, "too-large", exc.detail, upload_id=upload_id)
    if isinstance(exc, ChecksumMismatch):
        return Problem(tus.CHECKSUM_MISMATCH, "checksum-mismatch",
                       f"{exc}; nothing of it was kept", upload_id=upload_id)
    close_after_answer(request.environ)
    if isinstance(exc, Cancelled):
        store.remove_if_cancelled(upload_id)
        return Problem(409, "cancelled",
                       "the upload was cancelled while it was being received",
                       upload_id=upload_id)
    if isinstance(exc, Stopped):
        log.info("append stopped for another request", extra={"upload_id": upload_id})
        return Problem(409, "stopped",
                       "another request for this upload took it over; what was received "
                       "is kept", upload_id=upload_id)
    if isinstance(exc, BodyIncomplete):
        return Problem(400, "incomplete-body",
                       f"the request body ended early ({exc}); what was received is kept",
                       upload_id=upload_id)
    return _storage_problem(exc, upload_id) or exc


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
    raise Problem(404, "not-found", "no resumable upload with this id",
                  upload_id=upload_id)


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


def _mismatch(offset: int, upload_id: str) -> Problem:
    return Problem(409, "offset-mismatch",
                   f"the upload's offset is {offset}", headers={"Upload-Offset": str(offset)},
                   upload_id=upload_id, offset=offset)


def _locked(upload_id: str) -> Problem:
    return Problem(423, "locked",
                   f"another request held the upload for more than {LockWait.TAKE_OVER:.0f} s",
                   upload_id=upload_id)


def _bad(detail: str) -> Problem:
    return Problem(400, "bad-request", detail)


def _storage_problem(exc: BaseException, upload_id: str) -> Problem | None:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Problem(507, "storage-full",
                       "the upload store is full; what was received is kept",
                       upload_id=upload_id)
    return None
