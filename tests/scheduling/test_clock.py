"""One clock for people and one name for staff: times in the site's zone with the zone shown
(the helpers, the pages, the admin's lists, read-only fields and history tables) and every
staff member named by the same display name (pages, admin, API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from scheduling import clock
from scheduling.models import (
    AccessLog,
    Course,
    Dyad,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
    Unavailability,
)
from scheduling.services import access_log_record, session_reschedule, session_set_status
from tests.conftest import enrol_mapp, make_site, make_staff, once_over

NEW_YORK = ZoneInfo("America/New_York")
# Mon 1 Mar 2027 09:00 in New York (EST, UTC-5) and Mon 1 Mar 2027 14:00 in London (GMT)
WINTER = datetime(2027, 3, 1, 14, 0, tzinfo=UTC)
SUMMER = datetime(2027, 7, 5, 13, 30, tzinfo=UTC)


# --- the helpers -----------------------------------------------------------------------------


def test_local_text_is_the_sites_wall_time_with_its_zone() -> None:
    assert clock.local_text(WINTER, "America/New_York") == "Mon 1 Mar 2027 09:00 EST"
    assert clock.local_text(SUMMER, "America/New_York") == "Mon 5 Jul 2027 09:30 EDT"
    assert clock.local_text(WINTER, ZoneInfo("Europe/London")) == "Mon 1 Mar 2027 14:00 GMT"
    assert clock.local_text(None, "America/New_York") == ""


@pytest.mark.django_db
def test_local_text_finds_the_zone_of_a_site_or_of_its_objects() -> None:
    site = Site(name="x", slug="x", timezone="Asia/Tokyo")
    assert clock.local_text(WINTER, site) == "Mon 1 Mar 2027 23:00 JST"
    session: Any = type("S", (), {"course": type("C", (), {"participant": type("P", (), {})})})
    session.course.participant.site = site
    assert clock.zone_of(session) == ZoneInfo("Asia/Tokyo")
    assert clock.zone_of(object()) is None


def test_without_a_zone_of_its_own_the_active_zone_is_used_and_shown(settings: Any) -> None:
    from django.utils import timezone

    assert clock.local_text(WINTER) == "Mon 1 Mar 2027 14:00 UTC"  # the server's, said so
    with timezone.override(NEW_YORK):
        assert clock.local_text(WINTER) == "Mon 1 Mar 2027 09:00 EST"


@pytest.mark.django_db
def test_display_name_is_the_full_name_else_the_user_name() -> None:
    named = User(username="jdoe", first_name="Jane", last_name="Doe")
    bare = User(username="t-42")
    assert clock.display_name(named) == "Jane Doe"
    assert clock.display_name(bare) == "t-42"
    assert clock.display_name(User(username="x", first_name="  ")) == "x"
    assert clock.display_name(None) == ""
    # Django names a user by itself in the admin (lists, choices, history): the same name
    assert str(named) == "Jane Doe" and str(bare) == "t-42"


@pytest.mark.django_db
def test_a_dyad_is_labelled_with_its_therapists_display_names() -> None:
    dyad = Dyad(
        name="Dyad 1",
        therapist_a=User(username="t1a", first_name="Ann", last_name="Lee"),
        therapist_b=User(username="t1b"),
    )
    assert clock.dyad_label(dyad) == "Dyad 1 (Ann Lee and t1b)"


def test_the_template_filters() -> None:
    rendered = Template(
        "{% load clock %}{{ m|local_text:'America/New_York' }}|"
        "{{ m|zone_abbreviation:'America/New_York' }}"
    ).render(Context({"m": WINTER}))
    assert rendered == "Mon 1 Mar 2027 09:00 EST|EST"


# --- the admin -------------------------------------------------------------------------------


@pytest.fixture
def course(db: Any) -> Any:
    site = make_site("a", dyads=1, assessors=1)
    coordinator = make_staff("coordinator-zed", "coordinator", site)
    coordinator.first_name, coordinator.last_name = "Zed", "Coordinator"
    coordinator.is_staff = True
    coordinator.save()
    course = enrol_mapp(site, "P-001", coordinator)
    session = ScheduledSession.objects.get(course=course, key="phone-1.2")
    with once_over(session):
        session_set_status(session=session, status="missed", by=coordinator, reason="no answer")
    Unavailability.objects.create(
        user=course.dyad.therapist_a,
        start=session.start,
        end=session.end,
        reason="training",
    )
    access_log_record(user=coordinator, participant=course.participant, door="page", route="x")
    return course


def url(model: type[Any], view: str, *args: Any) -> str:
    return reverse(f"admin:scheduling_{model._meta.model_name}_{view}", args=args)


def shown(moment: datetime) -> str:
    """How a person must read ``moment`` at site a: New York time with its abbreviation."""
    local = moment.astimezone(NEW_YORK)
    text = f"{local:%a} {local.day} {local:%b %Y %H:%M %Z}"
    assert text.endswith((" EST", " EDT"))
    return text


def bare_utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%H:%M}"


def coordinator_client(course: Course) -> Client:
    client = Client()
    client.force_login(User.objects.get(username="coordinator-zed"))
    return client


@pytest.mark.django_db
def test_admin_lists_show_times_in_the_sites_zone_with_the_zone(course: Course) -> None:
    client = coordinator_client(course)
    session = ScheduledSession.objects.filter(course=course).order_by("start").first()
    assert session is not None
    sessions = client.get(url(ScheduledSession, "changelist"))
    assert shown(session.start) in sessions.content.decode()
    assert shown(session.end) in sessions.content.decode()
    booking = RoomBooking.objects.filter(session__course=course).order_by("begin").first()
    assert booking is not None
    rooms = client.get(url(RoomBooking, "changelist")).content.decode()
    assert shown(booking.begin) in rooms and shown(booking.until) in rooms
    staff = StaffBooking.objects.filter(session__course=course).order_by("begin").first()
    assert staff is not None
    assert shown(staff.begin) in client.get(url(StaffBooking, "changelist")).content.decode()
    absence = Unavailability.objects.get()
    assert shown(absence.start) in client.get(url(Unavailability, "changelist")).content.decode()
    read = AccessLog.objects.get()
    administrator = make_staff("admin-a", "admin", course.participant.site)
    administrator.is_staff = True
    administrator.save()
    client.force_login(administrator)  # the record access log is for site administrators
    assert shown(read.at) in client.get(url(AccessLog, "changelist")).content.decode()


@pytest.mark.django_db
def test_a_sessions_read_only_form_and_history_are_in_the_sites_zone(course: Course) -> None:
    client = coordinator_client(course)
    session = ScheduledSession.objects.get(course=course, key="phone-1.2")
    form = client.get(url(ScheduledSession, "change", session.pk)).content.decode()
    assert shown(session.start) in form
    assert shown(session.end) in form
    history = client.get(url(ScheduledSession, "history", session.pk)).content.decode()
    recorded = session.history.order_by("history_date").last()
    assert recorded is not None
    assert shown(recorded.history_date) in history
    assert "Zed Coordinator" in history  # who changed it, by their display name


@pytest.mark.django_db
def test_the_history_tables_changes_show_times_in_the_sites_zone(course: Course) -> None:
    """The history table's "changes" column: a moved session's old and new start and end as
    people read them, never bare UTC ("2027-01-05 14:00:00+00:00")."""
    session = ScheduledSession.objects.get(course=course, key="prep-2")
    old_start, old_end = session.start, session.end
    moved = session_reschedule(
        session=session,
        start=session.start + timedelta(hours=1),
        reason="room needed",
        by=User.objects.get(username="coordinator-zed"),
    )
    assert moved.applied
    session.refresh_from_db()
    history = coordinator_client(course).get(url(ScheduledSession, "history", session.pk))
    page = history.content.decode()
    assert "+00:00" not in page
    for moment in (old_start, old_end, session.start, session.end):
        assert shown(moment) in page


@pytest.mark.django_db
def test_a_superuser_sees_each_rows_own_site_zone(course: Course, admin_client: Client) -> None:
    """Sites in different zones: each row of a list in its own site's zone, with the zone."""
    london = make_site("b", "Europe/London", dyads=1, assessors=1)
    other = enrol_mapp(london, "P-900", User.objects.get(username="coordinator-zed"))
    first = ScheduledSession.objects.filter(course=other).order_by("start").first()
    assert first is not None
    page = admin_client.get(url(ScheduledSession, "changelist") + "?q=P-900").content.decode()
    local = first.start.astimezone(ZoneInfo("Europe/London"))
    assert f"{local:%a} {local.day} {local:%b %Y %H:%M %Z}" in page


