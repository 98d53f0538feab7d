"""Reminder rows follow their sessions in the same transaction (scheduling.outbox):
enrolment plans them, a move replaces them (and tells a participant already reminded), moving
back revives the same key, cancelling, rebooking and withdrawing follow; consent and pause."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from scheduling import outbox
from scheduling.models import Participant, Reminder, ScheduledSession, Site
from scheduling.services import (
    participant_enrol,
    participant_withdraw,
    session_change_status,
    session_rebook,
    session_reschedule,
)
from tests.conftest import make_site, make_staff

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
START = date(2027, 3, 4)  # a Thursday; dosing-1 on Mon 29 Mar 2027 (EDT)


@pytest.fixture
def site() -> Site:
    made: Site = make_site("r")
    return made


def enrol(site: Site, by: Any, channel: str = "email", code: str = "R-001") -> Any:
    contact = {"preferred_channel": channel, "email": "p@example.org", "phone": "+1 212 555 0100"}
    return participant_enrol(
        site=site,
        code=code,
        protocol_slug="mapp-ptsd",
        start_date=START,
        by=by,
        contact=contact,
    )


def rows(session: ScheduledSession, **filters: Any) -> list[Reminder]:
    return list(Reminder.objects.filter(session=session, **filters).order_by("due_at", "pk"))


def session_of(course: Any, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


def test_enrolment_plans_rows_with_due_times_in_utc_and_keys(site: Site) -> None:
    coordinator = make_staff("coord-r", "coordinator", site)
    course = enrol(site, coordinator)
    dosing = session_of(course, "dosing-1")
    participant = course.participant
    mine = rows(dosing, participant=participant)
    assert [(r.rule_key, r.channel, r.status) for r in mine] == [
        ("72h", "email", "pending"),
        ("evening-before", "email", "pending"),
    ]
    assert mine[0].due_at == dosing.start - timedelta(hours=72)
    evening = dosing.start.astimezone(NEW_YORK).date() - timedelta(days=1)
    assert mine[1].due_at == datetime.combine(evening, time(18), tzinfo=NEW_YORK)
    assert mine[1].due_at.tzinfo is not None
    assert mine[0].idempotency_key == (
        f"{dosing.uid}/72h/p{participant.pk}/email/"
        f"{(dosing.start - timedelta(hours=72)).astimezone(UTC):%Y%m%dT%H%MZ}"
    )
    assert all(r.session_start == dosing.start for r in mine)
    # the phone check-ins: the dyad's call reminder 15 min before, and the time-based
    # escalation to the site's coordinators
    phone = session_of(course, "phone-1.1")
    calls = rows(phone, purpose="reminder")
    booked = set(phone.staff.filter(active=True).values_list("user_id", flat=True))
    assert booked  # one therapist of the dyad calls
    assert {r.staff_id for r in calls} == booked
    assert all(r.due_at == phone.start - timedelta(minutes=15) for r in calls)
    (escalation,) = rows(phone, purpose="escalation")
    assert escalation.staff_id == coordinator.pk
    assert escalation.due_at == phone.start + timedelta(hours=4)
    assert escalation.idempotency_key == f"{phone.uid}/escalation/overdue/u{coordinator.pk}"
    assert escalation.message == "checkin_escalation"


def test_no_participant_rows_without_a_preferred_channel(site: Site) -> None:
    course = enrol(site, None, channel="none")
    assert not Reminder.objects.filter(participant=course.participant).exists()
    assert Reminder.objects.filter(session__course=course, staff__isnull=False).exists()


def test_sync_twice_changes_nothing(site: Site) -> None:
    course = enrol(site, None)
    before = list(Reminder.objects.values_list("idempotency_key", "status", "due_at"))
    outbox.reminders_sync(sessions=ScheduledSession.objects.filter(course=course))
    after = list(Reminder.objects.values_list("idempotency_key", "status", "due_at"))
    assert sorted(before) == sorted(after)


def move(session: ScheduledSession, to: datetime, reason: str = "participant asked") -> None:
    session_reschedule(session=session, start=to, by=None, reason=reason)


def test_move_cancels_old_rows_with_reason_and_plans_new(site: Site) -> None:
    course = enrol(site, None)
    prep = session_of(course, "prep-2")
    old = rows(prep, participant=course.participant)
    assert len(old) == 1
    new_start = prep.start + timedelta(days=1)
    move(prep, new_start)
    prep.refresh_from_db()
    gone = Reminder.objects.get(pk=old[0].pk)
    assert gone.status == "cancelled"
    assert gone.reason == f"the session moved to {new_start.astimezone(NEW_YORK):%a} " + (
        f"{new_start.astimezone(NEW_YORK).day} {new_start.astimezone(NEW_YORK):%b %Y %H:%M %Z}"
    )
    (fresh,) = rows(prep, participant=course.participant, status="pending")
    assert fresh.due_at == new_start - timedelta(hours=24)
    assert fresh.session_start == new_start
    assert not rows(prep, purpose="moved")  # nothing had gone out: no moved notice

    # moving back: the first key is wanted again and revived, no duplicate row
    move(prep, old[0].session_start)
    revived = Reminder.objects.get(pk=old[0].pk)
    assert revived.status == "pending"
    assert Reminder.objects.get(pk=fresh.pk).status == "cancelled"
    assert Reminder.objects.filter(session=prep, participant=course.participant).count() == 2


def test_move_after_a_sent_reminder_sends_one_moved_notice(site: Site) -> None:
    course = enrol(site, None, channel="sms")
    prep = session_of(course, "prep-2")
    (sent,) = rows(prep, participant=course.participant)
    Reminder.objects.filter(pk=sent.pk).update(status="sent", sent_at=sent.due_at)
    new_start = prep.start + timedelta(days=1)
    at = sent.due_at + timedelta(hours=2)  # after it went, during the day at the site
    with time_machine.travel(at, tick=False):
        move(prep, new_start)
        outbox.reminders_sync(sessions=[prep])  # again: still one notice
    assert Reminder.objects.get(pk=sent.pk).status == "sent"  # history stays
    (notice,) = rows(prep, purpose="moved")
    assert notice.channel == "sms"
    assert notice.message == "moved"
    assert notice.status == "pending"
    assert notice.session_start == new_start
    assert notice.due_at == at
    assert notice.idempotency_key == (
        f"{prep.uid}/moved/{new_start.astimezone(UTC):%Y%m%dT%H%MZ}/p{course.participant.pk}/sms"
    )
    assert rows(prep, purpose="reminder", status="pending")[0].session_start == new_start


def test_moved_notice_waits_for_the_end_of_the_quiet_hours(site: Site) -> None:
    course = enrol(site, None)
    prep = session_of(course, "prep-2")
    (sent,) = rows(prep, participant=course.participant)
    Reminder.objects.filter(pk=sent.pk).update(status="sent")
    late = datetime.combine(sent.due_at.astimezone(NEW_YORK).date(), time(22, 30), tzinfo=NEW_YORK)
    with time_machine.travel(late, tick=False):
        move(prep, prep.start + timedelta(days=1))
    (notice,) = rows(prep, purpose="moved")
    assert notice.due_at.astimezone(NEW_YORK).time() == time(8, 0)
    assert notice.due_at.astimezone(NEW_YORK).date() == late.date() + timedelta(days=1)


def test_cancel_cancels_open_rows_and_keeps_history(site: Site) -> None:
    course = enrol(site, None)
    prep = session_of(course, "prep-2")
    (row,) = rows(prep, participant=course.participant)
    session_change_status(session=prep, status="cancelled", by=None, reason="unwell")
    row.refresh_from_db()
    assert (row.status, row.reason) == ("cancelled", "the session was cancelled")
    assert not Reminder.objects.filter(session=prep, status="pending").exists()


def test_cancelled_dosing_takes_its_check_in_rows_with_it(site: Site) -> None:
    course = enrol(site, None)
    dosing = session_of(course, "dosing-1")
    session_change_status(session=dosing, status="cancelled", by=None, reason="unwell")
    phone = session_of(course, "phone-1.1")
    assert phone.status == "cancelled"
    assert not Reminder.objects.filter(session=phone, status="pending").exists()
    assert Reminder.objects.filter(session=phone, status="cancelled").exists()


def test_rebook_plans_the_new_sessions_rows(site: Site) -> None:
    course = enrol(site, None)
    prep = session_of(course, "prep-2")
    session_change_status(session=prep, status="cancelled", by=None, reason="unwell")
    result = session_rebook(
        session=prep, start=prep.start + timedelta(days=1), by=None, reason="unwell"
    )
    new = result.session
    new.refresh_from_db()
    (row,) = rows(new, participant=course.participant)
    assert row.status == "pending"
    assert row.due_at == new.start - timedelta(hours=24)
    assert row.idempotency_key.startswith(f"{new.uid}/24h/")
    assert not rows(prep, status="pending")


def test_dry_runs_write_nothing(site: Site) -> None:
    course = enrol(site, None)
    prep = session_of(course, "prep-2")
    before = sorted(Reminder.objects.values_list("idempotency_key", "status"))
    session_reschedule(session=prep, start=prep.start + timedelta(days=1), by=None, dry_run=True)
    session_change_status(session=prep, status="cancelled", by=None, reason="x", dry_run=True)
    participant_withdraw(participant=course.participant, by=None, reason="x", dry_run=True)
    assert sorted(Reminder.objects.values_list("idempotency_key", "status")) == before


def test_withdraw_cancels_every_open_row(site: Site) -> None:
    course = enrol(site, None)
    participant_withdraw(participant=course.participant, by=None, reason="moved away")
    assert not Reminder.objects.filter(session__course=course, status="pending").exists()
    # (the staff here have no email address: their invitations were skipped when planned)
    planned = Reminder.objects.filter(session__course=course).exclude(status="skipped")
    reasons = set(planned.values_list("reason", flat=True))
    assert reasons == {"the participant withdrew"}


def test_channel_change_through_the_resync(site: Site) -> None:
    course = enrol(site, None)
    person = course.participant
    person.preferred_channel = "sms"
    person.save()
    outbox.participant_reminders_resync(participant=person)
    assert not Reminder.objects.filter(participant=person, channel="email", status="pending")
    assert set(
        Reminder.objects.filter(participant=person, channel="email").values_list(
            "reason", flat=True
        )
    ) == {"the participant now prefers text messages"}
    assert Reminder.objects.filter(participant=person, channel="sms", status="pending").exists()


def test_late_enrolment_sends_only_the_latest_reminder(site: Site) -> None:
    # a participant enrolled 2 days before their dosing session: the 72 h reminder is past,
    # the evening-before one is ahead; only the ones ahead are pending
    with time_machine.travel(datetime(2027, 3, 1, 12, tzinfo=NEW_YORK), tick=False):
        course = enrol(site, None)
    dosing = session_of(course, "dosing-1")
    now = dosing.start - timedelta(hours=30)
    outbox.reminders_sync(sessions=[dosing], now=now)  # nothing changes for existing rows
    assert {r.status for r in rows(dosing, participant=course.participant)} == {"pending"}


def test_consent_and_pause_services(site: Site) -> None:
    coordinator = make_staff("coord-r", "coordinator", site)
    course = enrol(site, None)
    person = course.participant
    assert person.email_consent_at is None
    outbox.participant_consent_set(
        participant=person, channel="email", given=True, by=coordinator, source="staff page"
    )
    person = Participant.objects.get(pk=person.pk)
    given = person.email_consent_at
    assert given is not None
    assert person.history.first().history_user == coordinator
    outbox.participant_consent_set(
        participant=person, channel="email", given=True, by=coordinator, source="staff page"
    )
    assert Participant.objects.get(pk=person.pk).email_consent_at == given  # the first stays
    outbox.participant_consent_set(
        participant=person, channel="email", given=False, by=coordinator, source="staff page"
    )
    assert Participant.objects.get(pk=person.pk).email_consent_at is None

    pending = Reminder.objects.filter(participant=person, status="pending").count()
    outbox.participant_reminders_pause(participant=person, by=coordinator, reason="in hospital")
    person.refresh_from_db()
    assert person.reminders_paused_at is not None
    assert person.reminders_pause_reason == "in hospital"
    # pausing cancels nothing: the send-time check skips what falls due while paused
    assert Reminder.objects.filter(participant=person, status="pending").count() == pending
    with pytest.raises(ValueError):
        outbox.participant_reminders_pause(participant=person, by=coordinator, reason=" ")
    outbox.participant_reminders_resume(participant=person, by=coordinator)
    resumed = Participant.objects.get(pk=person.pk)
    assert resumed.reminders_paused_at is None
    assert resumed.reminders_pause_reason == ""
    assert Participant.objects.get(pk=person.pk).history.count() >= 5


# --- the participant page's reminder settings ---------------------------------------------


def test_the_settings_form_sets_consent_and_pause(site: Site, client: Any) -> None:
    coordinator = make_staff("coord-r", "coordinator", site)
    course = enrol(site, None)
    person = course.participant
    client.force_login(coordinator)
    page = client.get(f"/participants/{person.pk}/")
    assert page.status_code == 200
    assert b'id="reminder-settings"' in page.content
    url = f"/participants/{person.pk}/reminder-settings/"
    assert client.post(url, {"action": "sms-consent"}).status_code == 302
    person.refresh_from_db()
    assert person.sms_consent_at is not None
    assert person.history.first().history_user == coordinator
    client.post(url, {"action": "pause", "reason": ""})
    person.refresh_from_db()
    assert person.reminders_paused_at is None  # a pause needs its reason
    client.post(url, {"action": "pause", "reason": "in hospital"})
    person.refresh_from_db()
    assert person.reminders_pause_reason == "in hospital"
    assert b"in hospital" in client.get(f"/participants/{person.pk}/").content
    client.post(url, {"action": "resume"})
    person.refresh_from_db()
    assert person.reminders_paused_at is None


def test_the_settings_form_is_for_the_sites_coordinators(site: Site, client: Any) -> None:
    course = enrol(site, None)
    person = course.participant
    url = f"/participants/{person.pk}/reminder-settings/"
    other = make_site("o", dyads=0, assessors=0)
    client.force_login(make_staff("coord-o", "coordinator", other))
    assert client.post(url, {"action": "sms-consent"}).status_code == 404
    therapist = course.dyad.therapist_a
    client.force_login(therapist)
    assert client.post(url, {"action": "sms-consent"}).status_code == 403
    person.refresh_from_db()
    assert person.sms_consent_at is None


def test_a_same_day_move_keeps_the_evening_before_reminder_speaking_of_the_new_time(
    site: Site,
) -> None:
    # the evening-before key carries the rule's time (18:00 the day before), which a move
    # within the same local day does not change: the pending row must follow the session,
    # else the send-time check skips it ("the session moved") and nothing replaces it
    course = enrol(site, None)
    dosing = session_of(course, "dosing-1")
    (evening,) = rows(dosing, participant=course.participant, rule_key="evening-before")
    new_start = dosing.start + timedelta(hours=1)
    move(dosing, new_start)
    dosing.refresh_from_db()
    assert dosing.start == new_start
    (wanted,) = rows(dosing, participant=course.participant, rule_key="evening-before")
    assert wanted.pk == evening.pk
    assert (wanted.status, wanted.session_start) == ("pending", new_start)


def test_a_back_entered_course_does_not_escalate_check_ins_already_past(site: Site) -> None:
    # a course entered afterwards (back-entry) has check-ins whose escalation time passed
    # before they were planned: no "check-in without an outcome" email for each of them
    # (Today lists the recent ones); those still ahead escalate as usual
    make_staff("coord-r", "coordinator", site)
    now = datetime(2027, 4, 15, 12, tzinfo=NEW_YORK)
    with time_machine.travel(now, tick=False):
        course = participant_enrol(
            site=site,
            code="R-009",
            protocol_slug="mapp-ptsd",
            start_date=START,
            by=None,
            back_entry_reason="entered from the paper binder",
        )
    escalations = list(
        Reminder.objects.filter(session__course=course, purpose="escalation").select_related(
            "session"
        )
    )
    past = [r for r in escalations if r.session.start + timedelta(hours=4) <= now]
    ahead = [r for r in escalations if r.session.start + timedelta(hours=4) > now]
    assert past and ahead
    assert {r.status for r in past} == {"skipped"}
    assert all("before it was planned" in r.reason for r in past)
    assert {r.status for r in ahead} == {"pending"}


def test_closing_a_check_in_keeps_the_concern_it_escalated(site: Site) -> None:
    # a concern's emails are written by the check-in service, not planned by the sync: the
    # therapist who records a concern and marks the call completed in the same minute must
    # not cancel the coordinators' emails before the sweep sends them
    from scheduling.checkins import checkin_record

    coordinator = make_staff("coord-r", "coordinator", site)
    course = enrol(site, None)
    phone = session_of(course, "phone-1.1")
    with time_machine.travel(phone.start + timedelta(minutes=20), tick=False):
        checkin_record(session=phone, outcome="concern", note="low mood", by=coordinator)
        session_change_status(session=phone, status="completed", by=coordinator)
    concern = Reminder.objects.get(session=phone, idempotency_key__contains="/escalation/concern-")
    assert (concern.status, concern.staff_id) == ("pending", coordinator.pk)


@pytest.mark.django_db(transaction=True)
def test_a_move_while_its_reminder_is_being_sent_keeps_it_sent_and_plans_a_notice(
    site: Site,
) -> None:
    # the send task holds the row's lock while it sends and records "sent"; a move at that
    # moment must wait for it and read "sent" (history, and a moved notice), not overwrite
    # the sent row with "cancelled" from what it read before
    import threading
    from uuid import uuid4

    from django.db import connections, transaction
    from django.utils import timezone

    course = enrol(site, None)
    prep = session_of(course, "prep-2")
    (row,) = rows(prep, participant=course.participant)
    Reminder.objects.filter(pk=row.pk).update(status="sending", claim=uuid4())
    sending = threading.Event()

    def send() -> None:
        try:
            with transaction.atomic():
                found = Reminder.objects.select_for_update().get(pk=row.pk)
                found.status, found.sent_at = "sent", timezone.now()
                found.save(update_fields=["status", "sent_at"])
                sending.set()
                threading.Event().wait(1.5)  # the SMTP conversation
        finally:
            connections.close_all()

    task = threading.Thread(target=send)
    task.start()
    assert sending.wait(10)
    move(prep, prep.start + timedelta(days=1))
    task.join(10)
    assert Reminder.objects.get(pk=row.pk).status == "sent"
    assert rows(prep, purpose="moved")
