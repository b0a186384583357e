"""The one configuration loader: every setting is a ``HANDOFF_*`` variable.

Values are parsed and checked once, at start-up, so a typo stops the process
with a message naming the variable instead of failing on the first upload.
The README's configuration table lists the same names and defaults.
"""

import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from handoff.auth import Credential, parse_credentials
from handoff.units import CHUNK_SIZE, GiB, KiB, MiB, parse_duration, parse_size

PREFIX = "HANDOFF_"

# The rules the Helm chart's values.schema.json holds its values to, written in
# the regular-expression syntax Python's re and Go's RE2 (Helm's) read alike:
# tests/charts/ check that each schema pattern is ``^(?:<rule>)$`` of one of
# these, so an install passes exactly the values that start the services.
#: A name Dramatiq takes for a queue (its own rule).
QUEUE_NAME = r"[a-zA-Z_][a-zA-Z0-9._-]*"
# What str.strip() removes: every character str.isspace() is true of.
_SPACE = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: An actor name: no space at either end, on one line.
ACTOR_NAME = f"[^{_SPACE}](?:.*[^{_SPACE}])?"
#: A duration as the chart spells it (parse_duration reads more spellings).
DURATION = r"[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d)?"
#: A duration of at least 1ms (10ms for a fraction below one), as the chart spells it.
POSITIVE_DURATION = r"0*[1-9][0-9]*(?:\.[0-9]+)?(?:ms|s|m|h|d)?|0+\.0?[1-9][0-9]*(?:s|m|h|d)?"
#: A size of at least one byte (ten for a fraction below one), as the chart spells it.
POSITIVE_SIZE = (r"0*[1-9][0-9]*(?:\.[0-9]+)? *(?:B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?"
                 r"|0+\.0?[1-9][0-9]* *(?:KB|MB|GB|TB|KiB|MiB|GiB|TiB)")
