"""Incremental multipart/form-data parsing, shared by the API and the geo service.

Werkzeug's ``request.files`` spools every large file to a temp file, which
defeats streaming. This wraps Werkzeug's sans-IO ``MultipartDecoder``: bytes
are pushed in as they arrive and part events come out, so file data can be
hashed, relayed or written without ever being held whole.
"""

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from werkzeug.datastructures import Headers
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    Preamble,
    State,
)

MAX_BOUNDARY = 200
# A header parameter: its value a quoted string read with its quoted-pairs, else (a
# quoted string left open by a trailing backslash) up to the next quote, else bare up to
# the next semicolon, so that bare values may hold any character but that one.
_PARAMETER_RE = re.compile(
    r';[ \t]*([^=; \t]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|"([^"]*)"|([^;]*))', re.DOTALL)
_QUOTED_PAIR_RE = re.compile(r'\\(["\\])')
# What the HTML standard escapes in a multipart name or filename (and nothing else).
_HTML_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n"}
_HTML_ESCAPE_RE = re.compile("|".join(_HTML_ESCAPES), re.IGNORECASE)


class NotMultipart(ValueError):
    """The body is not multipart/form-data at all (HTTP 415)."""


class MalformedForm(ValueError):
    """The body claims to be multipart/form-data but does not parse (HTTP 400)."""


class FormTooLarge(ValueError):
    """The form goes over one of the parser's limits (HTTP 413); ``limit`` names it.

    ``limit`` is the name of the :class:`ParserLimits` field, which is also
    the name of the setting it comes from.
    """

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit


@dataclass(frozen=True, kw_only=True)
class ParserLimits:
    """Bounds on the parser's work and memory, whatever the body holds.

    Field values, part names and filenames share ``max_form_fields_size``;
    a part's header block, the preamble and the epilogue each have their
    own cap, so the decoder's buffer never grows past the largest of them
    plus one chunk. Their defaults are the settings' (``handoff.form.parser_limits``).
    """

    max_form_fields_size: int
    max_files: int
    max_part_header_size: int
    max_part_headers: int
    max_preamble_size: int
    max_epilogue_size: int


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
    mimetype = (content_type or "").partition(";")[0].strip()
    if mimetype.lower() != "multipart/form-data":
        raise NotMultipart(f"expected multipart/form-data, got {mimetype or 'no content type'}")
    boundary = _parameters(content_type or "").get("boundary", "")
    if not boundary or len(boundary) > MAX_BOUNDARY or not _usable_boundary(boundary):
        raise MalformedForm("multipart/form-data without a valid boundary parameter")
    return boundary.encode("latin-1")


def _usable_boundary(boundary: str) -> bool:
    """Printable ASCII without a trailing space.

    That takes in every boundary RFC 2046 §5.1.1 allows (its bchars, a
    space not last) and the other visible characters some clients use;
    control characters could never be matched as a delimiter line.
    """
    return boundary.isascii() and boundary.isprintable() and not boundary.endswith(" ")


def _parameters(value: str, decode: bool = False) -> dict[str, str]:
    """The parameters of a header value, by lower-cased name; the first of a name wins.

    A quoted value is read as an RFC 9110 quoted string, but for a lone
    backslash: ``\\"`` and ``\\\\`` are unescaped, a backslash before any other
    character stays (``C:\\fakepath\\x.txt`` arrives as it is), as a browser
    leaves it. ``decode`` also undoes the HTML standard's ``%22``, ``%0D``
    and ``%0A`` in quoted values. A bare value runs to the next semicolon,
    its trailing blanks dropped: many clients send boundaries with
    ``/``, ``=``, ``?`` or ``:`` unquoted.
    """
    params: dict[str, str] = {}
    for match in _PARAMETER_RE.finditer(value):
        key, quoted, unclosed, bare = match.groups()
        if quoted is not None:
            text = _QUOTED_PAIR_RE.sub(r"\1", quoted)
        else:
            text = unclosed if unclosed is not None else bare.rstrip(" \t")
        if decode and bare is None:
            text = _HTML_ESCAPE_RE.sub(_unescape, text)
        params.setdefault(key.lower(), text)
    return params


