"""Cancelling a dosing session as a coordinator would, in a real browser against the live
server: log in, open the dosing session, preview the cancellation and see what happens to each
session planned from it, apply it with a reason (the next morning and the phone check-ins are
cancelled with it and their rooms and staff freed, on the page and in the database), then
rebook the dosing session and see them planned again. Each step leaves a screenshot under
test-artifacts/e2e/."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from scheduling.models import Course, RoomBooking, ScheduledSession, StaffBooking
from tests.e2e.test_staff_flows import NEW_YORK, course, sign_in

pytestmark = pytest.mark.e2e
__all__ = ["course"]  # the fixture, shared with the staff flows

Shot = Callable[[str], Path]
TIED = ["integration-1a", *(f"phone-1.{n}" for n in range(1, 6))]


def current(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


def active_bookings(session: ScheduledSession) -> tuple[int, int]:
    return (
        RoomBooking.objects.filter(session=session, active=True).count(),
        StaffBooking.objects.filter(session=session, active=True).count(),
    )


def test_cancelling_a_dosing_session_cancels_what_goes_with_it_and_rebooking_replans_it(
    page: Page, screenshot: Shot, course: Course, coordinator_a: Any
) -> None:
    dosing = current(course, "dosing-1")
    morning = current(course, "integration-1a")
    later = current(course, "integration-1b")
    assert morning.room_id is not None and active_bookings(morning) == (1, 2)

    sign_in(page)
    page.goto(f"/participants/{course.participant_id}/")
    page.get_by_role("link", name=dosing.title, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    screenshot("1-dosing-session")

    # preview: each dependent and what happens to it; nothing is stored
    status = page.get_by_role("region", name="Change status")
    status.get_by_label("Status").select_option("cancelled")
    status.get_by_label("Reason").fill("Participant unwell")
    status.get_by_role("button", name="Preview").click()
    preview = status.locator("#status-preview")
    expect(preview).to_be_visible()
    for key in TIED:
        row = preview.locator(f'tr[data-key="{key}"]')
        expect(row).to_contain_text("cancelled with it")
    expect(preview.locator('tr[data-key="integration-1b"]')).to_contain_text(
        "re-planned when it is rebooked"
    )
    expect(preview.locator('tr[data-key="dosing-2"]')).to_contain_text("stays planned")
    screenshot("2-cancel-preview")
    assert current(course, "dosing-1").status == "planned", "a preview writes nothing"
    assert active_bookings(morning) == (1, 2)

    # apply with the reason
    status.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(rf"/sessions/{dosing.pk}/$"))
    expect(page.get_by_role("region", name="Details")).to_contain_text("Cancelled")
    expect(page.get_by_role("region", name="Deviations")).to_contain_text("Participant unwell")
    expect(page.get_by_role("region", name="Rebook")).to_be_visible()
    screenshot("3-cancelled")
    for key in ["dosing-1", *TIED]:
        s = current(course, key)
        assert s.status == "cancelled", key
        assert active_bookings(s) == (0, 0), key  # room and staff free again
        assert s.deviations.get().reason == "Participant unwell", key
    assert current(course, "integration-1b").status == "planned"

    # the participant's page shows them cancelled; the calendar no longer holds the room
    page.goto(f"/participants/{course.participant_id}/")
    expect(page.get_by_role("row").filter(has_text=morning.title)).to_contain_text("Cancelled")
    day = morning.start.astimezone(NEW_YORK).date()
    page.goto(f"/calendar/?site=a&view=week&by=room&date={day.isoformat()}")
    expect(page.locator(f'a.booking[href="/sessions/{morning.pk}/"]')).to_have_count(0)
    screenshot("4-calendar-room-free")

    # a session planned from it says it waits for the rebooking
    page.goto(f"/sessions/{later.pk}/")
    expect(page.get_by_role("status").filter(has_text="is rebooked")).to_be_visible()

    # rebook the dosing session a week later: preview, then apply
    new_day = dosing.start.astimezone(NEW_YORK).date() + timedelta(days=7)
    page.goto(f"/sessions/{dosing.pk}/")
    rebook = page.get_by_role("region", name="Rebook")
    rebook.get_by_label("Rebook on").fill(new_day.isoformat())
    rebook.get_by_label("Start time").fill("09:00")
    rebook.get_by_role("button", name="Preview").click()
    booked = rebook.locator("#rebook-preview")
    expect(booked).to_be_visible()
    for key in ["dosing-1", *TIED]:
        expect(booked.locator(f'tr[data-key="{key}"]')).to_have_count(1)
    expect(rebook.get_by_role("row").filter(has_text="Integration session 1b")).to_have_count(1)
    screenshot("5-rebook-preview")
    assert not ScheduledSession.objects.filter(course=course, replaces__isnull=False).exists()

    rebook.get_by_role("button", name="Apply this rebooking").click()
    new = current(course, "dosing-1")
    assert new.pk != dosing.pk and new.replaces_id == dosing.pk
    expect(page).to_have_url(re.compile(rf"/sessions/{new.pk}/$"))
    details = page.get_by_role("region", name="Details")
    expect(details).to_contain_text(f"{new_day:%A} {new_day.day} {new_day:%B %Y}, 09:00")
    expect(details).to_contain_text("Planned")
    screenshot("6-rebooked")

    assert new.start.astimezone(NEW_YORK).date() == new_day
    assert active_bookings(new) == (1, 2)
    for key in TIED:
        s = current(course, key)
        assert s.status == "planned" and s.replaces is not None, key
        assert active_bookings(s)[1] >= 1, key
    morning_again = current(course, "integration-1a")
    assert morning_again.start.astimezone(NEW_YORK).date() == new_day + timedelta(days=1)
    assert active_bookings(morning_again) == (1, 2)
    replanned = current(course, "integration-1b")
    assert replanned.start.astimezone(NEW_YORK).date() >= new_day + timedelta(days=5)
    # the cancelled sessions stay in the record, cancelled
    assert ScheduledSession.objects.get(pk=dosing.pk).status == "cancelled"

    page.goto(f"/participants/{course.participant_id}/")
    expect(page.get_by_role("row").filter(has_text=morning.title)).to_have_count(2)
    screenshot("7-participant-after")
