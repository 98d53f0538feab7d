"""Resources for the planner (scheduling.resources) and the planner booking as it plans
(scheduling.planning with ``resources``). Pure: no database.

Expected times follow the planner's rule: the preferred time, else the nearest free time on a
15-minute grid inside the opening hours (ties go to the earlier time), else later days of the
window; the error names what is missing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from protocol.spec import (
    Kind,
    ProtocolSpec,
    RoomNeed,
    SessionSpec,
    Staffing,
    Status,
    Timing,
)
from scheduling.planning import PlannedCourse, PlanningError, SiteCalendar, plan_course
from scheduling.resources import Booking, BusyIndex, Resources, RoomSpec

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = date(2027, 5, 3)
A, B = 101, 102  # the dyad
ASSESSORS = (201, 202)
ROOMS = (
    RoomSpec(1, "dosing single", "dosing", 1),
    RoomSpec(2, "dosing double", "dosing", 2),
    RoomSpec(3, "therapy 1", "therapy"),
    RoomSpec(4, "therapy 2", "therapy"),
)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A local New York time on ``day``, as a UTC instant."""
    return datetime.combine(day, time(hour, minute), NEW_YORK).astimezone(UTC)


def template(
    key: str = "visit",
    *,
    staffing: Staffing = Staffing.THERAPIST_DYAD,
    room: RoomNeed = RoomNeed.THERAPY_ROOM,
    minutes: int = 90,
    start: time = time(10),
    window: tuple[int, int] = (0, 0),
    target: int = 0,
    anchor: str | None = None,
    open_days_apply: bool = True,
    next_morning: bool = False,
    kind: Kind = Kind.OTHER,
) -> SessionSpec:
    timing = (
        Timing.morning_after(anchor)
        if next_morning and anchor is not None
        else Timing(anchor, target, window[0], window[1])
    )
    return SessionSpec(
        key=key,
        title=key,
        kind=kind,
        duration_minutes=minutes,
        overnight=room == RoomNeed.DOSING_ROOM_OVERNIGHT,
        start_time=start,
        open_days_apply=open_days_apply,
        staffing=staffing,
        room=room,
        timing=timing,
    )


def resources(busy: BusyIndex | None = None, **kwargs: object) -> Resources:
    return Resources(
        rooms=list(ROOMS),
        dyad=(A, B),
        assessors=list(ASSESSORS),
        busy=busy or BusyIndex(),
        names={("room", r.id): r.name for r in ROOMS},
        **kwargs,  # type: ignore[arg-type]
    )


def busy(*entries: tuple[tuple[str, int], datetime, datetime]) -> BusyIndex:
    index = BusyIndex()
    for resource, begin, until in entries:
        index.add(resource, begin, until)
    return index


# --- BusyIndex -----------------------------------------------------------------------------


def test_busy_index_uses_half_open_ranges() -> None:
    nine, ten, eleven = at(MONDAY, 9), at(MONDAY, 10), at(MONDAY, 11)
    index = busy((("room", 1), nine, ten))
    assert index.is_free(("room", 1), ten, eleven)  # starts when the other ends
    assert index.is_free(("room", 1), nine - timedelta(hours=1), nine)  # ends when it starts
    assert not index.is_free(("room", 1), nine + timedelta(minutes=59), eleven)
    assert not index.is_free(("room", 1), nine - timedelta(minutes=1), nine + timedelta(minutes=1))
    assert not index.is_free(("room", 1), nine - timedelta(hours=1), eleven)  # encloses it
    assert index.is_free(("room", 2), nine, ten)  # another room
    assert index.is_free(("staff", 1), nine, ten)  # same id, another kind of resource
    assert BusyIndex().is_free(("room", 1), nine, ten)


