"""The checker's verdict, from what was sent and what the stack answered.

Pure: the run collects records and observations; this module alone says
what counts as lost, leaked or processed twice.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Words in a failure's reason that mean the work was lost rather than refused
#: on its merits (the bytes sent were valid ``raw`` input).
LOSS_MARKERS = ("lost", "requeue", "stale", "missing", "integrity", "mismatch", "sha256",
                "digest", "truncat", "incomplete")


@dataclass
class Attempt:
    """One upload tried: what was sent and how the API answered."""

    kind: str  # good, slow, bad-metadata, bad-purpose, broken-multipart, cut
    files: list[tuple[str, int, str]]  # (name, size, sha256) as sent
    status: int | None = None  # HTTP status, None when no answer (cut off, reset)
    upload_id: str | None = None
    answered_at: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.status == 202


@dataclass
class Verdict:
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    done: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.leaked or self.duplicates)


def outcome_problem(attempt: Attempt, final: Mapping[str, Any] | None) -> str | None:
    """Why an accepted upload's final status is a loss; None if it is not."""
    if final is None:
        return "gone (404)"
    state = final.get("status")
    if state == "failed":
        reason = str(final.get("error") or "")
        if not reason or any(word in reason.lower() for word in LOSS_MARKERS):
            return f"failed: {reason or 'no reason'}"
        return None
    if state != "done":
        return f"ended {state}"
    return _files_problem(attempt.files, (final.get("result") or {}).get("files"))


def _files_problem(sent: Sequence[tuple[str, int, str]], got: Any) -> str | None:
    if not isinstance(got, list):
        return "done without a file list"
    reported = [(f.get("name"), f.get("size"), f.get("sha256")) for f in got]
    if reported != [tuple(f) for f in sent]:
        return f"done with other files: sent {list(sent)}, got {reported}"
    return None


def judge(attempts: Sequence[Attempt], finals: Mapping[str, Mapping[str, Any] | None],
          terminal_seen: Mapping[str, Iterable[str]], leftovers: Iterable[str]) -> Verdict:
    """Judge a run.

    ``finals``: the last status of each accepted id (None when 404);
    ``terminal_seen``: every distinct terminal outcome observed per id during
    the run; ``leftovers``: what stays on disk that no live upload needs.
    """
    verdict = Verdict(tried=len(attempts))
    for attempt in attempts:
        if not attempt.accepted:
            verdict.refused += 1
            continue
        verdict.accepted += 1
        assert attempt.upload_id is not None
        final = finals.get(attempt.upload_id)
        if final is not None:
            verdict.done += final.get("status") == "done"
            verdict.failed += final.get("status") == "failed"
        problem = outcome_problem(attempt, final)
        if problem:
            verdict.lost.append(f"{attempt.upload_id}: {problem}")
    for upload_id, outcomes in terminal_seen.items():
        distinct = set(outcomes)
        if len(distinct) > 1:
            verdict.duplicates.append(f"{upload_id}: {sorted(distinct)}")
    verdict.leaked.extend(leftovers)
    return verdict


def summary(verdict: Verdict, faults: Mapping[str, int], seed: int) -> str:
    kinds = ",".join(f"{kind}={n}" for kind, n in sorted(faults.items())) or "none"
    return (f"soak seed={seed} tried={verdict.tried} accepted={verdict.accepted} "
            f"refused={verdict.refused} done={verdict.done} failed={verdict.failed} "
            f"faults={sum(faults.values())} ({kinds}) lost={len(verdict.lost)} "
            f"leaked={len(verdict.leaked)} duplicates={len(verdict.duplicates)}")