#: An http:// or https:// URL with a host name or IPv4 address, as the chart takes it.
HTTP_URL = r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:[/?#].*)?"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: An S3 bucket name (the strictest provider's rule) or an Azure container name, 3 to 63
#: characters; parse_store_url also refuses ".." in it, which STORE_URL_SINGLE_DOTS says.
BUCKET_NAME = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
# One name of a prefix: these characters, but not "." or "..".
_PREFIX_NAME = r"\.{3,}|[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*"
# After the bucket: nothing, or a prefix of /-separated names, slashes allowed at either end.
_STORE_PATH = f"(?:/+(?:{_PREFIX_NAME})(?:/(?:{_PREFIX_NAME}))*)?/*"
#: ``s3://bucket/prefix`` as parse_store_url takes it (with STORE_URL_SINGLE_DOTS).
S3_STORE_URL = f"s3://{BUCKET_NAME}{_STORE_PATH}"
#: ``az://container/prefix`` as parse_store_url takes it (with STORE_URL_SINGLE_DOTS).
AZURE_STORE_URL = f"az://{BUCKET_NAME}{_STORE_PATH}"
#: A store URL whose bucket has no two dots in a row: RE2 has no look-ahead to say it in
#: the same pattern as the bucket's length, so the chart holds a URL to both.
STORE_URL_SINGLE_DOTS = r"[a-z0-9]+://[^./]+(?:\.[^./]+)*(?:/.*)?"

_QUEUE_NAME = re.compile(QUEUE_NAME)
_ACTOR_NAME = re.compile(ACTOR_NAME)
# Dramatiq cannot delay a message by a week or more.
MAX_BACKOFF_LIMIT = 7 * 86400.0
T = TypeVar("T")


class ConfigError(ValueError):
    """A variable is set to something the services cannot use."""


@dataclass(frozen=True)
class Settings:
    api_port: int = 8000
    geo_port: int = 8001
    geo_url: str = "http://127.0.0.1:8001"
    geo_secret: str = ""
    api_tokens: tuple[Credential, ...] = ()
    redis_url: str = ""
    queue: str = "geoprocessing"
    uploads_root: Path = Path("var/uploads")
    # None: the filesystem store under uploads_root (``file://``).
    store_url: "StoreUrl | None" = None
    # None: a folder in the system temp dir. Where a worker keeps a job's local copies.
    scratch_dir: Path | None = None
    # Bytes the worker's scratch folder may hold at once; 0 for the disk's free space.
    scratch_limit: int = 0
    max_upload_size: int = 50 * GiB
    max_file_size: int = 50 * GiB
    max_form_fields_size: int = MiB
    max_files: int = 1000
    max_part_header_size: int = 8 * KiB
    max_part_headers: int = 16
    max_preamble_size: int = 64 * KiB
    max_epilogue_size: int = 64 * KiB
    relay_chunk_size: int = CHUNK_SIZE
    geo_connect_timeout: float = 5.0
    geo_read_timeout: float = 600.0
    client_timeout: float = 60.0
    client_min_rate: int = KiB
    client_rate_window: float = 30.0
    max_active_uploads: int = 1500
    web_workers: int = 2
    web_threads: int = 16
    web_connections: int = 2000
    web_worker_class: str = "gevent"
    graceful_timeout: float = 3600.0
    orphan_ttl: float = 3600.0
    partial_ttl: float = 3600.0
    retention: float = 86400.0
    gc_interval: float = 300.0
    requeue_after: float = 600.0
    max_requeues: int = 3
    metrics_host: str = "0.0.0.0"
    worker_metrics_port: int = 9191
    gc_metrics_port: int = 9192
    health_port: int = 0
    # None: a fresh folder per gunicorn master, removed when it stops.
    metrics_dir: Path | None = None
    # None: the system temp dir.
    heartbeat_dir: Path | None = None
    probe_max_age: float = 900.0
    broker_heartbeat_timeout: float = 60.0
    broker_maintenance_chance: int = 1000
    job_max_retries: int = 5
    job_min_backoff: float = 1.0
    # Worker: what one processor call may take (see geo_service.jobs.sandbox).
    processor_memory_limit: int = GiB
    processor_time_limit: float = 3600.0
    on_finish_actor: str = ""
    on_finish_queue: str = "handoff-events"
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_queue: str = "handoff-webhooks"
    webhook_timeout: float = 10.0
    webhook_max_retries: int = 12
    webhook_min_backoff: float = 10.0
    webhook_max_backoff: float = 3600.0
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Geo side: this replica's name; empty for the one unnamed geo service.
    replica: str = ""
    # API side: (name, url) of each geo replica; empty for the one at geo_url.
    geo_replica_urls: tuple[tuple[str, str], ...] = ()
    # API side: replicas that get no new uploads but still serve the ones they hold.
    geo_draining: frozenset[str] = frozenset()

    @property
    def job_queue(self) -> str:
        """The queue this geo replica's jobs go to: ``<queue>.<replica>``, or the queue itself.

        With a shared store it is the queue itself for every replica (see :func:`replica_queue`).
        """
        return replica_queue(self.queue, self.replica or None, self.shared_store)

    @property
    def store_root(self) -> Path:
        """This geo replica's own store: ``<uploads_root>/<replica>``, or the root itself."""
        return self.uploads_root / self.replica if self.replica else self.uploads_root

    @property
    def shared_store(self) -> bool:
        """Whether every geo replica and worker reaches every upload (an object store).

        Then any replica serves any request and one job queue feeds every
        worker; with a filesystem store, each replica serves what it holds.
        """
        return self.store_url is not None and self.store_url.shared

    @property
    def geo_replicas(self) -> tuple[tuple[str | None, str], ...]:
        """(name, url) of every geo replica the API places uploads on; one unnamed by default."""
        return self.geo_replica_urls or ((None, self.geo_url),)


@dataclass(frozen=True)
class StoreUrl:
    """``HANDOFF_STORE_URL``: ``file:///path``, ``s3://bucket/prefix`` or ``az://container/prefix``.

    Endpoints and credentials are not in it: each SDK reads its own standard
    configuration (``AWS_*``, ``AZURE_STORAGE_CONNECTION_STRING``).
    """

    scheme: str  # file, s3 or az
    location: str  # the path for file, else the bucket or container
    prefix: str = ""  # keys start with "<prefix>/" when set; no slash at either end

    @property
    def shared(self) -> bool:
        return self.scheme != "file"

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.location}"
        return f"{self.scheme}://{self.location}" + (f"/{self.prefix}" if self.prefix else "")


