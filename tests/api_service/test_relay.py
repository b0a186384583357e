"""The API's byte path: validate the head, pass every byte on, hash every file."""

import hashlib
import io
from collections.abc import Iterator

import pytest

from api_service.pacing import TooSlow
from api_service.relay import ClientGone, ClientTooSlow, Relay, RelayError
from handoff.config import Settings
from handoff.form import UploadLimits, upload_limits
from handoff.units import MiB
from tests.support.multipart_bodies import (
    BOUNDARY,
    field_part,
    file_part,
    multipart_body,
    upload_body,
)

PURPOSES = {"raw", "shapefile"}


def limits_with(**changes: int) -> UploadLimits:
    """Small limits, read in 1000-byte chunks, but for ``changes``."""
    small = {"max_upload_size": 10 * MiB, "max_file_size": 5 * MiB, "relay_chunk_size": 1000,
             "max_form_fields_size": 4096}
    return upload_limits(Settings(**{**small, **changes}))


LIMITS = limits_with()
FORM = LIMITS.form
FILE_A = bytes(range(256)) * 40 + b"\r\n--" + BOUNDARY[:-1]
FILE_B = b"\r\nsecond file\r\n" * 500


def relay_for(body: bytes, limits: UploadLimits = LIMITS) -> Relay:
    return Relay(io.BytesIO(body), BOUNDARY, limits)


def relayed(relay: Relay) -> bytes:
    return b"".join(relay.body())


def head_error(body: bytes, limits: UploadLimits = LIMITS) -> RelayError:
    with pytest.raises(RelayError) as caught:
        relay_for(body, limits).read_head(PURPOSES)
    return caught.value


def body_error(body: bytes, limits: UploadLimits = LIMITS) -> RelayError:
    relay = relay_for(body, limits)
    with pytest.raises(RelayError) as caught:
        relay.read_head(PURPOSES)
        relayed(relay)
    return caught.value


def summary(name: str, data: bytes) -> dict[str, object]:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# -- the head ------------------------------------------------------------------


def test_head_reads_purpose_and_metadata() -> None:
    relay = relay_for(upload_body([("a.bin", FILE_A)], purpose="shapefile",
                                  metadata={"crs": "EPSG:4326"}))
    relay.read_head(PURPOSES)
    assert relay.purpose == "shapefile"
    assert relay.metadata == {"crs": "EPSG:4326"}


def test_head_stops_at_the_first_file() -> None:
    body = upload_body([("a.bin", b"a" * 100_000)])
    relay = relay_for(body)
    relay.read_head(PURPOSES)
    assert relay.received < 2 * LIMITS.chunk_size
    assert [f["name"] for f in relay.files] == ["a.bin"]


def test_metadata_is_optional() -> None:
    relay = relay_for(upload_body([("a.bin", b"x")]))
    relay.read_head(PURPOSES)
    assert relay.metadata == {}


@pytest.mark.parametrize(
    ("parts", "kind", "detail"),
    [
        ([field_part("purpose", "pdf"), file_part("a", b"x")], "bad-form", "unknown purpose 'pdf'"),
        ([file_part("a", b"x")], "bad-form", "the purpose field is missing"),
        ([field_part("purpose", " "), file_part("a", b"x")], "bad-form", "purpose field is empty"),
        ([field_part("purpose", "raw"), field_part("metadata", "[1]"), file_part("a", b"x")],
         "bad-form", "metadata must be a JSON object"),
        ([field_part("purpose", "raw"), field_part("metadata", "{"), file_part("a", b"x")],
         "bad-form", "metadata is not valid JSON"),
        ([field_part("purpose", "raw"), field_part("purpose", "raw"), file_part("a", b"x")],
         "bad-form", "'purpose' is given more than once"),
        ([field_part("purpose", "raw"), field_part("colour", "red"), file_part("a", b"x")],
         "bad-form", "unknown form field 'colour'"),
        ([field_part("purpose", "raw")], "no-file", "the form contains no file part"),
        ([field_part("purpose", "raw"), field_part("metadata", "{}")],
         "no-file", "no file part"),
    ],
)
def test_head_refuses_a_bad_form(parts: list[bytes], kind: str, detail: str) -> None:
    error = head_error(multipart_body(parts))
    assert error.status == 400
    assert error.kind == kind
    assert detail in error.detail


def test_an_empty_body_is_a_bad_form() -> None:
    error = head_error(b"")
    assert (error.status, error.kind) == (400, "bad-form")
    assert "ended before its closing boundary" in error.detail


def test_fields_over_their_limit_are_413_naming_the_limit() -> None:
    body = upload_body([("a", b"x")], metadata={"pad": "x" * 5000})
    error = head_error(body)
    assert (error.status, error.limit) == (413, "HANDOFF_MAX_FORM_FIELDS_SIZE")
    assert "more than 4096 bytes" in error.detail
    assert "HANDOFF_MAX_FORM_FIELDS_SIZE" in error.detail


