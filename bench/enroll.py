"""Benchmark: enrol 1,000 mapp-ptsd participants, one after the other, into one site with
4 dosing rooms, 4 therapy rooms, 8 dyads and 2 remote assessors, with start dates spread over a
year (open days only), through services.participant_enrol on PostgreSQL.

Prints `RESULT enroll_ms_per_participant=<float> queries_per_enrolment=<int> ...` as its last
line: the mean wall time per participant (refused ones included), the most queries any
enrolment made, then the mean time of a successful enrolment and how many were enrolled and
refused. Enrolments refused because the site is full are counted, not errors: 4 dosing rooms
hold about 140 mapp-ptsd courses a year (a room is held until the next morning's session and
nobody is dosed on a Friday, so each room doses at most twice a week).

The database is a fresh one made with Django's test-database utilities: `test_` + the name in
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bench_enroll, so test_bench_enroll),
migrated, and dropped at the end; the database DATABASE_URL names itself is never touched.
Run: `make bench` or `python bench/enroll.py [--participants N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_enroll")
os.environ.setdefault("DEBUG", "1")  # nothing is served; spares a SECRET_KEY

import django  # noqa: E402

django.setup()

from django.db import connection, reset_queries  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from scheduling import selectors, services  # noqa: E402

FIRST_START = date(2027, 1, 4)


def build_site() -> Any:
    from datetime import time as clock

    from django.contrib.auth.models import User

    from scheduling.models import Dyad, OpeningHours, Room, Site, StaffProfile

    site = Site.objects.create(
        name="Bench clinic", slug="bench", timezone="America/New_York", country="US"
    )
    OpeningHours.objects.bulk_create(
        OpeningHours(site=site, weekday=day, opens=clock(8), closes=clock(18)) for day in range(5)
    )
    for n in range(1, 5):
        Room.objects.create(site=site, name=f"dosing {n}", kind="dosing", overnight_places=1)
        Room.objects.create(site=site, name=f"therapy {n}", kind="therapy")

    def person(username: str, role: str) -> User:
        user = User.objects.create_user(username)
        StaffProfile.objects.create(user=user, role=role).sites.add(site)
        return user

    for n in range(1, 9):
        Dyad.objects.create(
            site=site,
            name=f"dyad {n}",
            therapist_a=person(f"t{n}a", "therapist"),
            therapist_b=person(f"t{n}b", "therapist"),
        )
    for n in range(1, 3):
        person(f"assessor{n}", "assessor")
    return site


def start_dates(site: Any, count: int) -> list[date]:
    """``count`` days spread evenly over a year, each moved to the next open day."""
    last = FIRST_START + timedelta(days=400)
    calendar = selectors.site_calendar(site, first=FIRST_START, last=last)
    days = []
    for n in range(count):
        day = FIRST_START + timedelta(days=n * 365 // count)
        while calendar.closed_because(day):
            day += timedelta(days=1)
        days.append(day)
    return days


def run(count: int) -> None:
    site = build_site()
    timings: list[float] = []
    queries: list[int] = []
    refused: list[str] = []
    began = time.perf_counter()
    for n, day in enumerate(start_dates(site, count), 1):
        reset_queries()  # the query log keeps 9,000 queries; a full one would count 0
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            try:
                services.participant_enrol(
                    site=site, code=f"B-{n:04d}", protocol_slug="mapp-ptsd", start_date=day, by=None
                )
            except services.SchedulingError as exc:
                refused.append(f"{day.isoformat()}: {exc}")
            else:
                timings.append((time.perf_counter() - t0) * 1000)
                queries.append(len(captured))
    elapsed_ms = (time.perf_counter() - began) * 1000
    enrolled = len(timings)
    print(f"{count} participants, starts {FIRST_START} + one year: {enrolled} enrolled, ", end="")
    print(f"{len(refused)} refused (site full)")  # see the module docstring
    if refused:
        print(f"first refusal: {refused[0][:300]}")
    if timings:
        tenth = max(1, enrolled // 10)
        print(
            f"successful enrolment: mean {statistics.mean(timings):.1f} ms, first tenth "
            f"{statistics.mean(timings[:tenth]):.1f} ms, last tenth "
            f"{statistics.mean(timings[-tenth:]):.1f} ms"
        )
        print(f"queries per successful enrolment: {min(queries)} to {max(queries)}")
    per_participant = elapsed_ms / count
    per_enrolment = statistics.mean(timings) if timings else 0.0
    print(
        f"RESULT enroll_ms_per_participant={per_participant:.2f} "
        f"queries_per_enrolment={max(queries, default=0)} "
        f"ms_per_successful_enrolment={per_enrolment:.2f} "
        f"enrolled={enrolled} refused={len(refused)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=1000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/enroll.py measures PostgreSQL: set DATABASE_URL to postgres://...")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args.participants)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
