"""One clock for people, and one name for staff: every time a person reads is in its site's
zone with the zone's abbreviation ("Mon 1 Mar 2027 09:00 EST"), and every staff member is
named the same way everywhere (pages, admin, API, dyad labels)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from scheduling.planning import people_time

#: the path from an object to its site, tried in order (objects of one site)
SITE_CHAINS = (
    ("site",),
    ("participant", "site"),
    ("course", "participant", "site"),
    ("room", "site"),
    ("session", "course", "participant", "site"),
)


def zone_of(place: Any) -> tzinfo | None:
    """The time zone of ``place``: a zone, an IANA name, a site (anything with a
    ``timezone`` name) or an object of one site (a session, a booking, a deviation...).
    None when it has none of its own (a person working at several sites)."""
    if place is None:
        return None
    if isinstance(place, tzinfo):
        return place
    if isinstance(place, str):
        return ZoneInfo(place)
    name = getattr(place, "timezone", None)
    if isinstance(name, str) and name:
        return ZoneInfo(name)
    for chain in SITE_CHAINS:
        found: Any = place
        for step in chain:
            found = getattr(found, step, None)
            if found is None:
                break
        else:
            return ZoneInfo(found.timezone)
    return None


def local(moment: datetime, place: Any = None) -> datetime:
    """``moment`` in the zone of ``place`` (the active zone when it has none)."""
    return moment.astimezone(zone_of(place) or timezone.get_current_timezone())


def local_text(moment: datetime | None, place: Any = None) -> str:
    """``moment`` as people read it, in the zone of ``place`` with the zone shown:
    "Mon 1 Mar 2027 09:00 EST". Empty for no moment."""
    if moment is None:
        return ""
    return people_time(local(moment, place))


def dyad_label(dyad: Any) -> str:
    """A dyad as people read it: its name and its two therapists' display names."""
    return f"{dyad.name} ({display_name(dyad.therapist_a)} and {display_name(dyad.therapist_b)})"


def display_name(user: Any) -> str:
    """How a staff member is named everywhere: their full name if set, else their user
    name. Empty for nobody."""
    if user is None:
        return ""
    full = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return full or str(user.get_username())
