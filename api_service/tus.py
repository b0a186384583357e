"""tus 1.0.0 on the upload URLs: creation, appends, offsets and termination through the relay.

The API keeps nothing between requests: every tus request becomes one or
two calls to the geo service, which alone knows an upload's offset. A
creation makes an empty upload there; a ``PATCH`` streams its body straight
through (as the multipart relay does: a chunk at a time, nothing spooled);
a ``HEAD`` asks for the durable offset, which makes a writer still holding
the upload let go. When the last byte is stored the geo service seals the
upload, and the request that sent it enqueues the job, exactly as a
multipart upload's does. A request is a tus one when it carries
``Tus-Resumable`` (``OPTIONS`` and ``PATCH`` are tus's alone).
"""

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from flask import Response, request, url_for
from werkzeug.http import http_date

from api_service.errors import append_problem, relay_problem
from api_service.geo import GeoClient, GeoError
from api_service.relay import RelayError, read_chunk
from api_service.state import current_state
from api_service.uploads import (
    client_body,
    enqueue,
    geo,
    geo_call,
    keep_on,
    owned_status,
    place,
    purposes,
    tenant,
)
from handoff import tus as grammar
from handoff import tus_request
from handoff.ids import is_upload_id, new_upload_id
from handoff.jsontext import dumps
from handoff.problems import Problem, bad_request, not_found
from handoff.server import metrics
from handoff.server.request_body import close_after_answer
from handoff.states import State
from handoff.tus_request import Append, UploadInfo

log = logging.getLogger("handoff.api")

EXTENSIONS = ("creation", "creation-with-upload", "creation-defer-length", "termination",
              "expiration", "checksum", "concatenation")


def requested() -> bool:
    return "Tus-Resumable" in request.headers


def check_version() -> None:
    """Refuse a tus request for another protocol version (412, with the one spoken here)."""
    tus_request.check_version(request.headers)


def mark_response(response: Response) -> Response:
    """Every answer to a tus request, a refusal too, says which tus it speaks."""
    if requested() or request.method == "OPTIONS":
        response.headers["Tus-Resumable"] = grammar.VERSION
    return response


def options() -> Response:
    """What this server supports; open to anyone, like a CORS preflight."""
    settings = current_state().settings
    return _bodiless(204, {
        "Tus-Version": grammar.VERSION, "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(settings.max_upload_size),
        "Tus-Checksum-Algorithm": ",".join(grammar.CHECKSUM_ALGORITHMS)})


def create() -> Response:
    """A new upload, refused before any byte if its length or metadata cannot be used."""
    settings = current_state().settings
    creation = tus_request.parse_creation(request.headers, purposes, settings.max_upload_size)
    if creation.concat is not None and creation.concat.final:
        return _create_final(creation.info, creation.concat)
    info = creation.info
    upload_id = new_upload_id()
    location = url_for(".show_upload", upload_id=upload_id)
    # A tenant's partial uploads share a replica, where their final upload joins them.
    client = place(upload_id, info.length, affinity=tenant() if info.partial else None)
    document = geo_call(lambda: client.create_resumable(upload_id, tenant(), info.document()),
                        upload_id)
    log.info("resumable upload created", extra={"upload_id": upload_id, "tenant": tenant(),
                                                "purpose": info.purpose, "length": info.length})
    if creation.first_bytes is not None:
        try:
            document = _append(upload_id, creation.first_bytes)
        except Problem as problem:  # the upload exists: the client may resume it
            problem.headers["Location"] = location
            raise
    return _answer(document, 201, {"Location": location})


def _create_final(info: UploadInfo, concat: grammar.Concat) -> Response:
    """The final upload, made at once of the listed partial uploads, in their order.

    It carries the purpose and metadata; its parts carry only bytes. The
    geo service joins them and seals the final, so its job is enqueued
    before this answers, as for the last PATCH of any upload.
    """
    assert concat.parts is not None
    info = replace(info, concat=tuple(_part_id(url) for url in concat.parts))
    upload_id = new_upload_id()
    client = _final_replica(upload_id, info.concat or ())
    document = geo_call(lambda: client.create_final(upload_id, tenant(), info.document()), None)
    log.info("final upload made", extra={"upload_id": upload_id, "tenant": tenant(),
                                         "parts": len(concat.parts)})
    return _answer(document, 201, {"Location": url_for(".show_upload", upload_id=upload_id)})


