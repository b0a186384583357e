"""The upload page at ``/`` of the standalone service, and the scripts it is served with.

What the page does in a browser is tests/integration/test_browser.py's to
check; here: what it offers, where its URLs point (under a mount too), and
that its files are served from, and installed with, the package.
"""

import fnmatch
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from api_service.app import create_app
from handoff.config import Settings
from handoff.processors import installed

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "api_service"


class _Page(HTMLParser):
    """The parts of the page its script relies on."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.options: list[str] = []
        self.selected: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids[str(attributes["id"])] = attributes
        if tag == "option":
            self.options.append(str(attributes["value"]))
            if "selected" in attributes:
                self.selected.append(str(attributes["value"]))
        if tag == "script":
            self.scripts.append(str(attributes["src"]))


@pytest.fixture(scope="module")
def app() -> Flask:
    return create_app(Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0"))


def _page(app: Flask, script_name: str = "") -> _Page:
    answer = app.test_client().get("/", base_url=f"http://localhost{script_name}/")
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    page = _Page()
    page.feed(answer.get_data(as_text=True))
    return page


def test_the_page_offers_the_installed_purposes(app: Flask) -> None:
    page = _page(app)

    assert page.options == sorted(installed({}).purposes)
    assert page.selected == ["raw"]
    for element in ("file", "purpose", "token", "start", "pause", "resume", "progress",
                    "status"):
        assert element in page.ids, element
    assert page.ids["file"]["type"] == "file"
    assert page.ids["token"]["type"] == "password"


def test_the_page_points_at_the_upload_routes_and_its_own_scripts(app: Flask) -> None:
    page = _page(app)

    assert page.ids["upload-form"]["data-endpoint"] == "/v1/uploads"
    assert page.scripts == ["/static/tus.min.js", "/static/upload.js"]


def test_under_a_mount_every_url_follows_it(app: Flask) -> None:
    page = _page(app, "/handoff")

    assert page.ids["upload-form"]["data-endpoint"] == "/handoff/v1/uploads"
    assert page.scripts == ["/handoff/static/tus.min.js", "/handoff/static/upload.js"]


@pytest.mark.parametrize("name", ["tus.min.js", "upload.js"])
def test_the_scripts_are_served_by_the_api_itself(app: Flask, name: str) -> None:
    answer = app.test_client().get(f"/static/{name}")

    assert answer.status_code == 200
    assert "javascript" in answer.mimetype
    assert answer.get_data() == (PACKAGE / "static" / name).read_bytes()


def test_the_vendored_tus_client_says_its_version_and_licence() -> None:
    version = (PACKAGE / "static" / "tus-js-client.VERSION").read_text().strip()
    makefile = (ROOT / "Makefile").read_text()

    assert f"TUS_JS_CLIENT := {version}\n" in makefile
    assert "MIT License" in (PACKAGE / "static" / "tus-js-client.LICENSE").read_text()
    assert (PACKAGE / "static" / "tus.min.js").read_text().startswith("!function")


def test_the_page_and_its_files_are_package_data() -> None:
    """The image installs the package without the source tree: what is not listed is missing."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["api_service"]
    files = [path.relative_to(PACKAGE).as_posix()
             for folder in ("static", "templates") for path in (PACKAGE / folder).iterdir()]

    assert "templates/upload.html" in files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