_BUCKET = re.compile(BUCKET_NAME)
_PREFIX_PART = re.compile(r"[A-Za-z0-9._-]+")


def parse_store_url(text: str) -> StoreUrl:
    """The store a URL names; ValueError says what is wrong with it."""
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ValueError("a store URL has no query or fragment")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("a file store URL is file:///absolute/path")
        return StoreUrl("file", parts.path.rstrip("/") or "/")
    if parts.scheme not in ("s3", "az"):
        raise ValueError("a store URL starts with file://, s3:// or az://")
    if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise ValueError(f"{parts.netloc!r} is not a bucket or container name")
    prefix = parts.path.strip("/")
    if prefix and not all(_PREFIX_PART.fullmatch(p) and p not in (".", "..")
                          for p in prefix.split("/")):
        raise ValueError("a prefix is /-separated names of letters, digits, . _ -")
    return StoreUrl(parts.scheme, parts.netloc, prefix)


def replica_queue(queue: str, replica: str | None, shared: bool = False) -> str:
    """The job queue of ``replica``.

    With a filesystem store each replica consumes its own, so a job runs
    where its bytes are; with a ``shared`` store every worker reaches every
    upload, so all take from the one queue and none idles while another has
    a backlog.
    """
    return f"{queue}.{replica}" if replica and not shared else queue


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    return port


