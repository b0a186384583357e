"""``handoff``: send files to the handoff API and follow their processing.

Commands::

    handoff upload FILE... --purpose P [--metadata JSON] [--wait] [--interval S] [--timeout S]
    handoff status ID [--watch] [--interval S] [--timeout S]
    handoff cancel ID
    handoff gc --once [--dry-run]
    handoff processors

``upload``, ``status`` and ``cancel`` take ``--url`` (default ``$HANDOFF_URL``, else
http://127.0.0.1:8000) and ``--token`` (default ``$HANDOFF_TOKEN``), before or
after the command name.

The commands are built on :mod:`handoff.client`, which needs only requests
and requests-toolbelt (and tqdm for the bar), so a client-only install runs
them; ``handoff gc`` needs the server's dependencies. Files are streamed from
disk, never read into memory, so uploads of tens of GB work from a small
machine. The progress bar (bytes, rate, ETA) goes to
stderr, only when stderr is a terminal unless ``--progress`` forces it.
stdout gets exactly one JSON document per command: the 202 answer, or with
``--wait``/``--watch`` the final status, so ``handoff ... | jq`` works.

Exit status:

- 0: success
- 2: usage error (bad option, ``--metadata`` not a JSON object, unreadable file)
- 3: client error: the API answered 4xx; its problem title and detail go to stderr
- 4: server error: the API answered 5xx, could not be reached, or the connection broke
- 5: the job failed (``--wait``/``--watch`` saw status "failed"); its error goes to stderr
- 6: ``--timeout`` ran out before the job was done or failed
- 130: interrupted (Ctrl-C)

``handoff gc`` exits with the sweeper's own status (0 clean, 1 errors, 2 configuration).
``handoff processors`` prints the purposes installed here, one ``name module:function``
a line, and exits 1 if two packages register the same one.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from contextlib import closing, nullcontext
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from tqdm import tqdm

from handoff.client import (
    Client,
    HandoffError,
    ProblemError,
    Upload,
    WaitTimeout,
)
from handoff.fields import FieldError, parse_metadata

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CLIENT_ERROR = 3
EXIT_SERVER_ERROR = 4
EXIT_JOB_FAILED = 5
EXIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130

DEFAULT_URL = "http://127.0.0.1:8000"

EPILOG = """\
exit status:
  0    success
  2    usage error (bad option, --metadata not a JSON object, unreadable file)
  3    client error: the API answered 4xx (problem title and detail on stderr)
  4    server error: the API answered 5xx, could not be reached, or the connection broke
  5    the job failed (--wait/--watch saw status "failed"; its error on stderr)
  6    --timeout ran out before the job was done or failed
  130  interrupted
"""


class CliError(Exception):
    """Ends the command: ``message`` goes to stderr and ``exit_code`` to the shell."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


def _failure(exc: HandoffError) -> CliError:
    """The exit code and message of what the client raised (see the exit status list)."""
    if isinstance(exc, ProblemError):
        code = EXIT_SERVER_ERROR if exc.status >= 500 else EXIT_CLIENT_ERROR
        return CliError(code, f"error {exc}")
    return CliError(EXIT_SERVER_ERROR, f"error: {exc}")


class _ByteBar:
    """A progress bar on stderr (bytes, rate, ETA), drawn once the client reports the total."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None
        self._sent = 0

    def __call__(self, sent: int, total: int) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                             file=sys.stderr, desc="upload")
        self._bar.update(sent - self._sent)
        self._sent = sent

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _follow(client: Client, upload_id: str, args: argparse.Namespace) -> int:
    """Wait for the job, print its last status and turn its state into the exit code."""
    try:
        final = client.wait(upload_id, args.timeout, args.interval,
                            on_change=lambda upload: _note(f"upload {upload_id}: {upload.status}"))
    except WaitTimeout as exc:
        _print_json(exc.upload)
        _note(f"error: {exc}")
        return EXIT_TIMEOUT
    _print_json(final)
    if final.status == "failed":
        _note(f"error: upload {final.id} failed: {final.error or 'no error recorded'}")
        return EXIT_JOB_FAILED
    return EXIT_OK


def _print_json(upload: Upload | dict[str, Any]) -> None:
    """The API's own document, so ``handoff ... | jq`` sees exactly what the API said."""
    document = upload.raw if isinstance(upload, Upload) else upload
    print(json.dumps(document, indent=2), flush=True)


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show_progress(args: argparse.Namespace) -> bool:
    return args.progress if args.progress is not None else sys.stderr.isatty()


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.token)


def _send(client: Client, args: argparse.Namespace) -> Upload:
    bar = closing(_ByteBar()) if _show_progress(args) else nullcontext(None)
    with bar as progress:
        try:
            return client.upload(args.files, args.purpose, args.metadata, progress)
        except OSError as exc:
            raise CliError(EXIT_USAGE,
                           f"error: cannot read {exc.filename}: {exc.strerror}") from None


