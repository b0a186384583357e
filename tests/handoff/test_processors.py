"""The processor registry: entry points found, modules imported late, settings split by purpose.

Distributions are made the way pip leaves them (a ``*.dist-info`` folder
with ``entry_points.txt``) on a folder put on ``sys.path``, so what is
tested is importlib.metadata's real discovery.
"""

import json
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from handoff.config import ConfigError, count, positive_size
from handoff.processors import (
    GROUP,
    BadResult,
    Registry,
    env_name,
    installed,
    installed_or_exit,
    read_setting,
    settings_variable,
    stored_result,
)
from handoff.units import parse_duration

BUILT_IN = {
    "geojson": "geo_service.processors.geojson:process",
    "geopackage": "geo_service.processors.geopackage:process",
    "raw": "geo_service.processors.raw:process",
    "shapefile": "geo_service.processors.shapefile:process",
}


def dist_info(root: Path, name: str, processors: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds it."""
    folder = root / f"{name}-1.0.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{purpose} = {target}\n" for purpose, target in processors.items())
    (folder / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")


def registry(environ: dict[str, str], *purposes: str) -> Registry:
    points = [EntryPoint(p, f"mod_{env_name(p).lower()}:process", GROUP) for p in purposes]
    return Registry(points, environ)


def test_the_built_in_processors_are_entry_points() -> None:
    targets = installed({}).targets

    assert {name: targets[name] for name in BUILT_IN} == BUILT_IN
    assert list(targets) == sorted(targets)


def test_a_package_on_the_path_adds_its_purpose(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dist_info(tmp_path, "handoff-extra", {"extra": "handoff_extra_mod:run"})
    (tmp_path / "handoff_extra_mod.py").write_text("def run(job):\n    return {'ok': True}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "handoff_extra_mod", raising=False)

    found = installed({})

    assert found.targets["extra"] == "handoff_extra_mod:run"
    assert "extra" in found.purposes
    process = found.processor("extra")
    assert process is not None and process.__module__ == "handoff_extra_mod"


def test_two_packages_with_one_purpose_are_refused_naming_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which one ran would otherwise depend on the order they were installed in."""
    dist_info(tmp_path, "first-pkg", {"survey": "first:process"})
    dist_info(tmp_path, "second-pkg", {"survey": "second:process"})
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ConfigError) as caught:
        installed({})

    message = str(caught.value)
    assert "two packages register the processor 'survey'" in message
    assert "first-pkg (first:process)" in message and "second-pkg (second:process)" in message


def test_a_service_stops_at_start_up_on_a_conflict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dist_info(tmp_path, "evil-pkg", {"shapefile": "evil:process"})
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(SystemExit) as caught:
        installed_or_exit()

    assert caught.value.code == 3
    assert "the processor 'shapefile'" in capsys.readouterr().err