def test_the_head_held_in_memory_is_bounded_by_the_header_limit() -> None:
    padded = (
        b'Content-Disposition: form-data; name="purpose"\r\nX-Pad: ' + b"a" * 200_000
        + b"\r\n\r\nraw"
    )
    relay = relay_for(multipart_body([padded, file_part("a", b"x")]))
    with pytest.raises(RelayError) as caught:
        relay.read_head(PURPOSES)
    assert (caught.value.status, caught.value.limit) == (413, "HANDOFF_MAX_PART_HEADER_SIZE")
    assert relay.received <= FORM.max_part_header_size + 2 * LIMITS.chunk_size


# -- the body ------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1000, 7, 64 * 1024])
def test_body_is_exactly_the_client_body_and_files_are_hashed(chunk_size: int) -> None:
    body = upload_body([("a.bin", FILE_A), ("données été.zip", FILE_B)],
                       metadata={"k": "v"})
    limits = limits_with(relay_chunk_size=chunk_size)
    relay = relay_for(body, limits)
    relay.read_head(PURPOSES)
    assert relayed(relay) == body
    assert relay.received == len(body)
    assert relay.files == [summary("a.bin", FILE_A), summary("données été.zip", FILE_B)]


def test_body_yields_chunks_no_bigger_than_the_chunk_size() -> None:
    body = upload_body([("a.bin", FILE_A), ("b.bin", FILE_B)])
    relay = relay_for(body)
    relay.read_head(PURPOSES)
    chunks = list(relay.body())
    assert all(0 < len(chunk) <= LIMITS.chunk_size for chunk in chunks)
    assert len(chunks) >= len(body) // LIMITS.chunk_size


def test_an_empty_file_has_the_empty_digest() -> None:
    relay = relay_for(upload_body([("empty", b""), ("one", b"1")]))
    relay.read_head(PURPOSES)
    relayed(relay)
    assert relay.files == [summary("empty", b""), summary("one", b"1")]


def test_a_field_after_a_file_is_a_bad_form() -> None:
    body = multipart_body([field_part("purpose", "raw"), file_part("a", b"x"),
                           field_part("metadata", "{}")])
    error = body_error(body)
    assert (error.status, error.kind) == (400, "bad-form")
    assert "'metadata' comes after a file" in error.detail


def test_a_file_over_the_file_limit_is_413() -> None:
    limits = limits_with(max_upload_size=MiB, max_file_size=5000)
    body = upload_body([("small", b"s" * 4000), ("big.bin", b"b" * 5001)])
    error = body_error(body, limits)
    assert (error.status, error.kind) == (413, "too-large")
    assert "'big.bin'" in error.detail
    assert "5000 bytes" in error.detail


def test_a_file_at_the_file_limit_passes() -> None:
    limits = limits_with(max_upload_size=MiB, max_file_size=5000)
    body = upload_body([("a", b"a" * 5000), ("b", b"b" * 5000)])
    relay = relay_for(body, limits)
    relay.read_head(PURPOSES)
    assert relayed(relay) == body


def test_an_upload_over_the_request_limit_is_413_before_reading_much_more() -> None:
    body = upload_body([("a", b"a" * 30_000), ("b", b"b" * 30_000)])
    limits = limits_with(max_upload_size=40_000, max_file_size=MiB)
    relay = relay_for(body, limits)
    relay.read_head(PURPOSES)
    with pytest.raises(RelayError) as caught:
        relayed(relay)
    assert (caught.value.status, caught.value.kind) == (413, "too-large")
    assert "40000 bytes" in caught.value.detail
    assert relay.received <= limits.max_upload_size + limits.chunk_size


@pytest.mark.parametrize("cut", [-3, -40, -200])
def test_a_truncated_body_is_a_bad_form(cut: int) -> None:
    body = upload_body([("a", b"a" * 3000)])[:cut]
    error = body_error(body)
    assert (error.status, error.kind) == (400, "bad-form")
    assert "ended before its closing boundary" in error.detail


class _Broken(io.RawIOBase):
    """A client stream that delivers ``data`` and then fails."""

    def __init__(self, data: bytes, error: Exception) -> None:
        self._data = io.BytesIO(data)
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        if not chunk:
            raise self._error
        return chunk


def _chunks(relay: Relay) -> Iterator[bytes]:
    relay.read_head(PURPOSES)
    yield from relay.body()


