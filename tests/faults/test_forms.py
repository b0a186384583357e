"""Forms as browsers and curl send them, byte for byte, and the parser's limits.

A browser form with a file input left empty, a file under another field
name, a part without a name, a boundary full of the punctuation RFC 2046
allows, a Windows path as a file name: each is sent as a raw request, and
the answer must be what the API documents. Refusals leave nothing queued
and nothing on disk.
"""

import hashlib
from collections.abc import Iterator

import pytest
import requests

from handoff.tus import encode_metadata
from handoff.units import KiB, MiB
from tests.faults import (
    geo_posts,
    log_records,
    nothing_kept,
    refusal,
)
from tests.faults.raw_http import send, send_streaming
from tests.support.multipart_bodies import content_type, field_part, file_part, multipart_body
from tests.support.problems import assert_problem
from tests.support.stacks import SECRET, Stack

RELAY_CHUNK = MiB  # HANDOFF_RELAY_CHUNK_SIZE's default
EMPTY_INPUT = file_part("", b"")  # what a browser sends for a file input left empty
BOUNDARY = b"handoff-test-boundary-7MA4YWxk"


def _post(stack: Stack, parts: list[bytes], boundary: bytes = BOUNDARY,
          header: str | None = None):
    body = multipart_body(parts, boundary=boundary)
    headers = {"Content-Type": header or content_type(boundary),
               "Content-Length": str(len(body)), **stack.client_headers}
    return send(stack.api_url, "POST", "/v1/uploads", headers, body, timeout=30)


def _manifest(stack: Stack, upload_id: str) -> dict:
    response = requests.get(f"{stack.geo_url}/uploads/{upload_id}", timeout=30,
                            headers={"Authorization": f"Bearer {SECRET}"})
    response.raise_for_status()
    return response.json()["manifest"]


def _summary(name: str, data: bytes) -> dict:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# -- browsers' forms ---------------------------------------------------------------


def test_an_empty_file_input_alone_is_no_file(quiet: Stack):
    answer = _post(quiet, [field_part("purpose", "raw"), EMPTY_INPUT])

    document = assert_problem(answer, 400, detail="no file part")
    assert document["type"].endswith("/no-file")
    assert geo_posts(quiet, document["upload_id"]) == []
    nothing_kept(quiet)


def test_an_empty_file_input_beside_a_real_file_is_ignored(stack: Stack):
    """The API's answer and the geo manifest both list the one real file."""
    answer = _post(stack, [field_part("purpose", "raw"), EMPTY_INPUT,
                           file_part("a.txt", b"hello"), EMPTY_INPUT])

    assert answer.status == 202, answer.body
    document = answer.json()
    assert document["files"] == [_summary("a.txt", b"hello")]
    stored = _manifest(stack, document["id"])["files"]
    assert [{key: f[key] for key in ("name", "size", "sha256")} for f in stored] \
        == document["files"]


def test_a_file_under_another_field_name_is_refused_naming_it(quiet: Stack):
    """curl -F upload=@x: the OpenAPI says files go in parts named ``file``."""
    answer = _post(quiet, [field_part("purpose", "raw"), file_part("x", b"data", name="upload")])

    assert "'upload'" in assert_problem(answer, 400, detail="named 'file'")["detail"]
    nothing_kept(quiet)


def test_a_file_part_without_a_filename_says_so(quiet: Stack):
    answer = _post(quiet, [field_part("purpose", "raw"), field_part("file", "data")])

    assert_problem(answer, 400, detail="has no filename")
    nothing_kept(quiet)


def test_a_part_without_a_name_is_refused(quiet: Stack):
    nameless = (b'Content-Disposition: form-data; filename="a.txt"\r\n'
                b"Content-Type: text/plain\r\n\r\nhello")
    answer = _post(quiet, [field_part("purpose", "raw"), nameless])

    assert_problem(answer, 400, detail="RFC 7578")
    nothing_kept(quiet)


def test_a_form_without_purpose_says_it_is_missing(quiet: Stack):
    answer = _post(quiet, [file_part("a.txt", b"hello")])

    assert_problem(answer, 400, detail="purpose field is missing")
    nothing_kept(quiet)


