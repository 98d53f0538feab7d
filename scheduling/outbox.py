"""The outbox's planning side: which reminder rows a session wants, kept in step with the
session in the same transaction that changes it; and the participant's consent and pause.

``reminders_sync`` is called by every service that creates, moves, closes or rebooks sessions
or changes who is booked on them. It compares the rows a session wants (from the protocol's
rules, the recipients and their channels) with the rows it has, by idempotency key: new ones
are created, open ones no longer wanted are cancelled with the reason in plain words, cancelled
ones wanted again are revived. Sent, failed and skipped rows are history and never touched.
The send task checks everything again at send time (scheduling.messages.hold_reason).
Calendar invitations to the staff booked on a session (iTIP REQUEST and CANCEL) are rows of
the same outbox, planned by the same sync (``_invitations``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from protocol.models import SessionTemplate
from protocol.spec import Audience, Channel, Kind, ReminderRule, parse_rule
from scheduling import clock
from scheduling.models import (
    Course,
    Participant,
    Reminder,
    ScheduledSession,
    StaffBooking,
    StaffProfile,
)
from scheduling.reminders import PENDING, SKIPPED, QuietHours, notice_due, plan_session

#: which booked staff a staff audience names, by their role
BOOKED_ROLES = {
    Audience.DYAD: StaffProfile.Role.THERAPIST,
    Audience.ASSESSOR: StaffProfile.Role.ASSESSOR,
    Audience.NIGHT_ATTENDANT: StaffProfile.Role.NIGHT_ATTENDANT,
}

ESCALATION_MESSAGE = "checkin_escalation"
MOVED_MESSAGE = "moved"
INVITATION_MESSAGE = "invitation"
#: an invitation row's ``rule_key``: its iTIP method, lower case
REQUEST, CANCEL = "request", "cancel"
NO_STAFF_EMAIL = "No email address on the staff member's account: add one in the admin."


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%MZ}"


@dataclass
class _Wanted:
    """A row a session wants (not yet saved)."""

    key: str
    participant_id: int | None
    staff_id: int | None
    purpose: str
    rule_key: str
    message: str
    channel: str
    due_at: datetime
    session_start: datetime
    status: str
    reason: str

    def row(self, session: ScheduledSession, site_id: int) -> Reminder:
        return Reminder(
            site_id=site_id,
            session=session,
            participant_id=self.participant_id,
            staff_id=self.staff_id,
            purpose=self.purpose,
            rule_key=self.rule_key,
            message=self.message,
            channel=self.channel,
            due_at=self.due_at,
            session_start=self.session_start,
            status=self.status,
            reason=self.reason,
            idempotency_key=self.key,
        )


Rules = tuple[tuple[ReminderRule, ...], bool]  # a template's rules, and whether it is joint


@dataclass
class _Context:
    """What the sessions of one sync need, read in one query per kind of thing."""

    rules: dict[tuple[int, str], Rules]
    booked: dict[int, list[tuple[int, str]]]
    coordinators: dict[int, list[int]]
    #: the booked staff's email addresses (invitations skip an account without one)
    emails: dict[int, str]


@transaction.atomic(savepoint=False)  # the caller's transaction, or one of its own
def reminders_sync(
    *, sessions: Iterable[ScheduledSession], now: datetime | None = None, new: bool = False
) -> None:
    """Bring the reminder rows of ``sessions`` in line with what each session is now.

    One query per kind of thing (sessions, rules, staff bookings, coordinators, existing rows)
    and one bulk write per kind of change, however many sessions: enrolment syncs ~40 at once.
    Sessions are read again unless they carry their course (see ``_loaded``). ``new``: the
    sessions were created in this transaction (enrolment), so they have no rows to compare
    with."""
    given = [s for s in sessions if s.pk is not None]
    ids = {s.pk for s in given}
    if not ids:
        return
    now = now or timezone.now()
    current = given if all(_loaded(s) for s in given) else _read(ids)
    context = _context(current)
    existing: dict[int, dict[str, Reminder]] = {}
    # locked: a send task holds its row while it sends; waiting for it means reading "sent"
    # (history, and a moved notice) instead of overwriting it with what was read before
    locked = Reminder.objects.select_for_update().filter(session__in=ids).order_by("pk")
    for row in Reminder.objects.none() if new else locked:
        existing.setdefault(row.session_id, {})[row.idempotency_key] = row
    create: list[Reminder] = []
    update: list[Reminder] = []
    for session in current:
        have = existing.get(session.pk, {})
        rows = list(have.values())
        wanted = {
            w.key: w
            for w in [
                *_wanted(session, context, rows, now),
                *_invitations(session, context, rows, now),
            ]
        }
        site_id = session.course.participant.site_id
        for key, want in wanted.items():
            kept = have.get(key)
            if kept is None:
                create.append(want.row(session, site_id))
            elif kept.status == Reminder.Status.CANCELLED:
                kept.status, kept.reason = want.status, want.reason or "planned again"
                kept.due_at, kept.session_start = want.due_at, want.session_start
                kept.attempts, kept.claim, kept.lease_until = 0, None, None
                update.append(kept)
            elif kept.status == Reminder.Status.PENDING and (
                kept.session_start != want.session_start
                or (kept.purpose == Reminder.Purpose.ESCALATION and kept.due_at != want.due_at)
            ):
                # keys that do not carry the session's start (an escalation; the evening
                # before, when the session moves within its day): the row follows the session
                kept.due_at, kept.session_start = want.due_at, want.session_start
                kept.status, kept.reason = want.status, want.reason
                update.append(kept)
        for key, old in have.items():
            # a concern's emails are the check-in service's, not planned here: they always go
            if key not in wanted and old.is_open and Reminder.CONCERN_MARK not in key:
                old.status = Reminder.Status.CANCELLED
                old.reason = _why_not_wanted(session, old)
                old.claim, old.lease_until = None, None
                update.append(old)
    if create:
        Reminder.objects.bulk_create(create)
    if update:
        for row in update:
            row.updated_at = now
        Reminder.objects.bulk_update(
            update,
            [
                "status",
                "reason",
                "due_at",
                "session_start",
                "attempts",
                "claim",
                "lease_until",
                "updated_at",
            ],
        )


def _loaded(session: ScheduledSession) -> bool:
    """Whether the caller's object carries its course, participant, site and protocol
    version already (enrolment's new sessions, a status change's locked course): then it is
    used as it is, saving a query per sync; otherwise the sessions are read again."""
    if not ScheduledSession.course.is_cached(session):
        return False
    course = session.course
    return (
        Course.participant.is_cached(course)
        and Course.protocol_version.is_cached(course)
        and (course.partner_id is None or Course.partner.is_cached(course))
        and Participant.site.is_cached(course.participant)
    )


def _read(ids: set[int]) -> list[ScheduledSession]:
    """The sessions, locked: two syncs of one session (a move and a participant's new channel
    saved at once) take turns instead of inserting the same key twice."""
    return list(
        ScheduledSession.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .select_related("course__participant__site", "course__partner", "course__protocol_version")
    )


def _rules(sessions: list[ScheduledSession]) -> dict[tuple[int, str], Rules]:
    """Each template's rules (and whether it is joint), of every version the sessions use."""
    versions = {s.course.protocol_version_id for s in sessions}
    found: dict[tuple[int, str], Rules] = {}
    for version_id, key, documents, joint in SessionTemplate.objects.filter(
        version__in=versions
    ).values_list("version_id", "key", "reminders", "joint"):
        found[(version_id, key)] = (tuple(parse_rule(d) for d in documents or []), joint)
    return found