def test_a_client_that_disconnects_mid_file_is_client_gone() -> None:
    body = upload_body([("a", b"a" * 5000)])[:3000]
    relay = Relay(_Broken(body, OSError("connection reset")), BOUNDARY, LIMITS)
    received = bytearray()
    with pytest.raises(ClientGone) as caught:
        for chunk in _chunks(relay):
            received += chunk
    assert caught.value.status == 400
    assert caught.value.kind == "incomplete-body"
    assert "connection reset" in caught.value.detail
    assert bytes(received) == body


def test_a_client_gone_before_the_first_byte_is_client_gone() -> None:
    relay = Relay(_Broken(b"", OSError(104, "Connection reset by peer")), BOUNDARY, LIMITS)
    with pytest.raises(ClientGone, match="Connection reset by peer"):
        relay.read_head(PURPOSES)
    assert relay.received == 0


def test_client_gone_names_an_error_without_a_message() -> None:
    relay = Relay(_Broken(b"", ConnectionResetError()), BOUNDARY, LIMITS)
    with pytest.raises(ClientGone) as caught:
        relay.read_head(PURPOSES)
    assert caught.value.detail == ("the client stopped sending before the body was complete "
                                   "(ConnectionResetError)")


def test_a_read_that_times_out_is_408_client_timeout() -> None:
    relay = Relay(_Broken(b"", TimeoutError("timed out")), BOUNDARY, LIMITS)
    with pytest.raises(ClientTooSlow) as caught:
        relay.read_head(PURPOSES)
    assert (caught.value.status, caught.value.kind) == (408, "client-timeout")


def test_below_the_minimum_rate_is_408_too_slow() -> None:
    relay = Relay(_Broken(b"", TooSlow("the client sent 6 bytes")), BOUNDARY, LIMITS)
    with pytest.raises(ClientTooSlow) as caught:
        relay.read_head(PURPOSES)
    assert (caught.value.status, caught.value.kind) == (408, "too-slow")
    assert caught.value.detail == "the client sent 6 bytes"


def test_client_gone_is_a_relay_error() -> None:
    assert issubclass(ClientGone, RelayError)


# -- check ---------------------------------------------------------------------


def _relayed_two_files() -> Relay:
    relay = relay_for(upload_body([("a.bin", FILE_A), ("b.bin", FILE_B)]))
    relay.read_head(PURPOSES)
    relayed(relay)
    return relay


def test_check_passes_when_the_geo_service_stored_the_same_bytes() -> None:
    relay = _relayed_two_files()
    stored = [
        {"path": "0", "name": "a.bin", **summary("a.bin", FILE_A)},
        {"path": "1", "name": "b.bin", **summary("b.bin", FILE_B)},
    ]
    relay.check(stored)


@pytest.mark.parametrize(
    "stored",
    [
        [summary("a.bin", FILE_A)],
        [summary("b.bin", FILE_B), summary("a.bin", FILE_A)],
        [summary("a.bin", FILE_A), summary("b.bin", FILE_B + b"!")],
        [summary("a.bin", FILE_A), {**summary("b.bin", FILE_B), "size": len(FILE_B) - 1}],
        [summary("a.bin", FILE_A), {"size": len(FILE_B)}],
        [summary("a.bin", FILE_A), summary("b.bin", FILE_B), summary("c", b"")],
        [],
    ],
)
def test_check_raises_502_on_any_difference(stored: list[dict[str, object]]) -> None:
    relay = _relayed_two_files()
    with pytest.raises(RelayError) as caught:
        relay.check(stored)
    assert (caught.value.status, caught.value.kind) == (502, "geo-mismatch")


def test_an_empty_file_input_alone_is_no_file() -> None:
    error = head_error(upload_body([("", b"")]))
    assert (error.status, error.kind) == (400, "no-file")


def test_an_empty_file_input_beside_a_file_is_relayed_but_not_counted() -> None:
    body = upload_body([("", b""), ("a.bin", FILE_A), ("", b"")])
    relay = relay_for(body)
    relay.read_head(PURPOSES)
    assert relayed(relay) == body
    assert relay.files == [summary("a.bin", FILE_A)]


def test_too_many_file_parts_are_413_naming_the_limit() -> None:
    limits = limits_with(max_upload_size=MiB, max_file_size=MiB, max_files=3)
    error = body_error(upload_body([(f"{n}", b"x") for n in range(4)]), limits)
    assert (error.status, error.kind, error.limit) == (413, "too-large", "HANDOFF_MAX_FILES")


def test_many_empty_file_inputs_are_relayed_past_the_head_and_refused_at_the_end() -> None:
    """The head held in memory stays bounded; the form is still refused for having no file."""
    body = upload_body([("", b"")] * 200)
    relay = relay_for(body)
    relay.read_head(PURPOSES)
    assert relay.received <= FORM.max_form_fields_size + LIMITS.chunk_size
    with pytest.raises(RelayError) as caught:
        relayed(relay)
    assert (caught.value.status, caught.value.kind) == (400, "no-file")
