"""A small real HTTP server on the loopback that plays the public API's answers.

It records every request (headers and the full body) and plays canned
answers, so client tests see exactly the bytes that went over the socket.
Used by the tests of ``handoff.client`` and of the ``handoff`` command.
"""

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UPLOAD_ID = "0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11"
STATUS_PATH = f"/v1/uploads/{UPLOAD_ID}"
PROBLEM = "application/problem+json"
# Bodies are read in pieces of this size when they are not kept.
READ_SIZE = 64 * 1024


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received: int = 0


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    # Answer only once this is set: a server that falls silent.
    hold: threading.Event | None = None


@dataclass
class FakeApi:
    """Canned answers per (method, path); the last one repeats once the others are used.

    With ``keep_bodies`` off, bodies are read and counted but not kept, so
    the server holds no more than one small piece of an upload at a time.
    """

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    keep_bodies: bool = True

    def answer(self, method: str, path: str, *answers: Answer) -> None:
        self.answers[(method, path)] = list(answers)

    def next_answer(self, method: str, path: str) -> Answer:
        queue = self.answers.get((method, path))
        if not queue:
            return problem(404, "Not found", "no canned answer")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def sent(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]


def as_json(status: int, document: dict[str, Any]) -> Answer:
    return Answer(status, json.dumps(document).encode())


def problem(status: int, title: str, detail: str, **extra: Any) -> Answer:
    body = {"type": "https://handoff.dev/problems/x", "title": title, "status": status,
            "detail": detail, **extra}
    return Answer(status, json.dumps(body).encode(), PROBLEM)


def accepted(files: list[dict[str, Any]] | None = None) -> Answer:
    return as_json(202, {"id": UPLOAD_ID, "status": "queued", "purpose": "raw",
                         "files": files or [], "links": {"self": STATUS_PATH}})


def status(state: str, error: str | None = None) -> Answer:
    return as_json(200, {"id": UPLOAD_ID, "status": state, "purpose": "raw", "metadata": {},
                         "files": [], "created_at": 1.0, "enqueued_at": 1.0,
                         "started_at": None, "finished_at": None,
                         "result": {"ok": True} if state == "done" else None,
                         "error": error, "links": {"self": STATUS_PATH}})


def _read_body(handler: BaseHTTPRequestHandler, keep: bool) -> tuple[bytes, int]:
    length = int(handler.headers.get("Content-Length") or 0)
    if keep:
        body = handler.rfile.read(length)
        return body, len(body)
    received = 0
    while received < length and (piece := handler.rfile.read(min(READ_SIZE, length - received))):
        received += len(piece)
    return b"", received


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body, received = _read_body(self, api.keep_bodies)
            api.requests.append(Recorded(self.command, self.path, dict(self.headers), body,
                                         received))
            answer = api.next_answer(self.command, self.path)
            if answer.hold is not None:
                answer.hold.wait()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[FakeApi]:
    """A running fake API on a free loopback port; stopped, with its thread, on exit."""
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        for queue in fake.answers.values():
            for answer in queue:
                if answer.hold is not None:
                    answer.hold.set()
        server.shutdown()
        server.server_close()
        thread.join()


def form_parts(recorded: Recorded) -> list[tuple[str, str | None, bytes]]:
    """Split a multipart body by hand: (field name, file name, content) in wire order."""
    boundary = recorded.headers["Content-Type"].split("boundary=", 1)[1].encode()
    chunks = recorded.body.split(b"--" + boundary)
    assert chunks[0] == b"" and chunks[-1] == b"--\r\n"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert content.endswith(b"\r\n")
        name = re.search(rb'\bname="([^"]*)"', head)
        filename = re.search(rb'\bfilename="([^"]*)"', head)
        assert name is not None
        parts.append((name.group(1).decode(), filename and filename.group(1).decode(),
                      content[:-2]))
    return parts