def test_busy_index_finds_ranges_across_utc_midnight_and_several_days() -> None:
    # 19:00-21:00 in New York (EDT) is 23:00-01:00 UTC: stored under both UTC dates
    evening = busy((("room", 1), at(MONDAY, 19), at(MONDAY, 21)))
    late = at(MONDAY, 20, 30)
    assert late.date() == MONDAY + timedelta(days=1)
    assert not evening.is_free(("room", 1), late, late + timedelta(minutes=10))
    assert evening.is_free(("room", 1), at(MONDAY, 21), at(MONDAY, 22))
    # an overnight hold (dosing until the next morning) spans two local days
    hold = busy((("room", 1), at(MONDAY, 9), at(MONDAY + timedelta(days=1), 10, 30)))
    assert not hold.is_free(("room", 1), at(MONDAY + timedelta(days=1), 3), at(MONDAY, 23))
    assert not hold.is_free(("room", 1), at(MONDAY, 23), at(MONDAY + timedelta(days=1), 4))
    assert hold.is_free(
        ("room", 1), at(MONDAY + timedelta(days=1), 10, 30), at(MONDAY + timedelta(days=1), 12)
    )
    week = busy((("staff", A), at(MONDAY, 0), at(MONDAY + timedelta(days=7), 0)))
    wednesday = MONDAY + timedelta(days=2)
    assert not week.is_free(("staff", A), at(wednesday, 12), at(wednesday, 13))


# --- Resources.book ------------------------------------------------------------------------


def book(
    res: Resources,
    session: SessionSpec,
    begin: datetime,
    until: datetime,
    *,
    hold_until: datetime | None = None,
    free_until: datetime | None = None,
    inherited_room: int | None = None,
    overnight_from: datetime | None = None,
) -> tuple[Booking | None, str]:
    """``Resources.book`` for a session without a next morning unless told otherwise: the room
    is checked and held until the session ends."""
    return res.book(
        session,
        begin,
        until,
        hold_until=until if hold_until is None else hold_until,
        free_until=until if free_until is None else free_until,
        inherited_room=inherited_room,
        overnight_from=overnight_from,
    )


def test_a_therapy_session_takes_the_first_free_therapy_room_and_the_dyad() -> None:
    begin, until = at(MONDAY, 10), at(MONDAY, 11, 30)
    booking, missing = book(resources(), template(), begin, until)
    assert (booking, missing) == (Booking(room=3, room_until=until, staff=(A, B)), "")
    taken = busy((("room", 3), at(MONDAY, 11), at(MONDAY, 12)))
    booking, _ = book(resources(taken), template(), begin, until)
    assert booking is not None and booking.room == 4
    both = busy((("room", 3), begin, until), (("room", 4), begin, until))
    assert book(resources(both), template(), begin, until) == (None, "no therapy room free")


def test_a_dosing_room_is_checked_until_the_next_morning_ends_and_held_until_it_starts() -> None:
    dosing = template("dosing", room=RoomNeed.DOSING_ROOM_OVERNIGHT, minutes=480, start=time(9))
    begin, until = at(MONDAY, 9), at(MONDAY, 17)
    tuesday = MONDAY + timedelta(days=1)
    morning_start, morning_end = at(tuesday, 9), at(tuesday, 10, 30)

    def overnight(res: Resources) -> tuple[Booking | None, str]:
        return book(res, dosing, begin, until, hold_until=morning_start, free_until=morning_end)

    booking, missing = overnight(resources())
    # held until the next-morning session starts: that session books the room itself
    assert (booking, missing) == (Booking(room=1, room_until=morning_start, staff=(A, B)), "")
    # room 1 is free for the day but not the next morning: the night needs room 2
    night = busy((("room", 1), at(tuesday, 8), morning_end))
    booking, _ = overnight(resources(night))
    assert booking == Booking(room=2, room_until=morning_start, staff=(A, B))
    # taken only during the next-morning session, after the hold would end: still refused
    during_morning = busy((("room", 1), at(tuesday, 10), at(tuesday, 10, 15)))
    booking, _ = overnight(resources(during_morning))
    assert booking is not None and booking.room == 2
    # free again from the end of the next-morning session (half-open ranges)
    after_morning = busy((("room", 1), morning_end, at(tuesday, 12)))
    booking, _ = overnight(resources(after_morning))
    assert booking is not None and booking.room == 1
    # dosing never takes a therapy room
    full = busy((("room", 1), begin, morning_end), (("room", 2), begin, morning_end))
    assert overnight(resources(full)) == (None, "no dosing room free")


