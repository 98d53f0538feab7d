"""A coordinator moves a dosing session in a real browser: a time outside the site's opening
hours is refused on the page with the rule it breaks (and nothing is written); a time inside
them is previewed with its times, rooms and staff; applying it says what was done and the
session shows its new time. Screenshots under test-artifacts/e2e/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from scheduling.models import Course, ScheduledSession
from tests.e2e.test_staff_flows import NEW_YORK, course, local_day, sign_in, starts

pytestmark = pytest.mark.e2e
__all__ = ["course"]  # the fixture, shared with the staff flows

Shot = Callable[[str], Path]


def test_a_move_outside_opening_hours_is_refused_then_a_valid_move_is_previewed_and_applied(
    page: Page, screenshot: Shot, course: Course, coordinator_a: Any, site_a: Any
) -> None:
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    day = local_day(dosing.start)
    weekday = f"{day:%A}s"
    before = starts(course)

    sign_in(page)  # as a coordinator would, through the form

    page.goto(f"/participants/{course.participant_id}/")
    page.get_by_role("link", name=dosing.title, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    move = page.get_by_role("region", name="Reschedule")

    # 17:30: an 8-hour session would end at 01:30, after the site closes at 18:00
    move.get_by_label("New date").fill(day.isoformat())
    move.get_by_label("New start time").fill("17:30")
    move.get_by_role("button", name="Preview").click()
    refusal = move.locator(".errorlist")
    expect(refusal).to_contain_text(
        f"The site closes at 18:00 on {weekday}: an 8-hour dosing session starting 17:30 "
        "would end at 01:30"
    )
    expect(refusal).to_contain_text("Nearest times that work:")
    expect(move.get_by_role("heading", name="What would move")).to_have_count(0)
    expect(move.get_by_role("button", name="Apply these moves")).to_have_count(0)
    screenshot("1-refused")
    assert starts(course) == before, "a refused preview writes nothing"

    # 03:00 names the opening hours too, not a busy room
    move.get_by_label("New start time").fill("03:00")
    move.get_by_role("button", name="Preview").click()
    expect(move.locator(".errorlist")).to_contain_text(f"The site opens at 08:00 on {weekday}")
    screenshot("2-refused-early")

    # a day later at 09:00: inside the hours and the window
    new_day = day + timedelta(days=1)
    move.get_by_label("New date").fill(new_day.isoformat())
    move.get_by_label("New start time").fill("09:00")
    move.get_by_role("button", name="Preview").click()
    expect(move.get_by_role("heading", name="What would move")).to_be_visible()
    expect(move.locator(".errorlist")).to_have_count(0)
    diff = move.get_by_role("table")
    expect(diff).to_contain_text("Times in America/New_York")
    for heading in ("Session", "From", "To", "Room", "Staff"):
        expect(diff.get_by_role("columnheader", name=heading)).to_be_visible()
    first_cell = page.get_by_role("cell", name=dosing.title, exact=True)
    dosing_row = diff.get_by_role("row").filter(has=first_cell)
    expect(dosing_row).to_contain_text(f"{day:%a} {day.day} {day:%b %Y} 09:00")
    expect(dosing_row).to_contain_text(f"{new_day:%a} {new_day.day} {new_day:%b %Y} 09:00")
    assert dosing.room is not None
    expect(dosing_row).to_contain_text(dosing.room.name)
    expect(diff.get_by_role("row").filter(has_text="Integration session 1a")).to_have_count(1)
    screenshot("3-preview")
    assert starts(course) == before, "a preview writes nothing"

    move.get_by_role("button", name="Apply these moves").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    done = page.get_by_role("status")
    expect(done).to_contain_text(
        re.compile(
            rf"Moved dosing-1 to {new_day:%a} {new_day.day} {new_day:%b %Y} 09:00 E[SD]T; "
            r"\d+ other sessions? re-planned\."
        )
    )
    details = page.get_by_role("region", name="Details")
    expect(details).to_contain_text(f"{new_day:%A} {new_day.day} {new_day:%B %Y}, 09:00")
    screenshot("4-applied")
    after = starts(course)
    assert after["dosing-1"].astimezone(NEW_YORK).date() == new_day
    assert local_day(after["integration-1a"]) == new_day + timedelta(days=1)


def test_a_preview_after_the_sign_in_ended_goes_to_sign_in_and_back(
    page: Page, screenshot: Shot, course: Course, coordinator_a: Any, site_a: Any
) -> None:
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    sign_in(page)
    page.goto(f"/sessions/{dosing.pk}/")
    move = page.get_by_role("region", name="Reschedule")
    expect(move).to_be_visible()

    # the idle sign-in ends while the page is open (the session cookie is gone)
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)
    move.get_by_label("New start time").fill("10:00")
    move.get_by_role("button", name="Preview").click()

    # not a vanished section: the sign-in page, then back to the session
    expect(page).to_have_url(re.compile(rf"/login/\?next=/sessions/{dosing.pk}/$"))
    screenshot("1-sign-in-again")
    page.get_by_label("User name").fill("coordinator-a")
    page.get_by_label("Password").fill("test-password-1234")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    expect(page.get_by_role("region", name="Reschedule")).to_be_visible()


@pytest.mark.console_errors(r"status of 403 \(Forbidden\)", r"Response Status Error Code 403")
def test_a_preview_the_server_refuses_says_so_on_the_page(
    page: Page, screenshot: Shot, course: Course, coordinator_a: Any, site_a: Any
) -> None:
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    before = starts(course)
    sign_in(page)
    page.goto(f"/sessions/{dosing.pk}/")
    move = page.get_by_role("region", name="Reschedule")
    problem = page.get_by_role("alert")
    expect(problem).to_be_hidden()

    # the form's CSRF cookie is gone (cleared by the browser, or another tab signed out):
    # the server answers 403, which htmx does not swap in
    page.context.clear_cookies(name=settings.CSRF_COOKIE_NAME)
    move.get_by_label("New start time").fill("10:00")
    move.get_by_role("button", name="Preview").click()
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("That was refused")
    expect(problem).to_contain_text("Reload the page")
    expect(move).to_be_visible()  # the section is still there, as it was
    screenshot("1-refused-by-the-server")
    assert starts(course) == before
