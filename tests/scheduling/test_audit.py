"""The audit trail (django-simple-history): who, when, what and why for enrolment, rescheduling
and status changes; nothing clinical is ever hard-deleted."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db.models import ProtectedError

from scheduling.models import (
    Course,
    Deviation,
    Participant,
    RoomBooking,
    ScheduledSession,
    StaffBooking,
)
from scheduling.services import participant_enrol, session_reschedule, session_set_status
from tests.conftest import once_over

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
CLINICAL: list[Any] = [Participant, Course, ScheduledSession, RoomBooking, StaffBooking, Deviation]


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Course:
    return participant_enrol(
        site=site_a,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )


def history_of(obj: Any) -> list[Any]:
    return list(obj.history.order_by("history_date", "history_id"))


def test_enrolment_writes_history_with_the_coordinator_and_reason(course, coordinator_a) -> None:
    sessions = list(ScheduledSession.objects.filter(course=course))
    assert len(sessions) == 36
    for model in (ScheduledSession, RoomBooking, StaffBooking):
        rows = list(model.history.all())
        assert len(rows) == model.objects.count() > 0
        assert {(r.history_type, r.history_user_id, r.history_change_reason) for r in rows} == {
            ("+", coordinator_a.pk, "enrolment")
        }, model.__name__
    for session in sessions:
        [row] = history_of(session)
        assert (row.start, row.end, row.status, row.room_id) == (
            session.start,
            session.end,
            "planned",
            session.room_id,
        )
    # the participant and the course are created by the coordinator, for the enrolment
    for obj in (course, course.participant):
        [row] = history_of(obj)
        assert (row.history_type, row.history_user_id, row.history_change_reason) == (
            "+",
            coordinator_a.pk,
            "enrolment",
        )
    assert history_of(course.participant)[0].status == "enrolled"


def test_a_reschedule_adds_history_with_its_reason(course, coordinator_a) -> None:
    closing = ScheduledSession.objects.get(course=course, key="closing")  # nothing hangs on it
    old_room = RoomBooking.objects.get(session=closing)
    old_staff = list(StaffBooking.objects.filter(session=closing))
    new = datetime.combine(closing.window_start, time(14), NEW_YORK)
    session_reschedule(
        session=closing, start=new, by=coordinator_a, reason="participant asked for afternoon"
    )
    first, second = history_of(closing)
    assert (first.history_type, first.history_change_reason) == ("+", "enrolment")
    assert (second.history_type, second.history_user_id) == ("~", coordinator_a.pk)
    assert second.history_change_reason == "participant asked for afternoon"
    assert (second.start, second.sequence) == (new, 1)
    # the old bookings were deactivated, the new ones created, with the same who and why
    for booking in [old_room, *old_staff]:
        rows = history_of(booking)
        assert [(r.history_type, r.active) for r in rows] == [("+", True), ("~", False)]
        assert rows[-1].history_change_reason == "participant asked for afternoon"
        assert rows[-1].history_user_id == coordinator_a.pk
    for model in (RoomBooking, StaffBooking):
        for booking in model.objects.filter(session=closing, active=True):
            [row] = history_of(booking)
            assert (row.history_type, row.history_user_id, row.history_change_reason) == (
                "+",
                coordinator_a.pk,
                "participant asked for afternoon",
            )
            assert booking.begin == new


def test_cancelling_records_who_and_why(course, coordinator_a) -> None:
    prep = ScheduledSession.objects.get(course=course, key="prep-2")
    held: list[Any] = [
        *RoomBooking.objects.filter(session=prep),
        *StaffBooking.objects.filter(session=prep),
    ]
    assert len(held) == 3
    session_set_status(session=prep, status="cancelled", by=coordinator_a, reason="flu")
    latest = prep.history.latest()
    assert (latest.history_type, latest.status, latest.history_change_reason) == (
        "~",
        "cancelled",
        "flu",
    )
    assert latest.history_user_id == coordinator_a.pk
    for booking in held:
        latest_booking = booking.history.latest()
        assert (latest_booking.active, latest_booking.history_change_reason) == (False, "flu")
        assert latest_booking.history_user_id == coordinator_a.pk
    deviation = Deviation.objects.get(session=prep)
    assert (deviation.reason, deviation.created_by) == ("flu", coordinator_a)
    assert deviation.history.count() == 1


def test_confirming_records_the_status_as_the_reason(course, coordinator_a) -> None:
    prep = ScheduledSession.objects.get(course=course, key="prep-1")
    session_set_status(session=prep, status="confirmed", by=coordinator_a)
    latest = prep.history.latest()
    assert (latest.status, latest.history_change_reason, latest.history_user_id) == (
        "confirmed",
        "confirmed",
        coordinator_a.pk,
    )


def test_nothing_is_hard_deleted(course, coordinator_a) -> None:
    prep = ScheduledSession.objects.get(course=course, key="prep-2")
    counts = {m.__name__: m.objects.count() for m in CLINICAL}
    session_set_status(session=prep, status="cancelled", by=coordinator_a, reason="flu")
    missed = ScheduledSession.objects.get(course=course, key="prep-3")
    with once_over(missed):
        session_set_status(session=missed, status="missed", by=coordinator_a, reason="no show")
    after = {m.__name__: m.objects.count() for m in CLINICAL}
    assert after == counts | {"Deviation": 2}
    assert ScheduledSession.objects.filter(pk=prep.pk, status="cancelled").exists()
    for model in CLINICAL:
        assert not model.history.filter(history_type="-").exists(), model.__name__
    # the database refuses to delete clinical rows that others hang on (PROTECT)
    with pytest.raises(ProtectedError):
        course.delete()
    with pytest.raises(ProtectedError):
        course.participant.delete()
    with pytest.raises(ProtectedError):
        prep.delete()
    assert ScheduledSession.objects.filter(course=course).count() == 36
