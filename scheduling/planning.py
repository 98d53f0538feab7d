"""The course planner: a pure function from a protocol, a start date and a site calendar to a
planned course, with a reason for every date.

No database and no clock: the same inputs always give the same course, so the same code serves
previews, enrolment, what-if questions and benchmarks.

Rules, in the order they are applied to each session (anchors before dependents):

1. The anchor's planned local date (or the course start) plus the target offset gives the
   target day; the window is [anchor + earliest, anchor + latest]. Each session is planned from
   its own anchor's actual date, never by shifting the whole course.
2. The session goes on the first day at or after its target, inside its window, that is open
   (when clinic opening days apply to it), whose next-morning sessions would also fall on an
   open day (dosing), and where it does not overlap the participant's other sessions.
3. It starts at its preferred local wall-clock time on that day, whatever the UTC offset is
   (09:00 stays 09:00 across DST). A local time that does not exist (clocks go forward) moves
   forward by the gap; one that happens twice (clocks go back) takes the first occurrence. Both
   are written in the session's reason.
4. Its end is its start plus its duration in elapsed time, computed in UTC.
5. With ``resources`` (enrolment), the session must also get what it needs — a free room of
   the right kind (a dosing room from the start of dosing until the next-morning session ends),
   the dyad, one of its therapists or a remote assessor. When the preferred time is taken, it
   goes to the nearest free time inside the site's opening hours that day, then to later days
   inside its window; the error names the missing resource.
"""

from __future__ import annotations

import calendar as weekdays
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from dateutil import tz

from protocol.spec import THERAPY_KINDS, Kind, ProtocolSpec, SessionSpec
from scheduling.resources import NO_BOOKING, Booking, BusyIndex, Resources

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONDAY_TO_FRIDAY = frozenset(range(5))
#: when daily sessions may move to on a day the site has no opening hours
DAY_HOURS = (time(8), time(18))


