"""Writes for scheduling: enrolment that books everything, rescheduling that re-solves, status
changes with reasons and deviations. Each is one transaction: on any error nothing is stored."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Model, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from protocol.models import ProtocolVersion
from protocol.selectors import ProtocolNotFound, protocol_spec, protocol_version_get
from protocol.spec import ProtocolSpec
from scheduling import access, calendars, clock, selectors
from scheduling.models import (
    AccessLog,
    CalendarFeed,
    Course,
    Deviation,
    Dyad,
    Participant,
    RoomBooking,
    ScheduledSession,
    Site,
    SiteClosure,
    StaffBooking,
)
from scheduling.outbox import reminders_sync
from scheduling.planning import (
    PlannedCourse,
    PlannedSession,
    PlanningError,
    ResourceTaken,
    SiteCalendar,
    local_start,
    nearest_starts,
    opening_hours_problem,
    people_day,
    people_time,
    plan_course,
    tied_to,
)
from scheduling.publishing import calendar_pushes_plan
from scheduling.resources import Booking
from scheduling.validators import (
    REASON_MAX_LENGTH,
    STUDY_CODE,
    STUDY_CODE_MAX_LENGTH,
    plausible_date,
    reminder_contact_errors,
)

ModelT = TypeVar("ModelT", bound=Model)


class SchedulingError(ValueError):
    """Bad input: ``errors`` maps a field name to messages (an API answers 400 with them)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class BookingConflict(RuntimeError):
    """A room or a person is taken (an API answers 409)."""


def _fail(name: str, message: str) -> SchedulingError:
    return SchedulingError({name: [message]})


# The input rules of scheduling.validators, checked here too: commands, the API and any other
# caller reach the services without a form, and each must get the same answer as the pages.


def _check_date(name: str, day: date) -> None:
    try:
        plausible_date(day)
    except ValidationError as exc:
        raise _fail(name, f"{day.isoformat()}: {' '.join(exc.messages)}") from exc


def _code_taken(code: str, site: Site) -> str:
    return (
        f"Study code {code} is already used at {site.name}: give the new participant another "
        "code, or open the existing participant from the participants list."
    )


def _check_code(name: str, code: str) -> None:
    if len(code) > STUDY_CODE_MAX_LENGTH:
        raise _fail(name, f"A study code has at most {STUDY_CODE_MAX_LENGTH} characters.")
    try:
        STUDY_CODE(code)
    except ValidationError as exc:
        raise _fail(name, " ".join(exc.messages)) from exc


def _check_reason(reason: str) -> None:
    if len(reason) > REASON_MAX_LENGTH:
        raise _fail(
            "reason",
            f"Shorten the reason to at most {REASON_MAX_LENGTH} characters (it has {len(reason)}).",
        )
    if "\x00" in reason:  # PostgreSQL cannot store it: a pasted control character
        raise _fail("reason", "The reason holds a control character; type it again.")


def _save(instance: ModelT, by: User | None, reason: str) -> ModelT:
    """Save with who and why in the audit history (requests authenticated by token, tasks and
    commands have no user on the request that the history middleware could read)."""
    instance._history_user = by  # type: ignore[attr-defined]
    setattr(instance, "_change_reason", reason)  # noqa: B010
    instance.save()
    return instance


# --- enrolment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolmentPlan:
    """What an enrolment would store: the course as planned with the chosen dyad."""

    version: ProtocolVersion
    dyad: Dyad
    planned: PlannedCourse

    @property
    def notes(self) -> list[tuple[PlannedSession, str]]:
        """Sessions worth a look before confirming: off their target day, or on the last day
        of a window that has slack (a later problem would push them out of it)."""
        found = []
        zone = ZoneInfo(self.planned.timezone)
        for s in self.planned.sessions:
            day = s.start.astimezone(zone).date()
            if day != s.target:
                shift = (day - s.target).days
                found.append(
                    (
                        s,
                        f"{abs(shift)} day{'s' * (abs(shift) != 1)} "
                        f"{'after' if shift > 0 else 'before'} its target day",
                    )
                )
            elif s.window_start < s.window_end and day == s.window_end:
                found.append((s, "on the last day of its window"))
        return found


def enrolment_preview(
    *,
    site: Site,
    code: str,
    protocol_slug: str,
    start_date: date,
    dyad: Dyad | None = None,
    partner_code: str | None = None,
    back_entry_reason: str = "",
    suggest_starts: bool = False,
) -> EnrolmentPlan:
    """Check an enrolment and plan its course against the site's calendar and bookings, as
    ``participant_enrol`` would, storing nothing. Raises SchedulingError with field errors."""
    version, spec = _enrolment_checks(
        site, code, protocol_slug, start_date, dyad, partner_code, back_entry_reason
    )
    planned, chosen = _plan_with_some_dyad(site, spec, start_date, dyad, suggest=suggest_starts)
    return EnrolmentPlan(version=version, dyad=chosen, planned=planned)


def _enrolment_checks(
    site: Site,
    code: str,
    protocol_slug: str,
    start_date: date,
    dyad: Dyad | None,
    partner_code: str | None,
    back_entry_reason: str = "",
) -> tuple[ProtocolVersion, ProtocolSpec]:
    _check_date("start_date", start_date)
    _check_back_entry(site, start_date, back_entry_reason)
    _check_code("code", code)
    if partner_code:
        _check_code("partner", partner_code)
    try:
        version = protocol_version_get(slug=protocol_slug)
    except ProtocolNotFound as exc:
        raise _fail("protocol", str(exc)) from exc
    spec = protocol_spec(version)
    if spec.couples and not partner_code:
        raise _fail("partner", f"{spec.slug} is a couples protocol: give the partner's code")
    if not spec.couples and partner_code:
        raise _fail("partner", f"{spec.slug} is not a couples protocol")
    if dyad is not None and (dyad.site_id != site.pk or not dyad.active):
        raise _fail("dyad", "this dyad does not work at the site or is inactive")
    codes = [code, *([partner_code] if partner_code else [])]
    taken = set(
        Participant.objects.filter(site=site, code__in=codes).values_list("code", flat=True)
    )
    if taken:
        raise _fail("code", _code_taken(", ".join(sorted(taken)), site))
    if partner_code == code:
        raise _fail("partner", "the partner needs a study code of their own")
    return version, spec


def _check_back_entry(site: Site, start_date: date, reason: str) -> None:
    """A course that started before today (the site's local date) is a back-entry: recorded
    only on purpose, with the reason why it is entered late."""
    _check_reason(reason)
    if not _before_today(site, start_date) or reason.strip():
        return
    today = _site_today(site)
    raise _fail(
        "start_date",
        f"{start_date:%a} {start_date.day} {start_date:%b %Y} is in the past at {site.name} "
        f"(today is {today:%a} {today.day} {today:%b %Y}, {site.timezone}): choose a start "
        "from today on, or enter the course as a back-entry with the reason it is entered "
        "late (the reason is recorded).",
    )


