"""The soak's clients: multipart uploads sent by hand over a socket.

Bytes are random, generated while they are sent, and hashed on the way, so
no file is ever held whole in memory. Writing the body by hand lets a client
lie (broken multipart), stop half-way (cut off) or trickle.
"""

import hashlib
import http.client
import json
import math
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from handoff.units import KiB, MiB
from soak.verdict import Attempt

CHUNK = 256 * KiB

#: How often each kind of upload is tried.
MIX = (("good", 70), ("slow", 6), ("bad-metadata", 6), ("bad-purpose", 6),
       ("broken-multipart", 6), ("cut", 6))


@dataclass
class Shape:
    kind: str
    sizes: list[int]
    rate: float = 0.0  # bytes per second for slow uploads; 0 for full speed


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw(rng: random.Random, budget: int) -> Shape:
    """The next upload to try; big files only while ``budget`` bytes remain."""
    kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
    count = rng.randint(1, 5)
    if kind == "slow":
        # Below and above the minimum rate a server may demand (1 KiB/s),
        # each lasting some 10-40 s so that a client thread is not held for long.
        rate = rng.choice((256.0, 4 * KiB, 64 * KiB))
        size = max(KiB, int(rate * rng.uniform(10, 40) / count))
        return Shape(kind, [size] * count, rate)
    sizes = []
    for _ in range(count):
        size = log_uniform(rng, KiB, 256 * MiB)
        if size > budget:
            size = log_uniform(rng, KiB, MiB)
        budget -= size
        sizes.append(size)
    return Shape(kind, sizes)


class Body:
    """A multipart/form-data body of known length whose file bytes are made as they are read."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.boundary = uuid.uuid4().hex
        purpose = "no-such-purpose" if shape.kind == "bad-purpose" else "raw"
        metadata = "{not json" if shape.kind == "bad-metadata" else json.dumps({"soak": True})
        self.head = (self._field("purpose", purpose) + self._field("metadata", metadata))
        self.names = [f"f{i}.bin" for i in range(len(shape.sizes))]
        self.digests: list[str] = []
        closing = f"--{self.boundary}--\r\n".encode()
        if shape.kind == "broken-multipart":
            closing = b"--not-the-boundary--\r\n"
        self.tail = closing
        self.length = (len(self.head) + len(self.tail)
                       + sum(len(self._file_head(n)) + size + 2
                             for n, size in zip(self.names, shape.sizes, strict=True)))

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _field(self, name: str, value: str) -> bytes:
        return (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()

    def _file_head(self, filename: str) -> bytes:
        return (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode()

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        for name, size in zip(self.names, self.shape.sizes, strict=True):
            yield self._file_head(name)
            digest = hashlib.sha256()
            left = size
            while left:
                piece = os.urandom(min(CHUNK, left))
                digest.update(piece)
                left -= len(piece)
                yield piece
            self.digests.append(digest.hexdigest())
            yield b"\r\n"
        yield self.tail


def send(host: str, port: int, shape: Shape, rng: random.Random,
         timeout: float = 300.0) -> Attempt:
    """Try one upload and record what was sent and what came back."""
    body = Body(shape)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    attempt = Attempt(shape.kind, [])
    sent = 0
    cut_at = rng.randint(1, body.length - 1) if shape.kind == "cut" else None
    try:
        conn.putrequest("POST", "/v1/uploads")
        conn.putheader("Content-Type", body.content_type)
        conn.putheader("Content-Length", str(body.length))
        conn.endheaders()
        for chunk in body.chunks():
            if cut_at is not None and sent + len(chunk) >= cut_at:
                conn.send(chunk[: cut_at - sent])
                return attempt  # closed below without waiting for an answer
            _send(conn, chunk, shape.rate)
            sent += len(chunk)
        attempt.files = [(n, s, d) for n, s, d in
                         zip(body.names, shape.sizes, body.digests, strict=True)]
        response = conn.getresponse()
        attempt.status = response.status
        attempt.upload_id = _upload_id(response.read())
    except (OSError, http.client.HTTPException):
        attempt.status = _early_answer(conn)
    finally:
        attempt.answered_at = time.time()
        conn.close()
    return attempt


def _send(conn: http.client.HTTPConnection, chunk: bytes, rate: float) -> None:
    if not rate:
        conn.send(chunk)
        return
    step = max(1, int(rate / 4))
    for start in range(0, len(chunk), step):
        conn.send(chunk[start:start + step])
        time.sleep(step / rate)


def _early_answer(conn: http.client.HTTPConnection) -> int | None:
    """The status of an answer the server sent before it stopped reading, if any."""
    try:
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None


def _upload_id(payload: bytes) -> str | None:
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    found = parsed.get("upload_id") or parsed.get("id")
    return found if isinstance(found, str) else None
