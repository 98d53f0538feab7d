"""No double booking: enrolment places a second course around the first (nearest free time that
day, then later days), and PostgreSQL's exclusion constraints reject any overlapping active
booking whatever the application does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction

from scheduling.models import Course, Dyad, RoomBooking, ScheduledSession, Site, StaffBooking
from scheduling.services import participant_enrol
from tests.conftest import make_site

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")


def enrol(site: Site, code: str, by: Any, start: date, dyad: Dyad | None = None) -> Course:
    return participant_enrol(
        site=site, code=code, protocol_slug="mapp-ptsd", start_date=start, by=by, dyad=dyad
    )


def overlapping_active_bookings() -> list[tuple[str, int, int, int]]:
    """Pairs of active bookings of one room, or one person, whose [begin, until) ranges
    overlap: checked in SQL, independently of the constraint."""
    found: list[tuple[str, int, int, int]] = []
    for model, column in ((RoomBooking, "room_id"), (StaffBooking, "user_id")):
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT a.{column}, a.id, b.id FROM {table} a JOIN {table} b "  # noqa: S608
                f"ON a.{column} = b.{column} AND a.id < b.id "
                "WHERE a.active AND b.active "
                "AND tstzrange(a.begin, a.until, '[)') && tstzrange(b.begin, b.until, '[)')"
            )
            found.extend((table, *row) for row in cursor.fetchall())
    return found


def overlapping_in_python() -> list[tuple[Any, ...]]:
    """The same check, in Python, over every active booking."""
    clashes: list[tuple[Any, ...]] = []
    for name, rows in (
        ("room", RoomBooking.objects.filter(active=True).values_list("room_id", "begin", "until")),
        (
            "staff",
            StaffBooking.objects.filter(active=True).values_list("user_id", "begin", "until"),
        ),
    ):
        by_owner: dict[int, list[tuple[datetime, datetime]]] = {}
        for owner, begin, until in rows:
            by_owner.setdefault(owner, []).append((begin, until))
        for owner, ranges in by_owner.items():
            ranges.sort()
            for (_, until), (begin, _) in pairwise(ranges):
                if begin < until:
                    clashes.append((name, owner, begin, until))
    return clashes


def sessions(course: Course) -> dict[str, ScheduledSession]:
    return {s.key: s for s in ScheduledSession.objects.filter(course=course)}


def local(moment: datetime) -> datetime:
    return moment.astimezone(NEW_YORK)


# --- enrolment around existing bookings ----------------------------------------------------


def test_a_second_course_with_the_same_dyad_moves_around_the_first(site_a, coordinator_a) -> None:
    dyad = Dyad.objects.filter(site=site_a).order_by("name").first()
    first = sessions(enrol(site_a, "P-001", coordinator_a, date(2027, 3, 1), dyad))
    # what the first course holds on the days that matter (all at their preferred times)
    assert local(first["prep-3"].start) == datetime(2027, 3, 15, 10, tzinfo=NEW_YORK)
    assert local(first["phone-1.4"].start) == datetime(2027, 3, 29, 10, tzinfo=NEW_YORK)
    assert local(first["integration-1c"].start) == datetime(2027, 4, 7, 10, tzinfo=NEW_YORK)

    second_course = enrol(site_a, "P-002", coordinator_a, date(2027, 3, 15), dyad)
    second = sessions(second_course)
    assert second_course.dyad == dyad
    assert len(second) == 36
    # prep-1 wants 10:00-11:30 but the dyad is in prep-3 then; 08:30 and 11:30 are both 90 min
    # away from 10:00: the tie goes to the earlier one (and 08:30-10:00 only touches 10:00)
    assert local(second["prep-1"].start) == datetime(2027, 3, 15, 8, 30, tzinfo=NEW_YORK)
    assert "nearest free time" in second["prep-1"].plan_reason
    # prep-3 (Mon 03-29 10:00) meets a 15-minute phone call by therapist A: 10:15 is nearest
    assert local(second["prep-3"].start) == datetime(2027, 3, 29, 10, 15, tzinfo=NEW_YORK)
    # dosing-1 targets Wed 04-07 (baseline Wed 03-31 + 7); every 8-hour start between 08:00
    # and 10:00 meets integration-1c (10:00-11:30): it goes to the next day
    assert local(second["baseline"].start).date() == date(2027, 3, 31)
    assert local(second["dosing-1"].start) == datetime(2027, 4, 8, 9, tzinfo=NEW_YORK)
    assert "moved later" in second["dosing-1"].plan_reason
    assert "Wed 2027-04-07" in second["dosing-1"].plan_reason
    for key, session in second.items():
        assert session.window_start <= local(session.start).date() <= session.window_end, key
        hours = (local(session.start).time(), local(session.end).time())
        if session.kind != "phone_checkin" and not session.overnight:
            assert hours[0].hour >= 8 and (hours[1].hour, hours[1].minute) <= (18, 0), key
    assert overlapping_active_bookings() == []
    assert overlapping_in_python() == []


def test_two_courses_with_the_same_dyad_and_start_date(site_a, coordinator_a) -> None:
    dyad = Dyad.objects.filter(site=site_a).order_by("name").first()
    enrol(site_a, "P-001", coordinator_a, date(2027, 3, 1), dyad)
    second = sessions(enrol(site_a, "P-002", coordinator_a, date(2027, 3, 1), dyad))
    assert len(second) == 36
    assert local(second["prep-1"].start) == datetime(2027, 3, 1, 8, 30, tzinfo=NEW_YORK)
    assert overlapping_active_bookings() == []


def test_when_every_dosing_room_is_taken_dosing_goes_to_another_day(db, coordinator_a) -> None:
    site = make_site("c", dosing_rooms=2, dyads=3)
    dyads = list(Dyad.objects.filter(site=site).order_by("name"))
    start = date(2027, 3, 1)
    courses = [enrol(site, f"P-00{n}", coordinator_a, start, d) for n, d in enumerate(dyads, 1)]
    dosing = [sessions(c)["dosing-1"] for c in courses]
    target = datetime(2027, 3, 24, 9, tzinfo=NEW_YORK)
    assert [local(d.start) for d in dosing[:2]] == [target, target]
    assert dosing[0].room_id != dosing[1].room_id
    # each room is held by dosing until Thu 09:00, then by its next-morning session until
    # 10:30, so no 8-hour session fits on Thursday (latest start 10:00); Friday's next
    # morning is a Saturday: the third dosing goes to Monday
    assert local(dosing[2].start) == datetime(2027, 3, 29, 9, tzinfo=NEW_YORK)
    assert "no dosing room free" in dosing[2].plan_reason
    assert dosing[2].room_id in {dosing[0].room_id, dosing[1].room_id}
    thursday_9 = datetime(2027, 3, 25, 9, tzinfo=NEW_YORK)
    for course, first in zip(courses[:2], dosing[:2], strict=True):
        morning = sessions(course)["integration-1a"]
        assert local(morning.start) == thursday_9
        assert morning.room_id == first.room_id
        holds = RoomBooking.objects.filter(session__in=[first, morning], active=True)
        assert sorted((h.session_id, h.room_id, h.begin, h.until) for h in holds) == sorted(
            [
                (first.pk, first.room_id, first.start, morning.start),
                (morning.pk, first.room_id, morning.start, morning.end),
            ]
        )
        assert local(morning.end) == datetime(2027, 3, 25, 10, 30, tzinfo=NEW_YORK)
    assert overlapping_active_bookings() == []
    assert overlapping_in_python() == []


# --- the database's exclusion constraints --------------------------------------------------


def _a_session(site: Site, by: Any) -> ScheduledSession:
    course = enrol(site, "P-001", by, date(2027, 3, 1))
    return ScheduledSession.objects.get(course=course, key="prep-1")


def test_overlapping_active_room_booking_is_rejected_by_postgres(site_a, coordinator_a) -> None:
    session = _a_session(site_a, coordinator_a)
    held = RoomBooking.objects.get(session=session)
    with pytest.raises(IntegrityError, match="room_booking_no_overlap"), transaction.atomic():
        RoomBooking.objects.create(
            session=session,
            room_id=held.room_id,
            begin=held.begin + timedelta(minutes=30),
            until=held.until + timedelta(hours=1),
        )
    # inactive bookings never clash; ranges are half-open, so touching ones do not either
    RoomBooking.objects.create(
        session=session, room_id=held.room_id, begin=held.begin, until=held.until, active=False
    )
    RoomBooking.objects.create(
        session=session,
        room_id=held.room_id,
        begin=held.until,
        until=held.until + timedelta(hours=1),
    )
    # re-activating an overlapping inactive booking is rejected too
    inactive = RoomBooking.objects.get(session=session, active=False)
    inactive.active = True
    with pytest.raises(IntegrityError, match="room_booking_no_overlap"), transaction.atomic():
        inactive.save()
    that_day = RoomBooking.objects.filter(
        room_id=held.room_id, active=True, begin__date=held.begin.date()
    )
    assert sorted((b.begin, b.until) for b in that_day) == [
        (held.begin, held.until),
        (held.until, held.until + timedelta(hours=1)),
    ]


def test_overlapping_active_staff_booking_is_rejected_by_postgres(site_a, coordinator_a) -> None:
    session = _a_session(site_a, coordinator_a)
    held = StaffBooking.objects.filter(session=session).first()
    assert held is not None
    with pytest.raises(IntegrityError, match="staff_booking_no_overlap"), transaction.atomic():
        StaffBooking.objects.create(
            session=session,
            user_id=held.user_id,
            begin=held.begin - timedelta(minutes=15),
            until=held.begin + timedelta(minutes=1),
        )
    StaffBooking.objects.create(
        session=session, user_id=held.user_id, begin=held.begin, until=held.until, active=False
    )
    # another person at the same time is fine
    StaffBooking.objects.create(
        session=session, user_id=coordinator_a.pk, begin=held.begin, until=held.until
    )
    assert StaffBooking.objects.filter(user_id=held.user_id, begin=held.begin).count() == 2


def test_the_exclusion_constraints_exist_in_pg_constraint(db) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, contype, conrelid::regclass::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE conname IN "
            "('room_booking_no_overlap', 'staff_booking_no_overlap') ORDER BY conname"
        )
        rows = cursor.fetchall()
    assert [(name, kind, table) for name, kind, table, _ in rows] == [
        ("room_booking_no_overlap", "x", RoomBooking._meta.db_table),
        ("staff_booking_no_overlap", "x", StaffBooking._meta.db_table),
    ]
    for (_, _, _, definition), column in zip(rows, ("room_id", "user_id"), strict=True):
        assert definition.startswith("EXCLUDE USING gist")
        assert f"{column} WITH =" in definition
        assert "tstzrange(begin, until, '[)'::text) WITH &&" in definition
        assert definition.endswith("WHERE (active)")


def test_bookings_are_stored_in_utc_instants(site_a, coordinator_a) -> None:
    session = _a_session(site_a, coordinator_a)
    booking = RoomBooking.objects.get(session=session)
    # 10:00 in New York on 2027-03-01 (EST, UTC-5) is 15:00 UTC
    assert booking.begin == datetime(2027, 3, 1, 15, tzinfo=UTC)
