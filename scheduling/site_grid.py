"""The site calendar as a grid: a pure function from bookings to rows (rooms or people) by
local days. A booking that runs past local midnight (a dosing room held overnight until the
next morning's session) appears on every day it touches, marked as continuing, so the stay is
drawn across into the next morning. No database, no clock: everything is given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Booking:
    """What holds a row for a while: ``begin``/``until`` are the booking's aware instants;
    ``start``/``end`` those of the session itself."""

    row: int
    begin: datetime
    until: datetime
    session_id: int
    code: str
    title: str
    kind: str
    status: str
    start: datetime
    end: datetime
    overnight: bool


@dataclass(frozen=True)
class Piece:
    """The part of a booking on one local day."""

    booking: Booking
    begins_here: bool  # false: carried over from an earlier day (an overnight stay)
    continues: bool  # true: runs past midnight into the next day
    label: str  # local times shown in the cell

    @property
    def carried(self) -> bool:
        return not self.begins_here


@dataclass
class Row:
    id: int
    label: str
    detail: str = ""
    days: list[list[Piece]] = field(default_factory=list)


def week_of(day: date) -> list[date]:
    monday = day - timedelta(days=day.weekday())
    return [monday + timedelta(days=i) for i in range(7)]


def month_of(day: date) -> list[date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return [first + timedelta(days=i) for i in range((following - first).days)]


def build(
    days: Sequence[date],
    zone: str,
    rows: Iterable[tuple[int, str, str]],
    bookings: Iterable[Booking],
) -> list[Row]:
    """Rows (id, label, detail) in the order given, each with one list of pieces per day,
    ordered by time. Bookings of rows not given are left out."""
    tz = ZoneInfo(zone)
    grid = {
        row_id: Row(row_id, label, detail, [[] for _ in days]) for row_id, label, detail in rows
    }
    index = {day: i for i, day in enumerate(days)}
    for booking in sorted(bookings, key=lambda b: (b.begin, b.code)):
        row = grid.get(booking.row)
        if row is None:
            continue
        begin = booking.begin.astimezone(tz)
        # a booking ending exactly at midnight does not touch the next day
        until = booking.until.astimezone(tz)
        last = (until - timedelta(microseconds=1)).date()
        day = begin.date()
        while day <= last:
            if day in index:
                row.days[index[day]].append(
                    Piece(
                        booking=booking,
                        begins_here=day == begin.date(),
                        continues=day < last,
                        label=_label(booking, day, begin, until, tz),
                    )
                )
            day += timedelta(days=1)
    return list(grid.values())


def _label(booking: Booking, day: date, begin: datetime, until: datetime, tz: ZoneInfo) -> str:
    start = booking.start.astimezone(tz)
    end = booking.end.astimezone(tz)
    if day == begin.date():
        if start.date() == day:
            return (
                f"{start:%H:%M}\N{EN DASH}{end:%H:%M}"
                if end.date() == day
                else f"{start:%H:%M}\N{EN DASH}"
            )
        return f"from {begin:%H:%M}"
    if day == until.date():
        return f"until {until:%H:%M}"
    return "all day"
