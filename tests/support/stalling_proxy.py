"""A loopback TCP proxy that breaks one request off mid-body: a network error to the client,
a client gone silent to the server.

That is a phone losing its network in the middle of a PATCH, as both ends
see it: the client retries on a new connection, while the server's request
still holds the upload, waiting for bytes that will never come.
"""

import contextlib
import socket
import struct
import threading


class StallingProxy:
    """Forwards 127.0.0.1:<port> to ``target_port``; one request is stalled, then cut off.

    The first request that starts with ``prefix`` (``b"PATCH "``) reaches
    the server with its head and ``after`` bytes of its body, and nothing
    more: ``stalled`` is set. :meth:`cut` then resets the client's
    connection and leaves the server's open and silent until :meth:`close`.
    Every other request and connection passes untouched.
    """

    def __init__(self, target_port: int, prefix: bytes, after: int) -> None:
        self._target = target_port
        self._prefix = prefix
        self._after = after
        self.stalled = threading.Event()
        self._cut = threading.Event()
        self._claim = threading.Lock()
        self._claimed = False
        self._sockets: list[socket.socket] = []
        self._stalled_answers: threading.Thread | None = None
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._cut.set()

    def server_still_waiting(self) -> bool:
        """Whether the server has neither answered nor closed the stalled request."""
        return self._stalled_answers is not None and self._stalled_answers.is_alive()

    def close(self) -> None:
        self._cut.set()
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [client, upstream]
            answers = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
            answers.start()
            threading.Thread(target=self._send, args=(client, upstream, answers),
                             daemon=True).start()

    def _send(self, client: socket.socket, upstream: socket.socket,
              answers: threading.Thread) -> None:
        """Client to server; the request to stall stops ``after`` bytes into its body."""
        stalled: _Request | None = None
        try:
            while data := client.recv(65536):
                if stalled is None and (found := data.find(self._prefix)) >= 0 and self._take():
                    self._stalled_answers = answers
                    stalled = _Request(self._after)
                    upstream.sendall(data[:found])
                    data = data[found:]
                stop = False
                if stalled is not None:
                    data, stop = stalled.take(data)
                upstream.sendall(data)
                if stop:
                    self._stall(client)
                    return
        except OSError:
            pass
        _shut(client, upstream)

    def _take(self) -> bool:
        with self._claim:
            taken, self._claimed = not self._claimed, True
            return taken

    def _stall(self, client: socket.socket) -> None:
        """Forward nothing more; once cut, reset the client's side (RST: an error at once)."""
        self.stalled.set()
        self._cut.wait()
        with contextlib.suppress(OSError):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _shut(source, sink)


class _Request:
    """How far the request to stall has come: its head, then the bytes of its body."""

    def __init__(self, after: int) -> None:
        self._after = after
        self._head = b""
        self._body: int | None = None

    def take(self, data: bytes) -> tuple[bytes, bool]:
        """What of ``data`` goes on to the server, and whether the request stalls there."""
        if self._body is not None:
            return self._take_body(data)
        end = (self._head + data).find(b"\r\n\r\n")
        if end < 0:
            self._head += data
            return data, False
        split = end + 4 - len(self._head)
        self._body = 0
        body, stop = self._take_body(data[split:])
        return data[:split] + body, stop

    def _take_body(self, data: bytes) -> tuple[bytes, bool]:
        assert self._body is not None
        room = self._after - self._body
        if len(data) >= room:
            self._body = self._after
            return data[:room], True
        self._body += len(data)
        return data, False


def _shut(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
