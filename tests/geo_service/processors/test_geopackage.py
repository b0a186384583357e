"""The geopackage processor on GeoPackages built with sqlite3 (tests/support/geopackages.py)."""

import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

from geo_service.processors import geopackage
from handoff.processors import ValidationFailed, installed
from handoff.testing import make_job, run_processor
from tests.support import geopackages as gpkg

WGS84 = {"srs_id": 4326, "organization": "EPSG", "organization_coordsys_id": 4326,
         "name": "WGS 84 geodetic"}


def build(path: Path, *layers: Any) -> Path:
    """A GeoPackage at ``path``; each layer is a function of the open database."""
    db = gpkg.create(path)
    for layer in layers:
        layer(db)
    db.commit()
    db.close()
    return path


def layers_of(path: Path) -> dict[str, dict[str, Any]]:
    result = run_processor(geopackage.process, [path], purpose="geopackage")
    (file,) = result["files"]
    return {layer["name"]: layer for layer in file["layers"]}


def points(db: sqlite3.Connection, table: str = "wells", **kwargs: Any) -> None:
    blobs = [gpkg.gpkg_blob(gpkg.wkb_point(x, y)) for x, y in ((1, 2), (-5, 7), (3, -1))]
    gpkg.add_features(db, table, [*blobs, None], geometry_type="POINT", **kwargs)


def test_registered_for_its_purpose() -> None:
    assert installed({}).processor("geopackage") is geopackage.process


def test_layers_with_counts_bounding_boxes_and_srs(tmp_path: Path) -> None:
    path = build(tmp_path / "survey.gpkg",
                 lambda db: points(db, bbox=(-5, -1, 3, 7), identifier="Wells"),
                 lambda db: gpkg.add_features(
                     db, "roads", [gpkg.gpkg_blob(gpkg.wkb_linestring([(0, 0), (9, 4)]),
                                                  srs_id=3035)],
                     srs_id=3035, geometry_type="LINESTRING", bbox=(0, 0, 9, 4)),
                 lambda db: gpkg.add_attributes(db, "owners", 5))

    result = run_processor(geopackage.process, [path], purpose="geopackage")

    (file,) = result["files"]
    assert (file["file"], file["version"]) == ("survey.gpkg", "1.4.0")
    assert result["feature_count"] == 4 + 1, "features layers only; attributes are not features"
    by_name = {layer["name"]: layer for layer in file["layers"]}
    assert by_name["wells"] == {
        "name": "wells", "data_type": "features", "identifier": "Wells", "feature_count": 4,
        "geometry_column": "geom", "geometry_type": "POINT", "bbox": [-5.0, -1.0, 3.0, 7.0],
        "bbox_source": "contents", "srs": WGS84}
    assert by_name["roads"]["srs"] == {"srs_id": 3035, "organization": "EPSG",
                                       "organization_coordsys_id": 3035,
                                       "name": "ETRS89-extended / LAEA Europe"}
    assert by_name["owners"] == {
        "name": "owners", "data_type": "attributes", "identifier": "owners", "feature_count": 5,
        "geometry_column": None, "geometry_type": None, "bbox": None, "bbox_source": None,
        "srs": None}


def test_without_a_bbox_in_contents_the_rtree_index_gives_it(tmp_path: Path) -> None:
    def indexed(db: sqlite3.Connection) -> None:
        points(db)
        gpkg.add_rtree(db, "wells", [(100, 200, 110, 210), (-50, 0, -40, 5)])

    wells = layers_of(build(tmp_path / "i.gpkg", indexed))["wells"]

    assert (wells["bbox"], wells["bbox_source"]) == ([-50.0, 0.0, 110.0, 210.0], "index")


def test_without_contents_or_index_the_geometries_give_it(tmp_path: Path) -> None:
    wells = layers_of(build(tmp_path / "g.gpkg", points))["wells"]

    assert (wells["bbox"], wells["bbox_source"]) == ([-5.0, -1.0, 3.0, 7.0], "geometries")


def test_computed_bbox_reads_envelopes_wkb_of_every_kind_and_byte_order(tmp_path: Path) -> None:
    ring = [(0, 0), (4, 0), (4, 4), (0, 0)]
    blobs = [
        gpkg.gpkg_blob(gpkg.wkb_point(0, 0), envelope=(-100, -100, -90, -90)),
        gpkg.gpkg_blob(gpkg.wkb_linestring([(1, 1), (50, 2)], order=">")),
        gpkg.gpkg_blob(gpkg.wkb_polygon([ring, [(1, 1), (2, 1), (2, 60), (1, 1)]])),
        gpkg.gpkg_blob(gpkg.wkb_collection(7, [gpkg.wkb_point(70, -3),
                                               gpkg.wkb_collection(4, [gpkg.wkb_point(2, 2)])])),
        gpkg.gpkg_blob(struct.pack("<BI3d", 1, 1001, 80, 0, 12345)),  # POINT Z: z is ignored
        gpkg.gpkg_blob(gpkg.wkb_point(float("nan"), float("nan"))),  # an empty point
        gpkg.gpkg_blob(gpkg.wkb_point(999, 999), empty=True),  # flagged empty
    ]
    mixed = layers_of(build(tmp_path / "m.gpkg",
                            lambda db: gpkg.add_features(db, "mixed", blobs)))["mixed"]

    assert mixed["bbox"] == [-100.0, -100.0, 80.0, 60.0]
    assert mixed["feature_count"] == len(blobs)


def test_an_empty_layer_has_no_bbox(tmp_path: Path) -> None:
    empty = layers_of(build(tmp_path / "e.gpkg",
                            lambda db: gpkg.add_features(db, "empty", [])))["empty"]

    assert (empty["feature_count"], empty["bbox"], empty["bbox_source"]) == (0, None, None)


