"""The site calendar grid (pure): bookings by row and local day, overnight stays carried across
midnight into the next morning, in the site's zone whatever the UTC date."""

from datetime import UTC, date, datetime

from scheduling import site_grid
from scheduling.site_grid import Booking

ZONE = "America/New_York"


def booking(row: int, begin: str, until: str, *, start: str = "", end: str = "") -> Booking:
    b, u = datetime.fromisoformat(begin), datetime.fromisoformat(until)
    s = datetime.fromisoformat(start) if start else b
    e = datetime.fromisoformat(end) if end else u
    return Booking(row, b, u, 7, "P-001", "Dosing 1", "dosing", "planned", s, e, True)


def test_weeks_start_on_monday_and_months_have_their_days() -> None:
    assert site_grid.week_of(date(2027, 3, 4))[0] == date(2027, 3, 1)
    assert len(site_grid.month_of(date(2028, 2, 10))) == 29
    assert site_grid.month_of(date(2027, 12, 31))[-1] == date(2027, 12, 31)


def test_an_overnight_hold_is_drawn_into_the_next_morning() -> None:
    # 09:00 EST dosing until 17:00, room held until 09:00 the next morning
    held = booking(
        1,
        "2027-03-02T14:00:00+00:00",
        "2027-03-03T14:00:00+00:00",
        end="2027-03-02T22:00:00+00:00",
    )
    rows = site_grid.build(site_grid.week_of(date(2027, 3, 1)), ZONE, [(1, "Room", "")], [held])
    tuesday, wednesday = rows[0].days[1], rows[0].days[2]
    assert [p.label for p in tuesday] == ["09:00\N{EN DASH}17:00"]
    assert tuesday[0].continues and tuesday[0].begins_here
    assert [p.label for p in wednesday] == ["until 09:00"]
    assert wednesday[0].carried and not wednesday[0].continues
    assert not any(rows[0].days[3:])


def test_local_days_not_utc_days_decide_the_column() -> None:
    # 20:30 local on Monday is 01:30 UTC on Tuesday
    late = booking(1, "2027-03-02T01:30:00+00:00", "2027-03-02T03:00:00+00:00")
    rows = site_grid.build(site_grid.week_of(date(2027, 3, 1)), ZONE, [(1, "Room", "")], [late])
    assert [p.label for p in rows[0].days[0]] == ["20:30\N{EN DASH}22:00"]
    assert not rows[0].days[1]


def test_a_booking_ending_at_midnight_stays_on_its_day_and_other_rows_are_left_out() -> None:
    midnight = datetime(2027, 3, 2, 5, 0, tzinfo=UTC)  # 00:00 EST
    evening = booking(1, "2027-03-01T23:00:00+00:00", midnight.isoformat())
    stranger = booking(9, "2027-03-01T15:00:00+00:00", "2027-03-01T16:00:00+00:00")
    rows = site_grid.build(
        site_grid.week_of(date(2027, 3, 1)), ZONE, [(1, "Room", "")], [evening, stranger]
    )
    assert len(rows) == 1
    assert [len(day) for day in rows[0].days] == [1, 0, 0, 0, 0, 0, 0]
    assert not rows[0].days[0][0].continues


def test_across_the_spring_clock_change_times_stay_local() -> None:
    # 14 March 2027: clocks go forward in New York; 09:00 EDT is 13:00 UTC
    after = booking(1, "2027-03-15T13:00:00+00:00", "2027-03-15T14:30:00+00:00")
    rows = site_grid.build(site_grid.week_of(date(2027, 3, 15)), ZONE, [(1, "Room", "")], [after])
    assert rows[0].days[0][0].label == "09:00\N{EN DASH}10:30"
