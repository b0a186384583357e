"""The upload page (Uppy) and a host's page of another origin, in headless Chromium.

The page's own flow: three files (1, 64 and 200 MiB) chosen in Uppy's file
input go as three tus uploads through a proxy; the 200 MiB one is paused
and resumed mid-way, and its connection is cut once, after which Uppy
retries by itself. All end ``done`` with their sha256 on the page; then a
GeoJSON file sent with the ``geojson`` purpose shows its result as a
table. Full-page screenshots at a desktop's and a phone's width are kept
in var/test-artifacts/ and checked for text cut off or overlapping. Bad
metadata is refused in the page before a byte is sent. Then the example
host page (examples/uppy-embed) of a listed origin uploads through CORS,
and the same page of an origin not listed gets nothing through.
"""

import base64
import importlib.util
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from handoff.ids import is_upload_id
from handoff.units import MiB
from tests.faults.tcp_proxy import CorruptingProxy
from tests.support.payloads import file_sha256, unique_random_file
from tests.support.processes import Processes
from tests.support.stacks import Stack

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "alice-token"
ARTIFACTS = ROOT / "var" / "test-artifacts"
EXAMPLE_HOST = ROOT / "examples" / "uppy-embed" / "host.py"
# A PATCH through the proxy goes at most this many chunks (of <= 64 KiB) a second while slowed.
SLOW_CHUNKS_PER_SECOND = 200
# Only a connection carrying much of the 200 MiB file gets this far: the 1 and 64 MiB files
# together are 65 MiB, so the cut lands in the big file's PATCH, after its resume.
CUT_AT = 100 * MiB
FINAL = {"done", "failed", "error"}
SIZES = {"small.bin": 1, "medium.bin": 64, "big.bin": 200}
VIEWPORTS = {"desktop": (1280, 800, False), "phone": (390, 844, True)}
GEOJSON = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "well"},
     "geometry": {"type": "Point", "coordinates": [4.35, 50.85]}},
    {"type": "Feature", "properties": {"name": "spring"},
     "geometry": {"type": "Point", "coordinates": [5.57, 50.63]}},
    {"type": "Feature", "properties": {"name": "track"},
     "geometry": {"type": "LineString", "coordinates": [[4.35, 50.85], [5.57, 50.63]]}}]}


class _Network:
    """A proxy's hook on the API's connections: slows them while ``slow`` is set, and cuts
    the first one that has carried ``CUT_AT`` bytes, once (both sides are shut)."""

    def __init__(self) -> None:
        self.slow = threading.Event()
        self.slow.set()
        self.cuts = 0
        self._lock = threading.Lock()

    def __call__(self, data: bytes, offset: int) -> bytes:
        if self.slow.is_set():
            time.sleep(1 / SLOW_CHUNKS_PER_SECOND)
        if offset + len(data) > CUT_AT:
            with self._lock:
                if self.cuts == 0:
                    self.cuts += 1
                    raise ConnectionResetError("the test cuts this connection")
        return data


class _HostPage:
    """The example host app on another origin (another port of 127.0.0.1), as a WSGI app.

    Its origin is served at once, so the stack can be told it; the app,
    which names the API, is made once the stack runs.
    """

    def __init__(self) -> None:
        self._app: Flask | None = None
        self.origin = ""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self._app is not None
        return self._app(environ, start_response)

    def serve(self, api_url: str) -> None:
        spec = importlib.util.spec_from_file_location("uppy_embed_host", EXAMPLE_HOST)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self._app = module.create_app(api_url, TOKEN)


@pytest.fixture(scope="module")
def hosts(module_processes: Processes) -> tuple[_HostPage, ...]:
    """Two host origins: the first is listed in HANDOFF_CORS_ORIGINS, the second is not."""
    pages = (_HostPage(), _HostPage())
    for page in pages:
        page.origin = module_processes.serve_wsgi(page)
    return pages


@pytest.fixture(scope="module")
def stack(module_processes: Processes, hosts: tuple[_HostPage, ...]) -> Stack:
    running = module_processes.stack("browser-stack", {"HANDOFF_API_TOKENS": f"alice:{TOKEN}",
                                                       "HANDOFF_CORS_ORIGINS": hosts[0].origin})
    for page in hosts:
        page.serve(running.api_url)
    return running


@pytest.fixture
def chromium(processes: Processes, tmp_path: Path) -> WebDriver:
    return processes.chromium(tmp_path / "chromium")


def _wait(driver: WebDriver, seconds: float, predicate: Any) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(predicate)


def _row(driver: WebDriver, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'li[data-name="{name}"]')


def _state(driver: WebDriver, name: str) -> str:
    return _row(driver, name).get_attribute("data-state") or ""


