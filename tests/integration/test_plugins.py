"""Processors from installed packages, end to end through the real stack.

The example package ``examples/wordcount`` is installed by ``make`` with
the project. The second part installs a package made here, with pip, into
this very virtualenv, starts a fresh stack and uninstalls it again however
the tests end: a plugin needs no change to handoff, only a restart.
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.problems import assert_problem
from tests.support.processes import Processes
from tests.support.stacks import Stack

PLUGIN_DIST = "handoff-test-wordcount"
PLUGIN_PYPROJECT = f"""
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{PLUGIN_DIST}"
version = "0.1.0"

[project.entry-points."handoff.processors"]
wordcount = "wc:process"

[tool.setuptools]
py-modules = ["wc"]
"""
PLUGIN_MODULE = '''
from handoff.processors import Job


def process(job: Job) -> dict:
    words = sum(len(file.path.read_bytes().split()) for file in job.files)
    return {"files": len(job.files), "words": words, "settings": job.settings}
'''


def served_purposes(stack: Stack) -> list[str]:
    response = requests.get(f"{stack.api_url}/openapi.json", timeout=30)
    response.raise_for_status()
    return response.json()["components"]["schemas"]["Purpose"]["enum"]


def geo_purposes(stack: Stack) -> list[str]:
    response = requests.get(f"{stack.geo_url}/purposes", headers=stack.geo_auth, timeout=30)
    response.raise_for_status()
    return response.json()


def upload_and_wait(stack: Stack, purpose: str, files: list[tuple[str, bytes]]
                    ) -> dict[str, Any]:
    response = stack.upload(files, purpose=purpose)
    assert response.status_code == 202, response.text
    return stack.wait_for(response.json()["id"])


def test_the_example_package_runs_as_the_words_purpose(stack: Stack) -> None:
    status = upload_and_wait(stack, "words", [("a.txt", b"the quick brown fox\n"),
                                                   ("b.txt", b"jumps over the lazy dog")])

    assert status["status"] == "done", status
    assert status["result"] == {"files": 2, "words": 9}


def test_the_api_and_the_geo_service_list_the_same_installed_purposes(stack: Stack) -> None:
    purposes = served_purposes(stack)

    assert {"raw", "shapefile", "geojson", "geopackage", "words"} <= set(purposes)
    assert purposes == geo_purposes(stack)


def test_a_purpose_nobody_installed_is_refused_as_before(stack: Stack) -> None:
    response = stack.upload([("a.txt", b"x")], purpose="nosuchpurpose")

    assert "unknown purpose 'nosuchpurpose'" in assert_problem(response, 400)["detail"]


@pytest.fixture(scope="module")
def plugin_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A package made in a temp folder, pip-installed into this virtualenv, always removed.

    No build isolation and no index: the build uses the virtualenv's own
    setuptools, so nothing is fetched.
    """
    source = tmp_path_factory.mktemp("wordcount")
    (source / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (source / "wc.py").write_text(PLUGIN_MODULE)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    try:
        installed = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation",
                                    "--no-index", str(source)], capture_output=True, text=True)
        assert installed.returncode == 0, installed.stderr
        yield
    finally:
        subprocess.run([*pip, "uninstall", "--yes", PLUGIN_DIST], check=False,
                       capture_output=True)


@pytest.fixture(scope="module")
def plugin_stack(plugin_installed: None, module_processes: Processes) -> Stack:
    """A stack started after the install, with a setting for the new processor."""
    return module_processes.stack("plugin-stack", {"HANDOFF_PROCESSOR_WORDCOUNT_GREETING": "hello"})


def test_an_installed_package_appears_in_the_openapi_purposes(plugin_stack: Stack) -> None:
    purposes = served_purposes(plugin_stack)

    assert "wordcount" in purposes
    assert purposes == geo_purposes(plugin_stack)


def test_an_upload_for_the_installed_package_ends_done(plugin_stack: Stack) -> None:
    status = upload_and_wait(plugin_stack, "wordcount", [("a.txt", b"one two three")])

    assert status["status"] == "done", status
    assert status["result"] == {"files": 1, "words": 3, "settings": {"greeting": "hello"}}


def test_the_command_line_lists_it(plugin_installed: None) -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "handoff"), "processors"],
                         capture_output=True, text=True, check=True).stdout

    assert "wordcount" in out.split()
    assert [line.split() for line in out.splitlines() if line.startswith("wordcount")] == [
        ["wordcount", "wc:process"]]
