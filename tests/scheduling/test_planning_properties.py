"""Property tests of the pure course planner over start dates, zones, opening days and closures,
for both shipped protocols. No database.

Elapsed times and orderings are computed in UTC: aware datetimes that share a tzinfo compare and
subtract by wall clock in Python.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.spec import (
    THERAPY_KINDS,
    Kind,
    ProtocolSpec,
    RoomNeed,
    SessionSpec,
    Staffing,
    Status,
    Timing,
)
from scheduling.planning import (
    PlannedCourse,
    PlannedSession,
    PlanningError,
    SiteCalendar,
    plan_course,
)

ZONES = (
    "Asia/Jerusalem",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "America/Havana",
    "Europe/Berlin",
    "UTC",
)
OPEN_WEEKDAYS = (
    frozenset(range(5)),  # Monday to Friday
    frozenset(range(6)),  # Monday to Saturday
    frozenset({6, 0, 1, 2, 3}),  # Sunday to Thursday
)
# how far after the start random closures may fall: over the therapy sessions and the endpoint
CLOSURE_HORIZON = {"mapp-ptsd": 140, "mdma-cbct-couples": 70}

SETTINGS = settings(max_examples=150, deadline=None)


@dataclass(frozen=True)
class Case:
    start: date
    calendar: SiteCalendar


def next_open(day: date, open_weekdays: frozenset[int]) -> date:
    while day.weekday() not in open_weekdays:
        day += timedelta(days=1)
    return day


def cases(horizon: int) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: st.DrawFn) -> Case:
        open_weekdays = draw(st.sampled_from(OPEN_WEEKDAYS))
        start = next_open(draw(st.dates(date(2026, 1, 1), date(2032, 12, 31))), open_weekdays)
        zone = draw(st.sampled_from(ZONES))
        offsets = draw(st.sets(st.integers(1, horizon), max_size=4))
        closures = frozenset(start + timedelta(days=n) for n in offsets)
        return Case(start, SiteCalendar(zone, open_weekdays, closures))

    return build()


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def is_open(day: date, calendar: SiteCalendar) -> bool:
    return day not in calendar.closures and day.weekday() in calendar.open_weekdays


def occurrence_keys(spec: ProtocolSpec) -> list[str]:
    return [s.occurrence_key(i) for s in spec.sessions for i in range(1, s.repeat_count + 1)]


def why_skipped(reason: str, day: date) -> str:
    """The explanation the reason gives for skipping ``day`` ("Mon 2027-05-03: <why>")."""
    marker = f"{day.isoformat()}: "
    assert marker in reason, f"{day} is not explained in: {reason}"
    return reason.split(marker, 1)[1].split("; ", 1)[0]


def check_session(
    spec: ProtocolSpec, course: PlannedCourse, s: PlannedSession, calendar: SiteCalendar
) -> None:
    template = spec.session(s.template_key)
    timing = template.timing
    assert s.kind == template.kind and s.overnight == template.overnight
    assert s.start.tzinfo is not None and s.start.tzinfo == calendar.zone, s.key
    day = s.start.date()

    # planned from its own anchor's actual local date
    anchor_day = (
        course.start_date if timing.anchor is None else course.session(timing.anchor).start.date()
    )
    shift = (s.occurrence - 1) * template.repeat_interval_days
    assert s.target == anchor_day + timedelta(days=timing.target_days + shift), s.key
    assert s.window_start == anchor_day + timedelta(days=timing.earliest_days + shift), s.key
    assert s.window_end == anchor_day + timedelta(days=timing.latest_days + shift), s.key
    assert not s.fixed

    assert s.in_window and day >= s.target, s.key
    if timing.next_morning:
        assert day == anchor_day + timedelta(days=1), s.key
    if template.open_days_apply:
        assert is_open(day, calendar), s.key

    # wall clock holds, unless the time does not exist that day
    if "does not exist" in s.reason:
        assert f"{template.start_time:%H:%M} does not exist" in s.reason
        assert s.start.timetz().replace(tzinfo=None) > template.start_time
    else:
        assert s.start.timetz().replace(tzinfo=None) == template.start_time, s.key
    assert utc(s.end) - utc(s.start) == timedelta(minutes=template.duration_minutes), s.key

    # the first suitable day at or after the target: every day skipped is explained
    if day == s.target:
        assert "on target" in s.reason, s.key
        return
    assert "moved later" in s.reason, s.key
    skipped = s.target
    while skipped < day:
        why = why_skipped(s.reason, skipped)
        if template.open_days_apply and not is_open(skipped, calendar):
            assert why.startswith("the site is closed"), (s.key, why)
        elif any(
            other.timing.next_morning and other.timing.anchor == template.key
            for other in spec.sessions
        ) and not is_open(skipped + timedelta(days=1), calendar):
            assert "would fall on" in why, (s.key, why)
        else:
            assert why.startswith("the participant has"), (s.key, why)
        skipped += timedelta(days=1)


def check_course(spec: ProtocolSpec, case: Case, course: PlannedCourse) -> None:
    calendar = case.calendar
    assert course.protocol_slug == spec.slug and course.start_date == case.start
    keys = [s.key for s in course.sessions]
    assert sorted(keys) == sorted(occurrence_keys(spec))
    expected: Counter[Kind] = Counter()
    for template in spec.sessions:
        expected[template.kind] += template.repeat_count
    assert Counter(s.kind for s in course.sessions) == expected

    starts = [utc(s.start) for s in course.sessions]
    assert starts == sorted(starts)
    for s in course.sessions:
        check_session(spec, course, s, calendar)

    # no overlaps; an overnight session keeps the rest of its local day busy
    for before, after in zip(course.sessions, course.sessions[1:], strict=False):
        assert utc(before.end) <= utc(after.start), (before.key, after.key)
    for s in course.sessions:
        if s.overnight:
            same_day = [
                o.key
                for o in course.sessions
                if o.start.date() == s.start.date() and utc(o.start) > utc(s.start)
            ]
            assert same_day == [], (s.key, same_day)

    # dosing sessions spaced as the spec says from the previous dosing session
    for s in course.sessions:
        timing = spec.session(s.template_key).timing
        if s.kind == Kind.DOSING and timing.anchor is not None:
            anchor = course.session(timing.anchor)
            if anchor.kind == Kind.DOSING:
                gap = (s.start.date() - anchor.start.date()).days
                assert timing.earliest_days <= gap <= timing.latest_days, (s.key, gap)

    therapy = [s.start.date() for s in course.sessions if s.kind in THERAPY_KINDS]
    span = (max(therapy) - min(therapy)).days
    assert span == course.therapy_span_days()
    assert span <= spec.span_max_weeks * 7
    if not calendar.closures:
        assert spec.span_min_weeks * 7 <= span, span


def plan_and_check(spec: ProtocolSpec, case: Case) -> None:
    try:
        course = plan_course(spec, case.start, case.calendar)
    except PlanningError as error:
        assert case.calendar.closures, f"no closures, yet: {error}"
        message = str(error)
        keys = occurrence_keys(spec)
        assert any(key in message for key in keys), message
        if error.session is not None:
            assert error.session in keys and message.startswith(error.session)
        with pytest.raises(PlanningError) as again:
            plan_course(spec, case.start, case.calendar)
        assert str(again.value) == message
        return
    check_course(spec, case, course)
    twice = plan_course(spec, case.start, case.calendar)
    assert twice == course
    assert [(s.key, utc(s.start), utc(s.end), s.reason) for s in twice.sessions] == [
        (s.key, utc(s.start), utc(s.end), s.reason) for s in course.sessions
    ]


@SETTINGS
@given(case=cases(CLOSURE_HORIZON["mapp-ptsd"]))
def test_mapp_course_invariants(mapp_spec: ProtocolSpec, case: Case) -> None:
    plan_and_check(mapp_spec, case)


@SETTINGS
@given(case=cases(CLOSURE_HORIZON["mdma-cbct-couples"]))
def test_couples_course_invariants(couples_spec: ProtocolSpec, case: Case) -> None:
    plan_and_check(couples_spec, case)


@settings(max_examples=60, deadline=None)
@given(
    start=st.dates(date(2026, 1, 1), date(2032, 12, 31)),
    zone=st.sampled_from(ZONES),
    at=st.times(),
)
def test_any_wall_clock_time_elapses_exactly(start: date, zone: str, at: time) -> None:
    spec = ProtocolSpec(
        slug="one",
        name="one",
        version=1,
        status=Status.ACTIVE,
        investigational=True,
        couples=False,
        description="",
        span_min_weeks=0,
        span_max_weeks=1,
        sessions=(
            SessionSpec(
                key="only",
                title="Only",
                kind=Kind.OTHER,
                duration_minutes=150,
                overnight=False,
                start_time=at.replace(second=0, microsecond=0, fold=0),
                open_days_apply=False,
                staffing=Staffing.NONE,
                room=RoomNeed.NONE,
                timing=Timing(None, 0, 0, 0),
            ),
        ),
    )
    only = plan_course(spec, start, SiteCalendar(zone)).session("only")
    wanted = at.replace(second=0, microsecond=0, fold=0)
    assert only.start.date() == start
    assert utc(only.end) - utc(only.start) == timedelta(minutes=150)
    local = only.start.timetz().replace(tzinfo=None)
    if "does not exist" in only.reason:
        assert local > wanted
    else:
        assert local == wanted
        assert only.start.fold == 0
