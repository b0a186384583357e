"""Each service's /metrics shows the handoff metrics; one upload moves them by its share.

The stack is private: nothing else uploads to it, so every counter's change
between the two scrapes is this upload's alone and can be asserted exactly.
"""

import os
from collections.abc import Callable

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.stacks import Stack

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(url: str) -> Scrape:
    """Every sample at ``url``, keyed by sample name and labels."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def _total(scrape: Scrape, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in scrape.items()
               if sample == name and wanted <= have)


def _delta(before: Scrape, after: Scrape) -> Callable[..., float]:
    return lambda name, **labels: _total(after, name, **labels) - _total(before, name, **labels)


def test_one_upload_adds_exactly_its_share_to_each_counter(make_stack: Callable[..., Stack]):
    stack = make_stack()
    urls = {"api": f"{stack.api_url}/metrics", "geo": f"{stack.geo_url}/metrics",
            "worker": f"http://127.0.0.1:{stack.ports['worker_metrics']}/metrics"}
    before = {name: _scrape(url) for name, url in urls.items()}

    data = os.urandom(1_000_000)
    response = stack.upload([("m.bin", data)])
    assert response.status_code == 202
    assert stack.wait_for(response.json()["id"])["status"] == "done"
    body_bytes = int(response.request.headers["Content-Length"])

    after = {name: _scrape(url) for name, url in urls.items()}
    api, geo, worker = (_delta(before[name], after[name]) for name in ("api", "geo", "worker"))
    assert api("handoff_api_uploads_total", outcome="accepted") == 1
    assert api("handoff_api_uploads_total") == 1
    assert api("handoff_api_received_bytes_total") == body_bytes
    assert api("handoff_api_relayed_bytes_total") == body_bytes
    assert api("handoff_api_relay_seconds_count") == 1
    assert api("handoff_api_enqueue_failures_total") == 0
    assert geo("handoff_geo_uploads_total", outcome="stored") == 1
    assert geo("handoff_geo_stored_bytes_total") == len(data)
    assert worker("handoff_jobs_total", outcome="done", purpose="raw") == 1
    assert worker("handoff_jobs_total") == 1
    assert worker("handoff_job_seconds_count", purpose="raw") == 1
    assert worker("dramatiq_messages_total") == 1
