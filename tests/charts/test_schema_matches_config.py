"""Every value the chart's schema admits starts the services, and what they refuse it refuses.

The schema's patterns for HANDOFF_* settings are the rules handoff/config.py
exposes, word for word. On top of that the chart is rendered (Helm's own Go
regular expressions doing the checking) with queue names generated from the
rule's character classes, and each process's environment, as Kubernetes
would assemble it from the ConfigMap and the pod spec, is loaded by the
services' own config loader; names the loader refuses must fail the install.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

import helm_python as helm
import pytest

from handoff import config
from handoff.config import ConfigError, load_settings
from tests.charts.test_chart import CHART, Rendered, pod_template, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _at(path: str) -> dict[str, Any]:
    node = SCHEMA
    for key in path.split("/"):
        node = node["properties"][key]
    return node


def _rule(rule: str, optional: bool = False) -> str:
    return f"^(?:{rule})?$" if optional else f"^(?:{rule})$"


# schema path -> the schema pattern the config's rule makes
PATTERNS = {
    "config/queue": _rule(config.QUEUE_NAME),
    "config/maxUploadSize": _rule(config.POSITIVE_SIZE),
    "config/orphanTtl": _rule(config.DURATION),
    "config/partialTtl": _rule(config.DURATION),
    "config/retention": _rule(config.DURATION),
    "config/gcInterval": _rule(config.DURATION),
    "hooks/onFinishActor": _rule(config.ACTOR_NAME, optional=True),
    "hooks/onFinishQueue": _rule(config.QUEUE_NAME),
    "hooks/webhook/url": _rule(config.HTTP_URL, optional=True),
    "hooks/webhook/queue": _rule(config.QUEUE_NAME),
    "hooks/webhook/timeout": _rule(config.POSITIVE_DURATION),
    "hooks/webhook/minBackoff": _rule(config.POSITIVE_DURATION),
    "hooks/webhook/maxBackoff": _rule(config.POSITIVE_DURATION),
    "store/s3/endpoint": _rule(config.HTTP_URL, optional=True),
}


@pytest.mark.parametrize("path", sorted(PATTERNS))
def test_the_schema_pattern_is_the_configs_rule(path: str) -> None:
    assert _at(path)["pattern"] == PATTERNS[path]


def test_the_log_levels_are_the_configs() -> None:
    assert _at("config/logLevel")["enum"] == list(config.LOG_LEVELS)


def test_the_space_the_actor_rule_refuses_is_what_strip_removes() -> None:
    edges = re.compile(config.ACTOR_NAME)
    spaces = [chr(code) for code in range(0x110000) if chr(code).isspace()]
    assert [c for c in spaces if edges.fullmatch(f"{c}a") or edges.fullmatch(f"a{c}")] == []
    assert edges.fullmatch("a\u200bb")  # a zero-width space is no space to strip()


# --------------------------------------------------------------------------
# Queue names at the edges of the rule, rendered and started


def _classes(rule: str) -> list[list[tuple[str, str]]]:
    """Each [...] of ``rule`` in order, as (first, last) ranges; a single character is both."""
    found = []
    for body in re.findall(r"\[([^\]]*)\]", rule):
        ranges = re.findall(r"(.)-(.)|(.)", body)
        found.append([(a, b) if a else (c, c) for a, b, c in ranges])
    return found


def _edges(ranges: list[tuple[str, str]]) -> list[str]:
    return sorted({char for pair in ranges for char in pair})


def _just_outside(ranges: list[tuple[str, str]]) -> list[str]:
    """The characters next to each range that no range of the class holds."""
    inside = {chr(code) for first, last in ranges for code in range(ord(first), ord(last) + 1)}
    around = {chr(ord(first) - 1) for first, _ in ranges} | {chr(ord(last) + 1)
                                                             for _, last in ranges}
    return sorted(around - inside)


FIRST, REST = _classes(config.QUEUE_NAME)
ALLOWED = (
    _edges(FIRST)
    + [f"_{char}" for char in _edges(REST)]
    + ["".join(_edges(FIRST) + _edges(REST)) * 40]  # no length limit: 560 characters
)
REFUSED = (
    sorted(set(_edges(REST)) - set(_edges(FIRST)))  # allowed later, not first
    + _just_outside(FIRST)
    + [f"a{char}" for char in _just_outside(REST)]
    + ["a b", "queue\u00e9", "q\n"]
)


def test_the_generated_names_cover_the_rule() -> None:
    """The cases come from the rule itself: every range end of both classes, both sides."""
    assert set(_edges(FIRST)) == {"a", "z", "A", "Z", "_"}
    assert {"0", "9", ".", "-"} <= set(REFUSED) | {name[-1] for name in REFUSED if name}
    assert all(re.fullmatch(config.QUEUE_NAME, name) for name in ALLOWED)
    assert not any(re.fullmatch(config.QUEUE_NAME, name) for name in REFUSED)


def process_environments(rendered: Rendered) -> dict[str, dict[str, str]]:
    """Each HANDOFF process's environment, as Kubernetes would assemble it."""
    (configmap,) = rendered.of_kind("ConfigMap")
    environments = {}
    for doc in rendered.docs:
        template = pod_template(doc)
        if template is None or doc["kind"] not in ("Deployment", "StatefulSet", "CronJob"):
            continue
        pod_name = f"{doc['metadata']['name']}-0"
        for container in template["spec"]["containers"]:
            if not container.get("envFrom"):
                continue
            env = dict(configmap["data"])
            for item in container.get("env", []):
                env[item["name"]] = _value(item, pod_name)
            environments[f"{doc['kind']}/{container['name']}"] = env
    return environments


