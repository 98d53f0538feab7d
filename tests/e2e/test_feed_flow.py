"""A live calendar feed, as a coordinator makes one, in a real browser against the live server:
create it on the "Calendar feeds" page, copy its address with the page's Copy button (the
address is shown once), fetch it as a calendar client would (no login), read the calendar
with a second parser, revoke it on the page, and see the same address answer 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import vobject
from playwright.sync_api import BrowserContext, Page, expect

from scheduling.models import CalendarFeed, Course
from tests.e2e.test_staff_flows import course

pytestmark = pytest.mark.e2e
__all__ = ["course"]  # the fixture, shared with the staff flows

Shot = Callable[[str], Path]
LogIn = Callable[[Any], None]


def test_a_coordinator_creates_copies_fetches_and_revokes_a_feed(
    page: Page,
    context: BrowserContext,
    screenshot: Shot,
    log_in_as: LogIn,
    course: Course,
    coordinator_a: Any,
    live_server: Any,
    settings: Any,
) -> None:
    settings.SITE_URL = live_server.url  # the addresses the page shows point at this server
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    log_in_as(coordinator_a)
    page.goto("/today/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar feeds").click()
    expect(page).to_have_url(re.compile(r"/calendar-feeds/$"))
    page.get_by_label("Calendar").select_option(label=f"Site: {course.participant.site.name}")
    page.get_by_label("Name").fill("Site A sessions")
    page.get_by_role("button", name="Create the feed").click()
    expect(page.get_by_role("heading", name="Feed “Site A sessions” created")).to_be_visible()
    screenshot("1-created")

    page.get_by_role("button", name="Copy").first.click()
    expect(page.locator("#feed-address-copied")).to_be_visible()
    address = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(rf"{re.escape(live_server.url)}/feeds/[A-Za-z0-9_-]{{43}}\.ics", address)
    webcal = page.get_by_label(re.compile("webcal address")).input_value()
    assert webcal == "webcal://" + address.split("://", 1)[1]

    fetched = page.request.get(address, headers={"Cookie": ""})
    assert fetched.status == 200
    assert fetched.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = vobject.readOne(fetched.text())
    uids = {event.uid.value for event in calendar.contents["vevent"]}
    assert uids == {str(uid) for uid in course.sessions.values_list("uid", flat=True)}
    assert course.participant.code in fetched.text()

    # the list shows the feed, never its address again
    page.goto("/calendar-feeds/")
    row = page.locator("#feeds tbody tr", has_text="Site A sessions")
    expect(row).to_contain_text("active")
    assert address.rsplit("/", 1)[1] not in page.content()
    screenshot("2-listed")
    row.get_by_role("button", name="Revoke Site A sessions").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.locator("#feeds tbody tr", has_text="Site A sessions")).to_contain_text("revoked")
    screenshot("3-revoked")
    assert CalendarFeed.objects.get().revoked_at is not None
    assert page.request.get(address).status == 404
