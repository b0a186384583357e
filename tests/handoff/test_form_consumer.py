"""The one consumer of an upload's form: sizes, digests, limits and what a sink is told."""

import hashlib

import pytest

from handoff.config import Settings
from handoff.form import FieldError, UploadLimits, upload_limits
from handoff.form_consumer import FileEntry, FormConsumer, TooLarge
from handoff.multipart import FileStart, MalformedForm
from tests.support.multipart_bodies import (
    BOUNDARY,
    field_part,
    file_part,
    multipart_body,
    split_every,
    upload_body,
)

FILE_A = bytes(range(256)) * 20 + b"\r\n--" + BOUNDARY[:-1]
FILE_B = b"line\r\n" * 500


def limits_with(**changes: int) -> UploadLimits:
    """Small limits, but for ``changes``."""
    small = {"max_upload_size": 100_000, "max_file_size": 50_000, "max_form_fields_size": 4096}
    return upload_limits(Settings(**{**small, **changes}))


class RecordingSink:
    """What a sink is told, in order; the writes of a file joined into one."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def start(self, index: int, event: FileStart) -> None:
        self.calls.append(("start", index, event.filename))

    def write(self, data: bytes | memoryview) -> None:
        if self.calls and self.calls[-1][0] == "write":
            self.calls[-1] = ("write", self.calls[-1][1] + bytes(data))
        else:
            self.calls.append(("write", bytes(data)))

    def end(self) -> None:
        self.calls.append(("end",))


def consume(body: bytes, limits: UploadLimits | None = None, chunk_size: int = 1000,
            sink: RecordingSink | None = None) -> FormConsumer:
    consumer = FormConsumer(BOUNDARY, limits or limits_with(), sink)
    for chunk in split_every(body, chunk_size):
        consumer.feed(chunk)
    consumer.feed(None)
    return consumer


def entry(index: int, name: str, data: bytes) -> FileEntry:
    made = FileEntry(index=index, field="file", name=name,
                     content_type="application/octet-stream")
    made.add(data)
    return made


def entries(consumer: FormConsumer) -> list[tuple[int, str, str, str, int, str]]:
    return [(f.index, f.field, f.name, f.content_type, f.size, f.sha256) for f in consumer.files]


def test_a_file_entry_has_the_size_and_digest_of_its_bytes() -> None:
    made = entry(3, "a.bin", FILE_A)
    assert (made.size, made.sha256) == (len(FILE_A), hashlib.sha256(FILE_A).hexdigest())


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 1 << 20])
def test_files_are_listed_with_their_sizes_and_digests(chunk_size: int) -> None:
    body = upload_body([("a.bin", FILE_A), ("données.txt", FILE_B)], metadata={"k": "v"})
    consumer = consume(body, chunk_size=chunk_size)
    assert entries(consumer) == [
        (0, "file", "a.bin", "application/octet-stream", len(FILE_A),
         hashlib.sha256(FILE_A).hexdigest()),
        (1, "file", "données.txt", "application/octet-stream", len(FILE_B),
         hashlib.sha256(FILE_B).hexdigest()),
    ]
    assert consumer.received == len(body)
    assert consumer.form.fields == {"purpose": "raw", "metadata": '{"k": "v"}'}


def test_the_part_name_and_content_type_are_kept() -> None:
    body = multipart_body([field_part("purpose", "raw"),
                           file_part("x.zip", b"PK", content_type="application/zip")])
    (made,) = consume(body).files
    assert (made.field, made.content_type) == ("file", "application/zip")


def test_the_sink_is_told_of_each_file_in_order() -> None:
    sink = RecordingSink()
    consume(upload_body([("a.bin", FILE_A), ("empty", b""), ("b.txt", FILE_B)]), sink=sink)
    assert sink.calls == [
        ("start", 0, "a.bin"), ("write", FILE_A), ("end",),
        ("start", 1, "empty"), ("end",),
        ("start", 2, "b.txt"), ("write", FILE_B), ("end",),
    ]


def test_empty_file_inputs_are_skipped_and_the_files_numbered_without_them() -> None:
    sink = RecordingSink()
    consumer = consume(upload_body([("", b""), ("a.bin", FILE_A), ("", b"")]), sink=sink)
    assert [(f.index, f.name) for f in consumer.files] == [(0, "a.bin")]
    assert sink.calls == [("start", 0, "a.bin"), ("write", FILE_A), ("end",)]


def test_a_form_of_empty_file_inputs_has_no_files() -> None:
    assert consume(upload_body([("", b""), ("", b"")])).files == []


def test_a_file_at_the_file_limit_passes() -> None:
    consumer = consume(upload_body([("a", b"a" * 5000), ("b", b"b" * 5000)]),
                       limits_with(max_file_size=5000))
    assert [f.size for f in consumer.files] == [5000, 5000]


def test_a_file_over_the_file_limit_is_refused_mid_file() -> None:
    """The sink got the file's start and its bytes up to the limit, never its end."""
    sink = RecordingSink()
    body = upload_body([("small", b"s" * 4000), ("big.bin", b"b" * 5001)])
    with pytest.raises(TooLarge) as caught:
        consume(body, limits_with(max_file_size=5000), sink=sink)
    assert caught.value.detail == "file 'big.bin' exceeds 5000 bytes"
    assert caught.value.limit is None
    assert sink.calls[:3] == [("start", 0, "small"), ("write", b"s" * 4000), ("end",)]
    started, *rest = sink.calls[3:]
    assert started == ("start", 1, "big.bin")
    assert [call[0] for call in rest] == ["write"]
    assert 0 < len(rest[0][1]) <= 5000


def test_the_upload_limit_counts_the_raw_body() -> None:
    body = upload_body([("a", b"a" * 1000), ("b", b"b" * 1000)])
    assert consume(body, limits_with(max_upload_size=len(body))).received == len(body)
    with pytest.raises(TooLarge) as caught:
        consume(body, limits_with(max_upload_size=len(body) - 1))
    assert caught.value.detail == f"the upload exceeds {len(body) - 1} bytes"
    assert caught.value.limit is None


def test_a_chunk_over_the_upload_limit_reaches_no_sink() -> None:
    body = upload_body([("a", b"a" * 3000)])
    sink = RecordingSink()
    consumer = FormConsumer(BOUNDARY, limits_with(max_upload_size=2000), sink)
    consumer.feed(body[:1500])
    written = list(sink.calls)
    with pytest.raises(TooLarge):
        consumer.feed(body[1500:])
    assert sink.calls == written
    assert consumer.received == len(body)


def test_a_form_limit_is_refused_naming_its_variable() -> None:
    body = upload_body([(f"{n}", b"x") for n in range(4)])
    with pytest.raises(TooLarge) as caught:
        consume(body, limits_with(max_files=3))
    assert caught.value.limit == "HANDOFF_MAX_FILES"
    assert caught.value.detail.endswith("; the limit is HANDOFF_MAX_FILES")


def test_a_body_without_its_closing_boundary_is_malformed() -> None:
    body = upload_body([("a", b"a" * 3000)])
    with pytest.raises(MalformedForm, match="ended before its closing boundary"):
        consume(body[:-3])


def test_an_empty_body_is_malformed() -> None:
    with pytest.raises(MalformedForm):
        consume(b"")


def test_form_errors_pass_as_the_form_raises_them() -> None:
    body = multipart_body([field_part("purpose", "raw"), file_part("a", b"x"),
                           field_part("metadata", "{}")])
    with pytest.raises(FieldError, match="comes after a file"):
        consume(body)