def _context(sessions: list[ScheduledSession]) -> _Context:
    rules = _rules(sessions)
    audiences = {a for found, _ in rules.values() for rule in found for a in rule.audience}
    booked: dict[int, list[tuple[int, str]]] = {}
    emails: dict[int, str] = {}
    # read whatever the rules say: every booked staff member gets calendar invitations
    for session_id, user_id, role, email in StaffBooking.objects.filter(
        session__in=[s.pk for s in sessions], active=True, user__is_active=True
    ).values_list("session_id", "user_id", "user__staff_profile__role", "user__email"):
        booked.setdefault(session_id, []).append((user_id, role or ""))
        emails[user_id] = email
    coordinators: dict[int, list[int]] = {}
    checkins = any(s.kind == Kind.PHONE_CHECKIN for s in sessions)
    if Audience.COORDINATORS in audiences or checkins:
        sites = {s.course.participant.site_id for s in sessions}
        for site_id, user_id in (
            StaffProfile.objects.filter(
                role=StaffProfile.Role.COORDINATOR, sites__in=sites, user__is_active=True
            )
            .order_by("user_id")
            .values_list("sites", "user_id")
        ):
            if site_id in sites:
                coordinators.setdefault(site_id, []).append(user_id)
    return _Context(rules=rules, booked=booked, coordinators=coordinators, emails=emails)


