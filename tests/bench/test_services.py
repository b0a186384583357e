"""Where the benchmark's stacks keep their uploads, without starting them."""

from pathlib import Path

from bench.services import Stack


def _stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path, {"HANDOFF_UPLOADS_ROOT": str(tmp_path / "uploads")}, {})


def test_the_one_geo_service_stores_in_the_uploads_root(tmp_path: Path) -> None:
    assert _stack(tmp_path).stores == {"geo": tmp_path / "uploads"}


def test_each_named_replica_stores_in_a_folder_of_its_own(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    ports = {"geo": 1, "worker_metrics": 2, "gc_metrics": 3}
    stack.add_replicas([ports, ports, ports])
    assert stack.stores == {f"geo-{index}": tmp_path / "uploads" / f"geo-{index}"
                            for index in range(3)}
