"""The fake API (tests/support/fake_api.py) and a payload, for the client and command tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_api import FakeApi, serve


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    """A fresh fake API; the command's own variables unset, so a test names what it uses."""
    monkeypatch.delenv("HANDOFF_TOKEN", raising=False)
    monkeypatch.delenv("HANDOFF_URL", raising=False)
    with serve() as fake:
        yield fake


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    """About a MiB whose end looks like a multipart boundary."""
    path = tmp_path / "survey.bin"
    path.write_bytes(bytes(range(256)) * 4096 + b"\r\n--tail")
    return path