def _value(item: dict[str, Any], pod_name: str) -> str:
    if "value" in item:
        return str(item["value"])
    source = item["valueFrom"]
    if "fieldRef" in source:
        assert source["fieldRef"]["fieldPath"] == "metadata.name"
        return pod_name
    return "from-a-secret"


def _worker_queues(rendered: Rendered, replica: str) -> list[str]:
    (geo,) = rendered.of_kind("StatefulSet")
    (worker,) = [c for c in geo["spec"]["template"]["spec"]["containers"]
                 if c["name"] == "worker"]
    args = worker["args"]
    return [q.replace("$(HANDOFF_REPLICA)", replica) for q in args[args.index("--queues") + 1:]]


def _with_queue(name: str) -> dict[str, Any]:
    return {"config": {"queue": name},
            "hooks": {"onFinishQueue": name, "webhook": {"queue": name}}}


@pytest.mark.parametrize("name", ALLOWED, ids=lambda name: name[:12])
def test_every_queue_name_the_schema_admits_starts_every_process(name: str) -> None:
    rendered = render(_with_queue(name))
    environments = process_environments(rendered)
    assert {"Deployment/api", "StatefulSet/geo", "StatefulSet/worker"} <= set(environments)
    for where, env in environments.items():
        settings = load_settings(env)
        assert (settings.queue, settings.on_finish_queue, settings.webhook_queue) == (
            name, name, name), where
    replica = environments["StatefulSet/worker"]["HANDOFF_REPLICA"]
    for queue in _worker_queues(rendered, replica):
        assert load_settings({"HANDOFF_QUEUE": queue}).queue == queue


@pytest.mark.parametrize("name", REFUSED, ids=repr)
@pytest.mark.parametrize("where", ["config/queue", "hooks/onFinishQueue", "hooks/webhook/queue"])
def test_a_queue_name_the_config_refuses_fails_the_install(where: str, name: str) -> None:
    with pytest.raises(ConfigError):
        load_settings({"HANDOFF_QUEUE": name})
    first, *rest = where.split("/")
    values: dict[str, Any] = {}
    node = values.setdefault(first, {})
    for key in rest[:-1]:
        node = node.setdefault(key, {})
    node[rest[-1] if rest else "queue"] = name
    with pytest.raises(helm.HelmValuesError, match=f"/{where}"):
        render(values)


# --------------------------------------------------------------------------
# The other settings at their edges: admitted ones start, refused ones fail the install


ADMITTED = [
    ({"config": {"maxUploadSize": "1"}}, "HANDOFF_MAX_UPLOAD_SIZE"),
    ({"config": {"maxUploadSize": "0.01KB"}}, "HANDOFF_MAX_UPLOAD_SIZE"),
    ({"config": {"maxUploadSize": "1.5 TiB"}}, "HANDOFF_MAX_UPLOAD_SIZE"),
    ({"config": {"orphanTtl": "0"}}, "HANDOFF_ORPHAN_TTL"),
    ({"hooks": {"webhook": {"timeout": "1ms"}}}, "HANDOFF_WEBHOOK_TIMEOUT"),
    ({"hooks": {"webhook": {"timeout": "0.01s"}}}, "HANDOFF_WEBHOOK_TIMEOUT"),
    ({"hooks": {"webhook": {"minBackoff": "1ms", "maxBackoff": "6.99d"}}},
     "HANDOFF_WEBHOOK_MAX_BACKOFF"),
    ({"hooks": {"webhook": {"minBackoff": "1h", "maxBackoff": "60m"}}},
     "HANDOFF_WEBHOOK_MIN_BACKOFF"),
    ({"hooks": {"onFinishActor": "app.on_upload\u200b"}}, "HANDOFF_ON_FINISH_ACTOR"),
    ({"hooks": {"webhook": {"url": "http://1.2.3.4:8080/h?x=1"}}}, "HANDOFF_WEBHOOK_URL"),
]