def _port_or_off(text: str) -> int:
    """A port to listen on, or 0 for none."""
    return 0 if int(text) == 0 else _port(text)


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _host(text: str) -> str:
    """An address to listen on: an IP address or a host name."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        if _HOSTNAME.fullmatch(text) and len(text) <= 253:
            return text
    raise ValueError(f"not an IP address or host name: {text!r}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must not be negative: {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be more than zero: {value}")
    return value


def _queue_name(text: str) -> str:
    """A name Dramatiq accepts for a queue, checked here so a typo fails at start-up."""
    if not _QUEUE_NAME.fullmatch(text):
        raise ValueError("a queue name is a letter or _ followed by letters, digits, . _ -")
    return text


# A DNS label, as a Kubernetes pod name is: it names a folder and a queue too,
# and ``<queue>.<label>`` is always a name _queue_name takes.
_REPLICA_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _replica_name(text: str) -> str:
    if not _REPLICA_NAME.fullmatch(text):
        raise ValueError("a replica name is lower-case letters, digits and -, "
                         "at most 63, starting and ending with a letter or digit")
    return text


def _replica_urls(text: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``name=url`` pairs, one per geo replica, each name once."""
    pairs: list[tuple[str, str]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, url = item.partition("=")
        if not equals:
            raise ValueError(f"not a name=url pair: {item!r}")
        pairs.append((_replica_name(name.strip()), _http_url(url.strip()).rstrip("/")))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("a replica name is listed twice")
    return tuple(pairs)


def _replica_names(text: str) -> frozenset[str]:
    return frozenset(_replica_name(name.strip()) for name in text.split(",") if name.strip())


def _actor_name(text: str) -> str:
    if not _ACTOR_NAME.fullmatch(text):
        raise ValueError("an actor name is one line, with no leading or trailing space")
    return text


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    return text


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origins(text: str) -> tuple[str, ...]:
    """Comma-separated web origins, ``scheme://host[:port]``, each as a browser sends it."""
    return tuple(_origin(item) for item in (part.strip() for part in text.split(",")) if item)


def _origin(text: str) -> str:
    """An origin as ``Origin`` spells it (lower case, no default port), for a plain comparison.

    A path, a query or credentials are refused: an ``Origin`` never has them.
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"not an origin: {text!r}") from None
    if (parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None
            or parts.path or parts.query or parts.fragment or text.endswith(("?", "#"))):
        raise ValueError(f"not an origin scheme://host[:port]: {text!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{shown}"


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value < 0.001:
        raise ValueError(f"must be at least 1ms: {text!r}")
    return value


def _credentials_file(text: str) -> tuple[Credential, ...]:
    """The credentials in a file, such as a Kubernetes Secret mounted as a volume."""
    try:
        content = Path(text).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the file: {exc}") from None
    return parse_credentials(content)


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {text!r}")
    return level


def _size_or_off(text: str) -> int:
    """A size, or 0 for no limit."""
    return 0 if text.strip() == "0" else _positive_size(text)


def _positive_size(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise ValueError(f"must be more than zero: {text!r}")
    return value


def _worker_class(text: str) -> str:
    """gunicorn's evented worker, or its threaded one (see docs/decisions.md)."""
    if text not in {"gevent", "gthread"}:
        raise ValueError("must be gevent or gthread")
    return text


# The same rules for settings read outside Settings (a processor's own, see
# handoff.processors.read_setting).
count = _count
positive_size = _positive_size

# variable suffix -> (Settings field, parser)
_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "API_PORT": ("api_port", _port),
    "GEO_PORT": ("geo_port", _port),
    "GEO_URL": ("geo_url", lambda text: text.rstrip("/")),
    "GEO_SECRET": ("geo_secret", str),
    "API_TOKENS": ("api_tokens", parse_credentials),
    "API_TOKENS_FILE": ("api_tokens_file", _credentials_file),
    "REDIS_URL": ("redis_url", str),
    "QUEUE": ("queue", _queue_name),
    "UPLOADS_ROOT": ("uploads_root", Path),
    "STORE_URL": ("store_url", parse_store_url),
    "SCRATCH_DIR": ("scratch_dir", Path),
    "SCRATCH_LIMIT": ("scratch_limit", _size_or_off),
    "MAX_UPLOAD_SIZE": ("max_upload_size", _positive_size),
    "MAX_FILE_SIZE": ("max_file_size", _positive_size),
    "MAX_FORM_FIELDS_SIZE": ("max_form_fields_size", _positive_size),
    "MAX_FILES": ("max_files", _count),
    "MAX_PART_HEADER_SIZE": ("max_part_header_size", _positive_size),
    "MAX_PART_HEADERS": ("max_part_headers", _count),
    "MAX_PREAMBLE_SIZE": ("max_preamble_size", _positive_size),
    "MAX_EPILOGUE_SIZE": ("max_epilogue_size", _positive_size),
    "RELAY_CHUNK_SIZE": ("relay_chunk_size", _positive_size),
    "GEO_CONNECT_TIMEOUT": ("geo_connect_timeout", parse_duration),
    "GEO_READ_TIMEOUT": ("geo_read_timeout", parse_duration),
    "CLIENT_TIMEOUT": ("client_timeout", parse_duration),
    "CLIENT_MIN_RATE": ("client_min_rate", parse_size),
    "CLIENT_RATE_WINDOW": ("client_rate_window", _positive_duration),
    "MAX_ACTIVE_UPLOADS": ("max_active_uploads", _count),
    "WEB_WORKERS": ("web_workers", _count),
    "WEB_THREADS": ("web_threads", _count),
    "WEB_CONNECTIONS": ("web_connections", _count),
    "WEB_WORKER_CLASS": ("web_worker_class", _worker_class),
    "GRACEFUL_TIMEOUT": ("graceful_timeout", parse_duration),
    "ORPHAN_TTL": ("orphan_ttl", parse_duration),
    "PARTIAL_TTL": ("partial_ttl", parse_duration),
    "RETENTION": ("retention", parse_duration),
    "GC_INTERVAL": ("gc_interval", parse_duration),
    "REQUEUE_AFTER": ("requeue_after", parse_duration),
    "MAX_REQUEUES": ("max_requeues", _positive_int),
    "METRICS_HOST": ("metrics_host", _host),
    "WORKER_METRICS_PORT": ("worker_metrics_port", _port_or_off),
    "GC_METRICS_PORT": ("gc_metrics_port", _port_or_off),
    "HEALTH_PORT": ("health_port", _port_or_off),
    "METRICS_DIR": ("metrics_dir", Path),
    "HEARTBEAT_DIR": ("heartbeat_dir", Path),
    "PROBE_MAX_AGE": ("probe_max_age", _positive_duration),
    "BROKER_HEARTBEAT_TIMEOUT": ("broker_heartbeat_timeout", parse_duration),
    "BROKER_MAINTENANCE_CHANCE": ("broker_maintenance_chance", _positive_int),
    "JOB_MAX_RETRIES": ("job_max_retries", _positive_int),
    "JOB_MIN_BACKOFF": ("job_min_backoff", parse_duration),
    "PROCESSOR_MEMORY_LIMIT": ("processor_memory_limit", _positive_size),
    "PROCESSOR_TIME_LIMIT": ("processor_time_limit", _positive_duration),
    "ON_FINISH_ACTOR": ("on_finish_actor", _actor_name),
    "ON_FINISH_QUEUE": ("on_finish_queue", _queue_name),
    "WEBHOOK_URL": ("webhook_url", _http_url),
    "WEBHOOK_SECRET": ("webhook_secret", str),
    "WEBHOOK_QUEUE": ("webhook_queue", _queue_name),
    "WEBHOOK_TIMEOUT": ("webhook_timeout", _positive_duration),
    "WEBHOOK_MAX_RETRIES": ("webhook_max_retries", _positive_int),
    "WEBHOOK_MIN_BACKOFF": ("webhook_min_backoff", _positive_duration),
    "WEBHOOK_MAX_BACKOFF": ("webhook_max_backoff", _positive_duration),
    "CORS_ORIGINS": ("cors_origins", _origins),
    "LOG_LEVEL": ("log_level", _log_level),
    "REPLICA": ("replica", _replica_name),
    "GEO_REPLICA_URLS": ("geo_replica_urls", _replica_urls),
    "GEO_DRAINING": ("geo_draining", _replica_names),
}

