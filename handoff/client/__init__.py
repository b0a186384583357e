"""A typed Python client of the public handoff API (``/v1/uploads``).

Applications call this instead of building multipart requests by hand, and
the ``handoff`` command is built on it, so both send uploads the same way.
It needs only requests and requests-toolbelt: installed on its own, the
package brings none of the services' dependencies (docs/decisions.md).

Files are streamed from disk by requests-toolbelt's ``MultipartEncoder``,
never read into memory, so an upload of tens of GB costs the caller a few
MiB. ``purpose`` and ``metadata`` go before the files, because the API
decides on them before it relays a byte.

Every refusal of the API is a :class:`ProblemError` with its RFC 9457
problem; a connection that cannot be made, breaks or falls silent is
:class:`ConnectionFailed`; :meth:`Client.wait` running out of time is
:class:`WaitTimeout`. All are :class:`HandoffError`, so one ``except``
handles whatever went wrong on the way.

A :class:`Client` wraps one ``requests.Session``, which is not meant to be
shared between threads: use one client per thread.
"""

import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

from handoff.jsontext import dumps
from handoff.states import FINISHED
from handoff.units import CHUNK_SIZE

__all__ = [
    "Client",
    "ConnectionFailed",
    "HandoffError",
    "ProblemError",
    "ProgressCallback",
    "Timeouts",
    "UnexpectedAnswer",
    "Upload",
    "UploadedFile",
    "WaitTimeout",
]

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(sent_bytes, total_bytes)`` while an upload's body is sent."""

StrPath = str | os.PathLike[str]

# A proxy's error page can be long; the start of it says enough.
MAX_FOREIGN_DETAIL = 200


class HandoffError(Exception):
    """Anything that kept a call from doing its work; catch this one to handle them all."""


class ProblemError(HandoffError):
    """The API refused (4xx) or failed (5xx), and said why in an RFC 9457 problem.

    ``status`` and ``type`` are stable and meant for code; ``title`` and
    ``detail`` are for people; ``problem`` is the whole document, with
    members such as ``upload_id`` or ``limit`` (the setting a refusal went
    over). An answer that is not a problem (a proxy's HTML page) becomes one
    too, with RFC 9457's default type ``about:blank``, so callers handle a
    single shape.
    """

    def __init__(self, status: int, type: str, title: str, detail: str,
                 problem: Mapping[str, Any]) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.problem = dict(problem)
        super().__init__(self._message())

    @property
    def upload_id(self) -> str | None:
        """The upload the refusal concerns, once the API had given it an id."""
        value = self.problem.get("upload_id")
        return value if isinstance(value, str) else None

    @classmethod
    def from_response(cls, response: requests.Response) -> "ProblemError":
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            text = " ".join(response.text.split())[:MAX_FOREIGN_DETAIL]
            document = {"type": "about:blank", "detail": text}
        return cls(response.status_code, str(document.get("type") or "about:blank"),
                   str(document.get("title") or response.reason or "HTTP error"),
                   str(document.get("detail") or ""), document)

    def _message(self) -> str:
        message = f"{self.status} {self.title}"
        if self.detail:
            message += f": {self.detail}"
        if self.upload_id:
            message += f" (upload {self.upload_id})"
        return message


class ConnectionFailed(HandoffError):
    """The API could not be reached, or the connection broke or fell silent too long.

    For an upload this says nothing about the outcome: the API may have
    accepted it just before the connection broke. Nothing is retried
    automatically, since a retried upload is a second upload.
    """


class UnexpectedAnswer(HandoffError):
    """A successful answer that is not what the API sends: a proxy or a wrong URL."""


class WaitTimeout(HandoffError):
    """:meth:`Client.wait` ran out of time; ``upload`` is the last status it saw."""

    def __init__(self, upload: "Upload", timeout: float) -> None:
        self.upload = upload
        self.timeout = timeout
        super().__init__(f"upload {upload.id} still {upload.status} after {timeout:g} s")


