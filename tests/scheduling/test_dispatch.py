"""Delivering reminder rows (scheduling/dispatch.py), service by service, against a real SMTP
server (aiosmtpd on loopback), the SMS provider's stand-in and PostgreSQL: the claim, the send,
what is recorded, retries, and what each channel promises (email at least once with a stable
Message-ID, SMS at most once). The same services under a real Celery worker, with faults, are
in test_worker_faults.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from scheduling import dispatch, messages, tasks
from scheduling.dispatch import reminder_deliver, reminders_claim_due
from scheduling.models import Participant, Reminder, ScheduledSession, Site
from scheduling.services import participant_enrol

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent.parent

EMAIL = "p100@example.org"
PHONE = "+15555550100"


# --- building blocks, shared with test_worker_faults.py and bench/reminders.py's idea --------


def open_all_day(site: Site) -> None:
    """No quiet hours at this site: the tests run at any hour of the day."""
    site.quiet_hours_start = site.quiet_hours_end = time(0)
    site.save(update_fields=["quiet_hours_start", "quiet_hours_end"])


def enrolled_participant(
    site: Site, code: str = "P-100", *, email: str = EMAIL, phone: str = PHONE
) -> tuple[Participant, ScheduledSession]:
    """A participant enrolled through the services, with contact details and consent for both
    channels; and the course's first session (ahead, in 2027)."""
    consent = timezone.now() - timedelta(days=1)
    course = participant_enrol(
        site=site,
        code=code,
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=None,
        contact={
            "email": email,
            "phone": phone,
            "preferred_channel": "email",
            "email_consent_at": consent,
            "sms_consent_at": consent,
        },
    )
    session = course.sessions.filter(superseded=False).order_by("start").first()
    assert session is not None
    return course.participant, session


def add_reminders(
    participant: Participant,
    session: ScheduledSession,
    due: list[datetime],
    *,
    channel: str = "email",
    tag: str = "t",
) -> list[Reminder]:
    """Reminder rows for ``session`` to ``participant``, one per due time, as the planner
    writes them (idempotency keys after the shared convention, with ``tag`` as the rule)."""
    rows = [
        Reminder(
            site=participant.site,
            session=session,
            participant=participant,
            purpose=Reminder.Purpose.REMINDER,
            rule_key=f"{tag}{n}",
            message="upcoming",
            channel=channel,
            due_at=at,
            session_start=session.start,
            idempotency_key=(
                f"{session.uid}/{tag}{n}/p{participant.pk}/{channel}/{at:%Y%m%dT%H%M%S.%fZ}"
            ),
        )
        for n, at in enumerate(due)
    ]
    return Reminder.objects.bulk_create(rows)


