"""Delivering reminder rows: the sweep's claim, one row's delivery, and its recorded outcome.

The beat's sweep (scheduling.tasks.sweep_reminders) claims due rows with
:func:`reminders_claim_due` and enqueues one send task per row after the claim commits; the task
calls :func:`reminder_deliver`, which checks again, sends through scheduling.channels and writes
the outcome on the row. Nothing is ever queued ahead as a Celery ETA/countdown task.

What each channel promises
--------------------------
**Email: at least once, with a Message-ID that is the same on every try.** The row stays locked
from the claim check to the recorded outcome, across the SMTP conversation, so a second task for
the same claim waits and then finds the row sent. A worker that dies after the mail server
accepted the message but before the outcome committed (a window of milliseconds) leaves the row
"sending"; when its lease runs out the sweep claims it again and the email goes a second time,
with the same Message-ID, by which mail servers and clients recognise the copy. Never lost; a
second copy only after such a crash.

**SMS: at most once.** A text message has no identifier a phone could recognise a copy by, and
two "your session is tomorrow" texts are worse than a phone call. The attempt is committed on
the row before the provider is called; a row found in that state later (the worker died, or the
provider's answer was lost) ends failed with "may or may not have gone; not sent again", for a
coordinator to follow up. A transient error that may have reached the provider (its answer
timed out) ends the same way; one that certainly did not (connection refused, 503) is tried
again.

**Both:** a row is claimed only while pending and due, or sending with its lease run out; a
task whose claim is not the row's current one does nothing. Transient errors put the row back
to pending with a later due time (REMINDER_RETRY_SECONDS) until REMINDER_MAX_ATTEMPTS, then
failed; permanent errors fail it at once, with the channel's words.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import smtplib
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.db.models import F, Field, Model, Q
from django.utils import timezone

from scheduling import calendars, channels, messages
from scheduling.channels import Outgoing, TransportError
from scheduling.models import Course, Participant, Reminder, ScheduledSession, Site

logger = logging.getLogger(__name__)

Status = Reminder.Status

#: Written and committed on an SMS row just before the provider is called: a later claim that
#: finds it knows an attempt started whose outcome was never recorded.
SMS_ATTEMPT_STARTED = "The text message is being handed to the SMS provider."
SMS_OUTCOME_UNKNOWN = (
    "The text message may or may not have gone (the SMS provider's answer was lost); it was "
    "not sent again, so that nobody gets it twice: check with the participant if it matters."
)


def reminders_claim_due(*, now: datetime, limit: int) -> list[tuple[int, UUID]]:
    """Claim up to ``limit`` due reminders, oldest first: status sending, a fresh claim
    token, a lease, one more attempt. Returns (id, claim) pairs for the send tasks."""
    return claim_due(Reminder, now=now, limit=limit, lease_seconds=settings.REMINDER_LEASE_SECONDS)


def claim_due(
    model: type[Model], *, now: datetime, limit: int, lease_seconds: int
) -> list[tuple[int, UUID]]:
    """Claim up to ``limit`` due rows of an outbox ``model`` (reminders, CalDAV pushes: rows
    with status, due_at, claim, lease_until, attempts and updated_at), oldest first.

    Safe with two sweeps at once: on PostgreSQL the candidates are locked with SKIP LOCKED, so
    a concurrent sweep takes other rows, and a row a task holds locked (an email being sent) is
    never claimed meanwhile. SQLite (`make run`) has no row locks: there the conditional
    UPDATE, which re-checks the due condition, decides which sweep wins a row.
    """
    rows = model._default_manager
    due = Q(status="pending", due_at__lte=now) | Q(status="sending", lease_until__lt=now)
    claim = uuid.uuid4()  # one token per sweep batch: (id, claim) is unique per claim
    with transaction.atomic():
        candidates = rows.filter(due).order_by("due_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        rows.filter(due, pk__in=ids).update(
            status="sending",
            claim=claim,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        claimed = rows.filter(pk__in=ids, claim=claim).values_list("pk", flat=True)
        return [(pk, claim) for pk in sorted(claimed)]


def reminder_deliver(*, reminder_id: int, claim: UUID, now: datetime | None = None) -> None:
    """Send one claimed reminder and record what happened. Does nothing unless the row is
    still "sending" under ``claim``: a duplicate or late task finds it sent, re-claimed,
    cancelled or skipped. See the module's docstring for what each channel promises."""
    with transaction.atomic():
        reminder = _locked(reminder_id)
        if reminder is None or reminder.status != Status.SENDING or reminder.claim != claim:
            return
        now = now or timezone.now()
        if reminder.channel == Reminder.Channel.SMS and reminder.reason == SMS_ATTEMPT_STARTED:
            _record(reminder, Status.FAILED, SMS_OUTCOME_UNKNOWN)  # never a second text
            return
        if reminder.attempts > settings.REMINDER_MAX_ATTEMPTS:
            # claimed again and again without an outcome: its task keeps dying; stop here
            _record(
                reminder,
                Status.FAILED,
                f"Not sent: {reminder.attempts - 1} tries ended without an answer. "
                "Ask the administrator to look at the reminder worker's log.",
            )
            return
        hold = messages.hold_reason(reminder, now)
        if hold is not None:
            if hold.status == Status.PENDING:
                reminder.attempts -= 1  # waiting for the quiet hours to end is not a try
            _record(reminder, hold.status, hold.reason, due_at=hold.due_at)
            return
        address = _address(reminder)  # hold_reason has skipped a recipient without one
        try:
            rendered = messages.render(reminder, messages.CHANNEL_PARTS[reminder.channel])
            calendar = (
                calendars.invitation_calendar(reminder)  # the session as it is now
                if reminder.purpose == Reminder.Purpose.INVITATION
                else None
            )
        except messages.Indiscreet as problem:  # it would name what it must not: never sent
            _record(reminder, Status.FAILED, str(problem))
            return
        except Exception:  # a template bug: fail the row visibly instead of retrying forever
            logger.exception("reminder %s could not be rendered", reminder.pk)
            _record(
                reminder,
                Status.FAILED,
                "The message could not be written (a fault in its template): tell the "
                "administrator.",
            )
            return
        if reminder.channel == Reminder.Channel.EMAIL:
            # The row lock is held across the SMTP conversation on purpose: a second task for
            # this claim (the broker may hand a message out twice) waits here and then finds
            # the row sent, instead of sending again. EMAIL_TIMEOUT and the task's time limit
            # bound how long the lock is held.
            outgoing = Outgoing(
                to=address,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=messages.message_id(reminder),
                headers={"Auto-Submitted": "auto-generated"},  # RFC 3834: no auto-replies
                calendar=calendar,
            )
            try:
                sent_as = _send_email(outgoing)
            except TransportError as error:
                _record_failure(reminder, error, now)
                return
            _record_sent(reminder, sent_as, now)
            return
        # SMS, at most once: commit the attempt first, then call the provider without the lock
        # (a provider that hangs must not hold the row), then record what it answered.
        reminder.reason = SMS_ATTEMPT_STARTED
        _save_fields(reminder, ["reason", "updated_at"])
    _deliver_sms(reminder_id, claim, address, rendered.sms, now)