#: Every core variable; one that looks like a processor's setting is still the core's.
VARIABLES = frozenset(PREFIX + suffix for suffix in _PARSERS)

# Variables that moved to a processor's own settings: still setting one would
# silently lose a limit, so it stops the process with the new name instead.
_RENAMED = {
    "ZIP_MAX_UNCOMPRESSED": "PROCESSOR_SHAPEFILE_ZIP_MAX_UNCOMPRESSED",
    "ZIP_MAX_ENTRIES": "PROCESSOR_SHAPEFILE_ZIP_MAX_ENTRIES",
}

# Values never repeated in an error message: they are credentials.
_SECRETS = frozenset({"GEO_SECRET", "API_TOKENS", "WEBHOOK_SECRET"})


def variable(name: str) -> str:
    """The environment variable behind the :class:`Settings` field ``name``, for messages."""
    for suffix, (field_name, _) in _PARSERS.items():
        if field_name == name:
            return PREFIX + suffix
    raise KeyError(name)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default: the process environment)."""
    environ = os.environ if environ is None else environ
    for old, new in _RENAMED.items():
        if environ.get(PREFIX + old):
            raise ConfigError(f"{PREFIX}{old} was renamed {PREFIX}{new}; set that instead")
    values: dict[str, Any] = {}
    for suffix, (name, parse) in _PARSERS.items():
        raw = environ.get(PREFIX + suffix)
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            shown = "(secret)" if suffix in _SECRETS else repr(raw)
            raise ConfigError(f"{PREFIX}{suffix}={shown} is invalid: {exc}") from None
    if "geo_url" not in values and "geo_port" in values:
        values["geo_url"] = f"http://127.0.0.1:{values['geo_port']}"
    if "max_file_size" not in values and "max_upload_size" in values:
        values["max_file_size"] = values["max_upload_size"]
    values["api_tokens"] = _all_credentials(values)
    _file_store_root(values)
    settings = Settings(**values)
    _check_room(settings)
    _check_webhook_backoff(settings)
    _check_draining(settings)
    return settings


def _file_store_root(values: dict[str, Any]) -> None:
    """``file:///path`` is the filesystem store's root, the same as HANDOFF_UPLOADS_ROOT."""
    url = values.get("store_url")
    if url is None or url.shared:
        return
    root = values.setdefault("uploads_root", Path(url.location))
    if Path(url.location) != Path(root):
        raise ConfigError(f"{PREFIX}STORE_URL={str(url)!r} and {PREFIX}UPLOADS_ROOT={str(root)!r}"
                          " name two roots; set one")


