"""Live calendar feeds: ``GET /feeds/<token>.ics``, no login, the secret token is the
credential (created and revoked on the "Calendar feeds" page, scheduling/feed_views.py).

What a feed shows is decided at each fetch by what its owner may see then
(calendars.calendar_sessions): an owner who left the site, lost the role or was deactivated
gets an empty calendar, not a 404, so that a subscribed client removes the events it holds
instead of keeping them (most clients keep a feed's last answer when it starts failing). An
unknown or revoked token is a plain 404, the same for both.

Calendar clients poll, most of them every few hours, many of them at once: a fetch first reads
a validator from one aggregate query (how many sessions, their last change, the sum of their
SEQUENCEs; reused for a minute, FACTS_FOR) and, when the feed served the same facts last
time, answers a conditional request with a 304 without building the calendar. The ETag is
the hash of the body itself, so two fetches with nothing changed are the same bytes with the
same ETag. The token never reaches a log (config/security.RedactFeedTokens) nor a Referer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Max, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotFound
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from scheduling import calendars, ical, services
from scheduling.models import CalendarFeed, ScheduledSession

#: the token in a feed's address: secrets.token_urlsafe's alphabet
TOKEN_PATTERN = r"[A-Za-z0-9_-]{1,100}"  # noqa: S105  # a pattern, not a secret
#: how long a calendar client (never a shared cache: PHI) may reuse an answer
CACHE_CONTROL = "private, max-age=300"
#: how often a subscribed client should fetch again (RFC 7986 REFRESH-INTERVAL)
REFRESH = timedelta(hours=1)
#: last_used_at is written at most this often (a write per poll would be a write per client
#: per few minutes for nothing)
TOUCH_EVERY = timedelta(minutes=5)
#: what the validator cannot see (a site's address, a room's name) shows within this long
REBUILD_EVERY = timedelta(hours=1)
#: a feed's facts (its aggregate query) are reused this long: several clients of one feed
#: polling within a minute (an office subscribed to the site's feed) cost one aggregate over
#: the site's sessions, and a 304 costs the token lookup and a cache read. A change reaches a
#: feed at most this late, well within any calendar client's polling interval (and the
#: max-age above); a revoked feed is a 404 at once (the token is looked up on every fetch).
FACTS_FOR = timedelta(seconds=60)
#: bump when the way a calendar is built changes, so that every feed is built afresh
BUILD = "1"

NOT_FOUND = "No calendar feed at this address: it was revoked, or the address is incomplete."


R = TypeVar("R", bound=HttpResponseBase)


@dataclass(frozen=True)
class Facts:
    """What decides a feed's content, from one aggregate query."""

    validator: str
    modified: datetime | None


@gzip_page
@require_safe
def feed(request: HttpRequest, token: str) -> HttpResponseBase:
    found = (
        CalendarFeed.objects.select_related("owner")
        .filter(token_hash=services.feed_token_hash(token), revoked_at__isnull=True)
        .first()
    )
    if found is None:
        return _headers(HttpResponseNotFound(NOT_FOUND, content_type="text/plain; charset=utf-8"))
    now = timezone.now()
    sessions: QuerySet[ScheduledSession] | None = None
    facts = _remembered(found, now)
    if facts is None:
        sessions = feed_sessions(found)
        facts = feed_facts(found, sessions, now)
        _remember(found, facts, now)
    if facts.validator == found.validator and found.etag:
        # served these facts before: a conditional request is answered without building
        known = _headers(HttpResponse(content_type="text/calendar; charset=utf-8"))
        _validators(known, found.etag, _last_modified(found, facts))
        answer = get_conditional_response(
            request, etag=found.etag, last_modified=_stamp(found, facts), response=known
        )
        if answer is not None and answer is not known:
            _touch(found, now, {})
            return _headers(answer)
    body = feed_body(found, sessions if sessions is not None else feed_sessions(found))
    etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'
    changes: dict[str, object] = {}
    if facts.validator != found.validator:
        changes["validator"] = found.validator = facts.validator
    if etag != found.etag:
        changes["etag"] = found.etag = etag
        changes["changed_at"] = found.changed_at = _after(found, now)
    _touch(found, now, changes)
    response = _headers(HttpResponse(body, content_type="text/calendar; charset=utf-8"))
    response["Content-Disposition"] = 'inline; filename="calendar.ics"'
    _validators(response, etag, _last_modified(found, facts))
    answer = get_conditional_response(
        request, etag=etag, last_modified=_stamp(found, facts), response=response
    )
    return _headers(answer if answer is not None else response)