def run_together(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run ``calls`` in threads released together, each with its own database connection."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[T | BaseException] = [RuntimeError("did not run")] * len(calls)

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[n] = calls[n]()
        except BaseException as exc:  # asserted on by the test
            outcomes[n] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.fixture
def recipient(site_a: Site) -> tuple[Participant, ScheduledSession]:
    open_all_day(site_a)
    return enrolled_participant(site_a)


def claim_one(now: datetime) -> uuid.UUID:
    claimed = reminders_claim_due(now=now, limit=10)
    assert len(claimed) == 1, claimed
    return claimed[0][1]


# --- the claim -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_claim_takes_due_rows_oldest_first_up_to_the_limit(recipient: Any, settings: Any) -> None:
    settings.REMINDER_LEASE_SECONDS = 300
    participant, session = recipient
    now = timezone.now()
    due = add_reminders(participant, session, [now - timedelta(minutes=m) for m in (1, 3, 2)])
    ahead = add_reminders(participant, session, [now + timedelta(seconds=1)], tag="ahead")[0]
    done = add_reminders(participant, session, [now - timedelta(hours=1)] * 3, tag="done")
    for row, status in zip(done, ("sent", "cancelled", "skipped"), strict=True):
        Reminder.objects.filter(pk=row.pk).update(status=status)

    first = reminders_claim_due(now=now, limit=2)
    assert [pk for pk, _ in first] == sorted([due[1].pk, due[2].pk])  # 3 and 2 minutes late
    second = reminders_claim_due(now=now, limit=10)
    assert [pk for pk, _ in second] == [due[0].pk]
    assert reminders_claim_due(now=now, limit=10) == []
    assert first[0][1] != second[0][1]  # a fresh claim token per claim

    row = Reminder.objects.get(pk=due[0].pk)
    assert (row.status, row.claim, row.attempts) == ("sending", second[0][1], 1)
    assert row.lease_until == now + timedelta(seconds=300)
    assert Reminder.objects.get(pk=ahead.pk).status == "pending"
    assert [r.status for r in Reminder.objects.filter(pk__in=[r.pk for r in done])] == [
        "sent",
        "cancelled",
        "skipped",
    ]


@pytest.mark.django_db
def test_a_claim_whose_lease_ran_out_is_claimed_again(recipient: Any, settings: Any) -> None:
    settings.REMINDER_LEASE_SECONDS = 60
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    old = claim_one(now)
    assert reminders_claim_due(now=now + timedelta(seconds=60), limit=10) == []  # lease holds
    new = claim_one(now + timedelta(seconds=61))
    assert new != old
    row.refresh_from_db()
    assert (row.status, row.claim, row.attempts) == ("sending", new, 2)


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_claim_each_row_once(site_a: Site) -> None:
    open_all_day(site_a)
    participant, session = enrolled_participant(site_a)
    now = timezone.now()
    rows = add_reminders(participant, session, [now - timedelta(seconds=n) for n in range(300)])
    for _ in range(3):  # races are luck: several rounds
        Reminder.objects.filter(pk__in=[r.pk for r in rows]).update(
            status="pending", claim=None, lease_until=None
        )
        outcomes = run_together([lambda: reminders_claim_due(now=now, limit=200)] * 4)
        claimed = [pk for outcome in outcomes for pk, _ in outcome]  # type: ignore[union-attr]
        assert sorted(claimed) == sorted(r.pk for r in rows)  # every row, none twice


# --- email ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_email_is_sent_and_recorded_with_its_message_id(
    recipient: Any, smtp_server: Any
) -> None:
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    claim = claim_one(now)

    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)

    [received] = smtp_server.received
    row.refresh_from_db()
    assert (row.status, row.reason, row.sent_at, row.lease_until) == ("sent", "", now, None)
    assert row.provider_id == received.message_id == messages.message_id(row)
    assert received.recipients == [EMAIL]
    assert received.message_id.startswith("<reminder.")
    assert session.uid.hex not in received.message_id  # the key is hashed, not shown
    # the task again (the broker may hand a message out twice), or a task of an old claim
    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)
    reminder_deliver(reminder_id=row.pk, claim=uuid.uuid4(), now=now)
    assert smtp_server.count == 1


@pytest.mark.django_db
def test_a_task_with_an_old_claim_does_nothing(recipient: Any, smtp_server: Any) -> None:
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    old = claim_one(now)
    new = claim_one(now + timedelta(hours=1))  # its lease ran out; claimed again

    reminder_deliver(reminder_id=row.pk, claim=old, now=now)
    assert smtp_server.count == 0
    reminder_deliver(reminder_id=row.pk, claim=new, now=now)
    assert smtp_server.count == 1


@pytest.mark.django_db
def test_a_cancelled_row_is_not_sent_by_a_task_already_queued(
    recipient: Any, smtp_server: Any
) -> None:
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    claim = claim_one(now)
    Reminder.objects.filter(pk=row.pk).update(status="cancelled", reason="The session moved.")

    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)

    assert smtp_server.count == 0
    row.refresh_from_db()
    assert (row.status, row.reason) == ("cancelled", "The session moved.")


@pytest.mark.django_db(transaction=True)
def test_two_tasks_for_one_claim_at_once_send_one_email(site_a: Site, smtp_server: Any) -> None:
    """The row lock is held across the SMTP conversation: the second task waits for it, then
    finds the row sent. Without the lock both would find it "sending" and both would send."""
    open_all_day(site_a)
    participant, session = enrolled_participant(site_a)
    now = timezone.now()
    rows = add_reminders(participant, session, [now] * 10)
    claimed = reminders_claim_due(now=now, limit=100)
    assert len(claimed) == 10

    for pk, claim in claimed:
        run_together([partial(reminder_deliver, reminder_id=pk, claim=claim)] * 3)

    received = smtp_server.received
    assert len(received) == 10
    assert len({r.message_id for r in received}) == 10
    assert set(Reminder.objects.filter(pk__in=[r.pk for r in rows]).values_list("status")) == {
        ("sent",)
    }