def disposition(headers: Headers) -> tuple[str, str | None]:
    """The ``name`` and ``filename`` of a form-data part, as the client sent them.

    Browsers quote these values the HTML standard's way: ``"``, CR and LF
    become ``%22``, ``%0D`` and ``%0A``; other clients escape ``"`` and
    ``\\`` with a backslash, as RFC 9110 does. Werkzeug drops every
    backslash, a Windows path's too, so the parameters are read here.
    RFC 7578 §4.2 requires a name.
    """
    value = headers.get("content-disposition")
    if value is None:
        raise MalformedForm("a part has no Content-Disposition header")
    params = _parameters(value, decode=True)
    name = params.get("name")
    if not name:
        raise MalformedForm("a part's Content-Disposition has no name parameter "
                            "(RFC 7578 §4.2 requires one)")
    return name, params.get("filename")


def _unescape(match: re.Match[str]) -> str:
    return _HTML_ESCAPES[match.group().upper()]


class FormParser:
    """Push bytes in with :meth:`feed`, get :data:`FormEvent` values out.

    Field values are collected; file data is passed through as it arrives.
    ``feed(None)`` marks the end of the body and raises
    :class:`MalformedForm` if the form is incomplete. Going over one of the
    ``limits`` raises :class:`FormTooLarge` as soon as it happens.

    Inside a file, where nearly all bytes are, the bytes are not copied
    through Werkzeug's decoder: a search for the next ``--boundary`` after a
    line break finds where the file may end, and only from there on does
    the decoder take over again (headers, fields, and deciding whether a
    candidate is really a boundary).
    """

    def __init__(self, boundary: bytes, limits: ParserLimits) -> None:
        self._decoder = _Decoder(boundary)
        self._marker = b"--" + boundary
        # Bytes at the end of a piece that may begin "\r\n--boundary".
        self._hold = len(b"\r\n") + len(self._marker) - 1
        self._tail = b""
        self._limits = limits
        self._field_bytes = 0
        self._files = 0
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
        except (FormTooLarge, MalformedForm):
            raise
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
            buffered = len(self._decoder.buffer)
            event = self._decoder.next_event()
            if isinstance(event, NeedData):
                self._check_buffer()
                return
            if isinstance(event, Epilogue):
                self.complete = True
                return
            if isinstance(event, Preamble):
                self._check("max_preamble_size", len(event.data), "the preamble")
            elif isinstance(event, (Field, File)):
                yield from self._part(event, buffered - len(self._decoder.buffer))
            elif isinstance(event, Data):
                yield from self._data(event)

    def _part(self, event: Field | File, header_size: int) -> Iterator[FormEvent]:
        """A part begins: check its headers, then say whether it is a field or a file."""
        self._check("max_part_header_size", header_size, "a part's headers")
        if len(event.headers) > self._limits.max_part_headers:
            raise FormTooLarge("max_part_headers", f"a part has more than "
                               f"{self._limits.max_part_headers} headers")
        name, filename = disposition(event.headers)
        self._count_field_bytes(len(name.encode()) + len((filename or "").encode()))
        if filename is None:
            self._field = name
            self._value.clear()
            return
        self._files += 1
        if self._files > self._limits.max_files:
            raise FormTooLarge("max_files", f"the form has more than "
                               f"{self._limits.max_files} file parts")
        self._in_file = True
        yield FileStart(name, filename, event.headers.get("content-type", ""))

    def _check_buffer(self) -> None:
        """Refuse headers, a preamble or an epilogue that would grow the buffer without bound.

        While file data flows the decoder holds back only a possible
        boundary, so a large buffer means bytes that are not part data;
        what they are depends on where the decoder is.
        """
        state, size = self._decoder.state, len(self._decoder.buffer)
        if state is State.PREAMBLE:
            # the buffer may end in the first delimiter's beginning
            self._check("max_preamble_size", size - len(self._marker) - 4, "the preamble")
        elif state is State.PART:
            # the buffer may end in the first bytes of the blank line
            self._check("max_part_header_size", size - 3, "a part's headers")
        elif state is State.EPILOGUE:
            self._check("max_epilogue_size", size, "the epilogue")

    def _check(self, limit: str, size: int, what: str) -> None:
        allowed = getattr(self._limits, limit)
        if size > allowed:
            raise FormTooLarge(limit, f"{what}: more than {allowed} bytes")

    def _count_field_bytes(self, size: int) -> None:
        self._field_bytes += size
        allowed = self._limits.max_form_fields_size
        if self._field_bytes > allowed:
            raise FormTooLarge("max_form_fields_size",
                               f"form fields, part names and filenames: more than {allowed} bytes")

    def _data(self, event: Data) -> Iterator[FormEvent]:
        if self._in_file:
            if event.data:
                yield FileData(event.data)
            if not event.more_data:
                self._in_file = False
                yield FileEnd()
            return
        self._count_field_bytes(len(event.data))
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
