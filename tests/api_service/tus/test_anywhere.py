"""Two geo replicas on one shared store: any of them serves any request, and none holds an upload.

Both geo apps keep their uploads in one temporary store, and the API is
told the store is shared; one replica's connections can be refused, or
broken off in the middle of a PATCH body, to see the other take over.
No record of which replica holds an upload is ever read or written: the
records given to the API fail every use.
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from api_service import Handoff
from api_service.geo import GeoNotReached, GeoUnreachable
from api_service.replicas import CAPACITY_TTL, Replicas
from geo_service.app import create_app as create_geo_app
from handoff.auth import parse_credentials
from handoff.config import Settings, parse_store_url
from handoff.tus import OFFSET_MEDIA_TYPE
from tests.api_service.test_replicas import Clock, FakeRecords
from tests.api_service.tus import ALICE, MAX_SIZE, TUS, head, location, metadata, patch, problem
from tests.api_service.tus.conftest import InProcessGeo
from tests.support.fakes import FakeQueue
from tests.support.multipart_bodies import content_type, upload_body

STORE = "s3://uploads/eu"


class Replica(InProcessGeo):
    """A named replica of the shared store that can refuse connections or die mid-body."""

    def __init__(self, settings: Settings, geo_app: Flask, name: str) -> None:
        super().__init__(settings, geo_app)
        self.name = name
        self.down = False
        self.dies_in_patch = False
        self.served: list[str] = []

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.down:
            raise GeoNotReached(502, "geo service unreachable or broke off: refused")
        if self.dies_in_patch and method == "patch":
            kwargs["data"].read(1)  # the body started to flow
            raise GeoUnreachable(502, "geo service unreachable or broke off: reset")
        self.served.append(f"{method} {path}")
        return super()._call(method, path, **kwargs)


@dataclass
class Shared:
    client: Any
    replicas: list[Replica]
    queue: FakeQueue
    clock: Clock

    def each_down(self) -> Iterator[Replica]:
        """Each replica down in turn, twice, while the API's view of their capacity is unchanged.

        The API tries the replicas in an order it changes as it goes; twice
        each makes sure the one down comes first at least once.
        """
        for replica in self.replicas * 2:
            replica.down = True
            yield replica
            replica.down = False

    def only(self, index: int) -> None:
        """Only replica ``index`` answers, and the API's view of their capacity is new."""
        for replica in self.replicas:
            replica.down = replica is not self.replicas[index]
        self.clock.now += CAPACITY_TTL

    def upload_calls(self, upload_id: str) -> list[list[str]]:
        return [[call for call in replica.served if upload_id in call]
                for replica in self.replicas]


@pytest.fixture
def shared(tmp_path: Path) -> Shared:
    settings = Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0", uploads_root=tmp_path,
                        api_tokens=parse_credentials("alice:alice-token"),
                        relay_chunk_size=4096, max_upload_size=MAX_SIZE, partial_ttl=3600.0)
    on_store = replace(settings, store_url=parse_store_url(STORE))
    replicas = []
    for index in range(2):
        geo_app = create_geo_app(settings)  # both keep their uploads in tmp_path
        geo_app.config["HANDOFF"] = replace(on_store, replica=f"geo-{index}")
        replicas.append(Replica(on_store, geo_app, f"geo-{index}"))
    app = Flask(__name__)
    state = Handoff().init_app(app, settings=on_store)
    records: Any = FakeRecords()
    records.down = True
    clients: Any = replicas
    clock = Clock()
    state.replicas = Replicas(clients, records, clock, settings=on_store)
    queue = FakeQueue()
    state.queue = queue  # type: ignore[assignment]
    return Shared(app.test_client(), replicas, queue, clock)


def _id(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def test_an_upload_is_served_by_both_replicas_in_turn(shared: Shared) -> None:
    url = location(shared.client, length=10)
    for offset in range(0, 10, 2):
        assert patch(shared.client, url, offset, b"0123456789"[offset:offset + 2]
                     ).status_code == 204
    assert all(shared.upload_calls(_id(url)))
    assert shared.queue.jobs == [(_id(url), "raw", {})]
    assert shared.queue.replicas == [None]  # the one queue


def test_a_replica_that_refuses_connections_is_skipped_for_every_request(shared: Shared) -> None:
    url = location(shared.client, length=8)
    for offset, _ in enumerate(shared.each_down()):
        assert head(shared.client, url).headers["Upload-Offset"] == str(offset * 2)
        answer = shared.client.get(url, headers=ALICE)
        assert (answer.status_code, answer.get_json()["offset"]) == (200, offset * 2)
        assert patch(shared.client, url, offset * 2, b"ab").status_code == 204
    assert shared.queue.jobs == [(_id(url), "raw", {})]
    for _ in shared.each_down():
        assert shared.client.get(url, headers=ALICE).get_json()["status"] == "queued"


def test_a_new_upload_goes_to_the_replica_that_answers(shared: Shared) -> None:
    shared.replicas[0].down = True
    for _ in range(2):
        assert shared.client.post("/v1/uploads", headers={**ALICE, **TUS, "Upload-Length": "3",
                                                          "Upload-Metadata": metadata()}
                                  ).status_code == 201
    response = shared.client.post("/v1/uploads", data=upload_body([("a.txt", b"abc")]),
                                  content_type=content_type(), headers=ALICE)
    assert response.status_code == 202
    assert shared.queue.replicas == [None]


def test_a_patch_whose_replica_dies_mid_body_is_geo_unavailable_and_resumes_elsewhere(
        shared: Shared) -> None:
    url = location(shared.client, length=10)
    for replica in shared.replicas:
        replica.dies_in_patch = True
    problem(patch(shared.client, url, 0, b"01234"), 502, "geo-unavailable")
    for replica in shared.replicas:
        replica.dies_in_patch = False
    for _ in shared.each_down():
        assert head(shared.client, url).headers["Upload-Offset"] == "0"
    assert patch(shared.client, url, 0, b"0123456789").status_code == 204


def test_with_every_replica_down_an_upload_is_geo_unavailable_never_replica_unavailable(
        shared: Shared) -> None:
    url = location(shared.client, length=10)
    for replica in shared.replicas:
        replica.down = True
    for answer in (head(shared.client, url), shared.client.get(url, headers=ALICE),
                   shared.client.delete(url, headers=ALICE),
                   patch(shared.client, url, 0, b"01234")):
        assert answer.status_code == 502
    problem(shared.client.get(url, headers={**ALICE, **TUS}), 502, "geo-unavailable")


def test_a_final_upload_joins_parts_made_on_different_replicas(shared: Shared) -> None:
    parts = []
    for index, data in enumerate((b"abc", b"def")):
        shared.only(index)
        answer = shared.client.post("/v1/uploads", data=data, headers={
            **ALICE, **TUS, "Upload-Length": "3", "Upload-Concat": "partial",
            "Content-Type": OFFSET_MEDIA_TYPE, "Upload-Metadata": metadata()})
        assert answer.status_code == 201
        parts.append(answer.headers["Location"])
    assert [bool(calls) for calls in shared.upload_calls(_id(parts[0]))] == [True, False]
    assert [bool(calls) for calls in shared.upload_calls(_id(parts[1]))] == [False, True]
    shared.replicas[0].down = False
    final = shared.client.post("/v1/uploads", headers={
        **ALICE, **TUS, "Upload-Concat": "final;" + " ".join(parts),
        "Upload-Metadata": metadata()})
    assert final.status_code == 201, final.get_data(as_text=True)
    assert [job[0] for job in shared.queue.jobs] == [_id(final.headers["Location"])]
