"""Benchmark: a live calendar feed of a busy site (the `seed_demo` clinic plus 1,000 mapp-ptsd
participants) against building the same events with bare `icalendar` from plain data, and a
conditional GET that answers 304.

The site is filled as bench/pages.py fills it (its functions: 50 more dosing rooms, 30 more
therapy rooms, 120 more dyads, 8 more assessors, then 1,000 participants enrolled one after
the other through services.participant_enrol, starts spread from 20 weeks before today to 30
weeks after it, a year of courses; past sessions marked completed; ANALYZE). Enrolment takes
most of the run (about 4 minutes on a 2-core machine).

Then seed_demo's coordinator gets a site feed (services.feed_create) and:

- feed_ms: the median wall time of GET /feeds/<token>.ics through Django's test Client, the
  full response (no conditional headers: the calendar is built every time), after a warm-up;
- bare_ms: the median time to build the same events with `icalendar` alone (Calendar, one
  Event per session with the same properties, VTIMEZONE, to_ical) from plain tuples prebuilt
  from the same sessions before timing (no ORM, no access policy, no model objects);
- not_modified_ms: the median of the same GET with If-None-Match set to the feed's ETag (304;
  the feed's facts, its aggregate query, are reused for a minute, scheduling/feeds.FACTS_FOR,
  as between the clients of one feed); the same with the facts read afresh is printed too;
- queries: the queries of one full fetch (CaptureQueriesContext, outside the timings).

Prints `RESULT feed_ms=<float> bare_ms=<float> ratio=<float> events=<int> queries=<int>
not_modified_ms=<float>` as its last line. Targets: ratio <= 1.5, queries bounded whatever the
size, 304 in under 10 ms.

Timing runs with DEBUG off (as in production). The database is a fresh one made with Django's
test-database utilities, always named test_bench_calendars, migrated, and dropped at the end.
Run: `make bench` or `python bench/calendars.py [--participants N] [--requests N]`.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench/pages.py fills the site the same way
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_calendars")
os.environ.setdefault("DEBUG", "0")  # time the feed as production serves it
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
os.environ.setdefault("BEHIND_TLS_PROXY", "on")
os.environ.setdefault("TWO_FACTOR_REQUIRED", "off")

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from icalendar import Calendar, vDuration  # noqa: E402
from icalendar import Event as VEvent  # noqa: E402
from pages import add_capacity, complete_past_sessions, enrol  # noqa: E402  # bench/pages.py

from scheduling import calendars, feeds, services  # noqa: E402
from scheduling.ical import PRODID  # noqa: E402

TEST_DATABASE = "test_bench_calendars"
SITE = "demo"
COORDINATOR = "demo-coordinator"
WARM_UP = 2
UTC = ZoneInfo("UTC")

#: one session as plain data: uid, sequence, local start, local end, zone, modified (UTC),
#: summary, description, location, url, cancelled
Row = tuple[str, int, datetime, datetime, str, datetime, str, str, str, str, bool]


def plain_rows(user: Any, site_id: int) -> list[Row]:
    """The feed's events as plain tuples, prepared before any timing."""
    rows: list[Row] = []
    for session in calendars.calendar_sessions(user, calendars.Scope.SITE, site_id):
        event = calendars.session_event(session)
        zone = ZoneInfo(event.zone)
        rows.append(
            (
                event.uid,
                event.sequence,
                event.start.astimezone(zone),
                event.end.astimezone(zone),
                event.zone,
                event.modified.astimezone(UTC),
                event.summary,
                event.description,
                event.location,
                event.url,
                event.cancelled,
            )
        )
    return rows


