"""Reads for scheduling, and the one access helper: every fetch of a site's objects goes through
``scoped`` so that another site's objects do not exist for the user (a 404, lists included)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import holidays as public_holidays
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import (
    DateField,
    Exists,
    ExpressionWrapper,
    F,
    Model,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate

from protocol.selectors import protocol_spec
from protocol.spec import ProtocolSpec, latest_offset
from scheduling import access, clock, exports, site_grid
from scheduling.clock import display_name, dyad_label
from scheduling.messages import STAFF_WHAT
from scheduling.models import (
    CalendarFeed,
    CheckInOutcome,
    Course,
    Deviation,
    Dyad,
    OpeningHours,
    Participant,
    Reminder,
    Room,
    RoomBooking,
    ScheduledSession,
    Site,
    SiteClosure,
    StaffBooking,
    StaffProfile,
    Unavailability,
)
from scheduling.planning import SiteCalendar, tied_to
from scheduling.resources import BusyIndex, Resources, RoomSpec

M = TypeVar("M", bound=Model)

AnyUser = access.AnyUser
user_site_ids = access.user_site_ids


def scoped(queryset: QuerySet[M], user: AnyUser) -> QuerySet[M]:
    """``queryset`` limited to what ``user`` may see (scheduling.access decides)."""
    return access.scope(queryset, user, access.Action.VIEW)


def staff_users_scoped(user: AnyUser) -> QuerySet[StaffProfile]:
    profiles = StaffProfile.objects.select_related("user").prefetch_related("sites")
    return access.scope(profiles, user)


def site_calendar(site: Site, *, first: date, last: date) -> SiteCalendar:
    """The site's zone, open weekdays (those with opening hours), hours, closures and public
    holidays between ``first`` and ``last``."""
    hours = list(OpeningHours.objects.filter(site=site))
    names: dict[date, str] = dict(
        SiteClosure.objects.filter(site=site, date__range=(first, last)).values_list(
            "date", "reason"
        )
    )
    if site.country:
        years = range(first.year, last.year + 1)
        found = public_holidays.country_holidays(
            site.country, subdiv=site.subdivision or None, years=years
        )
        for day, name in found.items():
            if first <= day <= last:  # a closure's own reason first, then the holiday's name
                names[day] = "; ".join(n for n in (names.get(day), name) if n)
    return SiteCalendar(
        timezone=site.timezone,
        open_weekdays=frozenset(h.weekday for h in hours) if hours else frozenset(range(5)),
        closures=frozenset(names),
        hours=tuple((h.weekday, h.opens, h.closes) for h in hours),
        closure_names=tuple(sorted((day, name) for day, name in names.items() if name)),
    )


def closed_days(site: Site, first: date, last: date) -> dict[date, str]:
    """Why the site is closed on each of its closed days in [first, last], in the clinic's
    words: its closure's reason, the public holiday's name, or the weekday it does not open."""
    weekdays = set(OpeningHours.objects.filter(site=site).values_list("weekday", flat=True))
    open_weekdays = weekdays or set(range(5))
    reasons: dict[date, str] = {}
    day = first
    while day <= last:
        if day.weekday() not in open_weekdays:
            reasons[day] = f"Closed: not open on {day:%A}s"
        day += timedelta(days=1)
    if site.country:
        years = range(first.year, last.year + 1)
        found = public_holidays.country_holidays(
            site.country, subdiv=site.subdivision or None, years=years
        )
        for holiday, name in sorted(found.items()):
            if first <= holiday <= last:
                reasons[holiday] = f"Closed: {name} (public holiday)"
    closures = SiteClosure.objects.filter(site=site, date__range=(first, last))
    for closed, reason in closures.values_list("date", "reason"):
        reasons[closed] = f"Closed: {reason}" if reason else "Closed (closure date)"
    return reasons


def resources_snapshot(
    site: Site,
    *,
    dyads: Iterable[Dyad],
    begin: datetime,
    until: datetime,
    assessors: Iterable[int] | None = None,
    exclude_course: Course | None = None,
) -> BusyIndex:
    """Every active booking and unavailability of the site's rooms, the given dyads' therapists
    and the site's assessors that touches [begin, until), in one index. A fixed number of
    queries, however many bookings exist."""
    people = {person for dyad in dyads for person in dyad.therapist_ids}
    people.update(site_assessor_ids(site) if assessors is None else assessors)
    index = BusyIndex()
    overlapping = Q(begin__lt=until, until__gt=begin, active=True)
    rooms = RoomBooking.objects.filter(overlapping, room__site=site)
    staff = StaffBooking.objects.filter(overlapping, user__in=people)
    if exclude_course is not None:
        rooms = rooms.exclude(session__course=exclude_course)
        staff = staff.exclude(session__course=exclude_course)
    room_rows = rooms.values_list(
        "room_id", _epoch(RoomBooking, "begin"), _epoch(RoomBooking, "until")
    )
    for room_id, b, u in room_rows:
        index.add_seconds(("room", room_id), b, u)
    staff_rows = staff.values_list(
        "user_id", _epoch(StaffBooking, "begin"), _epoch(StaffBooking, "until")
    )
    for user_id, b, u in staff_rows:
        index.add_seconds(("staff", user_id), b, u)
    away = Unavailability.objects.filter(user__in=people, start__lt=until, end__gt=begin)
    for user_id, b, u in away.values_list("user_id", "start", "end"):
        index.add(("staff", user_id), b, u)
    return index


def _epoch(model: type[Model], field: str) -> RawSQL:
    """Seconds since the epoch of a datetime column, computed by the database (the snapshot
    reads many rows; floats load far faster than datetimes)."""
    column = f'"{model._meta.db_table}"."{field}"'  # plain fields: column is the name
    if connection.vendor == "postgresql":
        return RawSQL(f"EXTRACT(EPOCH FROM {column})::float8", ())  # noqa: S611
    return RawSQL(f"(julianday({column}) - 2440587.5) * 86400.0", ())  # noqa: S611


def site_assessor_ids(site: Site) -> list[int]:
    return list(
        StaffProfile.objects.filter(sites=site, role=StaffProfile.Role.ASSESSOR)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def site_rooms(site: Site) -> list[RoomSpec]:
    return [
        RoomSpec(room.pk, room.name, room.kind, room.overnight_places)
        for room in Room.objects.filter(site=site, active=True).order_by("kind", "name", "pk")
    ]


def course_resources(
    site: Site, dyad: Dyad, busy: BusyIndex, rooms: list[RoomSpec], assessors: list[int]
) -> Resources:
    names: dict[tuple[str, int], str] = {("room", r.id): r.name for r in rooms}
    for therapist in (dyad.therapist_a, dyad.therapist_b):
        names[("staff", therapist.pk)] = f"{display_name(therapist)} of {dyad.name}"
    return Resources(
        rooms=rooms, dyad=dyad.therapist_ids, assessors=assessors, busy=busy, names=names
    )


def planning_horizon(start: date, spec: ProtocolSpec) -> tuple[datetime, datetime]:
    """The UTC range a course can reach (every window at its latest, plus a day on each side
    for time zones): bookings outside it cannot matter to its planning."""
    begin = datetime.combine(start - timedelta(days=2), datetime.min.time(), UTC)
    return begin, begin + timedelta(days=latest_offset(spec) + 4)


def course_sessions(course: Course) -> QuerySet[ScheduledSession]:
    return (
        ScheduledSession.objects.filter(course=course)
        .select_related("room")
        .prefetch_related("staff__user")
        .order_by("start", "key")
    )


def sessions_list(user: AnyUser, **filters: Any) -> QuerySet[ScheduledSession]:
    sessions = scoped(ScheduledSession.objects.all(), user).select_related(
        "room", "course__participant"
    )
    return sessions.prefetch_related("staff__user").filter(**filters).order_by("start", "key")


# --- staff pages ---------------------------------------------------------------------------


def sites_for(user: AnyUser) -> QuerySet[Site]:
    return scoped(Site.objects.all(), user).order_by("name")


def sees_own_sessions_only(user: AnyUser) -> bool:
    """Staff whose boards show only the sessions they are booked on (not the whole site):
    everyone whose session scope is narrower than the site's."""
    return access.scope_of(user, access.Action.VIEW, ScheduledSession) not in (
        None,
        access.Scope.SITE,
    )


