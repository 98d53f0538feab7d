"""Planning reminders, the pure part (scheduling.reminders): rules + a session's start + the
site's quiet hours + now -> due times, with property tests across DST days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.spec import Audience, Channel, ReminderRule
from scheduling.reminders import (
    COVERED,
    QUIET_NO_TIME,
    TOO_LATE,
    QuietHours,
    in_quiet_hours,
    notice_due,
    plan_session,
    rule_due,
)

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
P = (Audience.PARTICIPANT,)
BOTH = (Channel.EMAIL, Channel.SMS)

H72 = ReminderRule("72h", P, BOTH, "dosing_ahead", hours_before=72)
EVENING = ReminderRule("evening", P, BOTH, "dosing_evening", day_before_at=time(18))
H24 = ReminderRule("24h", P, (Channel.EMAIL,), "upcoming", hours_before=24)
CALL = ReminderRule("call", (Audience.DYAD,), (Channel.EMAIL,), "checkin_call", minutes_before=15)


def quiet(zone: ZoneInfo = NEW_YORK, start: time = time(21), end: time = time(8)) -> QuietHours:
    return QuietHours(zone, start, end)


def at(zone: ZoneInfo, y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=zone)


def test_hours_and_minutes_before_in_utc() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 9)
    assert rule_due(H72, start, NEW_YORK) == start - timedelta(hours=72)
    assert rule_due(H72, start, NEW_YORK).tzinfo is UTC
    assert rule_due(CALL, start, NEW_YORK) == start - timedelta(minutes=15)


def test_the_evening_before_is_local_wall_time_across_dst() -> None:
    # New York springs forward on Sun 14 Mar 2027: the session on Mon 15 Mar at 09:00 EDT,
    # the evening before (Sun 14 Mar 18:00) is EDT too; Sat 13 Mar 18:00 is EST
    for day, zone in ((15, NEW_YORK), (14, NEW_YORK), (29, BERLIN), (28, BERLIN)):
        start = at(zone, 2027, 3, day, 9)
        due = rule_due(EVENING, start, zone).astimezone(zone)
        assert (due.date(), due.time()) == (date(2027, 3, day - 1), time(18))
    # autumn: New York falls back on Sun 7 Nov 2027
    start = at(NEW_YORK, 2027, 11, 8, 9)
    assert rule_due(EVENING, start, NEW_YORK).astimezone(NEW_YORK).time() == time(18)


def test_a_day_before_time_in_the_spring_gap_resolves_forward() -> None:
    rule = ReminderRule("night", P, BOTH, "upcoming", day_before_at=time(2, 30))
    start = at(NEW_YORK, 2027, 3, 15, 9)  # the day before is 14 Mar: 02:30 does not exist
    due = rule_due(rule, start, NEW_YORK)
    assert due.astimezone(NEW_YORK).time() == time(3, 30)


def test_ahead_of_time_everything_is_pending() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 9)
    now = start - timedelta(days=20)
    planned = plan_session([H72, EVENING, CALL], start, quiet(), now)
    assert [(p.rule_key, p.for_participants, p.status) for p in planned] == [
        ("72h", True, "pending"),
        ("evening", True, "pending"),
        ("call", False, "pending"),
    ]


def test_a_participant_reminder_in_the_quiet_hours_waits_for_their_end() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 7)  # 7:00 - 24 h = 7:00 the day before: quiet
    (planned,) = plan_session([H24], start, quiet(), start - timedelta(days=5))
    assert planned.status == "pending"
    assert planned.due_at.astimezone(NEW_YORK) == at(NEW_YORK, 2027, 3, 28, 8)
    assert planned.nominal_due == start - timedelta(hours=24)


def test_quiet_hours_with_no_time_left_skip_it() -> None:
    rule = ReminderRule("2h", P, BOTH, "upcoming", hours_before=2)
    start = at(NEW_YORK, 2027, 3, 29, 7, 30)  # due 05:30, quiet until 08:00 > start
    (planned,) = plan_session([rule], start, quiet(), start - timedelta(days=5))
    assert (planned.status, planned.reason) == ("skipped", QUIET_NO_TIME)


def test_staff_reminders_ignore_the_quiet_hours() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 7)
    (planned,) = plan_session([CALL], start, quiet(), start - timedelta(days=1))
    assert planned.due_at == start - timedelta(minutes=15)
    assert planned.status == "pending"


def test_past_due_goes_now_when_comfortably_before_else_too_late() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 15)
    now = start - timedelta(hours=10)  # 05:00... in the quiet hours: goes at 08:00
    (planned,) = plan_session([H24], start, quiet(), now)
    assert planned.status == "pending"
    assert planned.due_at.astimezone(NEW_YORK) == at(NEW_YORK, 2027, 3, 29, 8)
    now = start - timedelta(hours=3)
    (planned,) = plan_session([H24], start, quiet(), now)
    assert (planned.status, planned.due_at) == ("pending", now)
    (planned,) = plan_session([H24], start, quiet(), start - timedelta(minutes=30))
    assert (planned.status, planned.reason) == ("skipped", TOO_LATE)


def test_of_several_past_due_only_the_latest_goes() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 9)
    now = at(NEW_YORK, 2027, 3, 28, 19)  # after both the 72 h and the evening-before times
    planned = {p.rule_key: p for p in plan_session([H72, EVENING], start, quiet(), now)}
    assert (planned["72h"].status, planned["72h"].reason) == ("skipped", COVERED)
    assert (planned["evening"].status, planned["evening"].due_at) == ("pending", now)


def test_a_moved_notice_waits_for_the_quiet_hours_or_is_skipped() -> None:
    start = at(NEW_YORK, 2027, 3, 29, 9)
    assert notice_due(start, at(NEW_YORK, 2027, 3, 27, 12), quiet())[1] == "pending"
    due, status, _ = notice_due(start, at(NEW_YORK, 2027, 3, 27, 23), quiet())
    assert (due.astimezone(NEW_YORK), status) == (at(NEW_YORK, 2027, 3, 28, 8), "pending")
    _, status, reason = notice_due(
        at(NEW_YORK, 2027, 3, 29, 7), at(NEW_YORK, 2027, 3, 28, 23), quiet()
    )
    assert (status, reason) == ("skipped", QUIET_NO_TIME)


# --- properties ----------------------------------------------------------------------------

ZONES = st.sampled_from([NEW_YORK, BERLIN])
# around the 2027 DST changes of both zones, and ordinary days
DAYS = st.sampled_from(
    [date(2027, 3, d) for d in range(12, 17)]
    + [date(2027, 3, d) for d in range(26, 31)]
    + [date(2027, 10, d) for d in range(29, 32)]
    + [date(2027, 11, d) for d in range(5, 10)]
    + [date(2027, 6, 15)]
)
RULES = st.lists(
    st.one_of(
        st.builds(
            lambda h, aud: ReminderRule(f"h{h}", aud, BOTH, "upcoming", hours_before=h),
            st.integers(1, 96),
            st.sampled_from([P, (Audience.DYAD,), (Audience.PARTICIPANT, Audience.COORDINATORS)]),
        ),
        st.builds(
            lambda m: ReminderRule(f"m{m}", P, BOTH, "upcoming", minutes_before=m),
            st.integers(0, 600),
        ),
        st.builds(
            lambda t: ReminderRule(f"d{t}", P, BOTH, "upcoming", day_before_at=t),
            st.times().map(lambda t: t.replace(second=0, microsecond=0)),
        ),
    ),
    max_size=4,
    unique_by=lambda r: r.key,
)
QUIET = st.sampled_from([(time(21), time(8)), (time(22), time(7)), (time(13), time(14))])


@settings(max_examples=300, deadline=None)
@given(
    zone=ZONES,
    day=DAYS,
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    rules=RULES,
    quiet_hours=QUIET,
    ahead=st.integers(-2 * 60, 6 * 24 * 60),
)
def test_properties(
    zone: ZoneInfo,
    day: date,
    hour: int,
    minute: int,
    rules: list[ReminderRule],
    quiet_hours: tuple[time, time],
    ahead: int,
) -> None:
    start = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
    now = start - timedelta(minutes=ahead)
    hours = QuietHours(zone, *quiet_hours)
    planned = plan_session(rules, start, hours, now)
    assert len(planned) == sum(
        (Audience.PARTICIPANT in r.audience) + any(a != Audience.PARTICIPANT for a in r.audience)
        for r in rules
    )
    for p in planned:
        assert p.nominal_due.tzinfo is not None and p.due_at.tzinfo is not None
        assert p.nominal_due <= start  # never after the session
        if p.status != "pending":
            assert p.reason
            continue
        assert now <= p.due_at or p.due_at == p.nominal_due
        assert p.due_at < start or (not p.for_participants and p.due_at <= start)
        assert p.due_at >= min(p.nominal_due, now) or p.due_at == p.nominal_due
        if p.for_participants:
            assert not in_quiet_hours(p.due_at, zone, *quiet_hours)
    late = [p for p in planned if p.for_participants and p.status == "pending" and p.due_at <= now]
    assert len(late) <= 1  # never two participant messages at once for late planning
