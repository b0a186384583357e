"""Processors by purpose: what the worker runs on a complete upload.

A processor gets a :class:`Job` and returns a JSON-able result. It raises
:class:`ValidationFailed` when the upload itself is unusable: that fails
the upload at once, while any other exception is retried.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ValidationFailed(Exception):
    """The upload's content is unusable; retrying would not help."""


@dataclass(frozen=True)
class Job:
    upload_id: str
    purpose: str
    metadata: dict[str, Any]
    manifest: dict[str, Any]
    folder: Path
    work_dir: Path
    limits: dict[str, int]

    def files(self) -> list[tuple[dict[str, Any], Path]]:
        """Each manifest entry with the path of its stored bytes."""
        return [(entry, self.folder / entry["path"]) for entry in self.manifest["files"]]


Processor = Callable[[Job], dict[str, Any]]

# purpose -> module with a ``process(job)`` function. Imported on first use,
# so the web service can list purposes without loading every reader library.
_MODULES = {
    "raw": "geo_service.processors.raw",
    "shapefile": "geo_service.processors.shapefile",
}


def purposes() -> set[str]:
    return set(_MODULES)


def processor_for(purpose: str) -> Processor | None:
    module = _MODULES.get(purpose)
    if module is None:
        return None
    return importlib.import_module(module).process
