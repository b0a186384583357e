"""Malformed uploads get a 400 (or 415) that says what is wrong, and leave nothing behind.

Some of these are only noticed after bytes have already been relayed to the
geo service (a body cut short, a field after the file), so besides the
answer each test checks that no job was queued and that the geo side
removed what it had started to write.
"""

import json
import os

import pytest
import requests

from handoff.units import MiB
from tests.faults import geo_posts, nothing_kept
from tests.faults.raw_http import Field, File, chunked, form, multipart_type, send, send_streaming
from tests.support.problems import assert_problem
from tests.support.stacks import Stack


def _not_relayed(stack: Stack, document: dict) -> None:
    """Fields are checked before the first byte goes to the geo service."""
    assert geo_posts(stack, document["upload_id"]) == []


def _post(stack: Stack, body: bytes, content_type: str = multipart_type()) -> requests.Response:
    return requests.post(f"{stack.api_url}/v1/uploads", data=body, timeout=30,
                         headers={"Content-Type": content_type})


def test_a_body_shorter_than_its_content_length_is_refused(quiet: Stack):
    """The client announces 3 MiB, sends 2 MiB of the file, then closes its side.

    By then the API has relayed the first megabytes to the geo service,
    which must throw them away.
    """
    body = form([Field("purpose", "raw"), File("file", "cut.bin", os.urandom(3 * MiB))])
    headers = {"Content-Type": multipart_type(), "Content-Length": str(len(body))}

    answer = send(quiet.api_url, "POST", "/v1/uploads", headers, body[:2 * MiB],
                  shut_write=True, timeout=15.0)

    assert assert_problem(answer, 400, detail="stopped sending")["upload_id"]
    nothing_kept(quiet)


def test_a_chunked_body_cut_off_inside_a_chunk_is_refused(quiet: Stack):
    """A chunk announces 1 MiB, 300 kB arrive, then the client closes its side."""
    body = form([Field("purpose", "raw"), File("file", "cut.bin", os.urandom(2 * MiB))])
    piece = next(chunked([body[:MiB]], last=False))[:300_000]
    headers = {"Content-Type": multipart_type(), "Transfer-Encoding": "chunked"}

    answer = send(quiet.api_url, "POST", "/v1/uploads", headers, piece, shut_write=True,
                  timeout=15.0)

    assert_problem(answer, 400, detail="stopped sending")
    nothing_kept(quiet)


def test_a_chunked_body_without_its_closing_boundary_is_refused(quiet: Stack):
    """The chunked encoding ends cleanly, but the multipart inside it never does."""
    body = form([Field("purpose", "raw"), File("file", "open.bin", os.urandom(MiB))],
                close=False)
    headers = {"Content-Type": multipart_type(), "Transfer-Encoding": "chunked"}

    answer = send_streaming(quiet.api_url, "POST", "/v1/uploads", headers,
                            chunked([body[:300_000], body[300_000:]]), timeout=15.0)

    assert_problem(answer, 400, detail="closing boundary")
    nothing_kept(quiet)


def test_multipart_without_a_boundary_parameter_is_refused(quiet: Stack):
    """Without a boundary the body cannot be split: a bad form (400), not a wrong type (415)."""
    body = form([Field("purpose", "raw"), File("file", "a.bin", b"data")])

    assert_problem(_post(quiet, body, "multipart/form-data"), 400, detail="boundary")
    nothing_kept(quiet)


def test_a_form_without_a_file_part_is_refused(quiet: Stack):
    """An upload with nothing to process must not become a job."""
    response = quiet.upload([], purpose="raw")

    _not_relayed(quiet, assert_problem(response, 400, detail="no file part"))
    nothing_kept(quiet)


def test_an_unknown_purpose_is_refused(quiet: Stack):
    """The purpose picks the processor: refused before relaying, not failed later by a worker."""
    response = quiet.upload([("a.bin", b"data")], purpose="astrology")

    document = assert_problem(response, 400, detail="unknown purpose")
    assert "astrology" in document["detail"]
    _not_relayed(quiet, document)
    nothing_kept(quiet)


@pytest.mark.parametrize(("metadata", "detail"), [
    pytest.param("[1, 2]", "must be a JSON object", id="json-array"),
    pytest.param('"just a string"', "must be a JSON object", id="json-string"),
    pytest.param("{project: p1}", "not valid JSON", id="not-json"),
])
def test_metadata_that_is_not_a_json_object_is_refused(quiet: Stack, metadata: str, detail: str):
    """Processors get metadata as a mapping; anything else is refused before a job can choke."""
    response = quiet.upload([("a.bin", b"data")], metadata=metadata)

    _not_relayed(quiet, assert_problem(response, 400, detail=detail))
    nothing_kept(quiet)


def test_a_repeated_field_is_refused(quiet: Stack):
    """Two purposes: picking either one silently would run a processor the client did not mean."""
    response = quiet.upload([("a.bin", b"data")], purpose="raw", fields=[("purpose", "shapefile")])

    document = assert_problem(response, 400, detail="more than once")
    assert "purpose" in document["detail"]
    _not_relayed(quiet, document)
    nothing_kept(quiet)


def test_an_unknown_field_is_refused(quiet: Stack):
    """A misspelt field that was silently ignored would run the upload with the wrong settings."""
    response = quiet.upload([("a.bin", b"data")], fields=[("colour", "blue")])

    document = assert_problem(response, 400, detail="unknown form field")
    assert "colour" in document["detail"]
    _not_relayed(quiet, document)
    nothing_kept(quiet)


def test_a_field_after_the_file_is_refused(quiet: Stack):
    """Fields must come first; this one arrives after 2 MiB of file were relayed."""
    body = form([Field("purpose", "raw"), File("file", "a.bin", os.urandom(2 * MiB)),
                 Field("metadata", json.dumps({"late": True}))])

    response = _post(quiet, body)

    document = assert_problem(response, 400, detail="after a file")
    assert "metadata" in document["detail"]
    assert document["upload_id"]
    nothing_kept(quiet)


def test_a_body_that_is_not_multipart_is_refused_as_unsupported(quiet: Stack):
    """415 tells the client to change the media type, not to repair a form."""
    response = _post(quiet, json.dumps({"purpose": "raw", "file": "aGVsbG8="}).encode(),
                     "application/json")

    assert_problem(response, 415, detail="multipart/form-data")
    nothing_kept(quiet)
