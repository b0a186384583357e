"""A running copy of the product for tests: ``launch`` starts it, ``Stack`` drives it.

Ports are picked free and every process is stopped by pid (its whole
session) by ``Stack.stop_all``; tests get stacks from
``tests/support/processes.py``, whose teardown calls it and removes the
stack's temp folder.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests_toolbelt import MultipartEncoder

from devstack import processes
from handoff.auth import parse_credentials

SECRET = "test-geo-secret"
DEFAULT_COMPONENTS = ("redis", "geo", "worker", "api")


@dataclass
class Stack(processes.LocalStack):
    """One running copy of the product, with helpers to drive it like a client."""

    client_headers: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.url("api")

    @property
    def geo_url(self) -> str:
        return self.url("geo")

    def replica_of(self, upload_id: str) -> str | None:
        """The replica whose store holds the upload (``geo-<i>``), by its folder on disk."""
        held = [index for index in range(self.replicas)
                if (self.uploads / processes.replica_name(index) / upload_id).is_dir()]
        return processes.replica_name(held[0]) if len(held) == 1 else None

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def upload(self, files: Sequence[tuple[str, Any]], purpose: str | None = "raw",
               metadata: str | None = None, headers: dict[str, str] | None = None,
               fields: Sequence[tuple[str, Any]] = ()) -> requests.Response:
        """POST /v1/uploads as a streaming multipart client would.

        ``files`` holds (filename, bytes or open binary file) pairs, sent as
        parts named ``file``; ``fields`` are sent first, after purpose/metadata.
        """
        parts: list[tuple[str, Any]] = []
        if purpose is not None:
            parts.append(("purpose", purpose))
        if metadata is not None:
            parts.append(("metadata", metadata))
        parts.extend(fields)
        parts.extend(("file", (name, content, "application/octet-stream"))
                     for name, content in files)
        encoder = MultipartEncoder(parts)
        return requests.post(f"{self.api_url}/v1/uploads", data=encoder, timeout=300,
                             headers={"Content-Type": encoder.content_type,
                                      **(self.client_headers if headers is None else headers)})

    def status(self, upload_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.api_url}/v1/uploads/{upload_id}", timeout=30,
                                headers=self.client_headers)
        response.raise_for_status()
        return response.json()

    def wait_for(self, upload_id: str, states: Sequence[str] = ("done", "failed"),
                 timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(upload_id)
            if status["status"] in states or time.monotonic() > deadline:
                return status
            time.sleep(0.1)


def launch(root: Path, overrides: dict[str, str] | None = None,
           components: Sequence[str] = DEFAULT_COMPONENTS, replicas: int = 0) -> Stack:
    """Start the named components in ``root``; the caller stops them.

    With ``replicas``, ``geo``, ``worker`` and ``gc`` start once per named
    geo replica (``geo-<i>``, ``worker-<i>``, ``gc-<i>``).
    """
    env, ports = processes.scratch_environment(root, SECRET)
    env.update(overrides or {})
    stack = Stack(root, env, ports)
    if replicas:
        names = ("geo", "worker_metrics", "gc_metrics")
        free = iter(processes.free_ports(len(names) * replicas))
        stack.add_replicas([{name: next(free) for name in names} for _ in range(replicas)])
    components = stack.components(components)
    credentials = parse_credentials(env.get("HANDOFF_API_TOKENS", ""))
    if credentials:
        stack.client_headers = {"Authorization": f"Bearer {credentials[0].token}"}
    try:
        for name in components:
            stack.start(name)
    except BaseException:
        stack.stop_all()
        raise
    return stack
