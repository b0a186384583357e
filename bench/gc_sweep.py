"""How long one sweep over a large store takes, and how much memory it needs.

Builds ``--count`` uploads in a temporary root (a third expired orphans, a
third fresh complete uploads, a third expired done uploads; each with a
tiny file and an old lock file, as a real writer leaves behind), then runs
one sweep in a fresh process so that building the store does not count
towards the sweeper's peak RSS. Prints one JSON line::

    python bench/gc_sweep.py --count 100000
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

from geo_service.store import FileStore
from handoff_gc.rules import Ttls
from handoff_gc.sweep import sweep

TTLS = Ttls(orphan=3600.0, partial=3600.0, retention=86400.0)
OLD = 7 * 86400.0
KINDS = ("orphan", "fresh", "done")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.sweep_root is not None:
        print(json.dumps(_sweep_here(args.sweep_root)))
        return 0
    root = Path(tempfile.mkdtemp(prefix="handoff-gc-bench-", dir=args.dir)) / "uploads"
    try:
        started = time.perf_counter()
        build_store(root, args.count)
        built = time.perf_counter() - started
        result = _sweep_in_child(root)
    finally:
        if not args.keep:
            shutil.rmtree(root.parent, ignore_errors=True)
    print(json.dumps({"uploads": args.count, **result, "build_seconds": round(built, 1)}))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="uploads to create")
    parser.add_argument("--dir", help="where to create the temporary root (default: TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary root")
    parser.add_argument("--sweep-root", type=Path, help=argparse.SUPPRESS)
    return parser


def build_store(root: Path, count: int) -> None:
    """Make ``count`` uploads through the store, as the services would, then age them.

    fsync is skipped while building: the store fsyncs every file and folder
    (as it must), which would make building 100,000 uploads take far longer
    than the sweep being measured. What ends up in the store is the same.
    """
    store = FileStore(root)
    with mock.patch("os.fsync"):
        for index in range(count):
            _make_upload(store, str(uuid.uuid4()), KINDS[index % len(KINDS)])


def _make_upload(store: FileStore, upload_id: str, kind: str) -> None:
    store.create(upload_id, "bench")
    with store.lock(upload_id):
        writer = store.open_writer(upload_id, 0)
        writer.write(b"0123456789abcdef")
        writer.commit()
        store.seal(upload_id, {"files": [{"name": "0", "size": 16}]})
        if kind == "done":
            store.mark_queued(upload_id, {"purpose": "raw"})
            store.claim(upload_id, {"worker": "bench"})
            store.finish(upload_id, {"status": "done"})
    if kind != "fresh":
        store.backdate(upload_id, OLD)


def _sweep_in_child(root: Path) -> dict[str, float | int]:
    command = [sys.executable, __file__, "--sweep-root", str(root)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def _sweep_here(root: Path) -> dict[str, float | int]:
    """Time one sweep in this (fresh) process and report its peak RSS."""
    store = FileStore(root)
    baseline = _max_rss_mib()
    started = time.perf_counter()
    report = sweep(store, TTLS)
    seconds = time.perf_counter() - started
    return {
        "sweep_seconds": round(seconds, 2),
        "peak_rss_mib": round(_max_rss_mib(), 1),
        "deleted": len(report.deletions),
        "baseline_rss_mib": round(baseline, 1),
        "stale_locks_removed": report.stale_locks,
        "errors": report.errors,
    }


def _max_rss_mib() -> float:
    """Peak resident set size of this process; Linux reports it in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
