"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the official Compose Specification JSON schema (vendored in
tests/data, see its README) and against this project's own deployment rules. No database needed.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft201909Validator
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from config.env import KNOWN, check_spelling

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

REQUIRED_SERVICES = {"postgres", "redis", "web", "worker", "beat"}
APP_SERVICES = ("web", "worker", "beat")
SECRET_KEY_INTERPOLATION = re.compile(r"^\$\{SECRET_KEY:\?[^}]+\}$")

# The schema's "$schema" written without scheme or trailing "#" -> the URI jsonschema knows it by.
# Upstream writes "https://json-schema.org/draft-07/schema", which validator_for does not know.
SUPPORTED_DIALECTS = {
    "json-schema.org/draft-07/schema": "http://json-schema.org/draft-07/schema#",
    "json-schema.org/draft/2019-09/schema": "https://json-schema.org/draft/2019-09/schema",
}

Document = dict[str, Any]


def load_compose() -> Document:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def compose_validator() -> Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    dialect = re.sub(r"^https?://", "", schema["$schema"]).rstrip("#")
    assert dialect in SUPPORTED_DIALECTS, f"unexpected schema dialect {schema['$schema']!r}"
    cls = validator_for({"$schema": SUPPORTED_DIALECTS[dialect]})
    assert cls in (Draft7Validator, Draft201909Validator), cls
    cls.check_schema(schema)
    return cls(schema)


def environment(service: Document) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", "NAME"]
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    assert isinstance(env, dict)
    return env


def words(service: Document) -> list[str]:
    """The service's command split into words, looking inside `sh -c "..."` strings too."""
    command = service.get("command") or []
    parts = shlex.split(command) if isinstance(command, str) else [str(p) for p in command]
    return [word for part in parts for word in shlex.split(part)]


def celery_roles(service: Document) -> set[str]:
    argv = words(service)
    if "celery" not in argv:
        return set()
    roles = {word for word in argv if word in {"worker", "beat"}}
    if "worker" in roles and {"-B", "--beat"} & set(argv):  # a worker with an embedded beat
        roles.add("beat")
    return roles


