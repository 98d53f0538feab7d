"""The Today page: the site's sessions today and tomorrow in local time, overnight stays, what
needs attention; scoped by site and role."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from scheduling.models import Dyad, ScheduledSession
from scheduling.services import session_set_status
from tests.conftest import enrol_mapp as enrol

NEW_YORK = ZoneInfo("America/New_York")
pytestmark = pytest.mark.django_db


def session(course, key) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key)


def page_at(client: Client, user, moment: datetime, url: str = "/today/"):
    with time_machine.travel(moment, tick=False):
        client.force_login(user)
        return client.get(url)


def test_anonymous_visitors_are_sent_to_log_in(client) -> None:
    response = client.get("/today/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_dosing_day_shows_the_session_room_dyad_and_overnight(client, site_a, coordinator_a):
    course = enrol(site_a, "P-001", coordinator_a)
    dosing = session(course, "dosing-1")
    morning = dosing.start.astimezone(NEW_YORK).replace(hour=7, minute=0)
    page = page_at(client, coordinator_a, morning).content.decode()
    assert "P-001" in page
    assert dosing.title in page
    assert dosing.room is not None
    assert dosing.room.name in page
    assert course.dyad.name in page
    assert course.dyad.therapist_a.username in page and course.dyad.therapist_b.username in page
    assert "stays overnight" in page
    local = dosing.start.astimezone(NEW_YORK)
    assert f"{local:%H:%M}\N{EN DASH}{dosing.end.astimezone(NEW_YORK):%H:%M}" in page
    assert "America/New_York" in page
    # tomorrow's next-morning session is listed under Tomorrow
    integration = session(course, "integration-1a")
    assert integration.title in page.split("Tomorrow,")[1]


def test_the_next_morning_lists_the_overnight_stay(client, site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing = session(course, "dosing-1")
    next_morning = (dosing.start + timedelta(days=1)).astimezone(NEW_YORK).replace(hour=7)
    page = page_at(client, coordinator_a, next_morning).content.decode()
    overnight = page.split("Overnight stays into this morning")[1].split("</section>")[0]
    assert "P-001" in overnight
    assert dosing.room is not None
    assert dosing.room.name in overnight


def test_another_sites_coordinator_sees_nothing_of_it(client, site_a, coordinator_a, coordinator_b):
    course = enrol(site_a, "P-001", coordinator_a)
    moment = session(course, "prep-1").start - timedelta(hours=2)
    assert page_at(client, coordinator_b, moment, "/today/?site=a").status_code == 404
    page = page_at(client, coordinator_b, moment).content.decode()
    assert "P-001" not in page
    assert "Site b" in page


def test_a_therapist_sees_only_their_own_sessions(client, site_a, coordinator_a) -> None:
    dyads = list(Dyad.objects.filter(site=site_a).order_by("name"))
    mine = enrol(site_a, "P-001", coordinator_a, dyad=dyads[0])
    enrol(site_a, "P-002", coordinator_a, dyad=dyads[1])
    moment = session(mine, "prep-1").start - timedelta(hours=2)
    page = page_at(client, dyads[0].therapist_a, moment).content.decode()
    assert "P-001" in page
    assert "P-002" not in page


def test_a_missed_session_with_nothing_in_its_place_needs_attention(client, site_a, coordinator_a):
    """The protocol still needs it, even with later sessions planned (those are planned from
    it: they are flagged too); once nothing of the course is open, it is still listed."""
    course = enrol(site_a, "P-001", coordinator_a)
    prep = session(course, "prep-1")
    with time_machine.travel(prep.end + timedelta(minutes=1), tick=False):
        session_set_status(session=prep, status="missed", reason="did not come", by=coordinator_a)
    followed = page_at(client, coordinator_a, prep.end + timedelta(days=1)).content.decode()
    missed = followed.split("Cancelled or missed, with nothing planned in their place")[1]
    assert "P-001" in missed.split("</ul>")[0]
    anchored = followed.split("Still planned, but their anchor was cancelled or missed")[1]
    assert f'href="/sessions/{session(course, "prep-2").pk}/"' in anchored.split("</ul>")[0]
    for later in ScheduledSession.objects.filter(course=course).exclude(pk=prep.pk):
        later.refresh_from_db()
        if later.is_open:  # not cancelled already with its dosing session
            session_set_status(
                session=later, status="cancelled", reason="withdrew", by=coordinator_a
            )
    page = page_at(client, coordinator_a, prep.end + timedelta(days=1)).content.decode()
    missed = page.split("Cancelled or missed, with nothing planned in their place")[1]
    assert "P-001" in missed


def test_the_page_costs_the_same_queries_for_more_participants(
    client, site_a, coordinator_a, django_assert_max_num_queries
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = enrol(site_a, "P-001", coordinator_a)
    moment = session(first, "prep-2").start.astimezone(NEW_YORK).replace(hour=7)

    def shown() -> tuple[int, str]:
        with time_machine.travel(moment, tick=False):
            client.force_login(coordinator_a)
            with CaptureQueriesContext(connection) as queries:
                response = client.get("/today/")
        assert response.status_code == 200
        return len(queries), response.content.decode()

    few, _ = shown()
    # four more courses whose first sessions fall on the page's two days
    for n, start in enumerate([moment.date(), moment.date()] + [moment.date() + timedelta(1)] * 2):
        enrol(site_a, f"P-10{n}", coordinator_a, start=start)
    many, page = shown()
    assert all(f"P-10{n}" in page for n in range(4))
    assert many == few
    with django_assert_max_num_queries(20), time_machine.travel(moment, tick=False):
        client.get("/today/")


def test_one_day_windows_are_not_flagged_as_at_the_edge(client, site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing = session(course, "dosing-1")
    page = page_at(client, coordinator_a, dosing.start - timedelta(days=1)).content.decode()
    assert "On the last day of their window" not in page or (
        "Integration session 1a" not in page.split("On the last day of their window")[1]
    )
    assert "Phone check-in" not in page.split("Needs attention")[1]


def test_a_session_on_the_last_day_of_its_window_needs_attention(client, site_a, coordinator_a):
    course = enrol(site_a, "P-001", coordinator_a)
    prep = session(course, "prep-2")
    local_day = prep.start.astimezone(NEW_YORK).date()
    before = page_at(client, coordinator_a, prep.start - timedelta(days=2)).content.decode()
    assert "On the last day of their window" not in before
    ScheduledSession.objects.filter(pk=prep.pk).update(window_end=local_day)
    page = page_at(client, coordinator_a, prep.start - timedelta(days=2)).content.decode()
    edge = page.split("On the last day of their window")[1].split("</ul>")[0]
    assert "P-001" in edge and prep.title in edge
    # a day earlier than the window's end counts too; two days earlier does not
    ScheduledSession.objects.filter(pk=prep.pk).update(window_end=local_day + timedelta(days=1))
    assert (
        "On the last day"
        in page_at(client, coordinator_a, prep.start - timedelta(days=2)).content.decode()
    )
    ScheduledSession.objects.filter(pk=prep.pk).update(window_end=local_day + timedelta(days=2))
    assert (
        "On the last day"
        not in page_at(client, coordinator_a, prep.start - timedelta(days=2)).content.decode()
    )


def test_sessions_without_staff_or_room_need_attention(client, site_a, coordinator_a) -> None:
    from scheduling.models import StaffBooking

    course = enrol(site_a, "P-001", coordinator_a)
    prep = session(course, "prep-2")
    moment = prep.start - timedelta(days=3)
    calm = page_at(client, coordinator_a, moment).content.decode()
    assert "Without a therapist or assessor" not in calm and "Without a room" not in calm
    StaffBooking.objects.filter(session=prep).update(active=False)
    ScheduledSession.objects.filter(pk=prep.pk).update(room=None)
    page = page_at(client, coordinator_a, moment).content.decode()
    unstaffed = page.split("Without a therapist or assessor")[1].split("</ul>")[0]
    roomless = page.split("Without a room")[1].split("</ul>")[0]
    assert prep.title in unstaffed and prep.title in roomless
    assert session(course, "prep-3").title not in unstaffed
