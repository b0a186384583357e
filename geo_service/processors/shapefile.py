"""The ``shapefile`` purpose: zipped ESRI shapefiles, summarised per layer.

Every uploaded file must be a zip holding at least one shapefile: a
``.shp``, ``.shx`` and ``.dbf`` sharing a stem, optionally with a ``.prj``
(the CRS) and a ``.cpg`` (the DBF's text encoding). Archives come from the
public, so :mod:`~geo_service.processors.zipsafe` vets each one before
anything is written, and only the members a layer needs are extracted,
under names chosen here, into ``job.work_dir``.

The zip limits apply to each uploaded archive in turn: one archive's files
are deleted before the next is opened, so the disk never holds more than
one archive's worth of extracted bytes. They are this processor's settings:
``HANDOFF_PROCESSOR_SHAPEFILE_ZIP_MAX_UNCOMPRESSED`` (a size, default 4GiB)
and ``HANDOFF_PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES`` (default 10000). A value
that does not parse fails the job as a transient error naming the variable,
so fixing the setting and restarting the worker lets the retries succeed.
"""

import codecs
import logging
import math
import re
import shutil
import struct
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from zipfile import ZipInfo

import shapefile

from geo_service.processors import zipsafe
from handoff.config import count, positive_size
from handoff.processors import Job, ValidationFailed, read_setting

log = logging.getLogger(__name__)

REQUIRED = (".shp", ".shx", ".dbf")
OPTIONAL = (".prj", ".cpg")
WKT_LIMIT = 2000
CPG_LIMIT = 64
PURPOSE = "shapefile"
DEFAULT_MAX_UNCOMPRESSED = 4 * 1024**3
DEFAULT_MAX_ENTRIES = 10_000
SHP_HEADER_SIZE = 100
SHP_FILE_CODE = 9994
DBF_HEADER_SIZE = 32
DBF_FIELD_SIZE = 32
DBF_HEADER_END = 0x0D

_PYSHP_ERRORS = (shapefile.ShapefileException, struct.error, ValueError, LookupError)


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED


@dataclass(frozen=True)
class LayerMembers:
    """The zip entries of one shapefile, keyed by lower-case extension."""

    name: str
    members: dict[str, ZipInfo]


def process(job: Job) -> dict[str, Any]:
    """Summarise every shapefile layer in every uploaded zip."""
    limits = zip_limits(job.settings)
    layers: list[dict[str, Any]] = []
    for n, file in enumerate(job.files):
        layers.extend(summarise_archive(job.work_dir / str(n), limits, file.name, file.path))
    return {"layers": layers, "feature_count": sum(layer["feature_count"] for layer in layers)}


def zip_limits(settings: dict[str, str]) -> ZipLimits:
    """The limits the settings ask for, the defaults for those they leave out."""
    return ZipLimits(
        max_entries=read_setting(settings, PURPOSE, "zip_max_entries", count,
                                 DEFAULT_MAX_ENTRIES),
        max_uncompressed=read_setting(settings, PURPOSE, "zip_max_uncompressed", positive_size,
                                      DEFAULT_MAX_UNCOMPRESSED),
    )


def summarise_archive(target: Path, limits: ZipLimits, label: str, path: Path
                      ) -> list[dict[str, Any]]:
    """Vet one uploaded zip, then extract and read its layers in ``target``.

    The extracted files are removed however this ends; a folder left by an
    earlier, interrupted attempt is removed first.
    """
    _remove(target)
    with zipsafe.SafeZip(path, label, limits.max_entries, limits.max_uncompressed) as archive:
        layers = find_layers(archive.members(), label)
        try:
            target.mkdir(parents=True)
            return [
                _summarise_layer(archive, layer, target / str(k), label)
                for k, layer in enumerate(layers)
            ]
        finally:
            _remove(target)


