"""The tus peer anchor: the Node reference server, installed with npm into ``var/node-bench/``.

``@tus/server`` with ``@tus/file-store`` is what tus.io points to as the
reference implementation; one hop, no hashing. It is installed once at
pinned versions into a folder the benchmark owns, and run by
``bench/tus_node_server.mjs``. Without node or npm, or when npm fails, the
anchor is skipped and reported as ``null``, as nginx is.
"""

import subprocess
import sys
from pathlib import Path

from devstack import npm

PACKAGES = ("@tus/server@2.4.5", "@tus/file-store@2.1.1")
REPO_ROOT = Path(__file__).resolve().parent.parent
FOLDER = REPO_ROOT / "var" / "node-bench" / "tus-server-2.4.5-file-store-2.1.1"
SCRIPT = REPO_ROOT / "bench" / "tus_node_server.mjs"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def ensure_tus_node() -> Path | None:
    """The folder whose node_modules holds the pinned packages (installed if missing), or None."""
    if npm.missing_programs():
        _say("node or npm is missing: the @tus/server anchor is skipped")
        return None
    _say(f"{' '.join(PACKAGES)} in {FOLDER}, installed with npm if missing")
    try:
        return npm.ensure_installed(FOLDER, PACKAGES, "@tus/file-store/package.json")
    except (OSError, subprocess.SubprocessError) as exc:
        _say(f"npm install failed ({exc}): the @tus/server anchor is skipped")
        return None


def tus_node_argv(modules: Path, port: int, store: Path) -> list[str]:
    """The command that serves tus on ``port``, storing into ``store``."""
    store.mkdir(parents=True, exist_ok=True)
    return ["node", str(SCRIPT), str(modules), str(port), str(store)]
