"""The geojson processor on files written here with json, including one too big to load."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from geo_service.processors import geojson
from handoff.processors import ValidationFailed, installed
from handoff.testing import run_processor
from handoff.units import MiB

CRS = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3035"}}


def feature(geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def point(x: float, y: float, *more: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [x, y, *more]}


def summary(document: Any) -> dict[str, Any]:
    result = run_processor(geojson.process, {"data.geojson": json.dumps(document).encode()})
    (file,) = result["files"]
    assert result["feature_count"] == file["feature_count"]
    return file


def test_registered_for_its_purpose() -> None:
    assert installed({}).processor("geojson") is geojson.process


def test_a_feature_collection_is_summarised() -> None:
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [5, -1], [3, 9], [0, 0]]]}
    document = {"type": "FeatureCollection", "crs": CRS, "features": [
        feature(point(1.5, 2.5), name="a"),
        feature(polygon),
        feature(None),
        feature({"type": "LineString", "coordinates": [[-4, 3, 700], [1, 1, -5]]}),
        feature(point(1, 1)),
    ]}

    assert summary(document) == {
        "file": "data.geojson",
        "type": "FeatureCollection",
        "feature_count": 5,
        "geometry_types": {"LineString": 1, "Point": 2, "Polygon": 1},
        "without_geometry": 1,
        "bbox": [-4.0, -1.0, 5.0, 9.0],
        "crs": CRS,
    }


def test_member_order_does_not_matter() -> None:
    """JSON objects are unordered: "type" may come last, after everything it explains."""
    document = {"features": [{"geometry": point(3, 4), "properties": {}, "type": "Feature"}],
                "type": "FeatureCollection"}

    assert summary(document)["geometry_types"] == {"Point": 1}
    assert summary(document)["bbox"] == [3.0, 4.0, 3.0, 4.0]


def test_properties_that_look_like_geometry_are_left_alone() -> None:
    look_alike = {"type": "Circle", "coordinates": ["far", "away"], "geometry": {"type": "x"}}
    document = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": point(1, 2), "properties": look_alike}]}

    assert summary(document)["bbox"] == [1.0, 2.0, 1.0, 2.0]


def test_a_geometry_collection_counts_once_with_its_parts_in_the_bbox() -> None:
    collection = {"type": "GeometryCollection", "geometries": [
        point(10, 20), {"type": "GeometryCollection", "geometries": [point(-10, 5)]}]}
    document = {"type": "FeatureCollection", "features": [feature(collection)]}

    result = summary(document)
    assert result["geometry_types"] == {"GeometryCollection": 1}
    assert result["bbox"] == [-10.0, 5.0, 10.0, 20.0]


def test_a_single_feature_is_one_feature() -> None:
    result = summary(feature({"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}))

    assert (result["type"], result["feature_count"], result["geometry_types"]) == (
        "Feature", 1, {"MultiPoint": 1})
    assert result["bbox"] == [1.0, 2.0, 3.0, 4.0]


def test_a_feature_without_geometry() -> None:
    result = summary(feature(None))

    assert (result["feature_count"], result["without_geometry"], result["bbox"]) == (1, 1, None)


def test_a_bare_geometry_is_one_feature_of_its_type() -> None:
    result = summary({"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 3], [0, 0]]]})

    assert (result["type"], result["feature_count"], result["geometry_types"]) == (
        "Polygon", 1, {"Polygon": 1})
    assert result["bbox"] == [0.0, 0.0, 2.0, 3.0]


def test_an_empty_collection() -> None:
    result = summary({"type": "FeatureCollection", "features": []})

    assert (result["feature_count"], result["bbox"], result["crs"]) == (0, None, None)


def test_a_byte_order_mark_is_tolerated() -> None:
    data = b"\xef\xbb\xbf" + json.dumps(point(1, 2)).encode()

    result = run_processor(geojson.process, {"bom.json": data})

    assert result["files"][0]["bbox"] == [1.0, 2.0, 1.0, 2.0]


def test_every_file_is_summarised_and_counted() -> None:
    one = {"type": "FeatureCollection", "features": [feature(point(0, 0))] * 3}
    two = feature(point(1, 1))

    result = run_processor(geojson.process, {"one.json": json.dumps(one).encode(),
                                             "two.json": json.dumps(two).encode()})

    assert [f["file"] for f in result["files"]] == ["one.json", "two.json"]
    assert result["feature_count"] == 4


@pytest.mark.parametrize(("content", "message"), [
    (b"", r"^f\.json is not valid JSON: parse error: premature EOF$"),
    (b"roads.shp", r"^f\.json is not valid JSON: lexical error"),
    (b'{"type": "Point", "coordinates": [1, 2]} {}', r"is not valid JSON: .*trailing garbage"),
    (b'{"type": "Point", "coordinates": [1, 2], "name": "\xff"}', r"is not valid JSON"),
    (b"[1, 2]", r"^f\.json is JSON but not an object, so not GeoJSON$"),
    (b'{"features": []}', r'^f\.json has no "type" member, so it is not GeoJSON$'),
    (b'{"type": "Topology", "objects": {}}', r"has type 'Topology', which is not a GeoJSON"),
    (b'{"type": 7}', r'has a "type" member that is not a string'),
    (b'{"type": "FeatureCollection"}', r'is a FeatureCollection without a "features" array'),
    (b'{"type": "FeatureCollection", "features": {}}', r'"features" member that is not an'),
    (b'{"type": "FeatureCollection", "features": [1]}', r"^f\.json: features\[0\] is not an"),
    (b'{"type": "FeatureCollection", "features": [{"type": "Feature"}, {"type": "Thing"}]}',
     r"^f\.json: features\[1\] is not a Feature \(its \"type\" is 'Thing'\)$"),
    (b'{"type": "Feature", "geometry": {"type": "Circle", "coordinates": [0, 0]}}',
     r"^f\.json: the geometry has a geometry of unknown type 'Circle'$"),
    (b'{"type": "Feature", "geometry": "POINT (1 2)"}', r"neither an object nor null"),
    (b'{"type": "Point", "coordinates": [1]}', r"has a position with a single number"),
    (b'{"type": "Point", "coordinates": ["1", "2"]}', r"coordinates that are not numbers"),
    (b'{"type": "Point", "coordinates": [1e999, 0]}', r"not valid JSON: .*overflow"),
    (b'{"type": "Point", "x": ' + b"[" * 600 + b"]" * 600 + b"}", r"nested deeper than"),
    (b'{"type": "Point", "x": {"' + b"k" * 1200 + b'": 1}}', r"member names too long"),
    (b'{"type": "Point", "crs": {"a": [' + b"1," * 2000 + b'1]}}', r"crs member too large"),
])
def test_what_is_not_geojson_fails_with_a_clear_message(content: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        run_processor(geojson.process, {"f.json": content})


def write_collection(path: Path, features: int) -> int:
    """A FeatureCollection written a feature at a time; returns its size in bytes."""
    ring = [[x * 0.001, x * 0.002] for x in range(40)]
    with path.open("w") as out:
        out.write('{"type": "FeatureCollection", "features": [')
        for n in range(features):
            out.write("," if n else "")
            json.dump(feature({"type": "Polygon", "coordinates": [[*ring, [n, -n]]]}, n=n), out)
        out.write("]}")
    return path.stat().st_size


PEAK_GROWTH = """
import json, resource, sys
from pathlib import Path
from geo_service.processors import geojson
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = geojson.summarise(Path(sys.argv[1]), "large.geojson")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth": (after - before) * 1024, "result": result}))
"""


def test_memory_stays_flat_however_large_the_file(tmp_path: Path) -> None:
    """json.load of this file would take several times its size; the stream takes a little.

    Measured as the peak resident size of a fresh process, before and after.
    """
    path = tmp_path / "large.geojson"
    size = write_collection(path, 8000)
    assert size > 6 * MiB

    out = subprocess.run([sys.executable, "-c", PEAK_GROWTH, str(path)], capture_output=True,
                         text=True, check=True).stdout
    measured = json.loads(out)

    assert measured["result"]["feature_count"] == 8000
    assert measured["result"]["bbox"] == [0.0, -7999.0, 7999.0, 0.078]
    assert measured["growth"] < size / 4, f"peak grew {measured['growth']} bytes"
