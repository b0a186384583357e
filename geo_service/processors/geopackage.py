"""The ``geopackage`` purpose: OGC GeoPackages, summarised per layer, without GDAL.

A GeoPackage is an SQLite database, so the standard library reads it. Each
uploaded file is opened read-only and ``immutable`` (the stored bytes do not
change while the worker holds the upload's lock, so SQLite takes no locks
and never looks for a journal or WAL beside it). The layers are the rows of
``gpkg_contents``; for each: its table's row count, its bounding box and its
spatial reference system from ``gpkg_spatial_ref_sys`` (organization, its
code there, name).

The bounding box comes from the first of: the four ``gpkg_contents``
columns, the layer's R-tree index (``rtree_<table>_<column>``), or the
geometries themselves (each blob's envelope, else its WKB coordinates).
``bbox_source`` says which.

The file comes from the public, so it is read defensively: schema-defined
functions are untrusted (``trusted_schema``), table names are quoted, and
a layer that is a view (whose cost has no bound in the file's size, unlike a
table's) must finish within a fixed number of SQLite steps.
"""

import math
import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from handoff.processors import Job, ValidationFailed

SQLITE_MAGIC = b"SQLite format 3\x00"
GPKG = 0x47504B47  # "GPKG", with the version in user_version
OLD_VERSIONS = {0x47503130: "1.0", 0x47503131: "1.1"}  # "GP10", "GP11"
# SQLite virtual-machine steps a view may take, checked every STEP_CHECK.
VIEW_STEP_BUDGET = 100_000_000
STEP_CHECK = 1000
MAX_NESTING = 32

# WKB geometry types by how their body is laid out (ISO 13249-3 codes).
_POINT = {1}
_POINT_LISTS = {2, 8}  # LineString, CircularString
_RING_LISTS = {3, 17}  # Polygon, Triangle
_COLLECTIONS = {4, 5, 6, 7, 9, 10, 11, 12, 15, 16}
# GeoPackage envelope sizes by the flags' envelope code: doubles after srs_id.
_ENVELOPE_DOUBLES = {0: 0, 1: 4, 2: 6, 3: 6, 4: 8}


class BadGeometry(Exception):
    """A geometry blob that is not GeoPackage binary with WKB inside."""


def process(job: Job) -> dict[str, Any]:
    """Summarise every layer of every uploaded GeoPackage."""
    files = [summarise(file.path, file.name) for file in job.files]
    features = sum(layer["feature_count"] for f in files for layer in f["layers"]
                   if layer["data_type"] == "features")
    return {"files": files, "feature_count": features}


def summarise(path: Path, label: str) -> dict[str, Any]:
    """One file's layers; ValidationFailed if it is not a readable GeoPackage."""
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise ValidationFailed(f"{label} is not a GeoPackage: it is not an SQLite database")
    try:
        with closing(_connect(path)) as db:
            return {"file": label, **_describe(db, label)}
    except sqlite3.DatabaseError as exc:
        raise ValidationFailed(f"{label} could not be read as a GeoPackage: {exc}") from None


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    db.execute("PRAGMA trusted_schema = OFF")
    return db


def _describe(db: sqlite3.Connection, label: str) -> dict[str, Any]:
    tables = dict(db.execute("SELECT name, type FROM sqlite_master WHERE type IN "
                             "('table', 'view')").fetchall())
    for required in ("gpkg_contents", "gpkg_spatial_ref_sys"):
        if required not in tables:
            raise ValidationFailed(f"{label} is an SQLite database but not a GeoPackage: "
                                   f"it has no {required} table")
    systems = _spatial_ref_systems(db)
    columns = _geometry_columns(db) if "gpkg_geometry_columns" in tables else {}
    rows = db.execute("SELECT table_name, data_type, identifier, min_x, min_y, max_x, max_y, "
                      "srs_id FROM gpkg_contents ORDER BY table_name").fetchall()
    layers = [_layer(db, row, tables, systems, columns, label) for row in rows]
    return {"version": _version(db), "layers": layers}


