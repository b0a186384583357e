"""The store contract's fixtures for an object store: the same on every provider.

A test module subclasses :class:`ObjectStoreContract` and gives ``location``,
its provider's store URL with a fresh prefix.
"""

from collections.abc import Callable

import pytest

from geo_service.store import ObjectStore, UploadStore, open_store_at
from tests.geo_service.store.contract import ID, StoreContract, sealed


class ObjectStoreContract(StoreContract):
    @pytest.fixture
    def store(self, location: str) -> UploadStore:
        opened = open_store_at(location)
        assert isinstance(opened, ObjectStore)
        return opened

    @pytest.fixture
    def crash_mid_removal(self) -> Callable[[ObjectStore], None]:
        """A removal cut short after the tenant marker, the first thing a removal deletes."""

        def crash(store: ObjectStore) -> None:
            sealed(store)
            store.bucket.delete([f"{ID}/tenant.json"])

        return crash

    @pytest.fixture
    def add_stray(self) -> Callable[[ObjectStore], str]:
        def add(store: ObjectStore) -> str:
            store.bucket.put("notes/readme.txt", b"not an upload")
            return "notes"

        return add