def cmd_upload(args: argparse.Namespace) -> int:
    with _client(args) as client:
        accepted = _send(client, args)
        if not args.wait:
            _print_json(accepted)
            return EXIT_OK
        _note(f"upload {accepted.id}: accepted, waiting for the job")
        return _follow(client, accepted.id, args)


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if not args.watch:
            _print_json(client.status(args.id))
            return EXIT_OK
        return _follow(client, args.id, args)


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.cancel(args.id)
    _print_json({"id": args.id, "status": "cancelled"})
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    """Run one sweep in this process, so operators have one command for everything.

    The sweeper needs the server's dependencies, which a client-only install lacks. It is
    found as the installed ``handoff-gc`` command, so the client package imports no service.
    """
    [command] = entry_points(group="console_scripts", name="handoff-gc")
    try:
        gc_main = command.load()
    except ModuleNotFoundError as exc:
        raise CliError(EXIT_USAGE, f"error: handoff gc needs the server's dependencies "
                                   f"({exc.name} is missing): pip install 'handoff[server]'"
                       ) from None

    return gc_main(["--once", *(["--dry-run"] if args.dry_run else [])])


def cmd_processors(args: argparse.Namespace) -> int:
    """What this installation would run, read from entry points without importing any."""
    from handoff.config import ConfigError
    from handoff.processors import installed

    try:
        targets = installed().targets
    except ConfigError as exc:
        raise CliError(1, f"error: {exc}") from None
    width = max(map(len, targets), default=0)
    for name, target in targets.items():
        print(f"{name:<{width}}  {target}")
    return EXIT_OK


def _base_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def _metadata(text: str) -> dict[str, Any]:
    """Check with the API's own rule, so a typo fails before gigabytes are sent."""
    try:
        return parse_metadata(text)
    except FieldError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _readable_file(text: str) -> str:
    if not Path(text).is_file() or not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not a readable file")
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _add_connection(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """Defaults live on the top parser only, so a subparser never overwrites them."""
    url = os.environ.get("HANDOFF_URL") or DEFAULT_URL
    token = os.environ.get("HANDOFF_TOKEN") or None
    parser.add_argument("--url", type=_base_url,
                        default=url if with_defaults else argparse.SUPPRESS,
                        help=f"API base URL (default: $HANDOFF_URL or {DEFAULT_URL})")
    parser.add_argument("--token", default=token if with_defaults else argparse.SUPPRESS,
                        help="bearer token (default: $HANDOFF_TOKEN)")


def _add_polling(parser: argparse.ArgumentParser, flag: str, what: str) -> None:
    parser.add_argument(flag, action="store_true", help=what)
    parser.add_argument("--interval", type=_positive, default=1.0,
                        help="seconds between status requests (default: 1.0)")
    parser.add_argument("--timeout", type=_positive, default=None,
                        help=f"give up waiting after this many seconds (with {flag}; exit 6)")


def _subparser(commands: Any, name: str, parent: argparse.ArgumentParser,
               summary: str, handler: Callable[[argparse.Namespace], int]
               ) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, parents=[parent], help=summary, description=summary,
                                 epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def _add_upload(commands: Any, connection: argparse.ArgumentParser) -> None:
    parser = _subparser(commands, "upload", connection,
                        "stream files to POST /v1/uploads", cmd_upload)
    parser.add_argument("files", nargs="+", metavar="FILE", type=_readable_file)
    parser.add_argument("--purpose", required=True, help="which processor runs (e.g. raw)")
    parser.add_argument("--metadata", type=_metadata, help="a JSON object stored with the upload")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="force the progress bar on or off (default: on if stderr is a TTY)")
    _add_polling(parser, "--wait", "wait until the job is done or failed; print its status")


def _add_status(commands: Any, connection: argparse.ArgumentParser) -> None:
    parser = _subparser(commands, "status", connection,
                        "print GET /v1/uploads/<id>", cmd_status)
    parser.add_argument("id", help="the upload id from the 202 answer")
    _add_polling(parser, "--watch", "poll until the job is done or failed; print its status")


def _add_cancel(commands: Any, connection: argparse.ArgumentParser) -> None:
    parser = _subparser(commands, "cancel", connection,
                        "DELETE /v1/uploads/<id>: stop the upload and remove it", cmd_cancel)
    parser.add_argument("id", help="the upload id from the 202 answer")


def _add_gc(commands: Any) -> None:
    parser = commands.add_parser("gc", help="sweep the upload store once (same as handoff-gc)",
                                 description="Sweep the upload store once, with HANDOFF_* "
                                             "settings; the long-lived sweeper is handoff-gc.")
    parser.add_argument("--once", action="store_true", required=True,
                        help="sweep a single time and exit (required)")
    parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    parser.set_defaults(handler=cmd_gc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handoff", description="Upload large files to handoff and follow their jobs.",
        epilog=EPILOG, formatter_class=argparse.RawTextHelpFormatter)
    _add_connection(parser, with_defaults=True)
    connection = argparse.ArgumentParser(add_help=False)
    _add_connection(connection, with_defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_upload(commands, connection)
    _add_status(commands, connection)
    _add_cancel(commands, connection)
    _add_gc(commands)
    commands.add_parser("processors", help="list the installed processors (purpose, "
                        "module:function)").set_defaults(handler=cmd_processors)
    return parser


def _stop(exc: CliError) -> int:
    _note(exc.message)
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run one command; usage errors return 2 instead of raising, so callers get an int."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except HandoffError as exc:
        return _stop(_failure(exc))
    except CliError as exc:
        return _stop(exc)
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
