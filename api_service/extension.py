"""The public upload API as a Flask extension, for the standalone service and for host apps.

``Handoff(app, url_prefix="/files")`` mounts ``POST <prefix>/uploads`` and
``GET``/``DELETE <prefix>/uploads/<id>`` on any Flask app. It touches only
what it owns: one entry in ``app.extensions`` and its blueprint, whose
problem+json error handlers answer for its own routes alone. The host's
logging, its error pages, its ``MAX_CONTENT_LENGTH`` and the rest of its
config stay as they were.
"""

import logging

from flask import Flask

from api_service.replicas import Replicas
from api_service.routes import bp
from api_service.state import EXTENSION, HandoffState
from api_service.tenants import Authenticate, bearer_authenticator
from handoff.config import Settings, load_or_exit
from handoff.queue import JobQueue
from handoff.server.web import UploadSlots

log = logging.getLogger("handoff.api")


class Handoff:
    """Mount the upload API on a Flask app, at once or later with :meth:`init_app`.

    ``settings`` default to the ``HANDOFF_*`` environment; ``authenticate``
    (see :mod:`api_service.tenants`) to the bearer tokens of
    ``HANDOFF_API_TOKENS``. Arguments given to :meth:`init_app` win over
    those given here, so one instance can serve several apps of a factory.
    """

    def __init__(self, app: Flask | None = None, *, settings: Settings | None = None,
                 authenticate: Authenticate | None = None, url_prefix: str = "/v1") -> None:
        self.settings = settings
        self.authenticate = authenticate
        self.url_prefix = url_prefix
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, settings: Settings | None = None,
                 authenticate: Authenticate | None = None,
                 url_prefix: str | None = None) -> HandoffState:
        """Register the routes on ``app`` under the prefix; returns the app's state."""
        if EXTENSION in app.extensions:
            raise RuntimeError("Handoff is already registered on this app")
        settings = settings or self.settings or load_or_exit(need_secret=True)
        authenticate = authenticate or self.authenticate
        if authenticate is None and not settings.api_tokens:
            log.warning("HANDOFF_API_TOKENS is not set: the upload API is open to anyone, "
                        "as the tenant 'anonymous'")
        state = HandoffState(
            settings=settings,
            replicas=Replicas.from_settings(settings),
            queue=JobQueue(settings),
            authenticate=authenticate or bearer_authenticator(settings.api_tokens),
            slots=UploadSlots(settings.max_active_uploads),
        )
        app.extensions[EXTENSION] = state
        app.register_blueprint(bp, url_prefix=self.url_prefix if url_prefix is None
                               else url_prefix)
        return state

