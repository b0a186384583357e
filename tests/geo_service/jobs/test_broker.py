"""``build_broker``: handoff's actors on a broker that also runs an application's middleware.

Each check runs in a fresh interpreter: importing the broker module points
prometheus_client at Dramatiq's multiprocess folder, which must not leak
into the test process or the services it starts.
"""

import json
import subprocess
import sys
from typing import Any

import pytest

_BUILD = """
import json
import dramatiq
from dramatiq.middleware import Middleware
from geo_service.jobs.broker import build_broker
from handoff.config import Settings

imported_sets_no_broker = dramatiq.broker.global_broker is None

class Seen(Middleware):
    def __init__(self):
        self.actors = []
    def after_declare_actor(self, broker, actor):
        self.actors.append(actor.actor_name)

seen = Seen()
settings = Settings(redis_url="redis://127.0.0.1:1/0", queue="jobs", webhook_queue="hooks",
                    job_max_retries=3, replica=REPLICA)
broker = build_broker(settings, middleware=[seen])
print(json.dumps({
    "imported_sets_no_broker": imported_sets_no_broker,
    "still_no_global_broker": dramatiq.broker.global_broker is None,
    "middleware": [type(m).__name__ for m in broker.middleware],
    "seen": seen.actors,
    "actors": {name: [broker.get_actor(name).queue_name,
                      broker.get_actor(name).options.get("max_retries")]
               for name in sorted(broker.get_declared_actors())},
}))
"""


def _build(replica: str) -> dict[str, Any]:
    script = _BUILD.replace("REPLICA", repr(replica))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    """What a broker built with an application's middleware holds."""
    return _build("")


def test_a_replicas_jobs_come_from_its_own_queue_and_webhooks_from_the_shared_one() -> None:
    assert _build("geo-1")["actors"] == {"deliver_webhook": ["hooks", 12],
                                         "process_upload": ["jobs.geo-1", 3]}


def test_the_actors_are_declared_on_the_queues_of_the_settings(built: dict[str, Any]) -> None:
    assert built["actors"] == {"deliver_webhook": ["hooks", 12], "process_upload": ["jobs", 3]}


def test_the_applications_middleware_runs_after_handoffs_and_sees_the_actors(
        built: dict[str, Any]) -> None:
    names = built["middleware"]
    assert names[-1] == "Seen"
    assert names.index("CurrentMessage") < names.index("Heartbeat") < names.index("Seen")
    assert "WorkerMetrics" in names
    assert sorted(built["seen"]) == ["deliver_webhook", "process_upload"]


def test_building_a_broker_leaves_dramatiqs_global_broker_to_the_caller(
        built: dict[str, Any]) -> None:
    assert built["imported_sets_no_broker"] and built["still_no_global_broker"]
