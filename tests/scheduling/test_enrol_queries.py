"""Enrolment reads a snapshot of the site's bookings in a fixed number of queries, so the 20th
participant at a site costs as many queries as the first. And two planner limits, found while
seeding the demo and benchmarking: one fixed since (a phone check-in only tried 10:00), one
open (the planner never backtracks), both of which refuse enrolments at sites with room."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from scheduling.models import Course, Dyad, ScheduledSession, Unavailability
from scheduling.planning import SiteCalendar, plan_course
from scheduling.services import SchedulingError, participant_enrol
from tests.conftest import make_site

pytestmark = pytest.mark.django_db

#: protocol, templates, code check, dyads, calendar (2), assessors, snapshot (3), rooms,
#: assessors again; participant, course, sessions, room and staff bookings with their history
#: rows (10); savepoints around the participant and the bookings (4); reminder rows: the
#: rules, the booked staff, the site's coordinators, one insert (4); whether the site publishes
#: to CalDAV (1)
ENROLMENT_QUERIES = 32
FIRST_MONDAY = date(2027, 3, 1)


def enrol(site: Any, n: int, start: date) -> Course:
    return participant_enrol(
        site=site, code=f"Q-{n:03d}", protocol_slug="mapp-ptsd", start_date=start, by=None
    )


def test_query_count_is_the_same_for_the_first_and_the_twentieth_participant(
    django_assert_max_num_queries: Any,
) -> None:
    site = make_site("q", dosing_rooms=4, therapy_rooms=4, dyads=8)
    with CaptureQueriesContext(connection) as first:
        enrol(site, 1, FIRST_MONDAY)
    for n in range(2, 20):
        enrol(site, n, FIRST_MONDAY + timedelta(weeks=n - 1))
    with (
        django_assert_max_num_queries(ENROLMENT_QUERIES),
        CaptureQueriesContext(connection) as twentieth,
    ):
        enrol(site, 20, FIRST_MONDAY + timedelta(weeks=19))
    assert ScheduledSession.objects.filter(course__participant__site=site).count() == 20 * 36
    assert len(twentieth) == len(first)


def test_trying_another_dyad_costs_no_query(django_assert_max_num_queries: Any) -> None:
    """The second participant's first-choice dyad (fewest courses) is away all year, so the
    planner falls back to the other one, from the same snapshot."""
    site = make_site("r", dyads=2)
    first_dyad, away = Dyad.objects.filter(site=site).order_by("name")
    zone = ZoneInfo(site.timezone)
    for user in (away.therapist_a, away.therapist_b):
        Unavailability.objects.create(
            user=user,
            start=datetime.combine(FIRST_MONDAY, time(0), zone),
            end=datetime.combine(FIRST_MONDAY + timedelta(days=500), time(0), zone),
        )
    with CaptureQueriesContext(connection) as first:
        enrol(site, 1, FIRST_MONDAY)
    with (
        django_assert_max_num_queries(ENROLMENT_QUERIES),
        CaptureQueriesContext(connection) as second,
    ):
        course = enrol(site, 2, FIRST_MONDAY + timedelta(weeks=12))
    assert course.dyad == first_dyad
    assert len(second) == len(first)


# --- planner limits ------------------------------------------------------------------------
# The phone check-ins (dosing +2..+6 days, one-day windows, 15 minutes, a therapist of the dyad)
# are where enrolments at a busy site fail.


def phone_day(site: Any, start: date) -> date:
    """The day of phone-1.1 for a course starting on ``start`` when nothing else is booked."""
    from protocol.selectors import protocol_spec, protocol_version_get

    spec = protocol_spec(protocol_version_get(slug="mapp-ptsd"))
    planned = plan_course(spec, start, SiteCalendar(site.timezone))
    return planned.session("phone-1.1").start.date()


def dyad_away(site: Any, day: date, begin: time, end: time) -> None:
    zone = ZoneInfo(site.timezone)
    dyad = Dyad.objects.get(site=site)
    for user in (dyad.therapist_a, dyad.therapist_b):
        Unavailability.objects.create(
            user=user,
            start=datetime.combine(day, begin, zone),
            end=datetime.combine(day, end, zone),
            reason="team meeting",
        )


def enrol_expecting_the_limit(site: Any) -> Course:
    try:
        return enrol(site, 1, FIRST_MONDAY)
    except SchedulingError as exc:  # the limit in the reason, not some other failure
        assert "phone-1.1 cannot be planned" in str(exc)
        assert "no therapist of the dyad free" in str(exc)
        raise


def test_a_phone_check_in_moves_to_another_time_when_the_dyad_is_busy_at_ten() -> None:
    site = make_site("p", dyads=1)
    day = phone_day(site, FIRST_MONDAY)
    dyad_away(site, day, time(9, 30), time(10, 30))
    course = enrol(site, 1, FIRST_MONDAY)
    call = ScheduledSession.objects.get(course=course, key="phone-1.1")
    local = call.start.astimezone(ZoneInfo(site.timezone))
    assert local.date() == day
    assert local.time() >= time(10, 30) or local.time() <= time(9, 15)


def test_dosing_moves_later_when_a_check_in_day_has_no_therapist() -> None:
    site = make_site("s", dyads=1)
    day = phone_day(site, FIRST_MONDAY)
    dyad_away(site, day, time(0), time(23, 59))
    course = enrol_expecting_the_limit(site)
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    assert dosing.start.date() > day - timedelta(days=2)
    calls = ScheduledSession.objects.filter(course=course, key__startswith="phone-1.")
    assert day not in {call.start.astimezone(ZoneInfo(site.timezone)).date() for call in calls}
