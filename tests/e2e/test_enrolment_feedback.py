"""Enrolling as a coordinator would, in a real browser: a reminder channel without its address
and a start in the past are refused in place, each saying what to do; once fixed, confirming
says what was booked, in the site's time. Each step leaves a screenshot under
test-artifacts/e2e/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from scheduling.models import Participant, ScheduledSession
from scheduling.selectors import local_text

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")  # site "a"'s zone (tests/conftest.py)


def a_future_monday() -> date:
    today = timezone.now().astimezone(NEW_YORK).date()
    return today + timedelta(days=28 + (7 - today.weekday()) % 7)


def test_enrolment_refuses_in_place_then_says_what_it_booked(
    page: Page,
    screenshot: Callable[[str], Path],
    log_in_as: Callable[[Any], None],
    site_a: Any,
    coordinator_a: Any,
) -> None:
    log_in_as(coordinator_a)
    page.goto("/participants/new/")
    page.get_by_label("Study code", exact=True).fill("P-E2E-7")
    page.get_by_label("Protocol", exact=True).select_option("mapp-ptsd")
    yesterday = timezone.now().astimezone(NEW_YORK).date() - timedelta(days=1)
    page.get_by_label("Course start", exact=True).fill(yesterday.isoformat())
    page.get_by_label("Reminders by", exact=True).select_option("sms")
    page.get_by_role("button", name="Preview the course").click()

    errors = page.locator("ul.errorlist")
    expect(errors.filter(has_text="Reminders by SMS need a phone number")).to_have_count(1)
    screenshot("1-sms-without-a-phone")
    page.get_by_label("Phone", exact=True).fill("+1 555 0100")
    page.get_by_role("button", name="Preview the course").click()
    expect(errors.filter(has_text="is in the past at Site a")).to_have_count(1)
    expect(errors.filter(has_text="back-entry")).to_have_count(1)
    screenshot("2-start-in-the-past")
    assert not Participant.objects.exists()

    page.get_by_label("Course start", exact=True).fill(a_future_monday().isoformat())
    page.get_by_role("button", name="Preview the course").click()
    expect(page.get_by_role("region", name="The planned course")).to_be_visible()
    page.get_by_role("button", name="Confirm and book this course").click()
    expect(page).to_have_url(re.compile(r"/participants/[0-9]+/$"))
    participant = Participant.objects.get(code="P-E2E-7")
    assert (participant.preferred_channel, participant.phone) == ("sms", "+1 555 0100")
    sessions = ScheduledSession.objects.filter(course__participant=participant).order_by("start")
    first = sessions.first()
    assert first is not None
    said = (
        f"Enrolled P-E2E-7: {sessions.count()} sessions booked, "
        f"first on {local_text(first.start, site_a.timezone)}."
    )
    expect(page.get_by_role("status").filter(has_text=said)).to_be_visible()
    screenshot("3-enrolled")