def rule_violations(document: Document) -> list[str]:
    """This project's deployment rules, beyond what the Compose schema checks."""
    problems: list[str] = []
    services: dict[str, Document] = document.get("services") or {}

    missing = REQUIRED_SERVICES - services.keys()
    if missing:
        problems.append(f"missing services: {sorted(missing)}")

    beats = sorted(name for name, service in services.items() if "beat" in celery_roles(service))
    if beats != ["beat"]:
        problems.append(f"exactly one service, beat, must run celery beat; found {beats}")
    for name in beats:
        service = services[name]
        replicas = (service.get("deploy") or {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas > 1:
            problems.append(f"{name}: deploy.replicas must be at most 1, not {replicas!r}")
        scale = service.get("scale", 1)
        if not isinstance(scale, int) or scale > 1:
            problems.append(f"{name}: scale must be at most 1, not {scale!r}")

    if "worker" in services and celery_roles(services["worker"]) != {"worker"}:
        problems.append(f"worker must run celery worker only: {words(services['worker'])}")
    if "beat" in services and celery_roles(services["beat"]) != {"beat"}:
        problems.append(f"beat must run celery beat only: {words(services['beat'])}")

    web = services.get("web") or {}
    depends_on = web.get("depends_on") or {}
    for dependency in ("postgres", "redis"):
        condition = depends_on.get(dependency, {}) if isinstance(depends_on, dict) else {}
        if condition.get("condition") != "service_healthy":
            problems.append(f"web must depend on {dependency} with condition service_healthy")
        if "healthcheck" not in services.get(dependency, {}):
            problems.append(f"{dependency} needs a healthcheck for service_healthy to work")

    for name, service in services.items():
        secret = environment(service).get("SECRET_KEY")
        if secret is not None and not SECRET_KEY_INTERPOLATION.match(str(secret)):
            problems.append(f"{name}: SECRET_KEY must come from ${{SECRET_KEY:?...}}, not a value")

    for name in APP_SERVICES:
        if name not in services:
            continue
        env = environment(services[name])
        for variable in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
            if not env.get(variable):
                problems.append(f"{name}: {variable} is not set")
        if str(env.get("DEBUG", "false")).lower() not in {"false", "0", "no", "off"}:
            problems.append(f"{name}: DEBUG must be off, not {env.get('DEBUG')!r}")
    return problems


def test_compose_file_matches_the_compose_specification() -> None:
    validator = compose_validator()
    document = load_compose()
    error = best_match(validator.iter_errors(document))
    assert error is None, f"{'/'.join(map(str, error.absolute_path))}: {error.message}"


def test_compose_file_follows_the_project_rules() -> None:
    assert rule_violations(load_compose()) == []


def test_shared_app_environment_uses_only_the_settings_the_app_reads() -> None:
    document = load_compose()
    shared = document.get("x-app-env")
    assert isinstance(shared, dict), "the shared x-app-env block is missing"
    assert shared, "the shared x-app-env block is empty"
    assert set(shared) <= set(KNOWN), set(shared) - set(KNOWN)
    check_spelling(shared)  # raises on a near-miss such as DATABSE_URL
    for name in APP_SERVICES:
        env = environment(document["services"][name])
        assert set(env) <= set(KNOWN), (name, set(env) - set(KNOWN))
        assert env == shared, f"{name} does not use the shared x-app-env"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")


def test_web_migrates_serves_and_is_health_checked() -> None:
    web = load_compose()["services"]["web"]
    script = " ".join(words(web))
    assert script.index("manage.py migrate") < script.index("gunicorn config.wsgi:application")
    assert "0.0.0.0:8000" in script
    assert any(str(port).split(":")[-1] == "8000" for port in web["ports"])
    health = " ".join(str(part) for part in web["healthcheck"]["test"])
    assert "/healthz" in health
    assert "python" in health
    assert "curl" not in health  # python:3.11-slim has no curl


def _bogus_top_level_key(document: Document) -> None:
    document["servces"] = {}


def _ports_not_a_list(document: Document) -> None:
    document["services"]["web"]["ports"] = 8000


def _unknown_depends_on_condition(document: Document) -> None:
    document["services"]["web"]["depends_on"]["postgres"]["condition"] = "service_ready"


def _unknown_service_key(document: Document) -> None:
    document["services"]["worker"]["replicas"] = 2


@pytest.mark.parametrize(
    "break_it",
    [
        _bogus_top_level_key,
        _ports_not_a_list,
        _unknown_depends_on_condition,
        _unknown_service_key,
    ],
)
def test_schema_rejects_an_invalid_compose_file(break_it: Callable[[Document], None]) -> None:
    validator = compose_validator()
    document = load_compose()
    assert validator.is_valid(document)
    broken = copy.deepcopy(document)
    break_it(broken)
    assert not validator.is_valid(broken)


def _second_beat_replica(document: Document) -> None:
    document["services"]["beat"]["deploy"] = {"replicas": 2}


def _worker_with_embedded_beat(document: Document) -> None:
    document["services"]["worker"]["command"] = "celery -A config worker -B"


def _literal_secret_key(document: Document) -> None:
    document["services"]["web"]["environment"] = {
        **document["services"]["web"]["environment"],
        "SECRET_KEY": "hunter2",
    }


def _web_without_health_condition(document: Document) -> None:
    document["services"]["web"]["depends_on"] = ["postgres", "redis"]


def _worker_without_redis(document: Document) -> None:
    env = dict(document["services"]["worker"]["environment"])
    del env["REDIS_URL"]
    document["services"]["worker"]["environment"] = env


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (_second_beat_replica, "deploy.replicas must be at most 1"),
        (_worker_with_embedded_beat, "exactly one service, beat, must run celery beat"),
        (_literal_secret_key, "web: SECRET_KEY must come from"),
        (_web_without_health_condition, "web must depend on postgres"),
        (_worker_without_redis, "worker: REDIS_URL is not set"),
    ],
)
def test_project_rules_catch_a_broken_compose_file(
    break_it: Callable[[Document], None], expected: str
) -> None:
    broken = copy.deepcopy(load_compose())
    break_it(broken)
    problems = rule_violations(broken)
    assert any(expected in problem for problem in problems), problems


def test_dockerfile_runs_as_non_root_without_a_baked_in_secret() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users, "the image must switch to a non-root USER"
    assert users[-1] not in {"root", "0"}
    assert not re.search(r"^\s*(ENV|ARG)\b.*SECRET_KEY", dockerfile, re.MULTILINE)
    assert "collectstatic --noinput" in dockerfile
    assert "config.wsgi:application" in dockerfile
