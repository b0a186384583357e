"""Hand-made HTTP/1.1 requests over a plain socket.

HTTP clients tidy requests up: they normalise ``..`` in paths, always send a
body that matches its Content-Length, and finish a chunked body properly.
The fault tests need the untidy versions, byte for byte: a path that climbs
out of its folder, a Content-Length that promises more than ever arrives, a
chunked body that never ends, a body far over a limit that the server must
refuse while it is still arriving. Every socket operation has a timeout, so
a server that never answers fails the test instead of hanging it.
"""

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

BOUNDARY = "faultsboundary7MA4YWxkTrZu0gW"


@dataclass
class Answer:
    """What the server sent back: status, headers (lower-case names), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True)
class File:
    name: str
    filename: str
    data: bytes


def form(parts: Sequence[Field | File], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    """A multipart/form-data body with the parts in exactly the given order.

    ``close=False`` leaves out the closing boundary, as a client that died
    mid-upload would.
    """
    out = bytearray()
    for part in parts:
        out += f"--{boundary}\r\n".encode()
        if isinstance(part, File):
            out += (f'Content-Disposition: form-data; name="{part.name}"; '
                    f'filename="{part.filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n").encode()
            out += part.data
        else:
            out += f'Content-Disposition: form-data; name="{part.name}"\r\n\r\n'.encode()
            out += part.value.encode()
        out += b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def multipart_type(boundary: str = BOUNDARY) -> str:
    return f"multipart/form-data; boundary={boundary}"


def chunked(pieces: Iterable[bytes], last: bool = True) -> Iterator[bytes]:
    """Encode ``pieces`` with Transfer-Encoding: chunked; ``last=False`` never ends it."""
    for piece in pieces:
        if piece:
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
    if last:
        yield b"0\r\n\r\n"


def head(method: str, url: str, target: str | bytes, headers: dict[str, str],
         close: bool = True) -> bytes:
    """The request line and headers, with ``target`` sent exactly as given.

    ``close=False`` keeps the connection open for the requests that follow.
    """
    raw_target = target.encode("latin-1") if isinstance(target, str) else target
    netloc = urlsplit(url).netloc
    lines = [method.encode() + b" " + raw_target + b" HTTP/1.1", f"Host: {netloc}".encode()]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def connect(url: str, timeout: float) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_answer(sock: socket.socket) -> Answer:
    """Parse one response (Content-Length, chunked or until close) from ``sock``."""
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        body = response.read()
    finally:
        response.close()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, headers, body)


def read_answers(sock: socket.socket, count: int) -> list[Answer]:
    """Parse ``count`` responses with a Content-Length off one kept-alive connection.

    One buffered reader serves them all, so bytes read ahead for one answer
    are there for the next (http.client makes a new reader per response).
    """
    answers = []
    with sock.makefile("rb") as reader:
        for _ in range(count):
            status = int(reader.readline().split()[1])
            headers = {}
            while (line := reader.readline().rstrip(b"\r\n")):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            answers.append(Answer(status, headers, reader.read(int(headers["content-length"]))))
    return answers


def send(url: str, method: str, target: str | bytes, headers: dict[str, str] | None = None,
         body: bytes = b"", *, shut_write: bool = False, timeout: float = 10.0) -> Answer:
    """Send one request as exact bytes and read the answer.

    No Content-Length is added: pass it in ``headers`` when the request
    needs one (it may disagree with ``body`` on purpose). ``shut_write``
    closes the sending side afterwards, so the server sees the body end.
    """
    with connect(url, timeout) as sock:
        sock.sendall(head(method, url, target, headers or {}) + body)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return read_answer(sock)


def send_streaming(url: str, method: str, target: str, headers: dict[str, str],
                   pieces: Iterable[bytes], timeout: float = 10.0) -> Answer:
    """Send the body from a second thread while this one waits for the answer.

    A server that refuses an oversized body answers before the body is
    through and then stops reading; a client that only reads once it has
    sent everything would see a reset instead of the answer. The sender
    gives up quietly when the server closes the connection.
    """
    sock = connect(url, timeout)
    stop = threading.Event()

    def pump() -> None:
        try:
            for piece in pieces:
                if stop.is_set():
                    return
                sock.sendall(piece)
        except OSError:
            return

    sock.sendall(head(method, url, target, headers))
    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    try:
        return read_answer(sock)
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout)
        sock.close()
