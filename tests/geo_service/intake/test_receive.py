"""Writing one incoming multipart stream into a real store on disk."""

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from geo_service.intake.receive import Receiver
from geo_service.intake.stop import Cancelled
from geo_service.store import FileStore, FileWriter, State, UploadStore
from handoff.config import Settings
from handoff.form import FieldError, UploadLimits, upload_limits
from handoff.form_consumer import TooLarge
from handoff.multipart import MalformedForm
from tests.geo_service.store import disk
from tests.geo_service.store.disk import MANIFEST, TENANT
from tests.support.multipart_bodies import (
    BOUNDARY,
    field_part,
    file_part,
    multipart_body,
    split_every,
    upload_body,
)

UPLOAD_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
PURPOSES = {"raw", "shapefile"}


def limits_with(**changes: int) -> UploadLimits:
    """Small limits, but for ``changes``."""
    small = {"max_upload_size": 150_000, "max_file_size": 100_000, "max_form_fields_size": 4096}
    return upload_limits(Settings(**{**small, **changes}))


LIMITS = limits_with()
FILE_A = bytes(range(256)) * 100 + b"\r\n--" + BOUNDARY[:-1]
FILE_B = b"line\r\n" * 2000


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    store = FileStore(tmp_path / "uploads")
    store.create(UPLOAD_ID)
    return store


