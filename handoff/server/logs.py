"""Structured logs: one JSON object per line, on stderr, for every process.

Each event carries ``upload_id`` when it concerns an upload (pass it with
``extra={"upload_id": ...}``), so one grep follows an upload through the
API, the geo service, the worker and the sweeper.
"""

import logging
import os
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from handoff.jsontext import dumps

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
                                       static_fields=static, json_serializer=_serialize))
    root.handlers[:] = [handler]
    root.setLevel(level)


def _serialize(record: dict[str, Any], **options: Any) -> str:
    """The record as RFC 8259 JSON, so every log reader can parse every line.

    A field holding NaN or an infinity somewhere is written as its ``repr``
    rather than lose the line (logging would print a traceback instead).
    """
    try:
        return dumps(record, **options)
    except ValueError:
        return dumps({key: _loggable(value, options) for key, value in record.items()},
                     **options)


def _loggable(value: Any, options: dict[str, Any]) -> Any:
    try:
        dumps(value, **options)
    except ValueError:
        return repr(value)
    return value
