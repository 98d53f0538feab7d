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
from datetime import datetime

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
    """What one planned session holds: a room from its start until ``room_until`` (a dosing
    room until the next-morning session starts) and staff."""

    room: int | None = None
    room_until: datetime | None = None
    staff: tuple[int, ...] = ()


NO_BOOKING = Booking()
DAY = 86400.0


class BusyIndex:
    """Busy intervals per resource as half-open [begin, until) in seconds since the epoch,
    indexed by UTC day so a check looks at a handful. Seconds, not datetimes: a snapshot holds
    tens of thousands of bookings, and loading numbers is many times cheaper than datetimes."""

    def __init__(self) -> None:
        self._by_day: dict[ResourceKey, dict[int, list[tuple[float, float]]]] = {}

    def add(self, resource: ResourceKey, begin: datetime, until: datetime) -> None:
        self.add_seconds(resource, begin.timestamp(), until.timestamp())

    def add_seconds(self, resource: ResourceKey, begin: float, until: float) -> None:
        days = self._by_day.setdefault(resource, {})
        for day in range(int(begin // DAY), int((until - 1e-6) // DAY) + 1):
            days.setdefault(day, []).append((begin, until))

    def is_free(self, resource: ResourceKey, begin: datetime, until: datetime) -> bool:
        days = self._by_day.get(resource)
        if not days:
            return True
        b, u = begin.timestamp(), until.timestamp()
        for day in range(int(b // DAY), int((u - 1e-6) // DAY) + 1):
            for busy_begin, busy_until in days.get(day, ()):
                if busy_begin < u and b < busy_until:
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
        *,
        hold_until: datetime,
        free_until: datetime,
        inherited_room: int | None,
        overnight_from: datetime | None = None,
    ) -> tuple[Booking | None, str]:
        """The booking for a session at [begin, until), or None and what is missing.

        A dosing room must be free until ``free_until`` (the end of the next-morning session)
        and is held until ``hold_until`` (its start: that session books the room itself, so
        cancelling the dosing session does not leave it in an unheld room). A next-morning
        session stays in its anchor's room (``inherited_room``), which nobody else may have from
        the end of its anchor (``overnight_from``) until it ends.
        """
        staff, missing = self.staff_for(template.staffing, begin, until)
        if staff is None:
            return None, missing
        if inherited_room is not None:
            # from the end of dosing (the hold stretches to this session's start) to this
            # session's end, nobody else may have the room; the course's own hold is moved
            if not self.busy.is_free(("room", inherited_room), overnight_from or begin, until):
                return None, f"{self.name(('room', inherited_room))} is taken then"
            return Booking(room=inherited_room, room_until=until, staff=staff), ""
        if template.room == RoomNeed.NONE:
            return Booking(staff=staff), ""
        room = self._room(template.room, begin, free_until)
        if room is None:
            dosing = template.room == RoomNeed.DOSING_ROOM_OVERNIGHT
            kind = "dosing room" if dosing else "therapy room"
            places = f" with {self.party_size} overnight places" if self.party_size > 1 else ""
            return None, f"no {kind}{places} free"
        return Booking(room=room, room_until=hold_until, staff=staff), ""

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
                    return None, f"{self.name(('staff', person))} is busy"
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