@pytest.mark.parametrize(("values", "variable"), ADMITTED, ids=lambda v: str(v)[:40])
def test_admitted_edges_start_every_process(values: dict[str, Any], variable: str) -> None:
    environments = process_environments(render(values))
    for env in environments.values():
        load_settings(env)
    assert variable in next(iter(environments.values()))


REFUSED_VALUES = [
    pytest.param({"config": {"maxUploadSize": "0"}}, "/config/maxUploadSize", id="size-0"),
    pytest.param({"config": {"maxUploadSize": "0.5"}}, "/config/maxUploadSize", id="half-byte"),
    pytest.param({"config": {"maxUploadSize": "0.0001KB"}}, "/config/maxUploadSize",
                 id="size-tiny"),
    pytest.param({"hooks": {"webhook": {"timeout": "0"}}}, "/hooks/webhook/timeout",
                 id="timeout-0"),
    pytest.param({"hooks": {"webhook": {"timeout": "0.5ms"}}}, "/hooks/webhook/timeout",
                 id="timeout-under-1ms"),
    pytest.param({"hooks": {"webhook": {"minBackoff": "0.0001s"}}},
                 "/hooks/webhook/minBackoff", id="backoff-under-1ms"),
    pytest.param({"hooks": {"onFinishActor": "\u00a0app.actor"}}, "/hooks/onFinishActor",
                 id="actor-nbsp"),
    pytest.param({"hooks": {"onFinishActor": "app.actor\x0b"}}, "/hooks/onFinishActor",
                 id="actor-vertical-tab"),
    pytest.param({"hooks": {"onFinishActor": "app\nactor"}}, "/hooks/onFinishActor",
                 id="actor-two-lines"),
    pytest.param({"hooks": {"webhook": {"url": "http://:80/h"}}}, "/hooks/webhook/url",
                 id="url-no-host"),
    pytest.param({"hooks": {"webhook": {"url": "http://user@/h"}}}, "/hooks/webhook/url",
                 id="url-only-user"),
    pytest.param({"hooks": {"webhook": {"url": "http://[x/h"}}}, "/hooks/webhook/url",
                 id="url-bad-bracket"),
]


