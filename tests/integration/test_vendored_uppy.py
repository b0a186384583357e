"""The upload page's Uppy is the npm package's own bundle, byte for byte, at the version it says.

``npm pack`` fetches the package once into ``var/node/`` (a 1.5 MB tarball);
later runs compare against that copy.
"""

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "api_service" / "static"
VERSION = (STATIC / "uppy.VERSION").read_text().strip()
NPM_SECONDS = 300


@pytest.fixture(scope="session")
def uppy_package() -> Path:
    """The unpacked npm package ``uppy`` at the vendored version."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed (make browser-deps)")
    folder = ROOT / "var" / "node" / f"uppy-{VERSION}"
    if not (folder / "package" / "package.json").exists():
        partial = folder.with_name(f"{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        subprocess.run(["npm", "pack", "--silent", f"uppy@{VERSION}"], cwd=partial, check=True,
                       capture_output=True, timeout=NPM_SECONDS)
        with tarfile.open(partial / f"uppy-{VERSION}.tgz") as tarball:
            tarball.extractall(partial, filter="data")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder / "package"


@pytest.mark.parametrize(("vendored", "shipped"), [
    ("uppy.min.js", "dist/uppy.min.js"), ("uppy.min.css", "dist/uppy.min.css"),
    ("uppy.LICENSE", "LICENSE")])
def test_the_vendored_files_are_the_packages_own(uppy_package: Path, vendored: str,
                                                 shipped: str):
    assert (STATIC / vendored).read_bytes() == (uppy_package / shipped).read_bytes()