def _final_replica(upload_id: str, part_ids: tuple[str, ...]) -> GeoClient:
    """Where the final upload is made: the replica that holds every part, recorded there.

    With a shared store any replica reaches every part: the final upload is
    placed as any new one is.
    """
    if current_state().replicas.anywhere:
        return place(upload_id, None)
    replicas = set(map(geo, part_ids))
    if len(replicas) > 1:
        raise bad_request("the parts of a final upload are on different geo replicas")
    client = replicas.pop()
    keep_on(upload_id, client)
    return client


def _part_id(url: str) -> str:
    """The upload id in a partial upload's URL, as this API gave it (absolute or a path)."""
    path = urlsplit(url).path
    upload_id = path.rsplit("/", 1)[-1]
    if not is_upload_id(upload_id) or path != url_for(".show_upload", upload_id=upload_id):
        raise bad_request(f"Upload-Concat names {url!r}, which is no upload URL of this API")
    return upload_id


def head(upload_id: str) -> Response:
    """Where to resume: always asked of the geo service, never cached."""
    owned_status(upload_id)
    document = geo_call(lambda: geo(upload_id).resume_offset(upload_id), upload_id)
    if document is None:
        raise not_found(upload_id)
    headers = {"Cache-Control": "no-store", "Upload-Metadata": _metadata_header(document)}
    if document["partial"]:
        headers["Upload-Concat"] = "partial"
    elif document["concat"]:
        headers["Upload-Concat"] = grammar.Concat(tuple(
            url_for(".show_upload", upload_id=part) for part in document["concat"])).header()
    if document["length"] is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(document["length"])
    return _answer(document, 200, headers)


def _metadata_header(document: dict[str, Any]) -> str:
    pairs = {"filename": document["filename"]} if document["filename"] else {}
    if document["purpose"]:
        pairs["purpose"] = document["purpose"]
    if document["metadata"]:
        pairs["metadata"] = dumps(document["metadata"])
    return grammar.encode_metadata(pairs)


def append(upload_id: str) -> Response:
    """One PATCH, streamed to the geo service; the last one answers once the job is enqueued."""
    tus_request.check_version(request.headers, required=True)
    owned_status(upload_id)
    document = _append(upload_id, tus_request.parse_append(request.headers))
    return _answer(document, 204, {})


def _append(upload_id: str, body: Append) -> dict[str, Any]:
    """Relay this request's body to the geo service at its offset; the offset document after."""
    settings = current_state().settings
    tus_request.check_room(body, request.headers, settings.max_upload_size, upload_id=upload_id)
    passed = {name: value for name in ("Upload-Checksum", "Upload-Length")
              if (value := request.headers.get(name)) is not None}
    with metrics.IN_FLIGHT.track_inprogress(), current_state().slots.hold(upload_id):
        try:
            return geo(upload_id).append(upload_id, _relayed(settings.relay_chunk_size),
                                request.content_length,
                                {"Upload-Offset": str(body.offset), **passed})
        except RelayError as exc:
            close_after_answer(request.environ)
            raise relay_problem(exc, upload_id,
                                f"{exc.detail}; what arrived before is kept") from None
        except GeoError as exc:
            raise append_problem(exc, upload_id) from None


def _relayed(chunk_size: int) -> Iterator[bytes]:
    body = client_body(current_state().settings)
    while chunk := read_chunk(body, chunk_size):
        metrics.RELAYED_BYTES.inc(len(chunk))
        yield chunk


def _answer(document: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    """The tus answer for ``document``; a sealed upload's job is enqueued first."""
    if document["state"] == State.COMPLETE:
        enqueue(document["id"], document["purpose"], document["metadata"] or {})
        metrics.UPLOADS.labels("accepted").inc()
        log.info("upload accepted", extra={"upload_id": document["id"], "tenant": tenant(),
                                           "bytes": document["offset"], "protocol": "tus"})
    headers = {**headers, "Upload-Offset": str(document["offset"])}
    if document["expires"] is not None:
        headers["Upload-Expires"] = http_date(document["expires"])
    return _bodiless(status, headers)


def _bodiless(status: int, headers: dict[str, str]) -> Response:
    """A tus answer: all in its headers, so without Flask's default text/html type."""
    response = Response(status=status, headers=headers)
    del response.headers["Content-Type"]
    return response
