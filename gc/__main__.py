"""``handoff-gc``: the sweeper as a long-lived process or as a one-shot command.

Without options it runs the scheduler (a Deployment); ``--once`` sweeps a
single time and exits (a Kubernetes CronJob, or an operator at a shell),
printing every deletion with its reason and a summary. The exit status is
0 for a clean sweep, 1 if any upload could not be handled, and 2 for a
configuration problem, so a CronJob's failures show up as failed Jobs.
"""

import argparse
import sys
from typing import TextIO

from geo_service.store import open_store
from handoff.config import ConfigError, Settings, load_settings
from handoff.queue import JobQueue
from handoff.server.logs import setup_logging
from handoff.server.metrics import MetricsUnavailable

from .reconcile import reconcile_settings
from .rules import DELETE_REASONS
from .runner import run, ttls_from
from .sweep import SweepReport, sweep

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.dry_run and not args.once:
        parser.error("--dry-run needs --once")
    try:
        settings = _settings()
    except ConfigError as exc:
        print(f"handoff-gc: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, "gc")
    if args.once:
        return sweep_once(settings, dry_run=args.dry_run)
    try:
        return run(settings)
    except MetricsUnavailable as exc:
        print(f"handoff-gc: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def sweep_once(settings: Settings, *, dry_run: bool = False) -> int:
    """Sweep a single time, print what happened, and return the exit status."""
    store = open_store(settings)
    if not dry_run:
        reconcile_settings(store, JobQueue(settings), settings)
    try:
        report = sweep(store, ttls_from(settings), dry_run=dry_run)
    except OSError as exc:
        print(f"handoff-gc: cannot sweep {store.describe()}: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    print_report(report, sys.stdout)
    return EXIT_ERRORS if report.errors else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handoff-gc",
        description="Delete orphaned, abandoned and expired uploads (settings: HANDOFF_*).",
    )
    parser.add_argument("--once", action="store_true", help="sweep once and exit")
    parser.add_argument(
        "--dry-run", action="store_true", help="with --once: report, delete nothing"
    )
    return parser


def _settings() -> Settings:
    """Settings, refusing an uploads root that does not exist.

    The store would create a missing root, so a mistyped path or an
    unmounted volume would otherwise look like an empty, healthy store.
    """
    settings = load_settings()
    if not settings.uploads_root.is_dir():
        raise ConfigError(f"HANDOFF_UPLOADS_ROOT={str(settings.uploads_root)!r} is not a directory")
    return settings


def print_report(report: SweepReport, out: TextIO) -> None:
    """One line per deletion, then the totals, for an operator or a CronJob log."""
    verb = "would delete" if report.dry_run else "deleted"
    for deletion in report.deletions:
        print(f"{verb} {deletion.upload_id} {deletion.reason} {deletion.bytes} bytes", file=out)
    for reason in DELETE_REASONS:
        print(f"{reason}: {report.counts[reason]}", file=out)
    print(f"{'would free' if report.dry_run else 'freed'} {report.bytes_freed} bytes", file=out)
    print(
        f"skipped busy: {report.skipped_busy}, stray entries: {report.strays}, "
        f"stale lock files: {report.stale_locks}, errors: {report.errors}",
        file=out,
    )


if __name__ == "__main__":
    sys.exit(main())