@pytest.mark.parametrize(("boundary", "header"), [
    # every character RFC 2046 allows, the space too: quoted
    (b"0aZ'()+_,-./:=? end", "multipart/form-data; boundary=\"0aZ'()+_,-./:=? end\""),
    # the same characters but the space: unquoted
    (b"0aZ'()+_,-./:=?end", "multipart/form-data; boundary=0aZ'()+_,-./:=?end"),
], ids=["quoted", "unquoted"])
def test_a_boundary_of_rfc_2046_characters_is_accepted(stack: Stack, boundary: bytes,
                                                       header: str):
    answer = _post(stack, [field_part("purpose", "raw"), file_part("a.txt", b"hi")],
                   boundary, header)

    assert answer.status == 202, answer.body
    assert answer.json()["files"] == [_summary("a.txt", b"hi")]


@pytest.mark.parametrize("filename", ["C:\\fakepath\\x.txt", "back\\slash\\", "100%.txt"])
def test_file_names_are_reported_as_sent(stack: Stack, filename: str):
    answer = _post(stack, [field_part("purpose", "raw"), file_part(filename, b"x")])

    assert answer.status == 202, answer.body
    document = answer.json()
    assert [f["name"] for f in document["files"]] == [filename]
    assert [f["name"] for f in stack.status(document["id"])["files"]] == [filename]


def test_a_file_name_over_255_bytes_is_refused(quiet: Stack):
    answer = _post(quiet, [field_part("purpose", "raw"), file_part("é" * 128, b"x")])

    assert_problem(answer, 400, detail="longer than 255 bytes")
    nothing_kept(quiet)


def test_fields_over_their_limit_are_413_naming_it(quiet: Stack):
    answer = _post(quiet, [field_part("purpose", "raw"),
                           field_part("metadata", '{"pad": "' + "p" * MiB + '"}'),
                           file_part("a.txt", b"x")])

    assert assert_problem(answer, 413, detail="HANDOFF_MAX_FORM_FIELDS_SIZE")["limit"] \
        == "HANDOFF_MAX_FORM_FIELDS_SIZE"
    nothing_kept(quiet)


# -- the parser's limits -------------------------------------------------------------


def test_1001_file_parts_are_413_naming_max_files(quiet: Stack):
    files = [file_part(f"{n}.txt", b"x") for n in range(1001)]
    answer = _post(quiet, [field_part("purpose", "raw"), *files])

    assert assert_problem(answer, 413, detail="HANDOFF_MAX_FILES")["limit"] == "HANDOFF_MAX_FILES"
    nothing_kept(quiet)