def _site_today(site: Site) -> date:
    return timezone.now().astimezone(ZoneInfo(site.timezone)).date()


def _before_today(site: Site, day: date) -> bool:
    return day < _site_today(site)


def _enrolment_reason(site: Site, start_date: date, back_entry_reason: str) -> str:
    """The audit history's reason for what an enrolment writes."""
    reason = back_entry_reason.strip()
    if reason and _before_today(site, start_date):
        return f"enrolment (back-entry: {reason})"
    return "enrolment"


@transaction.atomic
def participant_enrol(
    *,
    site: Site,
    code: str,
    protocol_slug: str,
    start_date: date,
    by: User | None,
    dyad: Dyad | None = None,
    partner_code: str | None = None,
    contact: dict[str, Any] | None = None,
    back_entry_reason: str = "",
    suggest_starts: bool = False,
) -> Course:
    """Create the participant (and partner, for couples), plan the whole course with the site's
    calendar and existing bookings, and store every session with its room and staff.

    A start before the site's today needs ``back_entry_reason``: it goes into the audit
    history of everything written ("enrolment (back-entry: ...)")."""
    version, spec = _enrolment_checks(
        site, code, protocol_slug, start_date, dyad, partner_code, back_entry_reason
    )
    contact = contact or {}
    problems = reminder_contact_errors(
        contact.get("preferred_channel", ""), contact.get("email", ""), contact.get("phone", "")
    )
    if problems:
        raise SchedulingError({name: [message] for name, message in problems.items()})
    planned, chosen = _plan_with_some_dyad(site, spec, start_date, dyad, suggest=suggest_starts)
    why = _enrolment_reason(site, start_date, back_entry_reason)
    try:
        with transaction.atomic():  # another enrolment may take the code meanwhile
            partner = None
            if partner_code:
                partner = _save(
                    Participant(site=site, code=partner_code, status=Participant.Status.ENROLLED),
                    by,
                    why,
                )
            participant = _save(
                Participant(
                    site=site,
                    code=code,
                    status=Participant.Status.ENROLLED,
                    partner=partner,
                    **contact,
                ),
                by,
                why,
            )
    except IntegrityError as exc:
        raise _fail("code", _code_taken(code, site)) from exc
    if partner is not None:
        partner.partner = participant
        _save(partner, by, f"{why}: partner linked")
    course = _save(
        Course(
            participant=participant,
            partner=partner,
            protocol_version=version,
            dyad=chosen,
            start_date=start_date,
        ),
        by,
        why,
    )
    sessions = _store_sessions(course, planned, by=by, reason=why)
    reminders_sync(sessions=sessions, new=True)
    calendar_pushes_plan(sessions=sessions)
    return course


#: how far past a refused start date the nearest start dates that work are looked for
SUGGEST_DAYS = 14
#: how many of them a refusal names
SUGGEST_COUNT = 3


def _plan_with_some_dyad(
    site: Site, spec: ProtocolSpec, start: date, dyad: Dyad | None, *, suggest: bool = False
) -> tuple[PlannedCourse, Dyad]:
    """Plan with the chosen dyad, or with the site's dyads in order of fewest active courses
    until one can take the whole course. A failure names the session and what is missing and,
    with ``suggest``, the nearest later start dates (within SUGGEST_DAYS) that would work."""
    if dyad is not None:
        candidates = [dyad]
    else:
        candidates = list(
            Dyad.objects.filter(site=site, active=True)
            .select_related("therapist_a", "therapist_b")
            .annotate(load=Count("courses", filter=Q(courses__status=Course.Status.ACTIVE)))
            .order_by("load", "name", "pk")
        )
        if not candidates:
            raise _fail("dyad", f"{site.slug} has no active therapist dyad")
    first, last = selectors.planning_horizon(start, spec)
    reach = last + timedelta(days=SUGGEST_DAYS if suggest else 0)
    calendar = selectors.site_calendar(site, first=first.date(), last=reach.date())
    rooms = selectors.site_rooms(site)
    assessors = selectors.site_assessor_ids(site)
    busy = selectors.resources_snapshot(
        site, dyads=candidates, begin=first, until=reach, assessors=assessors
    )

    def attempt(day: date) -> tuple[PlannedCourse, Dyad] | list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for candidate in candidates:
            resources = selectors.course_resources(site, candidate, busy, rooms, assessors)
            resources.party_size = 2 if spec.couples else 1
            try:
                return plan_course(spec, day, calendar, resources=resources), candidate
            except PlanningError as exc:
                problems.append((candidate.name, str(exc)))
        return problems

    tried = attempt(start)
    if isinstance(tried, tuple):
        return tried
    hint = _nearest_course_starts(start, calendar, attempt) if suggest else ""
    if len({message for _, message in tried}) == 1:  # the same for every dyad: say it once
        said = tried[0][1]
        if hint and not said.endswith("."):
            said += "."  # the refusal and the dates that work are two sentences
        raise _fail("start_date", said + hint)
    messages = [f"{name}: {message}" for name, message in tried]
    if hint:
        messages.append(hint.strip())
    raise SchedulingError({"start_date": messages})


def _nearest_course_starts(
    start: date,
    calendar: SiteCalendar,
    attempt: Callable[[date], tuple[PlannedCourse, Dyad] | list[tuple[str, str]]],
) -> str:
    """ " Nearest start dates that work: ..." for a refusal: the next open days after ``start``
    on which some dyad can take the whole course, as the same planner books it."""
    found: list[str] = []
    for offset in range(1, SUGGEST_DAYS + 1):
        day = start + timedelta(days=offset)
        if calendar.closed_because(day) is not None:
            continue
        tried = attempt(day)
        if isinstance(tried, tuple):
            found.append(f"{people_day(day)} (with {tried[1].name})")
            if len(found) == SUGGEST_COUNT:
                break
    if not found:
        return (
            f" No start in the {SUGGEST_DAYS} days after it works either: choose a later "
            "date, or add a dyad or a room."
        )
    return f" Nearest start dates that work: {', '.join(found)}."


