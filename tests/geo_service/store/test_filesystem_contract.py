"""The store contract, run against the filesystem store."""

from pathlib import Path

import pytest

from geo_service.store import FileStore, UploadStore
from tests.geo_service.store.contract import StoreContract


class TestFileStore(StoreContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "uploads")

    @pytest.fixture
    def store(self, location: str) -> UploadStore:
        return FileStore(Path(location))