def _endless(start: bytes, filler: bytes, total: int) -> Iterator[bytes]:
    """``start``, then ``filler`` until ``total`` bytes: far more than the server should read."""
    yield start
    for _ in range((total - len(start)) // len(filler)):
        yield filler


@pytest.mark.parametrize(("start", "limit"), [
    pytest.param(b"--" + BOUNDARY + b"\r\n" + b"X-Pad: " + b"h" * 20 * KiB + b"\r\n",
                 "HANDOFF_MAX_PART_HEADER_SIZE", id="20KiB-part-header"),
    pytest.param(b"p" * MiB, "HANDOFF_MAX_PREAMBLE_SIZE", id="1MiB-preamble"),
])
def test_bytes_that_are_no_part_data_are_refused_while_they_arrive(
    quiet: Stack, start: bytes, limit: str
):
    """A 20 KiB part header or a 1 MiB preamble in a 1 GiB body: refused after a few chunks.

    The client would send all of it; the answer comes while it is still
    sending, and the API has read no more than the cap and two chunks.
    """
    total = 1024 * MiB
    headers = {"Content-Type": content_type(BOUNDARY), "Content-Length": str(total)}
    pieces = _endless(start, b"h" * 256 * KiB, total)

    answer = send_streaming(quiet.api_url, "POST", "/v1/uploads", headers, pieces, timeout=30)

    document = assert_problem(answer, 413, detail=limit)
    assert document["limit"] == limit
    assert refusal(quiet, document["upload_id"])["bytes"] <= 64 * KiB + 2 * RELAY_CHUNK
    nothing_kept(quiet)



@pytest.mark.parametrize(("quoted", "filename"), [
    (b'"a\\"b.txt"', 'a"b.txt'), (b'"a\\\\b.txt"', "a\\b.txt"), (b'"a%22b.txt"', 'a"b.txt')])
def test_quoted_pairs_in_a_file_name_are_unescaped(stack: Stack, quoted: bytes, filename: str):
    part = (b'Content-Disposition: form-data; name="file"; filename=' + quoted
            + b"\r\nContent-Type: text/plain\r\n\r\nx")
    answer = _post(stack, [field_part("purpose", "raw"), part])

    assert answer.status == 202, answer.body
    document = answer.json()
    assert [f["name"] for f in document["files"]] == [filename]
    assert [f["name"] for f in stack.status(document["id"])["files"]] == [filename]


# -- metadata ------------------------------------------------------------------------


def _nested_metadata(depth: int) -> str:
    return '{"a":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


NOT_FINITE = {"nan": '{"x": NaN}', "infinity": '{"x": [Infinity]}',
              "-infinity": '{"x": {"y": -Infinity}}'}
BAD_METADATA = {"depth-10000": _nested_metadata(10_000), **NOT_FINITE}
# Past Python's recursion limit, yet within gunicorn's 8 KiB header field once base64.
BAD_TUS_METADATA = {"depth-2000": _nested_metadata(2_000), **NOT_FINITE}


def _errors_logged(stack: Stack, starts: dict[str, int]) -> list[str]:
    """ERROR records and tracebacks the API and geo service logged since ``starts``."""
    found = []
    for name, start in starts.items():
        text = stack.log(name)[start:]
        found += [line for line in text.splitlines() if "Traceback" in line]
        found += [str(record) for record in log_records(stack, name, start)
                  if record.get("level") in ("ERROR", "CRITICAL")]
    return found


@pytest.mark.parametrize("metadata", BAD_METADATA.values(), ids=BAD_METADATA.keys())
def test_bad_metadata_in_a_form_is_400_naming_it_and_logs_no_error(quiet: Stack,
                                                                   metadata: str):
    starts = {name: len(quiet.log(name)) for name in ("api", "geo")}
    answer = _post(quiet, [field_part("purpose", "raw"), field_part("metadata", metadata),
                           file_part("a.txt", b"hi")])

    assert assert_problem(answer, 400, detail="metadata ")["detail"].startswith("metadata ")
    nothing_kept(quiet)
    assert _errors_logged(quiet, starts) == []


@pytest.mark.parametrize("metadata", BAD_TUS_METADATA.values(), ids=BAD_TUS_METADATA.keys())
def test_bad_metadata_in_a_tus_creation_is_400_naming_it_and_logs_no_error(quiet: Stack,
                                                                           metadata: str):
    starts = {name: len(quiet.log(name)) for name in ("api", "geo")}
    answer = requests.post(f"{quiet.api_url}/v1/uploads", timeout=30, headers={
        **quiet.client_headers, "Tus-Resumable": "1.0.0", "Upload-Length": "2",
        "Upload-Metadata": encode_metadata({"purpose": "raw", "metadata": metadata})})

    assert assert_problem(answer, 400, detail="metadata ")["detail"].startswith("metadata ")
    nothing_kept(quiet)
    assert _errors_logged(quiet, starts) == []


def test_tus_metadata_past_the_header_limit_is_431_and_logs_no_error(quiet: Stack) -> None:
    """10,000 levels cannot travel in a header: gunicorn refuses it before any code reads it."""
    starts = {name: len(quiet.log(name)) for name in ("api", "geo")}
    answer = requests.post(f"{quiet.api_url}/v1/uploads", timeout=30, headers={
        **quiet.client_headers, "Tus-Resumable": "1.0.0", "Upload-Length": "2",
        "Upload-Metadata": encode_metadata({"purpose": "raw",
                                            "metadata": _nested_metadata(10_000)})})

    assert_problem(answer, 431, detail="limit request headers fields size")
    nothing_kept(quiet)
    assert _errors_logged(quiet, starts) == []