def find_layers(infos: list[ZipInfo], label: str) -> list[LayerMembers]:
    """Group the entries into shapefile layers; every ``.shp`` must be complete.

    A lone ``.dbf`` next to complete layers is tolerated (it is an ordinary
    attribute table), but a ``.shp`` missing its index or attributes is not.
    """
    groups = _group_by_stem(infos, label)
    layers = [
        LayerMembers(name=members[".shp"].filename, members=members)
        for _, members in sorted(groups.items())
        if ".shp" in members
    ]
    if not layers:
        raise ValidationFailed(_no_shp_message(groups, label))
    for layer in layers:
        _require_complete(layer, label)
    return layers


def _group_by_stem(infos: list[ZipInfo], label: str) -> dict[str, dict[str, ZipInfo]]:
    groups: dict[str, dict[str, ZipInfo]] = {}
    for info in infos:
        stem, ext = _split(info.filename)
        if ext not in REQUIRED + OPTIONAL:
            continue
        members = groups.setdefault(stem, {})
        if ext in members:
            raise ValidationFailed(
                f"{label}: {info.filename!r} and {members[ext].filename!r} are the same "
                "shapefile part; the archive is ambiguous"
            )
        members[ext] = info
    return groups


def _split(name: str) -> tuple[str, str]:
    """Stem (with its folders) and lower-case extension of an entry name."""
    path = PurePosixPath(name.replace("\\", "/"))
    return str(path.with_suffix("")), path.suffix.lower()


def _no_shp_message(groups: dict[str, dict[str, ZipInfo]], label: str) -> str:
    parts = sorted(info.filename for members in groups.values() for info in members.values())
    found = f" (found only {', '.join(parts)})" if parts else ""
    return f"{label} contains no shapefile: there is no .shp file{found}"


def _require_complete(layer: LayerMembers, label: str) -> None:
    missing = [ext for ext in REQUIRED if ext not in layer.members]
    if missing:
        names = " and no ".join(_sibling_name(layer.name, ext) for ext in missing)
        raise ValidationFailed(f"{label}: {layer.name} has no {names}")


def _sibling_name(shp_name: str, ext: str) -> str:
    """The name a missing part should have had, in the ``.shp``'s letter case."""
    suffix = ext.upper() if shp_name[-4:].isupper() else ext
    return shp_name[:-4] + suffix


def _summarise_layer(
    archive: zipsafe.SafeZip, layer: LayerMembers, base: Path, label: str
) -> dict[str, Any]:
    """Extract one layer under ``base``.<ext>, read it, then delete its files."""
    files = {ext: base.with_suffix(ext) for ext in layer.members}
    try:
        for ext, info in layer.members.items():
            archive.extract(info, files[ext])
        summary = read_layer(files, layer.name)
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)
    return {"file": label, **summary}


def read_layer(files: dict[str, Path], name: str) -> dict[str, Any]:
    """Describe an extracted shapefile; unreadable content fails the upload."""
    check_headers(files, name)
    encoding = _dbf_encoding(files.get(".cpg"))
    with ExitStack() as stack:
        shp, shx, dbf = (stack.enter_context(files[ext].open("rb")) for ext in REQUIRED)
        try:
            reader = stack.enter_context(
                shapefile.Reader(
                    shp=shp, shx=shx, dbf=dbf, encoding=encoding, encodingErrors="replace"
                )
            )
            summary = _describe(reader, name)
        except _PYSHP_ERRORS as exc:
            raise ValidationFailed(f"{name} is damaged: its shapes or records could not be "
                                   f"read ({type(exc).__name__}: {exc})") from exc
    summary["crs"] = read_crs(files.get(".prj"))
    return summary


def check_headers(files: dict[str, Path], name: str) -> None:
    """Refuse, in words, a part that is not what its extension says or is cut short.

    pyshp reads these headers too, but its errors (``unpack requires a buffer
    of 4 bytes``, ``b'U'``) tell the sender nothing.
    """
    _check_main_header(files[".shp"], name, "an ESRI shapefile")
    _check_main_header(files[".shx"], _sibling_name(name, ".shx"), "a shapefile index")
    _check_dbf_header(files[".dbf"], _sibling_name(name, ".dbf"))


