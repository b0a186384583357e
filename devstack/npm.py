"""npm packages the tests, the benchmark and ``make run`` need, installed once into ``var/``.

Each set of pinned packages gets a folder of its own; npm installs into a
``.partial`` sibling that is renamed when done, so an interrupted install
is never taken for a finished one.
"""

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where installs are kept between runs (``make clean`` removes it).
NODE_ROOT = REPO_ROOT / "var" / "node"
NPM_SECONDS = 300


def missing_programs() -> list[str]:
    """``node`` and ``npm`` if they are not on the PATH (``make browser-deps`` installs them)."""
    return [name for name in ("node", "npm") if shutil.which(name) is None]


def ensure_installed(folder: Path, packages: Sequence[str], witness: str) -> Path:
    """``folder``, whose node_modules holds ``packages``; npm runs only if ``witness`` is absent.

    ``witness`` is a path inside ``node_modules`` that exists once the
    install is done (a package's ``package.json``). Raises
    ``subprocess.CalledProcessError`` or ``OSError`` if npm fails.
    """
    if (folder / "node_modules" / witness).exists():
        return folder
    partial = folder.with_name(f"{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "package.json").write_text('{"private": true}\n')
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", *packages], cwd=partial,
                   check=True, capture_output=True, timeout=NPM_SECONDS)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
