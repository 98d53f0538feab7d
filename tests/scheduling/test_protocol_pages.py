"""The protocol library pages."""

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from protocol.models import ProtocolVersion
from protocol.selectors import protocol_document, protocol_version_get
from tests.conftest import make_staff

pytestmark = pytest.mark.django_db


def test_the_library_lists_every_version_with_export_links(client: Client, site_a) -> None:
    client.force_login(make_staff("reader", "therapist", site_a))
    page = client.get("/protocols/").content.decode()
    assert "/protocols/mapp-ptsd/v1/" in page
    assert "/protocols/mdma-cbct-couples/v1/export/" in page
    assert "investigational" in page


def test_a_version_page_draws_every_session_with_its_window(client: Client, site_a) -> None:
    client.force_login(make_staff("reader", "therapist", site_a))
    page = client.get("/protocols/mapp-ptsd/v1/").content.decode()
    assert page.count('class="mark kind-dosing"') == 3
    assert page.count('class="mark kind-phone_checkin"') == 15
    assert "next morning" in page
    assert "80 mg + 40 mg" in page


def test_a_version_page_lists_each_sessions_reminder_rules(client: Client, site_a) -> None:
    client.force_login(make_staff("reader", "therapist", site_a))
    page = client.get("/protocols/mapp-ptsd/v1/").content.decode()
    assert page.count("72 h before, to the participant, by email or SMS") == 3
    assert page.count("the day before at 18:00, to the participant, by email or SMS") == 3
    assert page.count("15 min before, to the therapists, by email") == 3
    assert "no outcome 4 h after its time is escalated" in page


def test_the_export_is_the_protocol_document(client: Client, site_a) -> None:
    client.force_login(make_staff("reader", "therapist", site_a))
    response = client.get("/protocols/mapp-ptsd/v1/export/")
    assert response["Content-Disposition"] == 'attachment; filename="mapp-ptsd-v1.json"'
    version = protocol_version_get(slug="mapp-ptsd", version=1)
    assert json.loads(response.content) == protocol_document(version)


def test_unknown_versions_are_404_and_visitors_must_log_in(client: Client, site_a) -> None:
    assert client.get("/protocols/").status_code == 302
    client.force_login(make_staff("reader", "therapist", site_a))
    assert client.get("/protocols/mapp-ptsd/v9/").status_code == 404
    assert client.get("/protocols/nope/v1/export/").status_code == 404


def _upload(document: dict[str, Any], name: str = "p.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, json.dumps(document).encode(), "application/json")


def test_a_coordinator_imports_a_next_version_as_a_draft(client: Client, site_a) -> None:
    client.force_login(make_staff("coord", "coordinator", site_a))
    assert "/protocols/import/" in client.get("/protocols/").content.decode()
    document = protocol_document(protocol_version_get(slug="mapp-ptsd", version=1))
    response = client.post(
        "/protocols/import/", {"document": _upload(document), "as_new_version": "on"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/protocols/mapp-ptsd/v2/"
    assert protocol_version_get(slug="mapp-ptsd", version=2).status == "draft"


def test_import_errors_show_in_place_and_store_nothing(client: Client, site_a) -> None:
    client.force_login(make_staff("coord", "coordinator", site_a))
    before = ProtocolVersion.objects.count()
    not_json = client.post(
        "/protocols/import/",
        {"document": SimpleUploadedFile("x.json", b"{nope", "application/json")},
    )
    assert not_json.status_code == 200
    assert "The file is not JSON" in not_json.content.decode()
    document = protocol_document(protocol_version_get(slug="mapp-ptsd", version=1))
    taken = client.post("/protocols/import/", {"document": _upload(document)})
    assert "exists already" in taken.content.decode()
    document["sessions"][0]["duration_minutes"] = -5
    invalid = client.post("/protocols/import/", {"document": _upload(document)})
    assert invalid.status_code == 200
    assert 'class="errorlist' in invalid.content.decode()
    assert ProtocolVersion.objects.count() == before


def test_therapists_read_but_do_not_import(client: Client, site_a) -> None:
    client.force_login(make_staff("reader", "therapist", site_a))
    assert "/protocols/import/" not in client.get("/protocols/").content.decode()
    assert client.get("/protocols/import/").status_code == 404


def test_the_library_costs_the_same_queries_for_more_versions(client: Client, site_a) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from protocol.services import protocol_import

    client.force_login(make_staff("coord", "coordinator", site_a))
    with CaptureQueriesContext(connection) as few:
        client.get("/protocols/")
    document = protocol_document(protocol_version_get(slug="mapp-ptsd", version=1))
    for _ in range(3):
        protocol_import(document=document, as_new_version=True)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/protocols/").content.decode()
    assert "/protocols/mapp-ptsd/v4/" in page
    assert len(many) == len(few)