@dataclass(frozen=True)
class Timeouts:
    """Seconds the client waits on the API, each bounding one silence, not a request.

    An upload of tens of GB takes hours, so nothing limits how long one
    lasts. ``connect`` bounds making the connection and then every single
    send while the body streams; ``answer`` the wait for the answer to a
    status or cancel request; ``upload_answer`` the wait after an upload's
    last byte, while the geo service fsyncs it and the job is queued.
    """

    connect: float = 30.0
    answer: float = 60.0
    upload_answer: float = 600.0

    @classmethod
    def every(cls, seconds: float) -> "Timeouts":
        return cls(seconds, seconds, seconds)


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True)
class UploadedFile:
    """One file of an upload: the client's name, and the size and sha256 the API measured."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Upload:
    """An upload as the API last described it, in a 202 answer or a status.

    The members most callers need are typed; ``raw`` is the whole JSON
    document, for the ones not named here (timestamps, links) and for any a
    newer API adds.
    """

    id: str
    status: str
    purpose: str | None
    files: tuple[UploadedFile, ...]
    metadata: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Done or failed: the status will not change any more."""
        return self.status in FINISHED

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "Upload":
        """Read an answer of the API; :class:`UnexpectedAnswer` if it is not an upload."""
        upload_id, status = document.get("id"), document.get("status")
        if not isinstance(upload_id, str) or not isinstance(status, str):
            raise UnexpectedAnswer("the answer has no upload id and status")
        metadata, error = document.get("metadata"), document.get("error")
        return cls(id=upload_id, status=status, purpose=_optional_str(document.get("purpose")),
                   files=_files(document.get("files")),
                   metadata=metadata if isinstance(metadata, dict) else None,
                   result=document.get("result"), error=_optional_str(error),
                   raw=dict(document))


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _files(value: Any) -> tuple[UploadedFile, ...]:
    if value is None:
        return ()
    try:
        return tuple(UploadedFile(str(f["name"]), int(f["size"]), str(f["sha256"]))
                     for f in value)
    except (KeyError, TypeError, ValueError):
        raise UnexpectedAnswer("the answer's files are not name, size and sha256") from None


def _cause(exc: BaseException) -> str:
    """urllib3 nests the useful text (refused, reset, timed out) a few levels deep."""
    while True:
        nested = [arg for arg in exc.args if isinstance(arg, BaseException)]
        inner = getattr(exc, "reason", None) or exc.__cause__ or (nested[0] if nested else None)
        if not isinstance(inner, BaseException):
            return str(exc)
        exc = inner


class _LargeBlocks(HTTPAdapter):
    """Send the request body in ``CHUNK_SIZE`` reads.

    MultipartEncoder has a fixed cost per read: urllib3's default 16 KiB
    blocks cap the client at a few hundred MB/s, 1 MiB blocks do not.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", CHUNK_SIZE)
        super().init_poolmanager(*args, **kwargs)


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "handoff-client"
    for scheme in ("http://", "https://"):
        session.mount(scheme, _LargeBlocks())
    return session


def _open_files(paths: StrPath | Iterable[StrPath], stack: ExitStack
                ) -> list[tuple[str, BinaryIO]]:
    """Open every file before a byte is sent, so a missing one fails the call at once."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    opened: list[tuple[str, BinaryIO]] = [
        (Path(path).name, stack.enter_context(open(path, "rb")))  # noqa: SIM115 (the stack closes it)
        for path in paths]
    if not opened:
        raise ValueError("an upload needs at least one file")
    return opened


def _form(purpose: str, metadata: Mapping[str, Any] | None,
          files: list[tuple[str, BinaryIO]]) -> list[tuple[str, Any]]:
    """Fields first: the API reads purpose and metadata before any file streams past."""
    fields: list[tuple[str, Any]] = [("purpose", purpose)]
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError("metadata must be a mapping (it is sent as a JSON object)")
        fields.append(("metadata", dumps(dict(metadata))))
    fields.extend(("file", (name, handle, "application/octet-stream")) for name, handle in files)
    return fields


def _reporter(progress: ProgressCallback, total: int
              ) -> Callable[[MultipartEncoderMonitor], None]:
    """Report each read of the body that moved forward, so the callback sees growing counts."""
    sent = 0

    def report(monitor: MultipartEncoderMonitor) -> None:
        nonlocal sent
        if monitor.bytes_read > sent:
            sent = monitor.bytes_read
            progress(sent, total)

    return report