@pytest.fixture
def written(store: UploadStore, monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Bytes handed to the store for each file, committed or not: what reached the disk."""
    counts: dict[int, int] = {}
    real_open = store.open_writer

    def counting(upload_id: str, index: int) -> FileWriter:
        writer = real_open(upload_id, index)
        real_write = writer.write
        counts[index] = 0

        def write(data: bytes | memoryview) -> None:
            counts[index] += len(data)
            real_write(data)

        monkeypatch.setattr(writer, "write", write)
        return writer

    monkeypatch.setattr(store, "open_writer", counting)
    return counts


def receive(store: UploadStore, chunks: list[bytes],
            limits: UploadLimits = LIMITS) -> dict[str, Any]:
    return Receiver(store, UPLOAD_ID, PURPOSES, limits).receive(chunks, BOUNDARY)


def tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def entry(index: int, name: str, data: bytes) -> dict[str, Any]:
    return {
        "path": f"{disk.FILES}/{index}",
        "field": "file",
        "name": name,
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


@pytest.mark.parametrize("chunk_size", [64 * 1024, 1000, 7])
def test_files_land_in_numbered_files_with_a_true_manifest(
    store: UploadStore, chunk_size: int
) -> None:
    body = upload_body([("a.bin", FILE_A), ("b.txt", FILE_B)], purpose="shapefile",
                       metadata={"crs": "EPSG:4326", "n": [1, 2]})
    manifest = receive(store, split_every(body, chunk_size))

    assert manifest["id"] == UPLOAD_ID
    assert manifest["purpose"] == "shapefile"
    assert manifest["metadata"] == {"crs": "EPSG:4326", "n": [1, 2]}
    assert manifest["files"] == [entry(0, "a.bin", FILE_A), entry(1, "b.txt", FILE_B)]
    assert manifest["size"] == len(FILE_A) + len(FILE_B)
    assert isinstance(manifest["created"], float)
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == FILE_A
    assert disk.file_path(store, UPLOAD_ID, 1).read_bytes() == FILE_B
    assert store.manifest(UPLOAD_ID) == manifest
    assert store.state(UPLOAD_ID) is State.COMPLETE


def test_metadata_defaults_to_an_empty_object(store: UploadStore) -> None:
    manifest = receive(store, [upload_body([("a", b"x")])])
    assert manifest["metadata"] == {}
    assert manifest["purpose"] == "raw"


def test_empty_files_are_kept(store: UploadStore) -> None:
    manifest = receive(store, [upload_body([("empty", b""), ("one", b"1")])])
    assert manifest["files"] == [entry(0, "empty", b""), entry(1, "one", b"1")]
    assert disk.file_path(store, UPLOAD_ID, 0).read_bytes() == b""


def test_part_name_and_content_type_are_recorded(store: UploadStore) -> None:
    body = multipart_body([field_part("purpose", "raw"),
                           file_part("x.zip", b"PK", content_type="application/zip")])
    (recorded,) = receive(store, [body])["files"]
    assert recorded["field"] == "file"
    assert recorded["content_type"] == "application/zip"


def test_only_parts_named_file_are_files(store: UploadStore) -> None:
    body = multipart_body([field_part("purpose", "raw"), file_part("x.zip", b"PK", name="upload")])
    with pytest.raises(FieldError, match="'upload' is a file"):
        receive(store, [body])


def test_an_empty_file_input_is_skipped_and_the_files_are_numbered_without_it(
    store: UploadStore,
) -> None:
    manifest = receive(store, [upload_body([("", b""), ("one", b"1"), ("", b"")])])
    assert manifest["files"] == [entry(0, "one", b"1")]


def test_an_empty_file_input_alone_is_no_file(store: UploadStore) -> None:
    with pytest.raises(MalformedForm, match="no file part"):
        receive(store, [upload_body([("", b"")])])


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "a/b.txt", "données été.zip", "/abs/path", "..", disk.MANIFEST,
     "C:\\fakepath\\x.txt", 'say "hi".txt'],
)
def test_client_filenames_never_become_paths(
    tmp_path: Path, store: UploadStore, filename: str
) -> None:
    before = tree(tmp_path)
    manifest = receive(store, [upload_body([(filename, b"data"), ("second", b"more")])])

    assert [f["name"] for f in manifest["files"]] == [filename, "second"]
    assert [f["path"] for f in manifest["files"]] == [f"{disk.FILES}/0", f"{disk.FILES}/1"]
    created = tree(tmp_path) - before
    upload = f"uploads/{UPLOAD_ID}"
    assert created == {f"{upload}/{disk.FILES}/0", f"{upload}/{disk.FILES}/1",
                       f"{upload}/{MANIFEST}"}
    assert store.manifest(UPLOAD_ID) == manifest


def test_manifest_is_written_last(store: UploadStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[set[str]] = []
    real_seal = store.seal

    def spy(upload_id: str, manifest: dict[str, Any]) -> None:
        seen.append(set(os.listdir(disk.folder(store, upload_id))))
        assert all(f["size"] == disk.file_path(store, upload_id, i).stat().st_size
                   for i, f in enumerate(manifest["files"]))
        real_seal(upload_id, manifest)

    monkeypatch.setattr(store, "seal", spy)
    receive(store, [upload_body([("a", FILE_A)])])
    assert seen == [{"files", TENANT}]


def test_a_file_over_its_limit_is_too_large(store: UploadStore, written: dict[int, int]) -> None:
    limits = limits_with(max_file_size=1000, max_upload_size=10_000)
    body = upload_body([("ok", b"o" * 1000), ("big.bin", b"b" * 1001)])
    with pytest.raises(TooLarge, match=r"'big\.bin' exceeds 1000 bytes"):
        receive(store, split_every(body, 100), limits)
    assert store.manifest(UPLOAD_ID) is None
    assert written[1] <= 1000


def test_the_upload_over_its_limit_is_too_large(store: UploadStore,
                                                written: dict[int, int]) -> None:
    limits = limits_with(max_file_size=1000, max_upload_size=2500)
    body = upload_body([("a", b"a" * 1000), ("b", b"b" * 1000), ("c", b"c" * 1000)])
    with pytest.raises(TooLarge, match="the upload exceeds 2500 bytes") as caught:
        receive(store, split_every(body, 100), limits)
    assert caught.value.limit is None
    assert store.manifest(UPLOAD_ID) is None
    assert sum(written.values()) <= 2500


def test_the_upload_limit_counts_the_raw_body_not_only_its_files(store: UploadStore) -> None:
    """The files' 2000 bytes fit, the body around them does not: as the API counts."""
    body = upload_body([("a", b"a" * 1000), ("b", b"b" * 1000)])
    limits = limits_with(max_file_size=1000, max_upload_size=len(body) - 1)
    with pytest.raises(TooLarge, match=f"the upload exceeds {len(body) - 1} bytes"):
        receive(store, split_every(body, 100), limits)
    assert store.manifest(UPLOAD_ID) is None


def test_files_and_a_body_exactly_at_the_limits_pass(store: UploadStore) -> None:
    body = upload_body([("a", b"a" * 1000), ("b", b"b" * 1000)])
    limits = limits_with(max_file_size=1000, max_upload_size=len(body))
    manifest = receive(store, split_every(body, 100), limits)
    assert manifest["size"] == 2000


@pytest.mark.parametrize("cut", [-3, -100, -2000])
def test_a_truncated_body_is_malformed_and_not_sealed(store: UploadStore, cut: int) -> None:
    body = upload_body([("a", b"a" * 3000), ("b", b"b" * 3000)])
    with pytest.raises(MalformedForm, match="ended before its closing boundary"):
        receive(store, split_every(body[:cut], 500))
    assert store.state(UPLOAD_ID) is State.RECEIVING


def test_a_form_without_a_file_is_malformed(store: UploadStore) -> None:
    body = multipart_body([field_part("purpose", "raw"), field_part("metadata", "{}")])
    with pytest.raises(MalformedForm, match="no file part"):
        receive(store, [body])
    assert store.state(UPLOAD_ID) is State.RECEIVING


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([field_part("purpose", "pdf")], "unknown purpose 'pdf'"),
        ([], "the purpose field is missing"),
        ([field_part("purpose", "raw"), field_part("metadata", "[]")], "must be a JSON object"),
    ],
)
def test_bad_fields_are_malformed(store: UploadStore, fields: list[bytes], message: str) -> None:
    body = multipart_body([*fields, file_part("a", b"x")])
    with pytest.raises(MalformedForm, match=message):
        receive(store, [body])
    assert store.state(UPLOAD_ID) is State.RECEIVING


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([field_part("purpose", "raw"), field_part("purpose", "raw")], "more than once"),
        ([field_part("colour", "red")], "unknown form field 'colour'"),
    ],
)
def test_unknown_or_repeated_fields_are_refused(
    store: UploadStore, fields: list[bytes], message: str
) -> None:
    with pytest.raises(FieldError, match=message):
        receive(store, [multipart_body([*fields, file_part("a", b"x")])])
    assert store.state(UPLOAD_ID) is State.RECEIVING