def _people(session: ScheduledSession, joint: bool) -> list[Participant]:
    course = session.course
    people = [course.participant]
    if joint and course.partner is not None:
        people.append(course.partner)
    return [p for p in people if p.status != Participant.Status.WITHDRAWN]


def _participant_channels(person: Participant) -> list[str]:
    return (
        [] if person.preferred_channel == Participant.Channel.NONE else [person.preferred_channel]
    )


def _wanted(
    session: ScheduledSession, context: _Context, have: list[Reminder], now: datetime
) -> list[_Wanted]:
    course = session.course
    if not session.is_open or session.superseded or course.status != Course.Status.ACTIVE:
        return []
    site = course.participant.site
    quiet = QuietHours(ZoneInfo(site.timezone), site.quiet_hours_start, site.quiet_hours_end)
    rules, joint = context.rules.get(
        (course.protocol_version_id, session.template_key), ((), False)
    )
    people = _people(session, joint)
    start = session.start.astimezone(UTC)
    found: list[_Wanted] = []
    for plan in plan_session(rules, start, quiet, now):
        recipients: list[tuple[int | None, int | None, list[str]]] = []
        if plan.for_participants:
            for person in people:
                channels = [c for c in _participant_channels(person) if c in plan.channels]
                recipients.append((person.pk, None, channels))
        else:
            emails = [Channel.EMAIL.value] if Channel.EMAIL in plan.channels else []
            for user_id in _staff_for(session, plan.audiences, context):
                recipients.append((None, user_id, emails))
        for participant_id, staff_id, channels in recipients:
            recipient = f"p{participant_id}" if participant_id else f"u{staff_id}"
            for channel in channels:
                found.append(
                    _Wanted(
                        key=f"{session.uid}/{plan.rule_key}/{recipient}/{channel}/"
                        f"{_stamp(plan.nominal_due)}",
                        participant_id=participant_id,
                        staff_id=staff_id,
                        purpose=Reminder.Purpose.REMINDER,
                        rule_key=plan.rule_key,
                        message=plan.message,
                        channel=channel,
                        due_at=plan.due_at,
                        session_start=start,
                        status=plan.status,
                        reason=plan.reason,
                    )
                )
    found.extend(_moved_notices(session, people, have, start, quiet, now))
    if session.kind == Kind.PHONE_CHECKIN:
        hours = course.protocol_version.checkin_escalation_hours
        due = start + timedelta(hours=hours)
        planned = {row.idempotency_key for row in have}
        for user_id in context.coordinators.get(site.pk, []):
            key = f"{session.uid}/escalation/overdue/u{user_id}"
            # first planned after it would have escalated (a back-entered course): history,
            # not an email; a row planned in time still goes, however late the sweep is
            late = due <= now and key not in planned
            found.append(
                _Wanted(
                    key=key,
                    participant_id=None,
                    staff_id=user_id,
                    purpose=Reminder.Purpose.ESCALATION,
                    rule_key="",
                    message=ESCALATION_MESSAGE,
                    channel=Channel.EMAIL.value,
                    due_at=now if late else due,
                    session_start=start,
                    status=SKIPPED if late else PENDING,
                    reason="the check-in was over before it was planned" if late else "",
                )
            )
    return found


