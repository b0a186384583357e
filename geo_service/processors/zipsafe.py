"""Opening an untrusted zip archive without letting it escape or explode.

A hostile zip attacks an extractor in two ways: names that point outside
the target folder (zip-slip: absolute paths, drive letters, ``..``, symlink
entries) and sizes that exhaust disk or memory (zip bombs). Every entry is
therefore vetted from the central directory before one byte is written,
and the decompressed bytes are counted again while they stream, because
the sizes in the headers are only claims.

Callers choose where each member goes; an entry's own name is never used
as a path. Every rejection raises :class:`ValidationFailed` with a message
meant for the person who uploaded the archive.
"""

import lzma
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Self

from handoff.processors import ValidationFailed
from handoff.units import CHUNK_SIZE

# Methods the standard library can decompress; anything else (Deflate64,
# PPMd, ...) would only fail later, half-way through an extraction.
SUPPORTED_METHODS = {
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
}

# A central-directory record is 46 bytes plus name, extra field and comment.
# Real archives stay far below this per entry; a directory much larger than
# ``max_entries`` such records can only be hostile, and zipfile would turn
# every record into an object in memory before we could count them.
MAX_DIRECTORY_BYTES_PER_ENTRY = 46 + 1024

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATORS = re.compile(r"[\\/]")
_CORRUPT_DATA = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError)


class ByteBudget:
    """Decompressed bytes an archive may still produce, counted as they stream."""

    def __init__(self, limit: int, label: str) -> None:
        self.limit = limit
        self.label = label
        self.used = 0

    def spend(self, amount: int) -> None:
        """Account for ``amount`` more bytes; fail before they are written if over."""
        self.used += amount
        if self.used > self.limit:
            raise ValidationFailed(
                f"{self.label}: decompressing produced more than the limit of "
                f"{self.limit} bytes, although the archive declared less; refusing it"
            )


class SafeZip:
    """A vetted zip archive whose members can only be extracted under a byte budget."""

    def __init__(self, path: Path, label: str, max_entries: int, max_uncompressed: int) -> None:
        self.label = label
        if not zipfile.is_zipfile(path):
            raise ValidationFailed(f"{label} is not a zip archive")
        _check_directory_size(path, label, max_entries)
        self._zip = _open(path, label)
        try:
            vet(self._zip.infolist(), label, max_entries, max_uncompressed)
        except BaseException:
            self._zip.close()
            raise
        self.budget = ByteBudget(max_uncompressed, label)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def members(self) -> list[zipfile.ZipInfo]:
        """The archive's file entries (directories left out), all already vetted."""
        return [info for info in self._zip.infolist() if not info.is_dir()]

    def extract(self, info: zipfile.ZipInfo, dest: Path) -> None:
        """Stream one member into the new file ``dest``, counting every byte.

        ``dest`` must not exist: opening it exclusively means a planted file
        or link there is never followed or overwritten.
        """
        with self._open_member(info) as src, dest.open("xb") as out:
            for chunk in self._chunks(src, info):
                self.budget.spend(len(chunk))
                out.write(chunk)

    def _open_member(self, info: zipfile.ZipInfo) -> IO[bytes]:
        try:
            return self._zip.open(info)
        except (*_CORRUPT_DATA, NotImplementedError) as exc:
            raise self._corrupt(info, exc) from exc

    def _chunks(self, src: IO[bytes], info: zipfile.ZipInfo) -> Iterator[bytes]:
        while True:
            try:
                chunk = src.read(CHUNK_SIZE)
            except _CORRUPT_DATA as exc:
                raise self._corrupt(info, exc) from exc
            except OSError as exc:
                # bz2 reports a damaged stream as an OSError without an errno;
                # one with an errno is a real I/O problem and worth a retry.
                if exc.errno is not None:
                    raise
                raise self._corrupt(info, exc) from exc
            if not chunk:
                return
            yield chunk

    def _corrupt(self, info: zipfile.ZipInfo, exc: BaseException) -> ValidationFailed:
        return ValidationFailed(f"{self.label}: entry {info.filename!r} is corrupt ({exc})")


def vet(infos: list[zipfile.ZipInfo], label: str, max_entries: int, max_uncompressed: int) -> None:
    """Reject the archive unless every entry is safe to extract and the sizes fit."""
    if len(infos) > max_entries:
        raise ValidationFailed(
            f"{label} has {len(infos)} entries, more than the limit of {max_entries}"
        )
    for info in infos:
        problem = entry_problem(info)
        if problem:
            raise ValidationFailed(f"{label}: entry {info.filename!r} {problem}; refusing it")
    declared = sum(info.file_size for info in infos)
    if declared > max_uncompressed:
        raise ValidationFailed(
            f"{label} would decompress to {declared} bytes, "
            f"more than the limit of {max_uncompressed}"
        )


def entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why this entry must not be extracted, or None when it is harmless."""
    return name_problem(info.filename) or _kind_problem(info)


def name_problem(name: str) -> str | None:
    """Why a member name could escape the folder it is extracted to, if it could.

    Backslashes count as separators too: the archive may have been built for,
    or be unpacked again on, Windows.
    """
    if name.startswith(("/", "\\")):
        return "has an absolute path"
    if _DRIVE.match(name):
        return "has a drive letter"
    if ".." in _SEPARATORS.split(name):
        return "has a '..' path component"
    return None


def _kind_problem(info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in SUPPORTED_METHODS:
        return f"uses unsupported compression method {info.compress_type}"
    return None


def _open(path: Path, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as exc:
        raise ValidationFailed(f"{label} is not a valid zip archive ({exc})") from exc


def _check_directory_size(path: Path, label: str, max_entries: int) -> None:
    """Refuse an oversized central directory before zipfile loads all of it."""
    declared = _directory_declaration(path)
    if declared is None:
        return
    entries, size = declared
    if entries > max_entries:
        raise ValidationFailed(
            f"{label} has {entries} entries, more than the limit of {max_entries}"
        )
    if size > max_entries * MAX_DIRECTORY_BYTES_PER_ENTRY:
        raise ValidationFailed(
            f"{label} has a {size}-byte central directory, "
            f"too large for the limit of {max_entries} entries"
        )


def _directory_declaration(path: Path) -> tuple[int, int] | None:
    """(entry count, directory size) from the end records, as zipfile would find them."""
    with path.open("rb") as f:
        end = f.seek(0, 2)
        start = max(0, end - _EOCD.size - 0xFFFF)
        f.seek(start)
        tail = f.read()
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or len(tail) - pos < _EOCD.size:
            return None
        fields = _EOCD.unpack_from(tail, pos)
        entries, size = fields[4], fields[5]
        if entries != 0xFFFF and size != 0xFFFFFFFF:
            return entries, size
        return _zip64_declaration(f, start + pos) or (entries, size)


def _zip64_declaration(f: IO[bytes], eocd_offset: int) -> tuple[int, int] | None:
    record_offset = eocd_offset - _EOCD64_LOCATOR.size - _EOCD64.size
    if record_offset < 0:
        return None
    f.seek(record_offset)
    data = f.read(_EOCD64.size + _EOCD64_LOCATOR.size)
    if data[_EOCD64.size : _EOCD64.size + 4] != b"PK\x06\x07" or data[:4] != b"PK\x06\x06":
        return None
    fields = _EOCD64.unpack_from(data)
    return fields[7], fields[8]
