"""The site calendar the planner reads (scheduling.selectors.site_calendar): open weekdays from
the opening hours, closures in the asked range, public holidays by country and subdivision."""

from __future__ import annotations

from datetime import date, time

import pytest

from scheduling.models import OpeningHours, Site, SiteClosure
from scheduling.selectors import site_calendar
from tests.conftest import make_site

pytestmark = pytest.mark.django_db

MONDAY = date(2027, 7, 5)  # Independence Day (Sunday the 4th) observed


def us_site(slug: str = "us", subdivision: str = "") -> Site:
    site: Site = make_site(slug, dyads=0, assessors=0)
    site.country = "US"
    site.subdivision = subdivision
    site.save()
    return site


def test_open_weekdays_and_hours_come_from_the_opening_hours(site_a) -> None:
    calendar = site_calendar(site_a, first=date(2027, 3, 1), last=date(2027, 3, 31))
    assert calendar.timezone == "America/New_York"
    assert calendar.open_weekdays == frozenset(range(5))
    assert calendar.hours_on(date(2027, 3, 1)) == (time(8), time(18))  # Monday
    assert calendar.hours_on(date(2027, 3, 6)) is None  # Saturday
    assert calendar.closures == frozenset()
    # Saturday mornings, and a short Friday
    OpeningHours.objects.create(site=site_a, weekday=5, opens=time(9), closes=time(13))
    OpeningHours.objects.filter(site=site_a, weekday=4).update(closes=time(14, 30))
    calendar = site_calendar(site_a, first=date(2027, 3, 1), last=date(2027, 3, 31))
    assert calendar.open_weekdays == frozenset(range(6))
    assert calendar.hours_on(date(2027, 3, 5)) == (time(8), time(14, 30))
    assert calendar.hours_on(date(2027, 3, 6)) == (time(9), time(13))
    assert calendar.closed_because(date(2027, 3, 6)) is None
    assert calendar.closed_because(date(2027, 3, 7)) == "Sunday"


def test_a_site_without_opening_hours_is_open_monday_to_friday(db) -> None:
    site = Site.objects.create(name="Bare", slug="bare", timezone="Europe/London")
    calendar = site_calendar(site, first=date(2027, 3, 1), last=date(2027, 3, 31))
    assert calendar.open_weekdays == frozenset(range(5))
    assert calendar.hours == ()
    assert calendar.hours_on(date(2027, 3, 1)) is None
    assert calendar.timezone == "Europe/London"


def test_closures_inside_the_range_only(site_a, site_b) -> None:
    for day in (date(2027, 2, 28), date(2027, 3, 1), date(2027, 3, 17), date(2027, 3, 31)):
        SiteClosure.objects.create(site=site_a, date=day, reason="staff training")
    SiteClosure.objects.create(site=site_a, date=date(2027, 4, 1))
    SiteClosure.objects.create(site=site_b, date=date(2027, 3, 10))  # another site's
    calendar = site_calendar(site_a, first=date(2027, 3, 1), last=date(2027, 3, 31))
    assert calendar.closures == {date(2027, 3, 1), date(2027, 3, 17), date(2027, 3, 31)}
    assert calendar.closed_because(date(2027, 3, 17)) == "staff training"
    assert calendar.closed_because(date(2027, 3, 10)) is None


def test_us_public_holidays_close_a_us_site(db) -> None:
    calendar = site_calendar(us_site(), first=date(2027, 6, 1), last=date(2027, 7, 31))
    assert calendar.closures == {
        date(2027, 6, 18),  # Juneteenth (Saturday the 19th) observed
        date(2027, 6, 19),
        date(2027, 7, 4),
        MONDAY,
    }
    assert calendar.closed_because(MONDAY) == "Independence Day (observed)"
    # the same dates without a country: no holidays
    plain = site_calendar(
        make_site("plain", dyads=0, assessors=0), first=date(2027, 6, 1), last=date(2027, 7, 31)
    )
    assert plain.closures == frozenset()
    assert plain.closed_because(MONDAY) is None


def test_holidays_across_a_new_year_and_the_range_bounds(db) -> None:
    calendar = site_calendar(us_site(), first=date(2027, 12, 24), last=date(2028, 1, 17))
    assert calendar.closures == {
        date(2027, 12, 24),  # Christmas (Saturday) observed
        date(2027, 12, 25),
        date(2027, 12, 31),  # New Year's Day 2028 (Saturday) observed
        date(2028, 1, 1),
        date(2028, 1, 17),  # Martin Luther King Jr. Day: third Monday of January
    }


def test_a_subdivision_adds_its_own_holidays(db) -> None:
    february = (date(2027, 2, 1), date(2027, 2, 28))
    national = site_calendar(us_site("us"), first=february[0], last=february[1])
    new_york = site_calendar(us_site("ny", "NY"), first=february[0], last=february[1])
    assert national.closures == {date(2027, 2, 15)}  # Washington's Birthday
    assert new_york.closures == {date(2027, 2, 12), date(2027, 2, 15)}  # + Lincoln's Birthday


def test_closures_and_holidays_together(db) -> None:
    site = us_site()
    SiteClosure.objects.create(site=site, date=MONDAY, reason="also closed")
    SiteClosure.objects.create(site=site, date=date(2027, 7, 6), reason="inventory")
    calendar = site_calendar(site, first=date(2027, 7, 1), last=date(2027, 7, 10))
    assert calendar.closures == {date(2027, 7, 4), MONDAY, date(2027, 7, 6)}
    open_days = [
        day
        for day in (date(2027, 7, n) for n in range(1, 11))
        if calendar.closed_because(day) is None
    ]
    assert open_days == [
        date(2027, 7, 1),
        date(2027, 7, 2),
        date(2027, 7, 7),
        date(2027, 7, 8),
        date(2027, 7, 9),
    ]
