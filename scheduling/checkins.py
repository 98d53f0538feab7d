"""Phone check-ins are staff work: the therapist who makes the call records what it came to
(reached, no answer, concern, with a note). A concern escalates at once: one email to each of
the site's coordinators is written to the outbox in the same transaction as the outcome, so
the two are stored together or not at all. The check-in that nobody records is escalated by
the outbox's own planning (``scheduling.outbox``, due N hours after the call)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from protocol.spec import Kind
from scheduling import access, clock
from scheduling.models import CheckInOutcome, Reminder, ScheduledSession, StaffProfile
from scheduling.services import SchedulingError
from scheduling.validators import REASON_MAX_LENGTH

#: the message of every escalation row (the contract of issue 10)
ESCALATION_MESSAGE = "checkin_escalation"
Outcome = CheckInOutcome.Outcome


def concern_key(session: ScheduledSession, outcome_id: int, user_id: int) -> str:
    """The idempotency key of a concern's escalation to one coordinator."""
    return f"{session.uid}{Reminder.CONCERN_MARK}{outcome_id}/u{user_id}"


def _fail(name: str, message: str) -> SchedulingError:
    return SchedulingError({name: [message]})


@transaction.atomic
def checkin_record(
    *, session: ScheduledSession, outcome: str, note: str, by: User | Any
) -> CheckInOutcome:
    """Record the outcome of a phone check-in. Only the therapist booked on it, or the site's
    coordinators and administrators, may (``access`` says who); only for a check-in that has
    not been cancelled or rebooked, and from its local day on. A concern needs a note and
    writes the escalation emails to the site's coordinators in the same transaction."""
    locked = (
        ScheduledSession.objects.select_for_update(of=("self",))
        .select_related("course__participant__site")
        .filter(pk=session.pk)
        .first()
    )
    if by is None or locked is None or not access.can(by, access.Action.RECORD_CHECKIN, locked):
        # a session the user may not even see reads the same as one they may see but not act on
        raise PermissionDenied(
            "Only the therapist booked on this check-in, or the site's coordinators and "
            "administrators, record its outcome."
        )
    session = locked
    site = session.course.participant.site
    if outcome not in Outcome.values:
        raise _fail("outcome", "Choose what the call came to: reached, no answer or concern.")
    note = (note or "").strip()
    if len(note) > REASON_MAX_LENGTH:
        raise _fail("note", f"Shorten the note to at most {REASON_MAX_LENGTH} characters.")
    if "\x00" in note:  # PostgreSQL cannot store it: a pasted control character
        raise _fail("note", "The note holds a control character; type it again.")
    if outcome == Outcome.CONCERN and not note:
        raise _fail(
            "note",
            "Say what the concern is: the site's coordinators are told at once and read "
            "the note on the session's page.",
        )
    if session.kind != Kind.PHONE_CHECKIN:
        raise _fail("session", f"{session.title} is not a phone check-in: nothing to record.")
    if session.superseded:
        raise _fail(
            "session",
            "This check-in was rebooked: record the outcome on the session that replaces it.",
        )
    if session.status == ScheduledSession.Status.CANCELLED:
        raise _fail(
            "session",
            "This check-in was cancelled: rebook it first if the call is still to be made.",
        )
    now = timezone.now()
    if clock.local(session.start, site).date() > clock.local(now, site).date():
        raise _fail(
            "session",
            f"This check-in is planned for {clock.local_text(session.start, site)}: record "
            "its outcome on the day of the call.",
        )
    row = CheckInOutcome(session=session, outcome=outcome, note=note, recorded_by=by)
    row._history_user = by  # type: ignore[attr-defined]  # who, in the audit history
    row.save()
    if outcome == Outcome.CONCERN:
        _escalate_concern(session, row, now)
    return row


def _escalate_concern(session: ScheduledSession, row: CheckInOutcome, now: Any) -> None:
    """One email per coordinator of the session's site, due now (the sweep sends it within a
    minute; the send task re-checks the recipient). The note is not in the message: it is read
    on the session's page, behind the sign-in."""
    site = session.course.participant.site
    coordinators = (
        StaffProfile.objects.filter(
            role=StaffProfile.Role.COORDINATOR, sites=site, user__is_active=True
        )
        .order_by("user_id")
        .values_list("user_id", flat=True)
        .distinct()
    )
    Reminder.objects.bulk_create(
        Reminder(
            site=site,
            session=session,
            staff_id=user_id,
            purpose=Reminder.Purpose.ESCALATION,
            rule_key="concern",
            message=ESCALATION_MESSAGE,
            channel=Reminder.Channel.EMAIL,
            due_at=now,
            session_start=session.start,
            idempotency_key=concern_key(session, row.pk, user_id),
        )
        for user_id in coordinators
    )


def escalations_of(row: CheckInOutcome) -> list[Reminder]:
    """The escalation emails a concern wrote (none for another outcome)."""
    prefix = f"{row.session.uid}{Reminder.CONCERN_MARK}{row.pk}/"
    return list(Reminder.objects.filter(idempotency_key__startswith=prefix).order_by("staff_id"))