def _store_sessions(
    course: Course, planned: PlannedCourse, *, by: User | None, reason: str
) -> list[ScheduledSession]:
    rows = [
        ScheduledSession(
            course=course,
            key=p.key,
            template_key=p.template_key,
            anchor_key=p.anchor or "",
            kind=p.kind.value,
            title=p.title,
            start=p.start,
            end=p.end,
            window_start=p.window_start,
            window_end=p.window_end,
            overnight=p.overnight,
            room_id=p.room,
            plan_reason=p.reason,
        )
        for p in planned.sessions
    ]
    sessions = bulk_create_with_history(
        rows, ScheduledSession, default_user=by, default_change_reason=reason
    )
    if any(s.pk is None for s in sessions):  # backends without RETURNING
        sessions = list(ScheduledSession.objects.filter(course=course))
    sessions = list(sessions)
    by_key = {s.key: s for s in sessions}
    _store_bookings(
        [(by_key[p.key], Booking(p.room, p.room_until, p.staff), p) for p in planned.sessions],
        by=by,
        reason=reason,
    )
    return sessions


def _store_bookings(
    items: list[tuple[ScheduledSession, Booking, Any]],
    *,
    by: User | None,
    reason: str,
) -> None:
    rooms: list[RoomBooking] = []
    staff: list[StaffBooking] = []
    for session, booking, _ in items:
        if booking.room is not None and booking.room_until is not None:
            rooms.append(
                RoomBooking(
                    session=session,
                    room_id=booking.room,
                    begin=session.start,
                    until=booking.room_until,
                )
            )
        staff.extend(
            StaffBooking(session=session, user_id=person, begin=session.start, until=session.end)
            for person in booking.staff
        )
    try:
        with transaction.atomic():  # a savepoint, so a conflict leaves a usable transaction
            bulk_create_with_history(
                rooms, RoomBooking, default_user=by, default_change_reason=reason
            )
            bulk_create_with_history(
                staff, StaffBooking, default_user=by, default_change_reason=reason
            )
    except IntegrityError as exc:
        if "no_overlap" in str(exc):
            raise BookingConflict(
                "a room or a person was booked by someone else meanwhile; try again"
            ) from exc
        raise


# --- rescheduling --------------------------------------------------------------------------


@dataclass
class Move:
    session: ScheduledSession
    old_start: datetime
    new_start: datetime
    new_end: datetime
    room: int | None
    reason: str
    old_room: int | None = None
    #: the people booked before and after the move (user ids)
    old_staff: tuple[int, ...] = ()
    staff: tuple[int, ...] = ()

    @property
    def staff_added(self) -> tuple[int, ...]:
        return tuple(p for p in self.staff if p not in self.old_staff)

    @property
    def staff_removed(self) -> tuple[int, ...]:
        return tuple(p for p in self.old_staff if p not in self.staff)


@dataclass
class RescheduleResult:
    moved: list[Move] = field(default_factory=list)
    deviations: list[Deviation] = field(default_factory=list)
    applied: bool = False


def dependents_of(spec: ProtocolSpec, template_key: str) -> set[str]:
    """Template keys anchored, directly or through others, on ``template_key``."""
    found: set[str] = set()
    frontier = {template_key}
    while frontier:
        frontier = {
            s.key for s in spec.sessions if s.timing.anchor in frontier and s.key not in found
        }
        found |= frontier
    return found


@transaction.atomic
def session_reschedule(
    *,
    session: ScheduledSession,
    start: datetime,
    by: User | None,
    reason: str = "",
    dry_run: bool = False,
    outside_hours: bool = False,
) -> RescheduleResult:
    """Move ``session`` to ``start`` and re-plan every session anchored on it from its own
    anchor, re-checking windows and resources. Returns what moves; applies it unless dry_run.

    The site's opening hours bind the move as they bind the planner: a closed day, a holiday
    or a time the session does not fit in is refused with that reason (checked first, so the
    refusal names the real rule), unless the site allows moves outside its hours and the move
    says so (``outside_hours``) with a reason: that is recorded as a deviation. Leaving the
    window needs a reason and records a deviation. Sessions that are completed, cancelled or
    missed never move. A refusal names the nearest times that would work.
    """
    if start.tzinfo is None:
        raise _fail("start", "give the time with its UTC offset, e.g. 2027-03-01T09:00:00-05:00")
    _check_reason(reason)
    course = (
        Course.objects.select_for_update(of=("self",))
        .select_related(
            "protocol_version__protocol",
            "participant__site",
            "dyad__therapist_a",
            "dyad__therapist_b",
        )
        .get(pk=session.course_id)
    )
    sessions = list(
        ScheduledSession.objects.select_for_update().filter(course=course, superseded=False)
    )
    session = next((s for s in sessions if s.pk == session.pk), session)
    site = course.participant.site
    _check_local_start(start, site)
    if not session.is_open:
        raise _fail("start", f"{session.key} is {session.status} and cannot be moved")
    now = timezone.now()
    if start < now:
        zone = ZoneInfo(site.timezone)
        raise _fail(
            "start",
            f"{people_time(start, zone)} has passed (it is now {people_time(now, zone)}): "
            "choose a time from now on (if it took place, mark it completed instead).",
        )
    spec = protocol_spec(course.protocol_version)
    replan = dependents_of(spec, session.template_key) | {session.template_key}
    fixed: dict[str, datetime] = {}
    held: dict[str, Booking] = {}
    bookings = _current_bookings(sessions)
    for s in sessions:
        if s.pk == session.pk:
            fixed[s.key] = start
        elif s.template_key not in replan or not s.is_open:
            fixed[s.key] = s.start
            held[s.key] = bookings.get(s.pk, Booking())
    first, last = selectors.planning_horizon(course.start_date, spec)
    # a move with a reason may leave the windows: its dependents can then reach further
    last = max(last, start + (last - first))
    first = min(first, start - timedelta(days=2))
    calendar = selectors.site_calendar(site, first=first.date(), last=last.date())
    hours_problem = opening_hours_problem(calendar, spec.session(session.template_key), start)
    dyads = [course.dyad] if course.dyad else []
    assessors = selectors.site_assessor_ids(site)
    busy = selectors.resources_snapshot(
        site, dyads=dyads, begin=first, until=last, assessors=assessors, exclude_course=course
    )
    resources = None
    if course.dyad is not None:
        resources = selectors.course_resources(
            site, course.dyad, busy, selectors.site_rooms(site), assessors
        )
        resources.party_size = 2 if spec.couples else 1
    vacant = {s.key for s in sessions if not s.is_open}

    def nearest() -> str:
        """What to do next: the nearest times that would work, in the site's zone."""
        found = nearest_starts(
            spec,
            course.start_date,
            calendar,
            session.key,
            start,
            window=(session.window_start, session.window_end),
            fixed=fixed,
            resources=resources,
            held=held,
            vacant=vacant,
        )
        if not found:
            return (
                f" No other time inside its window ({people_day(session.window_start)} to "
                f"{people_day(session.window_end)}) works: choose a day outside it, with a "
                "reason."
            )
        times = ", ".join(people_time(moment, calendar.zone) for moment in found)
        return f" Nearest times that work: {times}."

    if hours_problem and not outside_hours:
        raise _fail("start", hours_problem + nearest())
    if hours_problem and not site.allow_out_of_hours_moves:
        raise _fail(
            "outside_hours",
            f"{site.name} does not allow moves outside its opening hours ({hours_problem}) "
            "An administrator can allow them in the site's settings; or choose a time inside "
            "the hours.",
        )
    if hours_problem and not reason.strip():
        raise _fail(
            "reason",
            "A move outside the opening hours needs a reason (it is recorded as a protocol "
            "deviation).",
        )
    try:
        planned = plan_course(
            spec,
            course.start_date,
            calendar,
            fixed=fixed,
            resources=resources,
            held=held,
            vacant=vacant,
        )
    except ResourceTaken as exc:
        raise BookingConflict(f"{exc}.{nearest()}") from exc
    except PlanningError as exc:
        raise _fail(
            "start",
            f"{session.key} cannot move to {people_time(start, calendar.zone)}: {exc}.{nearest()}",
        ) from exc
    moved_to = planned.session(session.key)
    result = RescheduleResult()
    if not moved_to.in_window and not reason.strip():
        raise _fail(
            "reason",
            f"{session.key} must stay within {people_day(moved_to.window_start)} to "
            f"{people_day(moved_to.window_end)}; moving it outside needs a reason "
            "(it is recorded as a protocol deviation)",
        )
    for s in sorted(sessions, key=lambda s: (s.start, s.key)):
        p = planned.session(s.key)
        # a rebooked session holds nothing yet: it is booked even where its time stays
        unbooked = bool(p.staff) and not bookings[s.pk].staff
        if s.key not in held and (p.start != s.start or p.room != s.room_id or unbooked):
            before = bookings.get(s.pk, Booking())
            result.moved.append(
                Move(
                    s,
                    s.start,
                    p.start,
                    p.end,
                    p.room,
                    p.reason,
                    old_room=s.room_id,
                    old_staff=before.staff,
                    staff=p.staff,
                )
            )
    deviations = []
    if not moved_to.in_window:
        deviations.append(_window_deviation(session, moved_to, reason, by))
    if hours_problem:
        deviations.append(_hours_deviation(session, moved_to, hours_problem, reason, by))
    if dry_run:
        result.deviations.extend(deviations)  # what applying would record, unsaved
        return result
    why = reason or "rescheduled"
    # free every moving session's bookings before rebooking any: a cascade moves sessions into
    # each other's old times (the dyad's integration is where the next dosing goes)
    for move in result.moved:
        _release(move.session, why, by)
    moving = {move.session.pk for move in result.moved}
    _update_overnight_holds([s for s in sessions if s.pk not in moving], planned, by, why)
    for move in result.moved:
        _apply_move(move, planned, by=by, reason=why)
    for deviation in deviations:
        result.deviations.append(_save(deviation, by, reason))
    reminders_sync(sessions=[move.session for move in result.moved])
    calendar_pushes_plan(sessions=[move.session for move in result.moved])
    result.applied = True
    return result


