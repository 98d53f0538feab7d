"""The admin's "Import JSON" page: valid documents become versions, anything else is a form
error with nothing stored."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from protocol.models import ProtocolVersion, SessionTemplate
from tests.conftest import shipped_document

URL = reverse("admin:protocol_protocolversion_import")
pytestmark = pytest.mark.django_db


def upload(content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile("protocol.json", content, content_type="application/json")


def counts() -> tuple[int, int]:
    return ProtocolVersion.objects.count(), SessionTemplate.objects.count()


def test_the_import_page_is_linked_from_the_list_and_renders(admin_client: Client) -> None:
    listing = admin_client.get(reverse("admin:protocol_protocolversion_changelist"))
    assert URL in listing.content.decode()
    assert admin_client.get(URL).status_code == 200


def test_a_shared_document_becomes_the_next_draft_version(admin_client: Client) -> None:
    document = shipped_document("mapp-ptsd")
    response = admin_client.post(
        URL, {"document": upload(json.dumps(document).encode()), "as_new_version": "on"}
    )
    created = ProtocolVersion.objects.get(protocol__slug="mapp-ptsd", version=2)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:protocol_protocolversion_change", args=[created.pk]
    )
    assert created.status == "draft"
    assert created.sessions.count() == len(document["sessions"])


def test_an_existing_version_number_is_refused_without_writing(admin_client: Client) -> None:
    before = counts()
    response = admin_client.post(
        URL, {"document": upload(json.dumps(shipped_document("mapp-ptsd")).encode())}
    )
    assert response.status_code == 200
    assert "exists already" in response.content.decode()
    assert counts() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "The file is not JSON"),
        (b"[]", "is not of type"),
    ],
)
def test_unreadable_files_are_form_errors(
    admin_client: Client, content: bytes, expected: str
) -> None:
    before = counts()
    response = admin_client.post(URL, {"document": upload(content), "as_new_version": "on"})
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert counts() == before


def test_every_problem_of_an_invalid_protocol_is_listed(admin_client: Client) -> None:
    document = shipped_document("mapp-ptsd")
    sessions = {s["key"]: s for s in document["sessions"]}
    sessions["prep-2"]["timing"]["target_days"] = 30  # outside its window [3, 14]
    sessions["prep-3"]["timing"]["anchor"] = "nowhere"
    before = counts()
    response = admin_client.post(
        URL, {"document": upload(json.dumps(document).encode()), "as_new_version": "on"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "prep-2: target +30 days is outside its window [+3, +14]" in page
    assert "prep-3: anchor &#x27;nowhere&#x27; is not a session of this protocol" in page
    assert counts() == before


def test_staff_without_the_add_permission_cannot_import(client: Client) -> None:
    from django.contrib.auth.models import User

    user = User.objects.create_user("viewer", password="pw-for-tests", is_staff=True)
    client.force_login(user)
    before = counts()
    response = client.post(
        URL, {"document": upload(json.dumps(shipped_document("mapp-ptsd")).encode())}
    )
    assert response.status_code == 403
    assert counts() == before