def feed_sessions(found: CalendarFeed) -> QuerySet[ScheduledSession]:
    """The sessions the feed's owner may see now; none for an owner who was deactivated or
    who no longer sees the feed's target (left the site, lost the role)."""
    owner = found.owner
    if not owner.is_active:
        return ScheduledSession.objects.none()
    try:
        return calendars.calendar_sessions(owner, calendars.Scope(found.scope), found.target)
    except ObjectDoesNotExist:
        return ScheduledSession.objects.none()


def feed_facts(found: CalendarFeed, sessions: QuerySet[ScheduledSession], now: datetime) -> Facts:
    """The validator: the feed's own settings, and the count, last change, SEQUENCE sum and
    latest room hold of its sessions (a session's move, status change or rebooking changes
    one of them; a session leaving the owner's view changes the count or the sum), and the
    hour (what no session row records, a site's address for one, shows within the hour)."""
    row = sessions.aggregate(
        n=Count("pk"), modified=Max("modified_at"), sequences=Sum("sequence"), last_pk=Max("pk")
    )
    hour = int(now.timestamp() // REBUILD_EVERY.total_seconds())
    parts = (
        BUILD,
        found.scope,
        found.target,
        found.for_participant,
        found.name,
        row["n"],
        row["modified"].isoformat() if row["modified"] else "",
        row["sequences"],
        row["last_pk"],
        hour,
    )
    validator = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return Facts(validator=validator, modified=row["modified"])


def _facts_key(found: CalendarFeed) -> str:
    return f"calendar-feed-facts:{found.token_hash[:32]}"


def _remembered(found: CalendarFeed, now: datetime) -> Facts | None:
    """The facts read less than FACTS_FOR ago, if any (their age by the app's clock)."""
    kept = cache.get(_facts_key(found))
    if not kept:
        return None
    read_at, validator, modified = kept
    if not 0 <= now.timestamp() - read_at < FACTS_FOR.total_seconds():
        return None
    return Facts(validator=validator, modified=modified)


def _remember(found: CalendarFeed, facts: Facts, now: datetime) -> None:
    value = (now.timestamp(), facts.validator, facts.modified)
    cache.set(_facts_key(found), value, timeout=int(FACTS_FOR.total_seconds()) + 5)


def feed_body(found: CalendarFeed, sessions: QuerySet[ScheduledSession]) -> bytes:
    """The calendar: staff-facing events, or the participant's own (neither study code nor
    room) for a participant's feed."""
    events = [
        calendars.session_event(session, for_participant=found.for_participant)
        for session in sessions.only(*calendars.EVENT_FIELDS)
    ]
    return ical.calendar(events, name=found.name, refresh=REFRESH)


def _last_modified(found: CalendarFeed, facts: Facts) -> datetime:
    """The last change of an event, or of the feed's content as served (a session that left
    the feed changed nothing that a session row records), or the feed's creation."""
    moments = [facts.modified, found.changed_at, found.created_at]
    return max(moment for moment in moments if moment is not None)


def _after(found: CalendarFeed, now: datetime) -> datetime:
    """When the content changed: now, but at least a second after the last change, so that a
    change within the second of the last answer still moves Last-Modified (HTTP dates count
    whole seconds)."""
    last = (found.changed_at or found.created_at).replace(microsecond=0)
    return max(now, last + timedelta(seconds=1))


def _stamp(found: CalendarFeed, facts: Facts) -> int:
    return int(_last_modified(found, facts).timestamp())


def _validators(response: HttpResponse, etag: str, last_modified: datetime) -> None:
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified.timestamp())


def _headers(response: R) -> R:
    """Calendar clients may keep the answer a few minutes, shared caches never (PHI); the
    secret address never travels on as a Referer."""
    response["Cache-Control"] = CACHE_CONTROL
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    patch_vary_headers(response, ("Accept-Encoding",))
    response.own_cache_policy = True  # type: ignore[attr-defined]  # config.security.NoStore...
    return response


def _touch(found: CalendarFeed, now: datetime, changes: dict[str, object]) -> None:
    """Store what changed and when the feed was last fetched, at most every few minutes."""
    if found.last_used_at is None or now - found.last_used_at >= TOUCH_EVERY:
        changes["last_used_at"] = found.last_used_at = now
    if changes:
        CalendarFeed.objects.filter(pk=found.pk).update(**changes)
