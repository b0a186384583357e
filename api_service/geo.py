"""The API's client for the geo service's internal endpoint."""

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from requests_toolbelt import StreamingIterator
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from handoff.config import Settings
from handoff.tus import OFFSET_MEDIA_TYPE

log = logging.getLogger("handoff.api")
T = TypeVar("T")

PURPOSES_TTL = 30.0
# The tenant an upload is created for; the geo service trusts it because
# only holders of the shared secret can send it.
TENANT_HEADER = "Handoff-Tenant"


class GeoError(Exception):
    """The geo service could not be reached or answered with an error."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}


class GeoUnreachable(GeoError):
    """No answer at all: the connection was refused, broke off or timed out."""


class GeoNotReached(GeoUnreachable):
    """No connection at all (refused, or timed out connecting): nothing of the request was sent.

    Not a byte of a body was read either, so another replica may take the very same call.
    """


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request failed before it was sent: while connecting."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


class _Connection(HTTPConnection):
    """Sends the request body under ``body_timeout`` instead of the connect timeout.

    urllib3 leaves the connect timeout on the socket until the whole body is
    sent (urllib3#857, requests#5263). The geo service's connect timeout is
    seconds; a geo service that stops reading for longer, because its
    threads are all busy or its disk stalls, would have an upload that was
    going fine aborted. Connecting stays bounded by the connect timeout.
    """

    def __init__(self, host: str, port: int | None = None, *,
                 body_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.body_timeout = body_timeout

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is None:
            self.connect()
        if self.body_timeout is not None:
            self.timeout = self.body_timeout
        super().request(*args, **kwargs)


class _TLSConnection(_Connection, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _GeoAdapter(HTTPAdapter):
    """How the API talks to the geo service: big body blocks, and a body timeout.

    Request bodies go in blocks of ``blocksize`` instead of urllib3's 16 KiB:
    with the relay's chunks (up to 1 MiB) each socket write is one whole
    chunk, instead of up to sixty-four 16 KiB slices copied out of it. Bodies
    are sent under ``body_timeout`` (see :class:`_Connection`).
    """

    def __init__(self, blocksize: int, body_timeout: float) -> None:
        self._blocksize = blocksize
        self._body_timeout = body_timeout
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = self._blocksize
        super().init_poolmanager(*args, **kwargs)
        # The pool passes keywords it does not know on to its connections.
        pools: dict[str, Any] = {
            "http": functools.partial(_Pool, body_timeout=self._body_timeout),
            "https": functools.partial(_TLSPool, body_timeout=self._body_timeout),
        }
        self.poolmanager.pool_classes_by_scheme = pools


class _ChunkReader:
    """The relay's chunks as a file for StreamingIterator, handed over as they are.

    Given a bare iterator, StreamingIterator re-buffers every chunk through a
    BytesIO (three copies of each byte); given something with ``read``, it
    calls that directly. A chunk is returned whole when it fits in ``size``,
    which it does with the adapter's blocksize equal to the relay's chunk size.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = (chunk for chunk in chunks if chunk)
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes (one chunk if negative); b"" only at the end."""
        chunk = self._rest or next(self._chunks, b"")
        if 0 <= size < len(chunk):
            chunk, self._rest = chunk[:size], chunk[size:]
        else:
            self._rest = b""
        return chunk


class GeoClient:
    """One geo replica: ``name`` as it calls itself (None: the one unnamed service), at ``url``."""

    def __init__(self, settings: Settings, url: str | None = None,
                 name: str | None = None) -> None:
        self.name = name
        self._base = url or settings.geo_url
        self._auth = {"Authorization": f"Bearer {settings.geo_secret}"}
        self._timeout = (settings.geo_connect_timeout, settings.geo_read_timeout)
        self._blocksize = settings.relay_chunk_size
        self._local = threading.local()
        self._purposes: tuple[float, set[str]] = (0.0, set())

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _GeoAdapter(self._blocksize, self._timeout[1])
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def upload(self, upload_id: str, tenant: str, content_type: str, body: Iterable[bytes],
               length: int | None) -> dict[str, Any]:
        """Stream ``body`` as ``tenant``'s upload ``upload_id``; returns the geo manifest.

        A known ``length`` is sent as Content-Length (requests-toolbelt's
        StreamingIterator); otherwise the body goes chunked, as it came.
        """
        data = StreamingIterator(length, _ChunkReader(body)) if length is not None else body
        headers = {**self._auth, "Content-Type": content_type, TENANT_HEADER: tenant}
        response = self._call("post", f"/uploads/{upload_id}", data=data, headers=headers,
                              timeout=self._timeout)
        return self._json(response, 201)

    def create_resumable(self, upload_id: str, tenant: str,
                         info: dict[str, Any]) -> dict[str, Any]:
        """Make ``tenant``'s empty resumable upload; returns its offset document."""
        headers = {**self._auth, TENANT_HEADER: tenant}
        response = self._call("put", f"/uploads/{upload_id}", json=info, headers=headers,
                              timeout=self._short())
        return self._json(response, 201)

    def create_final(self, upload_id: str, tenant: str, info: dict[str, Any]) -> dict[str, Any]:
        """Make ``tenant``'s final upload of the parts ``info`` lists; its offset document.

        The geo service copies every part's bytes before it answers, so this
        waits as long as a streamed upload may.
        """
        headers = {**self._auth, TENANT_HEADER: tenant}
        response = self._call("put", f"/uploads/{upload_id}", json=info, headers=headers,
                              timeout=self._timeout)
        return self._json(response, 201)

    def append(self, upload_id: str, body: Iterable[bytes], length: int | None,
               headers: dict[str, str]) -> dict[str, Any]:
        """Stream ``body`` onto the resumable upload; ``headers`` carry Upload-Offset and the rest.

        Sent as :meth:`upload` sends, with the Content-Length when it is known.
        Returns the offset document after the append.
        """
        data = StreamingIterator(length, _ChunkReader(body)) if length is not None else body
        headers = {**self._auth, "Content-Type": OFFSET_MEDIA_TYPE, **headers}
        response = self._call("patch", f"/uploads/{upload_id}", data=data, headers=headers,
                              timeout=self._timeout)
        return self._json(response, 200)

    def resume_offset(self, upload_id: str) -> dict[str, Any] | None:
        """The durable offset to resume from, once a stale writer has let go of the upload.

        None if there is no resumable upload of that id (a multipart one has no offset).
        """
        response = self._call("get", f"/uploads/{upload_id}/offset", headers=self._auth,
                              timeout=self._short())
        if response.status_code == 404:
            return None
        return self._json(response, 200)

    def status(self, upload_id: str) -> dict[str, Any] | None:
        response = self._call("get", f"/uploads/{upload_id}", headers=self._auth,
                              timeout=self._short())
        if response.status_code == 404:
            return None
        return self._json(response, 200)

    def delete(self, upload_id: str) -> bool:
        """Abort an upload; False if it could not be removed now (GC will)."""
        try:
            response = self._call("delete", f"/uploads/{upload_id}", headers=self._auth,
                                  timeout=self._short())
        except GeoError:
            return False
        return response.status_code in (204, 404)

    def cancel(self, upload_id: str) -> bool:
        """Stop and remove the upload, whatever its state; False if there is none.

        Raises GeoError with the geo service's answer otherwise (409 while
        a worker processes it).
        """
        response = self._call("delete", f"/uploads/{upload_id}", headers=self._auth,
                              timeout=self._short())
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            self._json(response, 204)
        return True

    def record_job(self, upload_id: str, job: dict[str, Any]) -> None:
        response = self._call("put", f"/uploads/{upload_id}/job", json=job, headers=self._auth,
                              timeout=self._short())
        if response.status_code != 204:
            raise GeoError(502, f"geo service answered {response.status_code} to the job record")

    def purposes(self) -> set[str]:
        fetched_at, known = self._purposes
        if known and time.monotonic() - fetched_at < PURPOSES_TTL:
            return known
        response = self._call("get", "/purposes", headers=self._auth, timeout=self._short())
        known = set(self._json(response, 200))
        self._purposes = (time.monotonic(), known)
        return known

    def capacity(self, timeout: tuple[float, float]) -> dict[str, Any]:
        """The replica's ``/capacity`` document, asked with ``timeout``: placement waits on it."""
        response = self._call("get", "/capacity", headers=self._auth, timeout=timeout)
        return self._json(response, 200)

    def ready(self) -> str | None:
        try:
            self._call("get", "/healthz", timeout=self._short())
        except GeoError as exc:
            return exc.detail
        return None

    def _short(self) -> tuple[float, float]:
        return (self._timeout[0], 30.0)

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, self._base + path, **kwargs)
        except requests.RequestException as exc:
            failure = GeoNotReached if _never_sent(exc) else GeoUnreachable
            raise failure(502, f"geo service unreachable or broke off: {exc}") from None

    @staticmethod
    def _json(response: requests.Response, expected: int) -> Any:
        if response.status_code == expected:
            return response.json()
        problem: dict[str, Any] = {}
        if response.headers.get("Content-Type", "").startswith("application/problem+json"):
            problem = response.json()
        detail = problem.get("detail") or f"geo service answered {response.status_code}"
        raise GeoError(response.status_code, detail, problem)


