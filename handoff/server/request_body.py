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
"""

import socket
from typing import Any, Protocol


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
    and it closes instead.
    """
    body = environ.get("wsgi.input")
    if body is not None and hasattr(body, "failed"):
        body.failed = True
