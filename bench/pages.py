"""Benchmark: server time of the Today page and of a week of the site calendar at a busy site:
the `seed_demo` clinic plus 1,000 mapp-ptsd participants.

The demo site (2 dosing rooms, 3 therapy rooms, 3 dyads, 2 remote assessors) is full after about a
hundred courses, so the bench first gives it room for a thousand: 50 more dosing rooms (one
overnight place each), 30 more therapy rooms, 120 more dyads of new therapists and 8 more assessors.
Dyads are what runs out: a dyad carrying a dozen courses has a session nearly every day and no free
day for a dosing session and the next morning, so with 60 added dyads about 40 of the 1,000 were
refused and enrolment took 20 minutes (every refusal tries every dyad); with 120 all are enrolled in
about 3 minutes. The participants are enrolled through services.participant_enrol, one after the
other, with starts spread evenly from 20 weeks before today to 30 weeks after it (open days only; a
start the site cannot book is retried on the next open days, up to 5, like seed_demo does). The real
clock is used (time-machine is a dev dependency), so today is a different day on every run, always
in the middle of hundreds of courses in progress; sessions that have ended are then marked completed
with one UPDATE (no history rows), as a clinic would have done, and the database is ANALYZEd:
autovacuum would do so soon after such a bulk load anyway, and with the statistics of the nearly
empty tables PostgreSQL picks nested-loop plans that make the Today page's "missed sessions" query
alone take over a second.

Measured with Django's test Client, logged in (force_login) as seed_demo's coordinator:
  GET /today/?site=demo
  GET /calendar/?site=demo&view=week&by=room&date=<Monday>
where <Monday> starts the site-local week with the most sessions (the busiest week). Each page
is requested 3 times to warm up, then 20 times; the median wall time of `client.get` (URL
resolution, middleware, session, view, queries and template rendering: everything but the
network) is reported. Every response must be 200.

Prints `RESULT today_ms=<float> calendar_week_ms=<float> today_queries=<int>
calendar_queries=<int> participants=<int> enrolled=<int>` as its last line; the target is
under 150 ms for each page.

Timing runs with DEBUG off (as in production: no query log, no debug template context); the
bench defaults SECRET_KEY to a bench-only value for that, and lets the Client's host
`testserver` in. Queries are counted with CaptureQueriesContext, outside the timed requests.

The database is a fresh one made with Django's test-database utilities, always named
test_bench_pages (on the server DATABASE_URL names, default postgres://postgres@127.0.0.1:5432),
migrated, and dropped at the end; no other database is touched.
Run: `make bench` or `python bench/pages.py [--participants N] [--requests N]` (about 4 minutes,
nearly all of it enrolment).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_pages")
os.environ.setdefault("DEBUG", "0")  # time the pages as production serves them
os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
# HTTPS stays on as in production; the Client then asks as the TLS proxy would pass requests on
os.environ.setdefault("BEHIND_TLS_PROXY", "on")
os.environ.setdefault("TWO_FACTOR_REQUIRED", "off")  # the bench signs in with force_login

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from scheduling import selectors, services  # noqa: E402

TEST_DATABASE = "test_bench_pages"
SITE = "demo"  # what seed_demo creates
COORDINATOR = "demo-coordinator"
FIRST_DAY = -20 * 7  # course starts, in days from today
LAST_DAY = 30 * 7
START_TRIES = 5
WARM_UP = 3
#: added to the demo site's 2 dosing rooms, 3 therapy rooms, 3 dyads and 2 assessors
DOSING_ROOMS = 50
THERAPY_ROOMS = 30
DYADS = 120
ASSESSORS = 8


def add_capacity(site: Any) -> None:
    """Rooms, dyads and assessors enough for a thousand courses at the demo site."""
    from django.contrib.auth.models import User

    from scheduling.models import Dyad, Room, StaffProfile

    Room.objects.bulk_create(
        [
            *(
                Room(site=site, name=f"Bench dosing {n:02}", kind="dosing", overnight_places=1)
                for n in range(1, DOSING_ROOMS + 1)
            ),
            *(
                Room(site=site, name=f"Bench therapy {n:02}", kind="therapy")
                for n in range(1, THERAPY_ROOMS + 1)
            ),
        ]
    )

    def person(username: str, role: str) -> User:
        user = User.objects.create_user(username)
        StaffProfile.objects.create(user=user, role=role).sites.add(site)
        return user

    for n in range(1, DYADS + 1):
        Dyad.objects.create(
            site=site,
            name=f"Bench dyad {n:03}",
            therapist_a=person(f"bench-t{n:03}a", "therapist"),
            therapist_b=person(f"bench-t{n:03}b", "therapist"),
        )
    for n in range(1, ASSESSORS + 1):
        person(f"bench-assessor{n}", "assessor")


def enrol(site: Any, count: int, today: date) -> tuple[int, list[str], int]:
    """Enrol ``count`` participants with starts spread over [today + FIRST_DAY, today +
    LAST_DAY]; returns how many were enrolled, the refusals, and how many needed a later day."""
    calendar = selectors.site_calendar(
        site, first=today + timedelta(FIRST_DAY), last=today + timedelta(LAST_DAY + 60)
    )

    def open_day(day: date) -> date:
        while calendar.closed_because(day):
            day += timedelta(days=1)
        return day

    enrolled = moved = 0
    refused: list[str] = []
    span = LAST_DAY - FIRST_DAY
    began = time.perf_counter()
    for n in range(count):
        day = open_day(today + timedelta(days=FIRST_DAY + n * span // count))
        for attempt in range(START_TRIES + 1):
            try:
                services.participant_enrol(
                    site=site,
                    code=f"P-{n:04d}",
                    protocol_slug="mapp-ptsd",
                    start_date=day,
                    by=None,
                    back_entry_reason="bench: courses under way",
                )
            except services.SchedulingError as exc:
                if attempt == START_TRIES:
                    refused.append(f"{day.isoformat()}: {exc}")
                day = open_day(day + timedelta(days=1))
            else:
                enrolled += 1
                moved += attempt > 0
                break
    elapsed = time.perf_counter() - began
    print(f"enrolment took {elapsed:.0f} s ({elapsed * 1000 / count:.0f} ms per participant)")
    return enrolled, refused, moved


def complete_past_sessions() -> int:
    from scheduling.models import ScheduledSession

    return ScheduledSession.objects.filter(
        end__lte=timezone.now(), status=ScheduledSession.Status.PLANNED
    ).update(status=ScheduledSession.Status.COMPLETED)


def busiest_monday(site: Any) -> tuple[date, int]:
    """The Monday starting the site-local week with the most sessions, and that number."""
    from collections import Counter

    from scheduling.models import ScheduledSession

    zone = ZoneInfo(site.timezone)
    weeks: Counter[date] = Counter()
    starts = (
        ScheduledSession.objects.filter(course__participant__site=site)
        .exclude(status=ScheduledSession.Status.CANCELLED)
        .values_list("start", flat=True)
    )
    for start in starts.iterator():
        day = start.astimezone(zone).date()
        weeks[day - timedelta(days=day.weekday())] += 1
    return weeks.most_common(1)[0]


def measure(client: Client, url: str, requests: int) -> tuple[float, int]:
    """The median milliseconds of ``requests`` GETs after a warm-up, and the queries of one."""
    for _ in range(WARM_UP):
        response = client.get(url)
        assert response.status_code == 200, f"{url} answered {response.status_code}"
    reset_queries()  # each request empties the query log: count from an empty one
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    queries = len(captured)  # read now: captured is a view of the log the next request empties
    timings = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, f"{url} answered {response.status_code}"
    print(
        f"GET {url}: median {statistics.median(timings):.1f} ms, min {min(timings):.1f}, "
        f"max {max(timings):.1f}, {queries} queries, {len(response.content)} bytes"
    )
    return statistics.median(timings), queries


def run(count: int, requests: int) -> None:
    from django.contrib.auth.models import User

    from scheduling.models import ScheduledSession, Site

    call_command("load_protocols", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    site = Site.objects.get(slug=SITE)
    add_capacity(site)
    today = timezone.now().astimezone(ZoneInfo(site.timezone)).date()
    enrolled, refused, moved = enrol(site, count, today)
    print(
        f"{count} participants, starts {today + timedelta(FIRST_DAY)} to "
        f"{today + timedelta(LAST_DAY)}: {enrolled} enrolled ({moved} on a later open day), "
        f"{len(refused)} refused"
    )
    if refused:
        print(f"first refusal: {refused[0][:300]}")
    print(f"{complete_past_sessions()} past sessions marked completed")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does after a bulk load, at a known moment
    sessions = ScheduledSession.objects.filter(course__participant__site=site).count()
    monday, busiest = busiest_monday(site)
    print(f"{sessions} sessions at {SITE}; the busiest week starts {monday} ({busiest} sessions)")

    client = Client(headers={"X-Forwarded-Proto": "https"})
    client.force_login(User.objects.get(username=COORDINATOR))
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        today_ms, today_queries = measure(client, f"/today/?site={SITE}", requests)
        calendar_ms, calendar_queries = measure(
            client,
            f"/calendar/?site={SITE}&view=week&by=room&date={monday.isoformat()}",
            requests,
        )
    print(
        f"RESULT today_ms={today_ms:.1f} calendar_week_ms={calendar_ms:.1f} "
        f"today_queries={today_queries} calendar_queries={calendar_queries} "
        f"participants={count} enrolled={enrolled}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/pages.py measures PostgreSQL: set DATABASE_URL to postgres://...")
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = TEST_DATABASE  # never another bench's database
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args.participants, args.requests)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