def _deliver_sms(reminder_id: int, claim: UUID, to: str, text: str, now: datetime) -> None:
    try:
        provider_id = channels.send_sms(Outgoing(to=to, text=text))
    except TransportError as error:
        with transaction.atomic():
            reminder = _locked(reminder_id)
            if reminder is None or reminder.status != Status.SENDING or reminder.claim != claim:
                return  # claimed again meanwhile and already failed as "may have gone"
            if error.maybe_delivered and not error.permanent:
                _record(reminder, Status.FAILED, SMS_OUTCOME_UNKNOWN)
            else:
                _record_failure(reminder, error, now)
        return
    with transaction.atomic():
        reminder = _locked(reminder_id)
        # The text went: that is the truth even if a later claim has meanwhile failed the row
        # as "may or may not have gone".
        if reminder is not None and reminder.status != Status.SENT:
            _record_sent(reminder, provider_id, now)


class _MailConnection(threading.local):
    """The SMTP connection a worker process (or thread) keeps between sends that follow each
    other closely, as in a batch: connecting and greeting the server once per batch instead of
    once per reminder. Reopened after SMTP_IDLE_SECONDS (servers drop idle connections after
    minutes), after SMTP_MESSAGES_PER_CONNECTION (servers limit messages per connection), and
    after any error."""

    backend: BaseEmailBackend | None = None
    used_at = 0.0
    sent = 0

    def close(self) -> None:
        if self.backend is not None:
            with contextlib.suppress(Exception):  # it is being dropped anyway
                self.backend.close()
        self.backend = None


