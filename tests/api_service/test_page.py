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
        self.styles: list[str] = []
        self.inline: list[str] = []

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
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.styles.append(str(attributes["href"]))
        if tag == "style" or any(name == "style" or name.startswith("on") for name in attributes):
            self.inline.append(tag)


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
    for element in ("purpose", "metadata", "metadata-error", "token", "dashboard", "uploads"):
        assert element in page.ids, element
    assert page.ids["token"]["type"] == "password"


SCRIPTS = ["uppy.min.js", "results.js", "upload.js"]
STYLES = ["uppy.min.css", "upload.css"]


def test_the_page_points_at_the_upload_routes_and_its_own_files(app: Flask) -> None:
    page = _page(app)

    assert page.ids["options"]["data-endpoint"] == "/v1/uploads"
    assert page.scripts == [f"/static/{name}" for name in SCRIPTS]
    assert page.styles == [f"/static/{name}" for name in STYLES]


def test_under_a_mount_every_url_follows_it(app: Flask) -> None:
    page = _page(app, "/handoff")

    assert page.ids["options"]["data-endpoint"] == "/handoff/v1/uploads"
    assert page.scripts == [f"/handoff/static/{name}" for name in SCRIPTS]
    assert page.styles == [f"/handoff/static/{name}" for name in STYLES]


def test_the_page_says_what_the_browser_may_load_and_who_may_frame_it(app: Flask) -> None:
    answer = app.test_client().get("/")
    policy = dict(directive.strip().split(" ", 1)
                  for directive in answer.headers["Content-Security-Policy"].split(";"))

    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in answer.headers["Content-Security-Policy"]


def test_the_page_has_no_inline_script_or_style(app: Flask) -> None:
    page = _page(app)
    text = app.test_client().get("/").get_data(as_text=True)

    assert page.inline == []
    assert text.count("<script") == len(page.scripts)


@pytest.mark.parametrize("name", [*SCRIPTS, *STYLES])
def test_the_files_are_served_by_the_api_itself(app: Flask, name: str) -> None:
    answer = app.test_client().get(f"/static/{name}")

    assert answer.status_code == 200
    assert ("javascript" if name.endswith(".js") else "css") in answer.mimetype
    assert answer.get_data() == (PACKAGE / "static" / name).read_bytes()


def test_the_vendored_uppy_says_its_version_and_licence() -> None:
    version = (PACKAGE / "static" / "uppy.VERSION").read_text().strip()
    makefile = (ROOT / "Makefile").read_text()

    assert f"UPPY   := {version}\n" in makefile
    assert "MIT License" in (PACKAGE / "static" / "uppy.LICENSE").read_text()
    assert "globalThis.Uppy=" in (PACKAGE / "static" / "uppy.min.js").read_text()


def test_the_page_and_its_files_are_package_data() -> None:
    """The image installs the package without the source tree: what is not listed is missing."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["api_service"]
    files = [path.relative_to(PACKAGE).as_posix()
             for folder in ("static", "templates") for path in (PACKAGE / folder).iterdir()]

    assert "templates/upload.html" in files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
