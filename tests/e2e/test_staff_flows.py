"""Staff flows in a real browser against the live server: log in, enrol a participant from the
preview, find a participant and their course timeline, reschedule a dosing session with a
preview and watch its integration sessions move (in the database, on the participant's page and
in the site calendar), and the printable schedule. Each step leaves a screenshot under
test-artifacts/e2e/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from protocol.spec import ProtocolSpec
from scheduling.models import Course, Participant, ScheduledSession
from scheduling.services import participant_enrol

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")  # site "a"'s zone (tests/conftest.py)
Shot = Callable[[str], Path]
LogIn = Callable[[Any], None]


def a_future_monday() -> date:
    """A Monday four to five weeks ahead: the whole course lies in the future."""
    today = timezone.now().astimezone(NEW_YORK).date()
    return today + timedelta(days=28 + (7 - today.weekday()) % 7)


def sign_in(page: Page) -> None:
    """Sign in through the login form as site A's coordinator; lands on Today."""
    page.goto("/login/")
    page.get_by_label("User name").fill("coordinator-a")
    page.get_by_label("Password").fill("test-password-1234")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/today/$"))


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Course:
    return participant_enrol(
        site=site_a,
        code="P-E2E-1",
        protocol_slug="mapp-ptsd",
        start_date=a_future_monday(),
        by=coordinator_a,
    )


def starts(course: Course) -> dict[str, datetime]:
    return dict(ScheduledSession.objects.filter(course=course).values_list("key", "start"))


def local_day(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def day_heading(day: date) -> str:
    """A day's column heading in the week calendar: "Thu 21 Jan"."""
    return f"{day:%a} {day.day} {day:%b}"


# Where a booking link sits in the calendar grid: its row's heading and its column's heading.
WHERE_IN_GRID = """link => {
    const cell = link.closest("td");
    const row = cell.closest("tr");
    const head = cell.closest("table").tHead.rows[0].cells[cell.cellIndex];
    return [row.cells[0].textContent.trim(), head.textContent.trim()];
}"""


def calendar_place(page: Page, session: ScheduledSession) -> tuple[str, str]:
    """Open the site calendar (week, by room) on the week of ``session`` and return the row and
    the day column where its booking is shown."""
    site = session.course.participant.site
    day = local_day(session.start)
    page.goto(f"/calendar/?site={site.slug}&view=week&by=room&date={day.isoformat()}")
    link = page.locator(f'table.site-grid a.booking[href="/sessions/{session.pk}/"]')
    expect(link).to_have_count(1)
    row, column = link.evaluate(WHERE_IN_GRID)
    return str(row), str(column)


def test_logging_in_lands_on_today_and_a_wrong_password_is_refused(
    page: Page, screenshot: Shot, site_a: Any, coordinator_a: Any
) -> None:
    page.goto("/today/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/today/$"))
    page.get_by_label("User name").fill("coordinator-a")
    page.get_by_label("Password").fill("not-the-password")
    screenshot("1-login-form")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errorlist")).to_contain_text("enter a correct username and password")
    screenshot("2-wrong-password")

    page.get_by_label("Password").fill("test-password-1234")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/today/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Today at {site_a.name}")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    # Styled: the live server serves /static/css/app.css.
    css = page.request.get("/static/css/app.css")
    assert css.ok, css.status
    screenshot("3-today")


