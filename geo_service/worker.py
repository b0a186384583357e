"""What ``dramatiq geo_service.worker --queues <queue> <webhook queue>`` loads.

Dramatiq imports this module and runs the actors of the global broker, so
importing it does exactly that much: the settings, the worker's logs, and
the broker of :func:`geo_service.jobs.broker.build_broker`, set as Dramatiq's.
The API never imports this module; it enqueues by actor name and queue.
"""

import dramatiq

# First: geo_service.jobs.broker must be imported before prometheus_client.
from geo_service.jobs.broker import build_broker

# isort: split
from handoff.config import load_or_exit
from handoff.server.logs import setup_logging

settings = load_or_exit(signs_webhooks=True)
setup_logging(settings.log_level, "worker")
broker = build_broker(settings)
dramatiq.set_broker(broker)
