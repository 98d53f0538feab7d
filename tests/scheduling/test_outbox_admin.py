"""The admin's outbox: every reminder row, read-only, filtered and searched, scoped by site
(another site's rows and their history pages do not exist for the user); a failed row can be
sent again by the site's coordinators. Check-in outcomes are read-only there too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from scheduling.models import CheckInOutcome, Reminder, ScheduledSession
from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db


def url(view: str, *args: Any, model: str = "reminder") -> str:
    return reverse(f"admin:scheduling_{model}_{view}", args=args)


def row(session: ScheduledSession, suffix: str, **fields: Any) -> Reminder:
    values: dict[str, Any] = {
        "site": session.course.participant.site,
        "session": session,
        "participant": session.course.participant,
        "message": "upcoming",
        "channel": "email",
        "due_at": session.start - timedelta(hours=24),
        "session_start": session.start,
        "idempotency_key": f"{session.uid}/{suffix}",
    }
    values.update(fields)
    return Reminder.objects.create(**values)


@pytest.fixture
def rows(site_a: Any, site_b: Any, coordinator_a: Any, coordinator_b: Any) -> dict[str, Reminder]:
    at_a = enrol_mapp(site_a, "PA-1", coordinator_a).sessions.get(key="dosing-1")
    at_b = enrol_mapp(site_b, "PB-1", coordinator_b).sessions.get(key="dosing-1")
    for user in (coordinator_a, coordinator_b):
        user.is_staff = True
        user.save()
    return {
        "failed": row(at_a, "a-failed", status="failed", reason="550 no such mailbox", attempts=4),
        "sms": row(at_a, "a-sms", channel="sms", status="sent"),
        "b": row(at_b, "b-failed", status="failed", reason="bounced"),
    }


def test_the_outbox_lists_only_the_users_sites_rows_and_filters_them(
    client: Client, coordinator_a: Any, rows: dict[str, Reminder]
) -> None:
    client.force_login(coordinator_a)
    page = client.get(url("changelist")).content.decode()
    assert url("change", rows["failed"].pk) in page and url("change", rows["sms"].pk) in page
    assert url("change", rows["b"].pk) not in page and "PB-1" not in page
    failed = client.get(url("changelist") + "?status__exact=failed").content.decode()
    assert url("change", rows["failed"].pk) in failed
    assert url("change", rows["sms"].pk) not in failed
    sms = client.get(url("changelist") + "?channel__exact=sms").content.decode()
    assert url("change", rows["sms"].pk) in sms and url("change", rows["failed"].pk) not in sms
    found = client.get(url("changelist") + "?q=a-failed").content.decode()
    assert url("change", rows["failed"].pk) in found and url("change", rows["sms"].pk) not in found
    for view in ("change", "history"):
        assert client.get(url(view, rows["b"].pk)).status_code in (302, 404)


def test_rows_are_read_only_and_never_deleted_or_added(
    client: Client, coordinator_a: Any, rows: dict[str, Reminder]
) -> None:
    client.force_login(coordinator_a)
    failed = rows["failed"]
    assert client.get(url("change", failed.pk)).status_code == 200  # to read
    response = client.post(url("change", failed.pk), {"status": "sent", "reason": "edited"})
    assert response.status_code == 403
    assert client.get(url("add")).status_code == 403
    assert client.post(url("delete", failed.pk), {"post": "yes"}).status_code == 403
    failed.refresh_from_db()
    assert failed.status == "failed" and failed.reason == "550 no such mailbox"


def test_send_again_puts_failed_rows_back_due_now_with_who_asked(
    client: Client, coordinator_a: Any, rows: dict[str, Reminder]
) -> None:
    chosen = [rows["failed"].pk, rows["sms"].pk, rows["b"].pk]  # a sent one, another site's
    moment = rows["failed"].due_at + timedelta(days=1)
    with time_machine.travel(moment, tick=False):
        client.force_login(coordinator_a)
        response = client.post(
            url("changelist"), {"action": "send_again", "_selected_action": chosen}
        )
    assert response.status_code == 302
    again = Reminder.objects.get(pk=rows["failed"].pk)
    assert again.status == "pending" and again.due_at == moment and again.attempts == 0
    assert again.reason == "retried by coordinator-a"
    assert Reminder.objects.get(pk=rows["sms"].pk).status == "sent"
    assert Reminder.objects.get(pk=rows["b"].pk).status == "failed"


def test_a_therapist_may_read_their_participants_rows_but_not_send_again(
    client: Client, site_a: Any, coordinator_a: Any, rows: dict[str, Reminder]
) -> None:
    therapist = rows["failed"].session.course.dyad.therapist_a  # type: ignore[union-attr]
    therapist.is_staff = True
    therapist.save()
    client.force_login(therapist)
    page = client.get(url("changelist")).content.decode()
    assert url("change", rows["failed"].pk) in page
    assert "send_again" not in page
    chosen = {"action": "send_again", "_selected_action": [rows["failed"].pk]}
    client.post(url("changelist"), chosen)
    assert Reminder.objects.get(pk=rows["failed"].pk).status == "failed"


def test_checkin_outcomes_are_read_only_in_the_admin(
    client: Client, coordinator_a: Any, coordinator_b: Any, rows: dict[str, Reminder]
) -> None:
    session = rows["failed"].session.course.sessions.get(key="phone-1.1")
    outcome = CheckInOutcome.objects.create(
        session=session, outcome="concern", note="worried", recorded_by=coordinator_a
    )
    client.force_login(coordinator_a)
    assert "worried" in client.get(url("changelist", model="checkinoutcome")).content.decode()
    change = url("change", outcome.pk, model="checkinoutcome")
    assert client.post(change, {"outcome": "reached"}).status_code == 403
    assert client.get(url("add", model="checkinoutcome")).status_code == 403
    client.force_login(coordinator_b)
    assert client.get(change).status_code in (302, 404)
    history = url("history", outcome.pk, model="checkinoutcome")
    assert client.get(history).status_code == 404
    assert CheckInOutcome.objects.get(pk=outcome.pk).outcome == "concern"
