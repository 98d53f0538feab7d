"""Writes for scheduling: enrolment that books everything, rescheduling that re-solves, status
changes with reasons and deviations. Each is one transaction: on any error nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Model, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from protocol.models import ProtocolVersion
from protocol.selectors import ProtocolNotFound, protocol_spec, protocol_version_get
from protocol.spec import ProtocolSpec
from scheduling import selectors
from scheduling.models import (
    AccessLog,
    Course,
    Deviation,
    Dyad,
    Participant,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
)
from scheduling.planning import (
    PlannedCourse,
    PlannedSession,
    PlanningError,
    ResourceTaken,
    nearest_starts,
    opening_hours_problem,
    people_day,
    people_time,
    plan_course,
)
from scheduling.resources import Booking
from scheduling.validators import (
    REASON_MAX_LENGTH,
    STUDY_CODE,
    STUDY_CODE_MAX_LENGTH,
    plausible_date,
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
) -> EnrolmentPlan:
    """Check an enrolment and plan its course against the site's calendar and bookings, as
    ``participant_enrol`` would, storing nothing. Raises SchedulingError with field errors."""
    version, spec = _enrolment_checks(site, code, protocol_slug, start_date, dyad, partner_code)
    planned, chosen = _plan_with_some_dyad(site, spec, start_date, dyad)
    return EnrolmentPlan(version=version, dyad=chosen, planned=planned)


def _enrolment_checks(
    site: Site,
    code: str,
    protocol_slug: str,
    start_date: date,
    dyad: Dyad | None,
    partner_code: str | None,
) -> tuple[ProtocolVersion, ProtocolSpec]:
    _check_date("start_date", start_date)
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
        raise _fail("code", f"study code {', '.join(sorted(taken))} exists at {site.slug} already")
    if partner_code == code:
        raise _fail("partner", "the partner needs a study code of their own")
    return version, spec


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
) -> Course:
    """Create the participant (and partner, for couples), plan the whole course with the site's
    calendar and existing bookings, and store every session with its room and staff."""
    version, spec = _enrolment_checks(site, code, protocol_slug, start_date, dyad, partner_code)
    planned, chosen = _plan_with_some_dyad(site, spec, start_date, dyad)
    try:
        with transaction.atomic():  # another enrolment may take the code meanwhile
            partner = None
            if partner_code:
                partner = _save(
                    Participant(site=site, code=partner_code, status=Participant.Status.ENROLLED),
                    by,
                    "enrolment",
                )
            participant = _save(
                Participant(
                    site=site,
                    code=code,
                    status=Participant.Status.ENROLLED,
                    partner=partner,
                    **(contact or {}),
                ),
                by,
                "enrolment",
            )
    except IntegrityError as exc:
        raise _fail("code", f"study code {code} exists at {site.slug} already") from exc
    if partner is not None:
        partner.partner = participant
        _save(partner, by, "enrolment: partner linked")
    course = _save(
        Course(
            participant=participant,
            partner=partner,
            protocol_version=version,
            dyad=chosen,
            start_date=start_date,
        ),
        by,
        "enrolment",
    )
    _store_sessions(course, planned, by=by, reason="enrolment")
    return course


def _plan_with_some_dyad(
    site: Site, spec: ProtocolSpec, start: date, dyad: Dyad | None
) -> tuple[PlannedCourse, Dyad]:
    """Plan with the chosen dyad, or with the site's dyads in order of fewest active courses
    until one can take the whole course. A failure names the session and what is missing."""
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
    calendar = selectors.site_calendar(site, first=first.date(), last=last.date())
    rooms = selectors.site_rooms(site)
    assessors = selectors.site_assessor_ids(site)
    busy = selectors.resources_snapshot(
        site, dyads=candidates, begin=first, until=last, assessors=assessors
    )
    problems: list[tuple[str, str]] = []
    for candidate in candidates:
        resources = selectors.course_resources(site, candidate, busy, rooms, assessors)
        resources.party_size = 2 if spec.couples else 1
        try:
            return plan_course(spec, start, calendar, resources=resources), candidate
        except PlanningError as exc:
            problems.append((candidate.name, str(exc)))
    if len({message for _, message in problems}) == 1:  # the same for every dyad: say it once
        raise _fail("start_date", problems[0][1])
    raise SchedulingError({"start_date": [f"{name}: {message}" for name, message in problems]})


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
    sessions = list(ScheduledSession.objects.select_for_update().filter(course=course))
    session = next(s for s in sessions if s.pk == session.pk)
    site = course.participant.site
    _check_local_start(start, site)
    if not session.is_open:
        raise _fail("start", f"{session.key} is {session.status} and cannot be moved")
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
        if s.key not in held and (p.start != s.start or p.room != s.room_id):
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


@transaction.atomic
def session_set_status(
    *, session: ScheduledSession, status: str, by: User | None, reason: str = ""
) -> ScheduledSession:
    """Confirm, complete, cancel or mark missed. Cancelling and missing a session are protocol
    deviations: they need a reason and free the session's room and staff."""
    _check_reason(reason)
    session = ScheduledSession.objects.select_for_update().get(pk=session.pk)
    allowed = {choice for choice, _ in ScheduledSession.Status.choices} - {"planned"}
    if status not in allowed:
        raise _fail("status", f"'{status}' is not one of {', '.join(sorted(allowed))}")
    if session.status in TERMINAL:
        raise _fail("status", f"{session.key} is {session.status} already")
    happened = status in (ScheduledSession.Status.COMPLETED, ScheduledSession.Status.MISSED)
    if happened and session.start > timezone.now():
        raise _fail(
            "status",
            f"{session.key} starts {session.start:%Y-%m-%d %H:%M} UTC: it cannot be {status} yet",
        )
    needs_reason = status in (ScheduledSession.Status.CANCELLED, ScheduledSession.Status.MISSED)
    if needs_reason and not reason.strip():
        raise _fail("reason", f"marking a session {status} needs a reason")
    session.status = status
    session.sequence += 1
    _save(session, by, reason or status)
    if needs_reason:
        _release(session, reason, by)
        deviation = Deviation(session=session, kind=status, reason=reason.strip(), created_by=by)
        _save(deviation, by, reason)
    return session


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


# --- access audit --------------------------------------------------------------------------


def access_log_record(*, user: Any, participant: Participant, door: str, route: str) -> None:
    """Note that a staff member read a participant's record (who, when, which, through which
    door), for the compliance officer's review."""
    if not getattr(user, "is_authenticated", False):
        return
    AccessLog.objects.create(user_id=user.pk, participant=participant, door=door, route=route)
