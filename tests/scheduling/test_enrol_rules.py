"""Enrolment rules every door applies (the page, the API, the admin, the services): a start
before the site's today is refused unless entered on purpose as a back-entry with a reason
(recorded in the audit history); a reminder channel needs its address; confirming says what
was booked, in the site's time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from rest_framework.test import APIClient

from scheduling import services
from scheduling.models import Course, Participant, ScheduledSession
from tests.conftest import enrol_mapp
from tests.scheduling.test_views_enrol import fields

pytestmark = pytest.mark.django_db

#: 3 December 2026, 02:00 UTC: still Wednesday 2 December in New York (site a's zone)
NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def field_paragraph(page: str, field: str) -> str:
    """The form paragraph of ``field``: its errors sit before its label."""
    return page.split(f'<label for="id_{field}"')[0].rsplit("<p>", 1)[1]


def confirm(client: Client, **extra: Any) -> Any:
    preview = client.post("/participants/new/", fields(action="preview", **extra))
    page = preview.content.decode()
    assert 'name="digest"' in page, page
    digest = page.split('name="digest" value="')[1].split('"')[0]
    return client.post("/participants/new/", fields(action="confirm", digest=digest, **extra))


# --- a start in the past ---------------------------------------------------------------------


def test_the_services_refuse_a_start_before_the_sites_today(site_a, coordinator_a) -> None:
    with time_machine.travel(NOW, tick=False):
        with pytest.raises(services.SchedulingError) as refused:
            enrol_mapp(site_a, "P-001", coordinator_a, start=date(2026, 11, 30))
        message = refused.value.errors["start_date"][0]
        assert "Mon 30 Nov 2026 is in the past" in message
        assert "back-entry" in message
        # the site's local date decides: 2 December is still today in New York
        enrol_mapp(site_a, "P-002", coordinator_a, start=date(2026, 12, 2))
    assert not Participant.objects.filter(code="P-001").exists()


def test_a_back_entry_with_a_reason_is_recorded(site_a, coordinator_a) -> None:
    with time_machine.travel(NOW, tick=False):
        course = services.participant_enrol(
            site=site_a,
            code="P-001",
            protocol_slug="mapp-ptsd",
            start_date=date(2026, 11, 2),
            by=coordinator_a,
            back_entry_reason="paper records before go-live",
        )
    expected = "enrolment (back-entry: paper records before go-live)"
    assert course.participant.history.first().history_change_reason == expected
    assert course.history.first().history_change_reason == expected
    session = course.sessions.first()
    assert session is not None
    assert session.history.first().history_change_reason == expected


def test_the_page_refuses_a_past_start_and_takes_a_back_entry(
    client: Client, site_a, coordinator_a
) -> None:
    client.force_login(coordinator_a)
    with time_machine.travel(NOW, tick=False):
        past = client.post("/participants/new/", fields(action="preview", start_date="2026-11-02"))
        assert "is in the past at Site a" in field_paragraph(past.content.decode(), "start_date")
        ticked = client.post(
            "/participants/new/",
            fields(action="preview", start_date="2026-11-02", back_entry="on"),
        )
        reason = field_paragraph(ticked.content.decode(), "back_entry_reason")
        assert "Say why the course is entered late" in reason
        done = confirm(
            client,
            start_date="2026-11-02",
            back_entry="on",
            back_entry_reason="paper records before go-live",
        )
    assert done.status_code == 302
    participant = Participant.objects.get(code="P-014")
    assert "back-entry: paper records" in participant.history.first().history_change_reason


def test_the_api_refuses_a_past_start_and_takes_a_back_entry(site_a, coordinator_a) -> None:
    with time_machine.travel(NOW, tick=False):
        client = APIClient()
        client.force_login(coordinator_a)
        body = {"code": "P-001", "site": "a", "protocol": "mapp-ptsd", "start_date": "2026-11-02"}
        refused = client.post("/api/participants/", body, format="json")
        assert refused.status_code == 400
        assert "is in the past" in refused.json()["start_date"][0]
        assert not Participant.objects.exists()
        body["back_entry_reason"] = "paper records before go-live"
        taken = client.post("/api/participants/", body, format="json")
    assert taken.status_code == 201, taken.json()
    course = Course.objects.get(participant__code="P-001")
    assert "back-entry" in course.history.first().history_change_reason


# --- reminder channels -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "field", "message"),
    [("sms", "phone", "need a phone number"), ("email", "email", "need an email address")],
)
def test_a_channel_without_its_address_is_a_field_error_on_the_page(
    client: Client, site_a, coordinator_a, channel: str, field: str, message: str
) -> None:
    client.force_login(coordinator_a)
    response = client.post(
        "/participants/new/", fields(action="preview", preferred_channel=channel)
    )
    assert message in field_paragraph(response.content.decode(), field)
    assert not Participant.objects.exists()


def test_a_channel_without_its_address_is_a_field_error_in_the_api(site_a, coordinator_a):
    client = APIClient()
    client.force_login(coordinator_a)
    body = {"code": "P-001", "site": "a", "protocol": "mapp-ptsd", "start_date": "2027-03-01"}
    refused = client.post("/api/participants/", {**body, "preferred_channel": "sms"}, format="json")
    assert refused.status_code == 400
    assert "need a phone number" in refused.json()["phone"][0]
    assert not Participant.objects.exists()
    body.update(preferred_channel="sms", phone="+1 555 0100")
    taken = client.post("/api/participants/", body, format="json")
    assert taken.status_code == 201, taken.json()
    participant = Participant.objects.get(code="P-001")
    assert (participant.preferred_channel, participant.phone) == ("sms", "+1 555 0100")


@pytest.mark.parametrize("phone", ["abc", "call me", "12"])
def test_a_phone_that_is_no_phone_number_is_a_field_error(
    client: Client, site_a, coordinator_a, phone: str
) -> None:
    """SMS reminders to "abc" would go nowhere: a phone number has digits."""
    client.force_login(coordinator_a)
    response = client.post(
        "/participants/new/", fields(action="preview", preferred_channel="sms", phone=phone)
    )
    assert "Enter the phone number" in field_paragraph(response.content.decode(), "phone")
    assert 'name="digest"' not in response.content.decode()
    assert not Participant.objects.exists()
    api = APIClient()
    api.force_login(coordinator_a)
    body = {"code": "P-001", "site": "a", "protocol": "mapp-ptsd", "start_date": "2027-03-01"}
    refused = api.post("/api/participants/", {**body, "phone": phone}, format="json")
    assert refused.status_code == 400
    assert "Enter the phone number" in refused.json()["phone"][0]
    assert not Participant.objects.exists()


def test_the_services_apply_the_channel_rule_too(site_a, coordinator_a) -> None:
    with pytest.raises(services.SchedulingError) as refused:
        services.participant_enrol(
            site=site_a,
            code="P-001",
            protocol_slug="mapp-ptsd",
            start_date=date(2027, 3, 1),
            by=coordinator_a,
            contact={"preferred_channel": "email", "email": "", "phone": ""},
        )
    assert "email" in refused.value.errors
    assert not Participant.objects.exists()


def test_the_admin_refuses_sms_without_a_phone(client: Client, site_a, coordinator_a) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    coordinator_a.is_staff = True
    coordinator_a.save()
    client.force_login(coordinator_a)
    url = f"/admin/scheduling/participant/{course.participant_id}/change/"
    response = client.post(
        url, {"email": "", "phone": "", "preferred_channel": "sms", "arm_code": "", "_save": "1"}
    )
    assert response.status_code == 200
    assert "need a phone number" in response.content.decode()
    assert Participant.objects.get(code="P-001").preferred_channel == "none"


# --- what confirming did ---------------------------------------------------------------------


def test_confirming_says_what_was_booked_in_the_sites_time(
    client: Client, site_a, coordinator_a
) -> None:
    client.force_login(coordinator_a)
    response = confirm(client)
    assert response.status_code == 302
    count = ScheduledSession.objects.filter(course__participant__code="P-014").count()
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [f"Enrolled P-014: {count} sessions booked, first on Mon 1 Mar 2027 10:00 EST."]
    page = client.get(response["Location"]).content.decode()
    assert f"Enrolled P-014: {count} sessions booked" in page
