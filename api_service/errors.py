"""The API's one map from what went wrong to the client's problem+json answer.

The geo service's refusals, the relay's and an unreachable replica's all
reach the client through here, so a multipart upload and a tus one are
refused alike for the same cause.
"""

import logging

from api_service.geo import GeoError
from api_service.relay import RelayError
from handoff import tus
from handoff.problems import TITLES, Problem
from handoff.server.web import RETRY_AFTER

log = logging.getLogger("handoff.api")

# Geo answers passed on to the client as they are; anything else is a 502.
_PASSED_ON = {400, 413, 507}
# An append's refusals a tus client acts on, passed on with their offset and members too.
_PASSED_ON_APPEND = {400, 403, 404, 409, 413, 415, 423, tus.CHECKSUM_MISMATCH}
_STANDARD_MEMBERS = {"type", "title", "status", "detail"}


def geo_problem(exc: GeoError, upload_id: str | None) -> Problem:
    """The geo service's refusal or failure, as the client is told of it."""
    log.warning("geo service failed", extra={"upload_id": upload_id, "error": exc.detail})
    if geo_kind(exc) == "cancelled":
        return Problem(409, "cancelled",
                       "the upload was cancelled while it was being sent", upload_id=upload_id)
    if geo_kind(exc) == "busy":
        return Problem(503, "busy", "the geo service is full; retry later",
                       headers={"Retry-After": str(RETRY_AFTER)}, upload_id=upload_id)
    if geo_kind(exc) == "store-unavailable":
        return Problem(503, "store-unavailable", exc.detail,
                       headers={"Retry-After": str(RETRY_AFTER)}, upload_id=upload_id)
    if exc.status in _PASSED_ON:
        return Problem(exc.status, _known_kind(exc), exc.detail, upload_id=upload_id)
    return Problem(502, "geo-unavailable",
                   f"the geo service failed: {exc.detail}", upload_id=upload_id)


def append_problem(exc: GeoError, upload_id: str) -> Problem:
    """The geo service's refusal of an append: its offset, its checksum status, as they are."""
    if exc.status not in _PASSED_ON_APPEND or not exc.problem:
        return geo_problem(exc, upload_id)
    problem = exc.problem
    headers = {"Upload-Offset": str(problem["offset"])} if "offset" in problem else {}
    extra = {key: value for key, value in problem.items() if key not in _STANDARD_MEMBERS}
    return Problem(exc.status, _known_kind(exc), str(problem.get("detail", "")),
                   headers=headers, **extra)


def geo_kind(exc: GeoError) -> str:
    """The slug of the geo service's problem type, if it sent one."""
    return str(exc.problem.get("type", "")).rsplit("/", 1)[-1]


def relay_problem(exc: RelayError, upload_id: str, detail: str | None = None) -> Problem:
    """The relay's refusal of the client's body; ``detail`` when it says more than the relay."""
    return Problem(exc.status, exc.kind, detail or exc.detail, upload_id=upload_id,
                   limit=exc.limit, headers=exc.headers)


def replica_unavailable(upload_id: str, detail: str) -> Problem:
    """The upload exists, or may, on a replica that does not answer: retry, never 404."""
    log.warning("geo replica unavailable", extra={"upload_id": upload_id, "error": detail})
    return Problem(503, "replica-unavailable",
                   "the geo service that holds the upload does not answer; retry later",
                   headers={"Retry-After": str(RETRY_AFTER)}, upload_id=upload_id)


def _known_kind(exc: GeoError) -> str:
    return geo_kind(exc) if geo_kind(exc) in TITLES else "geo-error"
