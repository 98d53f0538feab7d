"""Couples (mdma-cbct-couples): two linked participants, one course whose joint sessions are
booked once with the team, dosing in a room with two overnight places."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from protocol.spec import ProtocolSpec
from scheduling.models import (
    Course,
    Participant,
    Room,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
)
from scheduling.services import (
    SchedulingError,
    participant_enrol,
    session_reschedule,
)
from tests.conftest import make_site

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
START = date(2027, 3, 1)  # a Monday


@pytest.fixture
def couples_site(db: Any) -> Site:
    site: Site = make_site("cp", couples_room=True)
    return site


def enrol_couple(site: Site, by: Any, **kwargs: Any) -> Course:
    return participant_enrol(
        site=site,
        code="C-001",
        partner_code="C-002",
        protocol_slug="mdma-cbct-couples",
        start_date=START,
        by=by,
        **kwargs,
    )


def counts() -> dict[str, int]:
    return {
        m.__name__: m.objects.count()
        for m in (Participant, Course, ScheduledSession, RoomBooking, StaffBooking)
    }


def test_a_couple_is_two_linked_participants_with_one_course(
    couples_site, coordinator_a, couples_spec: ProtocolSpec
) -> None:
    course = enrol_couple(couples_site, coordinator_a)
    first = Participant.objects.get(site=couples_site, code="C-001")
    second = Participant.objects.get(site=couples_site, code="C-002")
    assert first.partner == second
    assert second.partner == first
    assert first.status == second.status == Participant.Status.ENROLLED
    assert (course.participant, course.partner) == (first, second)
    assert Course.objects.count() == 1
    assert not Course.objects.filter(participant=second).exists()
    stored = {s.key: s for s in ScheduledSession.objects.filter(course=course)}
    expected = {
        s.occurrence_key(n) for s in couples_spec.sessions for n in range(1, 1 + s.repeat_count)
    }
    assert set(stored) == expected
    assert len(stored) == 20


def test_joint_sessions_are_booked_once_with_the_team(
    couples_site, coordinator_a, couples_spec: ProtocolSpec
) -> None:
    course = enrol_couple(couples_site, coordinator_a)
    assert course.dyad is not None
    team = set(course.dyad.therapist_ids)
    joint = [s for s in couples_spec.sessions if s.joint]
    assert len(joint) == 3 + 2 + 2 * 5
    for template in joint:
        [session] = ScheduledSession.objects.filter(course=course, template_key=template.key)
        staff = list(StaffBooking.objects.filter(session=session, active=True))
        assert sorted(b.user_id for b in staff) == sorted(team), template.key
        assert {(b.begin, b.until) for b in staff} == {(session.start, session.end)}
        # one room booking per joint session, the next-morning ones included
        rooms = RoomBooking.objects.filter(session=session, active=True)
        [room] = rooms
        assert session.room_id is not None
        assert (room.room_id, room.begin) == (session.room_id, session.start), template.key
        if template.overnight:
            [next_morning] = [
                t.key
                for t in couples_spec.sessions
                if t.timing.next_morning and t.timing.anchor == template.key
            ]
            morning = ScheduledSession.objects.get(course=course, key=next_morning)
            assert room.until == morning.start, template.key
        else:
            assert room.until == session.end, template.key
    # no two sessions of the couple overlap (each joint session is one booking of the team)
    ordered = sorted(ScheduledSession.objects.filter(course=course), key=lambda s: s.start)
    for earlier, later in pairwise(ordered):
        assert earlier.end <= later.start, (earlier.key, later.key)


def test_dosing_holds_a_room_with_two_overnight_places(couples_site, coordinator_a) -> None:
    course = enrol_couple(couples_site, coordinator_a)
    big = Room.objects.get(site=couples_site, kind="dosing", overnight_places__gte=2)
    assert Room.objects.filter(site=couples_site, kind="dosing").count() == 2
    for n in (1, 2):
        dosing = ScheduledSession.objects.get(course=course, key=f"dosing-{n}")
        morning = ScheduledSession.objects.get(course=course, key=f"conjoint-{n}a")
        assert dosing.room == big
        assert morning.room == big
        assert morning.start.astimezone(NEW_YORK).date() == (
            dosing.start.astimezone(NEW_YORK).date() + timedelta(days=1)
        )
        # dosing holds the room until the next morning starts; that session holds it after
        hold = RoomBooking.objects.get(session=dosing, active=True)
        assert (hold.room, hold.begin, hold.until) == (big, dosing.start, morning.start)
        own = RoomBooking.objects.get(session=morning, active=True)
        assert (own.room, own.begin, own.until) == (big, morning.start, morning.end)


def test_without_a_two_place_dosing_room_enrolment_names_the_dosing_room(db, coordinator_a) -> None:
    site = make_site("single", couples_room=False)
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol_couple(site, coordinator_a)
    text = " ".join(caught.value.errors["start_date"])
    assert "dosing-1" in text
    assert "dosing room with 2 overnight places" in text
    assert counts() == before


def test_a_second_couple_waits_for_the_two_place_room(couples_site, coordinator_a) -> None:
    first = enrol_couple(couples_site, coordinator_a)
    second = participant_enrol(
        site=couples_site,
        code="C-003",
        partner_code="C-004",
        protocol_slug="mdma-cbct-couples",
        start_date=START,
        by=coordinator_a,
    )
    assert first.dyad != second.dyad  # the least-loaded team
    one = ScheduledSession.objects.get(course=first, key="dosing-1")
    two = ScheduledSession.objects.get(course=second, key="dosing-1")
    assert one.room_id == two.room_id  # the only room with two places
    assert two.start.date() > one.start.date()
    assert "no dosing room with 2 overnight places free" in two.plan_reason


@pytest.mark.parametrize(
    ("protocol", "partner_code", "fragment"),
    [
        ("mdma-cbct-couples", None, "couples protocol"),
        ("mdma-cbct-couples", "", "couples protocol"),
        ("mapp-ptsd", "C-002", "not a couples protocol"),
        ("mdma-cbct-couples", "C-001", "code of their own"),
    ],
)
def test_partner_errors(couples_site, coordinator_a, protocol, partner_code, fragment) -> None:
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        participant_enrol(
            site=couples_site,
            code="C-001",
            partner_code=partner_code,
            protocol_slug=protocol,
            start_date=START,
            by=coordinator_a,
        )
    assert set(caught.value.errors) == {"partner"}
    assert fragment in caught.value.errors["partner"][0]
    assert counts() == before


def test_a_partner_code_taken_at_the_site_is_refused(couples_site, coordinator_a) -> None:
    participant_enrol(
        site=couples_site,
        code="C-002",
        protocol_slug="mapp-ptsd",
        start_date=START,
        by=coordinator_a,
    )
    before = counts()
    with pytest.raises(SchedulingError) as caught:
        enrol_couple(couples_site, coordinator_a, dyad=None)
    assert set(caught.value.errors) == {"code"}
    assert "C-002" in caught.value.errors["code"][0]
    assert counts() == before


def test_rescheduling_joint_dosing_moves_the_conjoint_sessions_together(
    couples_site, coordinator_a, couples_spec: ProtocolSpec
) -> None:
    course = enrol_couple(couples_site, coordinator_a)
    stored = {s.key: s for s in ScheduledSession.objects.filter(course=course)}
    dosing = stored["dosing-1"]
    assert dosing.start.astimezone(NEW_YORK) == datetime(2027, 3, 15, 9, tzinfo=NEW_YORK)
    old_day = dosing.start.astimezone(NEW_YORK).date()
    new = dosing.start + timedelta(days=1)
    new_day = old_day + timedelta(days=1)
    assert new_day.weekday() < 4 and dosing.window_start <= new_day <= dosing.window_end
    result = session_reschedule(session=dosing, start=new, by=coordinator_a)
    moved = {m.session.key for m in result.moved}
    conjoint = {k for k in stored if k.startswith("conjoint-1")}
    assert conjoint | {"dosing-1", "mid-assessment"} <= moved
    after = {s.key: s for s in ScheduledSession.objects.filter(course=course)}
    for key in conjoint:
        template = couples_spec.session(key)
        day = new_day + timedelta(days=template.timing.target_days)
        assert day.weekday() < 5, key  # Tue + 1, 3, 7, 10, 14: open days, all free
        assert after[key].start == datetime.combine(day, template.start_time, NEW_YORK), key
    for key in conjoint:
        session = after[key]
        assert session.window_start <= session.start.astimezone(NEW_YORK).date()
        assert session.start.astimezone(NEW_YORK).date() <= session.window_end
        # still one session for both partners, with the whole team, in a room
        staff = StaffBooking.objects.filter(session=session, active=True)
        assert sorted(b.user_id for b in staff) == sorted(course.dyad.therapist_ids)  # type: ignore[union-attr]
    morning = after["conjoint-1a"]
    assert morning.room_id == after["dosing-1"].room_id
    assert morning.start == datetime.combine(new_day + timedelta(days=1), time(9), NEW_YORK)
    hold = RoomBooking.objects.get(session=dosing, active=True)
    assert (hold.room_id, hold.begin, hold.until) == (morning.room_id, new, morning.start)
    own = RoomBooking.objects.get(session=morning, active=True)
    assert (own.room_id, own.begin, own.until) == (morning.room_id, morning.start, morning.end)
    # the old bookings of both are kept, inactive
    assert RoomBooking.objects.filter(session__in=[dosing, morning], active=False).count() == 2
    for key in ("prep-1", "prep-2", "prep-3", "baseline"):
        assert after[key].start == stored[key].start
