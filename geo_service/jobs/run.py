"""One run of the ``process_upload`` job, independent of Dramatiq.

The rules that make redelivery safe live here: work happens only under the
upload's lock, an upload that already has a result is left alone, one its
tenant cancelled is removed instead of processed, and the stored bytes are
checked against the manifest before a processor sees them, in the same read
that copies them into the worker's scratch space where the store keeps no
local file (:mod:`~geo_service.jobs.scratch`). The outcome is
announced (:mod:`handoff.announce`) only where it is recorded, so a
redelivered job for a finished upload announces nothing.

Which processor runs, and with which settings, is the worker's
:class:`~handoff.processors.Registry`, read once when the worker starts.
The worker passes its :class:`~geo_service.jobs.sandbox.Limits`, so each call
runs in a child process of its own; without them (unit tests) it runs here.
"""

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from geo_service.jobs.sandbox import LimitExceeded, Limits, call
from geo_service.jobs.scratch import NoRoomYet, Scratch, TooLarge
from geo_service.jobs.verify import ManifestMismatch, downloads, verified_files
from geo_service.store import Busy, LockWait, State, UploadMissing, UploadStore
from handoff.announce import SILENT, Announcer, finish_upload
from handoff.processors import BadResult, Job, JobFile, Registry, ValidationFailed, stored_result
from handoff.server import metrics
from handoff.states import FINISHED

log = logging.getLogger("handoff.worker")


class Retry(Exception):
    """A transient problem: Dramatiq should try the job again later."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run(store: UploadStore, upload_id: str, purpose: str, metadata: dict[str, Any],
        processors: Registry, *, scratch: Scratch, final_attempt: bool = False,
        announcer: Announcer = SILENT, limits: Limits | None = None) -> str:
    """Process the upload once; returns the state it ends in."""
    extra = {"upload_id": upload_id}
    try:
        with store.lock(upload_id, timeout=LockWait.WORKER):
            return _run_locked(store, upload_id, purpose, metadata, processors, final_attempt,
                               announcer, limits, scratch)
    except Busy:
        raise Retry(f"upload {upload_id} stayed locked for {LockWait.WORKER:.0f}s") from None
    except UploadMissing:
        log.warning("job for an upload that no longer exists", extra=extra)
        return "missing"


def _run_locked(store: UploadStore, upload_id: str, purpose: str, metadata: dict[str, Any],
                processors: Registry, final_attempt: bool, announcer: Announcer,
                limits: Limits | None, scratch: Scratch) -> str:
    extra = {"upload_id": upload_id}
    if store.remove_if_cancelled(upload_id):
        log.info("job for a cancelled upload; removed it instead", extra=extra)
        return "cancelled"
    state = store.state(upload_id)
    if state in FINISHED:
        log.info("job already finished; nothing to do", extra={**extra, "state": str(state)})
        return str(state)
    if state is State.RECEIVING:
        raise Retry(f"upload {upload_id} has no manifest yet")
    manifest = store.manifest(upload_id) or {}
    store.claim(upload_id, {"worker": worker_id(), "claimed_at": time.time()})
    log.info("job started", extra={**extra, "purpose": purpose})
    started = time.monotonic()

    def finish(state: State, payload: dict[str, Any]) -> str:
        return _finish(store, upload_id, purpose, state, payload, started, announcer)

    try:
        result = _process(store, upload_id, purpose, metadata, manifest, processors, limits,
                          scratch)
    except (ValidationFailed, ManifestMismatch, BadResult, LimitExceeded, TooLarge) as exc:
        return finish(State.FAILED, {"error": str(exc)})
    except Exception as exc:
        if final_attempt:
            finish(State.FAILED, {"error": f"gave up: {exc}"})
        raise
    return finish(State.DONE, {"result": result})


def _process(store: UploadStore, upload_id: str, purpose: str, metadata: dict[str, Any],
             manifest: dict[str, Any], processors: Registry, limits: Limits | None,
             scratch: Scratch) -> dict[str, Any]:
    target = processors.target(purpose)
    if target is None:
        raise ValidationFailed(f"no processor for purpose {purpose!r}")
    try:
        with scratch.job(upload_id, downloads(store, upload_id, manifest)) as folder:
            job = prepare_job(store, upload_id, purpose, metadata, manifest,
                              processors.settings(purpose), folder)
            if limits is not None:
                return call(target, job, limits)
            processor = processors.processor(purpose)
            assert processor is not None
            return stored_result(processor(job))
    except NoRoomYet as exc:
        raise Retry(str(exc)) from None


def prepare_job(store: UploadStore, upload_id: str, purpose: str, metadata: dict[str, Any],
                manifest: dict[str, Any], settings: dict[str, str], folder: Path) -> Job:
    """The processor's view of a complete upload, its files verified, in an empty ``folder``.

    Files the store keeps no local path for are copied into ``folder/files``;
    the processor's own scratch is ``folder/work``.
    """
    paths = verified_files(store, upload_id, manifest, folder / "files")
    work_dir = folder / "work"
    work_dir.mkdir()
    files = tuple(JobFile(entry, path)
                  for entry, path in zip(manifest["files"], paths, strict=True))
    return Job(upload_id, purpose, metadata, files, work_dir, settings)


def _finish(store: UploadStore, upload_id: str, purpose: str, state: State,
            payload: dict[str, Any], started: float, announcer: Announcer) -> str:
    seconds = round(time.monotonic() - started, 3)
    metrics.JOBS.labels(purpose, str(state)).inc()
    metrics.JOB_SECONDS.labels(purpose).observe(seconds)
    finish_upload(store, upload_id, {"status": str(state), "finished_at": time.time(),
                                     "seconds": seconds, **payload}, announcer)
    level = logging.INFO if state is State.DONE else logging.WARNING
    log.log(level, "job %s", state, extra={"upload_id": upload_id, "seconds": seconds,
                                            "error": payload.get("error")})
    return str(state)
