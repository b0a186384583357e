"""The ``raw`` purpose: no interpretation, just proof the bytes arrived intact.

The worker re-hashes every file against the manifest before any processor
runs, so by the time this is called the manifest's sizes and digests are
the verified truth about the stored bytes; reading them again would only
double the disk traffic.
"""

from typing import Any

from handoff.processors import Job


def process(job: Job) -> dict[str, Any]:
    files = [{"name": file.name, "size": file.size, "sha256": file.sha256} for file in job.files]
    return {"files": files, "verified": True}
