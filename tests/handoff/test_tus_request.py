"""The one tus request parser, per verb: what both hops accept and refuse alike."""

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from handoff import tus, tus_request
from handoff.problems import Problem
from handoff.tus_request import Append, UploadInfo

PURPOSES = {"raw", "shapefile"}
MAX_SIZE = 1000
BYTES = {"Content-Type": tus.OFFSET_MEDIA_TYPE}


def _purposes() -> set[str]:
    return PURPOSES


def _no_purposes() -> set[str]:
    raise AssertionError("the purposes were asked for an upload that has none")


def _metadata(**pairs: str) -> str:
    return tus.encode_metadata(pairs)


def _refused(status: int, kind: str, call: Callable[[], object]) -> Problem:
    with pytest.raises(Problem) as caught:
        call()
    assert (caught.value.status, caught.value.kind) == (status, kind), caught.value.detail
    return caught.value


def _create(**headers: str) -> tus_request.Creation:
    return tus_request.parse_creation(Headers(headers), _purposes, MAX_SIZE)


# -- version ---------------------------------------------------------------------------------

def test_the_version_spoken_passes_and_its_absence_only_where_none_is_due():
    tus_request.check_version(Headers({"Tus-Resumable": tus.VERSION}))
    tus_request.check_version(Headers())
    problem = _refused(412, "unsupported-version", lambda: tus_request.check_version(
        Headers({"Tus-Resumable": "0.2.2"})))
    assert problem.headers == {"Tus-Version": tus.VERSION}
    with pytest.raises(Problem, match="needs Tus-Resumable"):
        tus_request.check_version(Headers(), required=True)


# -- POST (creation, from tus headers) -------------------------------------------------------

def test_a_creation_gives_its_info_from_upload_metadata():
    creation = _create(**{"Upload-Length": "10", "Upload-Metadata": _metadata(
        purpose="raw", filename="plan.zip", filetype="application/zip",
        metadata='{"project": "p"}')})
    assert creation.info == UploadInfo("raw", {"project": "p"}, "plan.zip", "application/zip", 10)
    assert creation.concat is None and creation.first_bytes is None


def test_a_creation_without_a_name_or_type_gets_the_defaults():
    info = _create(**{"Upload-Defer-Length": "1", "Upload-Metadata": _metadata(purpose="raw")}).info
    assert (info.filename, info.content_type, info.length) == (
        tus_request.DEFAULT_FILENAME, tus_request.DEFAULT_FILETYPE, None)


@pytest.mark.parametrize("headers", [
    {"Upload-Metadata": _metadata(purpose="raw")},
    {"Upload-Length": "1", "Upload-Defer-Length": "1", "Upload-Metadata": _metadata(purpose="raw")},
    {"Upload-Defer-Length": "0", "Upload-Metadata": _metadata(purpose="raw")},
    {"Upload-Length": "-1", "Upload-Metadata": _metadata(purpose="raw")},
    {"Upload-Length": "1", "Upload-Metadata": _metadata(purpose="astrology")},
    {"Upload-Length": "1", "Upload-Metadata": _metadata(filename="a")},
    {"Upload-Length": "1", "Upload-Metadata": _metadata(purpose="raw", metadata="[1]")},
    {"Upload-Length": "1", "Upload-Metadata": _metadata(purpose="raw", filename="x" * 256)},
    {"Upload-Length": "1", "Upload-Metadata": "purpose not*base64"},
    {"Upload-Length": "1", "Upload-Concat": "whole"},
], ids=["no-length", "both-lengths", "defer-0", "negative", "unknown-purpose", "no-purpose",
        "metadata-not-object", "long-filename", "bad-base64", "bad-concat"])
def test_a_creation_that_cannot_be_used_is_400(headers: dict[str, str]):
    _refused(400, "bad-request", lambda: _create(**headers))


def test_a_length_over_the_limit_is_413():
    with pytest.raises(Problem) as caught:
        _create(**{"Upload-Length": str(MAX_SIZE + 1), "Upload-Metadata": _metadata(purpose="raw")})
    assert caught.value.status == 413 and str(MAX_SIZE) in caught.value.detail


def test_a_partial_upload_has_no_purpose_and_asks_for_none():
    creation = tus_request.parse_creation(
        Headers({"Upload-Length": "5", "Upload-Concat": "partial"}), _no_purposes, MAX_SIZE)
    assert creation.info.partial and creation.info.purpose is None
    assert creation.info.length == 5 and creation.concat == tus.Concat()


def test_a_final_upload_names_its_parts_and_has_no_length_of_its_own():
    creation = _create(**{"Upload-Concat": "final;/u/a /u/b",
                          "Upload-Metadata": _metadata(purpose="raw")})
    assert creation.concat == tus.Concat(("/u/a", "/u/b")) and creation.info.length is None
    with pytest.raises(Problem, match="neither a length nor bytes"):
        _create(**{"Upload-Concat": "final;/u/a", "Upload-Length": "3",
                   "Upload-Metadata": _metadata(purpose="raw")})


