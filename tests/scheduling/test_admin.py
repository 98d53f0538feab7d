"""The scheduling admin: every page renders, history shows who and why, and nothing clinical
can be deleted, added, edited or reverted here (the services plan and book)."""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Model
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse

from scheduling.models import (
    CheckInOutcome,
    Course,
    Deviation,
    Participant,
    Reminder,
    RoomBooking,
    ScheduledSession,
    Site,
    SiteClosure,
    StaffBooking,
    Unavailability,
)
from scheduling.services import access_log_record, participant_enrol, session_set_status
from tests.conftest import enrol_mapp, make_site, make_staff, once_over

pytestmark = pytest.mark.django_db

CLINICAL = (Participant, Course, ScheduledSession, Deviation, RoomBooking, StaffBooking)
SCHEDULING_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "scheduling"),
    key=lambda model: model.__name__,
)


def url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:scheduling_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def course(db: Any) -> Course:
    site = make_site("a", dyads=1, assessors=1)  # few users: each password hash takes time
    coordinator = make_staff("coordinator-zed", "coordinator", site)
    course = participant_enrol(
        site=site,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator,
    )
    session = ScheduledSession.objects.get(course=course, key="phone-1.2")
    with once_over(session):
        session_set_status(session=session, status="missed", by=coordinator, reason="no answer")
    Unavailability.objects.create(
        user=course.dyad.therapist_a,  # type: ignore[union-attr]
        start=session.start,
        end=session.end,
        reason="training",
    )
    access_log_record(user=coordinator, participant=course.participant, door="page", route="x")
    SiteClosure.objects.create(site=site, date=date(2027, 12, 24), reason="holiday")
    CheckInOutcome.objects.create(session=session, outcome="no_answer", recorded_by=coordinator)
    Reminder.objects.create(
        site=site,
        session=session,
        participant=course.participant,
        message="upcoming",
        channel="email",
        due_at=session.start,
        session_start=session.start,
        status="failed",
        reason="refused",
        idempotency_key=f"{session.uid}/admin-test",
    )
    return course


def test_every_scheduling_model_is_registered() -> None:
    names = {model.__name__ for model in SCHEDULING_MODELS}
    assert names == {
        "Site",
        "Room",
        "StaffProfile",
        "Dyad",
        "Unavailability",
        "Participant",
        "Course",
        "ScheduledSession",
        "Deviation",
        "RoomBooking",
        "StaffBooking",
        "AccessLog",
        "Reminder",  # the outbox, read-only
        "CheckInOutcome",
        "OpeningHours",  # also on the site's page; their own lists let coordinators add them
        "SiteClosure",
    }


