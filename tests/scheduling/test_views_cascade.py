"""Pages and API actions for cancelling cascades, rebooking, withdrawing and ending a course,
and couples on the boards: previews store nothing, applying does it all, bad input is a field
error, and the list agrees with the participant's page."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from scheduling import services
from scheduling.models import Course, Participant, RoomBooking, ScheduledSession, Site
from tests.conftest import make_site, make_staff

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
TIED = ["integration-1a", *(f"phone-1.{n}" for n in range(1, 6))]


def enrol(site: Site, code: str, by: Any, **kw: Any) -> Course:
    return services.participant_enrol(
        site=site, code=code, protocol_slug="mapp-ptsd", start_date=date(2027, 3, 1), by=by, **kw
    )


@pytest.fixture
def course(site_a: Site, coordinator_a: Any) -> Course:
    return enrol(site_a, "P-001", coordinator_a)


@pytest.fixture
def couple(db: Any, coordinator_a: Any) -> Course:
    site = make_site("cpl", couples_room=True)
    coordinator_a.staff_profile.sites.add(site)
    return services.participant_enrol(
        site=site,
        code="C-01",
        partner_code="C-02",
        protocol_slug="mdma-cbct-couples",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )


def current(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


def statuses(course: Course) -> dict[str, str]:
    return dict(course.sessions.filter(superseded=False).values_list("key", "status"))


# --- the session page ------------------------------------------------------------------------


def test_the_status_preview_lists_each_dependent_and_apply_cancels_them(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    dosing = current(course, "dosing-1")
    before = statuses(course)
    body = {"action": "status-preview", "status": "cancelled", "reason": "unwell"}
    page = client.post(f"/sessions/{dosing.pk}/", body).content.decode()
    assert statuses(course) == before
    preview = page.split('id="status-preview"')[1].split("</table>")[0]
    assert preview.count('data-outcome="cancelled_with"') == len(TIED)
    assert 'data-key="integration-1a" data-outcome="cancelled_with"' in preview
    assert 'data-key="integration-1b" data-outcome="awaits_rebooking"' in preview

    response = client.post(f"/sessions/{dosing.pk}/", {**body, "action": "status"})
    assert response.status_code == 302
    after = statuses(course)
    assert all(after[k] == "cancelled" for k in ["dosing-1", *TIED])
    assert after["integration-1b"] == "planned"
    page = client.get(f"/sessions/{current(course, 'integration-1b').pk}/").content.decode()
    assert "is rebooked, which re-plans it" in page


def test_a_status_preview_without_a_reason_is_a_field_error(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    dosing = current(course, "dosing-1")
    page = client.post(
        f"/sessions/{dosing.pk}/", {"action": "status-preview", "status": "cancelled"}
    ).content.decode()
    assert "needs a reason" in page
    assert statuses(course)["dosing-1"] == "planned"


def test_rebooking_on_the_page_previews_then_replaces(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    dosing = current(course, "dosing-1")
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    page = client.get(f"/sessions/{dosing.pk}/").content.decode()
    assert 'id="rebook-section"' in page
    new_day = dosing.start.astimezone(NEW_YORK).date() + timedelta(days=7)
    body = {"action": "rebook-preview", "date": new_day.isoformat(), "time": "09:00"}
    page = client.post(f"/sessions/{dosing.pk}/", body).content.decode()
    assert 'id="rebook-preview"' in page and 'data-key="integration-1a"' in page
    assert not ScheduledSession.objects.filter(replaces__isnull=False).exists()

    response = client.post(f"/sessions/{dosing.pk}/", {**body, "action": "rebook"})
    new = current(course, "dosing-1")
    assert response.status_code == 302 and response["Location"] == f"/sessions/{new.pk}/"
    assert new.replaces_id == dosing.pk
    old_page = client.get(f"/sessions/{dosing.pk}/").content.decode()
    assert "Rebooked: this cancelled session was replaced by" in old_page
    assert 'id="rebook-section"' not in old_page  # rebooked once, not twice


def test_rebooking_with_a_bad_date_is_a_field_error(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    dosing = current(course, "dosing-1")
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    far = dosing.start.astimezone(NEW_YORK).date() + timedelta(days=20)  # past its window
    body = {"action": "rebook-preview", "date": far.isoformat(), "time": "09:00"}
    response = client.post(f"/sessions/{dosing.pk}/", body)
    assert response.status_code == 200
    page = response.content.decode()
    assert "needs a reason" in page.split('id="rebook-section"')[1]
    assert not ScheduledSession.objects.filter(replaces__isnull=False).exists()


def test_a_therapist_may_not_withdraw(client: Client, course: Course, therapist_a: Any) -> None:
    client.force_login(therapist_a)
    participant = course.participant
    response = client.post(
        f"/participants/{participant.pk}/", {"action": "withdraw", "reason": "no"}
    )
    assert response.status_code in (403, 404)
    participant.refresh_from_db()
    assert participant.status == "enrolled"


# --- the participant page ------------------------------------------------------------------


def test_withdrawing_on_the_participant_page_previews_then_cancels_everything(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    url = f"/participants/{course.participant_id}/"
    page = client.post(url, {"action": "withdraw-preview", "reason": ""}).content.decode()
    assert "Give a reason" in page
    page = client.post(url, {"action": "withdraw-preview", "reason": "consent"}).content.decode()
    assert f"{course.sessions.count()} planned sessions would be cancelled" in page
    assert set(statuses(course).values()) == {"planned"}
    response = client.post(url, {"action": "withdraw", "reason": "consent"})
    assert response.status_code == 302
    course.refresh_from_db()
    assert course.status == "withdrawn"
    assert set(statuses(course).values()) == {"cancelled"}
    assert not RoomBooking.objects.filter(session__course=course, active=True).exists()
    page = client.get(url).content.decode()
    assert 'id="participant-status">Withdrawn' in page


def test_ending_a_course_on_the_page(client: Client, course: Course, coordinator_a: Any) -> None:
    client.force_login(coordinator_a)
    url = f"/participants/{course.participant_id}/"
    body = {"action": "end", "reason": "clinical decision", "course": str(course.pk)}
    assert client.post(url, {**body, "course": "999999"}).status_code == 404
    # not an id, though Python's str.isdigit() says "²" and "\u0663" are digits: a 404, not a 500
    for bad in ("²", "\u0663", "9" * 40, "-1", ""):
        assert client.post(url, {**body, "course": bad}).status_code == 404, bad
    assert client.post(url, body).status_code == 302
    course.refresh_from_db()
    assert course.status == "ended"


def test_partners_pages_name_and_link_each_other(
    client: Client, couple: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    partner = couple.partner
    assert partner is not None
    page = client.get(f"/participants/{couple.participant_id}/").content.decode()
    assert f'<a href="/participants/{partner.pk}/">C-02</a>' in page
    page = client.get(f"/participants/{partner.pk}/").content.decode()
    assert f'<a href="/participants/{couple.participant_id}/">C-01</a>' in page


def test_the_list_and_the_page_agree_on_a_partners_next_session(
    client: Client, couple: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    partner = couple.partner
    assert partner is not None
    first = couple.sessions.order_by("start").first()
    assert first is not None
    with time_machine.travel(date(2027, 2, 1), tick=False):
        client.force_login(coordinator_a)
        listing = client.get("/participants/?next=30").content.decode()
        page = client.get(f"/participants/{partner.pk}/").content.decode()
        by_protocol = client.get("/participants/?protocol=mdma-cbct-couples").content.decode()
    shown = f"{first.start.astimezone(NEW_YORK):%a %-d %b %Y}"
    assert "C-02" in listing and shown in listing.split("C-02")[1]
    assert shown in page.split("Next session:")[1][:80]
    assert "C-02" in by_protocol  # the partner takes the couples protocol too


# --- boards --------------------------------------------------------------------------------


def test_today_and_the_calendar_show_both_codes_of_a_couple(
    client: Client, couple: Course, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    dosing = current(couple, "dosing-1")
    morning = dosing.start.astimezone(NEW_YORK).replace(hour=7)
    with time_machine.travel(morning, tick=False):
        client.force_login(coordinator_a)
        today = client.get("/today/?site=cpl").content.decode()
    assert "C-01 &amp; C-02 (couple)" in re.sub(r"<[^>]+>", "", today)  # both linked
    for partner in (couple.participant, couple.partner):
        assert partner is not None
        assert f'href="/participants/{partner.pk}/"' in today
    day = dosing.start.astimezone(NEW_YORK).date().isoformat()
    client.force_login(coordinator_a)
    calendar = client.get(f"/calendar/?site=cpl&view=week&by=room&date={day}").content.decode()
    assert "C-01 &amp; C-02" in calendar


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
def api(coordinator_a: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(coordinator_a)
    return client


def test_api_cancel_dry_run_lists_dependents_and_stores_nothing(
    api: APIClient, course: Course
) -> None:
    dosing = current(course, "dosing-1")
    answer = api.post(
        f"/api/sessions/{dosing.pk}/cancel/", {"reason": "unwell", "dry_run": True}, format="json"
    )
    assert answer.status_code == 200
    data = answer.json()
    assert data["applied"] is False and data["status"] == "planned"
    outcomes = {d["key"]: d["outcome"] for d in data["dependents"]}
    assert {k for k, v in outcomes.items() if v == "cancelled_with"} == set(TIED)
    assert outcomes["dosing-2"] == "awaits_rebooking"
    assert set(statuses(course).values()) == {"planned"}
    answer = api.post(f"/api/sessions/{dosing.pk}/cancel/", {"reason": "unwell"}, format="json")
    assert answer.json()["applied"] is True and answer.json()["status"] == "cancelled"
    assert statuses(course)["integration-1a"] == "cancelled"


def test_api_rebook(api: APIClient, course: Course, coordinator_a: Any) -> None:
    dosing = current(course, "dosing-1")
    start = (dosing.start.astimezone(NEW_YORK) + timedelta(days=7)).isoformat()
    answer = api.post(f"/api/sessions/{dosing.pk}/rebook/", {"start": start}, format="json")
    assert answer.status_code == 400 and "start" in answer.json()  # not cancelled
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    for bad in ({}, {"start": "2027-04-01T09:00:00"}, {"start": start, "reason": "x" * 2001}):
        answer = api.post(f"/api/sessions/{dosing.pk}/rebook/", bad, format="json")
        assert answer.status_code == 400, bad
    answer = api.post(
        f"/api/sessions/{dosing.pk}/rebook/", {"start": start, "dry_run": True}, format="json"
    )
    data = answer.json()
    assert answer.status_code == 200 and data["applied"] is False and data["session"] is None
    assert {r["key"] for r in data["rebooked"]} == {"dosing-1", *TIED}
    assert all(r["id"] is None for r in data["rebooked"])
    answer = api.post(f"/api/sessions/{dosing.pk}/rebook/", {"start": start}, format="json")
    data = answer.json()
    new = current(course, "dosing-1")
    assert data["applied"] is True and data["session"] == new.pk
    assert data["rebooked"][0]["replaces"] == dosing.pk


def test_api_withdraw_and_end(api: APIClient, course: Course, site_a: Site) -> None:
    url = f"/api/participants/{course.participant_id}/withdraw/"
    assert api.post(url, {}, format="json").status_code == 400
    answer = api.post(url, {"reason": "consent", "dry_run": True}, format="json")
    assert answer.status_code == 200 and answer.json()["applied"] is False
    assert len(answer.json()["cancelled"]) == course.sessions.count()
    assert api.post(url, {"reason": "consent"}, format="json").json()["applied"] is True
    assert Participant.objects.get(pk=course.participant_id).status == "withdrawn"
    other = enrol(site_a, "P-002", None)
    answer = api.post(f"/api/courses/{other.pk}/end/", {"reason": "decision"}, format="json")
    assert answer.status_code == 200 and answer.json()["status"] == "ended"


def test_api_therapists_may_not_withdraw(course: Course, site_a: Site) -> None:
    therapist = course.dyad.therapist_a  # type: ignore[union-attr]
    client = APIClient()
    client.force_authenticate(therapist)
    url = f"/api/participants/{course.participant_id}/withdraw/"
    assert client.post(url, {"reason": "x"}, format="json").status_code == 403
    assert (
        client.post(f"/api/courses/{course.pk}/end/", {"reason": "x"}, format="json").status_code
        == 403
    )
    outsider = make_staff("coord-z", "coordinator", make_site("z"))
    client.force_authenticate(outsider)
    assert client.post(url, {"reason": "x"}, format="json").status_code == 404
    assert Participant.objects.get(pk=course.participant_id).status == "enrolled"


def test_todays_attention_list_names_both_partners_of_a_joint_session(
    client: Client, couple: Course, coordinator_a: Any
) -> None:
    first = couple.sessions.filter(superseded=False).order_by("start").first()
    assert first is not None
    with time_machine.travel(first.end + timedelta(hours=2), tick=False):
        client.force_login(coordinator_a)
        today = client.get("/today/?site=cpl").content.decode()
    overdue = today.split('id="attention-overdue"')[1].split("</ul>")[0]
    assert "<strong>C-01</strong> &amp; <strong>C-02</strong>" in overdue
