"""The pure builder (scheduling/ical.py) against golden files: a course at a New York site
across the start of daylight saving time (Sunday 14 March 2027, 02:00 -> 03:00), with an
overnight stay through that night to the next morning and a cancelled session, for staff and
for the participant. Plain data in, no database and no clock: the same events must give the
same bytes, compared byte for byte with tests/scheduling/golden/*.ics.

After a deliberate change to the builder's output, write the files again with
UPDATE_GOLDEN=1 and read the diff before committing it. (The VTIMEZONE comes from the zone
database: a tzdata release that changes New York's rules changes the files, rightly.)"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import vobject

from scheduling.ical import Event, calendar

GOLDEN = Path(__file__).parent / "golden"
NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
CHANGED = datetime(2027, 2, 20, 15, 30, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2027, month, day, hour, minute, tzinfo=NEW_YORK)


UID = "8c1f6a52-0b7e-4d4e-9a51-00000000000{}"
#: (uid, sequence, start, end, staff title, participant title, cancelled)
COURSE = [
    (UID.format(1), 0, at(8, 10), at(8, 11, 30), "preparatory session",
     "your preparation session", False),
    (UID.format(2), 2, at(11, 14), at(11, 15), "phone check-in",
     "your phone call with your therapist", True),
    # the overnight stay: in on Saturday morning (EST), out on Sunday morning (EDT), so the
    # night is 23 hours long
    (UID.format(3), 1, at(13, 9), at(14, 9), "full-day session", "your full-day session", False),
    (UID.format(4), 0, at(15, 10), at(15, 11, 30), "follow-up therapy session",
     "your session with your therapy team", False),
    (UID.format(5), 0, at(5, 9, month=4), at(5, 12, month=4), "assessment", "your interview",
     False),
]  # fmt: skip


def staff_events() -> list[Event]:
    return [
        Event(
            uid=uid,
            sequence=sequence,
            start=start,
            end=end,
            zone="America/New_York",
            summary=("Cancelled: " if cancelled else "") + f"RIV-0042 · {what}",
            modified=CHANGED + timedelta(hours=n),
            description=f"{what.capitalize()} for RIV-0042.",
            location="" if "phone" in what else "Room 2, Riverside clinic",
            cancelled=cancelled,
            url=f"https://clinic.example.org/sessions/{n + 1}/",
        )
        for n, (uid, sequence, start, end, what, _, cancelled) in enumerate(COURSE)
    ]


def participant_events() -> list[Event]:
    return [
        Event(
            uid=uid,
            sequence=sequence,
            start=start,
            end=end,
            zone="America/New_York",
            summary=("Cancelled: " if cancelled else "") + what.capitalize(),
            modified=CHANGED + timedelta(hours=n),
            description="How to prepare: eat a light breakfast; bring comfortable clothes.\n"
            "To change the date, call Riverside clinic on +1 212 555 0100.",
            location="" if "phone" in what else "Riverside clinic, 1 River Street, New York",
            cancelled=cancelled,
        )
        for n, (uid, sequence, start, end, _, what, cancelled) in enumerate(COURSE)
    ]


CASES = {
    "course-across-dst-staff.ics": lambda: calendar(staff_events(), name="Sessions at Riverside"),
    "course-across-dst-participant.ics": lambda: calendar(
        participant_events(), name="Your sessions at Riverside clinic"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_calendar_is_byte_for_byte_the_golden_file(name: str) -> None:
    built = CASES[name]()
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_bytes(built)
    assert built == golden.read_bytes(), f"{name} differs from its golden file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_golden_calendar_reads_back_at_the_same_wall_times(name: str) -> None:
    """The golden file, read by a second parser, says what the course says: each session at
    its New York wall time on both sides of the change, the stay ending the next morning at
    09:00 (EDT), the cancelled one kept with its status, each UID and SEQUENCE as given."""
    text = (GOLDEN / name).read_text(encoding="utf-8")
    parsed = vobject.readOne(text)
    times = [line for line in text.splitlines() if line.startswith(("DTSTART", "DTEND"))]
    # every time of an event in the site's zone (the VTIMEZONE's own are its rules)
    assert sum(";TZID=America/New_York:" in line for line in times) == 2 * len(COURSE)
    events = parsed.contents["vevent"]
    assert len(events) == len(COURSE)
    assert [tz.tzid.value for tz in parsed.contents["vtimezone"]] == ["America/New_York"]
    for event, (uid, sequence, start, end, *_, cancelled) in zip(events, COURSE, strict=True):
        assert event.uid.value == uid
        assert int(event.sequence.value) == sequence
        for read, expected in ((event.dtstart.value, start), (event.dtend.value, end)):
            assert read.replace(tzinfo=None) == expected.replace(tzinfo=None)  # wall time
            assert read.utcoffset() == expected.utcoffset()  # the right side of the change
            assert read == expected  # the same instant
        assert event.status.value == ("CANCELLED" if cancelled else "CONFIRMED")
        assert event.summary.value.startswith("Cancelled: ") is cancelled
    stay = events[2]
    lasted = stay.dtend.value.astimezone(UTC) - stay.dtstart.value.astimezone(UTC)
    assert lasted == timedelta(hours=23)  # the hour lost that night
    assert stay.dtstart.value.utcoffset() == timedelta(hours=-5)
    assert stay.dtend.value.utcoffset() == timedelta(hours=-4)
