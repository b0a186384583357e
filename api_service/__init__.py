"""The public REST API: validates uploads, relays them to the geo service, enqueues jobs.

It runs as a service of its own (:func:`api_service.app.create_app`) or
mounted into an existing Flask app with :class:`Handoff`.
"""

from api_service.extension import Handoff

__all__ = ["Handoff"]