def _variable_values(values: dict[str, Any]) -> dict[str, str]:
    """The HANDOFF_* variables ``values`` would set, as the ConfigMap writes them."""
    names = {"maxUploadSize": "MAX_UPLOAD_SIZE", "timeout": "WEBHOOK_TIMEOUT",
             "minBackoff": "WEBHOOK_MIN_BACKOFF", "onFinishActor": "ON_FINISH_ACTOR",
             "url": "WEBHOOK_URL"}
    flat: dict[str, str] = {}

    def walk(node: dict[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value)
            else:
                flat[f"HANDOFF_{names[key]}"] = value

    walk(values)
    return flat


@pytest.mark.parametrize(("values", "where"), REFUSED_VALUES)
def test_values_the_config_refuses_fail_the_install(values: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(_variable_values(values))
    with pytest.raises(helm.HelmValuesError, match=where):
        render(values)


@pytest.mark.parametrize(("low", "high", "message"), [
    ("10s", "7d", "less than 7d"),
    ("10s", "604800000ms", "less than 7d"),
    ("2h", "1h", "more than"),
])
def test_webhook_backoffs_the_worker_refuses_fail_the_install(low: str, high: str,
                                                              message: str) -> None:
    with pytest.raises(ConfigError):
        load_settings({"HANDOFF_WEBHOOK_MIN_BACKOFF": low, "HANDOFF_WEBHOOK_MAX_BACKOFF": high})
    with pytest.raises(helm.HelmRenderError, match=message):
        render({"hooks": {"webhook": {"minBackoff": low, "maxBackoff": high}}})


def test_queue_names_are_any_length_to_the_config() -> None:
    """No limit to put in the schema: Dramatiq's rule has none."""
    long_name = "q" * 10_000
    assert load_settings({"HANDOFF_QUEUE": long_name}).queue == long_name
    assert "maxLength" not in _at("config/queue")


def test_the_queue_rule_has_only_ascii_classes() -> None:
    """Go and Python read [a-z] alike only for ASCII; the rule has no escapes or Unicode."""
    assert set(config.QUEUE_NAME) <= set(string.printable) and "\\" not in config.QUEUE_NAME



# --------------------------------------------------------------------------
# Store URLs: the schema holds store.url to parse_store_url's rule for its kind


def _store_url_patterns(kind: str) -> list[str]:
    (branch,) = [rule["then"] for rule in _at("store")["allOf"]
                 if rule["if"]["properties"]["kind"].get("const") == kind]
    return [part["pattern"] for part in branch["properties"]["url"]["allOf"]]


@pytest.mark.parametrize(("kind", "rule"), [("s3", config.S3_STORE_URL),
                                            ("azure", config.AZURE_STORE_URL)])
def test_the_store_url_patterns_are_the_configs_rules(kind: str, rule: str) -> None:
    assert _store_url_patterns(kind) == [_rule(rule), _rule(config.STORE_URL_SINGLE_DOTS)]


(BUCKET_FIRST, BUCKET_MIDDLE, BUCKET_LAST) = _classes(config.BUCKET_NAME)
PREFIX_CHARS = _classes(config.S3_STORE_URL)[3]  # a prefix name's characters
BUCKETS_ADMITTED = (
    [f"{first}{middle}{last}" for first in _edges(BUCKET_FIRST)
     for middle in _edges(BUCKET_MIDDLE) for last in _edges(BUCKET_LAST)]
    + ["a" * 63, "a.b-c.d"]
)
BUCKETS_REFUSED = (
    ["ab", "a" * 64, "a..b", "a.b..c", "Abc", "aBc", "abC"]
    + [f"{char}bc" for char in _just_outside(BUCKET_FIRST)]
    + [f"a{char}c" for char in _just_outside(BUCKET_MIDDLE)]
    + [f"ab{char}" for char in _just_outside(BUCKET_LAST)]
)
PREFIXES_ADMITTED = (
    ["", "/", "//", "/p/", "//p//", "/a/b/c", "/...", "/a..b", "/.a", "/a."]
    + [f"/{char}" for char in _edges(PREFIX_CHARS) if char != "."]
)
PREFIXES_REFUSED = (
    ["/.", "/..", "/a/./b", "/a/../b", "/a//b", "/a b", "?x=1", "#top", "/a?b", "/%41"]
    + [f"/a{char}" for char in _just_outside(PREFIX_CHARS) if char != "/"]
)
STORE_URLS_ADMITTED = [f"uploads{prefix}" for prefix in PREFIXES_ADMITTED] + BUCKETS_ADMITTED
STORE_URLS_REFUSED = ([f"uploads{prefix}" for prefix in PREFIXES_REFUSED]
                      + [f"{bucket}/p" for bucket in BUCKETS_REFUSED])


def test_the_generated_store_urls_cover_the_rule() -> None:
    """The cases come from the rule's classes: each range's ends, and what lies just outside."""
    assert set(_edges(BUCKET_MIDDLE)) == {"0", "9", "a", "z", ".", "-"}
    assert set(_edges(PREFIX_CHARS)) == {"0", "9", "a", "z", "A", "Z", ".", "_", "-"}
    assert {"`", "{", "/", ":", ","} <= {name[1] for name in BUCKETS_REFUSED if len(name) == 3}
    assert all(re.fullmatch(config.BUCKET_NAME, name) for name in BUCKETS_ADMITTED)


def _store(kind: str, path: str) -> dict[str, Any]:
    scheme = {"s3": "s3", "azure": "az"}[kind]
    return {"store": {"kind": kind, "url": f"{scheme}://{path}",
                      "azure": {"account": "handoffstore"}}}


@pytest.mark.parametrize("path", STORE_URLS_ADMITTED, ids=lambda path: path[:20])
@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_every_store_url_the_schema_admits_starts_every_process(kind: str, path: str) -> None:
    values = _store(kind, path)
    for where, env in process_environments(render(values)).items():
        settings = load_settings(env)
        assert settings.store_url == config.parse_store_url(values["store"]["url"]), where


@pytest.mark.parametrize("path", STORE_URLS_REFUSED, ids=repr)
@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_a_store_url_the_config_refuses_fails_the_install(kind: str, path: str) -> None:
    values = _store(kind, path)
    with pytest.raises(ConfigError):
        load_settings({"HANDOFF_STORE_URL": values["store"]["url"]})
    with pytest.raises(helm.HelmValuesError, match="/store/url"):
        render(values)


@pytest.mark.parametrize(("kind", "url"), [("s3", "az://uploads"), ("azure", "s3://uploads"),
                                           ("s3", "file:///var/uploads"), ("s3", "")])
def test_a_url_of_another_kind_fails_the_install(kind: str, url: str) -> None:
    """The config would start with these, on another store than the chart's kind says."""
    values = _store(kind, "uploads")
    values["store"]["url"] = url
    with pytest.raises(helm.HelmValuesError, match="/store/url"):
        render(values)
