"""The shapefile processor on real pyshp-written layers and on hostile zips."""

import json
import re
import struct
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import shapefile as pyshp

from geo_service.processors import shapefile, zipsafe
from handoff import testing
from handoff.config import ConfigError
from handoff.processors import Job, ValidationFailed, installed
from handoff.units import MiB
from tests.support import shapes

LIMITS = {"zip_max_uncompressed": 100 * MiB, "zip_max_entries": 50}
POINTS = [(1.5, 2.0), (-3.0, 4.25), (10.0, -7.5)]
SQUARE = [(0.0, 0.0), (0.0, 2.0), (2.0, 2.0), (2.0, 0.0), (0.0, 0.0)]
TRIANGLE = [(5.0, 5.0), (6.0, 9.0), (8.0, 5.0), (5.0, 5.0)]
BOMB_SIZE = 200 * MiB


def make_job(root: Path, *archives: Path, limits: dict[str, int] | None = None) -> Job:
    """A job over the archives, stored as the geo service stores them, with zip limits."""
    settings = {name: str(value) for name, value in (limits or LIMITS).items()}
    return testing.make_job(root, list(archives), purpose="shapefile", settings=settings)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def leftovers(job: Job) -> list[Path]:
    return list(job.work_dir.rglob("*")) if job.work_dir.exists() else []


