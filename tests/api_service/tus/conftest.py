"""The API mounted on a bare app, its geo client answered by a geo app on a temporary store."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api_service import Handoff
from api_service.geo import GeoClient
from api_service.replicas import Replicas
from geo_service.app import create_app as create_geo_app
from geo_service.store import FileStore, UploadStore
from handoff.auth import parse_credentials
from handoff.config import Settings
from tests.api_service.tus import MAX_SIZE
from tests.support.fakes import FakeQueue


class _Answer:
    """A test client's answer as the geo client reads a requests one."""

    def __init__(self, status_code: int, headers: Any, body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self._body = body

    def json(self) -> Any:
        return json.loads(self._body)


class InProcessGeo(GeoClient):
    """The API's real geo client, its calls answered by a geo app in this process.

    A streamed body is read whole before it is passed on: a fake's shortcut,
    which the relay's streaming does not depend on.
    """

    def __init__(self, settings: Settings, geo_app: Flask) -> None:
        super().__init__(settings)
        self._geo = geo_app.test_client()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        if hasattr(data, "read"):
            data = b"".join(iter(lambda: data.read(65536), b""))
        elif data is not None and not isinstance(data, (bytes, str)):
            data = b"".join(data)
        answer = self._geo.open(path, method=method.upper(), data=data, json=kwargs.get("json"),
                                headers=kwargs.get("headers"))
        return _Answer(answer.status_code, answer.headers, answer.get_data())


@dataclass
class Api:
    client: FlaskClient
    store: UploadStore
    queue: FakeQueue


@pytest.fixture
def api(tmp_path: Path) -> Api:
    settings = Settings(geo_secret="x", redis_url="redis://127.0.0.1:1/0", uploads_root=tmp_path,
                        api_tokens=parse_credentials("alice:alice-token,bob:bob-token"),
                        relay_chunk_size=4096, max_upload_size=MAX_SIZE, partial_ttl=3600.0)
    app = Flask(__name__)
    handoff_state = Handoff().init_app(app, settings=settings)
    queue = FakeQueue()
    handoff_state.replicas = Replicas([InProcessGeo(settings, create_geo_app(settings))])
    handoff_state.queue = queue  # type: ignore[assignment]
    return Api(app.test_client(), FileStore(tmp_path), queue)


@pytest.fixture
def client(api: Api) -> FlaskClient:
    return api.client