def _version(db: sqlite3.Connection) -> str | None:
    """The GeoPackage version the file declares, or None for a plain SQLite file."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0] & 0xFFFFFFFF
    if application_id != GPKG:
        return OLD_VERSIONS.get(application_id)
    user_version = db.execute("PRAGMA user_version").fetchone()[0]
    return f"{user_version // 10000}.{user_version // 100 % 100}.{user_version % 100}"


def _spatial_ref_systems(db: sqlite3.Connection) -> dict[int, dict[str, Any]]:
    rows = db.execute("SELECT srs_id, organization, organization_coordsys_id, srs_name "
                      "FROM gpkg_spatial_ref_sys")
    return {srs_id: {"srs_id": srs_id, "organization": organization,
                     "organization_coordsys_id": code, "name": name}
            for srs_id, organization, code, name in rows}


def _geometry_columns(db: sqlite3.Connection) -> dict[str, tuple[str, str, int | None]]:
    rows = db.execute("SELECT table_name, column_name, geometry_type_name, srs_id "
                      "FROM gpkg_geometry_columns")
    return {table: (column, kind, srs_id) for table, column, kind, srs_id in rows}


def _layer(db: sqlite3.Connection, row: tuple[Any, ...], tables: dict[str, str],
           systems: dict[int, dict[str, Any]], columns: dict[str, tuple[str, str, int | None]],
           label: str) -> dict[str, Any]:
    name, data_type, identifier, *box, srs_id = row
    if tables.get(name) not in ("table", "view"):
        raise ValidationFailed(f"{label}: layer {name!r} is listed in gpkg_contents but has "
                               "no table")
    column, geometry_type, column_srs = columns.get(name, (None, None, None))
    with _step_budget(db, tables[name] == "view", label, name):
        count = db.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchone()[0]
        try:
            bbox, source = _bbox(db, name, column, box, tables)
        except BadGeometry as exc:
            raise ValidationFailed(f"{label}: layer {name!r}: {exc}") from None
    srs = srs_id if srs_id is not None else column_srs
    return {
        "name": name,
        "data_type": data_type,
        "identifier": identifier,
        "feature_count": count,
        "geometry_column": column,
        "geometry_type": geometry_type,
        "bbox": bbox,
        "bbox_source": source,
        "srs": None if srs is None else systems.get(srs, {"srs_id": srs, "organization": None,
                                                          "organization_coordsys_id": None,
                                                          "name": None}),
    }


@contextmanager
def _step_budget(db: sqlite3.Connection, limited: bool, label: str, name: str
                 ) -> Iterator[None]:
    """Stop a view's queries after VIEW_STEP_BUDGET steps; a table's run freely."""
    if not limited:
        yield
        return
    checks = 0

    def over_budget() -> bool:
        nonlocal checks
        checks += 1
        return checks * STEP_CHECK > VIEW_STEP_BUDGET

    db.set_progress_handler(over_budget, STEP_CHECK)
    try:
        yield
    except sqlite3.OperationalError:
        if checks * STEP_CHECK > VIEW_STEP_BUDGET:
            raise ValidationFailed(f"{label}: layer {name!r} is a view that takes more than "
                                   f"{VIEW_STEP_BUDGET} SQLite steps to read") from None
        raise
    finally:
        db.set_progress_handler(None, STEP_CHECK)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _bbox(db: sqlite3.Connection, name: str, column: str | None, box: list[Any],
          tables: dict[str, str]) -> tuple[list[float] | None, str | None]:
    if all(isinstance(v, int | float) and math.isfinite(v) for v in box):
        return [float(v) for v in box], "contents"
    if column is None:
        return None, None
    index = f"rtree_{name}_{column}"
    if index in tables:
        found = _index_bbox(db, index)
        if found is not None:
            return found, "index"
    bounds = Bounds()
    for (blob,) in db.execute(f"SELECT {_quoted(column)} FROM {_quoted(name)}"):
        if isinstance(blob, bytes):
            bounds.add_blob(blob)
    return (bounds.box(), "geometries") if bounds.box() else (None, None)


def _index_bbox(db: sqlite3.Connection, index: str) -> list[float] | None:
    """The extent an R-tree index holds; None if it is empty or cannot be read."""
    query = f"SELECT min(minx), min(miny), max(maxx), max(maxy) FROM {_quoted(index)}"
    try:
        box = db.execute(query).fetchone()
    except sqlite3.OperationalError:  # e.g. an SQLite built without the R-tree module
        return None
    return [float(v) for v in box] if None not in box else None


class Bounds:
    """The extent of GeoPackage geometry blobs, read from their envelopes or WKB."""

    def __init__(self) -> None:
        self.min_x = self.min_y = math.inf
        self.max_x = self.max_y = -math.inf

    def box(self) -> list[float] | None:
        if self.min_x > self.max_x:
            return None
        return [self.min_x, self.min_y, self.max_x, self.max_y]

    def add_blob(self, blob: bytes) -> None:
        """One ``GeoPackageBinary`` value (spec 2.1.3): header, envelope, WKB."""
        if blob[:2] != b"GP" or len(blob) < 8:
            raise BadGeometry("a geometry is not GeoPackage binary (no 'GP' header)")
        flags = blob[3]
        if flags & 0x10:  # the empty-geometry flag
            return
        order = "<" if flags & 1 else ">"
        code = (flags >> 1) & 0b111
        if code not in _ENVELOPE_DOUBLES:
            raise BadGeometry(f"a geometry has an unknown envelope code {code}")
        doubles = _ENVELOPE_DOUBLES[code]
        if doubles:
            min_x, max_x, min_y, max_y = _unpack(f"{order}4d", blob, 8)
            self._add([min_x, max_x], [min_y, max_y])
            return
        self.add_wkb(blob, 8)

    def add_wkb(self, blob: bytes, offset: int, depth: int = 0) -> int:
        """Take in the WKB geometry at ``offset``; returns the offset after it."""
        if depth > MAX_NESTING:
            raise BadGeometry("a geometry nests collections too deeply")
        order = "<" if _unpack("B", blob, offset)[0] == 1 else ">"
        kind, dims = _wkb_type(_unpack(f"{order}I", blob, offset + 1)[0])
        offset += 5
        if kind in _POINT:
            return self._points(blob, offset, order, 1, dims)
        if kind in _POINT_LISTS:
            return self._points(blob, offset + 4, order, _count(blob, offset, order), dims)
        if kind in _RING_LISTS:
            rings, offset = _count(blob, offset, order), offset + 4
            for _ in range(rings):
                offset = self._points(blob, offset + 4, order, _count(blob, offset, order), dims)
            return offset
        if kind in _COLLECTIONS:
            parts, offset = _count(blob, offset, order), offset + 4
            for _ in range(parts):
                offset = self.add_wkb(blob, offset, depth + 1)
            return offset
        raise BadGeometry(f"a geometry has the unknown WKB type {kind}")

    def _points(self, blob: bytes, offset: int, order: str, count: int, dims: int) -> int:
        end = offset + count * dims * 8
        if end > len(blob):
            raise BadGeometry("a geometry's WKB is shorter than its point count says")
        values = array("d", blob[offset:end])
        if (order == "<") != (sys.byteorder == "little"):
            values.byteswap()
        xs = [v for v in values[0::dims] if not math.isnan(v)]
        ys = [v for v in values[1::dims] if not math.isnan(v)]
        if xs and ys:
            self._add(xs, ys)
        return end

    def _add(self, xs: list[float], ys: list[float]) -> None:
        self.min_x, self.max_x = min(self.min_x, min(xs)), max(self.max_x, max(xs))
        self.min_y, self.max_y = min(self.min_y, min(ys)), max(self.max_y, max(ys))


def _wkb_type(code: int) -> tuple[int, int]:
    """Geometry type and coordinates per point, from ISO (1000s) or extended (flag) codes."""
    dims = 2 + bool(code & 0x80000000) + bool(code & 0x40000000)
    code &= 0x0FFFFFFF
    extra = code // 1000
    if extra > 3:
        raise BadGeometry(f"a geometry has the unknown WKB type {code}")
    return code % 1000, dims + (0, 1, 1, 2)[extra]


def _count(blob: bytes, offset: int, order: str) -> int:
    return int(_unpack(f"{order}I", blob, offset)[0])


def _unpack(fmt: str, blob: bytes, offset: int) -> tuple[Any, ...]:
    try:
        return struct.unpack_from(fmt, blob, offset)
    except struct.error:
        raise BadGeometry("a geometry's binary is cut short") from None
