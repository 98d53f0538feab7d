"""Celery tasks: they take ids and call services (scheduling/dispatch.py).

No task here is ever given an ETA or a countdown, and none retries itself with a countdown:
what is due and when is on the reminder rows, and the beat's sweep finds it (see "Reminders are
rows, not delayed tasks" in the architecture notes). Options common to all: results ignored
(there is no result backend; outcomes live on the rows); acknowledged on receipt, the project
default (CELERY_TASK_ACKS_LATE, config/settings.py): a task lost with its worker is recovered
by the row's lease, not by Redis redelivering it an hour later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any
from uuid import UUID

from celery import current_app, shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scheduling import dispatch, publishing

logger = logging.getLogger(__name__)

#: Batches one sweep claims at most (REMINDER_BATCH each) before leaving the rest to the next:
#: a backlog (after an outage) drains over a few sweeps instead of one sweep claiming more than
#: the workers can send within a lease.
SWEEP_BATCHES = 10


# Hard time limits (prefork pool): a send stuck past the mail server's or the SMS provider's
# own timeout is killed, which rolls back its transaction and releases the row's lock, so the
# sweep can claim the row again once its lease runs out. Both limits stay well under the lease
# (REMINDER_LEASE_SECONDS, 300 s by default).
@shared_task(ignore_result=True, time_limit=120)
def sweep_reminders() -> int:
    """The beat's task: claim due reminders and enqueue one send_reminder per claimed row.
    Returns how many were claimed."""
    return _sweep(dispatch.reminders_claim_due, settings.REMINDER_BATCH, send_reminder)


def _sweep(claim: Callable[..., list[tuple[int, UUID]]], batch: int, task: Any) -> int:
    """Claim due rows with ``claim``, a batch per transaction, and enqueue one ``task`` per
    claimed row once that batch's claim has committed (a task must never find its row not yet
    claimed). At most SWEEP_BATCHES batches: the rest is the next sweep's."""
    total = 0
    for _ in range(SWEEP_BATCHES):
        with transaction.atomic():
            claimed = claim(now=timezone.now(), limit=batch)
            if claimed:
                transaction.on_commit(partial(_enqueue, task, claimed))
        total += len(claimed)
        if len(claimed) < batch:
            break
    if total:
        logger.info("%s: claimed %d rows", task.name, total)
    return total


def _enqueue(task: Any, claimed: list[tuple[int, UUID]]) -> None:
    """One task per row, through one broker connection. If Redis fails part-way, the rows not
    enqueued stay claimed and are claimed again when their lease runs out."""
    with current_app.producer_or_acquire() as producer:
        for row_id, claim in claimed:
            task.apply_async((row_id, str(claim)), producer=producer)


@shared_task(ignore_result=True, time_limit=60)
def send_reminder(reminder_id: int, claim: str) -> None:
    """Deliver one claimed reminder; a duplicate or late task finds the row moved on and does
    nothing (scheduling.dispatch.reminder_deliver)."""
    dispatch.reminder_deliver(reminder_id=reminder_id, claim=UUID(claim))


@shared_task(ignore_result=True)
def noop() -> None:
    """Does nothing: the yardstick for a task's own cost through the broker and the worker
    (bench/reminders.py), and a harmless task to check a worker with."""


# --- CalDAV publishing (scheduling/publishing.py): the same shape as the reminders' ---------


@shared_task(ignore_result=True, time_limit=120)
def sweep_calendar_pushes() -> int:
    """The beat's task, also asked for right after a change commits: claim due CalDAV pushes
    and enqueue one push task per row once the claim has committed."""
    return _sweep(publishing.calendar_pushes_claim_due, settings.CALDAV_BATCH, push_calendar)


# the PUT's own timeout (CALDAV_TIMEOUT, at most 120 s) is what bounds it; the limit is the
# backstop that releases the row's lock, well under the lease (CALDAV_LEASE_SECONDS)
@shared_task(ignore_result=True, time_limit=180)
def push_calendar(push_id: int, claim: str) -> None:
    """PUT one claimed session to its site's CalDAV collection (publishing.calendar_push_deliver);
    a duplicate or late task finds the row moved on and does nothing."""
    publishing.calendar_push_deliver(push_id=push_id, claim=UUID(claim))
