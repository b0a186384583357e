"""Headless Chromium for the browser tests: Debian's chromium, driven through its chromedriver.

Both come from Debian's packages (``make browser-deps``), of one version,
so nothing is downloaded. Every process started, chromedriver and the
browser's own, is killed by pid when the browser is closed, and its
profile lives in a folder of the caller's.
"""

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, as root, on a machine without a GPU or a network beyond loopback:
# no sandbox, and none of the browser's own background connections.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1000,1000")


def missing() -> str | None:
    """What is not installed, for the test's failure message; None when all is there."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            return f"{program} is not installed (make browser-deps)"
    return None


@contextlib.contextmanager
def chromium(folder: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a new profile in ``folder``, its driver's log beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={folder / 'profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        _quit(driver, service)


def _quit(driver: webdriver.Chrome, service: Service) -> None:
    """Quit politely, then kill by pid whatever of chromedriver and the browser outlived it."""
    started = [psutil.Process(service.process.pid)]
    with contextlib.suppress(psutil.Error):
        started += started[0].children(recursive=True)
    with contextlib.suppress(Exception):
        driver.quit()
    for process in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(started, timeout=10)
