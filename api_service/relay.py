"""The byte path: read the client's multipart body once, check it, pass it on.

The client's body is forwarded to the geo service as it is, boundary and
all, so nothing is re-encoded. While it passes through, the same bytes are
parsed incrementally to validate the fields (before anything is relayed),
to enforce size limits, and to hash every file, so the API can hold the geo
service to what it really received. Memory use is one chunk, whatever the
file size, and nothing touches the API's disk.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from api_service.pacing import TooSlow
from handoff import metrics
from handoff.form import FieldError, UploadForm, over_limit
from handoff.multipart import (
    FileData,
    FileEnd,
    FileStart,
    FormTooLarge,
    MalformedForm,
    ParserLimits,
)
from handoff.request_body import Readable


class RelayError(Exception):
    """The client's upload cannot go on; ``status`` and ``kind`` say why."""

    def __init__(self, status: int, kind: str, detail: str, limit: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.limit = limit


class ClientGone(RelayError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "incomplete-body", detail)


class ClientTooSlow(RelayError):
    """The client went silent, or sent below the minimum rate (RFC 9110 408)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(408, kind, detail)


def _no_file() -> RelayError:
    return RelayError(400, "no-file", "the form contains no file part "
                      "(a file input left empty is none)")


@dataclass
class FileDigest:
    name: str
    size: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256.hexdigest()}


@dataclass(frozen=True)
class Limits:
    max_upload_size: int
    max_file_size: int
    chunk_size: int
    form: ParserLimits


class Relay:
    """One client upload on its way through the API."""

    def __init__(self, stream: Readable, boundary: bytes, limits: Limits) -> None:
        self._stream = stream
        self._form = UploadForm(boundary, limits.form)
        self._limits = limits
        self._pending: list[bytes] = []
        self._files: list[FileDigest] = []
        self._current: FileDigest | None = None
        self._received = 0
        self._ended = False
        self.purpose = ""
        self.metadata: dict[str, Any] = {}

    @property
    def files(self) -> list[dict[str, Any]]:
        return [digest.summary() for digest in self._files]

    @property
    def received(self) -> int:
        return self._received

    def read_head(self, purposes: set[str]) -> None:
        """Read up to the first file part and validate the fields before it.

        The raw bytes read so far are kept to be relayed first: at most the
        fields' size limit plus one chunk. Empty file inputs are read past
        while that bound holds, so a form of nothing else is refused here;
        after it, relaying starts and :meth:`body` refuses such a form at
        its end.
        """
        budget = self._limits.form.max_form_fields_size
        while not self._files and not self._ended and (
                not self._form.in_files or self._received <= budget):
            chunk = self._read()
            self._pending.append(chunk)
            self._consume(chunk)
        if not self._files and self._ended:
            raise _no_file()
        try:
            self.purpose = self._form.purpose(purposes)
            self.metadata = self._form.metadata()
        except FieldError as exc:
            raise RelayError(400, "bad-form", str(exc)) from None

    def body(self) -> Iterator[bytes]:
        """The whole client body, raw, for the geo service: head first, then the rest."""
        for chunk in self._pending:
            metrics.RELAYED_BYTES.inc(len(chunk))
            yield chunk
        self._pending.clear()
        while not self._ended:
            chunk = self._read()
            self._consume(chunk)
            if chunk:
                metrics.RELAYED_BYTES.inc(len(chunk))
                yield chunk
        if not self._form.complete:
            raise RelayError(400, "bad-form", "multipart body ended before its closing boundary")
        if not self._files:
            raise _no_file()

    def check(self, stored: list[dict[str, Any]]) -> None:
        """Raise unless the geo service stored exactly the files that passed through."""
        mine = [(f["size"], f["sha256"]) for f in self.files]
        theirs = [(f.get("size"), f.get("sha256")) for f in stored]
        if mine != theirs:
            raise RelayError(502, "geo-mismatch",
                             "the geo service stored different bytes than were relayed")

    def _read(self) -> bytes:
        try:
            chunk = self._stream.read(self._limits.chunk_size)
        except TooSlow as exc:
            raise ClientTooSlow("too-slow", str(exc)) from None
        except TimeoutError:
            raise ClientTooSlow("client-timeout", "the client stopped sending before the body "
                                "was complete (timed out)") from None
        except Exception as exc:
            # Socket errors read well ("timed out"); the server's own parser
            # errors do not, so those are named by their type only.
            reason = str(exc) if isinstance(exc, OSError) and str(exc) else type(exc).__name__
            raise ClientGone("the client stopped sending before the body was complete "
                             f"({reason})") from None
        if not chunk:
            self._ended = True
        metrics.RECEIVED_BYTES.inc(len(chunk))
        return chunk

    def _consume(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self._limits.max_upload_size:
            raise RelayError(413, "too-large",
                             f"the upload exceeds {self._limits.max_upload_size} bytes")
        try:
            for event in self._form.feed(chunk or None):
                self._on(event)
        except (MalformedForm, FieldError) as exc:
            raise RelayError(400, "bad-form", str(exc)) from None
        except FormTooLarge as exc:
            setting, detail = over_limit(exc)
            raise RelayError(413, "too-large", detail, limit=setting) from None

    def _on(self, event: object) -> None:
        if isinstance(event, FileData):
            current = self._current
            assert current is not None
            current.size += len(event.data)
            if current.size > self._limits.max_file_size:
                raise RelayError(413, "too-large", f"file {current.name!r} exceeds "
                                 f"{self._limits.max_file_size} bytes")
            current.sha256.update(event.data)
        elif isinstance(event, FileStart):
            self._current = FileDigest(event.filename)
            self._files.append(self._current)
        elif isinstance(event, FileEnd):
            self._current = None