@pytest.mark.django_db
def test_a_refusal_for_now_is_tried_again_later_with_the_same_message_id(
    recipient: Any, smtp_server: Any, settings: Any
) -> None:
    settings.REMINDER_RETRY_SECONDS = [60, 300, 900]
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    smtp_server.refuse_next(1)  # 451 4.3.0 Try again later

    reminder_deliver(reminder_id=row.pk, claim=claim_one(now), now=now)

    row.refresh_from_db()
    assert (row.status, row.attempts, row.due_at) == ("pending", 1, now + timedelta(seconds=60))
    assert "try later (code 451)" in row.reason
    assert smtp_server.count == 0
    assert reminders_claim_due(now=now + timedelta(seconds=59), limit=10) == []  # not yet

    later = now + timedelta(seconds=60)
    reminder_deliver(reminder_id=row.pk, claim=claim_one(later), now=later)

    [received] = smtp_server.received
    row.refresh_from_db()
    assert (row.status, row.attempts, row.reason, row.sent_at) == ("sent", 2, "", later)
    assert received.message_id == messages.message_id(row) == row.provider_id
    assert smtp_server.refusals == 1


@pytest.mark.django_db
def test_refusals_for_now_end_failed_after_the_last_try(
    recipient: Any, smtp_server: Any, settings: Any
) -> None:
    settings.REMINDER_MAX_ATTEMPTS = 3
    settings.REMINDER_RETRY_SECONDS = [60, 300]
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    smtp_server.refuse_next(10)

    waits = []
    for _ in range(3):
        reminder_deliver(reminder_id=row.pk, claim=claim_one(now), now=now)
        row.refresh_from_db()
        waits.append(row.due_at - now)
        now = row.due_at

    assert waits[:2] == [timedelta(seconds=60), timedelta(seconds=300)]
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.reason.startswith("Not sent after 3 tries")
    assert "code 451" in row.reason
    assert reminders_claim_due(now=now + timedelta(days=1), limit=10) == []
    assert smtp_server.count == 0


@pytest.mark.django_db
def test_a_permanent_refusal_fails_at_once_with_the_reason(
    recipient: Any, smtp_server: Any
) -> None:
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    smtp_server.refuse_recipient(EMAIL)  # 550 5.1.1 Mailbox unavailable

    reminder_deliver(reminder_id=row.pk, claim=claim_one(now), now=now)

    row.refresh_from_db()
    assert (row.status, row.attempts, row.sent_at) == ("failed", 1, None)
    assert "refused by the clinic's mail server" in row.reason
    assert "correct it on the participant's page" in row.reason
    assert reminders_claim_due(now=now + timedelta(days=1), limit=10) == []


@pytest.mark.django_db
def test_an_unreachable_mail_server_is_tried_again(recipient: Any, settings: Any) -> None:
    from tests.servers import SmtpServer, channel_settings

    with SmtpServer() as server:  # started and stopped: nobody listens on its port now
        pass
    for name, value in channel_settings(server, None).items():
        setattr(settings, name, value)
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]

    reminder_deliver(reminder_id=row.pk, claim=claim_one(now), now=now)

    row.refresh_from_db()
    assert row.status == "pending"
    assert "could not be reached" in row.reason


@pytest.mark.django_db
def test_a_row_claimed_again_and_again_without_an_outcome_ends_failed(
    recipient: Any, smtp_server: Any, settings: Any
) -> None:
    """Its send task keeps dying (killed worker, a poison message): stop after the tries."""
    settings.REMINDER_MAX_ATTEMPTS = 2
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    for hour in range(3):  # three claims whose tasks never ran
        claim = claim_one(now + timedelta(hours=hour))

    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 3)
    assert "2 tries ended without an answer" in row.reason
    assert smtp_server.count == 0


@pytest.mark.django_db
def test_no_address_is_skipped_with_the_reason(recipient: Any, smtp_server: Any) -> None:
    participant, session = recipient
    Participant.objects.filter(pk=participant.pk).update(email="")
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]

    reminder_deliver(reminder_id=row.pk, claim=claim_one(now), now=now)

    row.refresh_from_db()
    assert row.status == "skipped"
    assert "No email address" in row.reason  # the send-time check, or dispatch's own
    assert smtp_server.count == 0


