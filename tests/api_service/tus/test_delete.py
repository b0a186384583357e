"""DELETE /v1/uploads/<id> with Tus-Resumable: termination, the same cancel as ever."""

from tests.api_service.tus import ALICE, BOB, TUS, head, location, patch, problem
from tests.api_service.tus.conftest import Api


def test_termination_removes_the_upload(api: Api):
    url = location(api.client, length=10)
    patch(api.client, url, 0, b"01")
    answer = api.client.delete(url, headers={**ALICE, **TUS})
    assert answer.status_code == 204 and answer.headers["Tus-Resumable"] == "1.0.0"
    assert list(api.store.upload_ids()) == []
    problem(head(api.client, url), 404, "not-found")


def test_another_tenant_cannot_terminate_it(api: Api):
    url = location(api.client)
    problem(api.client.delete(url, headers={**BOB, **TUS}), 404, "not-found")
    assert len(list(api.store.upload_ids())) == 1