def _add_files(driver: WebDriver, paths: list[Path]) -> None:
    """Through the Dashboard's own (hidden) file input, as a person choosing files does.

    With files on it already, the input is on the "Add more" panel.
    """
    more = driver.find_elements(By.CSS_SELECTOR, ".uppy-DashboardContent-addMore")
    if more:
        more[0].click()
    chooser = _wait(driver, 10, lambda d: d.find_elements(
        By.CSS_SELECTOR, "input.uppy-Dashboard-input[type=file]:not([webkitdirectory])"))[0]
    chooser.send_keys("\n".join(str(path) for path in paths))


def _press_upload(driver: WebDriver) -> None:
    driver.find_element(By.CSS_SELECTOR, ".uppy-StatusBar-actionBtn--upload").click()


def _pause_button(driver: WebDriver, name: str) -> WebElement:
    """The pause/resume control on the file's tile in the Dashboard."""
    return driver.find_element(By.XPATH, (
        f"//div[contains(@class, 'uppy-Dashboard-Item ')][.//div[@title='{name}']]"
        "//button[contains(@class, 'uppy-Dashboard-Item-progressIndicator')]"))


def _stored(stack: Stack) -> set[str]:
    """The id of every upload the geo service holds, complete or not."""
    return {path.name for path in stack.uploads.iterdir() if is_upload_id(path.name)}


def _server_offset(url: str) -> int:
    answer = requests.head(url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}",
                                                     "Tus-Resumable": "1.0.0"})
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def _upload_url(driver: WebDriver, name: str, api_port: int) -> str:
    """The upload's URL as the page shows it, pointed at the API rather than the proxy."""
    href = _row(driver, name).find_element(By.CSS_SELECTOR, "a.upload-url").get_attribute("href")
    assert href, name
    return urlsplit(href)._replace(netloc=f"127.0.0.1:{api_port}").geturl()


def test_the_page_uploads_three_files_paused_cut_and_retried(stack: Stack, chromium: WebDriver,
                                                             tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]):
    paths = [unique_random_file(tmp_path / name, mib) for name, mib in SIZES.items()]
    network = _Network()
    proxy = CorruptingProxy(stack.ports["api"], network, prefix=b"PATCH ")
    try:
        chromium.get(f"http://127.0.0.1:{proxy.port}/")
        chromium.find_element(By.ID, "token").send_keys(TOKEN)
        chromium.find_element(By.ID, "metadata").send_keys('{"survey": "north"}')
        _add_files(chromium, paths)
        _press_upload(chromium)

        _wait(chromium, 60, lambda d: int(_row(d, "big.bin").find_element(
            By.CLASS_NAME, "progress").get_attribute("data-sent") or 0) >= 8 * MiB)
        _pause_button(chromium, "big.bin").click()
        _wait(chromium, 10, lambda d: _state(d, "big.bin") == "paused")
        paused_at = _server_offset(_upload_url(chromium, "big.bin", stack.ports["api"]))
        assert paused_at < 200 * MiB

        network.slow.clear()
        _pause_button(chromium, "big.bin").click()
        _wait(chromium, 300, lambda d: all(_state(d, name) in FINAL for name in SIZES))
        _send_geojson(chromium, tmp_path)
        screenshots = [_check_and_screenshot(chromium, view) for view in VIEWPORTS]
    finally:
        proxy.close()

    assert network.cuts == 1
    assert [entry for entry in chromium.get_log("browser")
            if "Content Security Policy" in entry["message"]] == []
    for path in paths:
        row = _row(chromium, path.name)
        assert _state(chromium, path.name) == "done", row.text
        assert row.find_element(By.CSS_SELECTOR, "td.sha256").text == file_sha256(path)
        upload_id = _upload_url(chromium, path.name, stack.ports["api"]).rsplit("/", 1)[-1]
        status = stack.wait_for(upload_id)
        assert status["metadata"] == {"survey": "north"}
        assert status["files"] == [{"name": path.name, "size": path.stat().st_size,
                                    "sha256": file_sha256(path)}]
    with capsys.disabled():
        print("\nscreenshots of the finished page:", *screenshots, sep="\n  ")


def _send_geojson(driver: WebDriver, tmp_path: Path) -> None:
    """A second round on the same page: another purpose, a GeoJSON file, its result as a table."""
    path = tmp_path / "wells.geojson"
    path.write_text(json.dumps(GEOJSON))
    Select(driver.find_element(By.ID, "purpose")).select_by_value("geojson")
    _add_files(driver, [path])
    _press_upload(driver)
    _wait(driver, 120, lambda d: _state(d, path.name) in FINAL)
    row = _row(driver, path.name)
    assert _state(driver, path.name) == "done", row.text

    def cell(name: str) -> str:
        return row.find_element(By.CSS_SELECTOR, f".result td.{name}").text

    assert cell("feature_count") == "3"
    assert cell("geometry_types") == "LineString 1, Point 2"
    assert cell("bbox") == "4.35, 50.63 to 5.57, 50.85"
    assert cell("crs") == "not stated (WGS 84)"
    assert row.find_element(By.CSS_SELECTOR, "td.sha256").text == file_sha256(path)