def test_fields_over_their_limit_are_too_large_naming_the_limit(store: UploadStore) -> None:
    limits = limits_with(max_file_size=1000, max_upload_size=1000, max_form_fields_size=100)
    body = upload_body([("a", b"x")], metadata={"pad": "p" * 200})
    with pytest.raises(TooLarge, match="more than 100 bytes") as caught:
        receive(store, [body], limits)
    assert caught.value.limit == "HANDOFF_MAX_FORM_FIELDS_SIZE"


def test_receiving_into_a_missing_upload_fails_without_creating_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "uploads")
    with pytest.raises(FileNotFoundError):
        receive(store, [upload_body([("a", b"x")])])
    assert not store.exists(UPLOAD_ID)


def test_the_manifest_names_the_tenant(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "tenants")
    store.create(UPLOAD_ID, "alice")
    receiver = Receiver(store, UPLOAD_ID, PURPOSES, LIMITS, "alice")
    manifest = receiver.receive([upload_body([("a.bin", FILE_A)])], BOUNDARY)
    assert manifest["tenant"] == "alice"
    assert store.manifest(UPLOAD_ID) == manifest


def test_a_cancel_stops_the_writer_at_its_next_chunk(store: UploadStore) -> None:
    """Chunks after the cancel are not read, and no manifest is sealed."""
    body = split_every(upload_body([("a.bin", FILE_A)]), 1024)
    read: list[int] = []

    def chunks():
        for index, chunk in enumerate(body):
            read.append(index)
            if index == 3:
                store.mark_cancelled(UPLOAD_ID)
            yield chunk

    with pytest.raises(Cancelled):
        receive(store, chunks())
    assert read == [0, 1, 2, 3]
    assert store.manifest(UPLOAD_ID) is None


def test_a_cancel_after_the_last_chunk_still_prevents_the_seal(store: UploadStore) -> None:
    body = upload_body([("a.bin", FILE_A)])

    def chunks():
        yield body
        store.mark_cancelled(UPLOAD_ID)

    with pytest.raises(Cancelled):
        receive(store, chunks())
    assert store.manifest(UPLOAD_ID) is None
