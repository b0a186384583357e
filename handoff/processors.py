"""The processor contract: what a purpose's code gets, returns and raises.

This module is the public, stable home of that contract; a processor
package imports :class:`Job`, :class:`JobFile` and :class:`ValidationFailed`
from here and nothing else from handoff (its tests may also use
:mod:`handoff.testing`).

A processor is a function ``process(job: Job) -> dict``, registered under
its purpose in the entry-point group ``handoff.processors``::

    [project.entry-points."handoff.processors"]
    wordcount = "handoff_wordcount:process"

The worker calls it once the upload is complete and every stored file has
been checked against its manifest (size and sha256), while holding the
upload's lock, in a fresh process of its own whose memory and time are
bounded (``HANDOFF_PROCESSOR_MEMORY_LIMIT``, ``HANDOFF_PROCESSOR_TIME_LIMIT``;
see :mod:`geo_service.jobs.sandbox`): going past either fails the upload at once.
What it returns must be a JSON object (a ``dict`` of JSON values, finite
numbers only); it becomes the upload's ``result``.

How it ends decides what happens to the upload:

- it returns: the upload is ``done`` with the result;
- it raises :class:`ValidationFailed`: the upload itself is unusable (not
  the format the purpose reads, a hostile archive, ...); the upload fails
  at once, and the exception's message is the ``error`` its sender sees, so
  write it for them;
- it raises anything else: the failure is taken as transient (a network
  share away, a full scratch disk) and the job is retried with backoff; on
  the last attempt the upload fails with ``gave up: <message>``. A processor
  must therefore be safe to run again on the same upload.

Each processor has settings of its own, from ``HANDOFF_PROCESSOR_<PURPOSE>_<NAME>``
variables: ``job.settings`` maps ``<name>`` in lower case to the raw string.
The purpose is spelled in upper case with every character other than a
letter or digit as ``_``. Parsing and defaults are the processor's business;
:func:`read_setting` parses one the way the core settings are parsed and
names the variable when the value is wrong. A wrong value is not the
upload's fault, so it should not raise ValidationFailed: the job is retried,
and fixing the variable and restarting the worker lets the upload succeed.

Entry points are listed without importing anything, so the web services
know every purpose while only the worker ever imports a processor's module,
on the first job of its purpose.
"""

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TypeVar

from handoff.config import VARIABLES, ConfigError, exit_on_config_error
from handoff.jsontext import dumps

GROUP = "handoff.processors"
SETTINGS_PREFIX = "HANDOFF_PROCESSOR_"
T = TypeVar("T")


class ValidationFailed(Exception):
    """The upload's content is unusable; retrying would not help."""


class BadResult(Exception):
    """A processor returned something that is not a storable JSON object."""


@dataclass(frozen=True)
class JobFile:
    """One uploaded file: its manifest entry and where its verified bytes are.

    ``path`` is read-only for the processor; anything it writes goes to
    :attr:`Job.work_dir`.
    """

    entry: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        """The file name its sender gave; never a path on this machine."""
        return str(self.entry["name"])

    @property
    def size(self) -> int:
        return int(self.entry["size"])

    @property
    def sha256(self) -> str:
        return str(self.entry["sha256"])

    @property
    def content_type(self) -> str:
        return str(self.entry.get("content_type") or "application/octet-stream")


@dataclass(frozen=True)
class Job:
    """Everything a processor gets: one complete, verified upload.

    ``files`` keeps the order they were sent in. ``work_dir`` is an empty
    folder that is the processor's alone and is removed when it returns or
    raises. ``settings`` is the processor's own configuration (see the
    module documentation).
    """

    upload_id: str
    purpose: str
    metadata: dict[str, Any]
    files: tuple[JobFile, ...]
    work_dir: Path
    settings: dict[str, str] = field(default_factory=dict)


Processor = Callable[[Job], dict[str, Any]]


def stored_result(result: object) -> dict[str, Any]:
    """The result as it is stored and shown to clients; BadResult if it cannot be.

    Checked the same way by the worker and by :mod:`handoff.testing`, so a
    processor's own tests catch what the worker would refuse.
    """
    if not isinstance(result, dict):
        raise BadResult(f"the processor returned {type(result).__name__}, not a JSON object")
    try:
        return json.loads(dumps(result))
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadResult(f"the processor's result is not storable as JSON: {exc}") from None


