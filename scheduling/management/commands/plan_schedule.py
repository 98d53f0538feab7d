import argparse
import calendar as weekday_calendar
import json
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.management.base import CommandError, CommandParser

from config.commands import OneLineErrorCommand
from protocol.selectors import ProtocolNotFound, protocol_spec, protocol_version_get
from protocol.spec import ProtocolInvalid
from scheduling.planning import (
    WEEKDAY_NAMES,
    PlannedCourse,
    PlanningError,
    SiteCalendar,
    plan_course,
)


class Command(OneLineErrorCommand):
    help = (
        "Plan a course without storing anything, for what-if questions: which dates would a "
        "participant starting on --start get at a site with these open days and closures?"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--protocol", required=True, help="protocol slug, e.g. mapp-ptsd")
        parser.add_argument(
            "--protocol-version", type=int, metavar="N", help="default: the active version"
        )
        parser.add_argument("--start", required=True, type=_date, help="course start, YYYY-MM-DD")
        parser.add_argument(
            "--timezone", required=True, type=_zone, help="the site's IANA zone, e.g. Europe/London"
        )
        parser.add_argument(
            "--open-days",
            type=_weekdays,
            default=frozenset(range(5)),
            metavar="mon,tue,...",
            help="weekdays the site is open (default: mon,tue,wed,thu,fri)",
        )
        parser.add_argument(
            "--closed",
            type=_date,
            nargs="+",
            action="extend",
            default=[],
            metavar="YYYY-MM-DD",
            help="dates the site is closed (holidays, closures)",
        )
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = protocol_version_get(
                slug=options["protocol"], version=options["protocol_version"]
            )
            spec = protocol_spec(version)
            calendar = SiteCalendar(
                timezone=options["timezone"],
                open_weekdays=options["open_days"],
                closures=frozenset(options["closed"]),
            )
            course = plan_course(spec, options["start"], calendar)
        except (ProtocolNotFound, ProtocolInvalid, PlanningError) as exc:
            raise CommandError(str(exc)) from exc
        if options["format"] == "json":
            self.stdout.write(json.dumps(course_document(course), indent=2))
        else:
            self.stdout.write(course_table(course, calendar, spec.name, spec.span_max_weeks))


def course_document(course: PlannedCourse) -> dict[str, Any]:
    return {
        "protocol": course.protocol_slug,
        "version": course.protocol_version,
        "timezone": course.timezone,
        "sessions": [
            {
                "key": s.key,
                "kind": s.kind.value,
                "title": s.title,
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "window_start": s.window_start.isoformat(),
                "window_end": s.window_end.isoformat(),
                "overnight": s.overnight,
                "anchor": s.anchor,
            }
            for s in course.sessions
        ],
    }


def course_table(course: PlannedCourse, calendar: SiteCalendar, name: str, max_weeks: int) -> str:
    open_days = ",".join(WEEKDAY_NAMES[d] for d in sorted(calendar.open_weekdays))
    closed = ", ".join(d.isoformat() for d in sorted(calendar.closures)) or "none"
    span = course.therapy_span_days()
    lines = [
        f"{course.protocol_slug} v{course.protocol_version}: {name}",
        f"site zone {course.timezone}; open {open_days}; closed: {closed}",
        f"start {course.start_date.isoformat()}; therapy span {span / 7:.1f} weeks "
        f"(at most {max_weeks}); times are local to {course.timezone}",
        "",
    ]
    rows = [("date", "time", "key", "kind", "window", "why this date")]
    for s in course.sessions:
        rows.append(
            (
                f"{s.start:%a %Y-%m-%d}",
                f"{s.start:%H:%M}-{s.end:%H:%M} {s.start:%Z}" + (" +night" if s.overnight else ""),
                s.key,
                s.kind.value,
                f"{s.window_start.isoformat()}..{s.window_end.isoformat()}",
                s.reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        lines.append(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]
        )
    return "\n".join(lines)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a real date in the form YYYY-MM-DD"
        ) from None


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone '{text}' (use an IANA name such as America/New_York)"
        ) from None
    return text


def _weekdays(text: str) -> frozenset[int]:
    full = [name.lower() for name in weekday_calendar.day_name]
    days = set()
    for part in (p.strip().lower() for p in text.split(",")):
        if part in WEEKDAY_NAMES:
            days.add(WEEKDAY_NAMES.index(part))
        elif part in full:
            days.add(full.index(part))
        else:
            raise argparse.ArgumentTypeError(
                f"'{part}' in '{text}' is not a weekday; use names such as mon,tue,wed,thu,fri"
            )
    return frozenset(days)
