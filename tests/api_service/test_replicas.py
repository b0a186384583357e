"""Placing uploads on replicas and finding them again, over stand-ins for the geo clients."""

import socket
from collections import Counter
from typing import Any

import pytest

from api_service.geo import AnyReplica, GeoError, GeoUnreachable
from api_service.placement import RESERVE
from api_service.records import RecordUnavailable
from api_service.replicas import CAPACITY_TTL, NoReplica, Replicas, ReplicaUnavailable
from handoff.config import Settings, load_settings, parse_store_url

UPLOAD_ID = "0b6f2c1e-5d7a-4c39-9a43-7d4c2f0e8a11"
STORE = "s3://uploads/eu"
SHARED = Settings(geo_secret="x", store_url=parse_store_url(STORE))
DOWN = GeoUnreachable(502, "geo service unreachable or broke off: refused")


class FakeReplica:
    """A replica's answers; ``down`` makes every call fail as a dead one does."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.answered_name = name
        self.free_bytes = 10 * RESERVE
        self.in_flight = 0
        self.is_ready = True
        self.down = False
        self.uploads: set[str] = set()
        self.asked = 0
        self.store: str | None = None

    def capacity(self, timeout: tuple[float, float]) -> dict[str, Any]:
        self._fail()
        self.asked += 1
        return {"replica": self.answered_name, "free_bytes": self.free_bytes,
                "in_flight": self.in_flight, "ready": self.is_ready, "store": self.store}

    def status(self, upload_id: str) -> dict[str, Any] | None:
        self._fail()
        return {"id": upload_id} if upload_id in self.uploads else None

    def purposes(self) -> set[str]:
        self._fail()
        return {"raw"}

    def ready(self) -> str | None:
        return "refused" if self.down else None

    def _fail(self) -> None:
        if self.down:
            raise DOWN


class FakeRecords:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.down = False

    def remember(self, upload_id: str, replica: str) -> None:
        if self.down:
            raise RecordUnavailable("refused")
        self.names[upload_id] = replica

    def lookup(self, upload_id: str) -> str | None:
        if self.down:
            raise RecordUnavailable("refused")
        return self.names.get(upload_id)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _replicas(count: int = 3, clock: Clock | None = None
              ) -> tuple[Replicas, list[FakeReplica], FakeRecords]:
    fakes = [FakeReplica(f"geo-{i}") for i in range(count)]
    records = FakeRecords()
    clients: Any = fakes
    recorded: Any = records
    return Replicas(clients, recorded, clock or Clock()), fakes, records


def _upload_id(n: int) -> str:
    return f"{n:08x}-5d7a-4c39-9a43-7d4c2f0e8a11"


def test_sequential_uploads_over_idle_replicas_spread_evenly() -> None:
    clock = Clock()
    replicas, _, _ = _replicas(clock=clock)
    chosen = Counter()
    for n in range(60):
        clock.now += 0.3
        chosen[replicas.place(_upload_id(n), 1000).name] += 1
    assert chosen == {"geo-0": 20, "geo-1": 20, "geo-2": 20}


def test_each_placement_is_recorded() -> None:
    replicas, _, records = _replicas()
    client = replicas.place(UPLOAD_ID, 10)
    assert records.names == {UPLOAD_ID: client.name}


def test_the_replica_with_fewest_uploads_arriving_gets_the_upload() -> None:
    replicas, fakes, _ = _replicas()
    fakes[0].in_flight, fakes[1].in_flight, fakes[2].in_flight = 5, 1, 3
    assert replicas.place(UPLOAD_ID, 10).name == "geo-1"


def test_uploads_placed_since_the_last_answers_count_as_arriving() -> None:
    replicas, fakes, _ = _replicas()
    fakes[0].in_flight, fakes[1].in_flight, fakes[2].in_flight = 0, 2, 2
    chosen = [replicas.place(_upload_id(n), 10).name for n in range(3)]
    assert chosen == ["geo-0", "geo-0", "geo-1"]


def test_capacities_are_asked_again_only_after_the_ttl() -> None:
    clock = Clock()
    replicas, fakes, _ = _replicas(clock=clock)
    replicas.place(_upload_id(1), 10)
    replicas.place(_upload_id(2), 10)
    assert fakes[0].asked == 1
    clock.now += CAPACITY_TTL
    replicas.place(_upload_id(3), 10)
    assert fakes[0].asked == 2


@pytest.mark.parametrize("breaks", ["down", "not ready", "full", "wrong name"])
def test_a_replica_that_cannot_take_uploads_is_skipped(breaks: str) -> None:
    replicas, fakes, _ = _replicas()
    broken = fakes[1]
    if breaks == "down":
        broken.down = True
    elif breaks == "not ready":
        broken.is_ready = False
    elif breaks == "full":
        broken.free_bytes = 999
    else:
        broken.answered_name = "geo-7"
    chosen = {replicas.place(_upload_id(n), 1000).name for n in range(6)}
    assert chosen == {"geo-0", "geo-2"}


def test_no_replica_left_refuses_the_upload_with_each_reason() -> None:
    replicas, fakes, records = _replicas(2)
    fakes[0].down = True
    fakes[1].is_ready = False
    with pytest.raises(NoReplica, match="geo-0: unreachable; geo-1: not ready"):
        replicas.place(UPLOAD_ID, 10)
    assert records.names == {}


def test_a_placement_that_cannot_be_recorded_is_refused() -> None:
    replicas, _, records = _replicas()
    records.down = True
    with pytest.raises(RecordUnavailable):
        replicas.place(UPLOAD_ID, 10)


def test_the_record_finds_the_replica_without_asking_any() -> None:
    replicas, fakes, records = _replicas()
    records.names[UPLOAD_ID] = "geo-2"
    for fake in fakes:
        fake.down = True
    assert replicas.find(UPLOAD_ID) is fakes[2]


@pytest.mark.parametrize("records_down", [False, True])
def test_without_a_record_every_replica_is_asked_and_the_answer_written_back(
        records_down: bool) -> None:
    replicas, fakes, records = _replicas()
    fakes[1].uploads.add(UPLOAD_ID)
    records.down = records_down
    assert replicas.find(UPLOAD_ID) is fakes[1]
    records.down = False
    assert records.names == ({} if records_down else {UPLOAD_ID: "geo-1"})


def test_an_upload_no_replica_has_is_not_found() -> None:
    replicas, _, _ = _replicas()
    assert replicas.find(UPLOAD_ID) is None


def test_an_upload_not_found_while_a_replica_is_down_may_be_there() -> None:
    replicas, fakes, _ = _replicas()
    fakes[2].down = True
    with pytest.raises(ReplicaUnavailable, match="geo-2"):
        replicas.find(UPLOAD_ID)


def test_an_upload_recorded_on_a_replica_no_longer_listed_is_unavailable_not_gone() -> None:
    replicas, _, records = _replicas()
    records.names[UPLOAD_ID] = "geo-5"
    with pytest.raises(ReplicaUnavailable, match="geo-5"):
        replicas.find(UPLOAD_ID)


def test_an_upload_recorded_on_an_unlisted_replica_but_found_on_a_listed_one_is_found() -> None:
    replicas, fakes, records = _replicas()
    records.names[UPLOAD_ID] = "geo-5"
    fakes[0].uploads.add(UPLOAD_ID)
    assert replicas.find(UPLOAD_ID) is fakes[0]


def test_an_upload_found_while_another_replica_is_down_is_found() -> None:
    replicas, fakes, _ = _replicas()
    fakes[0].down = True
    fakes[1].uploads.add(UPLOAD_ID)
    assert replicas.find(UPLOAD_ID) is fakes[1]


def test_one_replica_holds_every_upload_without_asking_or_recording() -> None:
    single = FakeReplica(None)
    single.down = True
    client: Any = single
    replicas = Replicas([client])
    assert replicas.place(UPLOAD_ID, 10) is single
    assert replicas.find(UPLOAD_ID) is single


def test_several_replicas_need_records() -> None:
    clients: Any = [FakeReplica("geo-0"), FakeReplica("geo-1")]
    with pytest.raises(ValueError):
        Replicas(clients)


def test_purposes_come_from_the_first_replica_that_answers() -> None:
    replicas, fakes, _ = _replicas()
    fakes[0].down = True
    assert replicas.purposes() == {"raw"}
    for fake in fakes:
        fake.down = True
    with pytest.raises(GeoError):
        replicas.purposes()


def test_ready_while_any_replica_answers() -> None:
    replicas, fakes, _ = _replicas(2)
    fakes[0].down = True
    assert replicas.ready() is None
    fakes[1].down = True
    assert replicas.ready() == "geo-0: refused; geo-1: refused"


def test_uploads_of_one_affinity_share_a_replica() -> None:
    replicas, _, records = _replicas()
    for n in range(6):
        replicas.place(_upload_id(n), 10, affinity="alice")
    assert len(set(records.names.values())) == 1


def test_an_upload_kept_on_a_replica_is_recorded_there() -> None:
    replicas, fakes, records = _replicas()
    client: Any = fakes[2]
    replicas.keep(UPLOAD_ID, client)
    assert records.names == {UPLOAD_ID: "geo-2"}


def test_a_draining_replica_gets_no_new_uploads_but_still_serves_its_own() -> None:
    fakes = [FakeReplica(f"geo-{i}") for i in range(3)]
    records = FakeRecords()
    clients: Any = fakes
    recorded: Any = records
    replicas = Replicas(clients, recorded, Clock(), draining=frozenset({"geo-1"}))
    chosen = {replicas.place(_upload_id(n), 1000).name for n in range(6)}
    assert chosen == {"geo-0", "geo-2"}
    assert replicas.place(_upload_id(9), 1000, affinity="alice").name != "geo-1"
    records.names[UPLOAD_ID] = "geo-1"
    assert replicas.find(UPLOAD_ID) is fakes[1]


def _sharing(count: int = 3, clock: Clock | None = None
             ) -> tuple[Replicas, list[FakeReplica], FakeRecords]:
    """Replicas on one shared store; their records are down, so any use of them would fail."""
    fakes = [FakeReplica(f"geo-{i}") for i in range(count)]
    for fake in fakes:
        fake.store = STORE
    records = FakeRecords()
    records.down = True
    clients: Any = fakes
    recorded: Any = records
    return Replicas(clients, recorded, clock or Clock(), settings=SHARED), fakes, records


def _order(client: Any) -> list[str]:
    assert isinstance(client, AnyReplica)
    return [replica.name for replica in client.clients]


def test_with_a_shared_store_a_new_upload_tries_the_least_loaded_first() -> None:
    replicas, fakes, records = _sharing()
    fakes[0].in_flight, fakes[1].in_flight, fakes[2].in_flight = 5, 1, 3
    assert _order(replicas.place(UPLOAD_ID, 10)) == ["geo-1", "geo-2", "geo-0"]
    assert records.names == {}


def test_with_a_shared_store_free_bytes_do_not_matter() -> None:
    replicas, fakes, _ = _sharing(2)
    fakes[0].free_bytes = fakes[1].free_bytes = 0
    assert sorted(_order(replicas.place(UPLOAD_ID, 10 * RESERVE))) == ["geo-0", "geo-1"]


def test_with_a_shared_store_a_replica_on_another_store_is_never_asked() -> None:
    clock = Clock()
    replicas, fakes, _ = _sharing(clock=clock)
    fakes[1].store = "s3://other"
    fakes[2].store = None
    assert _order(replicas.place(UPLOAD_ID, 10)) == ["geo-0"]
    fakes[0].is_ready = False
    clock.now += CAPACITY_TTL
    assert _order(replicas.find(UPLOAD_ID)) == ["geo-0"]
    fakes[0].down = True
    clock.now += CAPACITY_TTL
    assert _order(replicas.find(UPLOAD_ID)) == ["geo-0"]
    fakes[0].down, fakes[0].answered_name = False, "geo-9"
    clock.now += CAPACITY_TTL
    with pytest.raises(NoReplica, match="geo-1: uses the store 's3://other', not 's3://uploads/eu'"):
        replicas.find(UPLOAD_ID)


def test_with_a_shared_store_any_replica_serves_an_upload_without_records_or_search() -> None:
    replicas, fakes, records = _sharing()
    fakes[0].in_flight = 2
    found = replicas.find(UPLOAD_ID)
    assert _order(found) == ["geo-1", "geo-2", "geo-0"]
    assert records.names == {}


def test_with_a_shared_store_replicas_that_may_be_back_come_last_for_an_upload_that_exists(
        ) -> None:
    replicas, fakes, _ = _sharing()
    fakes[0].down = True
    fakes[1].is_ready = False
    assert _order(replicas.find(UPLOAD_ID)) == ["geo-2", "geo-0", "geo-1"]


def test_with_a_shared_store_no_ready_replica_refuses_a_new_upload() -> None:
    replicas, fakes, _ = _sharing(2)
    fakes[0].down = True
    fakes[1].is_ready = False
    with pytest.raises(NoReplica, match="geo-0: unreachable; geo-1: not ready"):
        replicas.place(UPLOAD_ID, 10)


def test_with_a_shared_store_a_burst_of_new_uploads_spreads_over_the_replicas() -> None:
    replicas, _, _ = _sharing()
    firsts = Counter(_order(replicas.place(_upload_id(n), 10))[0] for n in range(6))
    assert firsts == {"geo-0": 2, "geo-1": 2, "geo-2": 2}


def test_with_a_shared_store_affinity_does_not_bind_a_replica() -> None:
    replicas, _, _ = _sharing()
    firsts = {_order(replicas.place(_upload_id(n), 10, affinity="alice"))[0] for n in range(3)}
    assert firsts == {"geo-0", "geo-1", "geo-2"}


def test_with_a_shared_store_several_replicas_need_no_records() -> None:
    clients: Any = [FakeReplica("geo-0"), FakeReplica("geo-1")]
    assert Replicas(clients, settings=SHARED).anywhere


def test_a_single_geo_service_on_a_shared_store_is_asked_as_before() -> None:
    single = FakeReplica(None)
    single.down = True
    client: Any = single
    replicas = Replicas([client], settings=SHARED)
    assert replicas.place(UPLOAD_ID, 10) is single
    assert replicas.find(UPLOAD_ID) is single
    assert not replicas.anywhere


def test_replicas_of_a_shared_store_from_the_settings_use_no_records() -> None:
    """Every replica and Redis refuse connections: nothing but the replicas is asked."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = load_settings({
        "HANDOFF_GEO_SECRET": "x", "HANDOFF_STORE_URL": STORE,
        "HANDOFF_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "HANDOFF_GEO_REPLICA_URLS": f"geo-0=http://127.0.0.1:{port},geo-1=http://127.0.0.1:{port}"})
    replicas = Replicas.from_settings(settings)
    assert replicas.anywhere
    assert _order(replicas.find(UPLOAD_ID)) == ["geo-0", "geo-1"]
