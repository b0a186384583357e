"""Structured logs: one JSON object per line, on stderr, for every process.

Each event carries ``upload_id`` when it concerns an upload (pass it with
``extra={"upload_id": ...}``), so one grep follows an upload through the
API, the geo service, the worker and the sweeper.
"""

import logging
import os

from pythonjsonlogger.json import JsonFormatter

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(level: str = "INFO", component: str | None = None) -> None:
    """Send the root logger's records to stderr as JSON, replacing other handlers.

    Idempotent; replacing matters in the worker, where Dramatiq has already
    installed its plain-text handler.
    """
    root = logging.getLogger()
    if any(getattr(handler, "_handoff", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._handoff = True  # type: ignore[attr-defined]
    static: dict[str, object] = {"component": component} if component else {}
    static["pid"] = os.getpid()
    handler.setFormatter(JsonFormatter(_FORMAT, rename_fields={"levelname": "level"},
                                       static_fields=static))
    root.handlers[:] = [handler]
    root.setLevel(level)
