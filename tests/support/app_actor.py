"""The application's end of the actor hook: a Dramatiq actor that knows handoff only by name.

Run as ``dramatiq tests.support.app_actor --queues <APP_QUEUE>`` with
``APP_BROKER_URL``, ``APP_ACTOR``, ``APP_QUEUE`` and ``APP_EVENTS_FILE`` set.
Each message is appended to the file as one JSON line, with whether any
handoff package was imported in this process (it must not be).
"""

import json
import os
import sys
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

HANDOFF_PACKAGES = ("handoff", "handoff_gc", "geo_service", "api_service")

dramatiq.set_broker(RedisBroker(url=os.environ["APP_BROKER_URL"]))
_write = threading.Lock()


@dramatiq.actor(actor_name=os.environ["APP_ACTOR"], queue_name=os.environ["APP_QUEUE"],
                max_retries=0)
def upload_finished(event: dict[str, Any]) -> None:
    imported = sorted(name for name in sys.modules if name.split(".")[0] in HANDOFF_PACKAGES)
    line = json.dumps({"event": event, "handoff_modules": imported}) + "\n"
    with _write, open(os.environ["APP_EVENTS_FILE"], "a") as handle:
        handle.write(line)