@pytest.mark.django_db
def test_staff_get_email_at_their_user_address(
    recipient: Any, smtp_server: Any, therapist_a: Any
) -> None:
    _, session = recipient
    therapist_a.email = "therapist@example.org"
    therapist_a.save()
    now = timezone.now()
    row = Reminder.objects.create(
        site=session.course.participant.site,
        session=session,
        staff=therapist_a,
        message="checkin_call",
        rule_key="staff",
        channel="email",
        due_at=now,
        session_start=session.start,
        idempotency_key=f"{session.uid}/staff/u{therapist_a.pk}/email/x",
    )

    reminder_deliver(reminder_id=row.pk, claim=claim_one(now), now=now)

    assert [r.recipients for r in smtp_server.received] == [["therapist@example.org"]]


# --- SMS: at most once ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_text_message_is_sent_and_recorded_with_the_providers_id(
    recipient: Any, sms_provider: Any
) -> None:
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now], channel="sms")[0]
    claim = claim_one(now)

    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)

    [text] = sms_provider.received
    row.refresh_from_db()
    assert (row.status, row.reason, row.provider_id, row.sent_at) == ("sent", "", text.sid, now)
    assert text.to == PHONE
    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)
    assert sms_provider.calls == 1


@pytest.mark.django_db
def test_an_attempt_whose_outcome_was_lost_is_never_repeated(
    recipient: Any, sms_provider: Any
) -> None:
    """The state a worker killed during the provider call leaves: the attempt committed, no
    outcome. The next claim fails the row instead of sending a second text."""
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now], channel="sms")[0]
    claim_one(now)
    Reminder.objects.filter(pk=row.pk).update(reason=dispatch.SMS_ATTEMPT_STARTED)

    later = now + timedelta(hours=1)  # the lease ran out
    reminder_deliver(reminder_id=row.pk, claim=claim_one(later), now=later)

    row.refresh_from_db()
    assert (row.status, row.reason) == ("failed", dispatch.SMS_OUTCOME_UNKNOWN)
    assert sms_provider.calls == 0
    assert reminders_claim_due(now=later + timedelta(days=1), limit=10) == []


@pytest.mark.django_db
def test_a_provider_outage_is_tried_again_and_a_bad_number_fails(
    recipient: Any, sms_provider: Any
) -> None:
    participant, session = recipient
    now = timezone.now()
    later = now + timedelta(seconds=1)
    outage, bad = add_reminders(participant, session, [now, later], channel="sms")
    sms_provider.fail_next(1, status=503)

    reminder_deliver(reminder_id=outage.pk, claim=claim_one(now), now=now)
    outage.refresh_from_db()
    assert (outage.status, outage.attempts) == ("pending", 1)
    assert "busy or unavailable (HTTP 503)" in outage.reason

    sms_provider.refuse_number(PHONE, 21211)
    reminder_deliver(reminder_id=bad.pk, claim=claim_one(later), now=later)
    bad.refresh_from_db()
    assert bad.status == "failed"
    assert "refused by the SMS provider as invalid" in bad.reason
    assert sms_provider.count == 0


# --- a session moved after its reminder was claimed ----------------------------------------


@pytest.mark.django_db
def test_a_session_moved_after_the_claim_is_not_sent(recipient: Any, smtp_server: Any) -> None:
    """The row was claimed (its task queued) before the move: the send-time check
    (messages.hold_reason) sees that the session no longer starts when the row says."""
    participant, session = recipient
    now = timezone.now()
    row = add_reminders(participant, session, [now])[0]
    claim = claim_one(now)
    ScheduledSession.objects.filter(pk=session.pk).update(start=session.start + timedelta(hours=1))
    row.refresh_from_db()
    if messages.hold_reason(row, now) is None:
        pytest.xfail("scheduling/messages.py's hold_reason is still the stub")

    reminder_deliver(reminder_id=row.pk, claim=claim, now=now)

    row.refresh_from_db()
    assert row.status == "skipped"
    assert "moved" in row.reason
    assert smtp_server.count == 0


# --- settings and the beat -----------------------------------------------------------------


def test_the_beat_sweeps_every_minute_and_nothing_is_queued_ahead() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-reminders"]
    assert entry["task"] == tasks.sweep_reminders.name
    assert entry["schedule"] == settings.REMINDER_SWEEP_SECONDS == 60  # the default
    assert not settings.CELERY_TASK_ACKS_LATE
    # no ETA, countdown or self-retry anywhere a task is sent: reminders are rows
    for path in (ROOT / "scheduling").rglob("*.py"):
        text = path.read_text()
        for word in ("countdown=", "eta=", "autoretry_for", ".retry("):
            assert word not in text, f"{path.name} uses {word}"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"REMINDER_RETRY_SECONDS": "60,soon"}, "REMINDER_RETRY_SECONDS"),
        ({"REMINDER_LEASE_SECONDS": "0"}, "REMINDER_LEASE_SECONDS"),
    ],
)
def test_invalid_reminder_settings_stop_the_process(
    variables: dict[str, str], expected: str
) -> None:
    from tests.config.test_settings import failure_of

    assert expected in failure_of(DEBUG="1", **variables)


