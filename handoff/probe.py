"""Liveness for processes without an HTTP port (the worker, the sweeper).

They call :func:`beat` regularly; ``python -m handoff.probe <component>``
exits non-zero when the heartbeat is older than the allowed age, which is
what a Kubernetes exec probe needs.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

MAX_AGE = float(os.environ.get("HANDOFF_PROBE_MAX_AGE", "900"))


def heartbeat_path(component: str) -> Path:
    folder = os.environ.get("HANDOFF_HEARTBEAT_DIR", tempfile.gettempdir())
    return Path(folder) / f"handoff-{component}.heartbeat"


def beat(component: str) -> None:
    heartbeat_path(component).touch()


def age(component: str) -> float | None:
    try:
        return time.time() - heartbeat_path(component).stat().st_mtime
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m handoff.probe <component>", file=sys.stderr)
        return 2
    seconds = age(args[0])
    if seconds is None or seconds > MAX_AGE:
        print(f"{args[0]}: no heartbeat within {MAX_AGE:.0f}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