def test_a_couple_needs_a_room_with_two_overnight_places() -> None:
    dosing = template("dosing", room=RoomNeed.DOSING_ROOM_OVERNIGHT, minutes=480, start=time(9))
    begin, until = at(MONDAY, 9), at(MONDAY, 17)
    booking, _ = book(resources(party_size=2), dosing, begin, until)
    assert booking is not None and booking.room == 2  # room 1 has one place
    taken = busy((("room", 2), begin, until))
    assert book(resources(taken, party_size=2), dosing, begin, until) == (
        None,
        "no dosing room with 2 overnight places free",
    )
    booking, _ = book(resources(taken, party_size=1), dosing, begin, until)
    assert booking is not None and booking.room == 1


def test_an_inherited_room_is_checked_and_held_by_the_next_morning_session() -> None:
    morning = template("morning", start=time(9))  # a therapy-room session, in the dosing room
    tuesday = MONDAY + timedelta(days=1)
    begin, until = at(tuesday, 9), at(tuesday, 10, 30)
    # the dosing session holds room 1 until the next morning starts: [begin, until) is free
    held = busy((("room", 1), at(MONDAY, 9), begin))
    booking, missing = book(resources(held), morning, begin, until, inherited_room=1)
    assert (booking, missing) == (Booking(room=1, room_until=until, staff=(A, B)), "")
    # the session's own range is checked: no therapy room instead, but the room is named
    overlapping = busy((("room", 1), at(MONDAY, 9), begin + timedelta(minutes=1)))
    assert book(resources(overlapping), morning, begin, until, inherited_room=1) == (
        None,
        "dosing single is taken then",
    )
    late = busy((("room", 1), until - timedelta(minutes=1), at(tuesday, 12)))
    assert book(resources(late), morning, begin, until, inherited_room=1) == (
        None,
        "dosing single is taken then",
    )
    # the course's own dosing hold is no obstacle: it ends where this session starts, and
    # moves with it when the session is rescheduled (earlier or later)
    mine = resources()
    mine.hold(Booking(room=1, room_until=until, staff=()), at(MONDAY, 9), at(MONDAY, 17))
    assert book(mine, morning, begin, until, inherited_room=1)[0] == Booking(
        room=1, room_until=until, staff=(A, B)
    )
    # but nobody else may have the room overnight, from the end of dosing on
    evening = busy((("room", 1), at(MONDAY, 20), at(MONDAY, 21)))
    assert book(
        resources(evening),
        morning,
        begin,
        until,
        inherited_room=1,
        overnight_from=at(MONDAY, 17),
    ) == (None, "dosing single is taken then")


def test_a_busy_dyad_member_blocks_a_dyad_session_and_is_named() -> None:
    begin, until = at(MONDAY, 10), at(MONDAY, 11, 30)
    taken = busy((("staff", B), at(MONDAY, 11), at(MONDAY, 12)))
    assert book(resources(taken), template(), begin, until) == (None, f"staff {B} is busy")
    named = resources(taken)
    named.names[("staff", B)] = "t1b of dyad 1"
    assert book(named, template(), begin, until) == (None, "t1b of dyad 1 is busy")


def test_one_therapist_falls_back_to_the_second() -> None:
    phone = template("phone", staffing=Staffing.ONE_THERAPIST, room=RoomNeed.NONE, minutes=15)
    begin, until = at(MONDAY, 10), at(MONDAY, 10, 15)
    assert book(resources(), phone, begin, until) == (Booking(staff=(A,)), "")
    first_busy = busy((("staff", A), begin, until))
    assert book(resources(first_busy), phone, begin, until) == (Booking(staff=(B,)), "")
    both = busy((("staff", A), begin, until), (("staff", B), begin, until))
    assert book(resources(both), phone, begin, until) == (None, "no therapist of the dyad free")


def test_an_assessment_takes_the_first_free_remote_assessor() -> None:
    rating = template("rating", staffing=Staffing.REMOTE_ASSESSOR, room=RoomNeed.NONE)
    begin, until = at(MONDAY, 10), at(MONDAY, 11, 30)
    assert book(resources(), rating, begin, until) == (Booking(staff=(201,)), "")
    one = busy((("staff", 201), begin, until))
    assert book(resources(one), rating, begin, until) == (Booking(staff=(202,)), "")
    two = busy((("staff", 201), begin, until), (("staff", 202), begin, until))
    assert book(resources(two), rating, begin, until) == (None, "no remote assessor free")
    nobody = Resources(rooms=list(ROOMS), dyad=(A, B), assessors=[])
    assert book(nobody, rating, begin, until) == (None, "no remote assessor free")


