"""The geo service's one map from what went wrong with an upload to the problem answered.

The multipart resource and the tus one meet the same failures (a sender
gone, a cancel, a full disk, a limit), so they answer them here, alike.
What differs is what becomes of the bytes received: a multipart upload is
removed, a tus upload keeps them to be resumed; ``kept`` says which.
"""

import errno
from collections.abc import Callable
from typing import Any

from geo_service.http import log
from geo_service.intake.append import ChecksumMismatch, LengthError, OffsetMismatch
from geo_service.intake.stop import Cancelled, Stopped
from geo_service.store import LockLost, UploadExists, UploadMissing
from geo_service.store.bucket import BucketUnavailable
from handoff import tus
from handoff.form import FieldError
from handoff.form_consumer import TooLarge
from handoff.multipart import MalformedForm
from handoff.problems import Problem, bad_request, not_found
from handoff.server.web import RETRY_AFTER


class BodyIncomplete(Exception):
    """The sender stopped before the body was complete."""


def upload_problem(exc: BaseException, upload_id: str, *, kept: bool) -> Problem | None:
    """The answer to an upload request that failed with ``exc``; None for a bug (a 500).

    A discarded multipart upload is removed at once, or, when the store is
    down, by the sweeper later: the answer says what holds either way.
    """
    outcome = "what was received is kept" if kept else "the partial upload is discarded"
    for types, build in _PROBLEMS:
        if isinstance(exc, types):
            return build(exc, upload_id, outcome)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Problem(507, "storage-full", f"the upload store is full; {outcome}",
                       upload_id=upload_id)
    return None


def store_unavailable(exc: BaseException, upload_id: str | None = None, outcome: str = ""
                      ) -> Problem:
    """503: the object store or the lock service failed; nothing half-written was committed.

    Retrying is right: a multipart upload is sent again, a tus client asks
    for the offset (what was made durable before the failure) and resumes.
    The SDK's words name the endpoint, bucket and key: they go to the log,
    not to the client.
    """
    log.warning("upload store failed", extra={"upload_id": upload_id, "error": str(exc)})
    why = ("the upload's lock expired before its bytes were committed"
           if isinstance(exc, LockLost) else "the upload store did not answer; retry later")
    return Problem(503, "store-unavailable", f"{why}; {outcome}" if outcome else why,
                   headers={"Retry-After": str(RETRY_AFTER)}, upload_id=upload_id)


def offset_mismatch(offset: int, upload_id: str) -> Problem:
    """409 with the upload's offset, in the body and in ``Upload-Offset``, to resume from."""
    return Problem(409, "offset-mismatch", f"the upload's offset is {offset}",
                   headers={"Upload-Offset": str(offset)}, upload_id=upload_id, offset=offset)


_Build = Callable[[Any, str, str], Problem]
_PROBLEMS: list[tuple[type[BaseException] | tuple[type[BaseException], ...], _Build]] = [
    (BodyIncomplete, lambda exc, upload_id, outcome: Problem(
        400, "incomplete-body", f"the request body ended early ({exc}); {outcome}",
        upload_id=upload_id)),
    ((MalformedForm, FieldError), lambda exc, upload_id, _: Problem(
        400, "bad-form", str(exc), upload_id=upload_id)),
    (LengthError, lambda exc, upload_id, _: bad_request(str(exc))),
    (Cancelled, lambda exc, upload_id, _: Problem(
        409, "cancelled", "the upload was cancelled while it was being received",
        upload_id=upload_id)),
    (Stopped, lambda exc, upload_id, outcome: Problem(
        409, "stopped", f"another request for this upload took it over; {outcome}",
        upload_id=upload_id)),
    (OffsetMismatch, lambda exc, upload_id, _: offset_mismatch(exc.offset, upload_id)),
    (TooLarge, lambda exc, upload_id, _: Problem(
        413, "too-large", exc.detail, upload_id=upload_id, limit=exc.limit)),
    (ChecksumMismatch, lambda exc, upload_id, _: Problem(
        tus.CHECKSUM_MISMATCH, "checksum-mismatch", f"{exc}; nothing of it was kept",
        upload_id=upload_id)),
    (UploadExists, lambda exc, upload_id, _: Problem(
        409, "exists", "an upload with this id already exists", upload_id=upload_id)),
    (UploadMissing, lambda exc, upload_id, _: not_found(upload_id)),
    ((BucketUnavailable, LockLost), store_unavailable),
]
