"""The geojson processor's depth guard: deep nesting is refused before the parser sees it."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from geo_service.processors import geojson
from geo_service.processors.geojson import MAX_DEPTH, DepthGuard
from handoff.processors import ValidationFailed
from handoff.testing import run_processor
from handoff.units import MiB
from tests.support.nested_geojson import POSITIONS, nested, too_deep_at

PIECES = [1, 2, 3, 7, 64 * 1024]


def read_all(data: bytes, size: int, limit: int = MAX_DEPTH) -> DepthGuard:
    guard = DepthGuard(io.BytesIO(data), "f.json", limit=limit)
    while guard.read(size):
        pass
    return guard


@pytest.mark.parametrize("position", POSITIONS)
def test_deep_nesting_anywhere_fails_naming_the_depth_and_the_byte(position: str) -> None:
    document = nested(position, 20_000)

    with pytest.raises(ValidationFailed) as refused:
        run_processor(geojson.process, {"f.json": document})

    assert str(refused.value) == (
        f"f.json is nested deeper than {MAX_DEPTH} levels at byte "
        f"{too_deep_at(document, MAX_DEPTH)}, too deep to be GeoJSON")


def test_the_byte_counts_from_the_start_of_the_file_with_its_byte_order_mark() -> None:
    document = nested("top-level array", 500)

    with pytest.raises(ValidationFailed, match=f"at byte {MAX_DEPTH + 3},"):
        run_processor(geojson.process, {"f.json": b"\xef\xbb\xbf" + document})


@pytest.mark.parametrize("size", PIECES)
def test_exactly_the_limit_passes_and_one_more_level_does_not(size: int) -> None:
    assert read_all(nested("top-level array", MAX_DEPTH), size).depth == 0

    with pytest.raises(ValidationFailed, match=f"at byte {MAX_DEPTH},"):
        read_all(nested("top-level array", MAX_DEPTH + 1), size)


@pytest.mark.parametrize("size", PIECES)
def test_brackets_in_strings_do_not_count(size: int) -> None:
    document = json.dumps({"a": "[[[[{{{{", "b": ["{[", "x\\[[[", 'say "[[["']}).encode()

    assert read_all(document, size, limit=2).depth == 0


@pytest.mark.parametrize("size", PIECES)
def test_an_escaped_quote_does_not_end_a_string(size: int) -> None:
    # Were \" taken as the end of the string, its ]]]] would close the arrays that follow.
    document = json.dumps(['"]]]]', [[[0]]]]).encode()
    assert document.startswith(b'["\\"]]]]"')

    with pytest.raises(ValidationFailed, match="nested deeper than 3 levels at byte 13,"):
        read_all(document, size, limit=3)


@pytest.mark.parametrize("size", PIECES)
def test_an_escaped_backslash_does_end_a_string(size: int) -> None:
    # Were the closing quote after \\ taken as escaped, the [[[[ after it would be in a string.
    document = json.dumps(["\\", [[[[0]]]]]).encode()

    with pytest.raises(ValidationFailed, match="nested deeper than 3 levels at byte 9,"):
        read_all(document, size, limit=3)


@pytest.mark.parametrize("size", PIECES)
def test_a_long_string_over_many_reads_is_skipped_whole(size: int) -> None:
    document = b'[["' + b'\\"[' * 5000 + b'"], [[1]]]'

    assert read_all(document, size, limit=3).depth == 0
    with pytest.raises(ValidationFailed, match="levels at byte"):
        read_all(document, size, limit=2)


def test_nested_geometry_collections_and_multipolygons_still_read() -> None:
    square = [[[0, 0], [4, 0], [4, 4], [0, 0]]]
    inner = {"type": "GeometryCollection", "geometries": [
        {"type": "MultiPolygon", "coordinates": [square, [[[5, 5], [6, 5], [6, 6], [5, 5]]]]}]}
    outer = {"type": "GeometryCollection", "geometries": [inner, {"type": "Point",
                                                                  "coordinates": [-1, 9]}]}
    document = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"deep": {"a": [[{"b": [[1]]}]]}}, "geometry": outer}]}

    result = run_processor(geojson.process, {"f.json": json.dumps(document).encode()})

    assert result["files"][0]["bbox"] == [-1.0, 0.0, 6.0, 9.0]
    assert result["files"][0]["geometry_types"] == {"GeometryCollection": 1}


PEAK_GROWTH = """
import resource, sys
from pathlib import Path
from geo_service.processors import geojson
from handoff.processors import ValidationFailed
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    geojson.summarise(Path(sys.argv[1]), "n.geojson")
except ValidationFailed as exc:
    print(exc, file=sys.stderr)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_a_file_of_100000_brackets_costs_no_memory(tmp_path: Path) -> None:
    path = tmp_path / "n.geojson"
    path.write_bytes(nested("top-level array", 100_000))

    run = subprocess.run([sys.executable, "-c", PEAK_GROWTH, str(path)], capture_output=True,
                         text=True, check=True)

    assert "nested deeper than" in run.stderr
    assert int(run.stdout) < 4 * MiB, f"peak grew {run.stdout} bytes"
