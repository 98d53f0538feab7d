"""The bad-input sweep of the REST API: every route the URL resolver knows under /api/, with
malformed JSON, wrong types, NUL, huge numbers, long strings, impossible dates and empty bodies.
Never a 500: a 4xx with a JSON error, and an error has written nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from scheduling.models import Deviation, ScheduledSession
from scheduling.validators import REASON_MAX_LENGTH
from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db

NASTY: list[Any] = [
    None,
    "",
    "\x00",
    "x" * 10_000,
    "ü\u202e<script>",
    "2027-02-30",
    "9999-12-31",
    "0001-01-01",
    "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00+05:00",
    "2027-03-01T09:00:00",  # no offset
    "²",
    10**30,
    -(10**30),
    1.5,
    True,
    [],
    {},
    ["P-001"],
    {"$gt": ""},
]
RAW_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"\x00",
    b'{"a": 1e999}',
    b'{"a": NaN}',
    b"\xff\xfe",
    b"[" * 5000 + b"]" * 5000,  # deep nesting
    json.dumps({"reason": "x" * 1_000_000}).encode(),
]
QUERY_VALUES = ["\x00", "x" * 10_000, "²", "9" * 40, "-1", "2027-02-30", "9999-12-31", "", "a,b"]
QUERY_NAMES = ["site", "from", "to", "room", "therapist", "status", "page", "page_size", "q"]
#: the write routes' bodies that succeed, each field of which the sweep spoils in turn
WRITES: dict[str, dict[str, Any]] = {
    "api:participants": {
        "code": "P-900",
        "site": "a",
        "protocol": "mapp-ptsd",
        "start_date": "2027-04-05",
    },
    "api:session-reschedule": {"start": "2027-03-02T09:00:00-05:00", "reason": "", "dry_run": True},
    "api:session-cancel": {"reason": "participant ill"},
    "api:session-status": {"status": "cancelled", "reason": "participant ill"},
    "api:token": {"username": "coordinator-a", "password": "test-password-1234"},
    "api:session-checkin-outcome": {"outcome": "concern", "note": "worried"},
}
EXTRA_FIELDS = {"api:participants": ["dyad", "partner_code"]}
#: routes whose id is a site's: swept with the world's site
SITE_ROUTES = {"api:site-sessions-export"}
FINE = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 429}
#: the routes that serve a page or a schema document, not JSON errors
DOCUMENTS = {"/api/docs/", "/api/schema/"}


def api_routes() -> Iterator[tuple[str, str]]:
    """(name, path pattern) of every named route under /api/, as the resolver knows them."""
    api = next(
        p
        for p in get_resolver().url_patterns
        if isinstance(p, URLResolver) and str(p.pattern) == "api/"
    )
    for pattern in api.url_patterns:
        if isinstance(pattern, URLPattern) and pattern.name:
            yield f"api:{pattern.name}", str(pattern.pattern)


ROUTES = dict(api_routes())


def rows() -> tuple[int, ...]:
    """Every row count of the two apps and of the tokens, audit history included."""
    tables = [
        model._meta.db_table
        for config in apps.get_app_configs()
        if config.label in ("scheduling", "protocol", "knox", "authtoken")
        for model in config.get_models()
        # the access log records reads (that is its job), not writes
        if model._meta.managed and not model._meta.proxy and model.__name__ != "AccessLog"
    ]
    counts = ", ".join(f'(SELECT count(*) FROM "{table}")' for table in tables)  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        return tuple(cursor.fetchone())


@pytest.fixture
def world(site_a, coordinator_a) -> dict[str, Any]:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = ScheduledSession.objects.get(course=course, key="prep-2")
    return {
        "pk": session.pk,
        "participant": course.participant_id,
        "slug": "mapp-ptsd",
        "dyad": course.dyad_id,
        "site": site_a.pk,
    }


@pytest.fixture
def api(coordinator_a) -> APIClient:
    """Signed in however the API authenticates (the sweep is about input, not tokens)."""
    client = APIClient()
    client.force_authenticate(user=coordinator_a)
    return client


def address(name: str, world: dict[str, Any], pk: Any = None) -> str:
    """The route's path with the world's ids (or ``pk``) in its parameters."""
    path = "/api/" + ROUTES[name]
    ids = {"pk": world["participant"] if "participant" in name else world["pk"]}
    if name in SITE_ROUTES:
        ids = {"pk": world["site"]}
    if pk is not None:
        ids = {"pk": pk}
    for key, value in {**ids, "slug": pk if pk is not None else world["slug"]}.items():
        for converter in ("id", "int", "slug", "str"):
            path = path.replace(f"<{converter}:{key}>", str(value))
    return path


def answered(response: Any, what: Any) -> None:
    """Not a server failure, and an error says what went wrong, in JSON."""
    assert response.status_code in FINE, (response.status_code, what)
    if response.status_code >= 400 and response.wsgi_request.path not in DOCUMENTS:
        assert response["Content-Type"].startswith("application/json"), what
        assert response.json(), what


def test_the_sweep_knows_every_write_route() -> None:
    """A new route is swept as soon as the resolver knows it; a new write route needs its valid
    body in WRITES."""
    assert set(WRITES) <= set(ROUTES)
    assert {"api:participants", "api:session-reschedule", "api:sessions"} <= set(ROUTES)


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_every_route_with_bad_ids_and_query_strings(api: APIClient, world, name) -> None:
    before = rows()
    plain = address(name, world)
    for value in QUERY_VALUES:
        for parameter in QUERY_NAMES:
            answered(api.get(plain, {parameter: value}), (plain, parameter, value[:20]))
    if "<" in "/api/" + ROUTES[name]:
        for bad in ("9" * 18, "0", "99999999"):
            answered(api.get(address(name, world, pk=bad)), (name, bad))
            answered(api.post(address(name, world, pk=bad), {}, format="json"), (name, bad))
    assert rows() == before


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_every_route_with_malformed_bodies(api: APIClient, world, name) -> None:
    before = rows()
    path = address(name, world)
    for body in RAW_BODIES:
        for method in ("post", "put", "patch"):
            response = getattr(api, method)(path, body, content_type="application/json")
            answered(response, (path, method, body[:20]))
    answered(api.post(path, b"reason=x", content_type="text/plain"), (path, "text/plain"))
    answered(api.delete(path), (path, "delete"))
    assert rows() == before


@pytest.mark.parametrize("name", sorted(WRITES))
def test_every_field_of_every_write_with_nasty_values(api: APIClient, world, name) -> None:
    path = address(name, world)
    valid = WRITES[name]
    for field in [*valid, *EXTRA_FIELDS.get(name, []), "unknown"]:
        for value in NASTY:
            before = rows()
            body = {**valid, field: value}
            if name == "api:session-reschedule":
                body["dry_run"] = True if field != "dry_run" else value
            response = api.post(path, body, format="json")
            answered(response, (name, field, str(value)[:30]))
            if response.status_code >= 400:
                assert rows() == before, (name, field, str(value)[:30])
    for missing in valid:
        body = {k: v for k, v in valid.items() if k != missing}
        answered(api.post(path, body, format="json"), (name, "without", missing))


def test_a_reason_of_the_documented_length_is_kept_whole_and_one_more_is_refused(
    api: APIClient, world
) -> None:
    cancel = address("api:session-cancel", world)
    before = rows()
    refused = api.post(cancel, {"reason": "r" * (REASON_MAX_LENGTH + 1)}, format="json")
    assert refused.status_code == 400
    assert "reason" in refused.json()
    assert rows() == before
    reason = "r" * REASON_MAX_LENGTH
    assert api.post(cancel, {"reason": reason}, format="json").status_code == 200
    assert Deviation.objects.get(session_id=world["pk"]).reason == reason
    session = ScheduledSession.objects.get(pk=world["pk"])
    assert session.history.latest("history_date").history_change_reason == reason


@pytest.mark.parametrize("code", ["Jane Doe", "P" * 31, "P-1\x00", "-P1", "P/1", "P\u202e1", "ü1"])
def test_a_study_code_that_breaks_the_rule_is_a_field_error(api: APIClient, world, code) -> None:
    before = rows()
    for field in ("code", "partner_code"):
        body = {**WRITES["api:participants"], field: code}
        if field == "partner_code":
            body["protocol"] = "mdma-cbct-couples"
        response = api.post("/api/participants/", body, format="json")
        assert response.status_code == 400, (field, code)
        assert field in response.json() or "partner" in response.json(), response.json()
    assert rows() == before


def test_a_long_user_name_at_sign_in_is_not_a_500(db) -> None:
    client = APIClient()
    client.raise_request_exception = False
    body = {"username": "x" * 10_000, "password": "p"}
    answered(client.post("/api/auth/token/", body, format="json"), "long user name")
