"""Incremental multipart/form-data parsing, shared by the API and the geo service.

Werkzeug's ``request.files`` spools every large file to a temp file, which
defeats streaming. This wraps Werkzeug's sans-IO ``MultipartDecoder``: bytes
are pushed in as they arrive and part events come out, so file data can be
hashed, relayed or written without ever being held whole.
"""

from collections.abc import Generator, Iterator
from dataclasses import dataclass

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    State,
)

# Bytes a part's headers or the preamble may take before the form is refused.
HEADER_SLACK = 16 * 1024

MAX_BOUNDARY = 200


class NotMultipart(ValueError):
    """The body is not multipart/form-data at all (HTTP 415)."""


class MalformedForm(ValueError):
    """The body claims to be multipart/form-data but does not parse (HTTP 400)."""


@dataclass(frozen=True)
class FieldValue:
    name: str
    value: str


@dataclass(frozen=True)
class FileStart:
    name: str
    filename: str
    content_type: str


@dataclass(frozen=True)
class FileData:
    """A piece of a file; a view into the fed bytes, valid until the next feed."""

    data: bytes | memoryview


@dataclass(frozen=True)
class FileEnd:
    pass


FormEvent = FieldValue | FileStart | FileData | FileEnd


class _Decoder(MultipartDecoder):
    """Werkzeug's decoder with a fix for a closing boundary split across chunks.

    When a chunk ends inside ``\r\n--boundary--`` just after the boundary,
    Werkzeug 3.1.9 releases the ``\r`` as data (werkzeug#3285), adding a
    byte to the last part. Holding back everything from the first CR or LF
    in the last closing-boundary's length keeps a possible boundary whole.
    """

    def _last_partial_boundary_index(self, data: bytes | bytearray) -> int:
        start = max(0, len(data) - len(b"\r\n--" + self.boundary + b"--"))
        found = [i for i in (data.find(b"\r", start), data.find(b"\n", start)) if i != -1]
        return min(found) if found else len(data)


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type header."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype.lower() != "multipart/form-data":
        raise NotMultipart(f"expected multipart/form-data, got {mimetype or 'no content type'}")
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise MalformedForm("multipart/form-data without a valid boundary parameter")
    return boundary.encode("latin-1")