def test_first_bytes_are_an_append_at_offset_0_checked_by_their_headers():
    digest = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
    creation = _create(**{"Upload-Length": "3", "Upload-Metadata": _metadata(purpose="raw"),
                          "Content-Length": "3", "Upload-Checksum": f"sha1 {digest}", **BYTES})
    assert creation.first_bytes == Append(0, tus.Checksum("sha1", hashlib.sha1(b"abc").digest()))


@pytest.mark.parametrize(("headers", "status"), [
    ({"Content-Length": "4", **BYTES}, 413),
    ({"Transfer-Encoding": "chunked", "Content-Type": "text/plain"}, 415),
    ({"Content-Length": "3", "Upload-Checksum": "crc32 AAAA", **BYTES}, 400),
], ids=["past-its-length", "wrong-type", "bad-checksum"])
def test_first_bytes_refused_by_their_headers(headers: dict[str, str], status: int):
    with pytest.raises(Problem) as caught:
        _create(**{"Upload-Length": "3", "Upload-Metadata": _metadata(purpose="raw"), **headers})
    assert caught.value.status == status


# -- PUT (creation, as the geo service receives it) ------------------------------------------

def _document(**fields: Any) -> UploadInfo:
    body = {"purpose": "raw", "metadata": {}, "filename": "a.bin",
            "content_type": "application/octet-stream", "length": 10, **fields}
    return tus_request.parse_info_document(json.dumps(body), _purposes, MAX_SIZE)


def test_the_document_the_api_sends_reads_back_as_the_same_info():
    info = UploadInfo("raw", {"a": [1]}, "plan.zip", "application/zip", 10, concat=("x", "y"))
    assert tus_request.parse_info_document(json.dumps(info.document()), _purposes,
                                           MAX_SIZE) == info
    assert "concat" not in UploadInfo("raw", {}, "a", "b", None).document()


def test_a_partial_document_keeps_only_its_length():
    info = tus_request.parse_info_document(
        json.dumps({"partial": True, "length": 4, "purpose": "nope"}), _no_purposes, MAX_SIZE)
    assert info == UploadInfo(None, {}, "part", tus_request.DEFAULT_FILETYPE, 4, partial=True)


@pytest.mark.parametrize("fields", [
    {"purpose": "nope"}, {"purpose": None}, {"metadata": ["x"]}, {"filename": ""},
    {"filename": "x" * 256}, {"length": -1}, {"length": "10"}, {"content_type": 3},
    {"partial": "yes"}, {"concat": []}, {"concat": [1]},
])
def test_a_document_that_cannot_be_used_is_400(fields: dict[str, Any]):
    _refused(400, "bad-request", lambda: _document(**fields))


@pytest.mark.parametrize("text", [None, "[1]", '{"metadata": {"x": NaN}}'])
def test_a_body_that_is_no_json_object_is_400(text: str | None):
    _refused(400, "bad-request", lambda: tus_request.parse_info_document(text, _purposes, MAX_SIZE))


def test_a_document_over_the_limit_is_413():
    _refused(413, "too-large", lambda: _document(length=MAX_SIZE + 1))


# -- PATCH -----------------------------------------------------------------------------------

def test_an_append_gives_its_offset_checksum_and_declared_length():
    digest = hashlib.md5(b"x").digest()
    headers = Headers({"Upload-Offset": "5", "Upload-Length": "9",
                       "Upload-Checksum": f"md5 {base64.b64encode(digest).decode()}",
                       "Content-Type": f"{tus.OFFSET_MEDIA_TYPE}; charset=x"})
    assert tus_request.parse_append(headers) == Append(5, tus.Checksum("md5", digest), 9)


@pytest.mark.parametrize(("headers", "status"), [
    ({"Upload-Offset": "0", "Content-Type": "application/octet-stream"}, 415),
    ({"Upload-Offset": "0"}, 415),
    (BYTES, 400),
    ({"Upload-Offset": "x", **BYTES}, 400),
    ({"Upload-Offset": "0", "Upload-Checksum": "crc32 AAAA", **BYTES}, 400),
    ({"Upload-Offset": "0", "Upload-Length": "ten", **BYTES}, 400),
], ids=["wrong-type", "no-type", "no-offset", "bad-offset", "bad-checksum", "bad-length"])
def test_an_append_that_cannot_be_used(headers: dict[str, str], status: int):
    with pytest.raises(Problem) as caught:
        tus_request.parse_append(Headers(headers))
    assert caught.value.status == status


def test_room_is_checked_against_the_limit_and_the_length():
    body = Append(990, None)
    tus_request.check_room(body, Headers({"Content-Length": "10"}), MAX_SIZE)
    with pytest.raises(Problem, match=f"exceed {MAX_SIZE} bytes") as caught:
        tus_request.check_room(body, Headers({"Content-Length": "11"}), MAX_SIZE, upload_id="u")
    assert caught.value.status == 413 and caught.value.extra == {"upload_id": "u"}
    with pytest.raises(Problem, match="length of 995 bytes"):
        tus_request.check_room(body, Headers({"Content-Length": "6"}), MAX_SIZE, 995)