SMTP_IDLE_SECONDS = 10.0
SMTP_MESSAGES_PER_CONNECTION = 100
_mail = _MailConnection()


def _send_email(outgoing: Outgoing) -> str:
    reused = (
        _mail.backend is not None
        and time.monotonic() - _mail.used_at < SMTP_IDLE_SECONDS
        and _mail.sent < SMTP_MESSAGES_PER_CONNECTION
    )
    if not reused:
        _mail.close()
        backend = get_connection(fail_silently=False)
        try:
            backend.open()
        except (smtplib.SMTPException, OSError):
            # send without a kept connection: channels turns the failure into its words
            return channels.send_email(outgoing)
        _mail.backend, _mail.sent = backend, 0
    try:
        sent_as = channels.send_email(outgoing, connection=_mail.backend)
    except TransportError as error:
        _mail.close()
        if not reused or error.permanent:
            raise
        # the kept connection may have gone stale: once more on a fresh one (at least once:
        # should the first have arrived after all, this copy has the same Message-ID)
        return channels.send_email(outgoing)
    _mail.used_at, _mail.sent = time.monotonic(), _mail.sent + 1
    return sent_as


def _locked(reminder_id: int) -> Reminder | None:
    """The row, locked until the transaction ends, with its site, session, course and
    recipient: what the send-time check and the message read, in one statement.

    The send path runs once per reminder and every millisecond of it is multiplied by the
    batch, so the statement is written out once per process from the models' own metadata
    (:func:`_lock_statement`) instead of being compiled by the ORM on every send, which cost
    more than the rest of the send together (bench/reminders.py). The objects it returns are
    the models' own instances (``Model.from_db``), with their related objects attached as
    ``select_related`` would attach them."""
    sql, parts = _lock_statement(connection.ops.quote_name)
    row = _execute(sql, [reminder_id], fetch=True)
    if row is None:
        return None
    found: dict[str, Any] = {}
    for name, model, attnames, start in parts:
        values = row[start : start + len(attnames)]
        # a LEFT JOIN that found nothing (a staff row has no participant): no object
        found[name] = (
            None if values[0] is None else model.from_db(connection.alias, attnames, values)
        )
    reminder, session = found["reminder"], found["session"]
    session.course = found["course"]
    reminder.site, reminder.session = found["site"], session
    reminder.participant, reminder.staff = found["participant"], found["staff"]
    assert isinstance(reminder, Reminder)
    return reminder


#: (name, model, attribute names of its columns, where they start in the row)
_Part = tuple[str, type[Model], list[str], int]


@functools.cache
def _lock_statement(quote: Callable[[str], str]) -> tuple[str, list[_Part]]:
    """The locking read's SQL and, per model, where its columns are in the row: every
    concrete field of each model, in the models' field order, as ``from_db`` takes them."""

    def column(model: type[Model], name: str) -> str:
        field = model._meta.pk if name == "pk" else model._meta.get_field(name)
        assert isinstance(field, Field)
        return quote(field.column)

    joins: list[tuple[str, type[Model], str, str]] = [  # (name, model, alias, how it joins)
        ("reminder", Reminder, "r", ""),
        ("site", Site, "s", f"JOIN {{}} s ON s.{{}} = r.{column(Reminder, 'site')}"),
        (
            "session",
            ScheduledSession,
            "ss",
            f"JOIN {{}} ss ON ss.{{}} = r.{column(Reminder, 'session')}",
        ),
        ("course", Course, "c", f"JOIN {{}} c ON c.{{}} = ss.{column(ScheduledSession, 'course')}"),
        (
            "participant",
            Participant,
            "p",
            f"LEFT JOIN {{}} p ON p.{{}} = r.{column(Reminder, 'participant')}",
        ),
        (
            "staff",
            get_user_model(),
            "u",
            f"LEFT JOIN {{}} u ON u.{{}} = r.{column(Reminder, 'staff')}",
        ),
    ]
    columns: list[str] = []
    parts: list[_Part] = []
    clauses = [f"FROM {quote(Reminder._meta.db_table)} r"]
    for name, model, alias, join in joins:
        fields = model._meta.concrete_fields
        # the primary key first: a LEFT JOIN's is NULL when it found nothing
        assert fields[0].primary_key, model
        parts.append((name, model, [field.attname for field in fields], len(columns)))
        columns += [f"{alias}.{quote(field.column)}" for field in fields]
        if join:
            clauses.append(join.format(quote(model._meta.db_table), column(model, "pk")))
    lock = " FOR UPDATE OF r" if connection.features.has_select_for_update_of else ""
    where = f" WHERE r.{column(Reminder, 'pk')} = %s"
    # identifiers from the models, quoted; the one value is a parameter
    sql = f"SELECT {', '.join(columns)} {' '.join(clauses)}{where}{lock}"
    return sql, parts