@pytest.mark.django_db
def test_the_admin_names_people_by_their_display_name(course: Course) -> None:
    client = coordinator_client(course)
    dyad = course.dyad
    assert dyad is not None
    dyad.therapist_a.first_name, dyad.therapist_a.last_name = "Ann", "Lee"
    dyad.therapist_a.save()
    dyads = client.get(url(Dyad, "changelist")).content.decode()
    assert "Ann Lee" in dyads
    assert "Welcome, <strong>Zed Coordinator</strong>" in client.get("/admin/").content.decode()


# --- the pages and the API -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_session_page_shows_its_times_and_people_with_the_zone(course: Course) -> None:
    client = coordinator_client(course)
    session = ScheduledSession.objects.get(course=course, key="phone-1.2")
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    deviation = session.deviations.get()
    assert f"(Zed Coordinator, {shown(deviation.created_at)})" in page
    recorded = session.history.order_by("history_date").last()
    assert recorded is not None
    assert shown(recorded.history_date) in page
    zone = shown(session.start).rsplit(" ", 1)[1]
    assert f"{zone} (America/New_York)" in page


@pytest.mark.django_db
def test_today_and_the_menu_name_staff_by_display_name(course: Course) -> None:
    dyad = course.dyad
    assert dyad is not None
    dyad.therapist_a.first_name, dyad.therapist_a.last_name = "Ann", "Lee"
    dyad.therapist_a.save()
    first = ScheduledSession.objects.filter(course=course).order_by("start").first()
    assert first is not None
    with time_machine.travel(first.start.astimezone(NEW_YORK).replace(hour=7), tick=False):
        page = coordinator_client(course).get("/today/").content.decode()
    assert "Ann Lee" in page
    assert "Zed Coordinator" in page  # the account in the menu


