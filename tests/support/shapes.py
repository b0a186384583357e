"""Builders for real shapefile zips and for hostile zips, shared by the tests.

The shapefiles are written by pyshp's own Writer, so a reader sees exactly
what a desktop GIS would produce. The hostile archives are built with the
standard library plus, where a header has to lie, byte patches at offsets
taken from the zip format itself.
"""

import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import shapefile

from handoff.units import MiB

Point = tuple[float, float]
Ring = list[Point]

PRJ_WGS84 = (
    'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
    'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
)
POINT_FIELDS = ["NAME", "VALUE"]
POLYGON_FIELDS = ["ZONE"]

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")
_END_RECORD = struct.Struct("<4s4H2LH")


def points_layer(
    points: Sequence[Point], *, name: str = "points", prj: bool = True, folder: str = ""
) -> dict[str, bytes]:
    """The members of a POINT shapefile with fields NAME and VALUE, by entry name."""

    def write(w: shapefile.Writer) -> None:
        w.field("NAME", "C", size=20)
        w.field("VALUE", "N", size=10, decimal=2)
        for i, (x, y) in enumerate(points):
            w.point(x, y)
            w.record(f"p{i}", i)

    return _layer(name, shapefile.POINT, write, prj=prj, folder=folder)


def polygon_layer(
    polygons: Sequence[Ring], *, name: str = "polygons", prj: bool = False, folder: str = ""
) -> dict[str, bytes]:
    """The members of a POLYGON shapefile (one ring per feature) with field ZONE."""

    def write(w: shapefile.Writer) -> None:
        w.field("ZONE", "C", size=10)
        for i, ring in enumerate(polygons):
            w.poly([ring])
            w.record(f"z{i}")

    return _layer(name, shapefile.POLYGON, write, prj=prj, folder=folder)


def make_points_zip(
    path: Path,
    points: Sequence[Point],
    *,
    prj: bool = True,
    folder: str = "",
    name: str = "points",
) -> Path:
    """A zip holding one POINT layer (see :func:`points_layer`)."""
    return make_zip(path, points_layer(points, name=name, prj=prj, folder=folder))


def make_polygon_zip(
    path: Path,
    polygons: Sequence[Ring],
    *,
    prj: bool = False,
    folder: str = "",
    name: str = "polygons",
) -> Path:
    """A zip holding one POLYGON layer (see :func:`polygon_layer`)."""
    return make_zip(path, polygon_layer(polygons, name=name, prj=prj, folder=folder))


def make_zip(
    path: Path, entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """A zip whose entries carry exactly the given names, however hostile."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def make_symlink_zip(
    path: Path,
    link_name: str = "points.shp",
    target: str = "/etc/passwd",
    entries: dict[str, bytes] | None = None,
) -> Path:
    """A zip with ``entries`` plus a Unix symlink entry ``link_name`` -> ``target``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (entries or {}).items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo(link_name)
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, target)
    return path


def make_bomb_zip(
    path: Path, size: int, *, name: str = "bomb.shp", claimed_size: int | None = None
) -> Path:
    """A complete-looking layer whose ``name`` member is ``size`` zero bytes.

    The zeros are written in chunks, so building a large bomb costs no memory.
    With ``claimed_size`` the local and central headers lie about the member's
    uncompressed size afterwards (its CRC still matches the real data).
    """
    stem = name.rsplit(".", 1)[0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w") as member:
            block = bytes(MiB)
            for start in range(0, size, len(block)):
                member.write(block[: min(len(block), size - start)])
        for ext in (".shx", ".dbf"):
            if not name.endswith(ext):
                zf.writestr(stem + ext, bytes(100))
    if claimed_size is not None:
        patch_declared_size(path, name, claimed_size)
    return path


def patch_declared_size(path: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size that both headers declare for ``name``."""
    _patch_headers(path, name, field=8, central_field=9, change=lambda _: size)


def mark_encrypted(path: Path, name: str) -> None:
    """Set the "encrypted" flag on ``name`` in both headers (the data stays plain)."""
    _patch_headers(path, name, field=2, central_field=3, change=lambda flags: flags | 0x1)


def corrupt_member(path: Path, name: str) -> None:
    """Flip one byte in the middle of ``name``'s stored data, leaving its CRC as it was."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    data = bytearray(path.read_bytes())
    header = _LOCAL_HEADER.unpack_from(data, info.header_offset)
    start = info.header_offset + _LOCAL_HEADER.size + header[9] + header[10]
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _patch_headers(
    path: Path, name: str, *, field: int, central_field: int, change: Callable[[int], int]
) -> None:
    """Apply ``change`` to one field of ``name``'s local and central headers."""
    with zipfile.ZipFile(path) as zf:
        local_offset = zf.getinfo(name).header_offset
    data = bytearray(path.read_bytes())
    _patch_record(data, _LOCAL_HEADER, local_offset, field, change)
    _patch_record(data, _CENTRAL_HEADER, _central_offset(data, name), central_field, change)
    path.write_bytes(bytes(data))


def _patch_record(
    data: bytearray,
    record: struct.Struct,
    offset: int,
    field: int,
    change: Callable[[int], int],
) -> None:
    fields = list(record.unpack_from(data, offset))
    assert fields[0] in (b"PK\x03\x04", b"PK\x01\x02"), "not a zip header"
    fields[field] = change(fields[field])
    record.pack_into(data, offset, *fields)


def _central_offset(data: bytearray, name: str) -> int:
    end = data.rfind(b"PK\x05\x06")
    offset = _END_RECORD.unpack_from(data, end)[6]
    while data[offset : offset + 4] == b"PK\x01\x02":
        fields = _CENTRAL_HEADER.unpack_from(data, offset)
        start = offset + _CENTRAL_HEADER.size
        if data[start : start + fields[10]].decode() == name:
            return offset
        offset = start + fields[10] + fields[11] + fields[12]
    raise AssertionError(f"{name} not in the central directory")


def _layer(
    name: str,
    shape_type: int,
    write: Callable[[shapefile.Writer], None],
    *,
    prj: bool,
    folder: str,
) -> dict[str, bytes]:
    """Run ``write`` on a pyshp Writer in a scratch folder and collect the files."""
    prefix = f"{folder.strip('/')}/" if folder else ""
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / name
        with shapefile.Writer(base, shapeType=shape_type) as w:
            write(w)
        members = {
            f"{prefix}{name}{ext}": base.with_suffix(ext).read_bytes()
            for ext in (".shp", ".shx", ".dbf")
        }
    if prj:
        members[f"{prefix}{name}.prj"] = PRJ_WGS84.encode()
    return members
