"""Builders for multipart/form-data bodies, byte for byte, shared by the tests.

A body is built from parts (headers plus data, without delimiters) so that a
test can also build what no well-behaved client sends: a field after a file,
a missing closing delimiter, a part without a name.
"""

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import requests

from handoff.units import MiB

BOUNDARY = b"handoff-test-boundary-7MA4YWxk"


def content_type(boundary: bytes = BOUNDARY) -> str:
    return f"multipart/form-data; boundary={boundary.decode('latin-1')}"


def _quote(text: str) -> bytes:
    """A quoted name or filename, escaped as browsers do (the HTML standard's way)."""
    escaped = text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return ('"' + escaped + '"').encode()


def field_part(name: str, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"Content-Disposition: form-data; name=" + _quote(name) + b"\r\n\r\n" + data


def file_part(
    filename: str,
    data: bytes,
    *,
    name: str = "file",
    content_type: str = "application/octet-stream",
) -> bytes:
    """A file part; the filename goes out as raw UTF-8, as browsers send it."""
    return (
        b"Content-Disposition: form-data; name="
        + _quote(name)
        + b"; filename="
        + _quote(filename)
        + b"\r\nContent-Type: "
        + content_type.encode()
        + b"\r\n\r\n"
        + data
    )


def multipart_body(
    parts: Iterable[bytes], *, boundary: bytes = BOUNDARY, close: bool = True
) -> bytes:
    """The body carrying ``parts``, with the closing delimiter unless ``close`` is false."""
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    if close:
        body += b"--" + boundary + b"--\r\n"
    return body


def upload_body(
    files: Sequence[tuple[str, bytes]],
    *,
    purpose: str | None = "raw",
    metadata: dict[str, Any] | str | None = None,
    boundary: bytes = BOUNDARY,
) -> bytes:
    """An upload as the API expects it: ``purpose``, ``metadata``, then the files."""
    parts = []
    if purpose is not None:
        parts.append(field_part("purpose", purpose))
    if metadata is not None:
        text = metadata if isinstance(metadata, str) else json.dumps(metadata)
        parts.append(field_part("metadata", text))
    parts.extend(file_part(filename, data) for filename, data in files)
    return multipart_body(parts, boundary=boundary)


def closing_dash_cut(body: bytes, boundary: bytes = BOUNDARY) -> int:
    """The offset just after the first ``-`` of the closing ``--boundary--``."""
    return body.rindex(b"--" + boundary + b"--") + len(boundary) + 3


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (duplicates and ends are ignored)."""
    edges = [0, *sorted({cut for cut in cuts if 0 < cut < len(data)}), len(data)]
    return [data[start:end] for start, end in pairwise(edges)]


def upload_head(filename: str = "paced.bin", boundary: bytes = BOUNDARY) -> bytes:
    """The start of a ``raw`` upload: the purpose field and a file part's headers."""
    return (b"--" + boundary + b"\r\n" + field_part("purpose", "raw") + b"\r\n"
            + b"--" + boundary + b"\r\n" + file_part(filename, b""))


def paced_upload(blocks: int, block_size: int = MiB, *, gap: float = 0.0,
                 pause_at: int | None = None, paused: threading.Event | None = None,
                 resume: threading.Event | None = None,
                 boundary: bytes = BOUNDARY) -> Iterator[bytes]:
    """A ``raw`` upload sent piece by piece, for tests that act while it arrives.

    ``gap`` seconds pass between pieces; before piece ``pause_at`` it sets
    ``paused`` and waits (at most 30 s) for ``resume``.
    """
    yield upload_head(boundary=boundary)
    block = os.urandom(block_size)
    for index in range(blocks):
        if index == pause_at and paused is not None and resume is not None:
            paused.set()
            resume.wait(30)
        yield block
        if gap:
            time.sleep(gap)
    yield b"\r\n--" + boundary + b"--\r\n"


def post_upload(url: str, body: Iterator[bytes], outcome: dict[str, Any],
                boundary: bytes = BOUNDARY) -> None:
    """POST a streamed body (chunked); the response, or the client's error, goes in ``outcome``."""
    try:
        outcome["response"] = requests.post(url, data=body, timeout=60,
                                            headers={"Content-Type": content_type(boundary)})
    except requests.RequestException as exc:
        outcome["error"] = exc


class PausedUpload:
    """A ``raw`` upload POSTed from a thread that holds still before block ``pause_at``.

    It returns once the upload is held, so a test can break a peer while
    the relay is open; ``finish`` sends the rest and gives the outcome
    (see :func:`post_upload`).
    """

    def __init__(self, url: str, blocks: int, pause_at: int) -> None:
        self.outcome: dict[str, Any] = {}
        paused, self._resume = threading.Event(), threading.Event()
        body = paced_upload(blocks, pause_at=pause_at, paused=paused, resume=self._resume)
        self._sender = threading.Thread(target=post_upload, args=(url, body, self.outcome))
        self._sender.start()
        assert paused.wait(30), "the upload never reached its pause"

    def finish(self) -> dict[str, Any]:
        self._resume.set()
        self._sender.join(60)
        return self.outcome