def test_listing_imports_no_processor_module_and_the_first_use_does() -> None:
    """The web services list purposes without loading pyshp, ijson or sqlite readers."""
    script = """
import json, sys
from handoff.processors import installed
found = installed({})
names = ("geo_service.processors.shapefile", "shapefile", "ijson")
listed = {name: name in sys.modules for name in names} | {"purposes": sorted(found.purposes)}
found.processor("shapefile")
used = {name: name in sys.modules for name in names}
print(json.dumps([listed, used]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    listed, used = json.loads(out)

    assert set(BUILT_IN) <= set(listed.pop("purposes"))
    assert listed == {"geo_service.processors.shapefile": False, "shapefile": False,
                      "ijson": False}
    assert used == {"geo_service.processors.shapefile": True, "shapefile": True, "ijson": False}


def test_an_unknown_purpose_has_no_processor() -> None:
    assert installed({}).processor("pdf") is None


def test_settings_are_the_purposes_own_with_lower_case_names() -> None:
    found = registry({"HANDOFF_PROCESSOR_SURVEY_MAX_AREA": "5km2",
                      "HANDOFF_PROCESSOR_SURVEY_Mode": "fast",
                      "HANDOFF_PROCESSOR_OTHER_X": "1",
                      "HANDOFF_QUEUE": "q"}, "survey", "other")

    assert found.settings("survey") == {"max_area": "5km2", "mode": "fast"}
    assert found.settings("other") == {"x": "1"}
    assert found.unclaimed == ()


def test_a_settings_copy_cannot_change_the_next_jobs() -> None:
    found = registry({"HANDOFF_PROCESSOR_SURVEY_A": "1"}, "survey")
    found.settings("survey")["a"] = "changed"
    assert found.settings("survey") == {"a": "1"}


def test_a_variable_goes_to_the_longest_matching_purpose() -> None:
    found = registry({"HANDOFF_PROCESSOR_ZIP_LIMIT": "1",
                      "HANDOFF_PROCESSOR_ZIP_X_LIMIT": "2"}, "zip", "zip-x")

    assert found.settings("zip") == {"limit": "1"}
    assert found.settings("zip-x") == {"limit": "2"}


def test_variables_for_no_installed_purpose_are_reported() -> None:
    """The worker logs them: a typo in a purpose would otherwise lose a limit silently."""
    found = registry({"HANDOFF_PROCESSOR_SHAPFILE_ZIP_MAX_ENTRIES": "5",
                      "HANDOFF_PROCESSOR_SURVEY_": "no name"}, "survey")

    assert found.unclaimed == ("HANDOFF_PROCESSOR_SHAPFILE_ZIP_MAX_ENTRIES",
                               "HANDOFF_PROCESSOR_SURVEY_")
    assert found.settings("survey") == {}


def test_the_core_processor_limits_belong_to_no_purpose() -> None:
    """Not even to purposes named ``memory`` or ``time``, and they are not reported."""
    found = registry({"HANDOFF_PROCESSOR_MEMORY_LIMIT": "1GiB",
                      "HANDOFF_PROCESSOR_TIME_LIMIT": "1h",
                      "HANDOFF_PROCESSOR_MEMORY_COLOUR": "red"}, "memory", "time")

    assert found.settings("memory") == {"colour": "red"}
    assert found.settings("time") == {}
    assert found.unclaimed == ()


@pytest.mark.parametrize(("purpose", "variable"), [
    ("shapefile", "HANDOFF_PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES"),
    ("land-use.v2", "HANDOFF_PROCESSOR_LAND_USE_V2_ZIP_MAX_ENTRIES"),
])
def test_a_purpose_is_spelled_in_upper_case_with_underscores(purpose: str, variable: str) -> None:
    assert settings_variable(purpose, "zip_max_entries") == variable
    found = registry({variable: "9"}, purpose)
    assert found.settings(purpose) == {"zip_max_entries": "9"}


def test_the_stored_result_is_the_json_clients_see() -> None:
    assert stored_result({"bbox": (1, 2.5), "n": 3, "nested": {"ok": None}}) == {
        "bbox": [1, 2.5], "n": 3, "nested": {"ok": None}}


@pytest.mark.parametrize("result", [None, "done", [1], {"x": {1, 2}}, {"x": float("inf")}])
def test_a_result_that_is_no_json_object_is_refused(result: object) -> None:
    with pytest.raises(BadResult):
        stored_result(result)


def test_a_result_nested_past_the_recursion_limit_is_refused() -> None:
    result: dict[str, object] = {}
    for _ in range(100_000):
        result = {"a": result}
    with pytest.raises(BadResult, match="not storable as JSON"):
        stored_result(result)


def test_read_setting_parses_with_the_core_rules_or_gives_the_default() -> None:
    settings = {"limit": "2KiB", "wait": "1m", "empty": ""}

    assert read_setting(settings, "survey", "limit", positive_size, 0) == 2048
    assert read_setting(settings, "survey", "wait", parse_duration, 0.0) == 60.0
    assert read_setting(settings, "survey", "empty", count, 7) == 7
    assert read_setting(settings, "survey", "unset", count, 7) == 7


def test_read_setting_names_the_variable_of_a_bad_value() -> None:
    with pytest.raises(ConfigError) as caught:
        read_setting({"max_items": "lots"}, "land-use", "max_items", count, 1)

    assert str(caught.value).startswith("HANDOFF_PROCESSOR_LAND_USE_MAX_ITEMS='lots' is invalid")
