"""GeoPackages for the tests, built with sqlite3 as the OGC standard (12-128r18) lays them out.

The required tables are created with the standard's own definitions
(Annex C): ``gpkg_spatial_ref_sys`` with its three required rows,
``gpkg_contents``, ``gpkg_geometry_columns``; feature tables hold
GeoPackageBinary blobs (a ``GP`` header, optionally an envelope, then
ISO WKB) written here with struct.
"""

import sqlite3
import struct
from collections.abc import Sequence
from pathlib import Path

GPKG_APPLICATION_ID = 0x47504B47
USER_VERSION = 10400  # 1.4.0

Point = tuple[float, float]

SCHEMA = """
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL,
  srs_id INTEGER PRIMARY KEY,
  organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL,
  definition TEXT NOT NULL,
  description TEXT
);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY,
  data_type TEXT NOT NULL,
  identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE,
  min_y DOUBLE,
  max_x DOUBLE,
  max_y DOUBLE,
  srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id)
);
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL,
  z TINYINT NOT NULL,
  m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id)
);
INSERT INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic'),
  ('WGS 84 geodetic', 4326, 'EPSG', 4326,
   'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
   || 'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]]', 'longitude/latitude');
"""

ETRS89_LAEA = ("ETRS89-extended / LAEA Europe", 3035, "EPSG", 3035, 'PROJCS["ETRS89 / LAEA"]')


def create(path: Path) -> sqlite3.Connection:
    """An empty GeoPackage: the required tables and rows, the application id, the version."""
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {USER_VERSION}")
    db.executescript(SCHEMA)
    db.execute("INSERT INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, "
               "organization_coordsys_id, definition) VALUES (?, ?, ?, ?, ?)", ETRS89_LAEA)
    return db


def wkb_point(x: float, y: float, order: str = "<") -> bytes:
    return struct.pack(f"{order}BI2d", order == "<", 1, x, y)


def wkb_linestring(points: Sequence[Point], order: str = "<") -> bytes:
    coords = [c for point in points for c in point]
    return struct.pack(f"{order}BII{len(coords)}d", order == "<", 2, len(points), *coords)


def wkb_polygon(rings: Sequence[Sequence[Point]]) -> bytes:
    body = b"".join(struct.pack("<I", len(ring)) + struct.pack(f"<{2 * len(ring)}d",
                                                               *[c for p in ring for c in p])
                    for ring in rings)
    return struct.pack("<BII", 1, 3, len(rings)) + body


def wkb_collection(kind: int, parts: Sequence[bytes]) -> bytes:
    return struct.pack("<BII", 1, kind, len(parts)) + b"".join(parts)


def gpkg_blob(wkb: bytes, srs_id: int = 4326, envelope: Sequence[float] | None = None,
              empty: bool = False) -> bytes:
    """GeoPackageBinary: magic, version 0, flags (little-endian, envelope code, empty)."""
    flags = 1 | (0b10 if envelope is not None else 0) | (0x10 if empty else 0)
    header = b"GP" + bytes([0, flags]) + struct.pack("<i", srs_id)
    if envelope is not None:
        min_x, min_y, max_x, max_y = envelope
        header += struct.pack("<4d", min_x, max_x, min_y, max_y)
    return header + wkb


def add_features(db: sqlite3.Connection, table: str, blobs: Sequence[bytes | None], *,
                 srs_id: int = 4326, geometry_type: str = "GEOMETRY",
                 bbox: Sequence[float] | None = None, identifier: str | None = None) -> None:
    """A feature table with one row per blob, registered in contents and geometry columns."""
    quoted = '"' + table.replace('"', '""') + '"'
    db.execute(f"CREATE TABLE {quoted} (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom BLOB, "
               "name TEXT)")
    db.executemany(f"INSERT INTO {quoted} (geom, name) VALUES (?, ?)",
                   [(blob, f"f{n}") for n, blob in enumerate(blobs)])
    min_x, min_y, max_x, max_y = bbox if bbox is not None else (None, None, None, None)
    db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, min_x, min_y, "
               "max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?)",
               (table, identifier or table, min_x, min_y, max_x, max_y, srs_id))
    db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
               (table, geometry_type, srs_id))


def add_rtree(db: sqlite3.Connection, table: str, boxes: Sequence[Sequence[float]]) -> None:
    """The spatial index GDAL and others keep per geometry column (extension gpkg_rtree_index)."""
    db.execute(f'CREATE VIRTUAL TABLE "rtree_{table}_geom" USING rtree(id, minx, maxx, miny, '
               "maxy)")
    db.executemany(f'INSERT INTO "rtree_{table}_geom" VALUES (?, ?, ?, ?, ?)',
                   [(n + 1, b[0], b[2], b[1], b[3]) for n, b in enumerate(boxes)])


def add_attributes(db: sqlite3.Connection, table: str, rows: int) -> None:
    db.execute(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, value TEXT)')
    db.executemany(f'INSERT INTO "{table}" (value) VALUES (?)', [(str(n),) for n in range(rows)])
    db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
               "VALUES (?, 'attributes', ?)", (table, table))