class AnyReplica(GeoClient):
    """Several replicas that each reach every upload (a shared store), best first, as one client.

    A call goes to the first replica; one the request never reached
    (:class:`GeoNotReached`) is skipped for the next, whatever the call, as
    nothing of it was sent. One that failed after the request reached it is
    skipped only for a GET, which changes nothing; otherwise it may have
    acted (a PATCH's bytes were on their way), so the failure is the caller's.
    A replica skipped is not tried again by this client: one serves a request.
    """

    def __init__(self, settings: Settings, clients: Sequence[GeoClient]) -> None:
        super().__init__(settings)
        if not clients:
            raise ValueError("no replica to call")
        self.clients = list(clients)

    def purposes(self) -> set[str]:
        """Asked of the replicas' own clients, which keep the answer a while."""
        return self._first("get", lambda client: client.purposes())

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self._first(method, lambda client: client._call(method, path, **kwargs))

    def _first(self, method: str, call: Callable[[GeoClient], T]) -> T:
        while True:
            try:
                return call(self.clients[0])
            except GeoUnreachable as exc:
                if len(self.clients) == 1 or not (isinstance(exc, GeoNotReached)
                                                  or method == "get"):
                    raise
                skipped = self.clients.pop(0)
                log.warning("geo replica did not answer; trying the next",
                            extra={"replica": skipped.name, "next": self.clients[0].name,
                                   "error": exc.detail})
