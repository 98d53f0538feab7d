"""Which sessions a calendar shows, and how each one reads: the bridge from the models to the
pure builder (scheduling/ical.py). Exports, feeds, CalDAV publishing and invitations all take
their events from here, so that a session reads the same wherever it lands.

What leaves the system here is read outside it (phones, mail servers, calendar providers):
staff calendars name a session by the participant's study code and the session's kind in plain
words, never the protocol's internal title (which may name the treatment); a participant's own
calendar names neither the code nor the room's internal name.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Q, QuerySet, Subquery

from scheduling import access, messages
from scheduling.ical import Event
from scheduling.models import (
    Participant,
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
    sessions = access.scope(ScheduledSession.objects.all(), user)
    if scope == Scope.PARTICIPANT:
        participant = access.get(Participant.objects.all(), user, pk=target)
        sessions = sessions.filter(
            Q(course__participant=participant) | Q(course__partner=participant)
        )
    elif scope == Scope.THERAPIST:
        staff = access.get(get_user_model().objects.all(), user, pk=target)
        sessions = sessions.filter(pk__in=_booked(staff.pk))
    elif scope == Scope.ROOM:
        room = access.get(Room.objects.all(), user, pk=target)
        sessions = sessions.filter(room=room)
    elif scope == Scope.SITE:
        site = access.get(Site.objects.all(), user, pk=target)
        sessions = sessions.filter(course__participant__site=site)
    else:
        sessions = sessions.filter(pk__in=_booked(user.pk))
    # every condition is a column or an id subquery: no join repeats a row, no DISTINCT needed
    return with_event_data(sessions)


def _booked(user_id: int) -> QuerySet[StaffBooking, Any]:
    """Ids of the sessions a staff member is booked on (a subquery: no row twice)."""
    return StaffBooking.objects.filter(user_id=user_id, active=True).values("session")


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
    if preparation:
        lines.append(f"How to prepare: {preparation}")
    if site.phone.strip():
        lines.append(f"To change the date, call {site.name} on {site.phone.strip()}.")
    return "\n".join(lines)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
