"""The geo replicas an API process talks to: where a new upload goes, where an old one is.

Each upload lives on one replica. :meth:`Replicas.place` picks it by the
rule in :mod:`api_service.placement`, from each replica's ``/capacity``
(asked with short timeouts, kept for :data:`CAPACITY_TTL`), and records
the choice (:mod:`api_service.records`) before any byte is sent.
:meth:`Replicas.find` reads the record; without one it asks every replica
and writes the answer back. With one replica configured nothing is asked
or recorded: it holds every upload, as a single geo service always did.

When the replicas share their store (an object store), any of them serves
any upload: nothing is recorded or searched. A new upload and any later
request both get an :class:`~api_service.geo.AnyReplica` over the ready
replicas, least loaded first, which moves on to the next when one does
not answer.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from api_service.geo import AnyReplica, GeoClient, GeoError
from api_service.placement import LATER, Capacity, RoundRobin, by_affinity, refusal
from api_service.records import RecordUnavailable, ReplicaRecords
from handoff.config import Settings

log = logging.getLogger("handoff.api")

#: Seconds a replica's ``/capacity`` answer is used for placing uploads.
CAPACITY_TTL = 1.0
#: (connect, read) seconds to wait for a ``/capacity`` answer.
CAPACITY_TIMEOUT = (0.5, 1.0)


class NoReplica(Exception):
    """No replica can take a new upload now; the message says why of each."""


class ReplicaUnavailable(Exception):
    """The replica that holds the upload, or one that may, does not answer."""


class Replicas:
    """One :class:`GeoClient` per replica, in the configured order.

    Several replicas need ``records``, unless ``settings`` say they share a
    store; one (unnamed) needs none.
    """

    def __init__(self, clients: Sequence[GeoClient], records: ReplicaRecords | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 draining: frozenset[str] = frozenset(),
                 settings: Settings | None = None) -> None:
        self._shared = settings if settings is not None and settings.shared_store else None
        if not clients or (len(clients) > 1 and records is None and self._shared is None):
            raise ValueError("several replicas need a record of which holds each upload")
        self.clients = list(clients)
        self._by_name = {client.name: client for client in self.clients}
        self._records = records
        self._clock = clock
        self._draining = draining
        self._turns = RoundRobin()
        self._lock = threading.Lock()
        self._capacities: list[Capacity | None] = []
        self._placed = [0] * len(self.clients)
        self._fetched_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "Replicas":
        """The replicas of ``HANDOFF_GEO_REPLICA_URLS``, or the one at ``HANDOFF_GEO_URL``."""
        clients = [GeoClient(settings, url, name) for name, url in settings.geo_replicas]
        several = len(clients) > 1 and not settings.shared_store
        records = ReplicaRecords.from_settings(settings) if several else None
        return cls(clients, records, draining=settings.geo_draining, settings=settings)

    @property
    def several(self) -> bool:
        return len(self.clients) > 1

    @property
    def anywhere(self) -> bool:
        """Whether any of several replicas serves any upload: they share their store."""
        return self.several and self._shared is not None

    def place(self, upload_id: str, size: int | None, affinity: str | None = None) -> GeoClient:
        """The replica a new upload of ``size`` bytes (None: unknown) goes to, recorded.

        Uploads of one ``affinity`` key go to one replica while it can take
        them (see :mod:`api_service.placement`). Raises :class:`NoReplica`,
        or :class:`RecordUnavailable` when the choice cannot be recorded
        (the upload could not be found again).
        """
        if not self.several:
            return self.clients[0]
        if self._shared is not None:
            return self._anywhere(new=True)
        with self._lock:
            capacities = self._fresh_capacities()
            reasons = self._reasons(capacities, size)
            loads = self._loads(capacities, reasons)
            index = (self._turns.choose(loads) if affinity is None else
                     by_affinity(affinity, [client.name for client in self.clients], loads))
            if index is None:
                raise self._no_replica(reasons)
            self._placed[index] += 1
        client = self.clients[index]
        self._remember(upload_id, client)
        return client

    def _anywhere(self, new: bool) -> AnyReplica:
        """The ready replicas of a shared store, least loaded first, as one client.

        A ``new`` upload counts as arriving on the first. A request for an
        upload that exists tries after them those that were unreachable,
        not ready or draining when asked, as they may serve it still; never
        one that is misconfigured. Raises :class:`NoReplica` when none is left.
        """
        assert self._shared is not None
        with self._lock:
            capacities = self._fresh_capacities()
            reasons = self._reasons(capacities, None)
            ranked = self._turns.rank(self._loads(capacities, reasons))
            if new and ranked:
                self._placed[ranked[0]] += 1
        if not new:
            ranked += [index for index, reason in enumerate(reasons) if reason in LATER]
        if not ranked:
            raise self._no_replica(reasons)
        return AnyReplica(self._shared, [self.clients[index] for index in ranked])

    def _no_replica(self, reasons: Sequence[str | None]) -> NoReplica:
        return NoReplica("; ".join(f"{client.name}: {reason}" for client, reason
                                   in zip(self.clients, reasons, strict=True)))

    def _reasons(self, capacities: Sequence[Capacity | None],
                 size: int | None) -> list[str | None]:
        """Why each replica cannot take an upload of ``size`` bytes now (None: it can)."""
        store = str(self._shared.store_url) if self._shared is not None else None
        return [refusal(client.name, capacity, size, client.name in self._draining, store)
                for client, capacity in zip(self.clients, capacities, strict=True)]

    def keep(self, upload_id: str, client: GeoClient) -> None:
        """Record a new upload made on ``client`` by choice, not placement (a tus final upload).

        Raises :class:`RecordUnavailable` as :meth:`place` does.
        """
        self._remember(upload_id, client)

    def _loads(self, capacities: Sequence[Capacity | None],
               reasons: Sequence[str | None]) -> list[int | None]:
        """Each replica's uploads arriving, None for one refused.

        Uploads placed here since the answers came count too: a burst
        within one answer's life spreads out instead of piling on one.
        """
        return [None if reason or capacity is None else capacity.in_flight + placed
                for capacity, reason, placed in zip(capacities, reasons, self._placed,
                                                    strict=True)]

    def find(self, upload_id: str) -> GeoClient | None:
        """The replica that holds the upload; None if none has it.

        Raises :class:`ReplicaUnavailable` when the upload is not found but
        a replica that did not answer may hold it, or its record names a
        replica no longer configured. With a shared store, every replica
        that may answer, as one client (:class:`NoReplica` if none).
        """
        if not self.several:
            return self.clients[0]
        if self._shared is not None:
            return self._anywhere(new=False)
        try:
            name = self._records.lookup(upload_id) if self._records else None
        except RecordUnavailable as exc:
            log.warning("replica record unreadable; asking every replica",
                        extra={"upload_id": upload_id, "error": str(exc)})
            name = None
        if name in self._by_name:
            return self._by_name[name]
        found = self._search(upload_id)
        if found is None and name is not None:
            # a replica taken out of the list (scaled down) still holds what it held
            raise ReplicaUnavailable(f"its replica {name} is not among the configured ones")
        return found

    def _search(self, upload_id: str) -> GeoClient | None:
        silent = []
        for client in self.clients:
            try:
                status = client.status(upload_id)
            except GeoError as exc:
                silent.append(f"{client.name}: {exc.detail}")
                continue
            if status is not None:
                self._remember(upload_id, client, required=False)
                return client
        if silent:
            raise ReplicaUnavailable("; ".join(silent))
        return None

    def purposes(self) -> set[str]:
        """The purposes the replicas accept: every replica runs the same image.

        Asked of the first that answers; the last one's GeoError if none does.
        """
        for client in self.clients[:-1]:
            try:
                return client.purposes()
            except GeoError:
                continue
        return self.clients[-1].purposes()

    def ready(self) -> str | None:
        """None while a replica is reachable: uploads can still be placed on it."""
        failures = [f"{client.name or 'geo'}: {error}" for client in self.clients
                    if (error := client.ready()) is not None]
        return "; ".join(failures) if len(failures) == len(self.clients) else None

    def _remember(self, upload_id: str, client: GeoClient, required: bool = True) -> None:
        if self._records is None or client.name is None:  # one replica holds every upload
            return
        try:
            self._records.remember(upload_id, client.name)
        except RecordUnavailable:
            if required:
                raise
            log.warning("could not write the replica record back", extra={"upload_id": upload_id})

    def _fresh_capacities(self) -> list[Capacity | None]:
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= CAPACITY_TTL:
            # All at once: a replica that hangs costs one timeout, not one per replica.
            with ThreadPoolExecutor(max_workers=len(self.clients)) as pool:
                self._capacities = list(pool.map(self._capacity, self.clients))
            self._placed = [0] * len(self.clients)
            self._fetched_at = self._clock()
        return self._capacities

    @staticmethod
    def _capacity(client: GeoClient) -> Capacity | None:
        try:
            document: Any = client.capacity(CAPACITY_TIMEOUT)
            capacity = Capacity.from_document(document)
        except GeoError as exc:
            log.warning("geo replica not placeable", extra={"replica": client.name,
                                                           "error": exc.detail})
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("geo replica sent a malformed capacity", extra={"replica": client.name,
                                                                       "error": str(exc)})
            return None
        if capacity.replica != client.name:
            log.error("geo replica misconfigured: it calls itself another name",
                      extra={"replica": client.name, "answered": capacity.replica})
        return capacity
