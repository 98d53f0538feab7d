"""Which sessions a calendar shows, and how each one reads: the bridge from the models to the
pure builder (scheduling/ical.py). Exports, feeds, CalDAV publishing and invitations all take
their events from here, so that a session reads the same wherever it lands.

What leaves the system here is read outside it (phones, mail servers, calendar providers):
staff calendars name a session by the participant's study code and the session's kind in plain
words, never the protocol's internal title (which may name the treatment); a participant's own
calendar names neither the code nor the room's internal name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parseaddr
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Q, QuerySet, Subquery

from scheduling import access, ical, messages
from scheduling.clock import display_name
from scheduling.ical import Event, calendar
from scheduling.models import (
    Participant,
    Reminder,
    Room,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
)

Status = ScheduledSession.Status


class Scope(StrEnum):
    """What a calendar covers."""

    PARTICIPANT = "participant"  # one participant's course (and a couple's shared sessions)
    THERAPIST = "therapist"  # the sessions a staff member is booked on
    ROOM = "room"
    SITE = "site"
    MINE = "mine"  # the signed-in staff member's own sessions


def calendar_sessions(
    user: Any, scope: Scope, target: int | None = None
) -> QuerySet[ScheduledSession]:
    """The sessions of ``scope`` (``target``: the participant's, staff member's, room's or
    site's id; none for MINE) that ``user`` may see now, with what :func:`session_event` reads.
    Raises DoesNotExist (a 404) when the target is not one the user may see, as another
    site's is not.
    Cancelled and missed sessions stay (a calendar shows them cancelled)."""
    return _sessions_of(user, scope, calendar_target(user, scope, target))


def calendar_target(user: Any, scope: Scope, target: int | None = None) -> Any:
    """What a calendar is of: the participant, staff member (a user), room or site with id
    ``target`` among those ``user`` may see (DoesNotExist, a 404, for any other), or the user
    themselves for MINE."""
    if scope == Scope.PARTICIPANT:
        return access.get(Participant.objects.select_related("site"), user, pk=target)
    if scope == Scope.THERAPIST:
        return access.get(get_user_model().objects.all(), user, pk=target)
    if scope == Scope.ROOM:
        return access.get(Room.objects.select_related("site"), user, pk=target)
    if scope == Scope.SITE:
        return access.get(Site.objects.all(), user, pk=target)
    return user


def _sessions_of(user: Any, scope: Scope, found: Any) -> QuerySet[ScheduledSession]:
    sessions = access.scope(ScheduledSession.objects.all(), user)
    if scope == Scope.PARTICIPANT:
        sessions = sessions.filter(Q(course__participant=found) | Q(course__partner=found))
    elif scope == Scope.THERAPIST:
        sessions = sessions.filter(pk__in=_booked(found.pk))
    elif scope == Scope.ROOM:
        sessions = sessions.filter(room=found)
    elif scope == Scope.SITE:
        sessions = sessions.filter(course__participant__site=found)
    else:
        sessions = sessions.filter(pk__in=_booked(user.pk))
    # every condition is a column or an id subquery: no join repeats a row, no DISTINCT needed
    return with_event_data(sessions)


def _booked(user_id: int) -> QuerySet[StaffBooking, Any]:
    """Ids of the sessions a staff member is booked on (a subquery: no row twice)."""
    return StaffBooking.objects.filter(user_id=user_id, active=True).values("session")


@dataclass(frozen=True)
class Export:
    """A calendar to download: its bytes, a file name without PHI (ids and slugs, never a
    study code or a room's name) and, for one participant's calendar, whose record was read
    (the caller logs it)."""

    data: bytes
    filename: str
    participant: Participant | None = None


def export(user: Any, scope: Scope, target: int | None = None) -> Export:
    """The calendar of ``scope`` as ``user`` may see it now, in a number of queries that does
    not grow with the sessions. One participant's course reads as the participant reads it
    (for handing to them: no study code, no room name); the others read as staff read them.
    DoesNotExist (a 404) for a target the user may not see."""
    found = calendar_target(user, scope, target)
    sessions = _sessions_of(user, scope, found)
    for_participant = scope == Scope.PARTICIPANT
    events = [session_event(s, for_participant=for_participant) for s in sessions]
    if scope == Scope.PARTICIPANT:
        name, filename = f"Your sessions at {found.site.name}", f"participant-{found.pk}.ics"
    elif scope == Scope.THERAPIST:
        name, filename = f"Sessions of {display_name(found)}", f"staff-{found.pk}.ics"
    elif scope == Scope.ROOM:
        name, filename = f"{found.name}, {found.site.name}", f"room-{found.pk}.ics"
    elif scope == Scope.SITE:
        name, filename = f"Sessions at {found.name}", f"site-{found.slug}.ics"
    else:
        name, filename = "My sessions", "my-sessions.ics"
    return Export(
        data=calendar(events, name=name),
        filename=filename,
        participant=found if for_participant else None,
    )


def with_event_data(sessions: QuerySet[ScheduledSession]) -> QuerySet[ScheduledSession]:
    """What :func:`session_event` reads, in the same query: the site, the room, the course and
    its participants, and how long an overnight stay holds its room (the next morning)."""
    # the room hold as a correlated subquery, not a join with GROUP BY over every column of
    # every table selected (which made the database's part of a large feed several times
    # slower); the protocol version is read by id only (messages' per-process cache)
    hold = RoomBooking.objects.filter(session=OuterRef("pk"), active=True).order_by("-until")
    return (
        sessions.select_related("course__participant__site", "course__partner", "room")
        .annotate(stay_until=Subquery(hold.values("until")[:1]))
        .order_by("start", "pk")
    )


#: the columns :func:`session_event` reads (with :func:`with_event_data`'s joins): a large
#: calendar loads only these (``sessions.only(*EVENT_FIELDS)``), not every participant's
#: contact details and every session's notes; a field read here and missing there would cost
#: a query per event (tests/scheduling/test_feeds.py counts them)
EVENT_FIELDS = (
    "uid",
    "sequence",
    "start",
    "end",
    "status",
    "kind",
    "overnight",
    "modified_at",
    "template_key",
    "room__name",
    "course__protocol_version_id",
    "course__participant__code",
    "course__partner__code",
    "course__participant__site__name",
    "course__participant__site__address",
    "course__participant__site__phone",
    "course__participant__site__timezone",
)


def session_event(session: ScheduledSession, *, for_participant: bool = False) -> Event:
    """One session as a calendar event: for staff (the default) with the study code, the
    room and a link to its page; for the participant with neither code nor room, with how to
    prepare. An overnight stay runs to the next morning (its room hold)."""
    site: Site = session.course.participant.site
    facts = messages._session_template(session)  # the protocol's words, cached per process
    mode = messages._mode(session, facts)
    end = session.end
    stay_until: datetime | None = getattr(session, "stay_until", None)
    if session.overnight and stay_until is not None and stay_until > end:
        end = stay_until
    address = ", ".join(line.strip() for line in site.address.splitlines() if line.strip())
    if for_participant:
        what = messages.PARTICIPANT_WHAT.get(session.kind, "your session")
        summary = f"{what} at {site.name}" if mode == "site" else what
        location = ", ".join(filter(None, [site.name, address])) if mode == "site" else ""
        description = _participant_description(session, site, facts, mode)
        return _event(session, site, end, _capital(summary), location, description)
    code = session.course.participant.code
    if session.course.partner is not None:
        code = f"{code} + {session.course.partner.code}"
    what = messages.STAFF_WHAT.get(session.kind, "session")
    room = session.room.name if session.room is not None else ""
    location = ", ".join(filter(None, [room, site.name])) if mode == "site" else f"by {mode}"
    return _event(
        session,
        site,
        end,
        f"{code} · {what}",
        location,
        f"{_capital(what)} for {code}.",
        url=messages.absolute_url(f"/sessions/{session.pk}/"),
    )


def _event(
    session: ScheduledSession,
    site: Site,
    end: datetime,
    summary: str,
    location: str,
    description: str,
    *,
    url: str = "",
) -> Event:
    cancelled = session.status in (Status.CANCELLED, Status.MISSED)
    return Event(
        uid=str(session.uid),  # a UUID is unique on its own; no host name that could change
        sequence=session.sequence,
        start=session.start,
        end=end,
        zone=site.timezone,
        summary=("Cancelled: " if cancelled else "") + summary,
        modified=session.modified_at,
        description=description,
        location=location,
        cancelled=cancelled,
        url=url,
    )


def _participant_description(session: ScheduledSession, site: Site, facts: Any, mode: str) -> str:
    lines = []
    if mode != "site":
        lines.append(messages.WHERE_REMOTE[mode])
    preparation = " ".join((facts.preparation if facts else "").split())
    codes = [p.code for p in (session.course.participant, session.course.partner) if p]
    # the protocol's notes, unless they name what a reminder may not (the send refuses such
    # a reminder; a calendar has no one to refuse it, so the line is left out)
    if preparation and (
        messages.forbidden_words_in(preparation)
        or any(messages._contains_code(preparation, code) for code in codes)
    ):
        preparation = ""
    if preparation:
        lines.append(f"How to prepare: {preparation}")
    if site.phone.strip():
        lines.append(f"To change the date, call {site.name} on {site.phone.strip()}.")
    return "\n".join(lines)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def invitation_calendar(reminder: Reminder) -> tuple[bytes, str]:
    """An invitation row's calendar part, as the session is now (its current SEQUENCE, time
    and place): the iCalendar bytes and the iTIP method. The organiser is the address the
    clinic's email comes from; the one attendee is the staff member it goes to. A CANCEL shows
    the event cancelled, for a cancelled session and for someone taken off one that stays:
    their calendar is to drop it either way."""
    session = with_event_data(ScheduledSession.objects.filter(pk=reminder.session_id)).get()
    method = "CANCEL" if reminder.rule_key == "cancel" else "REQUEST"
    event = session_event(session)
    if method == "CANCEL" and not event.cancelled:
        event = replace(event, cancelled=True, summary=f"Cancelled: {event.summary}")
    event = replace(
        event,
        organizer=parseaddr(settings.DEFAULT_FROM_EMAIL)[1],
        attendees=(reminder.staff.email.strip(),) if reminder.staff else (),
    )
    name = f"{session.course.participant.site.name}: {event.summary}"
    return ical.calendar([event], name=name, method=method), method