def _check_local_start(start: datetime, site: Site) -> None:
    """The year check on the date the site's staff see: 2100-12-31 23:30 in New York is
    already 2101 in UTC, and a far date given with an offset overflows on conversion."""
    try:
        local = start.astimezone(ZoneInfo(site.timezone))
    except OverflowError:
        local = start  # beyond what a datetime holds in the site's zone: implausible anyway
    _check_date("start", local.date())


def _window_deviation(
    session: ScheduledSession, moved_to: PlannedSession, reason: str, by: User | None
) -> Deviation:
    return Deviation(
        session=session,
        kind=Deviation.Kind.OUTSIDE_WINDOW,
        reason=reason.strip(),
        detail=(
            f"moved to {people_time(moved_to.start)}; window "
            f"{people_day(moved_to.window_start)} to {people_day(moved_to.window_end)}"
        ),
        created_by=by,
    )


def _hours_deviation(
    session: ScheduledSession,
    moved_to: PlannedSession,
    problem: str,
    reason: str,
    by: User | None,
) -> Deviation:
    return Deviation(
        session=session,
        kind=Deviation.Kind.OUTSIDE_HOURS,
        reason=reason.strip(),
        detail=f"moved to {people_time(moved_to.start)}: {problem}",
        created_by=by,
    )


def _update_overnight_holds(
    staying: list[ScheduledSession], planned: PlannedCourse, by: User | None, reason: str
) -> None:
    """Sessions that stay where they are may still hold their dosing room until a different
    time: the next-morning session moved."""
    for session in staying:
        until = planned.session(session.key).room_until
        if not session.overnight or until is None:
            continue
        for booking in RoomBooking.objects.filter(session=session, active=True).exclude(
            until=until
        ):
            booking.until = until
            try:
                with transaction.atomic():
                    _save(booking, by, reason)
            except IntegrityError as exc:
                raise BookingConflict(
                    f"{session.key}: the dosing room is taken until the next-morning session"
                ) from exc


def _current_bookings(sessions: list[ScheduledSession]) -> dict[int, Booking]:
    ids = [s.pk for s in sessions]
    rooms = {b.session_id: b for b in RoomBooking.objects.filter(session__in=ids, active=True)}
    staff: dict[int, list[int]] = {}
    for b in StaffBooking.objects.filter(session__in=ids, active=True).order_by("pk"):
        staff.setdefault(b.session_id, []).append(b.user_id)
    result = {}
    for s in sessions:
        room = rooms.get(s.pk)
        result[s.pk] = Booking(
            room=s.room_id,
            room_until=room.until if room else None,
            staff=tuple(staff.get(s.pk, ())),
        )
    return result


def _apply_move(move: Move, planned: PlannedCourse, *, by: User | None, reason: str) -> None:
    session = move.session
    plan = planned.session(session.key)
    session.start, session.end = plan.start, plan.end
    session.window_start, session.window_end = plan.window_start, plan.window_end
    session.room_id = plan.room
    session.plan_reason = plan.reason
    session.sequence += 1
    _save(session, by, reason)
    _store_bookings(
        [(session, Booking(plan.room, plan.room_until, plan.staff), plan)], by=by, reason=reason
    )


def _release(session: ScheduledSession, reason: str, by: User | None) -> None:
    """Free a session's room and staff; the bookings stay, inactive, with their history."""
    held: list[RoomBooking | StaffBooking] = [
        *RoomBooking.objects.filter(session=session, active=True),
        *StaffBooking.objects.filter(session=session, active=True),
    ]
    for booking in held:
        booking.active = False
        _save(booking, by, reason)


