"""CalDAV publishing: every change of a session is PUT to its site's calendar collection (a
clinic's Nextcloud, Radicale, ...), so that staff calendars subscribed to it update within a
minute instead of the hours a feed refresh takes.

How it goes, and why
--------------------
- **Rows, not delayed tasks** (as reminders): ``calendar_pushes_plan`` is called beside
  ``reminders_sync`` by every service that books, moves, closes or rebooks sessions, in the
  same transaction. It writes one :class:`CalendarPush` row per session and SEQUENCE (unique:
  the same change is never planned twice) and, after the commit, asks a worker to sweep at
  once. The beat's sweep (every minute) claims due rows exactly as the reminder sweep does,
  and ``calendar_push_deliver`` PUTs the event. No ETA, no countdown.
- **Only the latest state matters.** A newer SEQUENCE supersedes an older row still waiting.
  What is PUT is the session as it is *now* (read again under a per-session lock), so two
  pushes of one session can never leave an older state on the server.
- **PUT, never DELETE.** One resource per session, ``<uid>.ics``, holding one VCALENDAR with
  the session's VEVENT (same UID, current SEQUENCE); a cancelled or missed session stays with
  STATUS:CANCELLED, which calendar clients strike through or hide.
- **At least once.** A PUT of the same state twice leaves the same resource: the row stays
  locked across the HTTP call, so a second task for the same claim waits and finds it sent;
  a worker that dies mid-call leaves the row to be claimed again when its lease runs out.
- **Failures say what to do.** Refused credentials (401/403), a missing collection
  (404/409/410) or another answer that a retry cannot change fail the row at once, shown on
  the site's CalDAV page; no answer, a timeout, 5xx or 429 are tried again after
  CALDAV_RETRY_SECONDS until CALDAV_MAX_ATTEMPTS, then failed. Saving the settings again
  (after correcting them) publishes every current session again.
- **The password** is sent to the CalDAV server and nowhere else: never shown, never logged,
  never in an error message or the history.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

import niquests
from caldav.davclient import DAVClient
from caldav.lib import error as caldav_error
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from scheduling import calendars, dispatch, ical
from scheduling.channels import PermanentError, TransientError, TransportError
from scheduling.models import CalendarPush, Course, ScheduledSession, Site, SiteCalDav

logger = logging.getLogger(__name__)

Status = CalendarPush.Status

#: sessions published when the settings change: from this many days back (a session moved or
#: cancelled last week still shows right), and everything ahead
REPUBLISH_DAYS_BACK = 30


# --- settings --------------------------------------------------------------------------------


@transaction.atomic
def site_caldav_set(
    *,
    site: Site,
    url: str,
    username: str,
    password: str | None,
    enabled: bool,
    by: User | None,
) -> SiteCalDav:
    """Create or change a site's CalDAV settings. ``password`` None (or empty) keeps the one
    stored; a new one replaces it. Any saved change republishes the site's current sessions
    to the collection (a new collection starts full; after a refused password is corrected,
    what failed goes again). The caller has checked the URL (forms: the model's validators)."""
    config = SiteCalDav.objects.select_for_update().filter(site=site).first()
    if config is None:
        config = SiteCalDav(site=site)
    else:
        config.generation += 1
    config.url, config.username, config.enabled = url.strip(), username.strip(), enabled
    if password:
        config.password = password
    config._change_reason = "CalDAV settings changed"  # type: ignore[attr-defined]
    config.full_clean(exclude=["site"])
    config.save()
    if enabled:
        since = timezone.now() - timedelta(days=REPUBLISH_DAYS_BACK)
        sessions = ScheduledSession.objects.filter(course__participant__site=site, end__gte=since)
        calendar_pushes_plan(sessions=sessions)
    logger.info("CalDAV settings of site %s changed by user %s", site.pk, by.pk if by else None)
    return config


# --- planning --------------------------------------------------------------------------------


def calendar_pushes_plan(
    *, sessions: Iterable[ScheduledSession], now: datetime | None = None
) -> int:
    """Plan a push of each of ``sessions`` whose site publishes to CalDAV, in the caller's
    transaction; after its commit a worker sweeps at once. Returns how many rows were added.

    Costs one query when no site of the sessions publishes (the usual case); otherwise one to
    read the sessions' current SEQUENCE and site, one for the rows already planned, and the
    writes."""
    given = [s for s in sessions if s.pk is not None]
    ids = [s.pk for s in given]
    if not ids:
        return 0
    publishers = SiteCalDav.objects.filter(enabled=True)
    loaded = _loaded_site_ids(given)
    if loaded is not None:  # enrolment's new sessions carry their site: no join
        publishers = publishers.filter(site__in=loaded)
    else:
        publishers = publishers.filter(site__participants__courses__sessions__in=ids).distinct()
    configs = dict(publishers.values_list("site_id", "generation"))
    if not configs:
        return 0
    site_of: dict[int, int] = {}
    current: dict[int, int] = {}
    for pk, sequence, site_id in ScheduledSession.objects.filter(
        pk__in=ids, course__participant__site__in=list(configs)
    ).values_list("pk", "sequence", "course__participant__site_id"):
        site_of[pk], current[pk] = site_id, sequence
    planned = set(
        CalendarPush.objects.filter(session__in=list(current)).values_list(
            "session_id", "sequence", "generation"
        )
    )
    now = now or timezone.now()
    rows = [
        CalendarPush(
            site_id=site_of[pk],
            session_id=pk,
            sequence=sequence,
            generation=configs[site_of[pk]],
            due_at=now,
        )
        for pk, sequence in current.items()
        if (pk, sequence, configs[site_of[pk]]) not in planned
    ]
    if not rows:
        return 0
    CalendarPush.objects.bulk_create(rows, ignore_conflicts=True)  # a concurrent plan: kept once
    older = Q()
    for row in rows:
        older |= Q(session_id=row.session_id) & (
            Q(sequence__lt=row.sequence) | Q(generation__lt=row.generation)
        )
    CalendarPush.objects.filter(older, status=Status.PENDING).update(
        status=Status.SUPERSEDED, last_error="A later change is published instead.", updated_at=now
    )
    transaction.on_commit(_sweep_soon, robust=True)
    return len(rows)


def _loaded_site_ids(sessions: Iterable[ScheduledSession]) -> set[int] | None:
    """The sessions' sites when every object carries its course and participant (enrolment),
    else None (then the query joins to find them)."""
    found: set[int] = set()
    for session in sessions:
        if not (
            ScheduledSession.course.is_cached(session)
            and Course.participant.is_cached(session.course)
        ):
            return None
        found.add(session.course.participant.site_id)
    return found


def _sweep_soon() -> None:
    """Ask a worker to sweep now rather than at the beat's next minute. If the broker does not
    answer, the beat's sweep finds the rows anyway (``robust``: the change is committed)."""
    from scheduling import tasks  # tasks imports this module

    tasks.sweep_calendar_pushes.delay()


# --- the sweep's claim -----------------------------------------------------------------------


def calendar_pushes_claim_due(*, now: datetime, limit: int) -> list[tuple[int, UUID]]:
    """Claim up to ``limit`` due pushes, oldest first, as the reminders are claimed
    (``dispatch.claim_due``): SKIP LOCKED keeps two sweeps apart, and never claims a row whose
    push is under way (it is locked)."""
    return dispatch.claim_due(
        CalendarPush, now=now, limit=limit, lease_seconds=settings.CALDAV_LEASE_SECONDS
    )


# --- one push --------------------------------------------------------------------------------


def calendar_push_deliver(*, push_id: int, claim: UUID, now: datetime | None = None) -> str:
    """PUT one claimed push and record the outcome; returns the row's new status (or "" when
    the task had nothing to do: a duplicate or late task finds the row moved on)."""
    with transaction.atomic():
        push = CalendarPush.objects.select_for_update().filter(pk=push_id).first()
        if push is None or push.status != Status.SENDING or push.claim != claim:
            return ""
        now = now or timezone.now()
        _session_lock(push.session_id)
        config = SiteCalDav.objects.filter(site_id=push.site_id).first()
        if config is None or not config.enabled:
            return _record(push, Status.SUPERSEDED, "CalDAV publishing is switched off.")
        if config.generation != push.generation:
            return _record(push, Status.SUPERSEDED, "The CalDAV settings changed since.")
        if CalendarPush.objects.filter(
            session_id=push.session_id, generation=push.generation, sequence__gt=push.sequence
        ).exists():
            return _record(push, Status.SUPERSEDED, "A later change is published instead.")
        if push.attempts > settings.CALDAV_MAX_ATTEMPTS:
            return _record(
                push,
                Status.FAILED,
                f"Not published: {push.attempts - 1} tries ended without an answer. Ask the "
                "administrator to look at the worker's log.",
            )
        # what the downloads read too (an overnight stay's room hold): one UID and SEQUENCE
        # must read the same in the collection as in an exported calendar
        session = calendars.with_event_data(
            ScheduledSession.objects.filter(pk=push.session_id)
        ).get()
        site = session.course.participant.site
        body = ical.calendar([calendars.session_event(session)], name=site.name)
        try:
            put_event(
                collection_url=config.url,
                username=config.username,
                password=config.password,
                uid=str(session.uid),
                body=body,
            )
        except TransportError as problem:
            logger.warning("CalDAV push %s of site %s failed: %s", push.pk, site.pk, problem)
            return _record_failure(push, problem, now)
        push.sent_at = now
        return _record(push, Status.SENT, "")


def _session_lock(session_id: int) -> None:
    """Pushes of one session take turns (a transaction-long advisory lock on PostgreSQL): each
    PUTs the session as it is when it gets the lock, so the last PUT is the newest state."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # two keys: this module's namespace and the session's id
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x0CA1DA, session_id])


def _record(push: CalendarPush, status: str, reason: str, *, due_at: datetime | None = None) -> str:
    push.status, push.last_error, push.lease_until = status, reason, None
    if due_at is not None:
        push.due_at = due_at
    push.save(
        update_fields=[
            "status",
            "last_error",
            "lease_until",
            "due_at",
            "sent_at",
            "updated_at",
        ]
    )
    return status


def _record_failure(push: CalendarPush, problem: TransportError, now: datetime) -> str:
    if problem.permanent:
        return _record(push, Status.FAILED, str(problem))
    if push.attempts >= settings.CALDAV_MAX_ATTEMPTS:
        return _record(
            push,
            Status.FAILED,
            f"Not published after {push.attempts} tries, so no more tries. The last answer: "
            f"{problem} Save the site's CalDAV settings again to publish everything again.",
        )
    waits = settings.CALDAV_RETRY_SECONDS
    wait = waits[min(push.attempts, len(waits)) - 1]
    return _record(push, Status.PENDING, str(problem), due_at=now + timedelta(seconds=wait))


# --- the transport ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str


def put_event(*, collection_url: str, username: str, password: str, uid: str, body: bytes) -> None:
    """PUT one calendar resource, ``<collection>/<uid>.ics``, through the ``caldav`` client.
    Raises PermanentError when trying again cannot help until someone corrects the settings,
    TransientError when it may (the server down, slow or overloaded). Messages name the
    collection and the HTTP status, never the password."""
    client = DAVClient(
        url=collection_url,
        username=username or None,
        password=password or None,
        timeout=settings.CALDAV_TIMEOUT,
        require_tls=False,  # the URL's validator decides where plain http is accepted
        enable_rfc6764=False,  # the collection's address is given: no DNS discovery
        rate_limit_handle=False,  # a 429 or 503 is retried by the rows, not by sleeping here
    )
    target = collection_url.rstrip("/") + "/" + quote(uid, safe="") + ".ics"
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    try:
        response: Any = client.put(target, body.decode("utf-8"), headers)
    except caldav_error.AuthorizationError as refused:
        raise PermanentError(
            f"The CalDAV server refused the user name and password ({_refusal(refused)}): "
            "correct them on the site's CalDAV page, or give this account the right to write "
            "to the collection."
        ) from None
    except caldav_error.RateLimitError:
        raise TransientError("The CalDAV server is busy (it asked to try later).") from None
    except niquests.exceptions.Timeout:
        raise TransientError(
            f"The CalDAV server did not answer within {settings.CALDAV_TIMEOUT} seconds."
        ) from None
    except (niquests.exceptions.RequestException, OSError) as down:
        raise TransientError(
            f"The CalDAV server could not be reached ({type(down).__name__})."
        ) from None
    finally:
        client.close()
    _check(_Answer(int(response.status), str(response.reason or "")), collection_url)


def _refusal(refused: caldav_error.AuthorizationError) -> str:
    reason = str(getattr(refused, "reason", "") or "")
    return "403 Forbidden" if "forbidden" in reason.lower() else "401 Unauthorized"


def _check(answer: _Answer, collection_url: str) -> None:
    status = answer.status
    if 200 <= status < 300:
        return
    said = f"{status} {answer.reason}".strip()
    if status in (404, 409, 410):
        raise PermanentError(
            f"The CalDAV server has no calendar collection at {collection_url} ({said}): "
            "check the collection URL on the site's CalDAV page."
        )
    if status >= 500 or status in (408, 425, 429):
        raise TransientError(f"The CalDAV server answered {said}; it will be tried again.")
    raise PermanentError(
        f"The CalDAV server did not accept the event ({said}): ask the administrator."
    )


# --- what coordinators see -------------------------------------------------------------------


@dataclass(frozen=True)
class PublishingState:
    waiting: int
    failed: list[CalendarPush]
    last_sent: datetime | None


def publishing_state(site: Site, *, failures: int = 10) -> PublishingState:
    """The site's CalDAV page: how many pushes wait, the latest failures not since replaced by
    a later push of the same session, and when the last push went."""
    pushes = CalendarPush.objects.filter(site=site)
    waiting = pushes.filter(status__in=[Status.PENDING, Status.SENDING]).count()
    later = CalendarPush.objects.filter(session=OuterRef("session_id"), pk__gt=OuterRef("pk"))
    failed = list(
        pushes.filter(status=Status.FAILED)
        .exclude(Exists(later))
        .select_related("session__course__participant")
        .order_by("-updated_at")[:failures]
    )
    last = pushes.filter(status=Status.SENT).order_by("-sent_at").values_list("sent_at", flat=True)
    return PublishingState(waiting=waiting, failed=failed, last_sent=last.first())
