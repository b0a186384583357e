"""Processors run by the real worker on uploads that went through the real API."""

import json

import pytest

from tests.geo_service.store import disk
from tests.support import geopackages
from tests.support.shapes import make_points_zip, make_zip, points_layer


def test_a_zipped_shapefile_is_summarised(stack, tmp_path):
    points = [(4.35, 50.85), (2.35, 48.86), (13.40, 52.52), (-3.70, 40.42)]
    archive = make_points_zip(tmp_path / "capitals.zip", points, name="capitals")
    with open(archive, "rb") as handle:
        response = stack.upload([("capitals.zip", handle)], purpose="shapefile")
    assert response.status_code == 202, response.text

    status = stack.wait_for(response.json()["id"])
    assert status["status"] == "done", status
    (layer,) = status["result"]["layers"]
    assert layer["feature_count"] == 4
    assert layer["geometry_type"] == "POINT"
    assert layer["bbox"] == pytest.approx([-3.70, 40.42, 13.40, 52.52])
    assert layer["crs"]["present"] is True


def test_a_zip_slip_entry_fails_the_upload_and_writes_nothing_outside(stack, tmp_path):
    entries = {f"../evil{ext}": data for ext, data in
               ((name[-4:], data) for name, data in points_layer([(1.0, 2.0)]).items())}
    archive = make_zip(tmp_path / "evil.zip", entries)
    before = set(stack.root.rglob("*"))
    with open(archive, "rb") as handle:
        response = stack.upload([("evil.zip", handle)], purpose="shapefile")
    assert response.status_code == 202, response.text

    status = stack.wait_for(response.json()["id"])
    assert status["status"] == "failed"
    assert ".." in status["error"]
    created = set(stack.root.rglob("*")) - before
    folder = stack.uploads / response.json()["id"]
    assert [p for p in created if "evil" in p.name] == []
    assert all(folder in p.parents or p == folder or disk.LOCKS in p.parts
               or p.suffix == ".log" for p in created)


def test_a_geojson_file_is_summarised(stack):
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": c}}
        for c in ([4.35, 50.85], [2.35, 48.86], [13.40, 52.52])]}
    response = stack.upload([("capitals.geojson", json.dumps(collection).encode())],
                            purpose="geojson")
    assert response.status_code == 202, response.text

    status = stack.wait_for(response.json()["id"])
    assert status["status"] == "done", status
    (summary,) = status["result"]["files"]
    assert (summary["feature_count"], summary["geometry_types"]) == (3, {"Point": 3})
    assert summary["bbox"] == pytest.approx([2.35, 48.86, 13.40, 52.52])


def test_a_file_that_is_not_geojson_fails_with_the_reason(stack):
    response = stack.upload([("roads.geojson", b"<kml></kml>")], purpose="geojson")
    assert response.status_code == 202, response.text

    status = stack.wait_for(response.json()["id"])
    assert status["status"] == "failed"
    assert status["error"].startswith("roads.geojson is not valid JSON")


def test_a_geopackage_is_summarised(stack, tmp_path):
    path = tmp_path / "wells.gpkg"
    db = geopackages.create(path)
    blobs = [geopackages.gpkg_blob(geopackages.wkb_point(x, y)) for x, y in ((1, 2), (3, 5))]
    geopackages.add_features(db, "wells", blobs, geometry_type="POINT")
    db.commit()
    db.close()
    with open(path, "rb") as handle:
        response = stack.upload([("wells.gpkg", handle)], purpose="geopackage")
    assert response.status_code == 202, response.text

    status = stack.wait_for(response.json()["id"])
    assert status["status"] == "done", status
    (layer,) = status["result"]["files"][0]["layers"]
    assert (layer["name"], layer["feature_count"], layer["bbox"]) == ("wells", 2,
                                                                      [1.0, 2.0, 3.0, 5.0])
    assert layer["srs"]["organization_coordsys_id"] == 4326
