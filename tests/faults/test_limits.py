"""Size limits: an upload over a limit is refused before the API reads much more.

A public endpoint that reads a body to the end before deciding it is too
large can be kept busy (and fill a disk) by anyone. The API must refuse a
too-large Content-Length without reading the body, stop reading a body
without a length as soon as it passes the limit, and leave nothing queued
and nothing on disk.
"""

import os

import pytest

from handoff.units import MiB
from tests.faults import nothing_kept, private_stack, refusal
from tests.faults.raw_http import Field, File, chunked, form, multipart_type, send, send_streaming
from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

MAX_UPLOAD = 8 * MiB
MAX_FILE = 3 * MiB
RELAY_CHUNK = MiB  # HANDOFF_RELAY_CHUNK_SIZE's default


@pytest.fixture(scope="module")
def limited(module_processes: Processes) -> Stack:
    """Small limits, so going over them takes megabytes, not gigabytes; no worker."""
    overrides = {"HANDOFF_MAX_UPLOAD_SIZE": "8MiB", "HANDOFF_MAX_FILE_SIZE": "3MiB"}
    return private_stack(module_processes, overrides)


def test_a_file_over_the_file_limit_is_refused(limited: Stack):
    """One 4 MiB file is within the request limit but over the 3 MiB file limit."""
    response = limited.upload([("big.bin", os.urandom(4 * MiB))])

    body = assert_problem(response, 413, detail=f"exceeds {MAX_FILE} bytes")
    assert "big.bin" in body["detail"]
    assert refusal(limited, body["upload_id"])["status"] == 413
    nothing_kept(limited)


def test_a_big_file_is_cut_off_soon_after_the_file_limit(limited: Stack):
    """A 7.5 MiB file fits the request limit; reading must stop one chunk past 3 MiB."""
    data = os.urandom(15 * MiB // 2)
    body = form([Field("purpose", "raw"), File("file", "big.bin", data)])
    head = body.index(data)
    pieces = [body[at:at + 256 * 1024] for at in range(0, len(body), 256 * 1024)]
    headers = {"Content-Type": multipart_type(), "Content-Length": str(len(body))}

    answer = send_streaming(limited.api_url, "POST", "/v1/uploads", headers, pieces)

    document = assert_problem(answer, 413, detail=f"exceeds {MAX_FILE} bytes")
    read = refusal(limited, document["upload_id"])["bytes"]
    assert MAX_FILE < read <= MAX_FILE + RELAY_CHUNK + head, read
    nothing_kept(limited)


def test_files_under_the_file_limit_but_over_the_request_limit_are_refused(limited: Stack):
    """Three 2.9 MiB files pass the per-file check one by one; together they are 8.7 MiB."""
    files = [(f"part{i}.bin", os.urandom(int(2.9 * MiB))) for i in range(3)]
    response = limited.upload(files)

    assert_problem(response, 413, detail=f"exceeds {MAX_UPLOAD} bytes")
    nothing_kept(limited)


def test_a_huge_content_length_is_refused_before_any_body_is_sent(limited: Stack):
    """100 GB announced and nothing sent: the answer must not wait for the body.

    The read timeout is the test's bound: a server that waits for the body
    never answers within it.
    """
    headers = {"Content-Type": multipart_type(), "Content-Length": "100000000000"}
    answer = send(limited.api_url, "POST", "/v1/uploads", headers, timeout=3.0)

    assert_problem(answer, 413, detail=f"exceeds {MAX_UPLOAD} bytes")
    nothing_kept(limited)


def test_a_chunked_body_is_cut_off_soon_after_the_request_limit(limited: Stack):
    """Without a Content-Length the limit can only be enforced while reading.

    Six 2.5 MiB files (15 MiB, each under the file limit) are sent chunked;
    the API must stop reading within one relay chunk past 8 MiB.
    """
    parts = [File("file", f"part{i}.bin", os.urandom(5 * MiB // 2)) for i in range(6)]
    body = form([Field("purpose", "raw"), *parts])
    head = body.index(parts[0].data)
    pieces = [body[at:at + 256 * 1024] for at in range(0, len(body), 256 * 1024)]
    headers = {"Content-Type": multipart_type(), "Transfer-Encoding": "chunked"}

    answer = send_streaming(limited.api_url, "POST", "/v1/uploads", headers, chunked(pieces))

    document = assert_problem(answer, 413, detail=f"upload exceeds {MAX_UPLOAD} bytes")
    read = refusal(limited, document["upload_id"])["bytes"]
    assert MAX_UPLOAD < read <= MAX_UPLOAD + RELAY_CHUNK + head, read
    nothing_kept(limited)