class Client:
    """The public API at ``url``, with ``token`` sent as its bearer token.

    ``session`` lets an application bring its own (proxies, certificates,
    adapters); the client then neither changes nor closes it. ``timeout``
    is a :class:`Timeouts`, or one number of seconds for all of them.
    """

    def __init__(self, url: str, token: str | None = None, *,
                 session: requests.Session | None = None,
                 timeout: float | Timeouts = DEFAULT_TIMEOUTS) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.timeouts = timeout if isinstance(timeout, Timeouts) else Timeouts.every(timeout)
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._own_session = session is None
        self._session = _new_session() if session is None else session

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections of a session the client made itself."""
        if self._own_session:
            self._session.close()

    def upload(self, paths: StrPath | Iterable[StrPath], purpose: str,
               metadata: Mapping[str, Any] | None = None,
               progress: ProgressCallback | None = None) -> Upload:
        """Send files as one upload; the answer is the API's 202, status ``queued``.

        The API answers only once the geo service holds every byte and the
        job is queued, so a returned :class:`Upload` is safe to wait for.
        ``progress`` is called as the body is read, with bytes of the whole
        multipart body (fields included), from 0 up to the total. A file
        that cannot be opened raises ``OSError`` before anything is sent.
        """
        with ExitStack() as stack:
            encoder = MultipartEncoder(_form(purpose, metadata, _open_files(paths, stack)))
            body = MultipartEncoderMonitor(encoder)
            if progress is not None:
                body.callback = _reporter(progress, encoder.len)
                progress(0, encoder.len)
            response = self._request("POST", "/v1/uploads", data=body,
                                     headers={"Content-Type": body.content_type},
                                     timeout=(self.timeouts.connect, self.timeouts.upload_answer))
        return Upload.from_json(self._document(response))

    def status(self, upload_id: str) -> Upload:
        """The upload's state (queued, processing, done, failed), files, result or error."""
        response = self._request("GET", self._path(upload_id), timeout=self._short())
        return Upload.from_json(self._document(response))

    def cancel(self, upload_id: str) -> None:
        """Stop the upload and remove it; a :class:`ProblemError` 409 while a worker has it."""
        self._request("DELETE", self._path(upload_id), timeout=self._short())

    def wait(self, upload_id: str, timeout: float | None, interval: float = 1.0,
             on_change: Callable[[Upload], None] | None = None) -> Upload:
        """Ask until the upload is done or failed: the API has no push channel.

        A failed job is returned, not raised: it is an outcome, and its
        ``error`` says why. ``timeout`` of ``None`` waits for as long as it
        takes; otherwise :class:`WaitTimeout` ends the wait, never sleeping
        past the deadline. ``on_change`` sees the first status and every
        change, for callers that show them.
        """
        if interval <= 0:
            raise ValueError("interval must be a positive number of seconds")
        started = time.monotonic()
        seen = None
        while True:
            upload = self.status(upload_id)
            if upload.status != seen and on_change is not None:
                on_change(upload)
            seen = upload.status
            if upload.finished:
                return upload
            if timeout is not None and time.monotonic() + interval > started + timeout:
                raise WaitTimeout(upload, timeout)
            time.sleep(interval)

    def _short(self) -> tuple[float, float]:
        return (self.timeouts.connect, self.timeouts.answer)

    @staticmethod
    def _path(upload_id: str) -> str:
        return f"/v1/uploads/{quote(upload_id, safe='')}"

    def _request(self, method: str, path: str, headers: Mapping[str, str] | None = None,
                 **kwargs: Any) -> requests.Response:
        url = self.url + path
        try:
            response = self._session.request(method, url, headers={**self._auth, **(headers or {})},
                                             **kwargs)
        except requests.RequestException as exc:
            raise ConnectionFailed(f"{method} {url} failed: {_cause(exc)}") from exc
        if not response.ok:
            raise ProblemError.from_response(response)
        return response

    @staticmethod
    def _document(response: requests.Response) -> dict[str, Any]:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            request = response.request
            raise UnexpectedAnswer(f"{request.method} {request.url} answered "
                                   f"{response.status_code} without a JSON object")
        return document
