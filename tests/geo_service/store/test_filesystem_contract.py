"""The store contract, run against the filesystem store."""

from collections.abc import Callable
from pathlib import Path

import pytest

from geo_service.store import FileStore, UploadStore
from tests.geo_service.store.contract import StoreContract
from tests.geo_service.store.disk import interrupted_removal


class TestFileStore(StoreContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "uploads")

    @pytest.fixture
    def store(self, location: str) -> UploadStore:
        return FileStore(Path(location))

    @pytest.fixture
    def crash_mid_removal(self) -> Callable[[FileStore], None]:
        return interrupted_removal

    @pytest.fixture
    def add_stray(self) -> Callable[[FileStore], str]:
        def add(store: FileStore) -> str:
            (store.root / "notes.txt").write_text("not an upload")
            return "notes.txt"

        return add
