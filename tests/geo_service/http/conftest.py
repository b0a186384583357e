"""An app of the geo service on a temporary store, for the route tests of both resources."""

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from geo_service.app import create_app
from geo_service.store import FileStore, UploadStore
from handoff.config import Settings
from tests.geo_service.http import MAX_SIZE, SECRET


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(Settings(geo_secret=SECRET, uploads_root=tmp_path,
                               max_upload_size=MAX_SIZE, partial_ttl=3600.0))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return FileStore(tmp_path)