# Text that is cut off (wider than its box or than the page) or status elements that overlap.
_LAYOUT_PROBLEMS = """
const width = document.documentElement.clientWidth;
const problems = [];
if (document.documentElement.scrollWidth > width) {
  problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
}
const texts = document.querySelectorAll(
  "#uploads li, #uploads .upload-name, #uploads .state, #uploads .progress, #uploads a, " +
  "#uploads td, #uploads th, #uploads dt, #uploads dd, #uploads .problem");
for (const el of texts) {
  const box = el.getBoundingClientRect();
  if (box.width === 0) continue;
  if (box.left < 0 || box.right > width + 0.5) problems.push(`${el.className || el.tagName} ` +
      `of ${el.closest("li").dataset.name} leaves the page: ${box.left}..${box.right}`);
  if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== "inline") {
    problems.push(`${el.className || el.tagName} of ${el.closest("li").dataset.name} ` +
                  `is cut off: ${el.scrollWidth} > ${el.clientWidth}`);
  }
}
function overlap(a, b) {
  const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
  return p.left < q.right - 0.5 && q.left < p.right - 0.5 && p.top < q.bottom - 0.5 &&
         q.top < p.bottom - 0.5;
}
const rows = [...document.querySelectorAll("#uploads li.upload")];
rows.forEach((row, i) => {
  if (overlap(row.querySelector(".upload-name"), row.querySelector(".state"))) {
    problems.push(`the name and the state of ${row.dataset.name} overlap`);
  }
  rows.slice(i + 1).forEach((other) => {
    if (overlap(row, other)) problems.push(`${row.dataset.name} overlaps ${other.dataset.name}`);
  });
});
return problems;
"""


def _check_and_screenshot(driver: WebDriver, view: str) -> Path:
    """At the viewport's width: no layout problem; the whole page kept as a PNG."""
    width, height, mobile = VIEWPORTS[view]
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    assert driver.execute_script(_LAYOUT_PROBLEMS) == [], view
    content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": content["height"], "scale": 1}})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"upload-page-done-{view}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_bad_metadata_is_refused_in_the_page_before_any_byte(stack: Stack, chromium: WebDriver,
                                                             tmp_path: Path):
    path = unique_random_file(tmp_path / "notes.bin", 1)
    before = _stored(stack)
    chromium.get(f"{stack.api_url}/")
    chromium.find_element(By.ID, "token").send_keys(TOKEN)
    metadata = chromium.find_element(By.ID, "metadata")
    _add_files(chromium, [path])

    for text, reason in (('{"survey": north}', "metadata is not valid JSON: "),
                         ("[1, 2]", "metadata must be a JSON object")):
        metadata.clear()
        metadata.send_keys(text)
        _press_upload(chromium)
        error = chromium.find_element(By.ID, "metadata-error")
        _wait(chromium, 10, lambda d, error=error: error.is_displayed())
        assert error.text.startswith(reason), error.text
        assert metadata.get_attribute("aria-invalid") == "true"
        assert _state(chromium, path.name) == "waiting"
        assert _stored(stack) == before

    metadata.clear()
    metadata.send_keys('{"survey": "south"}')
    _press_upload(chromium)
    _wait(chromium, 60, lambda d: _state(d, path.name) in FINAL)
    assert _state(chromium, path.name) == "done"
    assert not chromium.find_element(By.ID, "metadata-error").is_displayed()
    assert len(_stored(stack) - before) == 1


def _upload_from(driver: WebDriver, page: _HostPage, path: Path) -> WebElement:
    driver.get(f"{page.origin}/")
    _wait(driver, 10, lambda d: d.find_elements(By.CSS_SELECTOR, "input.uppy-Dashboard-input"))
    _add_files(driver, [path])
    _press_upload(driver)
    _wait(driver, 60, lambda d: d.find_elements(By.CSS_SELECTOR, "#uploads li")
          and _state(d, path.name) in FINAL)
    return _row(driver, path.name)


def test_a_listed_origin_uploads_from_the_example_host_page(stack: Stack, chromium: WebDriver,
                                                            hosts: tuple[_HostPage, ...],
                                                            tmp_path: Path):
    path = unique_random_file(tmp_path / "cross-origin.bin", 1)
    before = _stored(stack)

    row = _upload_from(chromium, hosts[0], path)

    assert row.get_attribute("data-state") == "done", row.text
    assert "Verified" in row.text or "verified" in row.text
    (stored,) = _stored(stack) - before
    assert stack.wait_for(stored)["files"][0]["sha256"] == file_sha256(path)


def test_another_origin_is_refused_by_the_browser(stack: Stack, chromium: WebDriver,
                                                  hosts: tuple[_HostPage, ...], tmp_path: Path):
    path = unique_random_file(tmp_path / "cross-origin.bin", 1)
    before = _stored(stack)

    row = _upload_from(chromium, hosts[1], path)

    assert row.get_attribute("data-state") == "error", row.text
    assert "network error" in row.text
    assert _stored(stack) == before
