"""What the upload routes work with, one object per app: ``app.extensions["handoff"]``."""

from dataclasses import dataclass

from flask import current_app

from api_service.replicas import Replicas
from api_service.tenants import Authenticate
from handoff.config import Settings
from handoff.queue import JobQueue
from handoff.server.web import UploadSlots

EXTENSION = "handoff"


@dataclass
class HandoffState:
    """The settings, the geo replicas, the queue, who is asking, the upload slots.

    Built by :class:`api_service.Handoff`; tests swap ``replicas`` and
    ``queue`` for fakes here.
    """

    settings: Settings
    replicas: Replicas
    queue: JobQueue
    authenticate: Authenticate
    slots: UploadSlots

    def ready(self) -> dict[str, str]:
        """Dependency -> error for each one the uploads cannot do without; empty when ready.

        A host folds this into its own readiness check; the standalone
        service serves it at ``/readyz``.
        """
        failures = {"geo": self.replicas.ready(), "redis": self.queue.ready()}
        return {name: error for name, error in failures.items() if error}


def current_state() -> HandoffState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION]
