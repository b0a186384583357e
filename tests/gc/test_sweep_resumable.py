"""A resumable upload left receiving is swept as a partial, from its last byte.

Its Upload-Expires comes from the same store fact the sweeper measures
from, so what a client is told is what the sweeper does.
"""

from pathlib import Path

from flask.testing import FlaskClient

from geo_service.app import create_app
from geo_service.store import FileStore
from handoff.config import Settings
from handoff_gc.rules import Ttls
from handoff_gc.sweep import sweep
from tests.gc import age_tree
from tests.geo_service.http.tus import SECRET, UPLOAD_ID, create, patch
from tests.geo_service.store import disk

PARTIAL_TTL = 200.0
TTLS = Ttls(orphan=100.0, partial=PARTIAL_TTL, retention=1000.0)


def _client(root: Path) -> FlaskClient:
    settings = Settings(geo_secret=SECRET, uploads_root=root, partial_ttl=PARTIAL_TTL)
    return create_app(settings).test_client()


def test_an_abandoned_upload_is_swept_when_its_upload_expires_says(tmp_path: Path) -> None:
    client, store = _client(tmp_path), FileStore(tmp_path)
    create(client, length=10)
    age_tree(disk.folder(store, UPLOAD_ID), 1000)
    expires = patch(client, 0, b"01234").get_json()["expires"]

    kept = sweep(store, TTLS, clock=lambda: expires - 1)
    swept = sweep(store, TTLS, clock=lambda: expires + 1)

    assert kept.deletions == [] and kept.kept["receiving"] == 1
    assert [d.reason for d in swept.deletions] == ["partial"]
    assert not store.exists(UPLOAD_ID)


def test_each_append_moves_the_expiry_on(tmp_path: Path) -> None:
    client, store = _client(tmp_path), FileStore(tmp_path)
    create(client, length=10)
    age_tree(disk.folder(store, UPLOAD_ID), 1000)
    first = patch(client, 0, b"01").get_json()["expires"]
    age_tree(disk.folder(store, UPLOAD_ID), 1000)
    second = patch(client, 2, b"23").get_json()["expires"]

    assert second > first
    assert second == store.last_activity(UPLOAD_ID) + PARTIAL_TTL
