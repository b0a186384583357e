"""Each processor call in a process of its own, bounded in memory and time.

Processors are plugins, and their input comes from the public: one that
exhausts memory or never returns must fail its own upload, not take the
worker with it. So the worker runs each call in a fresh interpreter,
``python -m geo_service.jobs.sandbox <memory limit>``, started by
:mod:`subprocess` (safe from a threaded process, unlike a bare fork). The
child caps its address space (``RLIMIT_AS``) at
``HANDOFF_PROCESSOR_MEMORY_LIMIT`` before it imports the processor, reads
the job as JSON on stdin and writes how the call ended as JSON on its
stdout (the processor's own prints go to stderr, the worker's log). The
worker waits at most ``HANDOFF_PROCESSOR_TIME_LIMIT`` and then kills it by
pid. The worker keeps the upload's lock throughout.

How a call ends maps onto the processor contract (:mod:`handoff.processors`)
unchanged: a result, ValidationFailed and BadResult come back as they were
raised; any other exception comes back as :class:`ProcessorError` (retried);
running out of memory or time is :class:`LimitExceeded`, which fails the
upload at once, since the same input would exceed the same limit again.
"""

import contextlib
import ctypes
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from handoff.config import Settings, variable
from handoff.processors import GROUP, BadResult, Job, JobFile, ValidationFailed, stored_result
from handoff.units import format_size

log = logging.getLogger("handoff.worker")
_PR_SET_PDEATHSIG = 1


class LimitExceeded(Exception):
    """The processor went past a limit of its own; the same input would again."""


class ProcessorError(Exception):
    """The processor raised something other than ValidationFailed: taken as transient."""


@dataclass(frozen=True)
class Limits:
    """What one processor call may use."""

    memory: int
    seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "Limits":
        return cls(settings.processor_memory_limit, settings.processor_time_limit)

    def memory_message(self) -> str:
        return (f"the processor exceeded {variable('processor_memory_limit')} "
                f"({format_size(self.memory)})")

    def time_message(self) -> str:
        return (f"the processor ran past {variable('processor_time_limit')} "
                f"({self.seconds:g} s)")


def call(target: str, job: Job, limits: Limits) -> dict[str, Any]:
    """The stored result of the processor ``target`` (``module:function``) run on ``job``."""
    child = subprocess.Popen([sys.executable, "-m", __name__, str(limits.memory)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        answer, _ = child.communicate(_job_json(target, job), timeout=limits.seconds)
    except subprocess.TimeoutExpired:
        raise LimitExceeded(limits.time_message()) from None
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return _result(answer, child.returncode, limits)


def _job_json(target: str, job: Job) -> bytes:
    return json.dumps({
        "target": target, "upload_id": job.upload_id, "purpose": job.purpose,
        "metadata": job.metadata, "files": [[f.entry, str(f.path)] for f in job.files],
        "work_dir": str(job.work_dir), "settings": job.settings,
    }).encode()


def _job(description: dict[str, Any]) -> Job:
    files = tuple(JobFile(entry, Path(path)) for entry, path in description["files"])
    return Job(description["upload_id"], description["purpose"], description["metadata"],
               files, Path(description["work_dir"]), description["settings"])


def _result(answer: bytes, returncode: int, limits: Limits) -> dict[str, Any]:
    """What the child's answer means for the job; one cut short is no answer."""
    try:
        outcome = json.loads(answer)
    except ValueError:
        raise ProcessorError(f"the processor's process ended without an answer "
                             f"({_how(returncode)})") from None
    kind, value = outcome["kind"], outcome["value"]
    if kind == "done":
        return value
    if kind == "invalid":
        raise ValidationFailed(value)
    if kind == "bad result":
        raise BadResult(value)
    if kind == "memory":
        raise LimitExceeded(limits.memory_message())
    log.warning("the processor raised: %s", outcome["trace"])
    raise ProcessorError(value)


def _how(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _run(target: str, job: Job) -> dict[str, Any]:
    """How the call ended, as JSON the worker reads.

    MemoryError is caught without keeping the exception, so its frames (and
    what they hold) are freed before the answer is written.
    """
    try:
        processor = EntryPoint(job.purpose, target, GROUP).load()
        return {"kind": "done", "value": stored_result(processor(job))}
    except ValidationFailed as exc:
        return {"kind": "invalid", "value": str(exc)}
    except BadResult as exc:
        return {"kind": "bad result", "value": str(exc)}
    except MemoryError:
        pass
    except Exception as exc:
        return {"kind": "error", "value": str(exc) or type(exc).__name__,
                "trace": traceback.format_exc()}
    return {"kind": "memory", "value": None}


def _die_with_parent() -> None:
    """Have the kernel kill this child if the worker goes away first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def main(memory: int) -> None:
    """The child: cap memory, read the job, run it, answer on the original stdout."""
    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    description = json.load(sys.stdin)
    outcome = _run(description["target"], _job(description))
    with answer:
        json.dump(outcome, answer)


if __name__ == "__main__":
    main(int(sys.argv[1]))