def test_holding_marks_own_bookings_and_leaves_the_shared_snapshot_alone() -> None:
    shared = BusyIndex()
    mine = resources(shared)
    begin, until = at(MONDAY, 10), at(MONDAY, 11, 30)
    night = at(MONDAY + timedelta(days=1), 10, 30)
    mine.hold(Booking(room=1, room_until=night, staff=(A, B)), begin, until)
    assert not mine.is_free(("room", 1), at(MONDAY + timedelta(days=1), 9), night)
    assert not mine.is_free(("staff", A), begin, until)
    assert mine.is_free(("staff", A), until, until + timedelta(hours=1))  # staff: until `until`
    assert mine.own.is_free(("room", 1), night, night + timedelta(hours=1))
    # the snapshot read from the database is not touched: another try starts clean
    assert shared.is_free(("room", 1), begin, night)
    assert resources(shared).is_free(("staff", A), begin, until)
    # a booking without room_until holds no room
    mine.hold(Booking(room=3, room_until=None, staff=()), begin, until)
    assert mine.is_free(("room", 3), begin, until)


# --- the planner with resources ------------------------------------------------------------


def calendar(open_weekdays: frozenset[int] = frozenset(range(5))) -> SiteCalendar:
    return SiteCalendar(
        timezone="America/New_York",
        open_weekdays=open_weekdays,
        hours=tuple((day, time(8), time(18)) for day in sorted(open_weekdays)),
    )


def spec(*sessions: SessionSpec) -> ProtocolSpec:
    return ProtocolSpec(
        slug="test",
        name="Test",
        version=1,
        status=Status.ACTIVE,
        investigational=True,
        couples=False,
        description="",
        span_min_weeks=0,
        span_max_weeks=52,
        sessions=sessions,
    )


def plan(
    taken: BusyIndex, *sessions: SessionSpec, start: date = MONDAY, **kwargs: object
) -> PlannedCourse:
    return plan_course(
        spec(*sessions) if sessions else spec(template(window=(0, 2))),
        start,
        calendar(),
        resources=resources(taken, **kwargs),
    )


def local(moment: datetime) -> datetime:
    return moment.astimezone(NEW_YORK)


def test_the_preferred_time_when_it_is_free() -> None:
    course = plan(BusyIndex())
    visit = course.session("visit")
    assert local(visit.start) == datetime.combine(MONDAY, time(10), NEW_YORK)
    assert (visit.room, visit.staff) == (3, (A, B))
    assert "nearest" not in visit.reason


def test_taken_preferred_time_goes_to_the_nearest_free_time_tie_to_the_earlier() -> None:
    # the dyad is busy 10:00-11:30: 08:30 and 11:30 are both 90 minutes away
    taken = busy((("staff", A), at(MONDAY, 10), at(MONDAY, 11, 30)))
    visit = plan(taken).session("visit")
    assert local(visit.start) == datetime.combine(MONDAY, time(8, 30), NEW_YORK)
    assert "10:00 was taken; nearest free time" in visit.reason


def test_nearest_free_time_may_be_later_that_day() -> None:
    # busy 09:00-11:15: before, only 07:30 would fit (before opening); after, 11:15
    taken = busy((("staff", B), at(MONDAY, 9), at(MONDAY, 11, 15)))
    visit = plan(taken).session("visit")
    assert local(visit.start) == datetime.combine(MONDAY, time(11, 15), NEW_YORK)
    assert visit.start.date() == at(MONDAY, 0).date()


def test_the_nearest_free_time_stays_inside_the_opening_hours() -> None:
    # free only from 16:30: a 90-minute session ends at 18:00, closing time
    taken = busy((("room", 3), at(MONDAY, 8), at(MONDAY, 16, 30)))
    taken.add(("room", 4), at(MONDAY, 8), at(MONDAY, 16, 30))
    visit = plan(taken).session("visit")
    assert local(visit.start) == datetime.combine(MONDAY, time(16, 30), NEW_YORK)
    taken.add(("room", 3), at(MONDAY, 16, 30), at(MONDAY, 16, 45))
    taken.add(("room", 4), at(MONDAY, 16, 30), at(MONDAY, 16, 45))
    # nothing fits that day any more: the next day, at the preferred time
    later = plan(taken).session("visit")
    assert local(later.start) == datetime.combine(MONDAY + timedelta(days=1), time(10), NEW_YORK)
    assert "moved later" in later.reason
    assert "no therapy room free" in later.reason