def _check_main_header(path: Path, label: str, kind: str) -> None:
    """The 100-byte header of a .shp or .shx: file code 9994 and the file's length."""
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(SHP_HEADER_SIZE)
    if size < SHP_HEADER_SIZE:
        raise ValidationFailed(f"{label} is not {kind}: it is {size} bytes, shorter than the "
                               f"{SHP_HEADER_SIZE}-byte header")
    code, words = struct.unpack(">i20xi", header[:28])
    if code != SHP_FILE_CODE:
        raise ValidationFailed(f"{label} is not {kind}: its header does not start with the "
                               f"shapefile file code {SHP_FILE_CODE}")
    if words * 2 > size:
        raise ValidationFailed(f"{label} is cut short: its header says {words * 2} bytes, "
                               f"the file has {size}")


def _check_dbf_header(path: Path, label: str) -> None:
    """The dBASE header: its length, and a type pyshp knows for every field."""
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(DBF_HEADER_SIZE)
        if len(header) < DBF_HEADER_SIZE:
            raise ValidationFailed(f"{label} is not a dBASE table: it is {size} bytes, shorter "
                                   f"than the {DBF_HEADER_SIZE}-byte header")
        records, length, record_size = struct.unpack("<4xIHH", header[:12])
        if not DBF_HEADER_SIZE < length <= size:
            raise ValidationFailed(f"{label} is not a dBASE table: its header says it is "
                                   f"{length} bytes long, which the file cannot hold")
        if length + records * record_size > size:
            raise ValidationFailed(f"{label} is cut short: its header says {records} records "
                                   f"of {record_size} bytes, the file has {size} bytes")
        fields = f.read(length - DBF_HEADER_SIZE)
    for number, start in enumerate(range(0, len(fields) - DBF_FIELD_SIZE + 1, DBF_FIELD_SIZE)):
        if fields[start] == DBF_HEADER_END:
            return
        kind = fields[start + 11:start + 12]
        if kind not in shapefile.FIELD_TYPE_ALIASES:
            raise ValidationFailed(f"{label} is not a dBASE table pyshp reads: its field "
                                   f"{number + 1} has the unknown type {kind.decode('latin-1')!r}")


def _describe(reader: shapefile.Reader, name: str) -> dict[str, Any]:
    if reader.shapeType not in shapefile.SHAPETYPE_LOOKUP:
        raise ValidationFailed(f"{name} has an unknown shape type {reader.shapeType}")
    records = len(reader)
    if reader.numShapes != records:
        raise ValidationFailed(
            f"{name} has {reader.numShapes} shapes but its .dbf has {records} records"
        )
    return {
        "name": name,
        "feature_count": records,
        "geometry_type": reader.shapeTypeName,
        "bbox": _bbox(reader.bbox) if records else None,
        "fields": [field.name for field in reader.fields[1:]],
    }


def _bbox(bbox: tuple[float, ...]) -> list[float] | None:
    """The header's bounding box; None when it is not finite (so not JSON)."""
    values = [float(v) for v in bbox]
    return values if all(math.isfinite(v) for v in values) else None


def _dbf_encoding(cpg: Path | None) -> str:
    """The DBF encoding a ``.cpg`` names, or UTF-8 when it names none we know.

    Read here rather than by pyshp, which reads the whole file and fails on
    a code page number such as ``1252``; field names are decoded with
    replacement anyway, so a wrong guess costs accents, not the upload.
    """
    if cpg is None:
        return "utf-8"
    with cpg.open("rb") as f:
        value = f.read(CPG_LIMIT).decode("ascii", "ignore").strip()
    if value.isdigit():
        value = f"cp{value}"
    try:
        return codecs.lookup(value).name
    except LookupError:
        return "utf-8"


def read_crs(prj: Path | None) -> dict[str, Any]:
    """The CRS as a ``.prj`` states it: its first quoted name and its WKT."""
    if prj is None:
        return {"present": False}
    with prj.open(encoding="utf-8-sig", errors="replace") as f:
        wkt = f.read(WKT_LIMIT).strip()
    if not wkt:
        return {"present": False}
    match = re.search(r'"([^"]*)"', wkt)
    return {"present": True, "name": match.group(1) if match else None, "wkt": wkt}


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():
        log.warning("could not remove extracted files under %s", folder)