# --- status --------------------------------------------------------------------------------

TERMINAL = {
    ScheduledSession.Status.COMPLETED,
    ScheduledSession.Status.CANCELLED,
    ScheduledSession.Status.MISSED,
}
#: statuses that close a session without it having happened (a reason and a deviation)
CLOSED_UNHELD = (ScheduledSession.Status.CANCELLED, ScheduledSession.Status.MISSED)


class Outcome(StrEnum):
    CANCELLED_WITH = "cancelled_with"
    AWAITS_REBOOKING = "awaits_rebooking"

    @property
    def label(self) -> str:
        if self is Outcome.CANCELLED_WITH:
            return "cancelled with it"
        return "stays planned; re-planned when it is rebooked"


@dataclass(frozen=True)
class Consequence:
    """What a status change does to a session anchored on the changed one."""

    session: ScheduledSession
    outcome: Outcome
    why: str


@dataclass
class StatusChange:
    session: ScheduledSession
    status: str
    consequences: list[Consequence] = field(default_factory=list)
    #: the course's status after the change, when the change closes the course
    course_status: str | None = None
    applied: bool = False


def _local_time(moment: datetime, site: Site) -> str:
    """A time as people at the site read it: "Mon 1 Mar 2027 09:00 EST"."""
    return clock.local_text(moment, site)


def _consequences(
    spec: ProtocolSpec, session: ScheduledSession, sessions: list[ScheduledSession]
) -> list[Consequence]:
    """The open sessions anchored (directly or not) on ``session`` and what closing it does to
    each of them."""
    dependents = dependents_of(spec, session.template_key)
    tied = tied_to(spec, session.template_key)
    found = []
    for s in sorted(sessions, key=lambda s: (s.start, s.key)):
        if s.pk == session.pk or not s.is_open or s.template_key not in dependents:
            continue
        if s.template_key in tied:
            when = (
                "the morning after it"
                if spec.session(s.template_key).timing.next_morning
                else ("on a fixed day after it")
            )
            found.append(
                Consequence(
                    s, Outcome.CANCELLED_WITH, f"it happens only with {session.key}, {when}"
                )
            )
        else:
            found.append(
                Consequence(
                    s,
                    Outcome.AWAITS_REBOOKING,
                    f"it has a window of its own: it stays planned and is re-planned from "
                    f"{session.key} when {session.key} is rebooked",
                )
            )
    return found


@transaction.atomic
def session_change_status(
    *,
    session: ScheduledSession,
    status: str,
    by: User | None,
    reason: str = "",
    dry_run: bool = False,
) -> StatusChange:
    """Confirm, complete, cancel or mark missed. Cancelling and missing a session are protocol
    deviations: they need a reason and free the session's room and staff. The sessions that only
    make sense with it (``tied_to``) are cancelled with it, the same way; the other sessions
    anchored on it stay planned until it is rebooked. A dry run says all this and stores nothing.
    A change that leaves nothing open in a course that the protocol still needs completes the
    course, and the participant with it."""
    _check_reason(reason)
    allowed = {choice for choice, _ in ScheduledSession.Status.choices} - {"planned"}
    if status not in allowed:
        raise _fail("status", f"'{status}' is not one of {', '.join(sorted(allowed))}")
    course = (
        Course.objects.select_for_update(of=("self",))
        .select_related("protocol_version", "participant__site", "partner")
        .get(pk=session.course_id)
    )
    sessions = list(
        ScheduledSession.objects.select_for_update().filter(course=course, superseded=False)
    )
    for s in sessions:
        s.course = course  # one course object: its site is read once
    current = next((s for s in sessions if s.pk == session.pk), None)
    if current is None:  # a cancelled session that was rebooked since
        raise _fail("status", f"{session.key} was rebooked: change the session that replaces it")
    session = current
    site = course.participant.site
    if session.status in TERMINAL:
        raise _fail("status", f"{session.key} is {session.status} already")
    happened = status in (ScheduledSession.Status.COMPLETED, ScheduledSession.Status.MISSED)
    if happened and session.start > timezone.now():
        raise _fail(
            "status",
            f"{session.key} starts {_local_time(session.start, site)}: it cannot be {status} "
            "yet. Cancel it instead, or wait until it has started.",
        )
    needs_reason = status in CLOSED_UNHELD
    if needs_reason and not reason.strip():
        raise _fail("reason", f"marking a session {status} needs a reason")
    spec = protocol_spec(course.protocol_version)
    change = StatusChange(session=session, status=status)
    if needs_reason:
        change.consequences = _consequences(spec, session, sessions)
    if dry_run:
        return change
    session.status = status
    session.sequence += 1
    _save(session, by, reason or status)
    if needs_reason:
        _release(session, reason, by)
        _save(
            Deviation(
                session=session,
                kind=status,
                reason=reason.strip(),
                detail=_cascade_detail(change.consequences),
                created_by=by,
            ),
            by,
            reason,
        )
    for consequence in change.consequences:
        if consequence.outcome is Outcome.CANCELLED_WITH:
            _close_with(consequence.session, session, reason.strip(), by)
    if status == ScheduledSession.Status.COMPLETED:
        _participants_in_treatment(course, by)
    change.course_status = _course_settle(course, sessions, spec, by)
    reminders_sync(sessions=[session, *(c.session for c in change.consequences)])
    calendar_pushes_plan(sessions=[session, *(c.session for c in change.consequences)])
    change.applied = True
    return change


def session_set_status(
    *, session: ScheduledSession, status: str, by: User | None, reason: str = ""
) -> ScheduledSession:
    """``session_change_status`` applied: the session as it is now."""
    return session_change_status(session=session, status=status, by=by, reason=reason).session


def _cascade_detail(consequences: list[Consequence]) -> str:
    cancelled = [c.session.key for c in consequences if c.outcome is Outcome.CANCELLED_WITH]
    waiting = [c.session.key for c in consequences if c.outcome is Outcome.AWAITS_REBOOKING]
    parts = []
    if cancelled:
        parts.append(f"cancelled with it: {', '.join(cancelled)}")
    if waiting:
        parts.append(f"left planned until it is rebooked: {', '.join(waiting)}")
    return "; ".join(parts)


def _close_with(
    dependent: ScheduledSession, anchor: ScheduledSession, reason: str, by: User | None
) -> None:
    why = f"cancelled with {anchor.key} ({anchor.status}): {reason}"
    dependent.status = ScheduledSession.Status.CANCELLED
    dependent.sequence += 1
    _save(dependent, by, why)
    _release(dependent, why, by)
    _save(
        Deviation(
            session=dependent,
            kind=Deviation.Kind.CANCELLED,
            reason=reason,
            detail=f"cancelled with {anchor.key}, which was {anchor.status}",
            created_by=by,
        ),
        by,
        why,
    )