def test_no_free_time_that_day_goes_to_the_next_open_day() -> None:
    friday = MONDAY + timedelta(days=4)
    taken = busy((("staff", A), at(friday, 0), at(friday + timedelta(days=1), 0)))
    course = plan_course(
        spec(template(window=(0, 4))), friday, calendar(), resources=resources(taken)
    )
    moved = course.session("visit")
    # Friday is taken, Saturday and Sunday are closed: Monday at 10:00
    assert local(moved.start) == datetime.combine(friday + timedelta(days=3), time(10), NEW_YORK)
    assert f"Fri {friday.isoformat()}: staff {A} is busy" in moved.reason
    assert "the site is closed (Saturday)" in moved.reason


@pytest.mark.parametrize(
    ("sessions", "taken", "missing"),
    [
        (
            (template(window=(0, 1)),),
            ("staff", A),
            f"staff {A} is busy",
        ),
        (
            (template(window=(0, 1)),),
            ("room", 3),
            "no therapy room free",
        ),
        (
            (template(staffing=Staffing.REMOTE_ASSESSOR, room=RoomNeed.NONE, window=(0, 1)),),
            ("staff", 201),
            "no remote assessor free",
        ),
        (
            (
                template(
                    "dosing",
                    room=RoomNeed.DOSING_ROOM_OVERNIGHT,
                    minutes=480,
                    start=time(9),
                    window=(0, 1),
                    kind=Kind.DOSING,
                ),
            ),
            ("room", 1),
            "no dosing room free",
        ),
    ],
)
def test_the_error_names_the_missing_resource(sessions, taken, missing) -> None:
    index = BusyIndex()
    blocked = [taken]
    if taken == ("room", 3):
        blocked.append(("room", 4))
    if taken == ("staff", 201):
        blocked.append(("staff", 202))
    if taken == ("room", 1):
        blocked.append(("room", 2))
    for resource in blocked:
        index.add(resource, at(MONDAY, 0), at(MONDAY + timedelta(days=3), 0))
    with pytest.raises(PlanningError) as caught:
        plan_course(spec(*sessions), MONDAY, calendar(), resources=resources(index))
    message = str(caught.value)
    assert caught.value.session == sessions[0].key
    assert message.startswith(f"{sessions[0].key} must fall between Mon 3 May 2027 and Tue 4 May")
    assert f"Mon 3 May 2027: {missing}" in message
    assert f"Tue 4 May 2027: {missing}" in message
    assert message.endswith("choose another start date")


def test_the_next_morning_needs_the_dyad_too() -> None:
    dosing = template(
        "dosing",
        room=RoomNeed.DOSING_ROOM_OVERNIGHT,
        minutes=480,
        start=time(9),
        window=(0, 2),
        kind=Kind.DOSING,
    )
    morning = template("morning", anchor="dosing", next_morning=True, start=time(9))
    tuesday = MONDAY + timedelta(days=1)
    # B is busy on Tuesday 09:00-09:30: Monday's dosing stays, and its next-morning session
    # goes to 09:30, the nearest time the dyad is free; the room is held until then
    taken = busy((("staff", B), at(tuesday, 9), at(tuesday, 9, 30)))
    course = plan_course(spec(dosing, morning), MONDAY, calendar(), resources=resources(taken))
    placed, after = course.session("dosing"), course.session("morning")
    assert local(placed.start) == datetime.combine(MONDAY, time(9), NEW_YORK)
    assert local(after.start) == datetime.combine(tuesday, time(9, 30), NEW_YORK)
    assert "nearest free time" in after.reason
    assert after.room == placed.room == 1
    assert placed.room_until == after.start.astimezone(UTC)
    assert after.room_until == after.end.astimezone(UTC)
    assert after.staff == placed.staff == (A, B)
    # B busy all Tuesday: no next morning on Tuesday and no dosing that day, so Wednesday
    all_day = busy((("staff", B), at(tuesday, 0), at(tuesday + timedelta(days=1), 0)))
    course = plan_course(spec(dosing, morning), MONDAY, calendar(), resources=resources(all_day))
    placed = course.session("dosing")
    assert local(placed.start) == datetime.combine(tuesday + timedelta(days=1), time(9), NEW_YORK)
    assert f"Mon {MONDAY.isoformat()}: next morning: staff {B} is busy" in placed.reason
    assert f"Tue {tuesday.isoformat()}: staff {B} is busy" in placed.reason


