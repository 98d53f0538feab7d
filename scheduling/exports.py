"""CSV for coordinators: a site's sessions in a date range, and planned versus actual per
participant for study monitoring. Pure: plain rows in, CSV text out (no ORM, no clock); the
reads live in ``scheduling.selectors`` (``site_sessions_export``, ``planned_vs_actual``).

Why it looks the way it does:

- every time is the site's local wall time *with* its zone ("2027-03-01 09:00 EST"), so a
  reader never has to guess whether a cell is UTC, and a course across a DST change reads
  09:00 both sides of it; the IANA zone has its own column for machines;
- kinds are in staff words (``STAFF_WHAT``), never the treatment's name: files travel;
- a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed
  with a single quote, so that a spreadsheet never runs a room name as a formula (CSV
  injection, OWASP); numbers we compute ourselves stay numbers;
- rows are produced one at a time, so that a long range streams instead of filling memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

#: the longest range one site export may cover: a year; a longer one is asked for year by year
MAX_RANGE_DAYS = 366

#: what a spreadsheet reads as the start of a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: (column, meaning): the README documents these, and the header row is their first items
SITE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("study code", "the participant's study code (a couple: both codes joined by &)"),
    ("protocol session", "the protocol's key for the session, e.g. prep-1, phone-1.2"),
    ("kind", "what the session is, in staff words (never the treatment's name)"),
    ("status", "planned, confirmed, completed, cancelled or missed"),
    ("window start", "first day of the protocol window (site's local date)"),
    ("window end", "last day of the protocol window (site's local date)"),
    ("start", "scheduled start, site's local time with the zone abbreviation"),
    ("end", "scheduled end, site's local time with the zone abbreviation"),
    ("time zone", "the site's IANA time zone, e.g. America/New_York"),
    ("room", "the room booked, empty for phone and video sessions"),
    ("staff", "staff booked on the session now, by display name, separated by ;"),
    (
        "days outside window",
        "0 inside the window; negative: days early; positive: days late; empty for a "
        "cancelled or missed session",
    ),
    ("deviations", "recorded protocol deviations, each 'what: why', separated by ;"),
    ("rebooked", "yes when a later session replaces this cancelled or missed one"),
    ("sequence", "the session's change counter (the calendar's SEQUENCE)"),
)

PLANNED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("study code", "the participant's study code (a couple: both codes joined by &)"),
    ("course start", "the first day of the course"),
    ("protocol session", "the protocol's key for the session, in protocol order"),
    ("kind", "what the session is, in staff words (never the treatment's name)"),
    ("status", "the session's status; 'not booked' when the course has no session for it"),
    ("window start", "first day of the protocol window (site's local date)"),
    ("window end", "last day of the protocol window (site's local date)"),
    ("scheduled start", "when it is (or was last) booked, local time with the zone"),
    ("actual start", "the recorded time of a completed session; empty otherwise"),
    ("time zone", "the site's IANA time zone"),
    (
        "days outside window",
        "0 inside; negative: days early; positive: days late; empty if never held "
        "(cancelled, missed, not booked)",
    ),
    ("deviations", "recorded deviations of this protocol session (earlier attempts too)"),
    ("times rebooked", "how many cancelled or missed attempts came before this one"),
)


@dataclass(frozen=True, kw_only=True)
class SessionLine:
    """One session as an export shows it; the selectors fill it from the database."""

    codes: str
    key: str
    what: str
    status: str
    window_start: date | None
    window_end: date | None
    start: datetime | None
    end: datetime | None
    zone: str
    room: str = ""
    staff: tuple[str, ...] = ()
    #: (what, why) of each recorded deviation, oldest first
    deviations: tuple[tuple[str, str], ...] = ()
    rebooked: bool = False
    sequence: int = 0
    #: planned versus actual only
    course_start: date | None = None
    earlier_attempts: int = 0


def neutralise(cell: object) -> object:
    """A text cell that a spreadsheet would read as a formula, prefixed with a quote."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def local_time(moment: datetime | None, zone: str) -> str:
    """``moment`` in the site's wall time with the zone's abbreviation: "2027-03-01 09:00 EST"."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def days_outside(day: date | None, first: date | None, last: date | None) -> int | None:
    """Days before the window opened (negative) or after it closed (positive); 0 inside."""
    if day is None or first is None or last is None:
        return None
    if day < first:
        return (day - first).days
    if day > last:
        return (day - last).days
    return 0


def _held_day(line: SessionLine) -> date | None:
    """The local day a session is or was held: none for one that never will be."""
    if line.start is None or line.status in ("cancelled", "missed", "not booked"):
        return None
    return line.start.astimezone(ZoneInfo(line.zone)).date()


def _deviations(line: SessionLine) -> str:
    return "; ".join(f"{what}: {why}" if why else what for what, why in line.deviations)


def _day(day: date | None) -> str:
    return day.isoformat() if day is not None else ""


def _blank(number: int | None) -> int | str:
    return "" if number is None else number


def site_row(line: SessionLine) -> list[object]:
    return [
        line.codes,
        line.key,
        line.what,
        line.status,
        _day(line.window_start),
        _day(line.window_end),
        local_time(line.start, line.zone),
        local_time(line.end, line.zone),
        line.zone,
        line.room,
        "; ".join(line.staff),
        _blank(days_outside(_held_day(line), line.window_start, line.window_end)),
        _deviations(line),
        "yes" if line.rebooked else "",
        line.sequence,
    ]


def planned_row(line: SessionLine) -> list[object]:
    return [
        line.codes,
        _day(line.course_start),
        line.key,
        line.what,
        line.status,
        _day(line.window_start),
        _day(line.window_end),
        local_time(line.start, line.zone),
        local_time(line.start, line.zone) if line.status == "completed" else "",
        line.zone,
        _blank(days_outside(_held_day(line), line.window_start, line.window_end)),
        _deviations(line),
        line.earlier_attempts,
    ]


class _Line:
    """A file-like object that hands back what ``csv.writer`` writes (one row at a time)."""

    def write(self, value: str) -> str:
        return value


def csv_text(columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The header, then each row, as CSV lines (RFC 4180: CRLF, quoted as needed), every
    text cell neutralised. A generator: nothing is read before the first line is asked for."""
    writer = csv.writer(_Line())
    yield writer.writerow([name for name, _ in columns])
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def site_sessions_csv(lines: Iterable[SessionLine]) -> Iterator[str]:
    return csv_text(SITE_COLUMNS, (site_row(line) for line in lines))


def planned_vs_actual_csv(lines: Iterable[SessionLine]) -> Iterator[str]:
    return csv_text(PLANNED_COLUMNS, (planned_row(line) for line in lines))


def site_filename(slug: str, first: date, last: date) -> str:
    """No PHI in a file name (it shows in download bars and mail attachments): the site's slug
    and the dates."""
    return f"sessions-{slug}-{first.isoformat()}-to-{last.isoformat()}.csv"


def participant_filename(slug: str, participant_id: int, day: date) -> str:
    """The participant's database id, never the study code, and the day of the export."""
    return f"planned-vs-actual-{slug}-participant-{participant_id}-{day.isoformat()}.csv"


def columns_markdown(columns: Sequence[tuple[str, str]]) -> str:
    """A column table for the README (a test keeps the README equal to it)."""
    lines = ["| column | meaning |", "|---|---|"]
    lines += [f"| {name} | {meaning} |" for name, meaning in columns]
    return "\n".join(lines)