@pytest.mark.parametrize("model", SCHEDULING_MODELS, ids=lambda model: model.__name__)
def test_changelist_change_and_history_pages_render(
    model: type[Model], course: Course, admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(20):  # list_select_related: no query per row
        response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200
    assert admin_client.get(url(model, "history", obj.pk)).status_code == 200


def test_the_session_history_shows_the_enrolment_and_the_reason(
    course: Course, admin_client: Client
) -> None:
    session = ScheduledSession.objects.get(course=course, key="phone-1.2")
    response = admin_client.get(url(ScheduledSession, "history", session.pk))
    assert response.status_code == 200
    text = response.content.decode()
    assert "enrolment" in text
    assert "no answer" in text  # marked missed, with its reason
    assert text.count("coordinator-zed") >= 2  # who: at enrolment and when marked missed


def test_delete_is_not_offered_for_clinical_records(course: Course, admin_client: Client) -> None:
    session = ScheduledSession.objects.get(course=course, key="dosing-1")
    change = admin_client.get(url(ScheduledSession, "change", session.pk)).content.decode()
    assert url(ScheduledSession, "delete", session.pk) not in change
    changelist = admin_client.get(url(ScheduledSession, "changelist")).content.decode()
    assert "delete_selected" not in changelist
    for model in CLINICAL:
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None
        assert admin.site._registry[model].has_delete_permission(_request(admin_client)) is False
        assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
        assert model._default_manager.filter(pk=obj.pk).exists()


def test_sessions_cannot_be_edited_added_or_reverted_here(
    course: Course, admin_client: Client
) -> None:
    """Moving a session means re-planning its dependents and re-booking: the services do it."""
    session = ScheduledSession.objects.get(course=course, key="dosing-1")
    before = (session.start, session.room_id, session.status)
    response = admin_client.post(url(ScheduledSession, "change", session.pk), {"status": "missed"})
    assert response.status_code == 403
    assert admin_client.get(url(ScheduledSession, "add")).status_code == 403
    version = session.history.earliest()
    revert = reverse(
        "admin:scheduling_scheduledsession_simple_history",
        args=[session.pk, version.history_id],
    )
    # a complete form, as the revert page would post it: simple-history alone would save it
    assert admin_client.post(revert, _form_data(version.instance)).status_code == 403
    session.refresh_from_db()
    assert (session.start, session.room_id, session.status) == before


def test_the_course_page_lists_its_sessions_read_only(course: Course, admin_client: Client) -> None:
    text = admin_client.get(url(Course, "change", course.pk)).content.decode()
    for key in ("prep-1", "dosing-1", "integration-1a", "follow-up"):
        assert key in text
    assert 'name="sessions-0-start"' not in text


def test_the_site_page_edits_opening_hours_and_closures(
    course: Course, admin_client: Client
) -> None:
    site = Site.objects.get(slug="a")
    text = admin_client.get(url(Site, "change", site.pk)).content.decode()
    assert 'name="hours-0-opens"' in text
    assert 'name="closures-TOTAL_FORMS"' in text


def test_a_participant_contact_can_be_corrected_but_not_the_code(
    course: Course, admin_client: Client
) -> None:
    participant = course.participant
    response = admin_client.post(
        url(Participant, "change", participant.pk),
        {"email": "p001@example.org", "phone": "", "preferred_channel": "email", "arm_code": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    participant.refresh_from_db()
    assert participant.email == "p001@example.org"
    assert participant.code == "P-001"
    assert admin_client.get(url(Participant, "add")).status_code == 403


def _request(client: Client) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = User.objects.get(username="admin")
    return request


def _form_data(session: ScheduledSession) -> dict[str, Any]:
    """The admin form's fields for ``session``, as stored at enrolment, marked completed."""
    data: dict[str, Any] = {
        key: "" if value is None else value for key, value in model_to_dict(session).items()
    }
    for name in ("start", "end"):  # the admin splits date and time
        moment = data.pop(name).astimezone(UTC)
        data[f"{name}_0"], data[f"{name}_1"] = moment.date(), moment.strftime("%H:%M:%S")
    data["status"] = "completed"
    return data


def test_a_coordinator_sees_only_their_sites_in_the_admin(client: Client) -> None:
    from django.contrib.auth.models import Permission

    site_a, site_b = make_site("a"), make_site("b", "Europe/London")
    coordinator_a = make_staff("coordinator-a", "coordinator", site_a)
    enrol_mapp(site_a, "P-A01", coordinator_a)
    coordinator_b = make_staff("coordinator-b", "coordinator", site_b)
    coordinator_b.is_staff = True
    coordinator_b.save()
    coordinator_b.user_permissions.add(
        *Permission.objects.filter(
            codename__startswith="view_", content_type__app_label="scheduling"
        )
    )
    client.force_login(coordinator_b)
    rooms = client.get("/admin/scheduling/room/").content.decode()
    assert "b dosing 1" in rooms and "a dosing 1" not in rooms
    assert ">Site a<" not in rooms  # not even as a filter choice
    assert "P-A01" not in client.get("/admin/scheduling/participant/").content.decode()
    room_a = site_a.rooms.first()
    assert client.get(f"/admin/scheduling/room/{room_a.pk}/change/").status_code == 302
    staff = client.get("/admin/scheduling/staffprofile/").content.decode()
    assert "coordinator-a" not in staff and "coordinator-b" in staff
    # the pages link to the site's set-up in the admin, which is styled as the pages are
    calendar = client.get("/calendar/").content.decode()
    assert f"/admin/scheduling/room/?site__id__exact={site_b.pk}" in calendar
    assert "Course scheduler · Administration" in rooms and "/today/" in rooms


def test_a_coordinator_added_here_gets_the_escalations_of_the_check_ins_ahead(
    admin_client: Client,
) -> None:
    # the overdue-check-in escalation goes to the site's coordinators: one who joins after
    # enrolment (or replaces the only one) must get the rows of the check-ins still ahead,
    # and one who leaves must lose theirs, at once, not only at the next move
    from scheduling.models import Reminder, StaffProfile

    site = make_site("ca")
    leaving = make_staff("coord-leaving", "coordinator", site)
    with_time = participant_enrol(
        site=site, code="CA-1", protocol_slug="mapp-ptsd", start_date=date(2030, 3, 4), by=None
    )
    user = User.objects.create_user("coord-new", password="test-password-1234")
    response = admin_client.post(
        url(StaffProfile, "add"), {"user": user.pk, "role": "coordinator", "sites": [site.pk]}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    checkins = ScheduledSession.objects.filter(course=with_time, kind="phone_checkin")
    new = Reminder.objects.filter(staff=user, purpose="escalation", status="pending")
    assert set(new.values_list("session_id", flat=True)) == set(
        checkins.values_list("pk", flat=True)
    )
    profile = StaffProfile.objects.get(user=leaving)
    response = admin_client.post(
        url(StaffProfile, "change", profile.pk),
        {"user": leaving.pk, "role": "therapist", "sites": [site.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    gone = Reminder.objects.filter(staff=leaving, purpose="escalation")
    assert gone.exists()
    assert set(gone.values_list("status", "reason")) == {
        ("cancelled", "no longer a coordinator at the site")
    }


def test_consent_and_the_pause_are_not_typed_in_here(course: Course, admin_client: Client) -> None:
    # consent is recorded with its source and the pause with its reason (the participant
    # page's Reminders form, an inbound STOP): the admin's form cannot set a date by hand
    participant = course.participant
    response = admin_client.post(
        url(Participant, "change", participant.pk),
        {
            "email": "p001@example.org",
            "phone": "",
            "preferred_channel": "email",
            "arm_code": "",
            "email_consent_at_0": "2020-01-01",
            "email_consent_at_1": "09:00:00",
            "reminders_paused_at_0": "2020-01-01",
            "reminders_paused_at_1": "09:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    participant.refresh_from_db()
    assert participant.email == "p001@example.org"
    assert participant.email_consent_at is None
    assert participant.reminders_paused_at is None
