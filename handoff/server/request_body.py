"""Reading a request body as fast as the socket gives it.

gunicorn's ``wsgi.input`` hands out exactly the size asked for. To do that it
appends every ``recv()`` to a BytesIO, slices the result and pushes the rest
back, in two layers (the length reader and the body): two to three copies of
every byte. On the byte path that was an eighth to a quarter of the API's CPU.

For a body with a Content-Length, :func:`body_reader` reads the client's
socket directly instead: whatever gunicorn already read past the headers
first, then one ``recv()`` per call, which returns what has arrived (up to
the size asked for) with no copy. gunicorn's own count of the body bytes
still to come is kept up to date, so keep-alive works as before. Anything
else (chunked bodies, another server, a gunicorn that no longer has these
attributes) gets the server's own ``read``.

A connection that ends before the announced Content-Length is not the end
of the body but an incomplete one: :class:`IncompleteBody` is raised, so
neither service mistakes a client that closed early for one that finished.

:func:`defer_continue` (gunicorn's ``pre_request`` hook) gives every request
a body that keeps the server's word on the connection: ``100 Continue`` goes
out only when the application first reads (gunicorn would send it before the
application had looked at the headers), and whatever closes the connection
after the answer (a refusal before the body, a failed read, an invitation
never sent) also makes the answer say ``Connection: close``.
"""

import socket
from typing import Any, Protocol

from gunicorn.http.body import Body


class IncompleteBody(ConnectionError):
    """The sender closed the connection before its Content-Length was reached."""


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def body_reader(environ: dict[str, Any]) -> Readable:
    """This request's body: ``read(size)`` gives at most ``size`` bytes, b"" at the end."""
    stream = environ["wsgi.input"]
    sock = environ.get("gunicorn.socket")
    reader = getattr(stream, "reader", None)
    if (
        isinstance(sock, socket.socket)
        and type(reader).__name__ == "LengthReader"
        and isinstance(getattr(reader, "length", None), int)
        and hasattr(getattr(reader, "unreader", None), "take_buffered")
        and _nothing_buffered(stream)
    ):
        return _SocketBody(sock, stream, reader)
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit() and not environ.get("HTTP_TRANSFER_ENCODING"):
        return _CountedBody(stream, int(length))
    return stream


class _CountedBody:
    """The server's own reader, held to the Content-Length.

    gunicorn's reader simply ends when the connection closes early; counted,
    that end is an incomplete body, as on the direct path.
    """

    def __init__(self, stream: Readable, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int) -> bytes:
        data = self._stream.read(size) if self._left > 0 else b""
        self._left -= len(data)
        if not data and self._left > 0:
            raise IncompleteBody(f"connection closed with {self._left} bytes of the body still due")
        return data


def _nothing_buffered(stream: Any) -> bool:
    buf = getattr(stream, "buf", None)
    return buf is not None and buf.getbuffer().nbytes == 0


class _SocketBody:
    def __init__(self, sock: socket.socket, stream: Any, reader: Any) -> None:
        self._sock = sock
        self._stream = stream
        self._reader = reader

    def read(self, size: int) -> bytes:
        want = min(size, self._reader.length)
        if want <= 0:
            return b""
        invite = getattr(self._stream, "send_continue", None)
        if invite is not None:
            invite()
        try:
            data = self._reader.unreader.take_buffered() or self._sock.recv(want)
            if not data:
                raise IncompleteBody(f"connection closed with {self._reader.length} "
                                     "bytes of the body still due")
        except BaseException:
            self._stream.failed = True  # where the next request starts is unknown now
            raise
        if len(data) > want:
            self._reader.unreader.unread(data[want:])
            data = data[:want]
        self._reader.length -= len(data)
        return data


def close_after_answer(environ: dict[str, Any]) -> None:
    """Close the connection after this answer instead of reading the rest of the body.

    After a refusal or a cancel, the rest of an upload is unwanted. gunicorn's
    evented worker would read it all to find the next request on the
    connection, so a cancelled client would be made to send every byte. A
    body marked as failed tells gunicorn the next request's start is unknown,
    and it closes instead; under :func:`defer_continue` the answer says so.
    """
    body = environ.get("wsgi.input")
    if body is not None and hasattr(body, "failed"):
        body.failed = True


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ConnectionBody(Body):
    """gunicorn's body, which invites the client's bytes only when they are read.

    gunicorn decides whether to close the connection from the request's
    ``must_close``, and writes ``Connection:`` from the same flag, so every
    reason to close goes through it: a ``failed`` body (gunicorn's own read
    errors, :func:`close_after_answer`) and a ``100 Continue`` still owed.
    A client told to wait for ``100 Continue`` may or may not send its body
    after a final answer, so the next request's start is unknown: close.
    """

    def __init__(self, req: Any) -> None:
        self._req = req
        self._failed = False
        self._sock: socket.socket | None = None
        self._closing_before = req.must_close
        if req._expected_100_continue:
            req._expected_100_continue = False
            self._sock = req.unreader.sock
            req.force_close()
        super().__init__(req.body.reader)

    @property
    def failed(self) -> bool:
        return self._failed

    @failed.setter
    def failed(self, value: bool) -> None:
        self._failed = value
        if value:
            self._req.force_close()

    def send_continue(self) -> None:
        """Invite the body the client is holding back, once, at the first read."""
        if self._sock is None:
            return
        sock, self._sock = self._sock, None
        sock.sendall(CONTINUE)
        self._req.must_close = self._closing_before or self._failed

    def read(self, size: int | None = None) -> bytes:
        self.send_continue()
        return super().read(size)

    def readline(self, size: int | None = None) -> bytes:
        self.send_continue()
        return super().readline(size)

    def readlines(self, size: int | None = None) -> list[bytes]:
        self.send_continue()
        return super().readlines(size)


def defer_continue(req: Any) -> None:
    """gunicorn's ``pre_request``: give an HTTP/1 request a :class:`ConnectionBody`.

    Other requests (HTTP/2 streams, a gunicorn whose request looks different)
    keep the server's own body.
    """
    if (type(getattr(req, "body", None)) is Body
            and isinstance(getattr(getattr(req, "unreader", None), "sock", None), socket.socket)
            and isinstance(getattr(req, "_expected_100_continue", None), bool)
            and hasattr(req, "force_close")):
        req.body = ConnectionBody(req)