@pytest.mark.django_db
def test_the_api_names_staff_by_display_name(course: Course) -> None:
    dyad = course.dyad
    assert dyad is not None
    dyad.therapist_a.first_name = "Ann"
    dyad.therapist_a.save()
    client = coordinator_client(course)
    named = client.get(f"/api/staff/{dyad.therapist_a_id}/").json()
    bare = client.get(f"/api/staff/{dyad.therapist_b_id}/").json()
    assert named["name"] == "Ann"
    assert bare["name"] == dyad.therapist_b.username


@pytest.mark.django_db
def test_an_admin_form_reads_and_shows_times_in_the_sites_zone(course: Course) -> None:
    """A coordinator enters a therapist's absence at 09:00: it is 09:00 at the site (14:00 UTC
    in winter), not 09:00 UTC, and the form says which zone it means."""
    client = coordinator_client(course)
    absence = Unavailability.objects.get()
    change = url(Unavailability, "change", absence.pk)
    form = client.get(change).content.decode()
    assert "Local time in America/New_York (E" in form
    local_start = absence.start.astimezone(NEW_YORK)
    assert f'value="{local_start:%H:%M:%S}"' in form  # the time field, in the site's zone
    response = client.post(
        change,
        {
            "user": absence.user_id,
            "start_0": "2027-03-01",
            "start_1": "09:00",
            "end_0": "2027-03-01",
            "end_1": "12:00",
            "reason": "training",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    absence.refresh_from_db()
    assert absence.start == WINTER  # 09:00 EST