def test_the_dosing_room_must_be_free_until_the_next_morning_session_ends() -> None:
    dosing = template(
        "dosing",
        room=RoomNeed.DOSING_ROOM_OVERNIGHT,
        minutes=480,
        start=time(9),
        window=(0, 2),
        kind=Kind.DOSING,
    )
    morning = template("morning", anchor="dosing", next_morning=True, start=time(9))
    tuesday = MONDAY + timedelta(days=1)
    # room 1 is taken on Tuesday 10:15-11:00: after dosing's own hold would end (09:00), but
    # during the next-morning session (09:00-10:30): dosing takes room 2
    taken = busy((("room", 1), at(tuesday, 10, 15), at(tuesday, 11)))
    course = plan_course(spec(dosing, morning), MONDAY, calendar(), resources=resources(taken))
    placed, after = course.session("dosing"), course.session("morning")
    assert local(placed.start) == datetime.combine(MONDAY, time(9), NEW_YORK)
    assert placed.room == after.room == 2
    assert (placed.room_until, after.room_until) == (at(tuesday, 9), at(tuesday, 10, 30))
    assert local(after.start) == datetime.combine(tuesday, time(9), NEW_YORK)
    # what the course holds: room 2 from dosing's start to the end of the next morning, with
    # no gap and no overlap between the two bookings
    mine = resources(taken)
    plan_course(spec(dosing, morning), MONDAY, calendar(), resources=mine)
    assert not mine.own.is_free(("room", 2), at(MONDAY, 9), at(tuesday, 10, 30))
    for hour, minute in ((8, 59), (9, 0), (10, 29)):  # around where one booking hands over
        moment = at(tuesday, hour, minute)
        assert not mine.own.is_free(("room", 2), moment, moment + timedelta(minutes=1))
    assert mine.own.is_free(("room", 2), at(tuesday, 10, 30), at(tuesday, 12))
    assert mine.own.is_free(("room", 1), at(MONDAY, 0), at(tuesday + timedelta(days=1), 0))


def phone() -> SessionSpec:
    return template(
        "phone",
        staffing=Staffing.ONE_THERAPIST,
        room=RoomNeed.NONE,
        minutes=15,
        open_days_apply=False,
        kind=Kind.PHONE_CHECKIN,
    )


def test_a_phone_call_moves_to_the_nearest_time_when_both_therapists_are_busy() -> None:
    taken = busy(
        (("staff", A), at(MONDAY, 10), at(MONDAY, 11, 30)),
        (("staff", B), at(MONDAY, 10), at(MONDAY, 11, 30)),
    )
    call = plan_course(spec(phone()), MONDAY, calendar(), resources=resources(taken))
    # 09:45-10:00 is free and 15 minutes from 10:00; 11:30 is 90 minutes away
    assert local(call.session("phone").start) == datetime.combine(MONDAY, time(9, 45), NEW_YORK)
    assert call.session("phone").staff == (A,)


def test_a_phone_call_on_a_closed_day_still_finds_a_time() -> None:
    saturday = MONDAY + timedelta(days=5)
    taken = busy(
        (("staff", A), at(saturday, 10), at(saturday, 10, 15)),
        (("staff", B), at(saturday, 10), at(saturday, 10, 15)),
    )
    course = plan_course(spec(phone()), saturday, calendar(), resources=resources(taken))
    # no opening hours on Saturdays; 09:45 and 10:15 are both 15 minutes away: the earlier
    call = course.session("phone")
    assert local(call.start) == datetime.combine(saturday, time(9, 45), NEW_YORK)
