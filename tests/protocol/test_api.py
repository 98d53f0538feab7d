"""The protocol library's REST API: versions, a version's detail and its JSON export. Protocols
are global: every signed-in user reads the same library, whatever their site."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from protocol.models import ProtocolVersion, SessionTemplate
from protocol.selectors import protocol_document, protocol_version_get
from protocol.spec import parse_document
from tests.conftest import shipped_document

pytestmark = pytest.mark.django_db

VERSION_FIELDS = {
    "slug",
    "version",
    "status",
    "name",
    "description",
    "investigational",
    "couples",
    "span_min_weeks",
    "span_max_weeks",
    "session_count",
    "created_at",
    "activated_at",
}


@pytest.fixture
def client_a(coordinator_a: Any) -> APIClient:
    client = APIClient()
    client.force_login(coordinator_a)
    return client


def test_every_version_is_listed(client_a) -> None:
    response = client_a.get("/api/protocols/")

    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"count", "next", "previous", "results"}
    listed = page["results"]
    assert page["count"] == len(listed) == ProtocolVersion.objects.count()
    stored = ProtocolVersion.objects.order_by("protocol__slug", "-version")
    assert [(v["slug"], v["version"]) for v in listed] == [
        (v.protocol.slug, v.version) for v in stored
    ]
    assert {"mapp-ptsd", "mdma-cbct-couples"} <= {v["slug"] for v in listed}
    for item in listed:
        assert set(item) == VERSION_FIELDS
        version = stored.get(protocol__slug=item["slug"], version=item["version"])
        assert item["session_count"] == SessionTemplate.objects.filter(version=version).count()
        assert item["status"] == version.status


def test_detail_is_the_active_version_with_its_sessions(client_a) -> None:
    active = protocol_version_get(slug="mapp-ptsd")

    response = client_a.get("/api/protocols/mapp-ptsd/")

    assert response.status_code == 200
    data = response.json()
    assert set(data) == VERSION_FIELDS | {"sessions"}
    assert (data["slug"], data["version"], data["status"]) == (
        "mapp-ptsd",
        active.version,
        "active",
    )
    templates = SessionTemplate.objects.filter(version=active).order_by("position")
    assert [s["key"] for s in data["sessions"]] == [t.key for t in templates]
    assert data["session_count"] == len(data["sessions"])
    dosing = next(s for s in data["sessions"] if s["key"] == "dosing-1")
    assert (dosing["kind"], dosing["anchor_key"], dosing["overnight"]) == (
        "dosing",
        "baseline",
        True,
    )

    named = client_a.get(f"/api/protocols/mapp-ptsd/?version={active.version}")
    assert named.json() == data


def test_session_templates_give_their_start_time_as_hours_and_minutes(client_a) -> None:
    active = protocol_version_get(slug="mapp-ptsd")

    sessions = client_a.get("/api/protocols/mapp-ptsd/").json()["sessions"]

    templates = SessionTemplate.objects.filter(version=active).order_by("position")
    assert [s["start_time"] for s in sessions] == [
        t.start_time.strftime("%H:%M") for t in templates
    ]
    assert sessions[0]["start_time"] == "10:00"  # as the protocol document writes it
    assert {s["start_time"] for s in sessions} >= {"09:00", "10:00"}


def test_export_is_the_protocol_document(client_a) -> None:
    version = protocol_version_get(slug="mapp-ptsd")

    response = client_a.get(f"/api/protocols/mapp-ptsd/export/?version={version.version}")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="mapp-ptsd-v{version.version}.json"'
    )
    document = response.json()
    assert document == protocol_document(version)
    # what was shipped comes back out, and reads back in
    assert document["sessions"] == shipped_document("mapp-ptsd")["sessions"]
    assert parse_document(document).slug == "mapp-ptsd"
    assert client_a.get("/api/protocols/mapp-ptsd/export/").json() == document


@pytest.mark.parametrize(
    "url",
    [
        "/api/protocols/no-such-protocol/",
        "/api/protocols/no-such-protocol/export/",
        "/api/protocols/mapp-ptsd/?version=999",
        "/api/protocols/mapp-ptsd/export/?version=999",
    ],
)
def test_unknown_protocols_and_versions_are_404_saying_what_exists(url, client_a) -> None:
    response = client_a.get(url)
    assert response.status_code == 404
    assert "mapp-ptsd" in response.json()["detail"]


@pytest.mark.parametrize("version", ["two", "0", "-1", "1.5"])
def test_a_bad_version_number_is_400(version, client_a) -> None:
    for url in ("/api/protocols/mapp-ptsd/", "/api/protocols/mapp-ptsd/export/"):
        response = client_a.get(f"{url}?version={version}")
        assert response.status_code == 400
        assert set(response.json()) == {"version"}


def test_protocols_are_global_not_per_site(client_a, coordinator_b) -> None:
    client_b = APIClient()
    client_b.force_login(coordinator_b)
    for url in (
        "/api/protocols/",
        "/api/protocols/mapp-ptsd/",
        "/api/protocols/mapp-ptsd/export/",
    ):
        mine, theirs = client_a.get(url), client_b.get(url)
        assert mine.status_code == theirs.status_code == 200
        assert mine.json() == theirs.json()


@pytest.mark.parametrize(
    "url",
    ["/api/protocols/", "/api/protocols/mapp-ptsd/", "/api/protocols/mapp-ptsd/export/"],
)
def test_without_credentials_the_library_is_401(db, url) -> None:
    response = APIClient().get(url)
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}


def test_the_list_costs_the_same_queries_however_many_versions(
    client_a, django_assert_max_num_queries
) -> None:
    assert ProtocolVersion.objects.count() >= 2
    # session, user, the user's role and sites (the access policy), the count, the page of
    # versions with their session counts, and saving the session (a savepoint around it)
    with django_assert_max_num_queries(9):
        assert client_a.get("/api/protocols/").status_code == 200


# --- who may read protocols: the access policy (dose plans are never for a blinded assessor) --

LIBRARY = ["/api/protocols/", "/api/protocols/mapp-ptsd/", "/api/protocols/mapp-ptsd/export/"]


@pytest.mark.parametrize("url", LIBRARY)
def test_a_blinded_assessor_may_not_read_protocols(url, site_a) -> None:
    from django.contrib.auth.models import User

    client = APIClient()
    client.force_login(User.objects.get(username="a-assessor1"))  # a remote assessor at A

    response = client.get(url)

    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert "dose" not in response.content.decode().replace("dose plans", "")


@pytest.mark.parametrize("url", LIBRARY)
@pytest.mark.parametrize("role", ["therapist", "night_attendant", "admin"])
def test_the_clinical_team_reads_protocols(url, role, site_a) -> None:
    from tests.conftest import make_staff

    client = APIClient()
    client.force_login(make_staff(f"{role}-x", role, site_a))
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", LIBRARY)
def test_a_user_of_no_site_may_not_read_protocols(url, db) -> None:
    from django.contrib.auth.models import User

    client = APIClient()
    client.force_login(User.objects.create_user("nobody", password="x-password-1234"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", LIBRARY[1:])
def test_an_empty_version_is_a_field_error(url, client_a) -> None:
    response = client_a.get(f"{url}?version=")
    assert response.status_code == 400
    assert set(response.json()) == {"version"}


def test_the_list_is_paginated(client_a) -> None:
    first = client_a.get("/api/protocols/?page_size=1").json()
    assert first["count"] == ProtocolVersion.objects.count() >= 2
    assert len(first["results"]) == 1
    assert first["previous"] is None
    assert first["next"].endswith("/api/protocols/?page=2&page_size=1")
    second = client_a.get(first["next"]).json()
    assert second["results"] != first["results"]


def test_session_templates_start_time_matches_the_schema(client_a) -> None:
    import re

    schema = client_a.get("/api/schema/?format=json").json()
    declared = schema["components"]["schemas"]["SessionTemplateOutput"]["properties"]
    assert declared["start_time"]["type"] == "string"
    assert "format" not in declared["start_time"]
    sessions = client_a.get("/api/protocols/mapp-ptsd/").json()["sessions"]
    assert all(re.fullmatch(declared["start_time"]["pattern"], s["start_time"]) for s in sessions)
