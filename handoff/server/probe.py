"""Liveness for processes without an HTTP port (the worker, the sweeper).

They call :func:`beat` regularly; ``python -m handoff.server.probe <component>``
exits non-zero when the heartbeat is older than ``HANDOFF_PROBE_MAX_AGE``,
which is what a Kubernetes exec probe needs. Both read their folder,
``HANDOFF_HEARTBEAT_DIR``, through the configuration loader, so a bad value
is reported like any other setting's.
"""

import sys
import tempfile
import time
from pathlib import Path

from handoff.config import ConfigError, Settings, load_settings


def heartbeat_path(component: str, settings: Settings) -> Path:
    """One file per component and geo replica: replicas of one host must not share a beat."""
    folder = settings.heartbeat_dir or Path(tempfile.gettempdir())
    replica = f"-{settings.replica}" if settings.replica else ""
    return folder / f"handoff-{component}{replica}.heartbeat"


def beat(component: str) -> None:
    heartbeat_path(component, load_settings()).touch()


def age(component: str, settings: Settings) -> float | None:
    try:
        return time.time() - heartbeat_path(component, settings).stat().st_mtime
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m handoff.server.probe <component>", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"handoff.server.probe: configuration error: {exc}", file=sys.stderr)
        return 2
    seconds = age(args[0], settings)
    if seconds is None or seconds > settings.probe_max_age:
        print(f"{args[0]}: no heartbeat within {settings.probe_max_age:.0f}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
