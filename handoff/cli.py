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

Files are streamed from disk, never read into memory, so uploads of tens of
GB work from a small machine. The progress bar (bytes, rate, ETA) goes to
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
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor
from tqdm import tqdm

from handoff.form import FieldError, parse_metadata

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CLIENT_ERROR = 3
EXIT_SERVER_ERROR = 4
EXIT_JOB_FAILED = 5
EXIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130

DEFAULT_URL = "http://127.0.0.1:8000"
FINAL_STATES = frozenset({"done", "failed"})
# Bounds the connection and, while the body streams, every single send.
CONNECT_TIMEOUT = 30.0
# The API answers an upload only once the geo side has fsynced it and the job is queued.
UPLOAD_ANSWER_TIMEOUT = 600.0
STATUS_ANSWER_TIMEOUT = 60.0
# MultipartEncoder has a fixed cost per read: urllib3's default 16 KiB blocks cap the client
# at a few hundred MB/s, 1 MiB blocks do not.
BODY_BLOCK_SIZE = 1024 * 1024

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


def _problem_error(response: requests.Response) -> CliError:
    """Show the problem+json title and detail; fall back to the raw answer from a proxy."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": " ".join(response.text.split())[:200]}
    title = problem.get("title") or response.reason or "HTTP error"
    message = f"error {response.status_code} {title}"
    if problem.get("detail"):
        message += f": {problem['detail']}"
    if problem.get("upload_id"):
        message += f" (upload {problem['upload_id']})"
    code = EXIT_SERVER_ERROR if response.status_code >= 500 else EXIT_CLIENT_ERROR
    return CliError(code, message)


def _cause(exc: BaseException) -> str:
    """urllib3 nests the useful text (refused, reset, timed out) a few levels deep."""
    while True:
        nested = [arg for arg in exc.args if isinstance(arg, BaseException)]
        inner = getattr(exc, "reason", None) or exc.__cause__ or (nested[0] if nested else None)
        if not isinstance(inner, BaseException):
            return str(exc)
        exc = inner


class _LargeBlocks(HTTPAdapter):
    """Send the request body in ``BODY_BLOCK_SIZE`` reads (see there why)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", BODY_BLOCK_SIZE)
        super().init_poolmanager(*args, **kwargs)


class Api:
    """The public endpoints, with the base URL and the token applied once."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "handoff-cli"
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, _LargeBlocks())
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def create_upload(self, body: MultipartEncoderMonitor) -> dict[str, Any]:
        return self._call("POST", "/v1/uploads", data=body,
                          headers={"Content-Type": body.content_type},
                          timeout=(CONNECT_TIMEOUT, UPLOAD_ANSWER_TIMEOUT))

    def status(self, upload_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/uploads/{quote(upload_id, safe='')}",
                          timeout=(CONNECT_TIMEOUT, STATUS_ANSWER_TIMEOUT))

    def cancel(self, upload_id: str) -> None:
        self._request("DELETE", f"/v1/uploads/{quote(upload_id, safe='')}",
                      timeout=(CONNECT_TIMEOUT, STATUS_ANSWER_TIMEOUT))

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, **kwargs)
        except requests.RequestException as exc:
            raise CliError(EXIT_SERVER_ERROR,
                           f"error: {method} {self.url}{path} failed: {_cause(exc)}") from None
        if not response.ok:
            raise _problem_error(response)
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CliError(EXIT_SERVER_ERROR, f"error: {method} {self.url}{path} answered "
                                              f"{response.status_code} without a JSON object")
        return body


@contextmanager
def _progress(encoder: MultipartEncoder, enabled: bool) -> Iterator[MultipartEncoderMonitor]:
    """Wrap the encoder so that every read of the body advances a byte bar on stderr."""
    with tqdm(total=encoder.len, unit="B", unit_scale=True, unit_divisor=1024,
              file=sys.stderr, disable=not enabled, desc="upload") as bar:
        sent = 0

        def advance(monitor: MultipartEncoderMonitor) -> None:
            nonlocal sent
            bar.update(monitor.bytes_read - sent)
            sent = monitor.bytes_read

        yield MultipartEncoderMonitor(encoder, advance)


def _form_fields(args: argparse.Namespace, files: ExitStack) -> list[tuple[str, Any]]:
    """Fields first: the API reads purpose and metadata before any file streams past."""
    fields: list[tuple[str, Any]] = [("purpose", args.purpose)]
    if args.metadata is not None:
        fields.append(("metadata", args.metadata))
    for path in args.files:
        try:
            handle = files.enter_context(open(path, "rb"))  # noqa: SIM115 (the stack closes it)
        except OSError as exc:
            raise CliError(EXIT_USAGE, f"error: cannot read {path}: {exc.strerror}") from None
        fields.append(("file", (Path(path).name, handle, "application/octet-stream")))
    return fields


def _poll(api: Api, upload_id: str, interval: float, timeout: float | None) -> dict[str, Any]:
    """Ask until the job is done or failed (the API has no push channel) or time runs out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    while True:
        status = api.status(upload_id)
        if status.get("status") != seen:
            seen = status.get("status")
            _note(f"upload {upload_id}: {seen}")
        if seen in FINAL_STATES:
            return status
        if deadline is not None and time.monotonic() + interval > deadline:
            return status
        time.sleep(interval)


def _finish(status: dict[str, Any], timeout: float | None) -> int:
    """Print the last status and turn its state into the exit code."""
    _print_json(status)
    state = status.get("status")
    if state == "failed":
        error = status.get("error") or "no error recorded"
        _note(f"error: upload {status.get('id')} failed: {error}")
        return EXIT_JOB_FAILED
    if state != "done":
        _note(f"error: upload {status.get('id')} still {state} after {timeout:g} s")
        return EXIT_TIMEOUT
    return EXIT_OK


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2), flush=True)


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show_progress(args: argparse.Namespace) -> bool:
    return args.progress if args.progress is not None else sys.stderr.isatty()


def cmd_upload(args: argparse.Namespace) -> int:
    api = Api(args.url, args.token)
    with ExitStack() as files:
        encoder = MultipartEncoder(_form_fields(args, files))
        with _progress(encoder, _show_progress(args)) as body:
            accepted = api.create_upload(body)
    if not args.wait:
        _print_json(accepted)
        return EXIT_OK
    _note(f"upload {accepted['id']}: accepted, waiting for the job")
    return _finish(_poll(api, accepted["id"], args.interval, args.timeout), args.timeout)


def cmd_status(args: argparse.Namespace) -> int:
    api = Api(args.url, args.token)
    if not args.watch:
        _print_json(api.status(args.id))
        return EXIT_OK
    return _finish(_poll(api, args.id, args.interval, args.timeout), args.timeout)


def cmd_cancel(args: argparse.Namespace) -> int:
    Api(args.url, args.token).cancel(args.id)
    _print_json({"id": args.id, "status": "cancelled"})
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    """Run one sweep in this process, so operators have one command for everything."""
    from handoff_gc.__main__ import main as gc_main

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


def _metadata(text: str) -> str:
    """Check with the API's own rule, so a typo fails before gigabytes are sent."""
    try:
        parse_metadata(text)
    except FieldError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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


def main(argv: list[str] | None = None) -> int:
    """Run one command; usage errors return 2 instead of raising, so callers get an int."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except CliError as exc:
        _note(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _note("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
