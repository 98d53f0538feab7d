"""The API keeps its OpenAPI contract: schemathesis generates requests for every operation of
the schema drf-spectacular builds (valid ones, and invalid ones), sends them in-process to the
WSGI application as seed_demo's coordinator, and checks each answer: never a 5xx, a status code
the operation documents, the documented content type and headers, a body its schema allows.

Bounded: at most POSITIVE + NEGATIVE examples per operation, no example database, no
shrinking past what a failure needs; the whole file runs in well under two minutes on 2 cores.
POST /api/auth/token/ is left out: it is the sign-in door (throttled, with lockout after failed
tries), tested by its own tests, and random credentials would only lock the test client out."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, given, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application

pytestmark = pytest.mark.django_db

POSITIVE = 15
NEGATIVE = 8
LEFT_OUT = {("POST", "/api/auth/token/")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Requests served by the WSGI handler inside the test's transaction: like Django's test
    client, keep the handler from closing the connection (and so the transaction) around a
    request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def demo_token(db: Any) -> str:
    """seed_demo's site and a token of its coordinator, who may do everything there."""
    call_command("seed_demo", stdout=io.StringIO())
    _, token = AuthToken.objects.create(User.objects.get(username="demo-coordinator"))
    key: str = token
    return key


def api_schema() -> dict[str, Any]:
    """The schema exactly as /api/schema/?format=json serves it."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    document: dict[str, Any] = json.loads(OpenApiJsonRenderer().render(generated))
    return document


def real_path_parameters() -> dict[str, dict[str, str]]:
    """Objects of the demo site for each route with a path parameter: random ids mostly miss
    (a 404), and the answers worth checking are those about real objects."""
    from scheduling.models import Dyad, Participant, Room, ScheduledSession, Site

    planned = list(ScheduledSession.objects.filter(status="planned").order_by("-start")[:4])
    assert len(planned) == 4
    ids = {
        "sites": Site.objects.get(slug="demo").pk,
        "rooms": Room.objects.filter(site__slug="demo").first().pk,  # type: ignore[union-attr]
        "staff": User.objects.get(username="demo-coordinator").pk,
        "dyads": Dyad.objects.filter(site__slug="demo").first().pk,  # type: ignore[union-attr]
        "participants": Participant.objects.get(site__slug="demo", code="D-005").pk,
        "sessions": planned[0].pk,
    }
    found = {f"/api/{kind}/{{id}}/": {"id": str(pk)} for kind, pk in ids.items()}
    # each action its own session: the first cancel would leave the others nothing to do
    for action, session in zip(("cancel", "reschedule", "status"), planned[1:], strict=True):
        found[f"/api/sessions/{{id}}/{action}/"] = {"id": str(session.pk)}
    for path in ("/api/protocols/{slug}/", "/api/protocols/{slug}/export/"):
        found[path] = {"slug": "mapp-ptsd"}
    return found


def passes(operation: Any, real: dict[str, dict[str, str]]) -> list[tuple[Any, int, Any]]:
    """(generation mode, examples, fixed path parameters) for one operation. One that takes
    no input at all (GET /api/me/calendar.ics) has no invalid request to make."""
    path = operation.path
    modes: list[tuple[Any, int, Any]] = [(schemathesis.GenerationMode.POSITIVE, POSITIVE, None)]
    # the credentials (a header and a cookie from the security schemes) are no input
    inputs = (operation.path_parameters, operation.query, operation.body)
    if any(len(part) for part in inputs):
        modes.append((schemathesis.GenerationMode.NEGATIVE, NEGATIVE, None))
    prefix = path if path in real else None
    prefix = prefix or next((p for p in real if path.startswith(p.rsplit("/", 2)[0] + "/{")), None)
    if prefix is not None:
        modes.append((schemathesis.GenerationMode.POSITIVE, POSITIVE, real[prefix]))
    return modes


def test_every_operation_keeps_the_schema(demo_token, in_process_requests) -> None:
    schema = schemathesis.openapi.from_dict(api_schema())
    headers = {"Authorization": f"Token {demo_token}"}
    real = real_path_parameters()
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if (operation.method.upper(), operation.path) in LEFT_OUT:
            continue
        tried += 1
        for mode, examples, fixed in passes(operation, real):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

            @given(case=strategy)
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: report as found
                suppress_health_check=list(HealthCheck),
            )
            def exchange(case: schemathesis.Case[Any]) -> None:
                response = case.call(app=application, headers=headers)
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                exchange()
            except Exception as exc:  # every operation's failure is reported, not the first
                label = f"{operation.method.upper()} {operation.path} ({mode}, {fixed})"
                failures.append(f"{label}: {exc}")
    assert tried >= 20, "the schema lost operations"
    assert not failures, "\n\n".join(failures)
