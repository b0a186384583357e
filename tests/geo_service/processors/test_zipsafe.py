"""The zip vetting and the budgeted extraction, without any shapefile logic."""

import stat
import struct
import zipfile
from pathlib import Path

import pytest

from geo_service.processors import zipsafe
from handoff.processors import ValidationFailed
from handoff.units import MiB
from tests.support import shapes


def open_safe(path: Path, max_entries: int = 100, max_uncompressed: int = 100 * MiB):
    return zipsafe.SafeZip(path, "upload.zip", max_entries, max_uncompressed)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/abs.shp", "absolute path"),
        ("\\abs.shp", "absolute path"),
        ("C:/evil.shp", "drive letter"),
        ("c:evil.shp", "drive letter"),
        ("../evil.shp", "'..'"),
        ("a/../../evil.shp", "'..'"),
        ("a\\..\\..\\evil.shp", "'..'"),
        ("..", "'..'"),
    ],
)
def test_escaping_names_are_named_problems(name: str, problem: str) -> None:
    assert problem in (zipsafe.name_problem(name) or "")


@pytest.mark.parametrize("name", ["a.shp", "a/b/c.SHP", "a..b.shp", "..a/b.shp", "a/b../c.dbf"])
def test_ordinary_names_pass(name: str) -> None:
    assert zipsafe.name_problem(name) is None


def test_symlink_encrypted_and_unsupported_entries_are_problems() -> None:
    link = zipfile.ZipInfo("a.shp")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    locked = zipfile.ZipInfo("a.shp")
    locked.flag_bits |= 0x1
    deflate64 = zipfile.ZipInfo("a.shp")
    deflate64.compress_type = 9
    plain = zipfile.ZipInfo("a.shp")
    plain.external_attr = (stat.S_IFREG | 0o644) << 16

    assert zipsafe.entry_problem(link) == "is a symbolic link"
    assert zipsafe.entry_problem(locked) == "is encrypted"
    assert "compression method 9" in (zipsafe.entry_problem(deflate64) or "")
    assert zipsafe.entry_problem(plain) is None


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"just some text, definitely not a zip\n" * 10)
    with pytest.raises(ValidationFailed, match=r"^upload\.zip is not a zip archive$"):
        open_safe(path)


def test_end_record_without_a_directory_is_not_a_valid_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    path.write_bytes(b"junk" * 20 + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 46, 0, 0))
    with pytest.raises(ValidationFailed, match="not a valid zip archive"):
        open_safe(path)


def test_entry_count_from_end_record_is_checked_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shapes.make_zip(tmp_path / "x.zip", {f"{i}.txt": b"" for i in range(5)})

    def parse(*args: object) -> None:
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(zipsafe.zipfile, "ZipFile", parse)
    with pytest.raises(ValidationFailed, match="has 5 entries, more than the limit of 4"):
        open_safe(path, max_entries=4)


def test_lying_end_record_count_is_caught_by_counting_entries(tmp_path: Path) -> None:
    path = shapes.make_zip(tmp_path / "x.zip", {f"{i}.txt": b"" for i in range(5)})
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", data, end + 8, 1, 1)
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == 5, "the patched archive still lists all entries"
    with pytest.raises(ValidationFailed, match="has 5 entries, more than the limit of 4"):
        open_safe(path, max_entries=4)


def test_oversized_central_directory_is_refused(tmp_path: Path) -> None:
    path = shapes.make_zip(tmp_path / "x.zip", {"n" * 3000 + ".txt": b""})
    with pytest.raises(ValidationFailed, match="central directory"):
        open_safe(path, max_entries=1)


def test_declared_size_over_limit(tmp_path: Path) -> None:
    path = shapes.make_zip(tmp_path / "x.zip", {"a.shp": bytes(2 * MiB)})
    with pytest.raises(ValidationFailed, match=rf"decompress to {2 * MiB} bytes.*limit of {MiB}"):
        open_safe(path, max_uncompressed=MiB)


def test_unsafe_entry_anywhere_rejects_the_archive(tmp_path: Path) -> None:
    entries = {"a.shp": b"1", "b/c.shp": b"2", "b/../../evil.shp": b"3"}
    path = shapes.make_zip(tmp_path / "x.zip", entries)
    with pytest.raises(ValidationFailed, match=r"'b/\.\./\.\./evil\.shp' has a '\.\.' path"):
        open_safe(path)


def test_members_leave_out_directories(tmp_path: Path) -> None:
    path = shapes.make_zip(tmp_path / "x.zip", {"dir/": b"", "dir/a.shp": b"1"})
    with open_safe(path) as archive:
        assert [info.filename for info in archive.members()] == ["dir/a.shp"]


def test_extract_copies_the_member(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 9000
    path = shapes.make_zip(tmp_path / "x.zip", {"deep/a.shp": payload})
    dest = tmp_path / "0.shp"
    with open_safe(path) as archive:
        archive.extract(archive.members()[0], dest)
        assert archive.budget.used == len(payload)
    assert dest.read_bytes() == payload


def test_streaming_counter_stops_as_soon_as_the_budget_is_spent(tmp_path: Path) -> None:
    """The counter alone, given less budget than the member really holds.

    CPython's zipfile never yields more than a member's declared size, so a
    header lie cannot get past the declared-size check there; the budget is
    the guard for everything that check trusts. Here it is made smaller than
    the member to show it stops the stream early and writes nothing beyond it.
    """
    path = shapes.make_zip(tmp_path / "x.zip", {"a.shp": bytes(50 * MiB)})
    dest = tmp_path / "0.shp"
    with open_safe(path) as archive:
        archive.budget = zipsafe.ByteBudget(3 * MiB + 5, "upload.zip")
        with pytest.raises(ValidationFailed, match="more than the limit of 3145733 bytes"):
            archive.extract(archive.members()[0], dest)
        assert archive.budget.used <= 3 * MiB + 5 + zipsafe.CHUNK_SIZE
    assert dest.stat().st_size <= 3 * MiB + 5


def test_bad_crc_is_corrupt(tmp_path: Path) -> None:
    path = shapes.make_zip(
        tmp_path / "x.zip", {"a.shp": b"abc" * 1000}, compression=zipfile.ZIP_STORED
    )
    shapes.corrupt_member(path, "a.shp")
    with open_safe(path) as archive, pytest.raises(ValidationFailed, match="Bad CRC-32"):
        archive.extract(archive.members()[0], tmp_path / "0.shp")


def test_damaged_deflate_stream_is_corrupt(tmp_path: Path) -> None:
    path = shapes.make_zip(tmp_path / "x.zip", {"a.shp": bytes(range(256)) * 4000})
    shapes.corrupt_member(path, "a.shp")
    with open_safe(path) as archive, pytest.raises(ValidationFailed, match="is corrupt"):
        archive.extract(archive.members()[0], tmp_path / "0.shp")


def test_extract_never_follows_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    dest = tmp_path / "0.shp"
    dest.symlink_to(outside)
    path = shapes.make_zip(tmp_path / "x.zip", {"a.shp": b"overwrite"})
    with open_safe(path) as archive, pytest.raises(FileExistsError):
        archive.extract(archive.members()[0], dest)
    assert outside.read_text() == "keep me"