@dataclass(frozen=True, slots=True)
class SiteCalendar:
    """Where and when a site works: its IANA zone, open weekdays (Monday is 0), closure dates."""

    timezone: str
    open_weekdays: frozenset[int] = MONDAY_TO_FRIDAY
    closures: frozenset[date] = frozenset()
    #: opening hours as (weekday, opens, closes); a weekday without an entry has no hours set
    hours: tuple[tuple[int, time, time], ...] = ()
    #: why a closure date is closed, in the clinic's words: a holiday's name, a closure reason
    closure_names: tuple[tuple[date, str], ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def hours_on(self, day: date) -> tuple[time, time] | None:
        for weekday, opens, closes in self.hours:
            if weekday == day.weekday():
                return opens, closes
        return None

    def closed_because(self, day: date) -> str | None:
        """Why the site is closed on ``day`` (a holiday's name, a closure's reason, or the
        weekday it does not open), or None when it is open."""
        if day in self.closures:
            # closure dates are few: a scan only on a closed day keeps the planner's loop fast
            named = [name for closed, name in self.closure_names if closed == day and name]
            return "; ".join(named) if named else "a closure date"
        if day.weekday() not in self.open_weekdays:
            return weekdays.day_name[day.weekday()]
        return None

    def next_open_day(self, after: date, *, within: int = 60) -> date | None:
        """The first open day after ``after`` (looking ``within`` days ahead)."""
        for n in range(1, within + 1):
            day = after + timedelta(days=n)
            if self.closed_because(day) is None:
                return day
        return None


@dataclass(frozen=True, slots=True)
class PlannedSession:
    key: str
    template_key: str
    occurrence: int
    kind: Kind
    title: str
    start: datetime
    end: datetime
    target: date
    window_start: date
    window_end: date
    anchor: str | None
    overnight: bool
    fixed: bool
    reason: str
    room: int | None = None
    #: a dosing room stays held until the next-morning session ends
    room_until: datetime | None = None
    staff: tuple[int, ...] = ()

    @property
    def in_window(self) -> bool:
        return self.window_start <= self.start.date() <= self.window_end


@dataclass(frozen=True)
class PlannedCourse:
    protocol_slug: str
    protocol_version: int
    timezone: str
    start_date: date
    sessions: tuple[PlannedSession, ...]
    _by_key: dict[str, PlannedSession] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._by_key.update((s.key, s) for s in self.sessions)

    def session(self, key: str) -> PlannedSession:
        return self._by_key[key]

    def therapy_span_days(self) -> int:
        days = [s.start.date() for s in self.sessions if s.kind in THERAPY_KINDS]
        return (max(days) - min(days)).days if days else 0

    def therapy_ends(self) -> date | None:
        """The local date of the last therapy session (preparation, dosing, integration)."""
        days = [s.start.date() for s in self.sessions if s.kind in THERAPY_KINDS]
        return max(days) if days else None

    def last_session(self) -> PlannedSession | None:
        """The session the course as a whole ends with (a follow-up, usually)."""
        return max(self.sessions, key=lambda s: s.start.astimezone(UTC), default=None)


class PlanningError(ValueError):
    """A course that cannot be planned; the message names the session, its window and why."""

    def __init__(self, message: str, *, session: str | None = None) -> None:
        super().__init__(message)
        self.session = session


class ResourceTaken(PlanningError):
    """A session fixed at a time when a room or a person it needs is already taken."""


def plan_course(
    spec: ProtocolSpec,
    start: date,
    calendar: SiteCalendar,
    fixed: Mapping[str, datetime] | None = None,
    resources: Resources | None = None,
    held: Mapping[str, Booking] | None = None,
    vacant: Collection[str] = (),
) -> PlannedCourse:
    """Plan every session of ``spec`` for a course starting on ``start``.

    ``fixed`` maps session keys (``phone-1.3`` for an occurrence) to aware start times that staff
    have already set; those are kept as they are (flagged if outside their window), and sessions
    anchored on them are planned from them.

    ``resources`` (rooms, the dyad, assessors and their existing bookings) makes the planner book
    as it plans: each session gets a room and staff, and times move to where they are free.
    The planner adds its own bookings to ``resources.own`` as it goes. ``held`` gives fixed
    sessions whose existing booking is kept as it is (rescheduling leaves them untouched);
    ``vacant`` names fixed sessions that no longer take the participant's time (cancelled,
    missed).
    """
    fixed = fixed or {}
    unknown = sorted(
        set(fixed) - {s.occurrence_key(i + 1) for s in spec.sessions for i in range(s.repeat_count)}
    )
    if unknown:
        raise PlanningError(f"{', '.join(unknown)}: not a session of this protocol")
    zone = calendar.zone
    not_before: dict[str, date] = {}
    first_error: PlanningError | None = None
    for _ in range(MAX_BACKTRACKS + 1):
        if resources is not None:
            resources.own = BusyIndex()
        planner = _Planner(
            spec, calendar, zone, fixed, resources, held or {}, frozenset(vacant), not_before
        )
        try:
            _place_all(planner, spec, start)
            break
        except PlanningError as exc:
            # A session with a one-day window (a check-in, the next morning) fails whatever
            # else moves, unless its anchor moves: try the anchor one day later, inside its
            # own window. If that does not work out, the first failure is the one to report.
            first_error = first_error or exc
            anchor = planner.rigid_anchor(exc.session)
            if anchor is None:
                raise first_error from None
            not_before[anchor] = planner.days[anchor] + timedelta(days=1)
    else:
        assert first_error is not None
        raise first_error
    kept = _close_overnight_holds(planner.placed, spec)
    sessions = tuple(sorted(kept, key=lambda s: (s.start.astimezone(UTC), s.key)))
    course = PlannedCourse(spec.slug, spec.version, calendar.timezone, start, sessions)
    span = course.therapy_span_days()
    if span > spec.span_max_weeks * 7:
        raise PlanningError(_too_long(course, span, spec.span_max_weeks))
    return course


def _too_long(course: PlannedCourse, span: int, max_weeks: int) -> str:
    days = [s.start.date() for s in course.sessions if s.kind in THERAPY_KINDS]
    message = (
        f"the therapy sessions would span {span / 7:.1f} weeks ({span} days, "
        f"{people_day(min(days))} to {people_day(max(days))}), more than the protocol's "
        f"maximum of {max_weeks} weeks: choose an earlier date"
    )
    if span > 2 * max_weeks * 7:  # years, not weeks: a typing mistake in the year
        message += " (check the year)"
    return message


#: how often a course may move an anchor later to make room for a one-day-window dependent
MAX_BACKTRACKS = 12


def _place_all(planner: _Planner, spec: ProtocolSpec, start: date) -> None:
    for template in spec.placement_order():
        anchor = template.timing.anchor
        anchor_day = start if anchor is None else planner.days[anchor]
        for occurrence in range(1, template.repeat_count + 1):
            placed = planner.place(template, occurrence, anchor_day)
            if occurrence == 1:
                planner.days[template.key] = placed.start.date()


class _Planner:
    """State for one course: what is placed so far and when the participant is busy."""

    def __init__(
        self,
        spec: ProtocolSpec,
        calendar: SiteCalendar,
        zone: ZoneInfo,
        fixed: Mapping[str, datetime],
        resources: Resources | None,
        held: Mapping[str, Booking],
        vacant: frozenset[str],
        not_before: Mapping[str, date],
    ) -> None:
        self.held = held
        self.vacant = vacant
        self.not_before = not_before
        #: the planned local date of each template's first occurrence
        self.days: dict[str, date] = {}
        self.spec = spec
        self.resources = resources
        self.rooms_by_key: dict[str, int | None] = {}
        self.ends_by_key: dict[str, datetime] = {}
        self.calendar = calendar
        self.zone = zone
        self.fixed = fixed
        self.placed: list[PlannedSession] = []
        # when the participant is taken (UTC), indexed by every local date touched, for overlaps
        self.busy: dict[date, list[tuple[datetime, datetime, str]]] = {}
        self.morning_after = _morning_dependents(spec)

    def place(self, template: SessionSpec, occurrence: int, anchor_day: date) -> PlannedSession:
        timing = template.timing
        shift = (occurrence - 1) * template.repeat_interval_days
        target = anchor_day + timedelta(days=timing.target_days + shift)
        window_start = anchor_day + timedelta(days=timing.earliest_days + shift)
        window_end = anchor_day + timedelta(days=timing.latest_days + shift)
        key = template.occurrence_key(occurrence)
        anchor_text = timing.anchor or "course start"
        origin = (
            f"the morning after {timing.anchor}"
            if timing.next_morning
            else f"target {_day(target)} ({anchor_text} {timing.target_days + shift:+d} days)"
        )
        window = (target, window_start, window_end)
        if key in self.fixed:
            start = self.fixed[key].astimezone(self.zone)
            where = "inside" if window_start <= start.date() <= window_end else "OUTSIDE"
            reason = f"fixed by staff; {origin}; {where} its window"
            clash = None if key in self.vacant else self._clash(*self._occupied(template, start))
            if clash is not None:
                raise PlanningError(
                    f"{key} at {people_time(start, self.zone)} would overlap the participant's "
                    f"{clash}",
                    session=key,
                )
            booking, missing = (
                (self.held[key], "") if key in self.held else self._book(template, start)
            )
            if booking is None:
                raise ResourceTaken(
                    f"{key} cannot be booked at {people_time(start, self.zone)}: {missing}",
                    session=key,
                )
            return self._keep(template, occurrence, key, start, window, reason, booking)
        skipped: list[str] = []
        tried: list[tuple[date, str]] = []
        day = target
        later = self.not_before.get(template.key)
        if later is not None and later > day:
            skipped.append(f"before {_day(later)}: a later session needs this one moved")
            day = later
        while day <= window_end:
            why_not = self._unsuitable(template, day)
            if why_not is None:
                found, why_not = self._find_time(template, day)
                if found is not None:
                    start, note, booking = found
                    if start.time() != template.start_time and note is None:
                        note = f"{template.start_time:%H:%M} was taken; nearest free time"
                    reason = _reason(origin, day == target, skipped, note)
                    return self._keep(template, occurrence, key, start, window, reason, booking)
            skipped.append(f"{_day(day)}: {why_not}")
            tried.append((day, why_not))
            day += timedelta(days=1)
        raise PlanningError(
            self._no_day(template, key, (window_start, window_end), later, tried), session=key
        )

    def _no_day(
        self,
        template: SessionSpec,
        key: str,
        window: tuple[date, date],
        later: date | None,
        tried: list[tuple[date, str]],
    ) -> str:
        """Why no day of a window works, in the clinic's words, with what to do next."""
        first, last = window
        anchor = template.timing.anchor
        if first == last:
            why = tried[0][1] if tried else "a later session needs it moved"
            closed = self.calendar.closed_because(first) if template.open_days_apply else None
            if anchor is None and closed:
                after = self.calendar.next_open_day(first)
                then = f": the next open day is {people_day(after)}" if after else ""
                return f"the course cannot start on a closed day ({closed}){then}"
            if anchor is None:
                return (
                    f"the course cannot start on {people_day(first)}: {why}; choose another "
                    "start date or another dyad"
                )
            when = (
                f"the morning after {anchor}"
                if template.timing.next_morning
                else f"{template.timing.target_days:+d} days from {anchor}"
            )
            return f"{key} must be on {people_day(first)} ({when}), but {why}"
        days = "; ".join(f"{people_day(day)}: {why}" for day, why in tried)
        if later is not None and not tried:
            days = "a later session needs it after its window"
        then = (
            f"move {anchor} or leave the window with a reason"
            if anchor
            else ("choose another start date")
        )
        return (
            f"{key} must fall between {people_day(first)} and {people_day(last)} (its window "
            f"from {anchor or 'the course start'}), and no day in it works ({days}): {then}"
        )

    def rigid_anchor(self, occurrence_key: str | None) -> str | None:
        """The anchor worth moving when ``occurrence_key`` failed: only for a session whose
        window is one day, and only an anchor that is planned here (not fixed)."""
        template = next(
            (
                t
                for t in self.spec.sessions
                for i in range(t.repeat_count)
                if t.occurrence_key(i + 1) == occurrence_key
            ),
            None,
        )
        if template is None or template.timing.anchor is None:
            return None
        if template.timing.earliest_days != template.timing.latest_days:
            return None
        anchor = self.spec.session(template.timing.anchor)
        keys = {anchor.occurrence_key(i + 1) for i in range(anchor.repeat_count)}
        if keys & set(self.fixed) or anchor.key not in self.days:
            return None
        return anchor.key

    def _unsuitable(self, template: SessionSpec, day: date) -> str | None:
        if template.open_days_apply:
            closed = self.calendar.closed_because(day)
            if closed:
                return f"the site is closed ({closed})"
        next_day = day + timedelta(days=1)
        for dependent in self.morning_after.get(template.key, ()):
            closed = self.calendar.closed_because(next_day) if dependent.open_days_apply else None
            if closed:
                return (
                    f"{dependent.key} would fall on {people_day(next_day)}, a closed day ({closed})"
                )
        return None

    def _find_time(
        self, template: SessionSpec, day: date
    ) -> tuple[tuple[datetime, str | None, Booking] | None, str]:
        """The first candidate time on ``day`` (preferred first, then nearest within opening
        hours) where the participant and every needed resource are free."""
        problem = ""
        for start, note in self._candidates(template, day):
            begin, until = self._occupied(template, start)
            clash = self._clash(begin, until)
            if clash is not None:
                problem = problem or f"the participant has {clash} then"
                continue
            booking, missing = self._book(template, start)
            if booking is not None:
                return (start, note, booking), ""
            problem = problem or missing
        return None, problem or "no time fits inside the opening hours"

    def _candidates(self, template: SessionSpec, day: date) -> list[tuple[datetime, str | None]]:
        if self.resources is None:
            return [local_start(day, template.start_time, self.zone)]
        return starts_within_hours(self.calendar, template, day, template.start_time)

    def _book(self, template: SessionSpec, start: datetime) -> tuple[Booking | None, str]:
        if self.resources is None:
            return NO_BOOKING, ""
        begin = start.astimezone(UTC)
        until = begin + timedelta(minutes=template.duration_minutes)
        hold_until = free_until = until
        next_day = start.date() + timedelta(days=1)
        for dependent in self.morning_after.get(template.key, ()):
            # the dosing room is held until the next-morning session, which must find its
            # staff free at some time that morning (preferred first, then the nearest)
            missing = ""
            for morning, _ in self._candidates(dependent, next_day):
                morning_begin = morning.astimezone(UTC)
                morning_until = morning_begin + timedelta(minutes=dependent.duration_minutes)
                staff, missing = self.resources.staff_for(
                    dependent.staffing, morning_begin, morning_until
                )
                if staff is not None:
                    hold_until = max(hold_until, morning_begin)
                    free_until = max(free_until, morning_until)
                    break
            else:
                return None, f"next morning: {missing}"
        inherited = overnight_from = None
        if template.timing.next_morning and template.timing.anchor is not None:
            inherited = self.rooms_by_key.get(template.timing.anchor)
            overnight_from = self.ends_by_key.get(template.timing.anchor)
        return self.resources.book(
            template,
            begin,
            until,
            hold_until=hold_until,
            free_until=free_until,
            inherited_room=inherited,
            overnight_from=overnight_from,
        )

    def _occupied(self, template: SessionSpec, start: datetime) -> tuple[datetime, datetime]:
        """When the participant is taken by this session, in UTC: aware datetimes that share a
        zone compare by wall clock (ignoring fold), which is wrong in a repeated hour."""
        begin = start.astimezone(UTC)
        until = begin + timedelta(minutes=template.duration_minutes)
        if template.overnight:
            # the participant stays at the site until the next morning: keep the evening free
            midnight = datetime.combine(start.date() + timedelta(days=1), time(0), self.zone)
            until = max(until, midnight.astimezone(UTC))
        return begin, until

    def _clash(self, begin: datetime, until: datetime) -> str | None:
        for day in _local_days(begin, until, self.zone):
            for busy_begin, busy_until, key in self.busy.get(day, ()):
                if busy_begin < until and begin < busy_until:
                    return key
        return None

    def _keep(
        self,
        template: SessionSpec,
        occurrence: int,
        key: str,
        start: datetime,
        window: tuple[date, date, date],
        reason: str,
        booking: Booking,
    ) -> PlannedSession:
        target, window_start, window_end = window
        end = _end(start, template, self.zone)
        session = PlannedSession(
            key=key,
            template_key=template.key,
            occurrence=occurrence,
            kind=template.kind,
            title=template.title,
            start=start,
            end=end,
            target=target,
            window_start=window_start,
            window_end=window_end,
            anchor=template.timing.anchor,
            overnight=template.overnight,
            fixed=key in self.fixed,
            reason=reason,
            room=booking.room,
            room_until=booking.room_until,
            staff=booking.staff,
        )
        if self.resources is not None:
            self.resources.hold(booking, start.astimezone(UTC), end.astimezone(UTC))
        self.rooms_by_key.setdefault(template.key, booking.room)
        self.ends_by_key.setdefault(template.key, end.astimezone(UTC))
        if key not in self.vacant:
            begin, until = self._occupied(template, start)
            for day in _local_days(begin, until, self.zone):
                self.busy.setdefault(day, []).append((begin, until, key))
        self.placed.append(session)
        return session


def nearest_starts(
    spec: ProtocolSpec,
    start: date,
    calendar: SiteCalendar,
    key: str,
    wanted: datetime,
    *,
    window: tuple[date, date],
    fixed: Mapping[str, datetime],
    resources: Resources | None = None,
    held: Mapping[str, Booking] | None = None,
    vacant: Collection[str] = (),
    limit: int = 3,
    budget: int = 48,
) -> list[datetime]:
    """The nearest starts for session ``key`` at which the whole course can be planned (the
    session itself, the sessions anchored on it, rooms, staff and the participant's time):
    on ``wanted``'s day first, then on the next open days up to the end of its window, inside
    the opening hours. At most ``limit`` of them and ``budget`` tries: this answers a refusal,
    so it stays quick."""
    template = next(t for t in spec.sessions if key.split(".")[0] == t.key)
    zone = calendar.zone
    local = wanted.astimezone(zone)
    first = max(local.date(), window[0])
    found: list[datetime] = []
    tries = 0
    for n in range((window[1] - first).days + 1):
        day = first + timedelta(days=n)
        if template.open_days_apply and calendar.closed_because(day):
            continue
        at = local.time() if day == local.date() else template.start_time
        # that day: the nearest time before and the nearest after; later days: one each
        sides = {True, False} if day == local.date() else {True}
        for candidate, _ in starts_within_hours(calendar, template, day, at):
            side = candidate > wanted or day != local.date()
            if candidate == wanted or side not in sides:
                continue
            if opening_hours_problem(calendar, template, candidate):
                continue
            tries += 1
            if tries > budget:
                return found
            try:
                plan_course(
                    spec,
                    start,
                    calendar,
                    fixed={**fixed, key: candidate},
                    resources=resources,
                    held=held,
                    vacant=vacant,
                )
            except PlanningError:
                continue
            found.append(candidate)
            sides.discard(side)
            if len(found) >= limit:
                return sorted(found)
            if not sides:
                break
    return sorted(found)


def session_hours(
    calendar: SiteCalendar, template: SessionSpec, day: date
) -> tuple[time, time] | None:
    """When ``template`` may take place on ``day``: the site's opening hours; daily sessions
    (phone check-ins) also on days without opening hours, in daytime. None: no hours are set."""
    return calendar.hours_on(day) or (None if template.open_days_apply else DAY_HOURS)


def starts_within_hours(
    calendar: SiteCalendar, template: SessionSpec, day: date, wanted: time
) -> list[tuple[datetime, str | None]]:
    """Every quarter-hour start on ``day`` at which ``template`` fits inside the opening
    hours, ``wanted`` first, then the nearest ones (earlier first on a tie)."""
    hours = session_hours(calendar, template, day)
    if hours is None:
        return [local_start(day, wanted, calendar.zone)]
    opens, closes = (t.hour * 60 + t.minute for t in hours)
    preferred = wanted.hour * 60 + wanted.minute
    latest = closes - template.duration_minutes
    minutes = sorted(range(opens, latest + 1, 15), key=lambda m: (abs(m - preferred), m))
    if opens <= preferred <= latest:
        minutes = [preferred, *(m for m in minutes if m != preferred)]
    return [local_start(day, time(m // 60, m % 60), calendar.zone) for m in minutes]


def opening_hours_problem(
    calendar: SiteCalendar, template: SessionSpec, start: datetime
) -> str | None:
    """Why a session of ``template`` may not start at ``start`` under the site's opening hours
    (a closed day, a holiday, or a time it does not fit between opening and closing), in the
    clinic's words with what to choose instead; None when it fits.

    The whole session must fit between opening and closing; for a dosing session that is its
    daytime part (its length), the overnight stay that follows is expected. Daily sessions
    (phone check-ins) are bound by the hours only, not by closed days, as in the planner."""
    zone = calendar.zone
    local = start.astimezone(zone)
    day = local.date()
    if template.open_days_apply:
        closed = calendar.closed_because(day)
        if closed:
            after = calendar.next_open_day(day)
            then = f": the next open day is {people_day(after)}" if after else ""
            return f"The site is closed on {people_day(day)} ({closed}){then}."
    hours = session_hours(calendar, template, day)
    if hours is None:
        return None
    opens, closes = hours
    end = _end(local, template, zone)
    length = _length(template)
    weekday = f"{weekdays.day_name[day.weekday()]}s"
    latest = datetime.combine(day, closes) - timedelta(minutes=template.duration_minutes)
    if calendar.hours_on(day) is None:  # a daily session on a day without opening hours
        if opens <= local.time() and end.date() == day and end.time() <= closes:
            return None
        return (
            f"The site has no opening hours on {weekday}: {length} then goes in daytime, "
            f"between {opens:%H:%M} and {closes:%H:%M} {local:%Z}. Choose a start between "
            f"{opens:%H:%M} and {latest:%H:%M} {local:%Z}."
        )
    if latest.date() != day or latest.time() < opens:
        return (
            f"The site is open {opens:%H:%M} to {closes:%H:%M} on {weekday}, too short for "
            f"{length}. Choose another day."
        )
    choose = (
        f"Choose a start between {opens:%H:%M} and {latest:%H:%M} {local:%Z}"
        if latest.time() > opens
        else f"Choose a start at {opens:%H:%M} {local:%Z}"
    )
    if local.time() < opens:
        return (
            f"The site opens at {opens:%H:%M} on {weekday}: {length} cannot start at "
            f"{local:%H:%M %Z}. {choose}, or another day."
        )
    if end.date() != day or end.time() > closes:
        return (
            f"The site closes at {closes:%H:%M} on {weekday}: {length} starting "
            f"{local:%H:%M} would end at {end:%H:%M %Z}. {choose}, or another day."
        )
    return None


def _length(template: SessionSpec) -> str:
    """ "an 8-hour dosing session", "a 90-minute preparatory session"."""
    minutes = template.duration_minutes
    size = f"{minutes // 60}-hour" if minutes % 60 == 0 else f"{minutes}-minute"
    kind = {"phone_checkin": "phone check-in", "follow_up": "follow-up", "other": ""}.get(
        template.kind.value, template.kind.value
    )
    article = "an" if size.startswith(("8", "11-", "18-")) else "a"
    return " ".join(part for part in (article, size, kind, "session") if part)


def tied_to(spec: ProtocolSpec, template_key: str) -> set[str]:
    """Template keys that only make sense with ``template_key``: anchored on it directly and on
    one fixed day after it, the session the next morning after an overnight stay and the daily
    phone check-ins. Cancelling or missing the anchor cancels them with it; rebooking it books
    them again; missed on their own they are not made up later. Every other dependent (later
    integrations, the next dosing) has a window of its own and stays planned until the anchor
    is rebooked, which re-plans it."""
    return {
        t.key
        for t in spec.sessions
        if t.timing.anchor == template_key
        and (t.timing.next_morning or t.timing.earliest_days == t.timing.latest_days)
    }


def people_day(day: date) -> str:
    """A date as people read it: "Mon 28 Dec 2026"."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def people_time(moment: datetime, zone: tzinfo | None = None) -> str:
    """A time as people read it, in the site's zone with the zone shown: "Mon 1 Mar 2027
    09:00 EST" (without ``zone``, in the zone ``moment`` carries)."""
    local = moment.astimezone(zone) if zone is not None else moment
    return f"{people_day(local.date())} {local:%H:%M %Z}"


def _close_overnight_holds(
    placed: list[PlannedSession], spec: ProtocolSpec
) -> list[PlannedSession]:
    """A dosing room is held until its next-morning session starts, wherever that landed."""
    by_key = {s.key: s for s in placed}
    for template in spec.sessions:
        if not template.timing.next_morning or template.timing.anchor is None:
            continue
        morning, anchor = by_key[template.key], by_key[template.timing.anchor]
        if anchor.room is not None and anchor.room == morning.room and anchor.room_until:
            by_key[anchor.key] = replace(anchor, room_until=morning.start.astimezone(UTC))
    return list(by_key.values())


def _morning_dependents(spec: ProtocolSpec) -> dict[str, tuple[SessionSpec, ...]]:
    dependents: dict[str, list[SessionSpec]] = {}
    for s in spec.sessions:
        if s.timing.next_morning and s.timing.anchor is not None:
            dependents.setdefault(s.timing.anchor, []).append(s)
    return {key: tuple(value) for key, value in dependents.items()}


def _end(start: datetime, template: SessionSpec, zone: ZoneInfo) -> datetime:
    # Aware arithmetic within one zone is wall-clock arithmetic in Python; a session's length
    # is elapsed time, so add it in UTC.
    return (start.astimezone(UTC) + timedelta(minutes=template.duration_minutes)).astimezone(zone)


def _local_days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def local_start(day: date, at: time, zone: ZoneInfo) -> tuple[datetime, str | None]:
    """The aware instant for local wall-clock ``at`` on ``day``, and a note when the wall-clock
    time does not exist or happens twice there (zoneinfo alone would resolve both silently)."""
    return _local_start(day, at, zone)


@lru_cache(maxsize=65536)
def _local_start(day: date, at: time, zone: ZoneInfo) -> tuple[datetime, str | None]:
    moment = datetime.combine(day, at, zone)
    if moment.utcoffset() == moment.replace(fold=1).utcoffset():
        return moment, None
    if not tz.datetime_exists(moment):
        moved = tz.resolve_imaginary(moment)
        return moved, (
            f"{at:%H:%M} does not exist on {day.isoformat()} in {zone.key} (clocks go forward), "
            f"so it starts at {moved:%H:%M}"
        )
    return moment.replace(fold=0), (
        f"{at:%H:%M} happens twice on {day.isoformat()} in {zone.key} (clocks go back); "
        f"the first, {moment.replace(fold=0):%H:%M %Z}, is used"
    )


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _day(day: date) -> str:
    return f"{WEEKDAY_NAMES[day.weekday()].capitalize()} {day.isoformat()}"


def _reason(origin: str, on_target: bool, skipped: list[str], note: str | None) -> str:
    parts = [origin]
    if on_target:
        parts.append("on target")
    else:
        parts.append("moved later: " + "; ".join(skipped))
    if note:
        parts.append(note)
    return "; ".join(parts)
