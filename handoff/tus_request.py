"""A tus request read and checked: the one parser for the API and the geo service behind it.

Both hops check every request, the API before it relays a byte and the geo
service because it is the authority on an upload's bytes, and both check it
with this code. The API reads a creation from tus headers, the geo service
from the JSON the API sends on; either way it becomes one :class:`UploadInfo`,
checked by the same rules. Every refusal is a :class:`~handoff.problems.Problem`
naming what was wrong; what to do with a valid request (tenants, replicas,
the store, its locks) is each service's own.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from werkzeug.datastructures import Headers
from werkzeug.http import parse_options_header

from handoff import tus
from handoff.fields import MAX_METADATA_DEPTH, FieldError, parse_metadata
from handoff.form import MAX_FILENAME, parse_purpose
from handoff.jsontext import JsonRefused, loads
from handoff.problems import Problem, bad_request

DEFAULT_FILENAME = "upload"
DEFAULT_FILETYPE = "application/octet-stream"

#: The purposes an upload may name, asked for only when one must be checked
#: (the API asks its geo replicas).
Purposes = Callable[[], set[str] | frozenset[str]]
T = TypeVar("T")


@dataclass(frozen=True)
class UploadInfo:
    """What a creation says of an upload: stored by the geo service as it is here."""

    purpose: str | None
    metadata: dict[str, Any]
    filename: str
    content_type: str
    length: int | None
    partial: bool = False
    #: The ids of a final upload's parts, in order; None for any other upload.
    concat: tuple[str, ...] | None = None

    def document(self) -> dict[str, Any]:
        """The JSON form: what the API sends the geo service, and what the geo service stores."""
        document = dataclasses.asdict(self)
        if self.concat is None:
            del document["concat"]
        else:
            document["concat"] = list(self.concat)
        return document


@dataclass(frozen=True)
class Append:
    """A body to write at ``offset``: a PATCH's, or the first bytes a creation carries."""

    offset: int
    checksum: tus.Checksum | None
    #: A deferred length declared with these bytes (``Upload-Length`` on a PATCH).
    length: int | None = None


@dataclass(frozen=True)
class Creation:
    """A tus creation (``POST`` with ``Tus-Resumable``) as the API receives it."""

    info: UploadInfo
    concat: tus.Concat | None
    first_bytes: Append | None


def check_version(headers: Headers, *, required: bool = False) -> None:
    """412, naming the version spoken here, for another tus version, or none where one is due."""
    version = headers.get("Tus-Resumable")
    if version is None and required:
        raise _unsupported_version("this request needs Tus-Resumable")
    if version is not None and version != tus.VERSION:
        raise _unsupported_version(f"this server speaks tus {tus.VERSION} only")


def parse_append(headers: Headers) -> Append:
    """A PATCH: its media type (415), then Upload-Offset, Upload-Checksum and Upload-Length."""
    _check_media_type(headers)
    offset = _number(headers, "Upload-Offset")
    if offset is None:
        raise bad_request("Upload-Offset is required")
    return Append(offset, _checksum(headers), _number(headers, "Upload-Length"))


def check_room(append: Append, headers: Headers, max_size: int, length: int | None = None,
               upload_id: str | None = None) -> None:
    """413 when the headers alone show the body passing the size limit or the upload's length."""
    end = append.offset + _content_length(headers)
    if end > max_size:
        raise Problem(413, "too-large", f"the upload would exceed {max_size} bytes",
                      upload_id=upload_id)
    if length is not None and end > length:
        raise Problem(413, "too-large",
                      f"the body goes past the upload's length of {length} bytes",
                      upload_id=upload_id)


def parse_creation(headers: Headers, purposes: Purposes, max_size: int) -> Creation:
    """A creation's headers: ``Upload-Concat``, the length, ``Upload-Metadata``, first bytes."""
    concat = _concat(headers)
    if concat is not None and concat.final:
        return Creation(_final_info(headers, purposes, max_size), concat, None)
    length = _creation_length(headers)
    if concat is not None:
        info = checked_info(_part_fields(length), purposes, max_size)
    else:
        info = checked_info({**_metadata_fields(headers), "length": length}, purposes, max_size)
    first_bytes = None
    if carries_body(headers):
        _check_media_type(headers)
        first_bytes = Append(0, _checksum(headers))
        check_room(first_bytes, headers, max_size, info.length)
    return Creation(info, concat, first_bytes)


def parse_info_document(text: str | None, purposes: Purposes, max_size: int) -> UploadInfo:
    """The creation's JSON, as the geo service receives it from the API.

    Metadata sits one level inside the body, so the body may nest one level
    deeper than metadata may (:data:`~handoff.fields.MAX_METADATA_DEPTH`).
    """
    if text is None:
        raise bad_request("the body must be a JSON object")
    try:
        body = loads(text, MAX_METADATA_DEPTH + 1)
    except JsonRefused as exc:
        raise bad_request(f"the body {exc}; metadata may nest at most {MAX_METADATA_DEPTH} "
                          "levels and hold only finite numbers") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    partial = body.get("partial", False)
    if type(partial) is not bool:
        raise bad_request("partial must be true or false")
    fields = _part_fields(body.get("length")) if partial else body
    return checked_info({**fields, "partial": partial, "concat": _part_ids(body)},
                        purposes, max_size)