def env_name(purpose: str) -> str:
    """The purpose as it appears in its settings variables."""
    return re.sub(r"[^A-Z0-9]", "_", purpose.upper())


def settings_variable(purpose: str, name: str) -> str:
    """The variable that sets ``name`` for ``purpose``, for messages and docs."""
    return f"{SETTINGS_PREFIX}{env_name(purpose)}_{name.upper()}"


def read_setting(settings: Mapping[str, str], purpose: str, name: str,
                 parse: Callable[[str], T], default: T) -> T:
    """``parse`` of the setting, ``default`` when it is unset or empty.

    Raises ConfigError naming the variable when ``parse`` refuses the value
    (a ValueError), as a core setting's does at start-up. Parsers with the
    core rules are in :mod:`handoff.config` (``count``, ``positive_size``)
    and :mod:`handoff.units` (``parse_duration``).
    """
    raw = settings.get(name, "")
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{settings_variable(purpose, name)}={raw!r} is invalid: {exc}"
                          ) from None


class Registry:
    """The installed processors by purpose, with the settings each one gets.

    Built once per process from entry points, which only names modules;
    each module is imported the first time its processor is asked for.
    Two packages registering the same purpose are a configuration error:
    which one ran would depend on install order.
    """

    def __init__(self, points: Iterable[EntryPoint], environ: Mapping[str, str]) -> None:
        self._points: dict[str, EntryPoint] = {}
        for point in points:
            other = self._points.setdefault(point.name, point)
            if other is not point:
                raise ConfigError(
                    f"two packages register the processor {point.name!r}: "
                    f"{_origin(other)} and {_origin(point)}; uninstall one")
        self._loaded: dict[str, Processor] = {}
        self._settings, self.unclaimed = _split_settings(self.purposes, environ)

    @property
    def purposes(self) -> frozenset[str]:
        return frozenset(self._points)

    @property
    def targets(self) -> dict[str, str]:
        """Purpose -> ``module:function``, sorted by purpose."""
        return {name: self._points[name].value for name in sorted(self._points)}

    def processor(self, purpose: str) -> Processor | None:
        """The function for ``purpose``, importing its module on first use."""
        if purpose not in self._loaded:
            point = self._points.get(purpose)
            if point is None:
                return None
            self._loaded[purpose] = point.load()
        return self._loaded[purpose]

    def target(self, purpose: str) -> str | None:
        """The ``module:function`` of ``purpose``, imported by whoever runs it."""
        point = self._points.get(purpose)
        return None if point is None else point.value

    def settings(self, purpose: str) -> dict[str, str]:
        return dict(self._settings.get(purpose, {}))


def _origin(point: EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    package = dist.name if dist is not None else "an unknown package"
    return f"{package} ({point.value})"


def _split_settings(purposes: frozenset[str], environ: Mapping[str, str]
                    ) -> tuple[dict[str, dict[str, str]], tuple[str, ...]]:
    """Each purpose's settings, and the processor variables no purpose claims.

    A variable belongs to the purpose with the longest matching prefix, so
    ``HANDOFF_PROCESSOR_ZIP_X_Y`` goes to ``zip-x`` rather than ``zip``
    when both are installed. The core's own ``HANDOFF_PROCESSOR_MEMORY_LIMIT``
    and ``HANDOFF_PROCESSOR_TIME_LIMIT`` belong to no purpose.
    """
    prefixes = sorted(((f"{SETTINGS_PREFIX}{env_name(p)}_", p) for p in purposes),
                      key=lambda pair: len(pair[0]), reverse=True)
    settings: dict[str, dict[str, str]] = {p: {} for p in purposes}
    unclaimed = []
    for variable, value in sorted(environ.items()):
        if not variable.startswith(SETTINGS_PREFIX) or variable in VARIABLES:
            continue
        owner = next(((prefix, p) for prefix, p in prefixes
                      if variable.startswith(prefix) and len(variable) > len(prefix)), None)
        if owner is None:
            unclaimed.append(variable)
            continue
        prefix, purpose = owner
        settings[purpose][variable[len(prefix):].lower()] = value
    return settings, tuple(unclaimed)


def installed(environ: Mapping[str, str] | None = None) -> Registry:
    """The processors installed in this Python environment, configured from ``environ``."""
    return Registry(entry_points(group=GROUP), os.environ if environ is None else environ)


def installed_or_exit() -> Registry:
    """:func:`installed` for a service's start-up: a conflict ends the process."""
    return exit_on_config_error(installed)
