"""Reminders, the pure part: rules + a session + the site's clock -> due times; quiet hours.

No ORM and no clock: callers pass ``now`` and plain values. Times are aware datetimes; local
reasoning happens in the site's zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo

from protocol.spec import STAFF_AUDIENCES, Audience, Channel, ReminderRule


def in_quiet_hours(moment: datetime, zone: tzinfo, start: time, end: time) -> bool:
    """Whether ``moment`` falls in the site's quiet hours [start, end) local time. The hours
    may run over midnight (21:00-08:00) or not (13:00-14:00); start == end means none."""
    if start == end:
        return False
    local = moment.astimezone(zone).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(moment: datetime, zone: tzinfo, start: time, end: time) -> datetime:
    """The first instant at or after ``moment`` outside the quiet hours (``moment`` itself if
    it is outside them), as an aware datetime in ``zone``."""
    if not in_quiet_hours(moment, zone, start, end):
        return moment
    local = moment.astimezone(zone)
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)  # evening: the quiet hours end tomorrow morning
    ends = datetime.combine(day, end, tzinfo=zone)
    # a zone's gap (DST) can make the wall time not exist: fold to a real instant
    return ends.astimezone(zone) if ends > moment else moment


# --- planning: rules + a session's start -> due times ---------------------------------------

#: a reminder whose time has passed when it is planned (a late enrolment, a move at short
#: notice) still goes at once if the session is at least this far off: an hour leaves time to
#: read it, arrange the ride and come; closer than that it only startles, and staff call
#: instead. Staff reminders (a check-in call) are useful up to the start itself.
COMFORT_BEFORE_START = timedelta(hours=1)

PENDING = "pending"
SKIPPED = "skipped"

QUIET_NO_TIME = "would fall in the quiet hours with no time left before the session"
TOO_LATE = "too late to remind"
COVERED = "a later reminder covers it"


@dataclass(frozen=True)
class QuietHours:
    zone: tzinfo
    start: time
    end: time


@dataclass(frozen=True)
class PlannedReminder:
    """One rule's reminder for one side (the participants, or the staff it names).

    ``nominal_due`` is the rule's own time (the idempotency key is built from it, so planning
    again gives the same key); ``due_at`` is when it goes: the quiet hours' end, or ``now`` for
    a time already past. ``status`` is "pending" or "skipped" (with ``reason``)."""

    rule_key: str
    message: str
    for_participants: bool
    audiences: tuple[Audience, ...]
    channels: tuple[Channel, ...]
    nominal_due: datetime
    due_at: datetime
    status: str
    reason: str = ""


def rule_due(rule: ReminderRule, start: datetime, zone: tzinfo) -> datetime:
    """The rule's time for a session starting at ``start`` (aware), in UTC.

    ``day_before_at`` is a wall time on the local day before the session's local date: built
    with zoneinfo so it stays 18:00 across a DST change. A wall time that does not exist (the
    spring gap) resolves forward (fold=0: 02:30 -> 03:30); an ambiguous one (the autumn
    repeat) takes the first occurrence, the earlier, safer one."""
    if rule.day_before_at is not None:
        day = start.astimezone(zone).date() - timedelta(days=1)
        local = datetime.combine(day, rule.day_before_at, tzinfo=zone)
        return local.astimezone(UTC)
    if rule.minutes_before is not None:
        return (start - timedelta(minutes=rule.minutes_before)).astimezone(UTC)
    return (start - timedelta(hours=rule.hours_before or 0)).astimezone(UTC)


def notice_due(start: datetime, now: datetime, quiet: QuietHours) -> tuple[datetime, str, str]:
    """When a participant's message that should go ``now`` (a moved notice) goes: (due,
    status, reason) - now, or the quiet hours' end if that is still before the start."""
    due = quiet_hours_end(now, quiet.zone, quiet.start, quiet.end).astimezone(UTC)
    if due >= start:
        return now.astimezone(UTC), SKIPPED, QUIET_NO_TIME
    return due, PENDING, ""


def plan_session(
    rules: Iterable[ReminderRule], start: datetime, quiet: QuietHours, now: datetime
) -> list[PlannedReminder]:
    """The reminders of one session starting at ``start``, as planned at ``now``.

    Participant messages never fall in the quiet hours (moved to their end while that is
    before the start, else skipped). A time already past goes at once while the session is
    comfortably ahead (COMFORT_BEFORE_START; staff: until the start), else it is skipped; of
    several participant reminders past due at once only the latest goes, so a participant
    enrolled late does not get two messages in the same minute."""
    start = start.astimezone(UTC)
    now = now.astimezone(UTC)
    planned: list[PlannedReminder] = []
    for rule in rules:
        nominal = rule_due(rule, start, quiet.zone)
        participant = tuple(a for a in rule.audience if a not in STAFF_AUDIENCES)
        staff = tuple(a for a in rule.audience if a in STAFF_AUDIENCES)
        if participant:
            planned.append(_participant_side(rule, participant, nominal, start, quiet, now))
        if staff:
            planned.append(_staff_side(rule, staff, nominal, start, now))
    return _latest_of_the_late(planned, now)


def _participant_side(
    rule: ReminderRule,
    audiences: tuple[Audience, ...],
    nominal: datetime,
    start: datetime,
    quiet: QuietHours,
    now: datetime,
) -> PlannedReminder:
    def made(due: datetime, status: str, reason: str = "") -> PlannedReminder:
        return PlannedReminder(
            rule.key, rule.message, True, audiences, rule.channels, nominal, due, status, reason
        )

    due = nominal
    if nominal >= start:  # "0 minutes before": nothing to remind of any more
        return made(start, SKIPPED, TOO_LATE)
    if due <= now:
        if start - now < COMFORT_BEFORE_START:
            return made(now, SKIPPED, TOO_LATE)
        due = now
    due = quiet_hours_end(due, quiet.zone, quiet.start, quiet.end).astimezone(UTC)
    if due >= start:
        return made(min(max(nominal, now), start), SKIPPED, QUIET_NO_TIME)
    return made(due, PENDING)


def _staff_side(
    rule: ReminderRule,
    audiences: tuple[Audience, ...],
    nominal: datetime,
    start: datetime,
    now: datetime,
) -> PlannedReminder:
    channels = tuple(c for c in rule.channels if c is Channel.EMAIL)  # staff: email only
    if nominal > now:
        return PlannedReminder(
            rule.key, rule.message, False, audiences, channels, nominal, nominal, PENDING
        )
    if now >= start:
        return PlannedReminder(
            rule.key, rule.message, False, audiences, channels, nominal, now, SKIPPED, TOO_LATE
        )
    return PlannedReminder(
        rule.key, rule.message, False, audiences, channels, nominal, now, PENDING
    )


def _latest_of_the_late(planned: list[PlannedReminder], now: datetime) -> list[PlannedReminder]:
    late = [
        p for p in planned if p.for_participants and p.status == PENDING and p.nominal_due <= now
    ]
    if len(late) < 2:
        return planned
    keep = max(late, key=lambda p: (p.nominal_due, p.rule_key))
    return [
        replace(p, status=SKIPPED, reason=COVERED) if p in late and p is not keep else p
        for p in planned
    ]
