"""The session page: details and dose plan, reschedule with a preview then apply, status with
reasons, deviations and history; scoped by site."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from scheduling.models import Deviation, ScheduledSession
from scheduling.services import participant_enrol

NEW_YORK = ZoneInfo("America/New_York")
pytestmark = pytest.mark.django_db


@pytest.fixture
def course(site_a, coordinator_a):
    return participant_enrol(
        site=site_a,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )


def get(course, key) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key)


def starts(course) -> dict[str, datetime]:
    return dict(ScheduledSession.objects.filter(course=course).values_list("key", "start"))


def test_a_dosing_session_shows_its_dose_plan_room_and_reason(
    client: Client, course, coordinator_a
):
    dosing = get(course, "dosing-1")
    client.force_login(coordinator_a)
    page = client.get(f"/sessions/{dosing.pk}/").content.decode()
    assert "80 mg, then 40 mg 90\N{EN DASH}120 min later" in page
    assert dosing.room is not None and dosing.room.name in page
    assert dosing.plan_reason in page
    assert "enrolment" in page  # the history row and its reason


def test_preview_shows_the_cascade_and_writes_nothing_then_apply_moves_it(
    client: Client, course, coordinator_a
) -> None:
    dosing = get(course, "dosing-1")
    new_day = dosing.start.astimezone(NEW_YORK).date() + timedelta(days=1)
    before = starts(course)
    client.force_login(coordinator_a)
    form = {"date": new_day.isoformat(), "time": "09:00", "reason": ""}
    preview = client.post(f"/sessions/{dosing.pk}/", {**form, "action": "preview"})
    page = preview.content.decode()
    assert preview.status_code == 200
    assert "What would move" in page
    assert "Integration session 1a" in page.split("What would move")[1]
    assert starts(course) == before
    applied = client.post(f"/sessions/{dosing.pk}/", {**form, "action": "apply"})
    assert applied.status_code == 302
    after = starts(course)
    assert after["dosing-1"].astimezone(NEW_YORK).date() == new_day
    assert after["integration-1a"].astimezone(NEW_YORK).date() == new_day + timedelta(days=1)
    assert after["prep-1"] == before["prep-1"]


def test_leaving_the_window_without_a_reason_is_a_field_error(
    client: Client, course, coordinator_a
):
    dosing = get(course, "dosing-1")
    outside = dosing.window_end + timedelta(days=7)
    client.force_login(coordinator_a)
    before = starts(course)
    response = client.post(
        f"/sessions/{dosing.pk}/",
        {"date": outside.isoformat(), "time": "09:00", "reason": "", "action": "apply"},
    )
    assert response.status_code == 200
    assert "needs a reason" in response.content.decode()
    assert starts(course) == before
    assert not Deviation.objects.exists()


def test_bad_dates_are_form_errors_not_500s(client: Client, course, coordinator_a) -> None:
    session = get(course, "prep-2")
    client.force_login(coordinator_a)
    for data in ({"date": "2027-02-30", "time": "10:00"}, {"date": "", "time": "25:00"}, {}):
        response = client.post(f"/sessions/{session.pk}/", {**data, "action": "preview"})
        assert response.status_code == 200
        assert "errorlist" in response.content.decode()


def test_cancel_needs_a_reason_and_records_a_deviation(client: Client, course, coordinator_a):
    session = get(course, "prep-2")
    client.force_login(coordinator_a)
    refused = client.post(f"/sessions/{session.pk}/", {"status": "cancelled", "action": "status"})
    assert "needs a reason" in refused.content.decode()
    assert get(course, "prep-2").status == "planned"
    done = client.post(
        f"/sessions/{session.pk}/",
        {"status": "cancelled", "reason": "participant ill", "action": "status"},
    )
    assert done.status_code == 302
    assert get(course, "prep-2").status == "cancelled"
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert "participant ill" in page


def test_completing_works_once_the_session_has_happened(client: Client, course, coordinator_a):
    session = get(course, "prep-1")
    with time_machine.travel(session.end + timedelta(minutes=5), tick=False):
        client.force_login(coordinator_a)
        client.post(f"/sessions/{session.pk}/", {"status": "completed", "action": "status"})
    assert get(course, "prep-1").status == "completed"


def test_another_sites_session_is_a_404(client: Client, course, coordinator_b) -> None:
    client.force_login(coordinator_b)
    session = get(course, "prep-1")
    assert client.get(f"/sessions/{session.pk}/").status_code == 404
    response = client.post(
        f"/sessions/{session.pk}/", {"status": "cancelled", "reason": "x", "action": "status"}
    )
    assert response.status_code == 404
    assert get(course, "prep-1").status == "planned"
