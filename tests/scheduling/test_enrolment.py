"""Enrolment (scheduling.services.participant_enrol): every session of the protocol is stored
with its window, room and staff; the dyad; and failures that store nothing.

Expectations are computed in the test from the protocol spec and the site's calendar (date
arithmetic on the anchors' stored dates), never copied from the planner's output."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.spec import ProtocolSpec, RoomNeed, SessionSpec, Staffing
from scheduling.models import (
    Course,
    Dyad,
    Participant,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
    Unavailability,
)
from scheduling.services import SchedulingError, enrolment_preview, participant_enrol
from tests.conftest import make_site

pytestmark = pytest.mark.django_db

START = date(2027, 3, 1)  # a Monday
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # make_site creates a dozen users; the production hasher would make up most of the runtime
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_enrolment_books_every_session(site_a, coordinator_a) -> None:
    course = participant_enrol(
        site=site_a,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )
    sessions = list(ScheduledSession.objects.filter(course=course))
    assert len(sessions) == 36
    dosing = [s for s in sessions if s.kind == "dosing"]
    assert all(s.room and s.room.kind == "dosing" for s in dosing)
    first = next(s for s in dosing if s.key == "dosing-1")
    morning = ScheduledSession.objects.get(course=course, key="integration-1a")
    assert local(morning.start) == datetime(2027, 3, 25, 9, tzinfo=NEW_YORK)
    assert morning.room_id == first.room_id
    # dosing-1 holds its room until integration-1a starts; integration-1a books the same room
    # for itself: one after the other, no gap, no overlap
    [hold] = RoomBooking.objects.filter(session=first)
    assert (hold.room_id, hold.begin, hold.until, hold.active) == (
        first.room_id,
        first.start,
        morning.start,
        True,
    )
    [own] = RoomBooking.objects.filter(session=morning)
    assert (own.room_id, own.begin, own.until, own.active) == (
        first.room_id,
        morning.start,
        morning.end,
        True,
    )
    assert course.dyad is not None
    dyad = set(course.dyad.therapist_ids)
    assert set(StaffBooking.objects.filter(session=first).values_list("user_id", flat=True)) == dyad


# --- helpers -------------------------------------------------------------------------------


def enrol(site: Site, code: str, by: Any, start: date = START, **kwargs: Any) -> Course:
    return participant_enrol(
        site=site, code=code, protocol_slug="mapp-ptsd", start_date=start, by=by, **kwargs
    )


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Participant, Course, ScheduledSession, RoomBooking, StaffBooking)
    }


def staff_of(session: ScheduledSession) -> set[int]:
    return set(
        StaffBooking.objects.filter(session=session, active=True).values_list("user_id", flat=True)
    )


def occurrences(spec: ProtocolSpec) -> dict[str, tuple[SessionSpec, int]]:
    return {
        s.occurrence_key(n): (s, n) for s in spec.sessions for n in range(1, s.repeat_count + 1)
    }


def local(moment: datetime, zone: ZoneInfo = NEW_YORK) -> datetime:
    return moment.astimezone(zone)


def assessor_ids(site: Site) -> set[int]:
    from scheduling.models import StaffProfile

    return set(
        StaffProfile.objects.filter(sites=site, role="assessor").values_list("user_id", flat=True)
    )


# --- what is stored ------------------------------------------------------------------------


def test_every_session_is_stored_with_its_window_time_and_status(
    site_a, coordinator_a, mapp_spec
) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    stored = {s.key: s for s in ScheduledSession.objects.filter(course=course)}
    expected = occurrences(mapp_spec)
    assert len(stored) == sum(s.repeat_count for s in mapp_spec.sessions) == 36
    assert set(stored) == set(expected)
    for key, session in stored.items():
        template, n = expected[key]
        assert session.template_key == template.key
        assert session.kind == template.kind.value
        assert session.anchor_key == (template.timing.anchor or "")
        assert session.status == ScheduledSession.Status.PLANNED
        assert session.sequence == 0
        assert session.overnight == template.overnight
        # the site is empty: every session is at its preferred local wall-clock time
        assert local(session.start).time() == template.start_time, key
        assert session.end.astimezone(UTC) - session.start.astimezone(UTC) == timedelta(
            minutes=template.duration_minutes
        )
        # the window is computed from the anchor's stored local date
        anchor_day = (
            START
            if template.timing.anchor is None
            else local(stored[template.timing.anchor].start).date()
        )
        shift = (n - 1) * template.repeat_interval_days
        assert session.window_start == anchor_day + timedelta(
            days=template.timing.earliest_days + shift
        ), key
        assert session.window_end == anchor_day + timedelta(
            days=template.timing.latest_days + shift
        ), key
        assert session.window_start <= local(session.start).date() <= session.window_end
        if template.open_days_apply:
            assert local(session.start).weekday() < 5, key
    assert local(stored["prep-1"].start) == datetime.combine(START, time(10), NEW_YORK)
    # dosing-1 is baseline + 7 (baseline = prep-3 + 2 = Wed 2027-03-17)
    assert local(stored["dosing-1"].start) == datetime(2027, 3, 24, 9, tzinfo=NEW_YORK)


def test_rooms_and_staff_follow_each_session_kind(site_a, coordinator_a, mapp_spec) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    assert course.dyad is not None
    dyad = set(course.dyad.therapist_ids)
    assessors = assessor_ids(site_a)
    templates = occurrences(mapp_spec)
    sessions = list(ScheduledSession.objects.filter(course=course).select_related("room"))
    by_key = {s.key: s for s in sessions}
    for session in sessions:
        template, _ = templates[session.key]
        staff = staff_of(session)
        rooms = list(RoomBooking.objects.filter(session=session))
        if template.timing.next_morning:
            # the morning after dosing is in the dosing room, with a booking of its own that
            # starts where the dosing session's hold ends
            assert template.timing.anchor is not None
            dosing = by_key[template.timing.anchor]
            assert session.room_id == dosing.room_id
            assert local(session.start).date() == local(dosing.start).date() + timedelta(days=1)
            assert [(r.room_id, r.begin, r.until, r.active) for r in rooms] == [
                (dosing.room_id, session.start, session.end, True)
            ], session.key
            [hold] = RoomBooking.objects.filter(session=dosing)
            assert (hold.room_id, hold.begin, hold.until) == (
                dosing.room_id,
                dosing.start,
                session.start,
            ), session.key
        elif template.room == RoomNeed.THERAPY_ROOM:
            assert session.room is not None and session.room.kind == "therapy", session.key
            assert [(r.room_id, r.begin, r.until) for r in rooms] == [
                (session.room_id, session.start, session.end)
            ]
        elif template.room == RoomNeed.DOSING_ROOM_OVERNIGHT:
            assert session.room is not None and session.room.kind == "dosing"
            assert session.room.overnight_places >= 1
            # held from its start until its next-morning session starts (checked there)
            assert [(r.room_id, r.begin, r.active) for r in rooms] == [
                (session.room_id, session.start, True)
            ]
            assert rooms[0].until > session.end
        else:
            assert session.room is None and rooms == [], session.key
        if template.staffing == Staffing.THERAPIST_DYAD:
            assert staff == dyad, session.key
        elif template.staffing == Staffing.ONE_THERAPIST:
            assert len(staff) == 1 and staff <= dyad, session.key
        elif template.staffing == Staffing.REMOTE_ASSESSOR:
            assert len(staff) == 1 and staff <= assessors, session.key
        for booking in StaffBooking.objects.filter(session=session):
            assert (booking.begin, booking.until, booking.active) == (
                session.start,
                session.end,
                True,
            )
    kinds = {s.kind for s in sessions if s.room is None}
    assert kinds == {"phone_checkin", "assessment", "follow_up"}
    # the same dyad for the whole course: every dyad session has exactly the course's dyad
    dyad_sessions = [s for s in sessions if templates[s.key][0].staffing == "therapist_dyad"]
    assert len(dyad_sessions) == 3 + 3 * 4 + 1
    assert {frozenset(staff_of(s)) for s in dyad_sessions} == {frozenset(dyad)}
    assert Participant.objects.get(code="P-001").status == Participant.Status.ENROLLED
    assert course.status == Course.Status.ACTIVE
    assert course.protocol_version.protocol.slug == "mapp-ptsd"


def test_a_chosen_dyad_is_used(site_a, coordinator_a) -> None:
    second = Dyad.objects.get(site=site_a, name="a dyad 2")
    course = enrol(site_a, "P-001", coordinator_a, dyad=second)
    assert course.dyad == second
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    assert staff_of(dosing) == set(second.therapist_ids)


def test_without_a_dyad_the_least_loaded_one_is_picked(site_a, coordinator_a) -> None:
    first, second = Dyad.objects.filter(site=site_a).order_by("name")
    # a dyad's courses a year apart never meet, so nothing has to move
    enrol(site_a, "P-001", coordinator_a, start=date(2027, 3, 1), dyad=first)
    enrol(site_a, "P-002", coordinator_a, start=date(2028, 3, 6), dyad=first)
    enrol(site_a, "P-003", coordinator_a, start=date(2027, 3, 1), dyad=second)
    course = enrol(site_a, "P-004", coordinator_a, start=date(2029, 3, 5))
    assert course.dyad == second  # load 1 < 2, although dyad 1 comes first by name
    # equal load (2 and 2): the first by name
    assert enrol(site_a, "P-005", coordinator_a, start=date(2030, 3, 4)).dyad == first
    # a withdrawn course does not count: dyad 1 has 3 courses, 1 of them active
    Course.objects.filter(participant__code__in=["P-001", "P-002"]).update(
        status=Course.Status.WITHDRAWN
    )
    assert enrol(site_a, "P-006", coordinator_a, start=date(2031, 3, 3)).dyad == first


def test_a_busy_dyad_is_skipped(site_a, coordinator_a) -> None:
    first, second = Dyad.objects.filter(site=site_a).order_by("name")
    # prep-1 is fixed to the start date: dyad 1's therapist is away all that day
    Unavailability.objects.create(
        user=first.therapist_b,
        start=datetime(2027, 3, 1, tzinfo=NEW_YORK),
        end=datetime(2027, 3, 2, tzinfo=NEW_YORK),
        reason="leave",
    )
    course = enrol(site_a, "P-001", coordinator_a)
    assert course.dyad == second
    prep = ScheduledSession.objects.get(course=course, key="prep-1")
    assert staff_of(prep) == set(second.therapist_ids)


def test_a_refused_start_names_the_nearest_start_dates_that_work(site_a, coordinator_a) -> None:
    # every therapist of the site is away on the start date, and Tuesday's too
    for dyad in Dyad.objects.filter(site=site_a):
        for therapist in (dyad.therapist_a, dyad.therapist_b):
            Unavailability.objects.create(
                user=therapist,
                start=datetime(2027, 3, 1, tzinfo=NEW_YORK),
                end=datetime(2027, 3, 3, tzinfo=NEW_YORK),
                reason="training",
            )
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrolment_preview(
            site=site_a,
            code="P-001",
            protocol_slug="mapp-ptsd",
            start_date=START,
            suggest_starts=True,
        )
    said = " ".join(caught.value.errors["start_date"])
    assert "Nearest start dates that work: Wed 3 Mar 2027 (with " in said
    assert "Thu 4 Mar 2027" in said
    assert "Tue 2 Mar 2027" not in said  # still away
    assert counts() == before
    # each date it names really takes the course
    course = enrol(site_a, "P-001", coordinator_a, start=date(2027, 3, 3))
    assert course.start_date == date(2027, 3, 3)
    # without asking (bulk enrolment, the demo's seeding) no further dates are tried
    with pytest.raises(SchedulingError) as plain:
        enrolment_preview(site=site_a, code="P-002", protocol_slug="mapp-ptsd", start_date=START)
    assert "Nearest start dates" not in " ".join(plain.value.errors["start_date"])


# --- failures store nothing ----------------------------------------------------------------


def test_unknown_protocol_stores_nothing(site_a, coordinator_a) -> None:
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        participant_enrol(
            site=site_a, code="P-001", protocol_slug="nope", start_date=START, by=coordinator_a
        )
    assert set(caught.value.errors) == {"protocol"}
    assert "nope" in caught.value.errors["protocol"][0]
    assert counts() == before


def test_duplicate_code_at_the_site_is_refused_but_another_site_may_use_it(
    site_a, site_b, coordinator_a
) -> None:
    enrol(site_a, "P-001", coordinator_a)
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol(site_a, "P-001", coordinator_a, start=date(2027, 3, 2))
    assert set(caught.value.errors) == {"code"}
    assert "P-001" in caught.value.errors["code"][0]
    assert counts() == before
    other = enrol(site_b, "P-001", coordinator_a)
    assert other.participant.site == site_b
    assert Participant.objects.filter(code="P-001").count() == 2


def test_start_on_a_closed_day_names_prep_1(site_a, coordinator_a) -> None:
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol(site_a, "P-001", coordinator_a, start=date(2027, 3, 6))  # a Saturday
    assert set(caught.value.errors) == {"start_date"}
    text = " ".join(caught.value.errors["start_date"])
    assert text == (
        "the course cannot start on a closed day (Saturday): the next open day is Mon 8 Mar 2027"
    )
    assert caught.value.errors.keys() == {"start_date"}
    assert counts() == before


def test_a_closed_day_refusal_and_the_nearest_starts_read_as_two_sentences(
    site_a, coordinator_a
) -> None:
    """The refusal and the dates that would work are two sentences, not one run-on line
    ("...the next open day is Mon 8 Mar 2027 Nearest start dates...")."""
    with pytest.raises(SchedulingError) as caught:
        enrolment_preview(
            site=site_a,
            code="P-001",
            protocol_slug="mapp-ptsd",
            start_date=date(2027, 3, 6),  # a Saturday
            suggest_starts=True,
        )
    [said] = caught.value.errors["start_date"]
    assert said.startswith(
        "the course cannot start on a closed day (Saturday): the next open day is "
        "Mon 8 Mar 2027. Nearest start dates that work: Mon 8 Mar 2027 (with "
    )
    assert ".." not in said


def test_a_site_without_a_dosing_room_names_dosing_1(db, coordinator_a) -> None:
    site = make_site("c", dosing_rooms=0)
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol(site, "P-001", coordinator_a)
    text = " ".join(caught.value.errors["start_date"])
    assert "dosing-1" in text
    assert "dosing room" in text
    assert counts() == before


def _away_for_the_first_month(dyad: Dyad) -> None:
    Unavailability.objects.create(
        user=dyad.therapist_a,
        start=datetime(2027, 2, 27, tzinfo=NEW_YORK),
        end=datetime(2027, 4, 1, tzinfo=NEW_YORK),
        reason="leave",
    )


def test_the_only_dyad_unavailable_names_the_session_and_the_dyad(db, coordinator_a) -> None:
    site = make_site("c", dyads=1)
    dyad = Dyad.objects.get(site=site)
    _away_for_the_first_month(dyad)
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol(site, "P-001", coordinator_a)
    text = " ".join(caught.value.errors["start_date"])
    assert text.startswith("the course cannot start on Mon 1 Mar 2027")
    assert f"{dyad.therapist_a.username} of {dyad.name} is busy" in text
    assert counts() == before


def test_the_only_dyad_unavailable_names_the_dyad_by_name(db, coordinator_a) -> None:
    site = make_site("c", dyads=1)
    dyad = Dyad.objects.get(site=site)
    _away_for_the_first_month(dyad)
    with pytest.raises(SchedulingError) as caught:
        enrol(site, "P-001", coordinator_a)
    text = " ".join(caught.value.errors["start_date"])
    # the therapist's username and the dyad's name (the one away is therapist a)
    assert "c-t1a of c dyad 1 is busy" in text
    assert "staff " not in text


# --- public holidays -----------------------------------------------------------------------


def test_us_public_holidays_close_a_us_site(db, coordinator_a) -> None:
    site = make_site("us")
    site.country = "US"
    site.save()
    observed = date(2027, 7, 5)  # Monday: Independence Day (Sunday the 4th) observed
    start = date(2027, 6, 28)  # prep-2 targets prep-1 + 7 = the holiday
    course = enrol(site, "P-001", coordinator_a, start=start)
    sessions = list(ScheduledSession.objects.filter(course=course))
    assert len(sessions) == 36
    clinic_days = [s for s in sessions if s.kind != "phone_checkin"]
    assert all(local(s.start).date() != observed for s in clinic_days)
    prep_2 = next(s for s in sessions if s.key == "prep-2")
    assert local(prep_2.start) == datetime(2027, 7, 6, 10, tzinfo=NEW_YORK)
    assert "the site is closed (Independence Day (observed))" in prep_2.plan_reason
    # the same dates at a site without a country: prep-2 is on the Monday
    plain = enrol(make_site("plain"), "P-002", coordinator_a, start=start)
    assert local(ScheduledSession.objects.get(course=plain, key="prep-2").start).date() == observed


def test_start_on_a_us_holiday_is_refused(db, coordinator_a) -> None:
    site = make_site("us")
    site.country = "US"
    site.save()
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol(site, "P-001", coordinator_a, start=date(2027, 7, 5))
    assert caught.value.errors["start_date"] == [
        "the course cannot start on a closed day (Independence Day (observed)): the next open "
        "day is Tue 6 Jul 2027"
    ]
    assert counts() == before


def test_a_london_site_keeps_wall_clock_times_across_the_clock_change(
    site_b, coordinator_b, mapp_spec
) -> None:
    london = ZoneInfo("Europe/London")
    course = enrol(site_b, "P-001", coordinator_b)  # UK clocks go forward on 2027-03-28
    templates = occurrences(mapp_spec)
    offsets = set()
    for session in ScheduledSession.objects.filter(course=course):
        start = session.start.astimezone(london)
        assert start.time() == templates[session.key][0].start_time, session.key
        offsets.add(start.utcoffset())
    assert offsets == {timedelta(0), timedelta(hours=1)}
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    assert dosing.start == datetime(2027, 3, 24, 9, tzinfo=UTC)  # 09:00 GMT
    morning = ScheduledSession.objects.get(course=course, key="integration-2a")
    assert morning.start.astimezone(london).utcoffset() == timedelta(hours=1)  # BST


def test_a_failure_shared_by_every_dyad_is_said_once(site_a, coordinator_a) -> None:
    from scheduling.services import SchedulingError

    saturday = date(2027, 3, 6)
    with pytest.raises(SchedulingError) as caught:
        participant_enrol(
            site=site_a,
            code="P-SAT",
            protocol_slug="mapp-ptsd",
            start_date=saturday,
            by=coordinator_a,
        )
    messages = caught.value.errors["start_date"]
    assert len(messages) == 1
    assert messages[0] == (
        "the course cannot start on a closed day (Saturday): the next open day is Mon 8 Mar 2027"
    )