def still_needed(spec: ProtocolSpec, session: ScheduledSession) -> bool:
    """Whether the protocol still needs a cancelled or missed session (so it is to be rebooked):
    every one but those that only made sense with their anchor (a missed phone check-in is not
    made up later; the next morning after a cancelled dosing goes with it)."""
    if session.status not in CLOSED_UNHELD or session.superseded:
        return False
    return not (session.anchor_key and session.template_key in tied_to(spec, session.anchor_key))


def _course_settle(
    course: Course, sessions: list[ScheduledSession], spec: ProtocolSpec, by: User | None
) -> str | None:
    """Complete an active course whose sessions are all done (completed, or cancelled or missed
    with nothing the protocol still needs), and its participants with it."""
    if course.status != Course.Status.ACTIVE:
        return None
    if any(s.is_open or still_needed(spec, s) for s in sessions):
        return None
    course.status = Course.Status.COMPLETED
    _save(course, by, "every session of the course is done")
    _participants_follow(course, by, "course completed")
    return course.status


def _course_people(course: Course) -> list[Participant]:
    return [p for p in (course.participant, course.partner) if p is not None]


def _participants_in_treatment(course: Course, by: User | None) -> None:
    for person in _course_people(course):
        if person.status == Participant.Status.ENROLLED:
            person.status = Participant.Status.IN_TREATMENT
            _save(person, by, "first session completed")


def _participants_follow(course: Course, by: User | None, reason: str) -> None:
    """A participant with no active course left is completed (withdrawal sets its own)."""
    for person in _course_people(course):
        if person.status in (Participant.Status.COMPLETED, Participant.Status.WITHDRAWN):
            continue
        active = Course.objects.filter(
            Q(participant=person) | Q(partner=person), status=Course.Status.ACTIVE
        )
        if not active.exists():
            person.status = Participant.Status.COMPLETED
            _save(person, by, reason)


# --- ending a course early, withdrawing a participant --------------------------------------


@dataclass
class Ending:
    """What ending courses does: each course's new status and every open session it cancels."""

    courses: list[Course]
    status: str
    cancelled: list[ScheduledSession] = field(default_factory=list)
    participants: list[Participant] = field(default_factory=list)
    applied: bool = False