def _check_draining(settings: Settings) -> None:
    """A drained replica must be listed: a typo would silently drain nothing."""
    unknown = settings.geo_draining - {name for name, _ in settings.geo_replica_urls}
    if unknown:
        raise ConfigError(f"{PREFIX}GEO_DRAINING names replicas {PREFIX}GEO_REPLICA_URLS does "
                          f"not list: {', '.join(sorted(unknown))}")


def _check_room(settings: Settings) -> None:
    """Uploads must leave connections free, or a full server could not even say so."""
    if settings.max_active_uploads >= settings.web_connections:
        raise ConfigError(f"{PREFIX}MAX_ACTIVE_UPLOADS ({settings.max_active_uploads}) must be "
                          f"below {PREFIX}WEB_CONNECTIONS ({settings.web_connections}), so that "
                          "health checks and refusals still find a connection")


def _check_webhook_backoff(settings: Settings) -> None:
    low, high = settings.webhook_min_backoff, settings.webhook_max_backoff
    if high >= MAX_BACKOFF_LIMIT:
        raise ConfigError(f"{PREFIX}WEBHOOK_MAX_BACKOFF must be less than 7d: Dramatiq cannot "
                          "delay a message longer")
    if low > high:
        raise ConfigError(f"{PREFIX}WEBHOOK_MIN_BACKOFF is more than {PREFIX}WEBHOOK_MAX_BACKOFF")


def _all_credentials(values: dict[str, Any]) -> tuple[Credential, ...]:
    """The tokens of both variables together; a token in both is a mistake."""
    listed = values.get("api_tokens", ())
    from_file = values.pop("api_tokens_file", ())
    if {c.token for c in listed} & {c.token for c in from_file}:
        raise ConfigError(f"{PREFIX}API_TOKENS and {PREFIX}API_TOKENS_FILE list the same token")
    return listed + from_file


def load_or_exit(*, need_secret: bool = False, signs_webhooks: bool = False) -> Settings:
    """Settings for a service's start-up: a bad value ends the process.

    Only the process that delivers webhooks (``signs_webhooks``) needs their
    secret, so only it refuses to start without one; the others merely
    enqueue deliveries.
    """

    def load() -> Settings:
        settings = load_settings()
        if need_secret and not settings.geo_secret:
            raise ConfigError(f"{PREFIX}GEO_SECRET is not set; the upload endpoint is never open")
        if signs_webhooks and settings.webhook_url and not settings.webhook_secret:
            raise ConfigError(f"{PREFIX}WEBHOOK_URL is set but {PREFIX}WEBHOOK_SECRET is not; "
                              "webhooks are always signed")
        return settings

    return exit_on_config_error(load)


def exit_on_config_error(load: Callable[[], T]) -> T:
    """``load()``, or the end of the process with the error on stderr.

    Exit status 3 makes gunicorn's arbiter stop instead of respawning a
    worker that can never boot.
    """
    try:
        return load()
    except ConfigError as exc:
        print(f"handoff: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
