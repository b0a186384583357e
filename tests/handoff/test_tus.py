"""The tus header grammar: Upload-Metadata pairs, Upload-Checksum, offsets."""

import base64
import hashlib

import pytest

from handoff import tus
from handoff.tus import Checksum, HeaderError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_metadata_pairs_are_decoded_from_base64():
    header = f"filename {_b64(b'plan.zip')},purpose {_b64(b'shapefile')}"
    assert tus.parse_upload_metadata(header) == {"filename": "plan.zip", "purpose": "shapefile"}


def test_a_metadata_key_may_come_without_a_value():
    assert tus.parse_upload_metadata(f"flag,filename {_b64(b'a')}") == {"flag": "", "filename": "a"}


def test_metadata_values_are_utf8():
    assert tus.parse_upload_metadata(f"filename {_b64('Zürich.geojson'.encode())}") == {
        "filename": "Zürich.geojson"}


def test_spaces_around_pairs_are_allowed():
    assert tus.parse_upload_metadata(f" a {_b64(b'1')} , b {_b64(b'2')} ") == {"a": "1", "b": "2"}


@pytest.mark.parametrize("header", [None, "", "  "])
def test_no_metadata_is_an_empty_mapping(header: str | None):
    assert tus.parse_upload_metadata(header) == {}


@pytest.mark.parametrize("header, words", [
    ("filename not*base64", "base64"),
    (f"a {_b64(b'1')},a {_b64(b'2')}", "more than once"),
    (f"a {_b64(b'1')} extra", "pairs"),
    (f"a {_b64(b'1')},,b {_b64(b'2')}", "pairs"),
    (f"filename {_b64(bytes([0xff, 0xfe]))}", "UTF-8"),
])
def test_malformed_metadata_is_refused(header: str, words: str):
    with pytest.raises(HeaderError, match=words):
        tus.parse_upload_metadata(header)


def test_metadata_encodes_back_to_what_it_was_parsed_from():
    pairs = {"filename": "Zürich, 2024.zip", "purpose": "shapefile", "flag": ""}
    assert tus.parse_upload_metadata(tus.encode_metadata(pairs)) == pairs


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_a_checksum_names_a_supported_algorithm_and_its_digest(algorithm: str):
    digest = hashlib.new(algorithm, b"chunk").digest()
    checksum = tus.parse_checksum(f"{algorithm} {_b64(digest)}")
    assert checksum == Checksum(algorithm, digest)
    assert checksum is not None
    hasher = checksum.hasher()
    hasher.update(b"chunk")
    assert hasher.digest() == digest


def test_no_checksum_header_is_none():
    assert tus.parse_checksum(None) is None


@pytest.mark.parametrize("header, words", [
    (f"crc32 {_b64(b'1234')}", "not supported"),
    ("sha1", "algorithm"),
    ("sha1 not*base64", "base64"),
    (f"sha1 {_b64(b'short')}", "wrong length"),
    (f"sha1 {_b64(hashlib.sha1().digest())} extra", "algorithm"),
])
def test_malformed_checksums_are_refused(header: str, words: str):
    with pytest.raises(HeaderError, match=words):
        tus.parse_checksum(header)


@pytest.mark.parametrize("value, expected", [("0", 0), ("17", 17), (None, None)])
def test_offsets_are_non_negative_integers(value: str | None, expected: int | None):
    assert tus.parse_offset(value, "Upload-Offset") == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "", "0x10", "١٢"])
def test_anything_else_is_no_offset(value: str):
    with pytest.raises(HeaderError, match="Upload-Offset"):
        tus.parse_offset(value, "Upload-Offset")


def test_a_partial_upload_is_named_as_such():
    concat = tus.parse_concat("partial")
    assert concat is not None and not concat.final and concat.header() == "partial"


def test_a_final_upload_lists_its_parts_in_order():
    concat = tus.parse_concat("final;/v1/uploads/b  http://h/v1/uploads/a")
    assert concat is not None and concat.final
    assert concat.parts == ("/v1/uploads/b", "http://h/v1/uploads/a")
    assert concat.header() == "final;/v1/uploads/b http://h/v1/uploads/a"


def test_no_concat_header_is_none():
    assert tus.parse_concat(None) is None


@pytest.mark.parametrize("header", ["", "final", "final;", "final; ", "whole", "partial;x",
                                    "Final;/v1/uploads/a"])
def test_malformed_concat_headers_are_refused(header: str):
    with pytest.raises(tus.HeaderError, match="Upload-Concat"):
        tus.parse_concat(header)