def test_the_participant_page_shows_the_course_timeline(
    page: Page, screenshot: Shot, log_in_as: LogIn, course: Course, coordinator_a: Any
) -> None:
    log_in_as(coordinator_a)
    page.goto("/participants/")
    screenshot("1-participants")
    page.get_by_role("link", name="P-E2E-1").click()
    expect(page).to_have_url(re.compile(rf"/participants/{course.participant_id}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("P-E2E-1")
    timeline = page.locator("svg.timeline")
    expect(timeline).to_be_visible()
    expect(timeline.locator("title").first).to_contain_text("Course timeline of P-E2E-1")
    expect(timeline.locator("g.mark.kind-dosing")).to_have_count(3)
    sessions = ScheduledSession.objects.filter(course=course).count()
    expect(timeline.locator("g.mark")).to_have_count(sessions)
    screenshot("2-timeline")


def test_rescheduling_a_dosing_session_previews_then_moves_its_integration_sessions(
    page: Page, screenshot: Shot, log_in_as: LogIn, course: Course, coordinator_a: Any
) -> None:
    before = starts(course)
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    first_integration = ScheduledSession.objects.get(course=course, key="integration-1a")
    new_day = local_day(dosing.start) + timedelta(days=1)
    new_time = dosing.start.astimezone(NEW_YORK).strftime("%H:%M")

    log_in_as(coordinator_a)
    assert first_integration.room is not None
    row, column = calendar_place(page, first_integration)
    assert first_integration.room.name in row
    assert column == day_heading(local_day(first_integration.start))
    screenshot("0-calendar-before")

    page.goto(f"/participants/{course.participant_id}/")
    page.get_by_role("link", name=dosing.title, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    screenshot("1-session")

    move = page.get_by_role("region", name="Reschedule")
    move.get_by_label("New date").fill(new_day.isoformat())
    move.get_by_label("New start time").fill(new_time)
    move.get_by_label("Reason").fill("Participant asked to come a day later")
    move.get_by_role("button", name="Preview").click()

    expect(move.get_by_role("heading", name="What would move")).to_be_visible()
    diff = move.get_by_role("table")
    expect(diff).to_contain_text("Integration session 1a")
    screenshot("2-preview")
    assert starts(course) == before, "a preview writes nothing"

    move.get_by_role("button", name="Apply these moves").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    expect(page.get_by_role("heading", name="What would move")).to_have_count(0)
    details = page.get_by_role("region", name="Details")
    expect(details).to_contain_text(f"{new_day:%A} {new_day.day} {new_day:%B %Y}, {new_time}")
    screenshot("3-applied")

    after = starts(course)
    assert local_day(after["dosing-1"]) == new_day
    assert local_day(after["integration-1a"]) == new_day + timedelta(days=1)
    assert after["integration-1a"] != before["integration-1a"]
    assert after["prep-1"] == before["prep-1"]

    page.get_by_role("link", name="P-E2E-1").click()
    integration = ScheduledSession.objects.get(course=course, key="integration-1a")
    listed = page.get_by_role("row").filter(has_text=integration.title)
    expect(listed).to_contain_text(f"{integration.start.astimezone(NEW_YORK):%a %-d %b %Y}")
    screenshot("4-participant-after")

    # The site calendar shows every integration session of that dosing at its new day and room.
    moved = ScheduledSession.objects.filter(course=course, key__startswith="integration-1")
    assert moved.count() == 3
    for integration in moved.select_related("room", "course__participant__site"):
        assert integration.start != before[integration.key]
        row, column = calendar_place(page, integration)
        assert integration.room is not None and integration.room.name in row
        assert column == day_heading(local_day(integration.start))
        screenshot(f"5-calendar-after-{integration.key}")


def test_enrolling_from_the_preview_books_the_previewed_course(
    page: Page,
    screenshot: Shot,
    log_in_as: LogIn,
    site_a: Any,
    coordinator_a: Any,
    mapp_spec: ProtocolSpec,
) -> None:
    sessions = sum(s.repeat_count for s in mapp_spec.sessions)
    start = a_future_monday()
    log_in_as(coordinator_a)
    page.goto("/participants/")
    page.get_by_role("link", name="Enrol a participant").click()
    expect(page).to_have_url(re.compile(r"/participants/new/$"))
    page.get_by_label("Study code", exact=True).fill("P-E2E-2")
    page.get_by_label("Protocol", exact=True).select_option("mapp-ptsd")
    page.get_by_label("Course start", exact=True).fill(start.isoformat())
    screenshot("1-form")
    page.get_by_role("button", name="Preview the course").click()

    planned = page.get_by_role("region", name="The planned course")
    expect(planned).to_be_visible()
    expect(planned.locator("tbody tr")).to_have_count(sessions)
    first_dosing = page.get_by_role("cell", name=re.compile(r"^Dosing session 1\b"))
    previewed_dosing = planned.get_by_role("row").filter(has=first_dosing)
    expect(previewed_dosing).to_have_count(1)
    previewed = previewed_dosing.inner_text()
    screenshot("2-preview")
    assert not Participant.objects.filter(code="P-E2E-2").exists(), "a preview books nothing"

    page.get_by_role("button", name="Confirm and book this course").click()
    expect(page).to_have_url(re.compile(r"/participants/[0-9]+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("P-E2E-2")
    expect(page.locator("svg.timeline g.mark")).to_have_count(sessions)
    screenshot("3-enrolled")
    participant = Participant.objects.get(code="P-E2E-2")
    assert page.url.endswith(f"/participants/{participant.pk}/")
    course = Course.objects.get(participant=participant)
    assert course.start_date == start
    assert ScheduledSession.objects.filter(course=course).count() == sessions
    # What was booked is what the preview showed, in the site's local time.
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    begin, end = dosing.start.astimezone(NEW_YORK), dosing.end.astimezone(NEW_YORK)
    assert f"{begin:%a} {begin.day} {begin:%b %Y}" in previewed
    assert f"{begin:%H:%M}\N{EN DASH}{end:%H:%M}" in previewed, previewed


def test_the_printable_schedule_lists_every_session_and_prints_only_the_schedule(
    page: Page, screenshot: Shot, log_in_as: LogIn, course: Course, coordinator_a: Any
) -> None:
    sessions = list(ScheduledSession.objects.filter(course=course).order_by("start"))
    log_in_as(coordinator_a)
    page.goto(f"/participants/{course.participant_id}/")
    page.get_by_role("link", name="Printable schedule for the participant").click()
    expect(page).to_have_url(re.compile(rf"/participants/{course.participant_id}/schedule/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your session schedule")
    handout = page.locator("article.handout")
    expect(handout).to_contain_text("P-E2E-1")
    expect(handout.locator("tbody tr")).to_have_count(len(sessions))
    dosing = next(s for s in sessions if s.key == "dosing-1")
    begin, end = dosing.start.astimezone(NEW_YORK), dosing.end.astimezone(NEW_YORK)
    dosing_row = handout.locator("tbody tr").filter(has_text=dosing.title).first
    expect(dosing_row).to_contain_text(f"{begin:%A} {begin.day} {begin:%B %Y}")
    expect(dosing_row).to_contain_text(f"{begin:%H:%M}\N{EN DASH}{end:%H:%M}")
    expect(dosing_row).to_contain_text("overnight")
    text = handout.inner_text()
    for word in ("MDMA", "MAPP", "mg"):  # no protocol, drug or dose on the handout
        assert not re.search(rf"\b{word}\b", text), word
    screenshot("1-screen")

    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("link", name="P-E2E-1")).to_be_hidden()
    expect(handout).to_be_visible()
    printed = screenshot("2-print").with_suffix(".pdf")
    page.pdf(path=str(printed), format="A4")
    assert printed.stat().st_size > 0


def test_pages_fit_a_tablet_and_work_from_the_keyboard(
    page: Page, course: Course, coordinator_a: Any, log_in_as: LogIn, screenshot: Shot
) -> None:
    """On a portrait tablet no page scrolls sideways (the calendar grid scrolls inside its own
    box), and the skip link and the main navigation are reached with Tab and shown focused."""
    log_in_as(coordinator_a)
    page.set_viewport_size({"width": 768, "height": 1024})
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    for name, url in [
        ("today", "/today/"),
        ("participants", "/participants/"),
        ("participant", f"/participants/{course.participant_id}/"),
        ("session", f"/sessions/{dosing.pk}/"),
        ("calendar", f"/calendar/?date={local_day(dosing.start).isoformat()}"),
        ("enrol", "/participants/new/"),
        ("protocols", "/protocols/mapp-ptsd/v1/"),
    ]:
        page.goto(url)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{url} scrolls sideways by {overflow}px on a tablet"
        screenshot(f"tablet-{name}")
    page.goto("/today/")
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    expect(page.locator("a.skip")).to_be_in_viewport()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Today")
    outline = focused.evaluate("element => getComputedStyle(element).outlineStyle")
    assert outline != "none"