@transaction.atomic
def participant_withdraw(
    *, participant: Participant, by: User | None, reason: str, dry_run: bool = False
) -> Ending:
    """Withdraw a participant: every active course they take (a couple's joint course ends for
    both partners) is withdrawn and everything still planned in it is cancelled, freeing its
    rooms and staff, each with the reason, as a deviation."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    courses = Course.objects.filter(Q(participant=participant) | Q(partner=participant))
    if participant.status == Participant.Status.WITHDRAWN:
        raise _fail("reason", f"{participant.code} is withdrawn already")
    return _end_courses(
        list(courses.filter(status=Course.Status.ACTIVE).values_list("pk", flat=True)),
        status=Course.Status.WITHDRAWN,
        people=[participant],
        by=by,
        reason=reason,
        dry_run=dry_run,
    )


@transaction.atomic
def course_end(*, course: Course, by: User | None, reason: str, dry_run: bool = False) -> Ending:
    """End a course early: everything still planned in it is cancelled (rooms and staff freed,
    each with the reason, as a deviation), and its participants are completed when they have
    no other active course."""
    if course.status != Course.Status.ACTIVE:
        raise _fail("reason", f"this course is {course.get_status_display()} already")
    return _end_courses(
        [course.pk], status=Course.Status.ENDED, people=[], by=by, reason=reason, dry_run=dry_run
    )


def _end_courses(
    course_ids: list[int],
    *,
    status: str,
    people: list[Participant],
    by: User | None,
    reason: str,
    dry_run: bool,
) -> Ending:
    _check_reason(reason)
    if not reason.strip():
        raise _fail("reason", "give a reason: it is recorded with every session it cancels")
    courses = list(
        Course.objects.select_for_update(of=("self",))
        .select_related("participant", "partner")
        .filter(pk__in=course_ids, status=Course.Status.ACTIVE)
        .order_by("pk")
    )
    open_sessions = list(
        ScheduledSession.objects.select_for_update()
        .filter(course__in=courses, superseded=False, status__in=["planned", "confirmed"])
        .order_by("start", "key")
    )
    withdrawing = status == Course.Status.WITHDRAWN
    touched = {p.pk: p for c in courses for p in _course_people(c)} if withdrawing else {}
    touched.update({p.pk: p for p in people})
    ending = Ending(
        courses=courses,
        status=status,
        cancelled=open_sessions,
        participants=list(touched.values()),
    )
    if dry_run:
        return ending
    why = reason.strip()
    label = "participant withdrawn" if withdrawing else "course ended early"
    for session in open_sessions:
        session.status = ScheduledSession.Status.CANCELLED
        session.sequence += 1
        _save(session, by, f"{label}: {why}")
        _release(session, f"{label}: {why}", by)
        _save(
            Deviation(
                session=session,
                kind=Deviation.Kind.CANCELLED,
                reason=why,
                detail=label,
                created_by=by,
            ),
            by,
            why,
        )
    for course in courses:
        course.status = status
        _save(course, by, f"{label}: {why}")
    for person in ending.participants:
        person.status = Participant.Status.WITHDRAWN
        _save(person, by, f"{label}: {why}")
    if not withdrawing:
        for course in courses:
            _participants_follow(course, by, f"{label}: {why}")
    reminders_sync(sessions=open_sessions)
    calendar_pushes_plan(sessions=open_sessions)
    ending.applied = True
    return ending


# --- rebooking -----------------------------------------------------------------------------


@dataclass
class RebookResult:
    """A rebooking: the new sessions (the rebooked one first, then those booked again with
    it), each with the cancelled one it replaces, and the planned sessions re-planned from it.
    In a dry run the new sessions have no id."""

    session: ScheduledSession
    rebooked: list[Move] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)
    deviations: list[Deviation] = field(default_factory=list)
    applied: bool = False


class _DryRun(Exception):
    """Not an error: carries a preview (a rebooking, a closure's re-planning) out of the
    savepoint it rolls back."""

    def __init__(self, result: Any) -> None:
        super().__init__("dry run")
        self.result = result


@transaction.atomic
def session_rebook(
    *,
    session: ScheduledSession,
    start: datetime,
    by: User | None,
    reason: str = "",
    dry_run: bool = False,
    outside_hours: bool = False,
) -> RebookResult:
    """Give a cancelled or missed session a new date. The cancelled session stays as it is
    (its calendar event stays cancelled); a new session with the same key and a new calendar
    identity takes its place (``replaces``), and so do the sessions cancelled with it
    (``tied_to``: the next morning, the phone check-ins). Then ``session_reschedule`` places it
    at ``start`` and re-plans everything anchored on it, as a move would: windows and resources
    checked, leaving the window needs a reason, and so does leaving the opening hours where
    the site allows it (``outside_hours``). A dry run says what would happen, stores
    nothing."""
    if start.tzinfo is None:
        raise _fail("start", "give the time with its UTC offset, e.g. 2027-03-01T09:00:00-05:00")
    _check_reason(reason)
    course = (
        Course.objects.select_for_update(of=("self",))
        .select_related("protocol_version", "participant__site")
        .get(pk=session.course_id)
    )
    if course.status != Course.Status.ACTIVE:
        raise _fail(
            "start", f"the course is {course.get_status_display()}: its sessions are not rebooked"
        )
    sessions = list(
        ScheduledSession.objects.select_for_update().filter(course=course, superseded=False)
    )
    old = next((s for s in sessions if s.pk == session.pk), None)
    if old is None:
        raise _fail(
            "start", f"{session.key} was rebooked already: open the session that replaces it"
        )
    if old.status not in CLOSED_UNHELD:
        raise _fail(
            "start",
            f"{old.key} is {old.status}: only a cancelled or missed session is rebooked "
            "(reschedule a planned one)",
        )
    spec = protocol_spec(course.protocol_version)
    tied = tied_to(spec, old.template_key)
    along = [s for s in sessions if s.template_key in tied and s.status in CLOSED_UNHELD]
    why = f"rebooked: {reason.strip()}" if reason.strip() else "rebooked"
    try:
        with transaction.atomic():
            replacements = {}
            for closed in [old, *along]:
                closed.superseded = True
                _save(closed, by, why)
                replacements[closed.pk] = _save(_replacement(closed), by, why)
            moves = session_reschedule(
                session=replacements[old.pk],
                start=start,
                by=by,
                reason=reason,
                dry_run=dry_run,
                outside_hours=outside_hours,
            )
            new_ids = {s.pk for s in replacements.values()}
            result = RebookResult(
                session=replacements[old.pk],
                rebooked=sorted(
                    (m for m in moves.moved if m.session.pk in new_ids),
                    key=lambda m: (m.session.pk != replacements[old.pk].pk, m.new_start),
                ),
                moved=[m for m in moves.moved if m.session.pk not in new_ids],
                deviations=moves.deviations,
                applied=moves.applied,
            )
            if dry_run:
                raise _DryRun(result)
            reminders_sync(sessions=[*replacements.values(), old, *along])
            calendar_pushes_plan(sessions=[*replacements.values(), old, *along])
    except _DryRun as undone:
        result = undone.result
        result.session.pk = result.session.id = None
        for move in result.rebooked:
            move.session.pk = move.session.id = None  # undone: these rows do not exist
        for deviation in result.deviations:
            deviation.session = old
    return result


def _replacement(closed: ScheduledSession) -> ScheduledSession:
    """A new, planned session for the protocol session that ``closed`` was; placed and booked
    by the reschedule that follows (its time until then: the old one)."""
    return ScheduledSession(
        course_id=closed.course_id,
        key=closed.key,
        template_key=closed.template_key,
        anchor_key=closed.anchor_key,
        kind=closed.kind,
        title=closed.title,
        start=closed.start,
        end=closed.end,
        window_start=closed.window_start,
        window_end=closed.window_end,
        overnight=closed.overnight,
        status=ScheduledSession.Status.PLANNED,
        plan_reason=f"rebooked in place of the {closed.status} session",
        replaces=closed,
    )


# --- site closures -------------------------------------------------------------------------


@dataclass
class ClosureItem:
    """One session a closure conflicts with, and what re-planning does with it: ``moved`` is
    the session that moves (itself, or the dosing session a next-morning session belongs to),
    ``new_start`` where to (None: it could not be re-planned, ``problem`` says why), ``with_it``
    how many other sessions are re-planned with it."""

    session: ScheduledSession
    moved: ScheduledSession | None = None
    new_start: datetime | None = None
    with_it: int = 0
    problem: str = ""
    #: already moved by an earlier item (the next morning moves with its dosing session)
    moved_along: str = ""


@dataclass
class ClosureReplan:
    closure: SiteClosure
    items: list[ClosureItem] = field(default_factory=list)
    applied: bool = False

    @property
    def replanned(self) -> list[ClosureItem]:
        return [i for i in self.items if i.new_start is not None or i.moved_along]

    @property
    def refused(self) -> list[ClosureItem]:
        return [i for i in self.items if i.new_start is None and not i.moved_along]


def closure_replan(*, closure: SiteClosure, by: User | None, dry_run: bool) -> ClosureReplan:
    """Re-plan every open session a closure date conflicts with to the nearest valid time in
    its window (each through ``session_reschedule``, which re-plans its dependents and checks
    rooms and staff), all in one transaction. A next-morning session moves with its dosing
    session. ``dry_run`` does exactly the same and rolls it back: the preview is what applying
    does, unless the bookings change meanwhile."""
    try:
        with transaction.atomic():
            result = _replan_conflicts(closure, by)
            if dry_run:
                raise _DryRun(result)
    except _DryRun as preview:
        previewed: ClosureReplan = preview.result
        return previewed
    result.applied = True
    return result


def _replan_conflicts(closure: SiteClosure, by: User | None) -> ClosureReplan:
    site = closure.site
    zone = ZoneInfo(site.timezone)
    result = ClosureReplan(closure=closure)
    why = f"re-planned: {site.name} is closed on {closure.date.isoformat()}"
    if closure.reason:
        why += f" ({closure.reason})"
    conflicts = selectors.closure_conflicts(closure, None)
    moved_by: dict[int, str] = {}
    for session in conflicts:
        item = ClosureItem(session=session)
        result.items.append(item)
        if session.pk in moved_by:
            item.moved_along = moved_by[session.pk]
            continue
        target = _session_to_move(session)
        item.moved = target
        found = _nearest_valid_move(target, closure, zone, by, why)
        if isinstance(found, str):
            item.problem = found
            continue
        item.new_start, moves = found
        item.with_it = len([m for m in moves if m.session.pk != target.pk])
        for move in moves:
            moved_by.setdefault(move.session.pk, target.key)
    return result


def _session_to_move(session: ScheduledSession) -> ScheduledSession:
    """The session itself, or for a next-morning session its (open) dosing session: the
    morning after is fixed to the night before, so the night moves and takes it along."""
    spec = protocol_spec(session.course.protocol_version)
    timing = spec.session(session.template_key).timing
    if not timing.next_morning or timing.anchor is None:
        return session
    anchor = (
        ScheduledSession.objects.filter(
            course=session.course_id, template_key=timing.anchor, status__in=OPEN
        )
        .select_related("course__protocol_version__protocol")
        .order_by("start")
        .first()
    )
    return anchor or session


OPEN = (ScheduledSession.Status.PLANNED, ScheduledSession.Status.CONFIRMED)


def _day_text(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _nearest_valid_move(
    target: ScheduledSession, closure: SiteClosure, zone: ZoneInfo, by: User | None, why: str
) -> tuple[datetime, list[Move]] | str:
    """Move ``target`` to the nearest day of its window that works (the same local time, else
    the protocol's start time), nearest first and later before earlier on a tie; or say why no
    day works."""
    target.refresh_from_db()
    spec = protocol_spec(target.course.protocol_version)
    template = spec.session(target.template_key)
    local = target.start.astimezone(zone)
    first, last = target.window_start, target.window_end
    calendar = selectors.site_calendar(closure.site, first=first, last=last + timedelta(days=1))
    today = timezone.now().astimezone(zone).date()

    def closed(day: date) -> bool:
        shut = template.open_days_apply and calendar.closed_because(day) is not None
        night = target.overnight and calendar.closed_because(day + timedelta(days=1)) is not None
        return shut or night or day == closure.date

    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    candidates = sorted(
        (d for d in days if d > today and not closed(d)),
        key=lambda d: (abs((d - local.date()).days), d < local.date()),
    )
    window = f"{_day_text(first)} to {_day_text(last)}"
    if not candidates:
        return f"its window ({window}) has no other day the site is open"
    times = [local.time().replace(tzinfo=None)]
    if template.start_time != times[0]:
        times.append(template.start_time)
    problem = ""
    for day in candidates:
        for at in times:
            start, _ = local_start(day, at, zone)
            try:
                moved = session_reschedule(session=target, start=start, by=by, reason=why)
            except SchedulingError as exc:
                problem = " ".join(m for messages in exc.errors.values() for m in messages)
            except BookingConflict as exc:
                problem = str(exc)
            else:
                return start, moved.moved
    return f"no day in its window ({window}) works; the nearest: {problem}"


# --- night attendants ----------------------------------------------------------------------


@transaction.atomic
def night_attendant_book(*, session: ScheduledSession, attendant: User, by: User | None) -> None:
    """Book a night attendant on an overnight session, from its start until the dosing room is
    released the next morning: the nights they work are what the access policy shows them."""
    session = ScheduledSession.objects.select_for_update().get(pk=session.pk)
    if not session.overnight or not session.is_open:
        raise _fail("session", f"{session.key} is not an open overnight session")
    role = getattr(getattr(attendant, "staff_profile", None), "role", None)
    site_id = session.course.participant.site_id
    if role != "night_attendant" or not attendant.staff_profile.sites.filter(pk=site_id).exists():
        raise _fail("attendant", "choose a night attendant who works at this site")
    hold = RoomBooking.objects.filter(session=session, active=True).first()
    until = hold.until if hold is not None else session.end
    booking = StaffBooking(session=session, user=attendant, begin=session.start, until=until)
    try:
        with transaction.atomic():
            _save(booking, by, "night attendant booked")
    except IntegrityError as exc:
        raise BookingConflict(f"{attendant.get_username()} is booked elsewhere that night") from exc
    reminders_sync(sessions=[session])
    calendar_pushes_plan(sessions=[session])


# --- access audit --------------------------------------------------------------------------


def access_log_record(*, user: Any, participant: Participant, door: str, route: str) -> None:
    """Note that a staff member read a participant's record (who, when, which, through which
    door), for the compliance officer's review."""
    if not getattr(user, "is_authenticated", False):
        return
    AccessLog.objects.create(user_id=user.pk, participant=participant, door=door, route=route)


# --- calendar feeds ----------------------------------------------------------------------------

#: a feed's name: the calendar's name in the subscriber's calendar app
FEED_NAME_MAX_LENGTH = 100


def feed_token_hash(token: str) -> str:
    """What a feed stores of its token: SHA-256 (a random 256-bit token needs no salt or slow
    hash; the lookup by hash is an index lookup, not a comparison that leaks timing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def feed_create(
    *,
    owner: User,
    scope: str,
    target: int | None,
    name: str,
    for_participant: bool = False,
) -> tuple[CalendarFeed, str]:
    """A live calendar feed of ``scope`` (``target``'s sessions) for ``owner``, and its secret
    token, which is never stored (only its hash) and so can be shown only now.

    The owner must see the target now (another site's is refused like a missing one). A
    participant's own feed (``for_participant``) is issued by someone who may change that
    participant's record (a coordinator), who then gives it to the participant."""
    name = " ".join(name.split())
    if not name:
        raise _fail("name", "Give the feed a name: it is the calendar's name in the calendar app.")
    if len(name) > FEED_NAME_MAX_LENGTH:
        raise _fail("name", f"Shorten the name to at most {FEED_NAME_MAX_LENGTH} characters.")
    try:
        kind = calendars.Scope(scope)
    except ValueError as exc:
        raise _fail("calendar", "Choose which calendar the feed shows.") from exc
    target = None if kind == calendars.Scope.MINE else target
    if not access.allows(owner, access.Action.ADD, CalendarFeed):
        raise _fail("calendar", "Your account cannot subscribe to calendars.")
    try:
        if for_participant:
            if kind != calendars.Scope.PARTICIPANT:
                raise _fail("calendar", "A participant's own feed shows a participant's course.")
            access.get(Participant.objects.all(), owner, access.Action.CHANGE, pk=target)
        calendars.calendar_sessions(owner, kind, target)  # the owner may see it: else a 404
    except ObjectDoesNotExist as exc:
        raise _fail(
            "calendar", "That calendar is not one you may see: choose one from the list."
        ) from exc
    token = secrets.token_urlsafe(32)
    feed = CalendarFeed.objects.create(
        owner=owner,
        scope=kind.value,
        target=target,
        name=name,
        for_participant=for_participant,
        token_hash=feed_token_hash(token),
    )
    return feed, token


def feed_revoke(*, feed: CalendarFeed, by: User) -> CalendarFeed:
    """Stop a feed for good: its address answers 404 from now on (a new feed gets a new
    address). Its owner, or a coordinator or administrator of the owner's sites, may."""
    with transaction.atomic():
        locked = access.get(
            CalendarFeed.objects.select_for_update(of=("self",)),
            by,
            access.Action.CHANGE,
            pk=feed.pk,
        )
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    return locked