def _staff_for(
    session: ScheduledSession, audiences: Iterable[Audience], context: _Context
) -> list[int]:
    people: list[int] = []
    for audience in audiences:
        if audience == Audience.COORDINATORS:
            found = context.coordinators.get(session.course.participant.site_id, [])
        else:
            role = BOOKED_ROLES.get(audience)
            found = [u for u, r in context.booked.get(session.pk, []) if r == role]
        people.extend(u for u in found if u not in people)
    return people


def _moved_notices(
    session: ScheduledSession,
    people: list[Participant],
    have: list[Reminder],
    start: datetime,
    quiet: QuietHours,
    now: datetime,
) -> list[_Wanted]:
    """One "your appointment has moved" row per channel for each participant who was already
    told of another start (a sent reminder or moved notice): once per new start, by its key."""
    told = {
        row.participant_id
        for row in have
        if row.participant_id is not None
        and row.status == Reminder.Status.SENT
        and row.session_start != start
    }
    found: list[_Wanted] = []
    for person in people:
        if person.pk not in told:
            continue
        due, status, reason = notice_due(start, now, quiet)
        for channel in _participant_channels(person):
            found.append(
                _Wanted(
                    key=f"{session.uid}/moved/{_stamp(start)}/p{person.pk}/{channel}",
                    participant_id=person.pk,
                    staff_id=None,
                    purpose=Reminder.Purpose.MOVED,
                    rule_key="",
                    message=MOVED_MESSAGE,
                    channel=channel,
                    due_at=due,
                    session_start=start,
                    status=status,
                    reason=reason,
                )
            )
    return found


def _invitations(
    session: ScheduledSession, context: _Context, have: list[Reminder], now: datetime
) -> list[_Wanted]:
    """Calendar invitations (iTIP, RFC 5546) for the staff of ``session``, one row per person
    for the session's current state: its SEQUENCE and whether they hold the event.

    Each staff member actively booked on an open session wants a REQUEST at the current
    SEQUENCE; one who was sent a REQUEST (their latest invitation that went) and is no longer
    booked on it, or whose session was cancelled, wants a CANCEL. The key names the session,
    the person and the SEQUENCE, so a state is sent once, each new state once, and the rows for
    older states, not wanted any more, are cancelled by the sync while still pending: only the
    latest goes out. Nothing for a session that is over, completed or missed (there is nothing
    left to put in a calendar), nor a CANCEL to someone who never got the event. Due at once:
    no quiet hours for staff; an account without an email address is skipped here, with the
    reason, and checked again at send time (scheduling.messages)."""
    status = session.status
    if status in (ScheduledSession.Status.COMPLETED, ScheduledSession.Status.MISSED):
        return []
    if session.end <= now:
        return []
    holds = (
        session.is_open and not session.superseded and session.course.status == Course.Status.ACTIVE
    )
    booked = [u for u, _ in context.booked.get(session.pk, [])] if holds else []
    told: dict[int, tuple[int, int, str]] = {}  # person: (sequence, row, method) of the latest
    for row in have:
        if (
            row.purpose == Reminder.Purpose.INVITATION
            and row.staff_id is not None
            and row.status in (Reminder.Status.SENT, Reminder.Status.SENDING)
        ):
            latest = (row.invitation_sequence or 0, row.pk, row.rule_key)
            told[row.staff_id] = max(told.get(row.staff_id, latest), latest)
    uninvited = [u for u, (_, _, method) in told.items() if method == REQUEST and u not in booked]
    found: list[_Wanted] = []
    for user_id, method in [
        *((u, REQUEST) for u in dict.fromkeys(booked)),
        *((u, CANCEL) for u in sorted(uninvited)),
    ]:
        # a CANCEL goes to someone who had the REQUEST, so had an address (checked when sent)
        addressed = method == CANCEL or bool(context.emails.get(user_id, "").strip())
        key = f"{session.uid}{Reminder.INVITE_MARK}{user_id}/s{session.sequence}"
        found.append(
            _Wanted(
                key=key if method == REQUEST else f"{key}/cancel",
                participant_id=None,
                staff_id=user_id,
                purpose=Reminder.Purpose.INVITATION,
                rule_key=method,
                message=INVITATION_MESSAGE,
                channel=Channel.EMAIL.value,
                due_at=now,
                session_start=session.start.astimezone(UTC),
                status=PENDING if addressed else SKIPPED,
                reason="" if addressed else NO_STAFF_EMAIL,
            )
        )
    return found


