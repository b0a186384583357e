"""Each service's /metrics shows the handoff metrics, and they move with an upload."""

import os
import re

import requests


def _value(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    return sum(values)


def _scrape(url: str) -> str:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def test_metrics_change_after_an_upload(stack):
    worker_url = f"http://127.0.0.1:{stack.ports['worker_metrics']}/metrics"
    api_before = _scrape(f"{stack.api_url}/metrics")
    geo_before = _scrape(f"{stack.geo_url}/metrics")

    data = os.urandom(1_000_000)
    response = stack.upload([("m.bin", data)])
    assert response.status_code == 202
    assert stack.wait_for(response.json()["id"])["status"] == "done"

    api_after = _scrape(f"{stack.api_url}/metrics")
    accepted = 'handoff_api_uploads_total', '{outcome="accepted"}'
    assert _value(api_after, *accepted) == _value(api_before, *accepted) + 1
    assert (_value(api_after, "handoff_api_relayed_bytes_total")
            - _value(api_before, "handoff_api_relayed_bytes_total")) > len(data)
    assert _value(api_after, "handoff_api_relay_seconds_count") >= 1

    geo_after = _scrape(f"{stack.geo_url}/metrics")
    assert (_value(geo_after, "handoff_geo_stored_bytes_total")
            - _value(geo_before, "handoff_geo_stored_bytes_total")) == len(data)

    worker = _scrape(worker_url)
    assert _value(worker, "handoff_jobs_total", '{outcome="done",purpose="raw"}') >= 1
    assert "dramatiq_messages_total" in worker