def test_a_table_name_with_quotes_is_read_safely(tmp_path: Path) -> None:
    name = 'odd "name"; DROP TABLE gpkg_contents; --'
    layers = layers_of(build(tmp_path / "q.gpkg", lambda db: points(db, table=name)))

    assert layers[name]["feature_count"] == 4


def test_the_stored_file_is_never_written(tmp_path: Path) -> None:
    job = make_job(tmp_path, [build(tmp_path / "ro.gpkg", points)])
    stored = job.files[0].path
    before = (stored.read_bytes(), sorted(p.name for p in stored.parent.iterdir()))

    geopackage.process(job)

    assert (stored.read_bytes(), sorted(p.name for p in stored.parent.iterdir())) == before, (
        "no change, and no journal, WAL or shm file beside it")


def test_a_wal_mode_geopackage_is_read_from_its_one_file(tmp_path: Path) -> None:
    """Uploaded alone, without the -wal and -shm files SQLite would look for."""
    path = tmp_path / "wal.gpkg"
    db = gpkg.create(path)
    db.execute("PRAGMA journal_mode = WAL")
    points(db)
    db.commit()
    db.close()

    assert layers_of(path)["wells"]["feature_count"] == 4


def test_an_old_or_plain_sqlite_geopackage_has_its_version_or_none(tmp_path: Path) -> None:
    path = build(tmp_path / "v.gpkg", points)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id = {0x47503130}")  # "GP10"
    db.close()
    assert run_processor(geopackage.process, [path])["files"][0]["version"] == "1.0"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")
    db.close()
    assert run_processor(geopackage.process, [path])["files"][0]["version"] is None


def test_a_view_that_would_run_forever_is_stopped(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A smaller budget than the real one, which takes seconds to spend."""
    monkeypatch.setattr(geopackage, "VIEW_STEP_BUDGET", 2_000_000)

    def endless(db: sqlite3.Connection) -> None:
        db.execute("CREATE VIEW forever AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                   "SELECT i + 1 FROM n) SELECT i FROM n")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('forever', 'attributes', 'forever')")

    with pytest.raises(ValidationFailed, match="'forever' is a view that takes more than"):
        run_processor(geopackage.process, [build(tmp_path / "v.gpkg", endless)])


def test_a_small_view_is_read(tmp_path: Path) -> None:
    def view(db: sqlite3.Connection) -> None:
        points(db)
        db.execute("CREATE VIEW north AS SELECT * FROM wells WHERE fid < 3")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('north', 'features', 'north')")
        db.execute("INSERT INTO gpkg_geometry_columns VALUES ('north', 'geom', 'POINT', 4326, "
                   "0, 0)")

    north = layers_of(build(tmp_path / "v.gpkg", view))["north"]

    assert (north["feature_count"], north["bbox"]) == (2, [-5.0, 2.0, 1.0, 7.0])


def _no_contents(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.close()
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"PK\x03\x04 not sqlite") and p,
     r"^f\.gpkg is not a GeoPackage: it is not an SQLite database$"),
    (_no_contents, "is an SQLite database but not a GeoPackage: it has no gpkg_contents"),
    (lambda p: p.write_bytes(gpkg_header_only()) and p, r"could not be read as a GeoPackage"),
])
def test_what_is_not_a_geopackage_fails_with_a_clear_message(tmp_path: Path, make: Any,
                                                             message: str) -> None:
    path = tmp_path / "f.gpkg"
    make(path)
    with pytest.raises(ValidationFailed, match=message):
        run_processor(geopackage.process, [path])


def gpkg_header_only() -> bytes:
    """The SQLite magic and nothing a database needs after it."""
    return b"SQLite format 3\x00" + b"\xff" * 84


def test_a_layer_without_its_table_is_refused(tmp_path: Path) -> None:
    def dangling(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('gone', 'features', 'gone')")

    with pytest.raises(ValidationFailed, match="layer 'gone' is listed in gpkg_contents but"):
        run_processor(geopackage.process, [build(tmp_path / "d.gpkg", dangling)])


@pytest.mark.parametrize(("blob", "problem"), [
    (b"XX\x00\x01\x00\x00\x00\x00" + gpkg.wkb_point(1, 2), "no 'GP' header"),
    (gpkg.gpkg_blob(gpkg.wkb_point(1, 2))[:-4], "shorter than its point count"),
    (gpkg.gpkg_blob(struct.pack("<BII", 1, 2, 10**9)), "shorter than its point count"),
    (gpkg.gpkg_blob(struct.pack("<BI", 1, 99)), "unknown WKB type 99"),
    (gpkg.gpkg_blob(b"\x01"), "cut short"),
])
def test_a_broken_geometry_is_refused_naming_its_layer(tmp_path: Path, blob: bytes,
                                                       problem: str) -> None:
    path = build(tmp_path / "b.gpkg", lambda db: gpkg.add_features(db, "bad", [blob]))

    with pytest.raises(ValidationFailed, match=f"^b\\.gpkg: layer 'bad': .*{problem}"):
        run_processor(geopackage.process, [path])


def test_deeply_nested_collections_are_refused(tmp_path: Path) -> None:
    wkb = gpkg.wkb_point(1, 1)
    for _ in range(geopackage.MAX_NESTING + 2):
        wkb = gpkg.wkb_collection(7, [wkb])
    path = build(tmp_path / "n.gpkg", lambda db: gpkg.add_features(db, "deep",
                                                                  [gpkg.gpkg_blob(wkb)]))

    with pytest.raises(ValidationFailed, match="nests collections too deeply"):
        run_processor(geopackage.process, [path])
