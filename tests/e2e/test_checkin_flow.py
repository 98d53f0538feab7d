"""A therapist records a phone check-in's outcome on Today in a real browser: the call's row
is swapped in place (htmx, no page load) with what was recorded, and a concern without a note
is refused on the form, in the clinic's words."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from scheduling.models import CheckInOutcome, Reminder, ScheduledSession, StaffBooking
from tests.e2e.test_staff_flows import a_future_monday

pytestmark = pytest.mark.e2e


def test_a_therapist_records_a_call_on_today(
    page: Page, log_in_as: Any, screenshot: Any, site_a: Any, coordinator_a: Any
) -> None:
    from scheduling.services import participant_enrol

    course = participant_enrol(
        site=site_a,
        code="P-E2E-CALL",
        protocol_slug="mapp-ptsd",
        start_date=a_future_monday(),
        by=coordinator_a,
    )
    call = ScheduledSession.objects.get(course=course, key="phone-1.1")
    # the call is due now (the live server runs on the real clock)
    start = timezone.now() - timedelta(minutes=1)
    ScheduledSession.objects.filter(pk=call.pk).update(
        start=start, end=start + timedelta(minutes=15)
    )
    therapist = StaffBooking.objects.get(session=call, active=True).user
    log_in_as(therapist)
    page.goto("/today/")
    row = page.locator(f"#checkin-{call.pk}")
    expect(row).to_contain_text("P-E2E-CALL")
    expect(row).to_contain_text("No outcome recorded yet.")
    screenshot("before")

    row.get_by_label("Concern").check()
    row.get_by_role("button", name="Record the outcome").click()
    expect(page.locator(f"#checkin-{call.pk}")).to_contain_text("Say what the concern is")
    assert not CheckInOutcome.objects.exists()

    row = page.locator(f"#checkin-{call.pk}")
    row.get_by_label("Reached").check()
    row.get_by_label("Note").fill("Sleeping well, no concerns")
    row.get_by_role("button", name="Record the outcome").click()
    expect(page.locator(f"#checkin-{call.pk}")).to_contain_text("Reached: Sleeping well")
    expect(page).to_have_url(re.compile(r"/today/$"))  # swapped in place, no page load
    screenshot("recorded")
    recorded = CheckInOutcome.objects.get(session=call)
    assert recorded.outcome == "reached" and recorded.recorded_by == therapist
    # reached: nothing escalates at once (the planner's time-based rows stay as planned)
    assert not Reminder.objects.filter(idempotency_key__contains="/escalation/concern-").exists()