def _address(reminder: Reminder) -> str:
    if reminder.participant is not None:
        if reminder.channel == Reminder.Channel.SMS:
            return reminder.participant.phone
        return reminder.participant.email
    if reminder.staff is not None and reminder.channel == Reminder.Channel.EMAIL:
        return reminder.staff.email
    return ""


def _record(
    reminder: Reminder,
    status: str,
    reason: str,
    *,
    due_at: datetime | None = None,
    sent: tuple[str, datetime] | None = None,
) -> None:
    """Write the outcome (``sent``: the provider's id and when) and end the lease."""
    reminder.status = status
    reminder.reason = reason
    reminder.lease_until = None
    fields = ["status", "reason", "lease_until", "attempts", "updated_at"]
    if due_at is not None:
        reminder.due_at = due_at
        fields.append("due_at")
    if sent is not None:
        reminder.provider_id, reminder.sent_at = sent
        fields += ["provider_id", "sent_at"]
    _save_fields(reminder, fields)


def _save_fields(reminder: Reminder, names: list[str]) -> None:
    """``reminder.save(update_fields=names)``, by a statement written once per set of fields
    (see :func:`_locked` for why). The fields' own ``pre_save`` (``auto_now`` stamps
    ``updated_at``) and ``get_db_prep_save`` give the values, as ``save`` would; the outbox
    has no signal receivers and no history to miss."""
    fields = [Reminder._meta.get_field(name) for name in names]
    values = [
        field.get_db_prep_save(field.pre_save(reminder, False), connection)
        for field in fields
        if isinstance(field, Field)
    ]
    _execute(_update_statement(tuple(names), connection.ops.quote_name), [*values, reminder.pk])


def _execute(sql: str, params: list[Any], *, fetch: bool = False) -> tuple[Any, ...] | None:
    """Run one of the send path's statements through Django's cursor (its error translation,
    its query log and execute wrappers); on PostgreSQL as a prepared statement, planned once
    per connection (DATABASE_PREPARED_STATEMENTS)."""
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.wrap_database_errors:
            raw = _PreparedCursor(connection.connection)
        # (the stubs say these take Django's wrapper; they take the driver's cursor and wrap it)
        wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
        cursor = wrap(raw)  # type: ignore[arg-type]
    else:
        cursor = connection.cursor()
    with cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if fetch else None


class _PreparedCursor(psycopg.Cursor[Any]):
    """A psycopg cursor with server-side parameters whose statements are prepared (when the
    connection's prepare_threshold allows any: psycopg ignores the request otherwise)."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Any:
        return super().execute(query, params, prepare=True, binary=binary)


@functools.cache
def _update_statement(names: tuple[str, ...], quote: Callable[[str], str]) -> str:
    fields = [*map(Reminder._meta.get_field, names), Reminder._meta.pk]
    columns = [quote(field.column) for field in fields if isinstance(field, Field)]
    assert len(columns) == len(names) + 1, names
    *assigned, pk = columns
    assignments = ", ".join(f"{column} = %s" for column in assigned)
    # identifiers from the models, quoted; every value is a parameter
    return f"UPDATE {quote(Reminder._meta.db_table)} SET {assignments} WHERE {pk} = %s"  # noqa: S608


def _record_sent(reminder: Reminder, provider_id: str, now: datetime) -> None:
    _record(reminder, Status.SENT, "", sent=(provider_id, now))


def _record_failure(reminder: Reminder, error: TransportError, now: datetime) -> None:
    if error.permanent:
        _record(reminder, Status.FAILED, str(error))
    elif reminder.attempts >= settings.REMINDER_MAX_ATTEMPTS:
        _record(
            reminder,
            Status.FAILED,
            f"Not sent after {reminder.attempts} tries, so no more tries: check the address, "
            f"or ask the administrator. The last answer: {error}",
        )
    else:
        waits = settings.REMINDER_RETRY_SECONDS
        wait = waits[min(reminder.attempts, len(waits)) - 1]
        _record(reminder, Status.PENDING, str(error), due_at=now + timedelta(seconds=wait))
