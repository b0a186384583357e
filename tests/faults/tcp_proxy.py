"""A loopback TCP proxy that can corrupt what passes through it.

Placed between the API and the geo service, it shows what happens when the
bytes stored are not the bytes relayed, without any switch in product code.
"""

import contextlib
import socket
import threading
from collections.abc import Callable

Mangle = Callable[[bytes, int], bytes]


class CorruptingProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``mangle`` edits client→server bytes.

    ``mangle(data, offset)`` gets each chunk from the first occurrence of
    ``prefix`` on (a request line: connections are kept alive, so it need
    not be the first request), with ``offset`` counted from that point.
    """

    def __init__(self, target_port: int, mangle: Mangle, prefix: bytes) -> None:
        self._target = target_port
        self._mangle = mangle
        self._prefix = prefix
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        offset: int | None = None
        try:
            while data := source.recv(65536):
                if outbound and offset is None and (found := data.find(self._prefix)) >= 0:
                    offset = -found
                if outbound and offset is not None:
                    data = self._mangle(data, offset)
                    offset += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