def checked_info(fields: dict[str, Any], purposes: Purposes, max_size: int) -> UploadInfo:
    """An upload's info, its fields checked as the multipart form's are, whichever hop asks."""
    partial = bool(fields.get("partial"))
    concat = fields.get("concat")
    return UploadInfo(
        purpose=None if partial else _purpose(fields.get("purpose"), purposes),
        metadata=_metadata_object(fields.get("metadata", {})),
        filename=_filename(fields.get("filename")),
        content_type=_content_type(fields.get("content_type")),
        length=_length(fields.get("length"), max_size),
        partial=partial,
        concat=None if concat is None else tuple(concat))


def carries_body(headers: Headers) -> bool:
    """Whether the request has a body: a non-zero Content-Length, or a chunked one."""
    return bool(_content_length(headers)) or "chunked" in headers.get("Transfer-Encoding", "")


def _final_info(headers: Headers, purposes: Purposes, max_size: int) -> UploadInfo:
    """A final upload has neither a length nor bytes of its own: its parts give both."""
    if carries_body(headers) or any(name in headers
                                    for name in ("Upload-Length", "Upload-Defer-Length")):
        raise bad_request("a final upload has neither a length nor bytes of its own")
    return checked_info({**_metadata_fields(headers), "length": None}, purposes, max_size)


def _part_fields(length: Any) -> dict[str, Any]:
    """A partial upload is bytes for a final upload only: no purpose, and no name worth keeping."""
    return {"purpose": None, "metadata": {}, "filename": "part",
            "content_type": DEFAULT_FILETYPE, "length": length, "partial": True}


def _creation_length(headers: Headers) -> int | None:
    """Upload-Length, or None for Upload-Defer-Length: 1; exactly one of them."""
    deferred = headers.get("Upload-Defer-Length")
    length = _number(headers, "Upload-Length")
    if (length is None) == (deferred is None):
        raise bad_request("a creation carries either Upload-Length or Upload-Defer-Length: 1")
    if deferred is not None and deferred != "1":
        raise bad_request("Upload-Defer-Length must be 1")
    return length


def _metadata_fields(headers: Headers) -> dict[str, Any]:
    """The info fields ``Upload-Metadata`` gives: purpose, metadata, file name and type."""
    pairs = _header(tus.parse_upload_metadata, headers.get("Upload-Metadata"))
    try:
        metadata = parse_metadata(pairs.get("metadata", ""))
    except FieldError as exc:
        raise bad_request(str(exc)) from None
    return {"purpose": pairs.get("purpose"), "metadata": metadata,
            "filename": pairs.get("filename") or DEFAULT_FILENAME,
            "content_type": pairs.get("filetype") or DEFAULT_FILETYPE}


def _part_ids(body: dict[str, Any]) -> list[str] | None:
    parts = body.get("concat")
    if parts is not None and (not isinstance(parts, list) or not parts
                              or not all(isinstance(part, str) for part in parts)):
        raise bad_request("concat must be a non-empty list of upload ids")
    return parts


def _purpose(value: Any, purposes: Purposes) -> str:
    try:
        return parse_purpose(value, purposes())
    except FieldError as exc:
        raise bad_request(str(exc)) from None


def _metadata_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request("metadata must be a JSON object")
    return value


def _filename(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value.encode()) > MAX_FILENAME:
        raise bad_request(f"filename must be a name of 1 to {MAX_FILENAME} bytes of UTF-8")
    return value


def _content_type(value: Any) -> str:
    if not isinstance(value, str):
        raise bad_request("content_type must be a string")
    return value


def _length(value: Any, max_size: int) -> int | None:
    if value is not None and (type(value) is not int or value < 0):
        raise bad_request("length must be a non-negative integer or null")
    if value is not None and value > max_size:
        raise Problem(413, "too-large", f"the upload exceeds {max_size} bytes (Tus-Max-Size)")
    return value


def _check_media_type(headers: Headers) -> None:
    if parse_options_header(headers.get("Content-Type"))[0].lower() != tus.OFFSET_MEDIA_TYPE:
        raise Problem(415, "unsupported-media-type",
                      f"upload bytes are sent as {tus.OFFSET_MEDIA_TYPE}")


def _concat(headers: Headers) -> tus.Concat | None:
    return _header(tus.parse_concat, headers.get("Upload-Concat"))


def _checksum(headers: Headers) -> tus.Checksum | None:
    return _header(tus.parse_checksum, headers.get("Upload-Checksum"))


def _number(headers: Headers, name: str) -> int | None:
    return _header(lambda value: tus.parse_offset(value, name), headers.get(name))


def _header(parse: Callable[[str | None], T], value: str | None) -> T:
    try:
        return parse(value)
    except tus.HeaderError as exc:
        raise bad_request(str(exc)) from None


def _content_length(headers: Headers) -> int:
    value = headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else 0


def _unsupported_version(detail: str) -> Problem:
    return Problem(412, "unsupported-version", detail, headers={"Tus-Version": tus.VERSION})