def _why_not_wanted(session: ScheduledSession, row: Reminder) -> str:
    """Why an open row is cancelled, in the clinic's words."""
    course = session.course
    if course.status == Course.Status.WITHDRAWN:
        return "the participant withdrew"
    if course.status == Course.Status.ENDED:
        return "the course was ended early"
    if session.superseded:
        return "the session was rebooked"
    if session.status == ScheduledSession.Status.CANCELLED:
        return "the session was cancelled"
    if session.status == ScheduledSession.Status.MISSED:
        return "the session was marked missed"
    if session.status == ScheduledSession.Status.COMPLETED:
        return "the session took place"
    if course.status != Course.Status.ACTIVE:
        return f"the course is {course.get_status_display()}"
    if row.session_start != session.start:
        return f"the session moved to {clock.local_text(session.start, course.participant.site)}"
    if row.purpose == Reminder.Purpose.INVITATION:
        if (row.invitation_sequence or 0) < session.sequence:
            return "the session changed again: the invitation for its latest state goes instead"
        if session.end <= timezone.now():
            return "the session is over"
        return "the staff member is no longer booked on the session"
    if row.participant_id is not None:
        person = next(
            (p for p in (course.participant, course.partner) if p and p.pk == row.participant_id),
            None,
        )
        if person is None or person.status == Participant.Status.WITHDRAWN:
            return "the participant withdrew"
        if person.preferred_channel == Participant.Channel.NONE:
            return "the participant chose no reminders"
        if person.preferred_channel != row.channel:
            said = {"email": "email", "sms": "text messages"}.get(person.preferred_channel, "")
            return f"the participant now prefers {said}"
    if row.purpose == Reminder.Purpose.ESCALATION:
        return "no longer a coordinator at the site"
    if row.staff_id is not None:
        return "the staff member is no longer booked on the session"
    return "the protocol no longer has this reminder"


# --- the participant's consent and pause ---------------------------------------------------


def participant_future_sessions(participant: Participant) -> list[ScheduledSession]:
    """The open sessions ahead of a participant (their own courses and a partner's)."""
    return list(
        ScheduledSession.objects.filter(
            course__in=Course.objects.filter(participant=participant)
            .values("pk")
            .union(Course.objects.filter(partner=participant).values("pk")),
            superseded=False,
            status__in=[ScheduledSession.Status.PLANNED, ScheduledSession.Status.CONFIRMED],
            start__gt=timezone.now(),
        )
    )


@transaction.atomic
def participant_reminders_resync(*, participant: Participant) -> None:
    """After a participant's preferred channel or contact changed: their future sessions'
    rows follow (a row on a channel they no longer use is cancelled, the new one planned)."""
    reminders_sync(sessions=participant_future_sessions(participant))


#: how far back a change of a site's staff re-plans open sessions (an escalation is due
#: some hours after its check-in; older open sessions only wait for their status)
STAFF_RESYNC_BACK = timedelta(days=2)


@transaction.atomic
def sites_reminders_resync(*, site_ids: Iterable[int]) -> None:
    """After a site's staff changed (a coordinator added or gone, a role or a site changed):
    the open sessions there follow, so escalations and staff reminders go to who holds the
    role now, and no longer to who left it."""
    now = timezone.now()
    sessions = ScheduledSession.objects.filter(
        course__participant__site__in=list(site_ids),
        course__status=Course.Status.ACTIVE,
        superseded=False,
        status__in=[ScheduledSession.Status.PLANNED, ScheduledSession.Status.CONFIRMED],
        start__gt=now - STAFF_RESYNC_BACK,
    )
    reminders_sync(sessions=sessions, now=now)