def bare_calendar(rows: list[Row], name: str) -> bytes:
    """The same calendar with `icalendar` alone."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("name", name)
    cal.add("x-wr-calname", name)
    cal.add("refresh-interval", feeds.REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(feeds.REFRESH))
    first: date | None = None
    last: date | None = None
    for uid, sequence, start, end, _, modified, summary, description, location, url, off in rows:
        vevent = VEvent()
        vevent.add("uid", uid)
        vevent.add("sequence", sequence)
        vevent.add("dtstamp", modified)
        vevent.add("last-modified", modified)
        vevent.add("dtstart", start)
        vevent.add("dtend", end)
        vevent.add("summary", summary)
        if description:
            vevent.add("description", description)
        if location:
            vevent.add("location", location)
        if url:
            vevent.add("url", url)
        vevent.add("status", "CANCELLED" if off else "CONFIRMED")
        vevent.add("transp", "TRANSPARENT" if off else "OPAQUE")
        cal.add_component(vevent)
        first = start.date() if first is None or start.date() < first else first
        last = end.date() if last is None or end.date() > last else last
    if first is not None and last is not None:
        cal.add_missing_timezones(
            first_date=date(first.year - 1, 1, 1), last_date=date(last.year + 2, 1, 1)
        )
    data: bytes = cal.to_ical()
    return data


def median_ms(action: Callable[[], Any], times: int) -> float:
    for _ in range(WARM_UP):
        action()
    timings = []
    for _ in range(times):
        t0 = time.perf_counter()
        action()
        timings.append((time.perf_counter() - t0) * 1000)
    return statistics.median(timings)


def run(count: int, requests: int) -> None:
    from django.contrib.auth.models import User

    from scheduling.models import ScheduledSession, Site

    call_command("load_protocols", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    site = Site.objects.get(slug=SITE)
    add_capacity(site)
    today = timezone.now().astimezone(ZoneInfo(site.timezone)).date()
    enrolled, refused, _ = enrol(site, count, today)
    print(f"{count} participants: {enrolled} enrolled, {len(refused)} refused")
    print(f"{complete_past_sessions()} past sessions marked completed")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    sessions = ScheduledSession.objects.filter(course__participant__site=site).count()

    coordinator = User.objects.get(username=COORDINATOR)
    feed, token = services.feed_create(
        owner=coordinator, scope="site", target=site.pk, name="Demo clinic"
    )
    url = f"/feeds/{token}.ics"
    client = Client(headers={"X-Forwarded-Proto": "https"})
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        first = client.get(url)
        assert first.status_code == 200, first.status_code
        body, etag = first.content, first["ETag"]
        events = body.count(b"BEGIN:VEVENT")
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).content == body  # byte-stable
        queries = len(captured)

        def fetch() -> None:
            response = client.get(url)
            assert response.status_code == 200 and len(response.content) == len(body)

        def revalidate() -> None:
            response = client.get(url, headers={"If-None-Match": etag})
            assert response.status_code == 304, response.status_code

        def revalidate_afresh() -> None:
            cache.delete(feeds._facts_key(feed))  # the feed's aggregate query again
            revalidate()

        feed_ms = median_ms(fetch, requests)
        not_modified_ms = median_ms(revalidate, requests * 5)
        afresh_ms = median_ms(revalidate_afresh, requests * 5)
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            revalidate()
        not_modified_queries = len(captured)

    rows = plain_rows(coordinator, site.pk)
    bare = bare_calendar(rows, "Demo clinic")
    assert bare.count(b"BEGIN:VEVENT") == events
    bare_ms = median_ms(lambda: bare_calendar(rows, "Demo clinic"), requests)
    ratio = feed_ms / bare_ms
    print(
        f"{sessions} sessions at {SITE}; feed {len(body)} bytes, {events} events; "
        f"bare icalendar {len(bare)} bytes; full fetch {queries} queries, "
        f"304 {not_modified_queries} queries; a 304 that reads the facts afresh (once a minute "
        f"per feed): {afresh_ms:.2f} ms"
    )
    print(
        f"RESULT feed_ms={feed_ms:.1f} bare_ms={bare_ms:.1f} ratio={ratio:.2f} "
        f"events={events} queries={queries} not_modified_ms={not_modified_ms:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=7, help="timed fetches of the feed")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/calendars.py measures PostgreSQL: set DATABASE_URL to postgres://...")
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = TEST_DATABASE  # never another bench's database
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args.participants, args.requests)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
