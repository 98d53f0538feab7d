"""The course timeline as geometry: a pure function from a course's sessions to the shapes of a
server-rendered SVG (weeks along the axis, one lane per phase, windows shaded, dosing and
overnight stays prominent, a marker for today). No database, no clock: ``today`` is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

#: lanes top to bottom, with the kinds they hold and their label
LANES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Preparation", ("screening", "preparatory")),
    ("Dosing", ("dosing",)),
    ("Integration", ("integration",)),
    ("Check-ins", ("phone_checkin",)),
    ("Assessments", ("assessment", "follow_up", "other")),
)
LABEL_WIDTH = 110
LANE_HEIGHT = 34
TOP = 28


@dataclass(frozen=True)
class TimelineSession:
    key: str
    title: str
    kind: str
    day: date
    window_start: date
    window_end: date
    overnight: bool
    status: str


@dataclass(frozen=True)
class Mark:
    key: str
    title: str
    kind: str
    x: float
    y: float
    width: float
    height: float
    window_x: float
    window_width: float
    status: str
    overnight_x: float
    overnight_width: float


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    lanes: list[tuple[str, float]]
    weeks: list[tuple[float, str]]
    marks: list[Mark]
    today_x: float | None


def build(sessions: Sequence[TimelineSession], today: date, width: int = 900) -> Timeline:
    if not sessions:
        return Timeline(width, TOP + LANE_HEIGHT, [], [], [], None)
    first = min(min(s.day, s.window_start) for s in sessions)
    last = max(max(s.day, s.window_end) for s in sessions)
    span = max((last - first).days + 1, 7)
    scale = (width - LABEL_WIDTH - 10) / span

    def x(day: date) -> float:
        return LABEL_WIDTH + (day - first).days * scale

    lane_of = {kind: index for index, (_, kinds) in enumerate(LANES) for kind in kinds}
    marks = []
    for s in sessions:
        lane = lane_of.get(s.kind, len(LANES) - 1)
        big = s.kind == "dosing"
        height = LANE_HEIGHT - (8 if big else 16)
        mark_width = max(scale, 4 if big else 3)
        marks.append(
            Mark(
                key=s.key,
                title=s.title,
                kind=s.kind,
                x=x(s.day),
                y=TOP + lane * LANE_HEIGHT + (LANE_HEIGHT - height) / 2,
                width=mark_width,
                height=height,
                window_x=x(s.window_start),
                window_width=((s.window_end - s.window_start).days + 1) * scale,
                status=s.status,
                overnight_x=x(s.day) + mark_width,
                overnight_width=scale if s.overnight else 0,
            )
        )
    count = span // 7 + 1
    every = 1 if count <= 16 else 2 if count <= 32 else 4  # keep labels legible
    weeks = [
        (x(first) + week * 7 * scale, f"wk {week}" if week % every == 0 else "")
        for week in range(count)
    ]
    lanes = [(label, TOP + i * LANE_HEIGHT + LANE_HEIGHT / 2) for i, (label, _) in enumerate(LANES)]
    today_x = x(today) if first <= today <= last else None
    return Timeline(width, TOP + len(LANES) * LANE_HEIGHT + 8, lanes, weeks, marks, today_x)
