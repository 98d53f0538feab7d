"""Today's "Needs attention" misses nothing a coordinator must act on: cancelled or missed
sessions the course still needs with nothing planned in their place, sessions still planned
from such an anchor, and sessions that are over without a status; each says what to do next
and links to the session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from scheduling.models import Course, ScheduledSession
from scheduling.selectors import attention_items, local_text, occurrence_of
from scheduling.services import session_rebook, session_set_status
from tests.conftest import enrol_mapp, once_over

pytestmark = pytest.mark.django_db

BEFORE = datetime(2027, 2, 1, 15, 0, tzinfo=UTC)  # the course starts on Mon 1 Mar 2027


def row(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


def cancel(course: Course, key: str, by) -> ScheduledSession:
    return session_set_status(
        session=row(course, key), status="cancelled", reason="travelling", by=by
    )


def section(page: str, anchor: str) -> str:
    """The list under one heading of the attention card."""
    return page.split(f'id="attention-{anchor}"')[1].split("</ul>")[0]


def today_at(client: Client, user, moment: datetime) -> str:
    with time_machine.travel(moment, tick=False):
        client.force_login(user)
        response = client.get("/today/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_cancelled_anchor_flags_it_and_what_is_still_planned_from_it(
    client: Client, site_a, coordinator_a
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = cancel(course, "dosing-1", coordinator_a)
    page = today_at(client, coordinator_a, BEFORE)
    unreplaced = section(page, "unreplaced")
    assert f'href="/sessions/{dosing.pk}/"' in unreplaced
    assert "nothing is planned in its place: rebook it" in unreplaced
    orphaned = section(page, "orphaned")
    # planned from dosing-1 directly (the later integrations) and through the chain (dosing-2
    # is anchored on dosing-1, its own integrations on dosing-2)
    for key in ("integration-1b", "dosing-2", "integration-2a"):
        assert f'href="/sessions/{row(course, key).pk}/"' in orphaned, key
    # the next morning and the calls were cancelled with it: folded into its own item
    for key in ("integration-1a", "phone-1.3"):
        assert row(course, key).status == "cancelled"
        assert f'href="/sessions/{row(course, key).pk}/"' not in page, key
    assert f"which was cancelled ({local_text(dosing.start, site_a.timezone)})" in orphaned
    assert local_text(dosing.start, site_a.timezone).endswith(" 09:00 EDT")  # the site's time
    assert "rebook dosing-1" in orphaned
    # sessions before it are not planned from it
    assert f'href="/sessions/{row(course, "prep-2").pk}/"' not in orphaned


def test_a_rebooking_clears_both_and_a_cancelled_rebooking_is_listed_once(
    site_a, coordinator_a
) -> None:
    """ "In its place": another open session of the course with the same template and the
    same occurrence; the row a rebooking replaced (superseded) is never listed again."""
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = cancel(course, "dosing-1", coordinator_a)
    items = attention_items(coordinator_a, site_a, BEFORE)
    assert [i.session.pk for i in items["unreplaced"]] == [dosing.pk]
    assert items["orphaned"]
    with time_machine.travel(BEFORE, tick=False):
        rebooked = session_rebook(
            session=dosing, start=dosing.start, by=coordinator_a, reason="back from travel"
        ).session
    items = attention_items(coordinator_a, site_a, BEFORE)
    assert items["unreplaced"] == [] and items["orphaned"] == []
    again = cancel(course, "dosing-1", coordinator_a)  # the open row under that key: the new one
    assert again.pk == rebooked.pk != dosing.pk
    items = attention_items(coordinator_a, site_a, BEFORE)
    assert [i.session.pk for i in items["unreplaced"]] == [rebooked.pk]


def test_the_occurrence_counts_for_repeated_sessions(site_a, coordinator_a) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    call = row(course, "phone-1.3")
    with once_over(call):
        session_set_status(session=call, status="missed", reason="no answer", by=coordinator_a)
    # phone-1.4 and phone-1.5 are open, but they are other calls of the protocol
    items = attention_items(coordinator_a, site_a, BEFORE)
    assert [i.session.key for i in items["unreplaced"]] == ["phone-1.3"]
    assert items["orphaned"] == []  # nothing is anchored on a call
    assert occurrence_of(call) == 3 and occurrence_of(row(course, "dosing-1")) == 1
    # once its day is over, a missed call stays a recorded deviation, not a to-do
    later = datetime.combine(call.window_end + timedelta(days=1), datetime.min.time(), UTC)
    assert attention_items(coordinator_a, site_a, later + timedelta(hours=12))["unreplaced"] == []


def test_an_anchor_is_needed_after_its_window_too(site_a, coordinator_a) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = cancel(course, "dosing-1", coordinator_a)
    after = datetime.combine(dosing.window_end + timedelta(days=2), datetime.min.time(), UTC)
    items = attention_items(coordinator_a, site_a, after)
    assert [i.session.key for i in items["unreplaced"]] == ["dosing-1"]


def test_a_missed_session_the_course_waits_for_stays_listed_after_its_window(
    site_a, coordinator_a
) -> None:
    """The attention list and the rule that completes a course agree: a missed integration is
    made up later (not tied to its anchor's day), so the course cannot complete without it; it
    stays listed after its window until it is rebooked or the course is ended."""
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    missed = row(course, "integration-1b")
    with once_over(missed):
        session_set_status(session=missed, status="missed", reason="unwell", by=coordinator_a)
    later = datetime.combine(missed.window_end + timedelta(days=10), datetime.min.time(), UTC)
    items = attention_items(coordinator_a, site_a, later)
    assert [i.session.key for i in items["unreplaced"]] == ["integration-1b"]
    course.refresh_from_db()
    assert course.status == Course.Status.ACTIVE  # and it cannot complete while it is missing


def test_dependents_cancelled_with_their_anchor_fold_into_its_item(site_a, coordinator_a):
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    cancel(course, "dosing-1", coordinator_a)  # the next morning and five calls go with it
    items = attention_items(coordinator_a, site_a, BEFORE)
    assert [i.session.key for i in items["unreplaced"]] == ["dosing-1"]
    assert "6 sessions anchored on it were cancelled or missed with it" in (
        items["unreplaced"][0].next_step
    )


def test_an_ended_course_needs_nothing_more(site_a, coordinator_a) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    cancel(course, "dosing-1", coordinator_a)
    Course.objects.filter(pk=course.pk).update(status=Course.Status.WITHDRAWN)
    items = attention_items(coordinator_a, site_a, BEFORE)
    assert items["unreplaced"] == [] and items["orphaned"] == []


def test_a_session_over_without_a_status_needs_one(client: Client, site_a, coordinator_a):
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep = row(course, "prep-1")
    after = prep.end + timedelta(days=3)
    overdue = section(today_at(client, coordinator_a, after), "overdue")
    assert f'href="/sessions/{prep.pk}/"' in overdue
    assert "Ended Mon 1 Mar 2027 11:30 EST and is still planned" in overdue
    assert "record whether it was completed or missed" in overdue
    with once_over(prep):
        session_set_status(session=prep, status="completed", by=coordinator_a)
    assert f'href="/sessions/{prep.pk}/"' not in today_at(client, coordinator_a, after)


def test_another_sites_coordinator_sees_none_of_it(
    client: Client, site_a, coordinator_a, coordinator_b
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    cancel(course, "dosing-1", coordinator_a)
    page = today_at(client, coordinator_b, row(course, "prep-1").end + timedelta(days=1))
    assert "P-001" not in page
