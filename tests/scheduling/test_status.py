"""Session status (scheduling.services.session_set_status): confirm and complete; cancel and
missed need a reason, free the room and staff and record a deviation; terminal statuses stay."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, transaction

from scheduling.models import (
    Course,
    Deviation,
    Dyad,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
)
from scheduling.selectors import resources_snapshot
from scheduling.services import SchedulingError, participant_enrol, session_set_status
from tests.conftest import make_site, once_over
from tests.scheduling.test_booking import overlapping_active_bookings

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")


def enrol(site: Site, code: str, by: Any, **kwargs: Any) -> Course:
    return participant_enrol(
        site=site,
        code=code,
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=by,
        **kwargs,
    )


@pytest.fixture
def course(site_a: Site, coordinator_a: Any) -> Course:
    return enrol(site_a, "P-001", coordinator_a)


def local(moment: datetime) -> datetime:
    return moment.astimezone(NEW_YORK)


def session(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key)


def active_bookings(s: ScheduledSession) -> tuple[int, int]:
    return (
        RoomBooking.objects.filter(session=s, active=True).count(),
        StaffBooking.objects.filter(session=s, active=True).count(),
    )


def snapshot() -> list[Any]:
    return [
        list(ScheduledSession.objects.order_by("pk").values_list("pk", "status", "sequence")),
        list(RoomBooking.objects.order_by("pk").values_list("pk", "active")),
        list(StaffBooking.objects.order_by("pk").values_list("pk", "active")),
        Deviation.objects.count(),
        ScheduledSession.history.count(),
    ]


def test_confirm_then_complete_keeps_the_bookings(course, coordinator_a) -> None:
    prep = session(course, "prep-1")
    assert active_bookings(prep) == (1, 2)
    confirmed = session_set_status(session=prep, status="confirmed", by=coordinator_a)
    assert (confirmed.status, confirmed.sequence) == ("confirmed", 1)
    with once_over(prep):
        completed = session_set_status(session=prep, status="completed", by=coordinator_a)
    prep.refresh_from_db()
    assert (prep.status, prep.sequence) == (completed.status, completed.sequence)
    assert (prep.status, prep.sequence) == ("completed", 2)
    assert active_bookings(prep) == (1, 2)  # the room and the dyad were used
    assert Deviation.objects.count() == 0


def test_a_planned_session_can_be_completed_directly(course, coordinator_a) -> None:
    baseline = session(course, "baseline")
    with once_over(baseline):
        session_set_status(session=baseline, status="completed", by=coordinator_a)
    baseline.refresh_from_db()
    assert baseline.status == "completed"
    assert active_bookings(baseline) == (0, 1)  # a remote assessor, no room


@pytest.mark.parametrize("status", ["cancelled", "missed"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_cancel_and_missed_need_a_reason(course, coordinator_a, status, reason) -> None:
    prep = session(course, "prep-2")
    before = snapshot()
    with once_over(prep), pytest.raises(SchedulingError) as caught:
        session_set_status(session=prep, status=status, by=coordinator_a, reason=reason)
    assert set(caught.value.errors) == {"reason"}
    assert status in caught.value.errors["reason"][0]
    assert snapshot() == before


@pytest.mark.parametrize("status", ["cancelled", "missed"])
def test_cancel_and_missed_free_room_and_staff_and_record_a_deviation(
    course, coordinator_a, status
) -> None:
    prep = session(course, "prep-2")
    other = session(course, "prep-3")
    with once_over(prep):
        session_set_status(
            session=prep, status=status, by=coordinator_a, reason="  participant unwell "
        )
    prep.refresh_from_db()
    assert (prep.status, prep.sequence) == (status, 1)
    assert active_bookings(prep) == (0, 0)
    # the bookings stay, inactive
    assert RoomBooking.objects.filter(session=prep, active=False).count() == 1
    assert StaffBooking.objects.filter(session=prep, active=False).count() == 2
    assert active_bookings(other) == (1, 2)
    deviation = Deviation.objects.get()
    assert (deviation.session, deviation.kind) == (prep, status)
    assert deviation.reason == "participant unwell"
    assert deviation.created_by == coordinator_a


def test_a_cancelled_sessions_room_and_dyad_are_free_again(site_a, course, coordinator_a) -> None:
    prep = session(course, "prep-1")
    assert course.dyad is not None and prep.room_id is not None
    people = course.dyad.therapist_ids

    def free() -> list[bool]:
        busy = resources_snapshot(site_a, dyads=[course.dyad], begin=prep.start, until=prep.end)
        keys = [("room", prep.room_id), *(("staff", p) for p in people)]
        return [busy.is_free(key, prep.start, prep.end) for key in keys]

    assert free() == [False, False, False]
    session_set_status(session=prep, status="cancelled", by=coordinator_a, reason="ill")
    assert free() == [True, True, True]
    # and the database accepts new active bookings of the same room and people then
    other = session(course, "prep-2")
    RoomBooking.objects.create(
        session=other, room_id=prep.room_id, begin=prep.start, until=prep.end
    )
    for person in people:
        StaffBooking.objects.create(session=other, user_id=person, begin=prep.start, until=prep.end)


@pytest.mark.parametrize("terminal", ["completed", "cancelled", "missed"])
@pytest.mark.parametrize("then", ["confirmed", "completed", "cancelled", "missed"])
def test_terminal_statuses_cannot_change(course, coordinator_a, terminal, then) -> None:
    prep = session(course, "prep-1")
    with once_over(prep):  # the session is over: only its terminal status stands in the way
        session_set_status(session=prep, status=terminal, by=coordinator_a, reason="first")
        before = snapshot()
        with pytest.raises(SchedulingError) as caught:
            session_set_status(session=prep, status=then, by=coordinator_a, reason="second")
    assert set(caught.value.errors) == {"status"}
    assert f"is {terminal} already" in caught.value.errors["status"][0]
    assert snapshot() == before


# --- sessions that have not happened yet ---------------------------------------------------


@pytest.mark.parametrize("status", ["completed", "missed"])
def test_a_future_session_cannot_be_completed_or_missed(course, coordinator_a, status) -> None:
    prep = session(course, "prep-1")
    before = snapshot()
    for moment in (prep.start - timedelta(days=1), prep.start - timedelta(seconds=1)):
        with time_machine.travel(moment, tick=False), pytest.raises(SchedulingError) as caught:
            session_set_status(session=prep, status=status, by=coordinator_a, reason="no show")
        assert set(caught.value.errors) == {"status"}
        assert f"cannot be {status} yet" in caught.value.errors["status"][0]
        assert snapshot() == before
    prep.refresh_from_db()
    assert (prep.status, prep.sequence) == ("planned", 0)
    assert active_bookings(prep) == (1, 2)
    assert not Deviation.objects.exists()


@pytest.mark.parametrize("status", ["completed", "missed"])
@pytest.mark.parametrize("after_start", [timedelta(0), timedelta(seconds=1)])
def test_a_session_can_be_completed_or_missed_once_it_has_started(
    course, coordinator_a, status, after_start
) -> None:
    prep = session(course, "prep-1")
    assert prep.start + after_start < prep.end  # still under way
    with time_machine.travel(prep.start + after_start, tick=False):
        session_set_status(session=prep, status=status, by=coordinator_a, reason="no show")
    prep.refresh_from_db()
    assert (prep.status, prep.sequence) == (status, 1)
    assert Deviation.objects.filter(session=prep).count() == (1 if status == "missed" else 0)


def test_a_session_that_lies_ahead_can_be_confirmed_and_cancelled(course, coordinator_a) -> None:
    prep = session(course, "prep-2")
    with time_machine.travel(prep.start - timedelta(days=7), tick=False):
        session_set_status(session=prep, status="confirmed", by=coordinator_a)
        session_set_status(session=prep, status="cancelled", by=coordinator_a, reason="moved away")
    prep.refresh_from_db()
    assert (prep.status, prep.sequence) == ("cancelled", 2)
    assert active_bookings(prep) == (0, 0)
    assert Deviation.objects.get().kind == "cancelled"


@pytest.mark.parametrize("status", ["done", "planned", "", "CANCELLED"])
def test_unknown_status_is_rejected(course, coordinator_a, status) -> None:
    prep = session(course, "prep-1")
    before = snapshot()
    with pytest.raises(SchedulingError) as caught:
        session_set_status(session=prep, status=status, by=coordinator_a, reason="x")
    assert set(caught.value.errors) == {"status"}
    assert "confirmed" in caught.value.errors["status"][0]
    assert snapshot() == before


def test_cancelling_dosing_leaves_no_open_session_in_an_unheld_room(db, coordinator_a) -> None:
    site = make_site("c", dosing_rooms=1, dyads=2)
    first_dyad, second_dyad = Dyad.objects.filter(site=site).order_by("name")
    first = enrol(site, "P-001", coordinator_a, dyad=first_dyad)
    dosing = session(first, "dosing-1")
    session_set_status(session=dosing, status="cancelled", by=coordinator_a, reason="ill")
    second = enrol(site, "P-002", coordinator_a, dyad=second_dyad)
    # the next morning went with the dosing session: the only dosing room is free that night
    assert session(second, "dosing-1").start == dosing.start
    assert session(first, "integration-1a").status == "cancelled"
    # every open session of P-001 with a room holds it, and nobody else holds it then
    open_sessions = ScheduledSession.objects.filter(
        course=first, status__in=["planned", "confirmed"]
    ).exclude(room=None)
    assert open_sessions.count() == 16 - 2
    for s in open_sessions:
        room = s.room_id
        assert room is not None
        assert RoomBooking.objects.filter(
            session=s, room_id=room, active=True, begin=s.start, until__gte=s.end
        ).exists(), s.key
        others = RoomBooking.objects.filter(
            room_id=room, active=True, begin__lt=s.end, until__gt=s.start
        ).exclude(session__course=first)
        assert list(others) == [], s.key
    assert overlapping_active_bookings() == []


def test_cancelling_dosing_cancels_the_next_morning_and_frees_its_room(db, coordinator_a) -> None:
    site = make_site("c", dosing_rooms=1, dyads=2)
    first_dyad, second_dyad = Dyad.objects.filter(site=site).order_by("name")
    first = enrol(site, "P-001", coordinator_a, dyad=first_dyad)
    dosing, morning = session(first, "dosing-1"), session(first, "integration-1a")
    room = dosing.room_id
    assert room is not None and morning.room_id == room
    assert local(dosing.start) == datetime(2027, 3, 24, 9, tzinfo=NEW_YORK)
    assert local(morning.start) == datetime(2027, 3, 25, 9, tzinfo=NEW_YORK)
    [hold] = RoomBooking.objects.filter(session=dosing)
    [own] = RoomBooking.objects.filter(session=morning)
    assert (hold.room_id, hold.begin, hold.until, hold.active) == (
        room,
        dosing.start,
        morning.start,
        True,
    )
    assert (own.room_id, own.begin, own.until, own.active) == (
        room,
        morning.start,
        morning.end,
        True,
    )

    session_set_status(
        session=dosing, status="cancelled", by=coordinator_a, reason="participant unwell"
    )

    # the next morning only makes sense after the dosing: cancelled with it, room and dyad freed
    hold.refresh_from_db()
    own.refresh_from_db()
    morning.refresh_from_db()
    assert (hold.active, hold.begin, hold.until) == (False, dosing.start, morning.start)
    assert (own.active, own.room_id, own.begin, own.until) == (
        False,
        room,
        morning.start,
        morning.end,
    )
    assert (morning.status, morning.sequence) == ("cancelled", 1)
    assert active_bookings(morning) == (0, 0)
    assert active_bookings(dosing) == (0, 0)
    assert morning.deviations.get().detail == "cancelled with dosing-1, which was cancelled"

    # P-002 (the other dyad, the same start) has the only dosing room that night
    second = enrol(site, "P-002", coordinator_a, dyad=second_dyad)
    other_dosing = session(second, "dosing-1")
    other_morning = session(second, "integration-1a")
    assert other_dosing.room_id == other_morning.room_id == room
    assert local(other_dosing.start) == datetime(2027, 3, 24, 9, tzinfo=NEW_YORK)
    assert overlapping_active_bookings() == []

    # and the database refuses anyone else in that room then
    with pytest.raises(IntegrityError, match="room_booking_no_overlap"), transaction.atomic():
        RoomBooking.objects.create(
            session=dosing, room_id=room, begin=other_morning.start, until=other_morning.end
        )
