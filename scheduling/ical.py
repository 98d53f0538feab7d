"""Calendars as iCalendar bytes, built with the ``icalendar`` package: plain data in, bytes out.

No ORM and no clock: the selectors (scheduling/selectors.py) turn sessions into :class:`Event`
values, whose every field the caller decides; the same events give the same bytes, so that a
feed is byte-stable while nothing changes. What a calendar client needs to keep an event
correct over its life:

- UID: the session's stored random UID, never regenerated, so a moved session moves in the
  client's calendar instead of appearing twice;
- SEQUENCE: the session's counter, up on every change of time, place or status;
- DTSTAMP and LAST-MODIFIED: when the session last changed (not "now": a feed fetched twice
  with nothing changed is the same bytes);
- STATUS: CONFIRMED, or CANCELLED kept in the calendar (a client removes or strikes it through;
  an event that simply disappears from a feed may linger in a client for ever);
- DTSTART and DTEND in the site's zone with its TZID and a VTIMEZONE for every zone used,
  covering the events' years, so that no client shows a session at 1 am.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Timezone, vCalAddress, vDuration, vText
from icalendar import Event as VEvent

PRODID = "-//Protocol course scheduler//Calendars//EN"


@dataclass(frozen=True, kw_only=True)
class Event:
    """One session as a calendar shows it. ``start``, ``end`` and ``modified`` are aware
    datetimes; ``zone`` is the IANA zone the times are shown in (the site's)."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    zone: str
    summary: str
    modified: datetime
    description: str = ""
    location: str = ""
    cancelled: bool = False
    url: str = ""
    categories: tuple[str, ...] = ()
    #: for invitations (iTIP): the organiser's and the attendees' email addresses
    organizer: str = ""
    attendees: tuple[str, ...] = field(default_factory=tuple)


def calendar(
    events: Iterable[Event],
    *,
    name: str,
    method: str | None = None,
    refresh: timedelta | None = None,
) -> bytes:
    """A VCALENDAR with one VEVENT per event (in the order given) and a VTIMEZONE per zone
    used. ``method``: "REQUEST" or "CANCEL" for an invitation (RFC 5546), none for an export or
    a feed. ``refresh``: how often a subscribed client should fetch again (RFC 7986)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    # TEXT values (RFC 7986, and Apple's X-WR-CALNAME): typed, so that a site or room name
    # with a comma, a semicolon or a line break is escaped rather than breaking the file
    cal.add("name", vText(name))
    cal.add("x-wr-calname", vText(name))
    if refresh is not None:
        cal.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", vDuration(refresh))
    first: date | None = None
    last: date | None = None
    zones: set[str] = set()
    for event in events:
        cal.add_component(_vevent(event))
        starts, ends = event.start.date(), event.end.date()
        first = starts if first is None or starts < first else first
        last = ends if last is None or ends > last else last
        zones.add(event.zone)
    if first is not None and last is not None:
        # the zones' rules for the years the events span (and a year either side), before the
        # events, in a fixed order (byte-stable). The zones are known: icalendar's
        # add_missing_timezones would walk every property of every event to find them again.
        cal.subcomponents[0:0] = [
            Timezone.from_tzid(
                zone, first_date=date(first.year - 1, 1, 1), last_date=date(last.year + 2, 1, 1)
            )
            for zone in sorted(zones - {"UTC"})
        ]
    data: bytes = cal.to_ical()
    return data


def _vevent(event: Event) -> VEvent:
    zone = ZoneInfo(event.zone)
    vevent = VEvent()
    vevent.add("uid", event.uid)
    vevent.add("sequence", event.sequence)
    vevent.add("dtstamp", _utc(event.modified))
    vevent.add("last-modified", _utc(event.modified))
    vevent.add("dtstart", event.start.astimezone(zone))
    vevent.add("dtend", event.end.astimezone(zone))
    vevent.add("summary", event.summary)
    if event.description:
        vevent.add("description", event.description)
    if event.location:
        vevent.add("location", event.location)
    if event.url:
        vevent.add("url", event.url)
    if event.categories:
        vevent.add("categories", list(event.categories))
    vevent.add("status", "CANCELLED" if event.cancelled else "CONFIRMED")
    vevent.add("transp", "TRANSPARENT" if event.cancelled else "OPAQUE")
    if event.organizer:
        vevent.add("organizer", vCalAddress(f"mailto:{event.organizer}"))
    for address in event.attendees:
        attendee = vCalAddress(f"mailto:{address}")
        attendee.params["ROLE"] = vText("REQ-PARTICIPANT")
        attendee.params["PARTSTAT"] = vText("NEEDS-ACTION")
        vevent.add("attendee", attendee, encode=False)
    return vevent


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo("UTC"))
