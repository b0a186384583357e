"""The upload page and CORS in headless Chromium, against the real stack.

The page's own flow: a 64 MiB file chosen in its file input, paused and
resumed, ends ``done`` with the file's sha256 (a screenshot of it is kept).
Then pages of two other origins use tus-js-client on the API: the listed
one gets through its preflight and uploads, the other gets a network
error and the API never sees its upload.
"""

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from handoff.units import MiB
from tests.faults.tcp_proxy import CorruptingProxy
from tests.support import browser
from tests.support.payloads import file_sha256, unique_random_file
from tests.support.stacks import Stack, launch

TOKEN = "alice-token"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
# A PATCH through the proxy goes at most this many chunks (of <= 64 KiB) a second while slowed.
SLOW_CHUNKS_PER_SECOND = 200

_OTHER_ORIGIN_PAGE = """<!doctype html>
<meta charset="utf-8"><title>another origin</title>
<script src="{api}/static/tus.min.js"></script>
"""

# Upload `size` bytes with tus-js-client, then read the status; the outcome goes to Selenium.
_UPLOAD_FROM_PAGE = """
const [endpoint, token, size, done] = arguments;
const headers = {Authorization: `Bearer ${token}`};
const upload = new tus.Upload(new Blob([new Uint8Array(size).fill(7)]), {
  endpoint, headers, retryDelays: [],
  metadata: {purpose: "raw", filename: "cross-origin.bin"},
  onError: (error) => done({ok: false, message: error.message,
                            status: error.originalResponse ? error.originalResponse.getStatus()
                                                           : null}),
  onSuccess: async () => {
    const answer = await fetch(upload.url, {headers});
    done({ok: true, url: upload.url, status: answer.status, body: await answer.json()});
  },
});
upload.start();
"""


class _OtherOrigin:
    """A page of another origin (another port of 127.0.0.1), served from a thread.

    The port is taken at once, so the stack can be told the origin; the
    page, which names the API, is served once the stack runs.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def serve(self, api_url: str) -> None:
        (self._folder / "index.html").write_text(_OTHER_ORIGIN_PAGE.format(api=api_url))
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Not on the test's output."""


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_OtherOrigin, ...]]:
    """Two other origins: the first is listed in HANDOFF_CORS_ORIGINS, the second is not."""
    folder = tmp_path_factory.mktemp("origins")
    pages = (_OtherOrigin(folder / "listed"), _OtherOrigin(folder / "other"))
    yield pages
    for page in pages:
        page.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory,
          origins: tuple[_OtherOrigin, ...]) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("browser-stack")
    running = launch(root, {"HANDOFF_API_TOKENS": f"alice:{TOKEN}",
                            "HANDOFF_CORS_ORIGINS": origins[0].origin})
    try:
        for page in origins:
            page.serve(running.api_url)
        yield running
    finally:
        running.stop_all()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    problem = browser.missing()
    if problem:
        pytest.fail(problem)
    with browser.chromium(tmp_path / "chromium") as driver:
        yield driver


class _Throttle:
    """A proxy's hook that slows PATCH bodies while ``slow`` is set, and leaves them as they are."""

    def __init__(self) -> None:
        self.slow = threading.Event()
        self.slow.set()

    def __call__(self, data: bytes, offset: int) -> bytes:
        if self.slow.is_set():
            time.sleep(1 / SLOW_CHUNKS_PER_SECOND)
        return data


def _text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _wait(driver: WebDriver, seconds: float, predicate: Any) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(predicate)


def _server_offset(url: str) -> int:
    answer = requests.head(url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}",
                                                     "Tus-Resumable": "1.0.0"})
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def test_the_page_uploads_a_file_paused_and_resumed(stack: Stack, chromium: WebDriver,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    path = unique_random_file(tmp_path / "survey.bin", 64)
    throttle = _Throttle()
    proxy = CorruptingProxy(stack.ports["api"], throttle, prefix=b"PATCH ")
    try:
        chromium.get(f"http://127.0.0.1:{proxy.port}/")
        chromium.find_element(By.ID, "token").send_keys(TOKEN)
        chromium.find_element(By.ID, "file").send_keys(str(path))
        chromium.find_element(By.ID, "start").click()

        _wait(chromium, 60, lambda d: int(_text(d, "sent")) >= 8 * MiB)
        chromium.find_element(By.ID, "pause").click()
        assert _text(chromium, "status") == "paused"
        url = chromium.find_element(By.ID, "upload-url").get_attribute("href")
        assert url is not None
        url = url.replace(f":{proxy.port}/", f":{stack.ports['api']}/")
        paused_at = _server_offset(url)
        assert paused_at < 64 * MiB

        throttle.slow.clear()
        chromium.find_element(By.ID, "resume").click()
        _wait(chromium, 120, lambda d: _text(d, "status") in {"done", "failed", "error"})
        shown = _text(chromium, "details")
        screenshot = _screenshot(chromium, "upload-page-done.png")
    finally:
        proxy.close()

    assert _text(chromium, "status") == "done", shown
    assert file_sha256(path) in shown
    assert float(chromium.find_element(By.ID, "progress").get_attribute("value") or 0) == 1
    status = stack.wait_for(url.rsplit("/", 1)[-1])
    assert status["status"] == "done"
    assert status["files"] == [{"name": "survey.bin", "size": 64 * MiB,
                                "sha256": file_sha256(path)}]
    with capsys.disabled():
        print(f"\nscreenshot of the finished upload: {screenshot}")


def _screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    return path


def _upload_from(driver: WebDriver, page: _OtherOrigin, stack: Stack) -> dict[str, Any]:
    driver.get(f"{page.origin}/index.html")
    driver.set_script_timeout(60)
    return driver.execute_async_script(_UPLOAD_FROM_PAGE, f"{stack.api_url}/v1/uploads", TOKEN,
                                       MiB)


def test_a_listed_origin_uploads_through_its_preflight(stack: Stack, chromium: WebDriver,
                                                       origins: tuple[_OtherOrigin, ...]):
    outcome = _upload_from(chromium, origins[0], stack)

    assert outcome["ok"], outcome
    assert outcome["status"] == 200
    assert outcome["url"].startswith(f"{stack.api_url}/v1/uploads/")
    assert outcome["body"]["status"] in {"queued", "processing", "done"}
    assert stack.wait_for(outcome["body"]["id"])["status"] == "done"


def test_another_origin_is_refused_by_the_browser(stack: Stack, chromium: WebDriver,
                                                  origins: tuple[_OtherOrigin, ...]):
    before = set(stack.uploads.iterdir())

    outcome = _upload_from(chromium, origins[1], stack)

    assert not outcome["ok"]
    assert outcome["status"] is None, outcome
    assert "failed to create upload" in outcome["message"]
    assert set(stack.uploads.iterdir()) == before
