"""What a course can be booked with, as plain data for the planner: the site's rooms, the
course's dyad, the remote assessors, and when each of them is already taken.

Pure: enrolment loads a snapshot of the site's bookings once (a fixed number of queries, however
many bookings exist) and the planner checks candidates against it in memory. The database still
has the last word (exclusion constraints on PostgreSQL), so a race between two snapshots ends in
a conflict, never a double booking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from protocol.spec import RoomNeed, SessionSpec, Staffing

#: resource keys: ("room", id) or ("staff", user id)
ResourceKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RoomSpec:
    id: int
    name: str
    kind: str  # "therapy" or "dosing"
    overnight_places: int = 0


@dataclass(frozen=True, slots=True)
class Booking:
    """What one planned session holds: a room (until ``room_until``: a dosing room is held
    through the next morning's session) and staff."""

    room: int | None = None
    room_until: datetime | None = None
    staff: tuple[int, ...] = ()


NO_BOOKING = Booking()


class BusyIndex:
    """Busy intervals per resource, indexed by UTC date so a check looks at a handful."""

    def __init__(self) -> None:
        self._by_day: dict[ResourceKey, dict[date, list[tuple[datetime, datetime]]]] = {}

    def add(self, resource: ResourceKey, begin: datetime, until: datetime) -> None:
        days = self._by_day.setdefault(resource, {})
        for day in _utc_days(begin, until):
            days.setdefault(day, []).append((begin, until))

    def is_free(self, resource: ResourceKey, begin: datetime, until: datetime) -> bool:
        days = self._by_day.get(resource)
        if not days:
            return True
        for day in _utc_days(begin, until):
            for busy_begin, busy_until in days.get(day, ()):
                if busy_begin < until and begin < busy_until:
                    return False
        return True


@dataclass
class Resources:
    rooms: Sequence[RoomSpec]
    dyad: tuple[int, int]
    assessors: Sequence[int]
    #: what others have booked (read only: one snapshot may serve several tries)
    busy: BusyIndex = field(default_factory=BusyIndex)
    #: what this course has booked so far
    own: BusyIndex = field(default_factory=BusyIndex)
    names: dict[ResourceKey, str] = field(default_factory=dict)
    #: people staying overnight together (2 for a couple): a dosing room needs that many places
    party_size: int = 1

    def name(self, resource: ResourceKey) -> str:
        return self.names.get(resource, f"{resource[0]} {resource[1]}")

    def book(
        self,
        template: SessionSpec,
        begin: datetime,
        until: datetime,
        room_until: datetime,
        inherited_room: int | None,
    ) -> tuple[Booking | None, str]:
        """The booking for a session at [begin, until), or None and what is missing."""
        staff, missing = self.staff_for(template.staffing, begin, until)
        if staff is None:
            return None, missing
        room: int | None = inherited_room
        if inherited_room is None and template.room != RoomNeed.NONE:
            room = self._room(template.room, begin, room_until)
            if room is None:
                kind = (
                    "dosing room"
                    if template.room == RoomNeed.DOSING_ROOM_OVERNIGHT
                    else "therapy room"
                )
                places = f" with {self.party_size} overnight places" if self.party_size > 1 else ""
                return None, f"no {kind}{places} free"
        hold = room_until if room is not None and inherited_room is None else None
        return Booking(room=room, room_until=hold, staff=staff), ""

    def hold(self, booking: Booking, begin: datetime, until: datetime) -> None:
        """Mark a chosen booking as taken, so the rest of the course sees it."""
        if booking.room is not None and booking.room_until is not None:
            self.own.add(("room", booking.room), begin, booking.room_until)
        for person in booking.staff:
            self.own.add(("staff", person), begin, until)

    def is_free(self, resource: ResourceKey, begin: datetime, until: datetime) -> bool:
        return self.busy.is_free(resource, begin, until) and self.own.is_free(
            resource, begin, until
        )

    def staff_for(
        self, staffing: Staffing, begin: datetime, until: datetime
    ) -> tuple[tuple[int, ...] | None, str]:
        if staffing == Staffing.NONE:
            return (), ""
        if staffing == Staffing.THERAPIST_DYAD:
            for person in self.dyad:
                if not self.is_free(("staff", person), begin, until):
                    return None, f"{self.name(('staff', person))} (dyad) is busy"
            return self.dyad, ""
        pool: Iterable[int] = self.dyad if staffing == Staffing.ONE_THERAPIST else self.assessors
        for person in pool:
            if self.is_free(("staff", person), begin, until):
                return (person,), ""
        who = "therapist of the dyad" if staffing == Staffing.ONE_THERAPIST else "remote assessor"
        return None, f"no {who} free"

    def _room(self, need: RoomNeed, begin: datetime, until: datetime) -> int | None:
        kind = "dosing" if need == RoomNeed.DOSING_ROOM_OVERNIGHT else "therapy"
        for room in self.rooms:
            if room.kind != kind:
                continue
            if kind == "dosing" and room.overnight_places < self.party_size:
                continue
            if self.is_free(("room", room.id), begin, until):
                return room.id
        return None


def _utc_days(begin: datetime, until: datetime) -> list[date]:
    first = begin.date()
    last = (until - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
