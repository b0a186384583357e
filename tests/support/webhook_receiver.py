"""A webhook receiver on loopback that checks every signature and answers from a script.

It verifies the way the README tells a receiver to, written out again here
rather than borrowed from ``geo_service.jobs.hooks``, so a mistake there cannot
hide itself.
"""

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    signed: bool


def signed(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit() or abs(time.time() - int(fields["t"])) > tolerance:
        return False
    mac = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest().encode(), fields.get("v1", "").encode())


class Receiver:
    """Answers the n-th request with ``answers[n]`` (the last one from then on)."""

    def __init__(self, secret: str, answers: list[int]) -> None:
        self.secret = secret
        self.answers = answers
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/handoff?key=k"

    def count(self) -> int:
        with self._lock:
            return len(self.deliveries)

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        delivery = Delivery(headers, body, signed(self.secret,
                                                   headers.get("Handoff-Signature", ""), body))
        with self._lock:
            self.deliveries.append(delivery)
            return self.answers[min(len(self.deliveries), len(self.answers)) - 1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._record(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    @contextmanager
    def running(self) -> Iterator["Receiver"]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)