@pytest.mark.django_db
def test_a_send_reads_its_row_once_and_writes_it_once(
    recipient: Any, smtp_server: Any, django_assert_max_num_queries: Any
) -> None:
    """What the benchmark's throughput rests on: the lock reads the row with all it needs,
    the protocol's words are read once per process, and the outcome is one UPDATE."""
    participant, session = recipient
    now = timezone.now()
    add_reminders(participant, session, [now - timedelta(minutes=2), now - timedelta(minutes=1)])
    (first, claim), (second, _) = reminders_claim_due(now=now, limit=10)
    reminder_deliver(reminder_id=first, claim=claim, now=now)
    with django_assert_max_num_queries(4):  # savepoint, SELECT ... FOR UPDATE, UPDATE, release
        reminder_deliver(reminder_id=second, claim=claim, now=now)
    assert Reminder.objects.filter(pk__in=[first, second], status="sent").count() == 2
    assert smtp_server.wait_for(2) and len({m.message_id for m in smtp_server.received}) == 2


def _values(instance: Any) -> list[Any]:
    return [getattr(instance, field.attname) for field in instance._meta.concrete_fields]


@pytest.mark.django_db
def test_the_send_paths_locking_read_is_what_the_orm_reads(
    recipient: Any, therapist_a: Any, django_assert_num_queries: Any
) -> None:
    """The send path reads its row with a statement written from the models' metadata instead
    of the ORM's (dispatch._locked): every column of the row and of what it joins, attached as
    select_related would attach them, for a participant's row and for a staff member's."""
    participant, session = recipient
    now = timezone.now()
    (for_participant,) = add_reminders(participant, session, [now])
    for_staff = Reminder.objects.create(
        site=participant.site,
        session=session,
        staff=therapist_a,
        message="checkin_call",
        rule_key="staff",
        channel="email",
        due_at=now,
        session_start=session.start,
        idempotency_key=f"{session.uid}/staff/u{therapist_a.pk}/email/x",
    )
    for row in (for_participant, for_staff):
        expected = Reminder.objects.select_related(
            "site", "session__course", "participant", "staff"
        ).get(pk=row.pk)
        with transaction.atomic(), django_assert_num_queries(1):
            found = dispatch._locked(row.pk)
            assert found is not None
            assert _values(found) == _values(expected)
            assert _values(found.site) == _values(expected.site)
            assert _values(found.session) == _values(expected.session)
            assert _values(found.session.course) == _values(expected.session.course)
            for recipient_field in ("participant", "staff"):
                mine, theirs = (
                    getattr(found, recipient_field),
                    getattr(expected, recipient_field),
                )
                assert (mine and _values(mine)) == (theirs and _values(theirs))
        assert found._state.db == "default" and not found._state.adding
    with transaction.atomic():
        assert dispatch._locked(max(for_participant.pk, for_staff.pk) + 1) is None


@pytest.mark.django_db
def test_the_send_paths_write_is_what_save_would_write(recipient: Any) -> None:
    participant, session = recipient
    now = timezone.now()
    (row,) = add_reminders(participant, session, [now])
    before = Reminder.objects.get(pk=row.pk)
    with transaction.atomic():
        locked = dispatch._locked(row.pk)
        assert locked is not None
        dispatch._record(locked, "sent", "", sent=("<id@example.org>", now))

    after = Reminder.objects.get(pk=row.pk)
    assert (after.status, after.reason, after.provider_id) == ("sent", "", "<id@example.org>")
    assert after.sent_at == now and after.lease_until is None
    assert after.updated_at > before.updated_at  # auto_now, as save() stamps it
    untouched = [
        f.attname
        for f in Reminder._meta.concrete_fields
        if f.attname
        not in {"status", "reason", "provider_id", "sent_at", "lease_until", "updated_at"}
    ]
    assert [getattr(after, name) for name in untouched] == [
        getattr(before, name) for name in untouched
    ]
