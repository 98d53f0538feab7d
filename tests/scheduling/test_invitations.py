"""Calendar invitations to staff (iTIP, RFC 5546) through the reminders outbox: planned by the
services' sync, claimed and delivered by the dispatch functions to a real SMTP server, and the
calendar part of what arrives read back with vobject (a second iCalendar parser). Booked,
moved, cancelled, taken off; once per state, never twice; discreet."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from typing import Any
from uuid import UUID

import pytest
import vobject
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import F
from django.utils import timezone

from scheduling.clock import local_text
from scheduling.dispatch import reminder_deliver, reminders_claim_due
from scheduling.messages import STAFF_WHAT, forbidden_words_in
from scheduling.models import (
    Course,
    Reminder,
    ScheduledSession,
    Site,
    StaffBooking,
    Unavailability,
)
from scheduling.outbox import NO_STAFF_EMAIL, reminders_sync
from scheduling.services import (
    night_attendant_book,
    participant_enrol,
    session_change_status,
    session_reschedule,
)
from tests.conftest import make_site, make_staff

pytestmark = pytest.mark.django_db

START = date(2027, 3, 1)  # a Monday, ahead of the tests' clock


@dataclass(frozen=True)
class Invite:
    """One received invitation email and its calendar part, as a calendar client reads it."""

    to: str
    subject: str
    text: str
    html: str
    content_type: str
    method: str
    uid: str
    sequence: int
    start: datetime
    status: str
    organizer: str
    attendees: list[str]


def read(received: Any) -> Invite:
    message = email.message_from_bytes(received.raw, policy=email.policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    calendar = vobject.readOne(part.get_content())
    event = calendar.vevent
    method = calendar.method.value
    assert part.get_param("method") == method  # the Content-Type says what the object says
    # the header as written (the default policy would re-quote its parameters)
    plain = email.message_from_bytes(received.raw, policy=email.policy.compat32)
    [written] = [p for p in plain.walk() if p.get_content_type() == "text/calendar"]
    [to] = received.recipients
    return Invite(
        to=to,
        subject=received.subject.strip(),  # a folded Subject unfolds with a leading space
        text=received.text or "",
        html=received.html or "",
        content_type=written["Content-Type"],
        method=method,
        uid=event.uid.value,
        sequence=int(event.sequence.value),
        start=event.dtstart.value,
        status=event.status.value,
        organizer=event.organizer.value,
        attendees=[a.value for a in event.contents.get("attendee", [])],
    )


def sweep(server: Any, now: datetime | None = None) -> list[Invite]:
    """The beat's sweep and the send tasks, in this process: claim what is due, deliver each,
    and read the invitations that arrived meanwhile."""
    before = server.count
    now = now or timezone.now()
    for reminder_id, claim in reminders_claim_due(now=now, limit=10_000):
        reminder_deliver(reminder_id=reminder_id, claim=claim, now=now)
    return [read(m) for m in server.received[before:]]


@pytest.fixture
def site(db: Any) -> Site:
    site: Site = make_site("iv")
    site.name = "Riverside Clinic"
    site.save()
    for user in User.objects.filter(username__startswith="iv-"):
        user.email = f"{user.username}@example.org"
        user.save()
    return site


@pytest.fixture
def course(site: Site) -> Course:
    return participant_enrol(
        site=site, code="RIV-0042", protocol_slug="mapp-ptsd", start_date=START, by=None
    )


def session_of(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


def booked(session: ScheduledSession) -> set[str]:
    return set(
        StaffBooking.objects.filter(session=session, active=True).values_list(
            "user__email", flat=True
        )
    )


def move(session: ScheduledSession, days: int) -> ScheduledSession:
    start = session.start + timedelta(days=days)
    session_reschedule(session=session, start=start, by=None, reason="the team asked")
    session.refresh_from_db()
    assert session.start == start
    return session


def invitations(session: ScheduledSession) -> list[Reminder]:
    return list(Reminder.objects.filter(session=session, purpose="invitation").order_by("pk"))


# --- booked ----------------------------------------------------------------------------------


def test_enrolment_sends_each_booked_staff_member_one_request_per_session(
    course: Course, site: Site, smtp_server: Any
) -> None:
    sessions = list(course.sessions.all())
    expected = {(email, str(s.uid)) for s in sessions for email in booked(s)}
    assert len(expected) > 40  # therapists and assessors across the course

    received = sweep(smtp_server)

    assert Counter((i.to, i.uid) for i in received) == Counter(expected)  # each exactly once
    by_uid = {str(s.uid): s for s in sessions}
    organizer = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    for invite in received:
        session = by_uid[invite.uid]
        assert invite.content_type == 'text/calendar; charset="utf-8"; method=REQUEST'
        assert invite.method == "REQUEST" and invite.status == "CONFIRMED"
        assert invite.sequence == session.sequence == 0
        assert invite.start == session.start
        assert invite.organizer == f"mailto:{organizer}"
        assert invite.attendees == [f"mailto:{invite.to}"]
        what = STAFF_WHAT[session.kind]
        assert invite.subject == (
            f"RIV-0042 · {what} on {local_text(session.start, site)} at Riverside Clinic"
        )
        assert (
            f"/sessions/{session.pk}/" in invite.text and f"/sessions/{session.pk}/" in invite.html
        )
        assert forbidden_words_in(f"{invite.subject}\n{invite.text}\n{invite.html}") == []
        assert session.title not in invite.text  # the protocol's internal title stays inside
    sent = Reminder.objects.filter(purpose="invitation", status="sent")
    assert sent.count() == len(expected)


def test_a_second_delivery_a_second_sweep_and_a_resync_send_nothing_more(
    course: Course, smtp_server: Any
) -> None:
    now = timezone.now()
    claims = reminders_claim_due(now=now, limit=10_000)
    for reminder_id, claim in claims:
        reminder_deliver(reminder_id=reminder_id, claim=claim, now=now)
    first = smtp_server.count
    assert first > 40

    for reminder_id, claim in claims:  # the broker hands every task out again
        reminder_deliver(reminder_id=reminder_id, claim=claim, now=now)
    reminders_sync(sessions=list(course.sessions.all()))  # a change that changes nothing
    assert sweep(smtp_server) == []
    assert sweep(smtp_server, now + timedelta(hours=2)) == []  # a lease would have run out
    assert smtp_server.count == first
    assert not Reminder.objects.filter(purpose="invitation", status="pending").exists()


def test_a_night_attendant_booked_later_gets_the_request_and_nobody_else_again(
    course: Course, site: Site, smtp_server: Any
) -> None:
    sweep(smtp_server)
    attendant = make_staff("iv-night", "night_attendant", site)
    attendant.email = "night@example.org"
    attendant.save()
    dosing = session_of(course, "dosing-1")

    night_attendant_book(session=dosing, attendant=attendant, by=None)
    [invite] = sweep(smtp_server)

    assert (invite.to, invite.uid, invite.method) == (
        "night@example.org",
        str(dosing.uid),
        "REQUEST",
    )
    assert invite.sequence == dosing.sequence


# --- moved -----------------------------------------------------------------------------------


def test_a_move_sends_a_request_with_a_higher_sequence_and_the_new_time_under_the_same_uid(
    course: Course, smtp_server: Any
) -> None:
    closing = session_of(course, "closing")
    [told] = {i.sequence for i in sweep(smtp_server) if i.uid == str(closing.uid)}

    closing = move(closing, 7)
    received = sweep(smtp_server)

    assert {i.to for i in received} == booked(closing)
    for invite in received:
        assert (invite.uid, invite.method) == (str(closing.uid), "REQUEST")
        assert invite.sequence == closing.sequence == told + 1
        assert invite.start == closing.start


def test_moving_twice_before_the_sweep_sends_only_the_latest_state(
    course: Course, smtp_server: Any
) -> None:
    closing = session_of(course, "closing")
    sweep(smtp_server)

    move(closing, 7)
    closing = move(closing, 7)
    received = sweep(smtp_server)

    assert Counter(i.to for i in received) == Counter(booked(closing))  # one each
    assert {i.sequence for i in received} == {closing.sequence} == {2}
    older = [r for r in invitations(closing) if r.invitation_sequence == 1]
    assert older and {r.status for r in older} == {"cancelled"}
    assert all(r.reason for r in older)


def test_a_staff_member_taken_off_a_session_that_stays_gets_a_cancel(
    course: Course, smtp_server: Any
) -> None:
    """The assessor is away at the new time: the move books the other one. The first gets a
    CANCEL for the event they have, the second a REQUEST; the same UID and SEQUENCE."""
    follow_up = session_of(course, "follow-up")
    [before] = booked(follow_up)
    sweep(smtp_server)
    new_start = follow_up.start + timedelta(days=7)
    Unavailability.objects.create(
        user=User.objects.get(email=before),
        start=new_start - timedelta(hours=12),
        end=new_start + timedelta(days=7, hours=12),  # and a week later
        reason="leave",
    )

    follow_up = move(follow_up, 7)
    [after] = booked(follow_up)
    assert after != before
    received = {i.to: i for i in sweep(smtp_server)}

    assert set(received) == {before, after}
    assert (received[before].method, received[before].status) == ("CANCEL", "CANCELLED")
    assert received[before].subject.startswith("Cancelled: RIV-0042 · ")
    assert "no longer booked" in received[before].text
    assert (received[after].method, received[after].status) == ("REQUEST", "CONFIRMED")
    for invite in received.values():
        assert (invite.uid, invite.sequence) == (str(follow_up.uid), follow_up.sequence)
    # taken off for good: later changes of the session send them nothing more
    move(follow_up, 7)
    assert before not in {i.to for i in sweep(smtp_server)}


# --- cancelled -------------------------------------------------------------------------------


def test_cancelling_sends_a_cancel_to_everyone_who_had_the_invitation(
    course: Course, smtp_server: Any
) -> None:
    closing = session_of(course, "closing")
    staff = booked(closing)
    sweep(smtp_server)

    session_change_status(session=closing, status="cancelled", by=None, reason="team away")
    closing.refresh_from_db()
    received = sweep(smtp_server)

    assert {i.to for i in received} == staff
    for invite in received:
        assert invite.content_type == 'text/calendar; charset="utf-8"; method=CANCEL'
        assert (invite.method, invite.status) == ("CANCEL", "CANCELLED")
        assert (invite.uid, invite.sequence) == (str(closing.uid), closing.sequence)
        assert invite.subject.startswith("Cancelled: RIV-0042 · ")
        assert "is cancelled" in invite.text
        assert forbidden_words_in(f"{invite.subject}\n{invite.text}\n{invite.html}") == []
    assert sweep(smtp_server) == []


def test_a_session_cancelled_before_its_invitations_went_sends_nothing(
    course: Course, smtp_server: Any
) -> None:
    closing = session_of(course, "closing")
    session_change_status(session=closing, status="cancelled", by=None, reason="team away")

    received = sweep(smtp_server)

    assert str(closing.uid) not in {i.uid for i in received}
    rows = invitations(closing)
    assert rows and {(r.status, r.reason) for r in rows} == {
        ("cancelled", "the session was cancelled")
    }


# --- who cannot get one, and what changed since ----------------------------------------------


def test_staff_without_an_email_address_are_skipped_with_the_reason(
    site: Site, smtp_server: Any
) -> None:
    User.objects.filter(username="iv-t1a").update(email="")
    course = participant_enrol(
        site=site, code="RIV-0043", protocol_slug="mapp-ptsd", start_date=START, by=None
    )
    therapist = User.objects.get(username="iv-t1a")
    assert StaffBooking.objects.filter(session__course=course, user=therapist).exists()
    skipped = Reminder.objects.filter(purpose="invitation", staff=therapist)
    assert skipped.exists()
    assert set(skipped.values_list("status", "reason")) == {("skipped", NO_STAFF_EMAIL)}

    # an address removed after the invitation was planned: skipped when it is due
    partner = User.objects.get(username="iv-t1b")
    planned = list(
        Reminder.objects.filter(purpose="invitation", staff=partner, status="pending").values_list(
            "pk", flat=True
        )
    )
    assert planned
    User.objects.filter(pk=partner.pk).update(email="")
    received = sweep(smtp_server)

    assert received and therapist.username not in " ".join(i.to for i in received)
    assert all(not i.to.startswith("iv-t1b") for i in received)
    reasons = set(Reminder.objects.filter(pk__in=planned).values_list("status", "reason"))
    assert reasons == {("skipped", "iv-t1b has no email address: add one in the admin.")}


def test_an_invitation_whose_session_changed_since_is_skipped_as_superseded(
    course: Course, smtp_server: Any
) -> None:
    """The send-time check: a row only goes while its SEQUENCE is the session's (a change
    that bumped it without planning, e.g. by hand in the database, sends nothing stale)."""
    closing = session_of(course, "closing")
    ScheduledSession.objects.filter(pk=closing.pk).update(sequence=F("sequence") + 1)

    received = sweep(smtp_server)

    assert str(closing.uid) not in {i.uid for i in received}
    rows = invitations(closing)
    assert rows and all(r.status == "skipped" and "Superseded" in r.reason for r in rows)


def test_the_key_names_the_session_the_person_and_the_sequence(course: Course) -> None:
    closing = session_of(course, "closing")
    keys = {r.idempotency_key for r in invitations(closing)}
    users = StaffBooking.objects.filter(session=closing, active=True).values_list(
        "user_id", flat=True
    )
    assert keys == {f"{UUID(str(closing.uid))}/invite/u{u}/s0" for u in users}
    assert {r.invitation_sequence for r in invitations(closing)} == {0}


def test_the_participant_page_leaves_the_staffs_invitations_to_each_sessions_page(
    course: Course, site: Site
) -> None:
    """Dozens per course (one per session and staff member, due at once): on the participant's
    page they pushed the participant's own reminders out of the list."""
    from django.test import Client

    from tests.conftest import make_staff

    person = course.participant
    person.email, person.email_consent_at = "p@example.org", timezone.now()
    person.save()
    reminders_sync(sessions=list(course.sessions.all()))
    dosing = session_of(course, "dosing-1")
    assert invitations(dosing)
    browser = Client()
    browser.force_login(make_staff("iv-coordinator", "coordinator", site))
    page = browser.get(f"/participants/{course.participant_id}/").content.decode()
    rows = page[page.index('id="reminders-section"') :]
    assert "Calendar invitation" not in rows
    assert "Reminder by Email" in rows  # the participant's own messages are listed
    session_page = browser.get(f"/sessions/{dosing.pk}/").content.decode()
    assert "Calendar invitation" in session_page[session_page.index('id="reminders-section"') :]