class FormParser:
    """Push bytes in with :meth:`feed`, get :data:`FormEvent` values out.

    Field values are collected (at most ``max_field_size`` bytes in all);
    file data is passed through as it arrives. ``feed(None)`` marks the end
    of the body and raises :class:`MalformedForm` if the form is incomplete.

    Inside a file, where nearly all bytes are, the bytes are not copied
    through Werkzeug's decoder: a search for the next ``--boundary`` after a
    line break finds where the file may end, and only from there on does
    the decoder take over again (headers, fields, and deciding whether a
    candidate is really a boundary).
    """

    def __init__(self, boundary: bytes, max_field_size: int) -> None:
        self._decoder = _Decoder(boundary)
        self._marker = b"--" + boundary
        # Bytes at the end of a piece that may begin "\r\n--boundary".
        self._hold = len(b"\r\n") + len(self._marker) - 1
        self._tail = b""
        self._max_field_size = max_field_size
        self._field_bytes = 0
        self._field: str | None = None
        self._value = bytearray()
        self._in_file = False
        self.complete = False

    def feed(self, data: bytes | None) -> Iterator[FormEvent]:
        try:
            if data is not None and self._streaming_file():
                rest = yield from self._file_data(data)
                if not rest:
                    return
                data = rest
            elif self._tail:
                self._decoder.receive_data(self._tail)
                self._tail = b""
            self._decoder.receive_data(data)
            yield from self._drain()
        except RequestEntityTooLarge:
            raise MalformedForm("too many form parts") from None
        except ValueError as exc:
            raise MalformedForm(_describe(exc, data is None)) from None

    def _streaming_file(self) -> bool:
        return (self._in_file and self._decoder.state is State.DATA
                and not self._decoder.buffer)

    def _file_data(self, data: bytes) -> Generator[FormEvent, None, bytes]:
        """Pass file bytes up to a possible boundary; return the rest for the decoder.

        The few bytes held back from the last piece (``_tail``) are looked at
        together with the start of this one, never glued to all of it: that
        would copy every byte of every file once more.
        """
        tail, self._tail = self._tail, b""
        end = self._boundary_end(tail, data)
        if end is None:
            yield from self._pass_on(tail, data)
            return b""
        if end <= len(tail):
            if end > 0:
                yield FileData(tail[:end])
            return tail[end:] + data
        if tail:
            yield FileData(tail)
        yield FileData(memoryview(data)[: end - len(tail)])
        return data[end - len(tail):]

    def _boundary_end(self, tail: bytes, data: bytes) -> int | None:
        """Where the file may end in ``tail + data``: before a line break and ``--boundary``."""
        if tail:
            seam = tail + data[: len(self._marker) - 1]
            start = 0
            while (hit := seam.find(self._marker, start)) != -1 and hit < len(tail):
                if (end := _end_before(seam[max(hit - 2, 0):hit], hit)) is not None:
                    return end
                start = hit + 1
        start = 0
        while (hit := data.find(self._marker, start)) != -1:
            before = data[hit - 2:hit] if hit >= 2 else (tail + data[:hit])[-2:]
            if (end := _end_before(before, len(tail) + hit)) is not None:
                return end
            start = hit + 1
        return None

    def _pass_on(self, tail: bytes, data: bytes) -> Iterator[FormEvent]:
        """All but the last bytes, which might begin a boundary the next piece completes."""
        if len(data) < self._hold:
            data, tail = tail + data, b""
        cut = max(len(data) - self._hold, 0)
        if tail:
            yield FileData(tail)
        if cut:
            yield FileData(memoryview(data)[:cut])
        self._tail = data[cut:]

    def _drain(self) -> Iterator[FormEvent]:
        while True:
            event = self._decoder.next_event()
            if isinstance(event, NeedData):
                self._check_buffer()
                return
            if isinstance(event, Epilogue):
                self.complete = True
                return
            if isinstance(event, Field):
                self._field = event.name
                self._value.clear()
            elif isinstance(event, File):
                self._in_file = True
                yield FileStart(event.name, event.filename, event.headers.get("content-type", ""))
            elif isinstance(event, Data):
                yield from self._data(event)

    def _check_buffer(self) -> None:
        """Refuse headers or a preamble that would grow the buffer without bound.

        While file data flows the decoder holds back only a possible
        boundary, so a large buffer means bytes that are not part data.
        """
        limit = self._max_field_size + MAX_BOUNDARY + HEADER_SLACK
        if not self._in_file and len(self._decoder.buffer) > limit:
            raise MalformedForm(f"part headers or preamble exceed {limit} bytes")

    def _data(self, event: Data) -> Iterator[FormEvent]:
        if self._in_file:
            if event.data:
                yield FileData(event.data)
            if not event.more_data:
                self._in_file = False
                yield FileEnd()
            return
        self._field_bytes += len(event.data)
        if self._field_bytes > self._max_field_size:
            raise MalformedForm(f"form fields exceed {self._max_field_size} bytes")
        self._value += event.data
        if not event.more_data:
            yield FieldValue(self._field or "", self._value.decode("utf-8", "replace"))


def _end_before(before: bytes, position: int) -> int | None:
    """The file's end if a marker at ``position`` follows a line break (``before``)."""
    if before[-1:] not in (b"\r", b"\n"):
        return None
    return position - 2 if before == b"\r\n" else position - 1


def _describe(exc: ValueError, at_end: bool) -> str:
    if at_end:
        return "multipart body ended before its closing boundary"
    return f"malformed multipart body: {exc}"
