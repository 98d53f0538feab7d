"""Benchmark: plan 10,000 mapp-ptsd courses with random start dates across five time zones, in
one process. Prints `RESULT plan_ms_per_course=<float>` as its last line.

The planner caches the (date, time, zone) -> instant resolution; the main figure is a normal
run (the cache fills as it goes), and `uncached` clears it before every course for comparison.
Run: `make bench` or `python bench/plan.py [--courses N] [--seed S]`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol.spec import parse_document  # noqa: E402
from scheduling import planning  # noqa: E402

ZONES = [
    "America/New_York",
    "Europe/London",
    "Asia/Jerusalem",
    "Australia/Sydney",
    "America/Denver",
]


def start_dates(rng: random.Random, count: int) -> list[date]:
    first = date(2027, 1, 4)
    days = []
    for _ in range(count):
        day = first + timedelta(days=rng.randrange(3 * 365))
        while day.weekday() >= 5:  # prep-1 is on the start day, which must be an open day
            day += timedelta(days=1)
        days.append(day)
    return days


def run(count: int, seed: int, clear_cache: bool) -> float:
    document = json.loads((ROOT / "protocol" / "shipped" / "mapp-ptsd.json").read_text())
    spec = parse_document(document)
    rng = random.Random(seed)
    calendars = [planning.SiteCalendar(zone) for zone in ZONES]
    jobs = [(day, rng.choice(calendars)) for day in start_dates(rng, count)]
    planning._local_start.cache_clear()
    sessions = 0
    began = time.perf_counter()
    for day, calendar in jobs:
        if clear_cache:
            planning._local_start.cache_clear()
        sessions += len(planning.plan_course(spec, day, calendar).sessions)
    elapsed = time.perf_counter() - began
    per_course = sum(template.repeat_count for template in spec.sessions)
    assert sessions == count * per_course, sessions
    return elapsed * 1000 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args()
    uncached = run(args.courses // 10, args.seed, clear_cache=True)
    normal = run(args.courses, args.seed, clear_cache=False)
    print(f"planned {args.courses} courses in {', '.join(ZONES)}")
    print(f"uncached: {uncached:.3f} ms per course ({args.courses // 10} courses)")
    print(f"RESULT plan_ms_per_course={normal:.3f} uncached_ms_per_course={uncached:.3f}")


if __name__ == "__main__":
    main()