def visible_participants(user: AnyUser) -> QuerySet[Participant]:
    """The participants a user may see (scheduling.access decides)."""
    return scoped(Participant.objects.all(), user)


def day_bounds(site: Site, first: date, days: int) -> tuple[datetime, datetime]:
    """UTC instants of local midnight on ``first`` and ``days`` later at the site."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(site.timezone)
    begin = datetime.combine(first, datetime.min.time(), zone)
    end = datetime.combine(first + timedelta(days=days), datetime.min.time(), zone)
    return begin.astimezone(UTC), end.astimezone(UTC)


#: sessions that take place in a room of the site (check-ins are by phone, assessments by video)
ROOM_KINDS = ["preparatory", "dosing", "integration", "other"]


def board_sessions(
    user: AnyUser, site: Site, begin: datetime, end: datetime
) -> QuerySet[ScheduledSession]:
    """Sessions at ``site`` starting in [begin, end), and overnight stays running into it,
    with everything a row shows in a bounded number of queries."""
    sessions = scoped(ScheduledSession.objects.all(), user).filter(course__participant__site=site)
    # one range the start index serves; of the day before, only overnight stays
    sessions = sessions.filter(
        Q(start__gte=begin) | Q(overnight=True),
        start__gte=begin - timedelta(days=1),
        start__lt=end,
    ).exclude(status=ScheduledSession.Status.CANCELLED)
    if sees_own_sessions_only(user):
        sessions = sessions.filter(staff__user__pk=_uid(user), staff__active=True).distinct()
    people = (
        StaffBooking.objects.filter(active=True)
        .select_related("user")
        .only("session_id", "user__username", "user__first_name", "user__last_name")
        .order_by("user__username")
    )
    # a busy day has hundreds of rows: load only the columns a row shows
    return (
        sessions.select_related("room", "course__participant", "course__partner", "course__dyad")
        .only(
            "start",
            "end",
            "overnight",
            "title",
            "kind",
            "status",
            "room__name",
            "course__participant__code",
            "course__partner__code",
            "course__dyad__name",
        )
        .prefetch_related(Prefetch("staff", queryset=people, to_attr="active_staff"))
        .order_by("start", "course__participant__code")
    )


OPEN = (ScheduledSession.Status.PLANNED, ScheduledSession.Status.CONFIRMED)
GONE = (ScheduledSession.Status.CANCELLED, ScheduledSession.Status.MISSED)


@dataclass(frozen=True)
class AttentionItem:
    """A session that needs someone to act, and what to do next (in the site's time)."""

    session: ScheduledSession
    next_step: str


def local_text(moment: datetime, zone: str) -> str:
    """A time as people read it at the site: "Mon 1 Mar 2027 09:00 EST"."""
    return clock.local_text(moment, zone)


def occurrence_of(session: ScheduledSession) -> int:
    """Which occurrence of its template a session is: ``phone-1.3`` is the third, a template
    that happens once is the first. Only the key's leading ``<template_key>.<n>`` counts, so a
    row that rebooks a session under a key of its own (``dosing-1.2~r1``, ``dosing-1-r``)
    still stands for the same occurrence (a dot never appears in a template key)."""
    match = re.match(rf"{re.escape(session.template_key)}(?:\.([0-9]+))?", session.key)
    return int(match.group(1)) if match and match.group(1) else 1


def attention_items(user: AnyUser, site: Site, now: datetime) -> dict[str, list[Any]]:
    """What needs a coordinator's attention at ``site``: open sessions in the next two weeks
    on the last day of their window, open sessions there without staff or without a room;
    cancelled or missed sessions that their (active) course still needs with nothing planned
    in their place; open sessions whose anchor is such a session (directly or through the
    protocol's anchor chain); open sessions that are over without a status; phone check-ins
    nobody reached N hours after their time (the protocol's ``checkin_escalation_hours``) and
    those with a concern; and reminders that failed in the last two weeks."""
    sessions = scoped(ScheduledSession.objects.all(), user).filter(course__participant__site=site)
    if sees_own_sessions_only(user):
        sessions = sessions.filter(staff__user__pk=_uid(user)).distinct()
    soon = sessions.filter(
        start__gte=now,
        start__lt=now + timedelta(days=14),
        status__in=OPEN,
    ).select_related("course__participant", "course__partner", "room")
    # on (or a day before) the last day of the window, in the site's local days; a one-day
    # window (next morning, daily check-ins) has no slack by design: not news
    edge: list[ScheduledSession] = list(
        soon.annotate(local_day=TruncDate("start", tzinfo=ZoneInfo(site.timezone))).filter(
            window_start__lt=F("window_end"),
            local_day__gte=ExpressionWrapper(
                F("window_end") - timedelta(days=1), output_field=DateField()
            ),
        )
    )
    # a scalar subquery, probed per session through the session index: as NOT EXISTS,
    # PostgreSQL hashes every staff booking of every site for an anti-join
    staffed = StaffBooking.objects.filter(session=OuterRef("pk"), active=True).values("pk")[:1]
    unstaffed: list[ScheduledSession] = list(
        soon.alias(staffed=Subquery(staffed)).filter(staffed__isnull=True)
    )
    roomless = list(soon.filter(room__isnull=True, kind__in=ROOM_KINDS))
    local_now = now.astimezone(ZoneInfo(site.timezone))
    unreplaced, orphaned = _gaps(sessions, site.timezone, local_now)
    overdue = [
        AttentionItem(
            s,
            f"Ended {local_text(s.end, site.timezone)} and is still {s.status}: "
            "record whether it was completed or missed.",
        )
        for s in sessions.filter(status__in=OPEN, end__lte=now)
        .select_related("course__participant", "course__partner")
        .order_by("start", "key")
    ]
    late_checkins, concerns = _checkin_attention(sessions, site.timezone, now)
    return {
        "edge": edge,
        "unstaffed": unstaffed,
        "roomless": roomless,
        "unreplaced": unreplaced,
        "orphaned": orphaned,
        "overdue": overdue,
        "failed_reminders": failed_reminders(user, site, now),
        "late_checkins": late_checkins,
        "concerns": concerns,
    }


#: how far back Today looks for failed reminders and unanswered check-ins
LOOK_BACK = timedelta(days=14)
PHONE_CHECKIN = "phone_checkin"


def _latest_outcome() -> Subquery:
    """The latest outcome recorded for the session in ``OuterRef("pk")`` (the latest counts)."""
    latest = CheckInOutcome.objects.filter(session=OuterRef("pk")).order_by("-recorded_at", "-pk")
    return Subquery(latest.values("outcome")[:1])


def _with_outcomes(sessions: QuerySet[ScheduledSession]) -> QuerySet[ScheduledSession]:
    """Check-ins with their participants' codes and their outcomes, newest first, as
    ``outcomes`` (one query for all of them)."""
    outcomes = CheckInOutcome.objects.select_related("recorded_by").order_by("-recorded_at", "-pk")
    return sessions.select_related("course__participant", "course__partner").prefetch_related(
        Prefetch("checkin_outcomes", queryset=outcomes, to_attr="outcomes")
    )


def _checkin_attention(
    sessions: QuerySet[ScheduledSession], zone: str, now: datetime
) -> tuple[list[AttentionItem], list[AttentionItem]]:
    """Phone check-ins of the last two weeks that nobody reached N hours after their time
    (N: the course's protocol version, ``checkin_escalation_hours``), and those whose latest
    outcome is a concern. One query (and one for their outcomes): the hours come with each
    row."""
    rows = _with_outcomes(
        sessions.filter(
            kind=PHONE_CHECKIN, superseded=False, start__gte=now - LOOK_BACK, start__lte=now
        )
        .exclude(status=ScheduledSession.Status.CANCELLED)
        .annotate(
            latest_outcome=_latest_outcome(),
            escalate_after=F("course__protocol_version__checkin_escalation_hours"),
        )
        .exclude(latest_outcome=CheckInOutcome.Outcome.REACHED)
        .order_by("start", "key")
    )
    late, concerns = [], []
    for s in rows:
        outcomes: list[CheckInOutcome] = s.outcomes  # type: ignore[attr-defined]
        if s.latest_outcome == CheckInOutcome.Outcome.CONCERN:  # type: ignore[attr-defined]
            latest = outcomes[0]
            said = (
                f"Concern recorded by {display_name(latest.recorded_by)}, "
                f"{local_text(latest.recorded_at, zone)}: {latest.note} — the site's "
                "coordinators were emailed; follow up with the participant, then record "
                "the next call's outcome."
            )
            concerns.append(AttentionItem(s, said))
            continue
        hours: int = s.escalate_after  # type: ignore[attr-defined]
        if s.start + timedelta(hours=hours) > now:
            continue
        tried = outcomes[0] if outcomes else None
        said = f"Planned {local_text(s.start, zone)}: "
        said += (
            f"no answer ({display_name(tried.recorded_by)}, {local_text(tried.recorded_at, zone)})"
            if tried is not None
            else "no outcome recorded"
        )
        said += (
            f" after {hours} hour{'s' * (hours != 1)}. Call the participant, then record "
            "whether they were reached."
        )
        late.append(AttentionItem(s, said))
    return late, concerns


def failed_reminders(user: AnyUser, site: Site, now: datetime) -> list[Reminder]:
    """Reminders at ``site`` that failed in the last two weeks, newest first, each with its
    session and recipient (one query; at most 100: the admin's outbox has the rest)."""
    return list(
        scoped(Reminder.objects.all(), user)
        .filter(site=site, status=Reminder.Status.FAILED, updated_at__gte=now - LOOK_BACK)
        .select_related("session__course__participant", "session__course__partner")
        .select_related("participant", "staff")
        .order_by("-updated_at", "-pk")[:100]
    )


def today_checkins(
    user: AnyUser, site: Site, begin: datetime, end: datetime
) -> list[ScheduledSession]:
    """The phone check-ins to make at ``site`` in [begin, end) (the site's today), and the
    earlier ones of the last two weeks still without an answer (no outcome, or only "no
    answer"), each with its outcomes. A therapist sees the calls they are booked on; the
    site's coordinators see every call."""
    sessions = scoped(ScheduledSession.objects.all(), user).filter(
        course__participant__site=site, kind=PHONE_CHECKIN, superseded=False
    )
    if sees_own_sessions_only(user):
        mine = StaffBooking.objects.filter(user__pk=_uid(user), active=True).values("session")
        sessions = sessions.filter(pk__in=mine)
    unanswered = Q(latest_outcome__isnull=True) | Q(latest_outcome=CheckInOutcome.Outcome.NO_ANSWER)
    sessions = (
        sessions.exclude(status=ScheduledSession.Status.CANCELLED)
        .annotate(latest_outcome=_latest_outcome())
        .filter(
            Q(start__gte=begin, start__lt=end)
            | (Q(start__gte=begin - LOOK_BACK, start__lt=begin) & unanswered)
        )
        .order_by("start", "course__participant__code")
    )
    return list(_with_outcomes(sessions))


def today_checkin(user: AnyUser, pk: int) -> ScheduledSession:
    """One phone check-in as Today shows it, with its outcomes; DoesNotExist otherwise."""
    sessions = scoped(ScheduledSession.objects.all(), user).filter(kind=PHONE_CHECKIN)
    return _with_outcomes(sessions).get(pk=pk)


def checkin_outcomes(user: AnyUser, session: ScheduledSession) -> list[CheckInOutcome]:
    """What a phone check-in came to, newest first, for those who may read it."""
    if session.kind != PHONE_CHECKIN:
        return []
    outcomes = scoped(CheckInOutcome.objects.filter(session=session), user)
    return list(outcomes.select_related("recorded_by").order_by("-recorded_at", "-pk"))


#: the most reminders a page lists (a course has some dozens; the admin's outbox has all)
REMINDERS_SHOWN = 300


def reminders_list(
    user: AnyUser,
    *,
    participant: Participant | None = None,
    session: ScheduledSession | None = None,
) -> list[Reminder]:
    """The reminders the user may see of a participant's sessions (as the participant or the
    partner of a couple) or of one session, in due order, with their recipients: planned,
    sent, failed, skipped and cancelled, each with its reason. None for a role without access
    (a blinded assessor). A participant's list leaves out the staff's calendar invitations
    (one per session and person: dozens per course, none about the participant's own messages);
    each session's list shows them."""
    rows = scoped(Reminder.objects.all(), user)
    if participant is not None:
        rows = rows.filter(
            Q(session__course__participant=participant) | Q(session__course__partner=participant)
        ).exclude(purpose=Reminder.Purpose.INVITATION)
    if session is not None:
        rows = rows.filter(session=session)
    ordered = rows.select_related("session", "participant", "staff").order_by("due_at", "pk")
    return list(ordered[:REMINDERS_SHOWN])


def _gaps(
    sessions: QuerySet[ScheduledSession], zone: str, now: datetime
) -> tuple[list[AttentionItem], list[AttentionItem]]:
    """Cancelled or missed sessions that their active course still needs (their window is not
    over, other sessions are planned from them, or the course cannot be completed without them:
    the rule that completes a course, ``services.still_needed``) with no open session in their
    place (the same course, template and occurrence), and the open sessions anchored on one of
    them.

    Sessions cancelled or missed together with their anchor are folded into the anchor's item:
    rebooking the anchor re-plans them. A daily call missed last month is a recorded deviation,
    not a to-do: calls and next mornings (``tied_to`` their anchor) are not made up later."""
    gone = list(
        sessions.filter(status__in=GONE, course__status=Course.Status.ACTIVE, superseded=False)
        .select_related(
            "course__participant", "course__partner", "course__protocol_version__protocol"
        )
        .order_by("start", "key")
    )
    specs: dict[int, ProtocolSpec] = {}

    def made_up_later(session: ScheduledSession) -> bool:
        """Whether the course waits for this session whatever the date (not tied to its
        anchor): until it is rebooked, or the course ended, the course cannot complete."""
        version = session.course.protocol_version
        if version.pk not in specs:
            specs[version.pk] = protocol_spec(version)
        anchor = session.anchor_key
        return not (anchor and session.template_key in tied_to(specs[version.pk], anchor))

    if not gone:
        return [], []
    courses = {s.course_id for s in gone}
    rows = list(
        ScheduledSession.objects.filter(course__in=courses).only(
            "course_id", "key", "template_key", "anchor_key", "status"
        )
    )
    anchor_of = {(r.course_id, r.template_key): r.anchor_key for r in rows}
    anchors = {(course, anchor) for (course, _), anchor in anchor_of.items() if anchor}
    in_place = {(r.course_id, r.template_key, occurrence_of(r)) for r in rows if r.status in OPEN}
    today = now.date()  # the site's local date
    missing = [
        s
        for s in gone
        if (s.course_id, s.template_key, occurrence_of(s)) not in in_place
        and (s.window_end >= today or (s.course_id, s.template_key) in anchors or made_up_later(s))
    ]
    # a template whose first occurrence is gone with nothing in its place anchors nothing
    dead = {(s.course_id, s.template_key): s for s in missing if occurrence_of(s) == 1}

    def dead_anchor(course: int, template: str) -> ScheduledSession | None:
        """The nearest dead session up the anchor chain of ``template`` (itself excluded)."""
        seen = {template}
        anchor = anchor_of.get((course, template), "")
        while anchor and anchor not in seen:
            if (course, anchor) in dead:
                return dead[(course, anchor)]
            seen.add(anchor)
            anchor = anchor_of.get((course, anchor), "")
        return None

    folded: dict[int, int] = {}
    roots: list[ScheduledSession] = []
    for s in missing:
        root = dead_anchor(s.course_id, s.template_key)
        if root is None:
            roots.append(s)
        else:
            folded[root.pk] = folded.get(root.pk, 0) + 1
    unreplaced = [AttentionItem(s, _rebook_step(s, zone, folded.get(s.pk, 0))) for s in roots]
    orphaned = []
    open_rows = (
        sessions.filter(course__in=courses, status__in=OPEN)
        .select_related("course__participant", "course__partner")
        .order_by("start", "key")
    )
    for s in open_rows:
        root = dead_anchor(s.course_id, s.template_key)
        if root is not None:
            orphaned.append(
                AttentionItem(
                    s,
                    f"It is planned from {root.title} ({root.key}), which was {root.status} "
                    f"({local_text(root.start, zone)}): rebook {root.key} and it is re-planned "
                    "from the new date, or cancel it if the course goes on without it.",
                )
            )
    return unreplaced, orphaned


def _rebook_step(session: ScheduledSession, zone: str, dependents: int) -> str:
    step = (
        f"{session.status.capitalize()} ({local_text(session.start, zone)}) and nothing is "
        "planned in its place: rebook it on a new date, or record with the course why it "
        "goes on without it."
    )
    if dependents:
        plural = "s" * (dependents != 1)
        step += f" {dependents} session{plural} anchored on it {'were' if plural else 'was'} "
        step += "cancelled or missed with it and are re-planned when it is rebooked."
    return step


def closure_conflicts(closure: SiteClosure, user: AnyUser | None) -> list[ScheduledSession]:
    """Open sessions at the closure's site on its local date that need the site open (clinic
    opening days apply to them: not the daily phone calls), in the order they take place.
    ``user``: what they may see of them (None: all, for the services)."""
    site = closure.site
    begin, end = day_bounds(site, closure.date, 1)
    every = ScheduledSession.objects.all()
    rows = (
        (every if user is None else scoped(every, user))
        .filter(course__participant__site=site, status__in=OPEN, start__gte=begin, start__lt=end)
        .select_related("course__participant", "course__protocol_version__protocol", "room")
        .order_by("start", "key")
    )
    needs_open: dict[int, set[str]] = {}
    found = []
    for session in rows:
        version = session.course.protocol_version
        if version.pk not in needs_open:
            spec = protocol_spec(version)
            needs_open[version.pk] = {t.key for t in spec.sessions if t.open_days_apply}
        if session.template_key in needs_open[version.pk]:
            found.append(session)
    return found


def _uid(user: AnyUser) -> int:
    return int(user.pk) if user.pk is not None else -1  # anonymous: matches nobody


#: the participants list's "next session" filter: days ahead, or none planned
NEXT_SESSION_CHOICES = [("7", "within 7 days"), ("30", "within 30 days"), ("none", "none planned")]


def participants_list(
    user: AnyUser,
    *,
    now: datetime,
    search: str = "",
    status: str = "",
    protocol: str = "",
    site: str = "",
    next_session: str = "",
) -> QuerySet[Participant]:
    """Participants at the user's sites with their next open session (``_next_start``),
    filtered."""
    participants = visible_participants(user).select_related("site")
    if site:
        participants = participants.filter(site__slug=site)
    if search:
        participants = participants.filter(code__icontains=search)
    if status:
        participants = participants.filter(status=status)
    if protocol:
        # a couple's partner takes the course as its partner: the same protocol for both
        taking = Course.objects.filter(
            Q(participant=OuterRef("pk")) | Q(partner=OuterRef("pk")),
            protocol_version__protocol__slug=protocol,
        )
        participants = participants.filter(Exists(taking))
    listed = participants.annotate(next_session=Subquery(_next_start(OuterRef("pk"), now)))
    if next_session == "none":
        listed = listed.filter(next_session__isnull=True)
    elif next_session.isdigit():
        listed = listed.filter(next_session__lt=now + timedelta(days=int(next_session[:3])))
    return listed.order_by("site__name", "code", "pk")


def _next_start(participant: Any, now: datetime) -> QuerySet[Any, Any]:
    """The start of the participant's next open session, as a participant or as the partner
    of a couple: the one definition the list and the participant's page share."""
    return (
        ScheduledSession.objects.filter(
            Q(course__participant=participant) | Q(course__partner=participant),
            start__gte=now,
            status__in=[ScheduledSession.Status.PLANNED, ScheduledSession.Status.CONFIRMED],
        )
        .order_by("start")
        .values("start")[:1]
    )


def next_session_start(participant: Participant, now: datetime) -> datetime | None:
    """What the participants list shows as this participant's next session."""
    starts = _next_start(participant.pk, now).values_list("start", flat=True)
    found: datetime | None = starts.first()
    return found


def participant_courses(participant: Participant, user: AnyUser) -> list[Course]:
    """The participant's courses with the sessions ``user`` may see (all of them for the
    site's coordinators and the dyad; a night attendant's nights only)."""
    sessions = (
        scoped(ScheduledSession.objects.all(), user)
        .select_related("replaced_by")
        .prefetch_related("room", "deviations")
    )
    return list(
        scoped(Course.objects.all(), user)
        .filter(Q(participant=participant) | Q(partner=participant))
        .select_related("protocol_version__protocol", "dyad", "participant", "partner")
        .prefetch_related(Prefetch("sessions", queryset=sessions))
        .order_by("start_date")
    )


def closed_anchor(session: ScheduledSession) -> ScheduledSession | None:
    """The cancelled or missed session an open ``session`` is anchored on, if any: it waits
    to be re-planned until that one is rebooked."""
    if not session.is_open or not session.anchor_key:
        return None
    return ScheduledSession.objects.filter(
        course_id=session.course_id,
        key=session.anchor_key,
        superseded=False,
        status__in=[ScheduledSession.Status.CANCELLED, ScheduledSession.Status.MISSED],
    ).first()


def session_page(user: AnyUser, pk: int) -> ScheduledSession:
    """One session of the user's sites, with what its page shows; DoesNotExist otherwise."""
    return (
        scoped(ScheduledSession.objects.all(), user)
        .select_related(
            "room",
            "course__participant__site",
            "course__partner",
            "course__dyad",
            "course__protocol_version",
            "replaces",
            "replaced_by",
        )
        .prefetch_related("staff__user", "deviations__created_by")
        .get(pk=pk)
    )


def session_template(session: ScheduledSession, user: AnyUser) -> Any:
    """The session's protocol template (its dose plan, how to prepare), or None for a user who
    may not read protocols (a blinded assessor never sees a dose)."""
    from protocol.models import SessionTemplate

    if not access.allows(user, access.Action.VIEW, SessionTemplate):
        return None

    return SessionTemplate.objects.filter(
        version=session.course.protocol_version, key=session.template_key
    ).first()


def calendar_rows(site: Site, by: str, user: AnyUser) -> list[tuple[int, str, str]]:
    """The rows of the site calendar: active rooms (by kind), or the site's therapists and
    assessors. A therapist sees only their own row among people."""
    if by == "room":
        rooms = scoped(Room.objects.filter(site=site, active=True), user)
        return [(r.pk, r.name, r.kind) for r in rooms.order_by("kind", "name", "pk")]
    people = (
        scoped(StaffProfile.objects.all(), user)
        .filter(sites=site, role__in=[StaffProfile.Role.THERAPIST, StaffProfile.Role.ASSESSOR])
        .select_related("user")
    )
    if sees_own_sessions_only(user):
        people = people.filter(user__pk=_uid(user))
    return [
        (p.user_id, display_name(p.user), p.role) for p in people.order_by("role", "user__username")
    ]


def calendar_bookings(
    user: AnyUser, site: Site, by: str, begin: datetime, end: datetime
) -> list[site_grid.Booking]:
    """Active room (or staff) bookings at ``site`` overlapping [begin, end), of sessions that
    are not cancelled, in one query. A therapist sees only sessions they are booked on."""
    model: type[RoomBooking] | type[StaffBooking] = RoomBooking if by == "room" else StaffBooking
    bookings = model.objects.filter(
        begin__lt=end,
        until__gt=begin,
        active=True,
        session__course__participant__site=site,
    ).exclude(session__status=ScheduledSession.Status.CANCELLED)
    sites = user_site_ids(user)
    if sites is not None and site.pk not in sites:
        return []
    if sees_own_sessions_only(user):
        mine = StaffBooking.objects.filter(user__pk=_uid(user), active=True)
        bookings = bookings.filter(session__in=mine.values("session"))
    row_field = "room_id" if by == "room" else "user_id"
    rows = bookings.values_list(
        row_field,
        "begin",
        "until",
        "session_id",
        "session__course__participant__code",
        "session__title",
        "session__kind",
        "session__status",
        "session__start",
        "session__end",
        "session__overnight",
        "session__course__partner__code",
    )
    # a couple's joint session is booked once: it shows both partners' codes
    return [
        site_grid.Booking(
            row=row_id,
            begin=begin,
            until=until,
            session_id=session_id,
            code=couple_codes(code, partner_code),
            title=title,
            kind=kind,
            status=status,
            start=start,
            end=end,
            overnight=overnight,
        )
        for (
            row_id,
            begin,
            until,
            session_id,
            code,
            title,
            kind,
            status,
            start,
            end,
            overnight,
            partner_code,
        ) in rows
    ]


def couple_codes(code: str, partner_code: str | None) -> str:
    """A session's study codes as the boards show them: both partners' for a couple."""
    return f"{code} & {partner_code}" if partner_code else code


def enrol_choices(user: AnyUser) -> dict[str, list[Any]]:
    """What the enrolment form offers: the user's sites, active protocols, active dyads."""
    from protocol.models import ProtocolVersion

    sites = [(s.slug, s.name) for s in access.scope(Site.objects.order_by("name"), user)]
    if not access.allows(user, access.Action.ENROL, Participant):
        sites = []
    protocols = [
        (v.protocol.slug, f"{v.name} (version {v.version})")
        for v in ProtocolVersion.objects.filter(status="active")
        .select_related("protocol")
        .order_by("protocol__slug")
    ]
    dyads = [
        (d.pk, f"{d.site.name}: {dyad_label(d)}")
        for d in scoped(Dyad.objects.filter(active=True), user)
        .select_related("site", "therapist_a", "therapist_b")
        .order_by("site__name", "name")
    ]
    return {"sites": sites, "protocols": protocols, "dyads": dyads}


def room_names(site: Site) -> dict[int, str]:
    return dict(Room.objects.filter(site=site).values_list("pk", "name"))


def staff_names(ids: Iterable[int]) -> dict[int, str]:
    """Staff members' display names (full name, else user name) by user id."""
    rows = User.objects.filter(pk__in=set(ids)).values_list(
        "pk", "first_name", "last_name", "username"
    )
    return {pk: f"{first} {last}".strip() or username for pk, first, last, username in rows}


def participant_schedule(user: AnyUser, pk: int, now: datetime) -> tuple[Participant, list[Any]]:
    """A participant's open sessions from ``now`` on, each with its template's preparation
    notes, for the printed schedule. DoesNotExist for a participant the user may not see."""
    from protocol.models import SessionTemplate

    participant = visible_participants(user).select_related("site").get(pk=pk)
    sessions = list(
        scoped(ScheduledSession.objects.all(), user)
        .filter(
            Q(course__participant=participant) | Q(course__partner=participant),
            end__gte=now,
            status__in=[ScheduledSession.Status.PLANNED, ScheduledSession.Status.CONFIRMED],
        )
        .select_related("room", "course")
        .order_by("start", "key")
    )
    templates = {
        (version, key): (preparation, room)
        for version, key, preparation, room in SessionTemplate.objects.filter(
            version__in={s.course.protocol_version_id for s in sessions}
        ).values_list("version_id", "key", "preparation", "room")
    }
    for s in sessions:
        found = templates.get((s.course.protocol_version_id, s.template_key), ("", ""))
        s.preparation, s.room_need = found  # type: ignore[attr-defined]
    return participant, sessions


# --- CSV exports (scheduling/exports.py writes them) -----------------------------------------


def export_sites(user: AnyUser) -> QuerySet[Site]:
    """The sites whose sessions the user may export (coordinators and administrators)."""
    return access.scope(Site.objects.all(), user, access.Action.EXPORT).order_by("name")


def export_filter_choices(site: Site) -> dict[str, list[tuple[str, str]]]:
    """What a site export may be narrowed to: the site's rooms and the staff who can be booked
    on its sessions (therapists, remote assessors, night attendants), as (id, label)."""
    rooms = Room.objects.filter(site=site).order_by("kind", "name", "pk")
    people = (
        StaffProfile.objects.filter(
            sites=site,
            role__in=[
                StaffProfile.Role.THERAPIST,
                StaffProfile.Role.ASSESSOR,
                StaffProfile.Role.NIGHT_ATTENDANT,
            ],
        )
        .select_related("user")
        .order_by("role", "user__username")
    )
    return {
        "rooms": [(str(r.pk), r.name) for r in rooms],
        "staff": [(str(p.user_id), display_name(p.user)) for p in people],
    }


def _export_rows(sessions: QuerySet[ScheduledSession]) -> QuerySet[ScheduledSession]:
    held = StaffBooking.objects.filter(active=True).select_related("user").order_by("user_id")
    return sessions.select_related(
        "course__participant__site", "course__partner", "room"
    ).prefetch_related(
        Prefetch("staff", queryset=held, to_attr="active_staff"),
        Prefetch("deviations", queryset=Deviation.objects.order_by("created_at", "pk")),
    )


def _export_line(session: ScheduledSession, **extra: Any) -> exports.SessionLine:
    course = session.course
    partner = course.partner.code if course.partner else None
    return exports.SessionLine(
        codes=couple_codes(course.participant.code, partner),
        key=session.key,
        what=STAFF_WHAT.get(session.kind, "session"),
        status=session.status,
        window_start=session.window_start,
        window_end=session.window_end,
        start=session.start,
        end=session.end,
        zone=course.participant.site.timezone,
        room=session.room.name if session.room else "",
        staff=tuple(display_name(b.user) for b in getattr(session, "active_staff", [])),
        deviations=tuple((d.get_kind_display(), d.reason) for d in session.deviations.all()),
        rebooked=session.superseded,
        sequence=session.sequence,
        **extra,
    )


def site_sessions_export(
    user: AnyUser,
    site: Site,
    *,
    first: date,
    last: date,
    kind: str = "",
    status: str = "",
    room: int | None = None,
    therapist: int | None = None,
) -> Iterator[exports.SessionLine]:
    """The sessions of ``site`` that the user may see, starting on local dates ``first`` to
    ``last`` (inclusive), narrowed by the filters given, in start order. Read in chunks
    (``iterator``), each with its staff and deviations, so a long range streams."""
    begin, end = day_bounds(site, first, (last - first).days + 1)
    sessions = scoped(ScheduledSession.objects.all(), user).filter(
        course__participant__site=site, start__gte=begin, start__lt=end
    )
    if kind:
        sessions = sessions.filter(kind=kind)
    if status:
        sessions = sessions.filter(status=status)
    if room is not None:
        sessions = sessions.filter(room_id=room)
    if therapist is not None:
        booked = StaffBooking.objects.filter(user_id=therapist, active=True)
        sessions = sessions.filter(pk__in=booked.values("session_id"))
    rows = _export_rows(sessions).order_by("start", "key", "pk")
    for session in rows.iterator(chunk_size=500):
        yield _export_line(session)


def planned_vs_actual(user: AnyUser, participant: Participant) -> list[exports.SessionLine]:
    """One line per protocol session of each course of the participant that the user may see,
    in protocol order: the current session of that key (held, cancelled, missed or still
    ahead), or a 'not booked' line where the course has none; earlier attempts (rebooked
    cancelled or missed sessions) are counted and their deviations kept."""
    from protocol.models import SessionTemplate

    courses = list(
        scoped(Course.objects.all(), user)
        .filter(Q(participant=participant) | Q(partner=participant))
        .select_related("participant__site", "partner")
        .order_by("start_date", "pk")
    )
    sessions = _export_rows(
        scoped(ScheduledSession.objects.all(), user).filter(course__in=courses)
    ).order_by("course_id", "start", "pk")
    by_course: dict[int, list[ScheduledSession]] = {}
    for session in sessions:
        by_course.setdefault(session.course_id, []).append(session)
    templates: dict[int, list[tuple[str, str]]] = {}
    for version, key, kind, repeat in (
        SessionTemplate.objects.filter(version__in={c.protocol_version_id for c in courses})
        .order_by("position", "pk")
        .values_list("version_id", "key", "kind", "repeat_count")
    ):
        keys = [key] if repeat == 1 else [f"{key}.{n}" for n in range(1, repeat + 1)]
        templates.setdefault(version, []).extend((k, kind) for k in keys)
    lines: list[exports.SessionLine] = []
    for course in courses:
        rows = by_course.get(course.pk, [])
        protocol_keys = templates.get(course.protocol_version_id, [])
        known = {key for key, _ in protocol_keys}
        # sessions whose key the protocol does not list (none expected) come last
        extra = [(s.key, s.kind) for s in rows if s.key not in known and not s.superseded]
        for key, kind in protocol_keys + extra:
            attempts = [s for s in rows if s.key == key]
            current = next((s for s in attempts if not s.superseded), None)
            earlier = [s for s in attempts if s.superseded]
            if current is None:
                lines.append(_not_booked(course, key, kind, earlier))
                continue
            line = _export_line(current, course_start=course.start_date)
            history = tuple(
                (d.get_kind_display(), d.reason) for s in earlier for d in s.deviations.all()
            )
            lines.append(
                replace(
                    line,
                    deviations=history + line.deviations,
                    earlier_attempts=len(earlier),
                )
            )
    return lines


def _not_booked(
    course: Course, key: str, kind: str, earlier: list[ScheduledSession]
) -> exports.SessionLine:
    partner = course.partner.code if course.partner else None
    return exports.SessionLine(
        codes=couple_codes(course.participant.code, partner),
        key=key,
        what=STAFF_WHAT.get(kind, "session"),
        status="not booked",
        window_start=None,
        window_end=None,
        start=None,
        end=None,
        zone=course.participant.site.timezone,
        deviations=tuple(
            (d.get_kind_display(), d.reason) for s in earlier for d in s.deviations.all()
        ),
        course_start=course.start_date,
        earlier_attempts=len(earlier),
    )


# --- calendar feeds ------------------------------------------------------------------------


def feeds_list(user: AnyUser) -> QuerySet[CalendarFeed]:
    """The feeds a user may see: their own; a coordinator's or administrator's, every feed of
    the people of their sites (to revoke the feed of someone who left)."""
    return access.scope(CalendarFeed.objects.select_related("owner"), user).order_by(
        "revoked_at", "-created_at", "-pk"
    )


def feed_calendar_choices(user: AnyUser) -> list[tuple[str, str]]:
    """What a staff member may subscribe to: their own sessions, and each site, room and
    staff member they may see ("scope:id" values, the feeds page's choices). A participant's
    feed is issued from the participant's page."""
    choices: list[tuple[str, str]] = [("mine", "My sessions")]
    sites = list(sites_for(user))
    many_sites = len(sites) > 1
    choices += [(f"site:{site.pk}", f"Site: {site.name}") for site in sites]
    rooms = access.scope(Room.objects.select_related("site"), user).order_by("site__name", "name")
    choices += [
        (f"room:{room.pk}", f"Room: {room.name}" + (f" ({room.site.name})" if many_sites else ""))
        for room in rooms
    ]
    people = access.scope(User.objects.filter(staff_profile__isnull=False), user).order_by(
        "last_name", "first_name", "username"
    )
    choices += [(f"therapist:{person.pk}", f"Staff: {display_name(person)}") for person in people]
    return choices
