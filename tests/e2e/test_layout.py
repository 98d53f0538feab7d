"""Layout on a common laptop screen (1366x768): the month calendar fits without an inner
scroll, closed days and holidays are shaded with their reason, study codes stay on one line,
Today's rows link to their session and participant, and the admin's header does not collide
with the way back to the staff pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, ViewportSize, expect

from scheduling.models import Course, ScheduledSession, Site, SiteClosure
from scheduling.services import BookingConflict, SchedulingError, participant_enrol

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")
Shot = Callable[[str], Path]
LogIn = Callable[[Any], None]
LAPTOP: ViewportSize = {"width": 1366, "height": 768}

# The pairs of boxes that overlap or come closer side by side than a readable gap (8 px):
# every line box (client rect) of the words and controls of one part of the header against
# those of another (a box can hold text overflowing it).
OVERLAPS = """([one, other]) => {
    const GAP = 8;
    const boxes = selector => [...document.querySelectorAll(selector)].flatMap(
        element => [...element.getClientRects()].map(r => [element.textContent.trim(), r]));
    const found = [];
    for (const [a, r] of boxes(one)) for (const [b, s] of boxes(other))
        if (r.left < s.right + GAP && s.left < r.right + GAP
            && r.top < s.bottom && s.top < r.bottom)
            found.push([a, b]);
    return found;
}"""
HEADER_PARTS = {
    "title": "#site-name a",
    "user tools": "#user-tools strong, #user-tools a, #user-tools button",
    "way back to the pages": "nav.admin-back a",
}


@pytest.fixture
def laptop(context: BrowserContext, page: Page) -> Page:
    page.set_viewport_size(LAPTOP)
    return page


def next_month_first() -> date:
    today = timezone.now().astimezone(NEW_YORK).date()
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


@pytest.fixture
def busy_month(site_a: Site, coordinator_a: Any) -> list[Course]:
    """Site A closed on US holidays and on one closure date next month, with several courses
    running through that month."""
    site_a.country = "US"
    site_a.save()
    first = next_month_first()
    SiteClosure.objects.create(site=site_a, date=first + timedelta(days=14), reason="Staff day")
    courses = []
    start = first - timedelta(days=21)
    for n in range(1, 7):
        start += timedelta(days=3)
        try:
            courses.append(
                participant_enrol(
                    site=site_a,
                    code=f"D-{n:03d}",  # as wide as seed_demo's codes
                    protocol_slug="mapp-ptsd",
                    start_date=start,
                    by=coordinator_a,
                )
            )
        except (SchedulingError, BookingConflict):
            continue  # a closed start day or a full week: the others fill the month
    assert len(courses) >= 3
    return courses


def assert_codes_whole(page: Page) -> None:
    """Every study code in the month on one line, not wrapped and not cut short."""
    codes = page.locator("a.booking .code")
    assert codes.count() > 10
    lines = codes.evaluate_all(
        """codes => codes.map(c => {
            const link = c.closest("a");
            return [c.textContent, c.getClientRects().length, getComputedStyle(link).whiteSpace,
                    link.scrollWidth - link.clientWidth];
        })"""
    )
    whole = [rects == 1 and space == "nowrap" and cut <= 0 for _, rects, space, cut in lines]
    assert all(whole), lines


def test_a_month_with_few_closed_days_shows_every_code_whole(
    laptop: Page, screenshot: Shot, log_in_as: LogIn, coordinator_a: Any, busy_month: Any
) -> None:
    """The narrowest columns: no holidays and no closure date, so only weekends are closed
    and every other day of the month shares the width (as at a site outside the holidays
    package's countries)."""
    site = busy_month[0].participant.site
    site.country = ""
    site.save()
    SiteClosure.objects.filter(site=site).delete()
    log_in_as(coordinator_a)
    page = laptop
    page.goto(f"/calendar/?site=a&view=month&by=room&date={next_month_first().isoformat()}")
    expect(page.locator("a.booking").first).to_be_visible()
    screenshot("month-few-closed-days")
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    assert_codes_whole(page)


def test_the_month_calendar_fits_a_laptop_screen_with_closed_days_shaded(
    laptop: Page, screenshot: Shot, log_in_as: LogIn, coordinator_a: Any, busy_month: Any
) -> None:
    page = laptop
    log_in_as(coordinator_a)
    first = next_month_first()
    page.goto(f"/calendar/?site=a&view=month&by=room&date={first.isoformat()}")
    expect(page.locator("table.site-grid.month")).to_be_visible()
    expect(page.locator("a.booking").first).to_be_visible()
    screenshot("1-month")

    # no horizontal scroll: neither the page nor the calendar's own container
    widths = page.evaluate(
        """() => {
        const grid = document.querySelector(".grid-scroll");
        const root = document.documentElement;
        return [root.scrollWidth, root.clientWidth, grid.scrollWidth, grid.clientWidth];
    }"""
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    assert widths[2] <= widths[3], f"the calendar scrolls sideways: {widths}"

    # closed days shaded, with the reason as the title: weekends, the holiday, the closure
    closure = first + timedelta(days=14)
    saturday = first + timedelta(days=(5 - first.weekday()) % 7)
    headers = page.locator("table.site-grid thead th.closed")
    titles = headers.evaluate_all("cells => cells.map(c => c.title)")
    assert "Closed: Staff day" in titles
    assert "Closed: not open on Saturdays" in titles
    closed = page.locator("table.site-grid tbody td.closed").first
    open_cell = page.locator("table.site-grid tbody td:not(.closed)").first
    shade = closed.evaluate("c => getComputedStyle(c).backgroundColor")
    plain = open_cell.evaluate("c => getComputedStyle(c).backgroundColor")
    assert shade != plain, (shade, plain)
    day_columns = page.locator("table.site-grid thead th").evaluate_all(
        "cells => cells.map(c => c.classList.contains('closed'))"
    )[1:]
    assert day_columns[closure.day - 1] and day_columns[saturday.day - 1]
    screenshot("2-closed-days")

    assert_codes_whole(page)


def test_the_holidays_have_their_names(
    laptop: Page, log_in_as: LogIn, site_a: Site, coordinator_a: Any
) -> None:
    site_a.country = "US"
    site_a.save()
    log_in_as(coordinator_a)
    year = timezone.now().astimezone(NEW_YORK).year + 1
    laptop.goto(f"/calendar/?site=a&view=month&by=room&date={year}-07-01")
    fourth = laptop.locator("table.site-grid thead th").nth(4)  # the row heading is nth(0)
    assert "Independence Day" in (fourth.get_attribute("title") or "")
    assert "closed" in (fourth.get_attribute("class") or "")


@pytest.fixture
def tomorrow_session(site_a: Site, coordinator_a: Any) -> Iterator[ScheduledSession]:
    """A course whose first session is moved (in the database) to tomorrow 10:00 at the site,
    so that it is a row on Today."""
    today = timezone.now().astimezone(NEW_YORK).date()
    course = participant_enrol(
        site=site_a,
        code="P-TODAY",
        protocol_slug="mapp-ptsd",
        start_date=today + timedelta(days=35 + (7 - today.weekday()) % 7),
        by=coordinator_a,
    )
    session = ScheduledSession.objects.filter(course=course).order_by("start").first()
    assert session is not None
    start = datetime.combine(today + timedelta(days=1), time(10), NEW_YORK)
    ScheduledSession.objects.filter(pk=session.pk).update(
        start=start, end=start + (session.end - session.start)
    )
    yield session


def test_rows_on_today_link_to_their_session_and_participant(
    laptop: Page,
    screenshot: Shot,
    log_in_as: LogIn,
    coordinator_a: Any,
    tomorrow_session: ScheduledSession,
) -> None:
    page = laptop
    log_in_as(coordinator_a)
    page.goto("/today/")
    row = page.locator("table tbody tr", has_text="P-TODAY")
    expect(row).to_have_count(1)
    screenshot("1-today")
    participant = row.get_by_role("link", name="P-TODAY")
    expect(participant).to_have_attribute(
        "href", f"/participants/{tomorrow_session.course.participant_id}/"
    )
    session_link = row.get_by_role("link", name=tomorrow_session.title)
    expect(session_link).to_have_attribute("href", f"/sessions/{tomorrow_session.pk}/")
    session_link.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(tomorrow_session.title)
    code = row.locator("td.code")
    page.go_back()
    assert code.evaluate("c => getComputedStyle(c).whiteSpace") == "nowrap"


@pytest.mark.parametrize("width", [1366, 1280, 1100, 1024, 800])
def test_the_admin_header_does_not_collide_with_the_menu(
    page: Page, screenshot: Shot, log_in_as: LogIn, coordinator_a: Any, width: int
) -> None:
    coordinator_a.is_staff = True
    coordinator_a.first_name, coordinator_a.last_name = "Alexandra", "Montgomery-Whitfield"
    coordinator_a.save()
    page.set_viewport_size({"width": width, "height": 768})
    log_in_as(coordinator_a)
    page.goto("/admin/")
    back = page.locator("nav.admin-back")
    expect(back).to_be_visible()
    # people are named by their one display name, here too
    expect(page.locator("#user-tools")).to_contain_text("Alexandra Montgomery-Whitfield")
    screenshot(f"admin-{width}")
    parts = list(HEADER_PARTS)
    for i, one in enumerate(parts):
        for other in parts[i + 1 :]:
            found = page.evaluate(OVERLAPS, [HEADER_PARTS[one], HEADER_PARTS[other]])
            assert not found, f"the {one} collide with the {other} at {width}px: {found}"
    # each link of the way back is whole and inside the header
    header = page.locator("#header").bounding_box()
    assert header is not None
    for link in back.get_by_role("link").all():
        box = link.bounding_box()
        assert box is not None
        assert header["x"] <= box["x"] and box["x"] + box["width"] <= header["x"] + header["width"]
        assert (
            header["y"] <= box["y"] and box["y"] + box["height"] <= header["y"] + header["height"]
        )
