"""What the geo service's resources work with: one typed object per app, in its extensions."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask, current_app

from geo_service.store import UploadStore
from handoff.server import metrics
from handoff.server.web import UploadSlots

EXTENSION = "handoff.geo"


@dataclass
class GeoState:
    """The store, this process's upload slots, the purposes installed, the readiness check.

    Built by :func:`geo_service.app.create_app`; tests swap its parts here.
    """

    store: UploadStore
    slots: UploadSlots
    purposes: set[str] | frozenset[str]
    ready: Callable[[], dict[str, str]]


def current_state() -> GeoState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def state_of(app: Flask) -> GeoState:
    return app.extensions[EXTENSION]


@contextmanager
def upload_slot(upload_id: str | None = None) -> Iterator[None]:
    """One of this process's upload slots, or 503.

    Held slots are counted in :data:`metrics.GEO_IN_FLIGHT`, which the
    geo service's ``/capacity`` reports across its processes.
    """
    with current_state().slots.hold(upload_id), metrics.GEO_IN_FLIGHT.track_inprogress():
        yield