@pytest.fixture
def extractions(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every SafeZip.extract call: entry name, destination, budget spent after it."""
    calls: list[dict[str, Any]] = []
    original = zipsafe.SafeZip.extract

    def spy(self: zipsafe.SafeZip, info: Any, dest: Path) -> None:
        call = {"entry": info.filename, "dest": dest, "used": None}
        calls.append(call)
        try:
            original(self, info, dest)
        finally:
            call["used"] = self.budget.used

    monkeypatch.setattr(zipsafe.SafeZip, "extract", spy)
    return calls


@pytest.fixture(scope="module")
def honest_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes.make_bomb_zip(tmp_path_factory.mktemp("bomb") / "bomb.zip", BOMB_SIZE)


@pytest.fixture(scope="module")
def lying_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lie") / "lie.zip"
    return shapes.make_bomb_zip(path, BOMB_SIZE, claimed_size=1000)


def test_registered_for_its_purpose() -> None:
    assert installed({}).processor("shapefile") is shapefile.process


def test_zip_limits_come_from_its_settings_with_defaults() -> None:
    assert shapefile.zip_limits({}) == shapefile.ZipLimits(10_000, 4 * 1024**3)
    assert shapefile.zip_limits({"zip_max_entries": "7", "zip_max_uncompressed": "2MiB"}) == (
        shapefile.ZipLimits(7, 2 * MiB))


@pytest.mark.parametrize(("name", "raw"), [("zip_max_entries", "many"),
                                           ("zip_max_entries", "0"),
                                           ("zip_max_uncompressed", "5 parsecs")])
def test_a_bad_limit_names_its_variable(name: str, raw: str) -> None:
    """Not ValidationFailed: the job is retried, so fixing the setting saves the upload."""
    with pytest.raises(ConfigError, match=f"^HANDOFF_PROCESSOR_SHAPEFILE_{name.upper()}="):
        shapefile.zip_limits({name: raw})


def test_the_worker_hands_it_its_variables() -> None:
    environ = {"HANDOFF_PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES": "12"}
    assert shapefile.zip_limits(installed(environ).settings("shapefile")).max_entries == 12


def test_points_layer_summary(tmp_path: Path) -> None:
    job = make_job(tmp_path, shapes.make_points_zip(tmp_path / "pts.zip", POINTS))

    result = shapefile.process(job)

    xs, ys = [x for x, _ in POINTS], [y for _, y in POINTS]
    assert result == {
        "feature_count": 3,
        "layers": [
            {
                "file": "pts.zip",
                "name": "points.shp",
                "feature_count": 3,
                "geometry_type": "POINT",
                "bbox": [min(xs), min(ys), max(xs), max(ys)],
                "fields": shapes.POINT_FIELDS,
                "crs": {"present": True, "name": "GCS_WGS_1984", "wkt": shapes.PRJ_WGS84},
            }
        ],
    }
    json.dumps(result)


def test_without_prj_the_crs_is_absent(tmp_path: Path) -> None:
    job = make_job(tmp_path, shapes.make_points_zip(tmp_path / "p.zip", POINTS, prj=False))
    assert shapefile.process(job)["layers"][0]["crs"] == {"present": False}


def test_prj_name_and_wkt_truncation(tmp_path: Path) -> None:
    wkt = 'GEOGCRS["WGS 84",DATUM["World Geodetic System 1984"' + ",X" * 3000 + "]"
    entries = {**shapes.points_layer(POINTS, prj=False), "points.prj": wkt.encode()}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "p.zip", entries))

    crs = shapefile.process(job)["layers"][0]["crs"]

    assert crs == {"present": True, "name": "WGS 84", "wkt": wkt[:2000]}


def test_polygons_in_a_subfolder(tmp_path: Path) -> None:
    archive = shapes.make_polygon_zip(tmp_path / "z.zip", [SQUARE, TRIANGLE], folder="data/sub")
    job = make_job(tmp_path, archive)

    layer = shapefile.process(job)["layers"][0]

    assert layer["name"] == "data/sub/polygons.shp"
    assert layer["geometry_type"] == "POLYGON"
    assert layer["feature_count"] == 2
    assert layer["bbox"] == [0.0, 0.0, 8.0, 9.0]
    assert layer["fields"] == shapes.POLYGON_FIELDS


def test_every_layer_of_every_file_is_reported(tmp_path: Path) -> None:
    both = {
        **shapes.points_layer(POINTS, name="wells", folder="a"),
        **shapes.polygon_layer([SQUARE], name="parcels", folder="b"),
    }
    first = shapes.make_zip(tmp_path / "first.zip", both)
    second = shapes.make_points_zip(tmp_path / "second.zip", POINTS[:1], name="one")
    job = make_job(tmp_path, first, second)

    result = shapefile.process(job)

    summary = [(lay["file"], lay["name"], lay["feature_count"]) for lay in result["layers"]]
    assert summary == [
        ("first.zip", "a/wells.shp", 3),
        ("first.zip", "b/parcels.shp", 1),
        ("second.zip", "one.shp", 1),
    ]
    assert result["feature_count"] == 5


def test_extensions_match_in_any_case_and_content_decides_zipness(tmp_path: Path) -> None:
    upper = {
        name.replace("points.", "ROADS.").upper(): data
        for name, data in shapes.points_layer(POINTS).items()
    }
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "roads.dat", upper))

    layer = shapefile.process(job)["layers"][0]

    assert (layer["name"], layer["feature_count"]) == ("ROADS.SHP", 3)
    assert layer["crs"]["present"] is True


def test_empty_layer_has_no_bbox(tmp_path: Path) -> None:
    job = make_job(tmp_path, shapes.make_polygon_zip(tmp_path / "e.zip", []))
    layer = shapefile.process(job)["layers"][0]
    assert (layer["feature_count"], layer["bbox"]) == (0, None)


def test_cpg_code_page_decodes_field_names(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "h"
        with pyshp.Writer(base, shapeType=pyshp.POINT, encoding="cp1252") as w:
            w.field("HÖHE", "N", size=5)
            w.point(1, 1)
            w.record(3)
        entries = {
            f"h{ext}": base.with_suffix(ext).read_bytes() for ext in (".shp", ".shx", ".dbf")
        }
    entries["h.cpg"] = b"1252\r\n"
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "h.zip", entries))

    assert shapefile.process(job)["layers"][0]["fields"] == ["HÖHE"]


def test_only_needed_members_are_extracted_under_chosen_names(
    tmp_path: Path, extractions: list[dict[str, Any]]
) -> None:
    entries = {
        **shapes.points_layer(POINTS, name="roads", folder="x"),
        "x/roads.cpg": b"UTF-8",
        "x/roads.sbn": b"spatial index",
        "x/roads.shp.xml": b"<metadata/>",
        "README.txt": b"hello",
    }
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "r.zip", entries))

    shapefile.process(job)

    assert sorted(call["entry"] for call in extractions) == [
        "x/roads.cpg",
        "x/roads.dbf",
        "x/roads.prj",
        "x/roads.shp",
        "x/roads.shx",
    ]
    for call in extractions:
        assert call["dest"].parent.parent == job.work_dir
        assert re.fullmatch(r"\d+\.(shp|shx|dbf|prj|cpg)", call["dest"].name)
    assert leftovers(job) == []


def test_work_dir_is_empty_afterwards_even_with_stale_files(tmp_path: Path) -> None:
    job = make_job(tmp_path, shapes.make_points_zip(tmp_path / "p.zip", POINTS))
    (job.work_dir / "0").mkdir(parents=True)
    (job.work_dir / "0" / "0.shp").write_bytes(b"left by an interrupted attempt")

    assert shapefile.process(job)["feature_count"] == 3
    assert job.work_dir.is_dir()
    assert leftovers(job) == []


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ({"roads.dbf"}, "roads.zip: roads.shp has no roads.dbf"),
        ({"roads.shx"}, "roads.zip: roads.shp has no roads.shx"),
        ({"roads.shx", "roads.dbf"}, "roads.zip: roads.shp has no roads.shx and no roads.dbf"),
    ],
)
def test_incomplete_layer_names_what_is_missing(
    tmp_path: Path, drop: set[str], message: str
) -> None:
    entries = {k: v for k, v in shapes.points_layer(POINTS, name="roads").items() if k not in drop}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "roads.zip", entries))
    with pytest.raises(ValidationFailed) as failure:
        shapefile.process(job)
    assert str(failure.value) == message


def test_one_incomplete_layer_fails_the_upload(tmp_path: Path) -> None:
    good = shapes.points_layer(POINTS, name="good")
    bad = {k: v for k, v in shapes.points_layer(POINTS, name="bad").items() if k != "bad.dbf"}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "two.zip", {**good, **bad}))
    with pytest.raises(ValidationFailed, match=r"bad\.shp has no bad\.dbf"):
        shapefile.process(job)


def test_zip_without_shp(tmp_path: Path) -> None:
    entries = {"notes/readme.txt": b"x", "roads.dbf": b"y"}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "n.zip", entries))
    with pytest.raises(
        ValidationFailed, match=r"n\.zip contains no shapefile.*found only roads\.dbf"
    ):
        shapefile.process(job)


def test_same_part_twice_is_ambiguous(tmp_path: Path) -> None:
    entries = {**shapes.points_layer(POINTS, name="a"), "a.SHP": b"other"}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "d.zip", entries))
    with pytest.raises(ValidationFailed, match="ambiguous"):
        shapefile.process(job)


def test_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "roads.zip"
    fake.write_bytes(b"roads.shp,roads.dbf\n" * 100)
    job = make_job(tmp_path, shapes.make_points_zip(tmp_path / "ok.zip", POINTS), fake)
    with pytest.raises(ValidationFailed, match=r"^roads\.zip is not a zip archive$"):
        shapefile.process(job)
    assert leftovers(job) == []


def _assert_rejected_untouched(
    tmp_path: Path, job: Job, extractions: list[dict[str, Any]], match: str
) -> None:
    """The archive is refused before any member is extracted and nothing changed."""
    before = tree(tmp_path)
    with pytest.raises(ValidationFailed, match=match):
        shapefile.process(job)
    assert extractions == []
    assert tree(tmp_path) == before


@pytest.mark.parametrize("evil", ["../evil.shp", "sub/../../evil.shp", "..\\evil.shp"])
def test_zip_slip_dotdot_is_rejected_before_extraction(
    tmp_path: Path, extractions: list[dict[str, Any]], evil: str
) -> None:
    entries = {**shapes.points_layer(POINTS), evil: b"escaped"}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "slip.zip", entries))

    _assert_rejected_untouched(tmp_path, job, extractions, "'..' path component")

    assert not list(tmp_path.rglob("*evil*"))
    for folder in (job.work_dir, *job.work_dir.parents[:5]):
        assert not (folder / "evil.shp").exists()


@pytest.mark.parametrize(
    ("name", "problem"), [("absolute", "absolute path"), ("drive", "drive letter")]
)
def test_zip_slip_absolute_and_drive_paths(
    tmp_path: Path, extractions: list[dict[str, Any]], name: str, problem: str
) -> None:
    target = Path(tempfile.gettempdir()) / f"handoff-{uuid.uuid4().hex}.shp"
    evil = str(target) if name == "absolute" else f"C:{target}"
    entries = {**shapes.points_layer(POINTS), evil: b"escaped"}
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "abs.zip", entries))

    _assert_rejected_untouched(tmp_path, job, extractions, problem)

    assert not target.exists()


def test_symlink_entry_is_rejected(tmp_path: Path, extractions: list[dict[str, Any]]) -> None:
    layer = shapes.points_layer(POINTS)
    archive = shapes.make_symlink_zip(tmp_path / "l.zip", "link.prj", "/etc/passwd", layer)
    job = make_job(tmp_path, archive)
    _assert_rejected_untouched(tmp_path, job, extractions, "'link.prj' is a symbolic link")


def test_too_many_entries(tmp_path: Path, extractions: list[dict[str, Any]]) -> None:
    job = make_job(
        tmp_path,
        shapes.make_points_zip(tmp_path / "p.zip", POINTS),
        limits={**LIMITS, "zip_max_entries": 3},
    )
    _assert_rejected_untouched(
        tmp_path, job, extractions, "has 4 entries, more than the limit of 3"
    )


def test_encrypted_entry(tmp_path: Path, extractions: list[dict[str, Any]]) -> None:
    archive = shapes.make_points_zip(tmp_path / "p.zip", POINTS)
    shapes.mark_encrypted(archive, "points.dbf")
    job = make_job(tmp_path, archive)
    _assert_rejected_untouched(tmp_path, job, extractions, "'points.dbf' is encrypted")


def test_declared_size_bomb_is_refused_without_decompressing(
    tmp_path: Path, extractions: list[dict[str, Any]], honest_bomb: Path
) -> None:
    job = make_job(tmp_path, honest_bomb, limits={**LIMITS, "zip_max_uncompressed": 100 * MiB})
    _assert_rejected_untouched(
        tmp_path, job, extractions, f"decompress to {BOMB_SIZE + 200} bytes, more than the limit"
    )


def test_lying_header_bomb_never_produces_more_than_it_declared(
    tmp_path: Path, extractions: list[dict[str, Any]], lying_bomb: Path
) -> None:
    """Headers claim 1000 bytes for a 200 MiB member, so the declared check passes.

    What stops it is zipfile itself: it yields no more than the declared
    size, and the CRC of that prefix cannot match. The test pins the outcome:
    a ValidationFailed, and almost nothing decompressed.
    """
    limit = 10 * MiB
    job = make_job(tmp_path, lying_bomb, limits={**LIMITS, "zip_max_uncompressed": limit})

    with pytest.raises(ValidationFailed, match=r"'bomb\.shp' is corrupt.*CRC"):
        shapefile.process(job)

    assert [call["entry"] for call in extractions] == ["bomb.shp"]
    assert extractions[0]["used"] <= 1000
    assert leftovers(job) == []


def test_streaming_counter_stops_a_bomb_the_header_check_missed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extractions: list[dict[str, Any]],
    honest_bomb: Path,
) -> None:
    """The declared-size check is blinded, as by headers that lie in a way zipfile
    believes; the byte counter must still stop extraction at the limit.
    """
    original_vet = zipsafe.vet
    monkeypatch.setattr(
        zipsafe,
        "vet",
        lambda infos, label, max_entries, _limit: original_vet(infos, label, max_entries, 2**62),
    )
    limit = 10 * MiB
    job = make_job(tmp_path, honest_bomb, limits={**LIMITS, "zip_max_uncompressed": limit})

    with pytest.raises(
        ValidationFailed, match=f"decompressing produced more than the limit of {limit}"
    ):
        shapefile.process(job)

    assert extractions[-1]["entry"] == "bomb.shp"
    assert limit < extractions[-1]["used"] <= limit + zipsafe.CHUNK_SIZE
    assert leftovers(job) == []


def test_bad_crc_fails_and_cleans_up(tmp_path: Path, extractions: list[dict[str, Any]]) -> None:
    archive = shapes.make_zip(
        tmp_path / "c.zip", shapes.points_layer(POINTS), compression=shapes.zipfile.ZIP_STORED
    )
    shapes.corrupt_member(archive, "points.dbf")
    job = make_job(tmp_path, archive)

    with pytest.raises(ValidationFailed, match=r"'points\.dbf' is corrupt.*Bad CRC-32"):
        shapefile.process(job)

    assert extractions, "the failure happened while extracting"
    assert leftovers(job) == []


def _damaged(ext: str, change: Callable[[bytes], bytes]) -> dict[str, bytes]:
    entries = shapes.points_layer(POINTS)
    return {**entries, f"points{ext}": change(entries[f"points{ext}"])}


def _with_field_type(dbf: bytes, kind: bytes) -> bytes:
    return dbf[:32 + 11] + kind + dbf[32 + 12:]


@pytest.mark.parametrize(("ext", "change", "message"), [
    (".shp", lambda data: b"U" * 200,
     "points.shp is not an ESRI shapefile: its header does not start with the shapefile "
     "file code 9994"),
    (".shp", lambda data: b"\x00" * 10,
     "points.shp is not an ESRI shapefile: it is 10 bytes, shorter than the 100-byte header"),
    (".shp", lambda data: data[:-10],
     "points.shp is cut short: its header says 184 bytes, the file has 174"),
    (".shx", lambda data: b"",
     "points.shx is not a shapefile index: it is 0 bytes, shorter than the 100-byte header"),
    (".shx", lambda data: b"U" * 200,
     "points.shx is not a shapefile index: its header does not start with the shapefile "
     "file code 9994"),
    (".dbf", lambda data: b"\x03" * 10,
     "points.dbf is not a dBASE table: it is 10 bytes, shorter than the 32-byte header"),
    (".dbf", lambda data: b"U" * 200,
     "points.dbf is not a dBASE table: its header says it is 21845 bytes long, which the "
     "file cannot hold"),
    (".dbf", lambda data: data[:-20],
     "points.dbf is cut short: its header says 3 records of 31 bytes, the file has 170 bytes"),
    (".dbf", lambda data: _with_field_type(data, b"U"),
     "points.dbf is not a dBASE table pyshp reads: its field 1 has the unknown type 'U'"),
])
def test_a_damaged_part_fails_saying_what_is_wrong_with_it(
        tmp_path: Path, ext: str, change: Callable[[bytes], bytes], message: str) -> None:
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "g.zip", _damaged(ext, change)))

    with pytest.raises(ValidationFailed) as refused:
        shapefile.process(job)

    assert str(refused.value) == message
    assert leftovers(job) == []


def test_damage_past_the_headers_fails_in_words_with_the_readers_detail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(**files: Any) -> None:
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(pyshp, "Reader", unreadable)
    job = make_job(tmp_path, shapes.make_points_zip(tmp_path / "g.zip", POINTS))

    with pytest.raises(ValidationFailed) as refused:
        shapefile.process(job)

    assert str(refused.value) == ("points.shp is damaged: its shapes or records could not be "
                                  "read (error: unpack requires a buffer of 4 bytes)")


def test_unknown_shape_type_is_a_validation_failure(tmp_path: Path) -> None:
    entries = shapes.points_layer(POINTS)
    shp = bytearray(entries["points.shp"])
    shp[32:36] = (77).to_bytes(4, "little")
    job = make_job(
        tmp_path, shapes.make_zip(tmp_path / "t.zip", {**entries, "points.shp": bytes(shp)})
    )
    with pytest.raises(ValidationFailed, match="unknown shape type 77"):
        shapefile.process(job)


def test_shape_and_record_counts_must_agree(tmp_path: Path) -> None:
    entries = {
        **shapes.points_layer(POINTS),
        "points.dbf": shapes.points_layer(POINTS[:2])["points.dbf"],
    }
    job = make_job(tmp_path, shapes.make_zip(tmp_path / "m.zip", entries))
    with pytest.raises(ValidationFailed, match=r"3 shapes but its \.dbf has 2 records"):
        shapefile.process(job)
