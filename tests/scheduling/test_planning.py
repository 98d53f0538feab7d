"""Example-based tests of the pure course planner (scheduling.planning).

Every expectation is derived from the planner's rules (module docstring of scheduling.planning)
with date arithmetic in the test, never copied from the planner's output. No database.

Aware datetimes that share a tzinfo compare and subtract by wall clock in Python (fold and UTC
offset are ignored), so elapsed times and orderings here are always computed in UTC.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from protocol.spec import (
    THERAPY_KINDS,
    DosePlan,
    Kind,
    ProtocolSpec,
    RoomNeed,
    SessionSpec,
    Staffing,
    Status,
    Supplemental,
    Timing,
)
from scheduling.planning import (
    PlannedCourse,
    PlannedSession,
    PlanningError,
    SiteCalendar,
    local_start,
    people_day,
    plan_course,
)

NEW_YORK = "America/New_York"
LONDON = "Europe/London"
JERUSALEM = "Asia/Jerusalem"
SYDNEY = "Australia/Sydney"
DST_ZONES = (JERUSALEM, NEW_YORK, LONDON, SYDNEY)

MONDAY_TO_FRIDAY = frozenset(range(5))
MONDAY_TO_SATURDAY = frozenset(range(6))
EVERY_DAY = frozenset(range(7))

Direction = Literal["forward", "back"]


# --- helpers -------------------------------------------------------------------------------


def days(n: int) -> timedelta:
    return timedelta(days=n)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def elapsed(session: PlannedSession) -> timedelta:
    return utc(session.end) - utc(session.start)


def wall(moment: datetime) -> time:
    return moment.timetz().replace(tzinfo=None)


def is_open(day: date, calendar: SiteCalendar) -> bool:
    return day not in calendar.closures and day.weekday() in calendar.open_weekdays


def first_open(day: date, calendar: SiteCalendar) -> date:
    while not is_open(day, calendar):
        day += days(1)
    return day


def first_dosing_day(day: date, calendar: SiteCalendar) -> date:
    """First day at or after ``day`` that is open and whose next day is open too."""
    while not (is_open(day, calendar) and is_open(day + days(1), calendar)):
        day += days(1)
    return day


def monday_on_or_before(day: date) -> date:
    return day - days(day.weekday())


def occurrence_keys(spec: ProtocolSpec) -> list[str]:
    return [s.occurrence_key(i) for s in spec.sessions for i in range(1, s.repeat_count + 1)]


def kind_counts(spec: ProtocolSpec) -> Counter[Kind]:
    counts: Counter[Kind] = Counter()
    for s in spec.sessions:
        counts[s.kind] += s.repeat_count
    return counts


def on(course: PlannedCourse, key: str) -> date:
    """The local date a session starts on (starts are in the site's zone)."""
    return course.session(key).start.date()


def transitions(zone_name: str, year: int) -> list[tuple[date, timedelta, timedelta]]:
    """(day, offset before, offset after) for each UTC-offset change in ``year``, found by
    comparing the offset at local noon of consecutive days."""
    zone = ZoneInfo(zone_name)
    found = []
    day = date(year, 1, 1)
    previous = datetime.combine(day - days(1), time(12), zone).utcoffset()
    while day.year == year:
        offset = datetime.combine(day, time(12), zone).utcoffset()
        if offset != previous:
            assert previous is not None and offset is not None
            found.append((day, previous, offset))
        previous = offset
        day += days(1)
    return found


def transition(
    zone_name: str, year: int, direction: Direction
) -> tuple[date, timedelta, timedelta]:
    matches = [t for t in transitions(zone_name, year) if (t[2] > t[1]) == (direction == "forward")]
    assert len(matches) == 1, (zone_name, year, direction, matches)
    return matches[0]


def exists(day: date, at: time, zone: ZoneInfo) -> bool:
    naive = datetime.combine(day, at)
    return utc(naive.replace(tzinfo=zone)).astimezone(zone).replace(tzinfo=None) == naive


def ambiguous(day: date, at: time, zone: ZoneInfo) -> bool:
    first = datetime.combine(day, at, zone)
    return exists(day, at, zone) and first.utcoffset() != first.replace(fold=1).utcoffset()


DOSE = DosePlan(
    initial_mg=Decimal(80),
    supplemental_mg=None,
    supplemental_window_minutes=None,
    supplemental=Supplemental.NONE,
)


def session(
    key: str,
    *,
    anchor: str | None = None,
    target: int = 0,
    window: tuple[int, int] = (0, 0),
    at: time = time(10),
    minutes: int = 60,
    kind: Kind = Kind.OTHER,
    overnight: bool = False,
    open_days_apply: bool = True,
    next_morning: bool = False,
) -> SessionSpec:
    if next_morning:
        assert anchor is not None
        timing = Timing.morning_after(anchor)
    else:
        timing = Timing(anchor, target, window[0], window[1])
    return SessionSpec(
        key=key,
        title=key.capitalize(),
        kind=kind,
        duration_minutes=minutes,
        overnight=overnight,
        start_time=at,
        open_days_apply=open_days_apply,
        staffing=Staffing.NONE,
        room=RoomNeed.DOSING_ROOM_OVERNIGHT if overnight else RoomNeed.NONE,
        timing=timing,
        dose_plan=DOSE if kind == Kind.DOSING else None,
    )


def protocol(*sessions: SessionSpec, span_weeks: tuple[int, int] = (0, 52)) -> ProtocolSpec:
    return ProtocolSpec(
        slug="test-protocol",
        name="Test protocol",
        version=1,
        status=Status.ACTIVE,
        investigational=True,
        couples=False,
        description="",
        span_min_weeks=span_weeks[0],
        span_max_weeks=span_weeks[1],
        sessions=sessions,
    )


def one_session_protocol(at: time, minutes: int = 60) -> ProtocolSpec:
    """A single session anchored on the course start, on any day of the week."""
    return protocol(session("only", at=at, minutes=minutes, open_days_apply=False))


# --- the shipped MAPP course from a Monday ---------------------------------------------------

MONDAY = date(2027, 5, 3)


@pytest.fixture
def mapp_course(mapp_spec: ProtocolSpec) -> PlannedCourse:
    assert MONDAY.weekday() == 0
    return plan_course(mapp_spec, MONDAY, SiteCalendar(NEW_YORK))


def test_mapp_plans_every_occurrence_once(
    mapp_spec: ProtocolSpec, mapp_course: PlannedCourse
) -> None:
    keys = [s.key for s in mapp_course.sessions]
    assert sorted(keys) == sorted(occurrence_keys(mapp_spec))
    assert len(set(keys)) == len(keys)


def test_mapp_counts_per_kind(mapp_spec: ProtocolSpec, mapp_course: PlannedCourse) -> None:
    counts = Counter(s.kind for s in mapp_course.sessions)
    assert counts == kind_counts(mapp_spec)
    assert counts[Kind.PREPARATORY] == 3
    assert counts[Kind.DOSING] == 3
    assert counts[Kind.INTEGRATION] == 9
    assert counts[Kind.PHONE_CHECKIN] == 15
    assert counts[Kind.ASSESSMENT] == 4  # baseline, interim-1, interim-2, endpoint
    assert counts[Kind.FOLLOW_UP] == 1
    assert counts[Kind.OTHER] == 1  # closing
    assert [s.key for s in mapp_course.sessions if s.kind == Kind.PHONE_CHECKIN][:5] == [
        f"phone-1.{n}" for n in range(1, 6)
    ]


def test_mapp_chain_from_a_monday(mapp_course: PlannedCourse) -> None:
    calendar = SiteCalendar(NEW_YORK)
    assert on(mapp_course, "prep-1") == MONDAY
    assert on(mapp_course, "prep-2") == first_open(MONDAY + days(7), calendar)
    assert on(mapp_course, "prep-3") == first_open(on(mapp_course, "prep-2") + days(7), calendar)
    assert on(mapp_course, "baseline") == first_open(on(mapp_course, "prep-3") + days(2), calendar)
    assert on(mapp_course, "dosing-1") == first_dosing_day(
        on(mapp_course, "baseline") + days(7), calendar
    )
    for n in (2, 3):
        assert on(mapp_course, f"dosing-{n}") == first_dosing_day(
            on(mapp_course, f"dosing-{n - 1}") + days(28), calendar
        )
    assert on(mapp_course, "endpoint") == first_open(
        on(mapp_course, "baseline") + days(126), calendar
    )
    assert on(mapp_course, "follow-up") == first_open(
        on(mapp_course, "dosing-3") + days(182), calendar
    )
    for s in mapp_course.sessions:
        assert s.start.tzinfo == ZoneInfo(NEW_YORK)
        assert s.in_window and not s.fixed


def test_mapp_next_morning_integrations(mapp_course: PlannedCourse) -> None:
    for n in (1, 2, 3):
        dosing = mapp_course.session(f"dosing-{n}")
        morning = mapp_course.session(f"integration-{n}a")
        assert morning.start.date() == dosing.start.date() + days(1)
        assert wall(morning.start) == time(9)
        assert morning.anchor == f"dosing-{n}"
        assert "the morning after" in morning.reason
        assert elapsed(morning) == timedelta(minutes=90)


def test_mapp_phone_checkins_are_daily_including_weekends(mapp_course: PlannedCourse) -> None:
    weekdays_seen = set()
    for n in (1, 2, 3):
        dosing_day = on(mapp_course, f"dosing-{n}")
        for k in range(1, 6):
            phone = mapp_course.session(f"phone-{n}.{k}")
            assert phone.start.date() == dosing_day + days(1 + k)  # dosing +2 ... +6
            assert phone.occurrence == k and phone.template_key == f"phone-{n}"
            assert wall(phone.start) == time(10)
            assert elapsed(phone) == timedelta(minutes=15)
            weekdays_seen.add(phone.start.weekday())
    # five consecutive days always include a weekend day: closures do not apply to phone calls
    assert weekdays_seen & {5, 6}


def test_mapp_dosing_sessions_are_eight_hours_overnight(mapp_course: PlannedCourse) -> None:
    dosing = [s for s in mapp_course.sessions if s.kind == Kind.DOSING]
    assert [s.key for s in dosing] == ["dosing-1", "dosing-2", "dosing-3"]
    for s in dosing:
        assert s.overnight
        assert elapsed(s) == timedelta(minutes=480)
        assert wall(s.start) == time(9) and wall(s.end) == time(17)
    assert not any(s.overnight for s in mapp_course.sessions if s.kind != Kind.DOSING)


def test_mapp_sessions_sorted_and_not_overlapping(mapp_course: PlannedCourse) -> None:
    starts = [utc(s.start) for s in mapp_course.sessions]
    assert starts == sorted(starts)
    for before, after in zip(mapp_course.sessions, mapp_course.sessions[1:], strict=False):
        assert utc(before.end) <= utc(after.start)


def test_mapp_non_daily_sessions_only_on_weekdays(
    mapp_spec: ProtocolSpec, mapp_course: PlannedCourse
) -> None:
    for s in mapp_course.sessions:
        if mapp_spec.session(s.template_key).open_days_apply:
            assert s.start.weekday() < 5, s.key


def test_mapp_therapy_span_within_protocol_bounds(
    mapp_spec: ProtocolSpec, mapp_course: PlannedCourse
) -> None:
    therapy = [s.start.date() for s in mapp_course.sessions if s.kind in THERAPY_KINDS]
    span = (max(therapy) - min(therapy)).days
    assert span == mapp_course.therapy_span_days()
    assert mapp_spec.span_min_weeks * 7 <= span <= mapp_spec.span_max_weeks * 7
    assert span == (on(mapp_course, "integration-3c") - MONDAY).days


# --- DST: wall clock holds, elapsed durations are exact -------------------------------------


@pytest.mark.parametrize("direction", ["forward", "back"])
@pytest.mark.parametrize("zone_name", DST_ZONES)
def test_course_across_dst_keeps_wall_clock_times(
    mapp_spec: ProtocolSpec, zone_name: str, direction: Direction
) -> None:
    change, before, after = transition(zone_name, 2027, direction)
    start = monday_on_or_before(change - days(28))
    course = plan_course(mapp_spec, start, SiteCalendar(zone_name))
    for s in course.sessions:
        template = mapp_spec.session(s.template_key)
        assert wall(s.start) == template.start_time, s.key
        assert wall(s.start) in (time(9), time(10))
        assert elapsed(s) == timedelta(minutes=template.duration_minutes), s.key
        assert "does not exist" not in s.reason and "happens twice" not in s.reason
    near = [s for s in course.sessions if abs((s.start.date() - change).days) <= 90]
    earlier = [s for s in near if s.start.date() < change]
    later = [s for s in near if s.start.date() >= change]
    assert any(s.kind in THERAPY_KINDS for s in earlier)
    assert any(s.kind in THERAPY_KINDS for s in later)
    assert {s.start.utcoffset() for s in earlier} == {before}
    assert {s.start.utcoffset() for s in later} == {after}
    assert before != after
    # the same wall clock on both sides is a different UTC time of day
    nine = [s for s in near if wall(s.start) == time(9)]
    assert {utc(s.start).time() for s in nine if s.start.date() < change} == {
        (datetime.combine(change, time(9)) - before).time()
    }
    assert {utc(s.start).time() for s in nine if s.start.date() >= change} == {
        (datetime.combine(change, time(9)) - after).time()
    }


@pytest.mark.parametrize("at", [time(1), time(0, 30)])
@pytest.mark.parametrize("direction", ["forward", "back"])
@pytest.mark.parametrize("zone_name", DST_ZONES)
def test_session_containing_a_transition_lasts_its_elapsed_duration(
    zone_name: str, direction: Direction, at: time
) -> None:
    change, before, after = transition(zone_name, 2027, direction)
    zone = ZoneInfo(zone_name)
    spec = one_session_protocol(at, minutes=180)
    course = plan_course(spec, change, SiteCalendar(zone_name, EVERY_DAY))
    only = course.session("only")
    assert only.start.date() == change
    assert elapsed(only) == timedelta(hours=3)
    if not exists(change, at, zone):
        # London: 01:00 GMT jumps to 02:00 BST; moved forward by the gap
        assert wall(only.start) == (datetime.combine(change, at) + (after - before)).time()
        assert f"{at:%H:%M} does not exist" in only.reason
        return
    assert wall(only.start) == at
    if ambiguous(change, at, zone):
        assert only.start.utcoffset() == max(before, after)  # the first occurrence
        assert f"{at:%H:%M} happens twice" in only.reason
    else:
        assert only.start.utcoffset() == before
        assert "happens twice" not in only.reason and "does not exist" not in only.reason
    # the 3 h contain the change, so the offset differs and so does the wall-clock length
    assert only.end.utcoffset() == after != only.start.utcoffset()
    wall_length = datetime.combine(change, wall(only.end)) - datetime.combine(change, at)
    start_offset = only.start.utcoffset()
    assert start_offset is not None
    assert wall_length == timedelta(hours=3) + (after - start_offset)
    assert wall_length in (timedelta(hours=2), timedelta(hours=4))


# --- local times that do not exist or happen twice ------------------------------------------


def test_spring_forward_gap_moves_start_forward() -> None:
    day = date(2027, 3, 14)
    assert transition(NEW_YORK, 2027, "forward")[0] == day
    spec = protocol(
        session("intro", at=time(10), open_days_apply=False),
        session("gap", at=time(2, 30), open_days_apply=False),
    )
    course = plan_course(spec, day, SiteCalendar(NEW_YORK))
    gap = course.session("gap")
    assert gap.start.date() == day
    assert wall(gap.start) == time(3, 30)
    assert gap.start.utcoffset() == timedelta(hours=-4)  # EDT
    assert utc(gap.start) == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert elapsed(gap) == timedelta(hours=1)
    assert "02:30 does not exist" in gap.reason
    assert "03:30" in gap.reason
    assert "does not exist" not in course.session("intro").reason


def _midnight_gap() -> tuple[str, date] | None:
    for zone_name in ("America/Havana", "America/Santiago", "America/Asuncion"):
        zone = ZoneInfo(zone_name)
        for change, before, after in transitions(zone_name, 2027):
            if after > before and not exists(change, time(0, 30), zone):
                return zone_name, change
    return None


def test_midnight_gap_moves_start_forward() -> None:
    found = _midnight_gap()
    if found is None:
        pytest.skip("no zone with a midnight spring-forward in this tz database")
    zone_name, day = found
    zone = ZoneInfo(zone_name)
    assert not exists(day, time(0), zone) and exists(day, time(1), zone)
    course = plan_course(one_session_protocol(time(0, 30)), day, SiteCalendar(zone_name))
    only = course.session("only")
    assert only.start.date() == day
    assert wall(only.start) == time(1, 30)
    assert "00:30 does not exist" in only.reason
    assert elapsed(only) == timedelta(hours=1)


def test_fall_back_ambiguous_time_takes_first_occurrence() -> None:
    day = date(2027, 11, 7)
    assert transition(NEW_YORK, 2027, "back")[0] == day
    spec = protocol(
        session("intro", at=time(10), open_days_apply=False),
        session("twice", at=time(1, 30), open_days_apply=False),
    )
    course = plan_course(spec, day, SiteCalendar(NEW_YORK))
    twice = course.session("twice")
    assert wall(twice.start) == time(1, 30)
    assert twice.start.fold == 0
    assert twice.start.utcoffset() == timedelta(hours=-4)  # EDT, before clocks go back
    assert utc(twice.start) == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    assert "01:30 happens twice" in twice.reason
    # one hour of elapsed time later the wall clock shows 01:30 again
    assert elapsed(twice) == timedelta(hours=1)
    assert wall(twice.end) == time(1, 30)
    assert twice.end.utcoffset() == timedelta(hours=-5)


def test_local_start_directly() -> None:
    ny = ZoneInfo(NEW_YORK)
    moment, note = local_start(date(2027, 6, 1), time(9), ny)
    assert note is None
    assert moment == datetime(2027, 6, 1, 9, tzinfo=ny)
    assert moment.utcoffset() == timedelta(hours=-4)

    moment, note = local_start(date(2027, 1, 5), time(9), ny)
    assert note is None and moment.utcoffset() == timedelta(hours=-5)

    moment, note = local_start(date(2027, 3, 14), time(2, 30), ny)
    assert utc(moment) == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert wall(moment) == time(3, 30)
    assert note is not None and "does not exist" in note and NEW_YORK in note

    moment, note = local_start(date(2027, 11, 7), time(1, 30), ny)
    assert moment.fold == 0 and moment.utcoffset() == timedelta(hours=-4)
    assert note is not None and "happens twice" in note and "EDT" in note

    sydney = ZoneInfo(SYDNEY)
    spring = transition(SYDNEY, 2027, "forward")[0]
    assert spring.month == 10  # southern hemisphere: DST starts in October
    moment, note = local_start(spring, time(2, 30), sydney)
    assert wall(moment) == time(3, 30) and moment.utcoffset() == timedelta(hours=11)
    assert note is not None and "does not exist" in note
    autumn = transition(SYDNEY, 2027, "back")[0]
    assert autumn.month == 4  # and ends in April
    moment, note = local_start(autumn, time(2, 30), sydney)
    assert moment.utcoffset() == timedelta(hours=11)
    assert note is not None and "happens twice" in note


# --- calendar edge cases: leap days, month ends, year end ----------------------------------


@pytest.mark.parametrize(
    ("start", "expected_next"),
    [(date(2028, 2, 28), date(2028, 2, 29)), (date(2027, 2, 28), date(2027, 3, 1))],
)
def test_leap_day_is_a_day(start: date, expected_next: date) -> None:
    spec = protocol(
        session("first", open_days_apply=False),
        session("second", anchor="first", target=1, window=(1, 3), open_days_apply=False),
    )
    course = plan_course(spec, start, SiteCalendar(NEW_YORK))
    assert on(course, "second") == expected_next == start + days(1)


def test_mapp_target_on_leap_day(mapp_spec: ProtocolSpec) -> None:
    start = date(2028, 2, 22)
    assert start.weekday() == 1
    course = plan_course(mapp_spec, start, SiteCalendar(NEW_YORK))
    assert on(course, "prep-2") == date(2028, 2, 29) == start + days(7)
    # the same weekday in 2027 has no Feb 29
    start_2027 = date(2027, 2, 22)
    course_2027 = plan_course(mapp_spec, start_2027, SiteCalendar(NEW_YORK))
    assert on(course_2027, "prep-2") == date(2027, 3, 1) == start_2027 + days(7)


@pytest.mark.parametrize("start", [date(2028, 1, 31), date(2027, 8, 31), date(2027, 1, 29)])
def test_month_ends(mapp_spec: ProtocolSpec, start: date) -> None:
    calendar = SiteCalendar(LONDON)
    assert is_open(start, calendar)
    course = plan_course(mapp_spec, start, calendar)
    assert on(course, "prep-1") == start
    assert on(course, "prep-2") == first_open(start + days(7), calendar)
    assert on(course, "prep-2").month != start.month
    baseline = on(course, "baseline")
    assert on(course, "endpoint") == first_open(baseline + days(126), calendar)
    assert on(course, "dosing-2") == first_dosing_day(on(course, "dosing-1") + days(28), calendar)


def test_year_end_closures_move_dosing_into_january(mapp_spec: ProtocolSpec) -> None:
    closures = frozenset(date(2027, 12, 24) + days(n) for n in range(9))  # Dec 24 .. Jan 1
    assert max(closures) == date(2028, 1, 1)
    calendar = SiteCalendar(NEW_YORK, closures=closures)
    start = date(2027, 12, 6)
    course = plan_course(mapp_spec, start, calendar)
    baseline = on(course, "baseline")
    target = baseline + days(7)
    assert target in closures
    dosing = course.session("dosing-1")
    assert dosing.target == target
    assert dosing.start.date() == first_dosing_day(target, calendar)
    assert dosing.start.date().year == 2028
    assert target.isoformat() in dosing.reason and "a closure date" in dosing.reason
    for day in (date(2027, 12, 31), date(2028, 1, 1)):
        assert day.isoformat() in dosing.reason
    for s in course.sessions:
        if mapp_spec.session(s.template_key).open_days_apply:
            assert s.start.date() not in closures, s.key


def test_christmas_closures_allow_daily_phone_calls(mapp_spec: ProtocolSpec) -> None:
    closures = frozenset(date(2027, 12, 24) + days(n) for n in range(5))  # Dec 24 .. 28
    calendar = SiteCalendar(NEW_YORK, closures=closures)
    start = date(2027, 11, 29)
    assert start.weekday() == 0
    course = plan_course(mapp_spec, start, calendar)
    dosing_day = on(course, "dosing-1")
    assert dosing_day == first_dosing_day(on(course, "baseline") + days(7), calendar)
    phones = [course.session(f"phone-1.{k}").start.date() for k in range(1, 6)]
    assert phones == [dosing_day + days(1 + k) for k in range(1, 6)]
    assert set(phones) == closures  # phone calls ignore closures (and weekends)
    for k in range(1, 6):
        assert "on target" in course.session(f"phone-1.{k}").reason
    assert on(course, "integration-1b") == first_open(dosing_day + days(7), calendar)


def test_year_end_closure_block_covering_a_window_is_an_error(mapp_spec: ProtocolSpec) -> None:
    closures = frozenset(date(2027, 12, 24) + days(n) for n in range(9))
    calendar = SiteCalendar(NEW_YORK, closures=closures)
    start = date(2027, 11, 29)
    free = plan_course(mapp_spec, start, SiteCalendar(NEW_YORK))
    dosing_day = on(free, "dosing-1")
    window = [dosing_day + days(n) for n in range(5, 11)]  # integration-1b: dosing-1 +5..+10
    assert all(not is_open(day, calendar) for day in window)
    with pytest.raises(PlanningError) as caught:
        plan_course(mapp_spec, start, calendar)
    message = str(caught.value)
    assert "integration-1b" in message
    assert people_day(window[0]) in message and people_day(window[-1]) in message
    assert caught.value.session == "integration-1b"


# --- closures -------------------------------------------------------------------------------


def test_closure_on_target_moves_to_next_open_day(mapp_spec: ProtocolSpec) -> None:
    closed = MONDAY + days(7)  # prep-2's target
    calendar = SiteCalendar(NEW_YORK, closures=frozenset({closed}))
    course = plan_course(mapp_spec, MONDAY, calendar)
    prep2 = course.session("prep-2")
    assert prep2.target == closed
    assert prep2.start.date() == closed + days(1)
    assert prep2.in_window
    assert "moved later" in prep2.reason
    assert closed.isoformat() in prep2.reason and "a closure date" in prep2.reason
    # prep-3 is planned from prep-2's actual date, not from its target
    assert course.session("prep-3").target == prep2.start.date() + days(7)
    assert on(course, "prep-3") == first_open(prep2.start.date() + days(7), calendar)


def test_closure_after_dosing_target_pushes_dosing(mapp_spec: ProtocolSpec) -> None:
    free = plan_course(mapp_spec, MONDAY, SiteCalendar(NEW_YORK))
    target = on(free, "dosing-1")
    assert free.session("dosing-1").target == target
    closed = target + days(1)
    calendar = SiteCalendar(NEW_YORK, closures=frozenset({closed}))
    course = plan_course(mapp_spec, MONDAY, calendar)
    dosing = course.session("dosing-1")
    assert dosing.target == target
    assert is_open(target, calendar)  # the target itself is open ...
    assert dosing.start.date() == first_dosing_day(target, calendar) > target  # ... but moved
    assert "integration-1a would fall on" in dosing.reason
    assert closed.isoformat() in dosing.reason
    assert on(course, "integration-1a") == dosing.start.date() + days(1)
    assert is_open(on(course, "integration-1a"), calendar)


def _wednesday_start() -> date:
    # Wednesday start: prep-2 and prep-3 on Wednesdays, baseline (+2) on Friday, so dosing-1's
    # target (baseline +7) is a Friday
    start = date(2027, 5, 5)
    assert start.weekday() == 2
    return start


def test_friday_dosing_moves_to_monday_when_closed_at_weekends(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(NEW_YORK, MONDAY_TO_FRIDAY)
    course = plan_course(mapp_spec, _wednesday_start(), calendar)
    dosing = course.session("dosing-1")
    assert dosing.target.weekday() == 4
    assert dosing.start.date() == dosing.target + days(3)
    assert dosing.start.weekday() == 0
    assert "integration-1a would fall on Sat" in dosing.reason
    assert on(course, "integration-1a").weekday() == 1


def test_saturday_opening_allows_friday_dosing(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(NEW_YORK, MONDAY_TO_SATURDAY)
    course = plan_course(mapp_spec, _wednesday_start(), calendar)
    dosing = course.session("dosing-1")
    assert dosing.target.weekday() == 4
    assert dosing.start.date() == dosing.target
    assert "on target" in dosing.reason
    assert on(course, "integration-1a").weekday() == 5


def test_daily_sessions_ignore_closed_days() -> None:
    spec = protocol(
        session("first"),
        session("call", anchor="first", target=5, window=(5, 5), open_days_apply=False, minutes=15),
    )
    start = date(2027, 5, 3)
    calendar = SiteCalendar(NEW_YORK, closures=frozenset({start + days(5)}))
    course = plan_course(spec, start, calendar)
    assert on(course, "call") == start + days(5)  # a Saturday, and a closure date
    assert "on target" in course.session("call").reason


# --- impossible windows ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "closures", "why", "next_open"),
    [
        (date(2027, 5, 8), frozenset(), "Saturday", "Mon 10 May 2027"),
        (date(2027, 5, 9), frozenset(), "Sunday", "Mon 10 May 2027"),
        (date(2027, 5, 6), frozenset({date(2027, 5, 6)}), "a closure date", "Fri 7 May 2027"),
    ],
)
def test_start_on_closed_day_is_an_error(
    mapp_spec: ProtocolSpec, start: date, closures: frozenset[date], why: str, next_open: str
) -> None:
    with pytest.raises(PlanningError) as caught:
        plan_course(mapp_spec, start, SiteCalendar(NEW_YORK, closures=closures))
    assert str(caught.value) == (
        f"the course cannot start on a closed day ({why}): the next open day is {next_open}"
    )
    assert caught.value.session == "prep-1"


def test_a_closed_start_names_the_holiday_and_the_next_open_day(mapp_spec: ProtocolSpec) -> None:
    christmas = date(2026, 12, 25)
    calendar = SiteCalendar(
        NEW_YORK,
        closures=frozenset({christmas}),
        closure_names=((christmas, "Christmas Day"),),
    )
    with pytest.raises(PlanningError) as caught:
        plan_course(mapp_spec, christmas, calendar)
    assert str(caught.value) == (
        "the course cannot start on a closed day (Christmas Day): the next open day is "
        "Mon 28 Dec 2026"
    )


def test_closure_block_over_dosing_window_is_an_error(mapp_spec: ProtocolSpec) -> None:
    free = plan_course(mapp_spec, MONDAY, SiteCalendar(NEW_YORK))
    baseline = on(free, "baseline")
    window_start, window_end = baseline + days(3), baseline + days(21)
    closures = frozenset(
        window_start + days(n) for n in range((window_end - window_start).days + 1)
    )
    with pytest.raises(PlanningError) as caught:
        plan_course(mapp_spec, MONDAY, SiteCalendar(NEW_YORK, closures=closures))
    message = str(caught.value)
    assert caught.value.session == "dosing-1"
    assert message.startswith(
        f"dosing-1 must fall between {people_day(window_start)} and {people_day(window_end)} "
        "(its window from baseline), and no day in it works ("
    )
    # every day from the target to the end of the window is named with its reason
    day = baseline + days(7)
    while day <= window_end:
        assert f"{people_day(day)}: the site is closed (a closure date)" in message
        day += days(1)
    assert message.endswith("move baseline or leave the window with a reason")


def test_therapy_span_above_maximum_is_an_error() -> None:
    def spec(max_weeks: int) -> ProtocolSpec:
        return protocol(
            session("prep-1", kind=Kind.PREPARATORY),
            session("prep-2", anchor="prep-1", target=14, window=(14, 21), kind=Kind.PREPARATORY),
            span_weeks=(0, max_weeks),
        )

    start = date(2027, 5, 3)
    course = plan_course(spec(2), start, SiteCalendar(NEW_YORK))
    assert course.therapy_span_days() == 14
    with pytest.raises(PlanningError, match="span"):
        plan_course(spec(1), start, SiteCalendar(NEW_YORK))
    # a closure that pushes the last therapy session past the bound
    closures = frozenset({start + days(14)})
    with pytest.raises(PlanningError, match=r"15 days"):
        plan_course(spec(2), start, SiteCalendar(NEW_YORK, closures=closures))


# --- fixed sessions -------------------------------------------------------------------------


def test_fixed_dosing_moves_its_dependents_only(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(NEW_YORK)
    zone = ZoneInfo(NEW_YORK)
    free = plan_course(mapp_spec, MONDAY, calendar)
    moved_day = on(free, "dosing-1") + days(5)
    assert is_open(moved_day, calendar) and is_open(moved_day + days(1), calendar)
    fixed_at = datetime.combine(moved_day, time(9), zone)
    course = plan_course(mapp_spec, MONDAY, calendar, fixed={"dosing-1": fixed_at})

    dosing = course.session("dosing-1")
    assert dosing.fixed and dosing.in_window
    assert utc(dosing.start) == utc(fixed_at)
    assert "fixed by staff" in dosing.reason and "inside its window" in dosing.reason
    assert on(course, "integration-1a") == moved_day + days(1)
    assert course.session("integration-1b").target == moved_day + days(7)
    assert on(course, "integration-1b") == first_open(moved_day + days(7), calendar)
    assert [on(course, f"phone-1.{k}") for k in range(1, 6)] == [
        moved_day + days(1 + k) for k in range(1, 6)
    ]
    assert course.session("dosing-2").target == moved_day + days(28)
    for key in ("prep-1", "prep-2", "prep-3", "baseline", "endpoint", "closing"):
        assert utc(course.session(key).start) == utc(free.session(key).start), key
        assert not course.session(key).fixed


def test_fixed_time_in_another_zone_anchors_on_the_local_date(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(NEW_YORK)
    free = plan_course(mapp_spec, MONDAY, calendar)
    day = on(free, "dosing-1")
    # 02:00 UTC on the next day is 22:00 (EDT) on ``day`` in New York
    fixed_at = datetime.combine(day + days(1), time(2), UTC)
    course = plan_course(mapp_spec, MONDAY, calendar, fixed={"dosing-1": fixed_at})
    dosing = course.session("dosing-1")
    assert dosing.start.tzinfo == ZoneInfo(NEW_YORK)
    assert dosing.start.date() == day and wall(dosing.start) == time(22)
    assert on(course, "integration-1a") == day + days(1)


def test_fixed_outside_window_is_kept_and_flagged(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(NEW_YORK)
    free = plan_course(mapp_spec, MONDAY, calendar)
    baseline = on(free, "baseline")
    outside = first_dosing_day(baseline + days(22), calendar)  # window is baseline +3 .. +21
    fixed_at = datetime.combine(outside, time(9), ZoneInfo(NEW_YORK))
    course = plan_course(mapp_spec, MONDAY, calendar, fixed={"dosing-1": fixed_at})
    dosing = course.session("dosing-1")
    assert dosing.fixed
    assert not dosing.in_window
    assert "OUTSIDE" in dosing.reason
    assert dosing.window_end == baseline + days(21) < dosing.start.date()
    assert on(course, "integration-1a") == outside + days(1)


def test_fixed_phone_occurrence(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(NEW_YORK)
    free = plan_course(mapp_spec, MONDAY, calendar)
    day = on(free, "phone-1.3")
    fixed_at = datetime.combine(day, time(18, 30), ZoneInfo(NEW_YORK))
    course = plan_course(mapp_spec, MONDAY, calendar, fixed={"phone-1.3": fixed_at})
    assert course.session("phone-1.3").fixed
    assert wall(course.session("phone-1.3").start) == time(18, 30)
    for k in (1, 2, 4, 5):
        assert not course.session(f"phone-1.{k}").fixed
        assert utc(course.session(f"phone-1.{k}").start) == utc(free.session(f"phone-1.{k}").start)


@pytest.mark.parametrize("key", ["dosing-9", "phone-1", "phone-1.6"])
def test_unknown_fixed_key_is_an_error(mapp_spec: ProtocolSpec, key: str) -> None:
    fixed_at = datetime.combine(MONDAY + days(30), time(9), ZoneInfo(NEW_YORK))
    with pytest.raises(PlanningError, match=key.replace(".", r"\.")):
        plan_course(mapp_spec, MONDAY, SiteCalendar(NEW_YORK), fixed={key: fixed_at})


# --- determinism ----------------------------------------------------------------------------


def test_same_inputs_give_the_same_course(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(SYDNEY, closures=frozenset({date(2027, 10, 4), date(2027, 12, 27)}))
    start = date(2027, 9, 6)
    first = plan_course(mapp_spec, start, calendar)
    second = plan_course(mapp_spec, start, calendar)
    assert first == second
    assert [(s.key, utc(s.start), utc(s.end), s.reason) for s in first.sessions] == [
        (s.key, utc(s.start), utc(s.end), s.reason) for s in second.sessions
    ]


# --- the couples protocol -------------------------------------------------------------------


def test_couples_course_in_london(couples_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(LONDON)
    course = plan_course(couples_spec, MONDAY, calendar)
    counts = Counter(s.kind for s in course.sessions)
    assert counts == kind_counts(couples_spec)
    assert counts[Kind.DOSING] == 2
    assert counts[Kind.INTEGRATION] == 10
    assert counts[Kind.PREPARATORY] == 3
    assert sorted(s.key for s in course.sessions) == sorted(occurrence_keys(couples_spec))

    assert couples_spec.couples
    for s in course.sessions:
        template = couples_spec.session(s.template_key)
        if s.kind in THERAPY_KINDS:
            assert template.joint, s.key  # both partners: dosing, conjoint, preparatory
        else:
            assert not template.joint, s.key  # assessments are per person
        assert wall(s.start) == template.start_time
        assert elapsed(s) == timedelta(minutes=template.duration_minutes)
        assert s.start.weekday() < 5
        assert s.start.tzinfo == ZoneInfo(LONDON)

    for n in (1, 2):
        dosing = course.session(f"dosing-{n}")
        assert dosing.overnight and elapsed(dosing) == timedelta(hours=8)
        assert on(course, f"conjoint-{n}a") == dosing.start.date() + days(1)
        assert wall(course.session(f"conjoint-{n}a").start) == time(9)
    gap = (on(course, "dosing-2") - on(course, "dosing-1")).days
    spacing = couples_spec.session("dosing-2").timing
    assert spacing.earliest_days <= gap <= spacing.latest_days
    assert on(course, "dosing-2") == first_dosing_day(on(course, "dosing-1") + days(21), calendar)
    span = course.therapy_span_days()
    assert couples_spec.span_min_weeks * 7 <= span <= couples_spec.span_max_weeks * 7
    starts = [utc(s.start) for s in course.sessions]
    assert starts == sorted(starts)


# --- overlaps and order are decided in UTC, and an overnight stay keeps its evening --------


def test_overlap_inside_the_repeated_hour_is_detected() -> None:
    day = date(2027, 11, 7)
    spec = protocol(
        session("long", at=time(1, 30), minutes=60, open_days_apply=False),
        session("short", at=time(1, 45), minutes=15, window=(0, 1), open_days_apply=False),
    )
    course = plan_course(spec, day, SiteCalendar(NEW_YORK))
    long, short = course.session("long"), course.session("short")
    # long: 05:30-06:30 UTC; short at 01:45 EDT (05:45 UTC) would overlap, so it must move
    assert utc(long.start) == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    assert not (utc(long.start) < utc(short.end) and utc(short.start) < utc(long.end))


def test_sessions_sorted_by_instant_in_the_repeated_hour() -> None:
    day = date(2027, 11, 7)
    spec = protocol(
        session("early", at=time(1, 45), minutes=10, open_days_apply=False),
        session("late", at=time(12), minutes=10, open_days_apply=False),
    )
    fixed_at = datetime(2027, 11, 7, 6, 15, tzinfo=UTC)  # 01:15 EST, the second 01:15
    course = plan_course(spec, day, SiteCalendar(NEW_YORK), fixed={"late": fixed_at})
    assert utc(course.session("early").start) < utc(course.session("late").start)
    assert [s.key for s in course.sessions] == ["early", "late"]


def test_overnight_session_avoids_an_evening_session_planned_earlier() -> None:
    spec = protocol(
        session("evening", at=time(19), minutes=60, open_days_apply=False),
        session(
            "dose",
            at=time(9),
            minutes=480,
            window=(0, 3),
            kind=Kind.DOSING,
            overnight=True,
            open_days_apply=False,
        ),
        session(
            "morning",
            anchor="dose",
            at=time(9),
            minutes=90,
            next_morning=True,
            open_days_apply=False,
        ),
    )
    start = date(2027, 5, 3)
    course = plan_course(spec, start, SiteCalendar(NEW_YORK))
    assert on(course, "evening") == start
    # the participant stays overnight after "dose": the evening session that day is impossible
    assert on(course, "dose") != on(course, "evening")


def test_overnight_session_keeps_its_evening_busy_for_later_sessions() -> None:
    # the same two sessions placed in the other order: the evening one moves to the next day
    spec = protocol(
        session(
            "dose",
            at=time(9),
            minutes=480,
            window=(0, 3),
            kind=Kind.DOSING,
            overnight=True,
            open_days_apply=False,
        ),
        session("evening", at=time(19), minutes=60, window=(0, 3), open_days_apply=False),
    )
    start = date(2027, 5, 3)
    course = plan_course(spec, start, SiteCalendar(NEW_YORK))
    assert on(course, "dose") == start
    assert on(course, "evening") == start + days(1)
    assert "the participant has dose then" in course.session("evening").reason