def _save_participant(participant: Participant, by: Any, reason: str) -> None:
    participant._change_reason = reason  # type: ignore[attr-defined]  # simple-history
    participant._history_user = by  # type: ignore[attr-defined]
    participant.save()


@transaction.atomic
def participant_consent_set(
    *, participant: Participant, channel: str, given: bool, by: User | None, source: str
) -> Participant:
    """Record consent to reminders on ``channel`` (email or sms) given or withdrawn now;
    ``source`` says how (staff page, an inbound STOP, ...). The history keeps who and when.
    Rows are not cancelled: the send-time check skips a row without consent, with that
    reason, so the outbox shows why nothing went."""
    if channel not in (Channel.EMAIL, Channel.SMS):
        raise ValueError(f"'{channel}' is not a reminder channel (email or sms)")
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    field = f"{channel}_consent_at"
    if given == (getattr(participant, field) is not None):
        return participant  # no change: the date consent was first given stays
    setattr(participant, field, timezone.now() if given else None)
    what = "given" if given else "withdrawn"
    _save_participant(participant, by, f"{channel} consent {what} ({source})")
    return participant


@transaction.atomic
def participant_reminders_pause(
    *, participant: Participant, by: User | None, reason: str
) -> Participant:
    """Pause a participant's reminders. Rows are not cancelled: each one due while paused is
    skipped at send time with "reminders paused by staff", so resuming needs no re-planning
    and the outbox shows what was held back."""
    reason = reason.strip()
    if not reason:
        raise ValueError("give a reason for pausing the reminders: it is recorded")
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    participant.reminders_paused_at = participant.reminders_paused_at or timezone.now()
    participant.reminders_pause_reason = reason[:200]
    _save_participant(participant, by, f"reminders paused: {reason}")
    return participant


@transaction.atomic
def participant_reminders_resume(*, participant: Participant, by: User | None) -> Participant:
    """Resume a participant's reminders: the rows still ahead go as planned."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    if participant.reminders_paused_at is None:
        return participant
    participant.reminders_paused_at = None
    participant.reminders_pause_reason = ""
    _save_participant(participant, by, "reminders resumed")
    return participant


def phone_digits(number: str) -> str:
    """A phone number's digits, for matching: "+1 (212) 555-0100" -> "12125550100"."""
    return "".join(ch for ch in number if ch.isdigit())


def _same_number(stored: str, sender: str) -> bool:
    """Whether two numbers' digits are one phone: equal, or one is the other with a country
    code (1-3 digits) in front, leading zeros (a national trunk 0, an international 00) aside.
    A mere common tail is not enough: "555-0100" is not every number ending so."""
    stored, sender = stored.lstrip("0"), sender.lstrip("0")
    short, long = sorted((stored, sender), key=len)
    if len(short) < 7:
        return False
    return short == long or (
        len(short) >= 8 and long.endswith(short) and len(long) - len(short) <= 3
    )


@transaction.atomic
def participants_sms_consent_from_reply(*, phone: str, given: bool) -> int:
    """An inbound STOP (``given`` False) or START: every participant with that number loses
    or regains text-message consent. Matched on digits (``_same_number``): a number stored
    without its country code matches. Returns how many changed."""
    digits = phone_digits(phone)
    if len(digits) < 7:
        return 0
    changed = 0
    # stored numbers keep the formatting staff typed: compared digit by digit in Python
    # (a webhook call per reply; a clinic has thousands of participants, not millions)
    for person in Participant.objects.exclude(phone="").only("pk", "phone").iterator():
        if not _same_number(phone_digits(person.phone), digits):
            continue
        before = person.sms_consent_at
        after = participant_consent_set(
            participant=person, channel="sms", given=given, by=None, source="text message reply"
        )
        changed += (before is None) != (after.sms_consent_at is None)
    return changed
