"""The byte path: read the client's multipart body once, check it, pass it on.

The client's body is forwarded to the geo service as it is, boundary and
all, so nothing is re-encoded. While it passes through, the same bytes are
parsed incrementally, by the form consumer the geo service uses too, to
validate the fields (before anything is relayed), to enforce the limits,
and to hash every file, so the API can hold the geo service to what it
really received. Memory use is one chunk, whatever the
file size, and nothing touches the API's disk.
"""

from collections.abc import Iterator
from typing import Any

from api_service.pacing import TooSlow
from handoff.form import FieldError, UploadLimits
from handoff.form_consumer import FormConsumer, TooLarge
from handoff.multipart import MalformedForm
from handoff.server import metrics, shutdown
from handoff.server.request_body import Readable

#: Seconds a client cut by a shutdown is asked to wait: a restart, or another replica behind a
#: load balancer, takes that long.
SHUTDOWN_RETRY_AFTER = 5


class RelayError(Exception):
    """The client's upload cannot go on; ``status`` and ``kind`` say why."""

    def __init__(self, status: int, kind: str, detail: str, limit: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.limit = limit
        self.headers = headers or {}


class ClientGone(RelayError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "incomplete-body", detail)


class ClientTooSlow(RelayError):
    """The client went silent, or sent below the minimum rate (RFC 9110 408)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(408, kind, detail)


class ShuttingDown(RelayError):
    """The service stops and cut the upload at the end of its grace (handoff.server.shutdown)."""

    def __init__(self) -> None:
        super().__init__(503, "shutting-down", "the service is stopping and cut the upload at the "
                         "end of its grace; retry (a tus upload resumes from its offset)",
                         headers={"Retry-After": str(SHUTDOWN_RETRY_AFTER)})


def _no_file() -> RelayError:
    return RelayError(400, "no-file", "the form contains no file part "
                      "(a file input left empty is none)")


class Relay:
    """One client upload on its way through the API."""

    def __init__(self, stream: Readable, boundary: bytes, limits: UploadLimits) -> None:
        self._stream = stream
        self._consumer = FormConsumer(boundary, limits)
        self._limits = limits
        self._pending: list[bytes] = []
        self._ended = False
        self.purpose = ""
        self.metadata: dict[str, Any] = {}

    @property
    def files(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "size": f.size, "sha256": f.sha256}
                for f in self._consumer.files]

    @property
    def received(self) -> int:
        return self._consumer.received

    def read_head(self, purposes: set[str]) -> None:
        """Read up to the first file part and validate the fields before it.

        The raw bytes read so far are kept to be relayed first: at most the
        fields' size limit plus one chunk. Empty file inputs are read past
        while that bound holds, so a form of nothing else is refused here;
        after it, relaying starts and :meth:`body` refuses such a form at
        its end.
        """
        budget = self._limits.form.max_form_fields_size
        form = self._consumer.form
        while not self._consumer.files and not self._ended and (
                not form.in_files or self.received <= budget):
            chunk = self._read()
            self._pending.append(chunk)
            self._consume(chunk)
        if not self._consumer.files and self._ended:
            raise _no_file()
        try:
            self.purpose = form.purpose(purposes)
            self.metadata = form.metadata()
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
        if not self._consumer.files:
            raise _no_file()

    def check(self, stored: list[dict[str, Any]]) -> None:
        """Raise unless the geo service stored exactly the files that passed through."""
        mine = [(f["size"], f["sha256"]) for f in self.files]
        theirs = [(f.get("size"), f.get("sha256")) for f in stored]
        if mine != theirs:
            raise RelayError(502, "geo-mismatch",
                             "the geo service stored different bytes than were relayed")

    def _read(self) -> bytes:
        chunk = read_chunk(self._stream, self._limits.chunk_size)
        if not chunk:
            self._ended = True
        return chunk

    def _consume(self, chunk: bytes) -> None:
        try:
            self._consumer.feed(chunk or None)
        except (MalformedForm, FieldError) as exc:
            raise RelayError(400, "bad-form", str(exc)) from None
        except TooLarge as exc:
            raise RelayError(413, "too-large", exc.detail, limit=exc.limit) from None


def read_chunk(stream: Readable, size: int) -> bytes:
    """The client's next bytes (b"" at the end); a client that fails us raises a RelayError.

    Once a shutdown cut the bodies, a read that ended is :class:`ShuttingDown`.
    """
    try:
        chunk = _read(stream, size)
    except RelayError:
        if shutdown.cut():
            raise ShuttingDown() from None
        raise
    if not chunk and shutdown.cut():
        raise ShuttingDown()
    metrics.RECEIVED_BYTES.inc(len(chunk))
    return chunk


def _read(stream: Readable, size: int) -> bytes:
    """The client's next bytes; its failures as the RelayError the client is told."""
    try:
        return stream.read(size)
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
