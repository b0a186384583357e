"""The tus client every tus variant uses: one creation POST, then PATCHes sent with sendfile.

The tus variants compare handoff with another tus server, so the client must
cost both the same and take little CPU from two shared cores: the bodies go
from the page cache to the socket with ``socket.sendfile`` (no copy through
this process, bounded memory whatever the file size), over one keep-alive
connection. A PATCH carries ``chunk`` bytes, or the whole file when ``chunk``
is None. The time is from the POST to the last PATCH's answer, as curl's
``time_total`` is for a multipart upload.
"""

import base64
import http.client
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

TUS_HEADERS = {"Tus-Resumable": "1.0.0"}


class TusError(RuntimeError):
    """A server answered otherwise than tus 1.0.0 says a successful upload is answered."""


def send(url: str, path: Path, chunk: int | None, timeout: float) -> float:
    """Upload ``path`` to the tus creation ``url``; the seconds it took."""
    parts = urlsplit(url)
    size = path.stat().st_size
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        location = _create(conn, parts.path, path.name, size)
        with open(path, "rb") as body:
            offset = 0
            while offset < size:
                offset = _patch(conn, location, body, offset, min(chunk or size, size - offset))
    except (OSError, http.client.HTTPException) as exc:
        raise TusError(f"{url}: {exc!r}") from None
    finally:
        conn.close()
    return time.perf_counter() - started


def _create(conn: http.client.HTTPConnection, target: str, name: str, size: int) -> str:
    metadata = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                        for key, value in (("purpose", "raw"), ("filename", name)))
    conn.request("POST", target, headers={**TUS_HEADERS, "Upload-Length": str(size),
                                          "Upload-Metadata": metadata})
    response = _answer(conn, "POST", 201)
    location = response.getheader("Location")
    if not location:
        raise TusError("POST: 201 without a Location")
    return urlsplit(location).path


def _patch(conn: http.client.HTTPConnection, target: str, body: BinaryIO, offset: int,
           count: int) -> int:
    """Send ``count`` bytes of ``body`` from ``offset``; the server's new offset."""
    conn.putrequest("PATCH", target, skip_accept_encoding=True)
    for name, value in {**TUS_HEADERS, "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset), "Content-Length": str(count)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    if conn.sock is None:
        raise TusError("PATCH: the connection closed before the body")
    conn.sock.sendfile(body, offset, count)
    response = _answer(conn, "PATCH", 204)
    reached = int(response.getheader("Upload-Offset") or -1)
    if reached != offset + count:
        raise TusError(f"PATCH at {offset} + {count}: the server says offset {reached}")
    return reached


def _answer(conn: http.client.HTTPConnection, method: str,
            expect: int) -> http.client.HTTPResponse:
    response = conn.getresponse()
    text = response.read()
    if response.status != expect:
        raise TusError(f"{method}: HTTP {response.status} (expected {expect}): "
                       f"{text[:300].decode(errors='replace')}")
    return response
