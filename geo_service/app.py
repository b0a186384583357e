"""Application factory for the geo service (run under gunicorn)."""

from flask import Flask

from geo_service.http import tus
from geo_service.http.errors import store_unavailable
from geo_service.http.state import EXTENSION, GeoState
from geo_service.http.uploads import bp
from geo_service.store import LockLost, open_store
from geo_service.store.bucket import BucketUnavailable
from handoff.config import Settings, load_or_exit
from handoff.processors import installed_or_exit
from handoff.server.web import UploadSlots, make_app


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_or_exit(need_secret=True)
    store = open_store(settings)

    def ready() -> dict[str, str]:
        problem = store.problem()
        return {} if problem is None else {"store": problem}

    app = make_app("geo_service", settings, ready)
    app.extensions[EXTENSION] = GeoState(store, UploadSlots(settings.max_active_uploads),
                                         installed_or_exit().purposes, ready)
    app.register_blueprint(bp)
    app.register_blueprint(tus.bp)
    for failure in (BucketUnavailable, LockLost):
        app.register_error_handler(failure, lambda exc: store_unavailable(exc).response())
    return app
