"""Contact details at enrolment are held to the columns that store them, on the page and in
the API: a value too long is a field error, never a server error, and nothing is stored."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from scheduling.models import Participant
from tests.scheduling.test_views_enrol import fields

pytestmark = pytest.mark.django_db

#: a syntactically valid address longer than the 254 characters the column holds
LONG_EMAIL = "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "com"


def test_an_overlong_email_is_a_field_error_on_the_enrolment_page(site_a, coordinator_a) -> None:
    assert len(LONG_EMAIL) > 254
    client = Client(raise_request_exception=False)
    client.force_login(coordinator_a)
    preview = client.post("/participants/new/", fields(action="preview"))
    digest = preview.content.decode().split('name="digest" value="')[1].split('"')[0]
    for action in ("preview", "confirm"):
        response = client.post(
            "/participants/new/",
            fields(action=action, email=LONG_EMAIL, preferred_channel="email", digest=digest),
        )
        assert response.status_code == 200, action
        assert "at most 254 characters" in response.content.decode()
    assert not Participant.objects.exists()


def test_an_overlong_email_is_a_field_error_in_the_api(site_a, coordinator_a) -> None:
    client = APIClient(raise_request_exception=False)
    client.force_login(coordinator_a)
    body = {
        "code": "P-001",
        "site": "a",
        "protocol": "mapp-ptsd",
        "start_date": "2027-03-01",
        "email": LONG_EMAIL,
        "preferred_channel": "email",
    }
    refused = client.post("/api/participants/", body, format="json")
    assert refused.status_code == 400
    assert "email" in refused.json()
    assert not Participant.objects.exists()
