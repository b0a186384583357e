"""Which geo replica a new upload goes to: the rule alone, without any I/O.

A replica is eligible when it is not draining (``HANDOFF_GEO_DRAINING``:
it still serves what it holds), answered, calls itself the name it is
configured under, is ready, and has room: free bytes at least the upload's
declared size, or at least :data:`RESERVE` when the size is unknown. Among
the eligible, the one with the fewest uploads arriving wins; ties go round
the replicas in turn, so idle replicas share uploads evenly and the same
inputs always give the same answer.

With a shared store (an object store every replica reaches) free bytes do
not matter, and a replica must use the same store as the API: one on
another store would keep uploads the others cannot see.

An upload placed with an affinity key (a tenant's tus partial uploads,
which a final upload joins on one replica) goes instead to the eligible
replica that ranks first for that key by rendezvous hashing: the same one
every time while it stays eligible, whatever the others do.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handoff.units import MiB

#: Free bytes a replica must keep for an upload of unknown size.
RESERVE = 64 * MiB
UNREACHABLE = "unreachable"
NOT_READY = "not ready"
DRAINING = "draining"
#: Refusals of a replica that may still serve an upload that exists (with a shared store).
LATER = (UNREACHABLE, NOT_READY, DRAINING)


@dataclass(frozen=True)
class Capacity:
    """A replica's ``/capacity`` answer."""

    replica: str | None
    free_bytes: int
    in_flight: int
    ready: bool
    #: The replica's store URL; None from a replica that does not say.
    store: str | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "Capacity":
        """The answer as sent; a malformed one raises ValueError (or KeyError, TypeError)."""
        replica = document["replica"]
        if replica is not None and not isinstance(replica, str):
            raise ValueError(f"replica is not a name: {replica!r}")
        store = document.get("store")
        if store is not None and not isinstance(store, str):
            raise ValueError(f"store is not a URL: {store!r}")
        return cls(replica, int(document["free_bytes"]), int(document["in_flight"]),
                   document["ready"] is True, store)


def refusal(expected: str | None, capacity: Capacity | None, size: int | None,
            draining: bool = False, shared_store: str | None = None) -> str | None:
    """Why the replica configured as ``expected`` cannot take the upload; None if it can.

    ``shared_store`` is the URL of the store the API shares with every replica, if it does.
    """
    if draining:
        return DRAINING
    if capacity is None:
        return UNREACHABLE
    if capacity.replica != expected:
        return f"calls itself {capacity.replica!r}"
    if shared_store is not None and capacity.store != shared_store:
        return f"uses the store {capacity.store!r}, not {shared_store!r}"
    if not capacity.ready:
        return NOT_READY
    if shared_store is None and capacity.free_bytes < (RESERVE if size is None else size):
        return "full"
    return None


class RoundRobin:
    """The least busy eligible replica, taking turns among equals.

    ``turn`` is where the next tie starts looking; it moves past each
    replica chosen, so a run of ties visits every replica once per round.
    """

    def __init__(self) -> None:
        self.turn = 0

    def choose(self, loads: Sequence[int | None]) -> int | None:
        """The index to place on, given each replica's load (None: not eligible); None if none."""
        ranked = self.rank(loads)
        return ranked[0] if ranked else None

    def rank(self, loads: Sequence[int | None]) -> list[int]:
        """Every eligible index, the one :meth:`choose` picks first, then the next best."""
        eligible = [index for index, load in enumerate(loads) if load is not None]
        ranked = sorted(eligible, key=lambda index: (loads[index],
                                                     (index - self.turn) % len(loads)))
        if ranked:
            self.turn = ranked[0] + 1
        return ranked


def by_affinity(key: str, names: Sequence[str | None], loads: Sequence[int | None]) -> int | None:
    """The index of the eligible replica (load not None) that ranks first for ``key``."""
    eligible = [index for index, load in enumerate(loads) if load is not None]
    if not eligible:
        return None
    return max(eligible, key=lambda index: hashlib.sha256(
        f"{key}\n{names[index]}".encode()).digest())
