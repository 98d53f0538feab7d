"""The course timeline geometry (pure)."""

from datetime import date, timedelta

from scheduling.timeline import LABEL_WIDTH, LANES, TimelineSession, build

START = date(2027, 3, 1)


def session(key: str, kind: str, offset: int, window: tuple[int, int] = (0, 0), **extra):
    day = START + timedelta(days=offset)
    return TimelineSession(
        key=key,
        title=key,
        kind=kind,
        day=day,
        window_start=day + timedelta(days=window[0]),
        window_end=day + timedelta(days=window[1]),
        overnight=extra.get("overnight", False),
        status=extra.get("status", "planned"),
    )


def test_sessions_are_placed_by_day_in_their_phase_lane() -> None:
    sessions = [
        session("prep-1", "preparatory", 0),
        session("dosing-1", "dosing", 23, (-3, 14), overnight=True),
        session("integration-1a", "integration", 24),
        session("phone-1.1", "phone_checkin", 25),
        session("endpoint", "assessment", 90),
    ]
    t = build(sessions, today=START + timedelta(days=30), width=900)
    marks = {m.key: m for m in t.marks}
    scale = (900 - LABEL_WIDTH - 10) / 91
    assert marks["prep-1"].x == LABEL_WIDTH
    assert abs(marks["dosing-1"].x - (LABEL_WIDTH + 23 * scale)) < 1e-9
    lanes = [label for label, _ in LANES]
    order = ["prep-1", "dosing-1", "integration-1a", "phone-1.1", "endpoint"]
    ys = [marks[key].y for key in order]
    assert ys == sorted(ys)  # one lane per phase, top to bottom
    assert len(set(ys) - {marks["dosing-1"].y}) == 4
    assert len(t.lanes) == len(lanes)
    # dosing is drawn larger, with its overnight stay after it
    assert marks["dosing-1"].height > marks["prep-1"].height
    assert marks["dosing-1"].overnight_width > 0
    assert marks["dosing-1"].overnight_x == marks["dosing-1"].x + marks["dosing-1"].width
    assert marks["prep-1"].overnight_width == 0
    # the window is shaded from its first to its last day
    assert abs(marks["dosing-1"].window_x - (LABEL_WIDTH + 20 * scale)) < 1e-9
    assert abs(marks["dosing-1"].window_width - 18 * scale) < 1e-9
    # weeks along the axis, today marked
    assert t.weeks[0] == (LABEL_WIDTH, "wk 0")
    assert len(t.weeks) == 91 // 7 + 1
    assert t.today_x is not None
    assert abs(t.today_x - (LABEL_WIDTH + 30 * scale)) < 1e-9


def test_today_outside_the_course_has_no_marker_and_no_sessions_no_marks() -> None:
    t = build([session("prep-1", "preparatory", 0)], today=START - timedelta(days=1))
    assert t.today_x is None
    empty = build([], today=START)
    assert empty.marks == []
    assert empty.today_x is None


def test_long_courses_label_every_fourth_week() -> None:
    t = build([session("a", "preparatory", 0), session("b", "follow_up", 260)], START)
    labels = [label for _, label in t.weeks]
    assert len(labels) == 260 // 7 + 1
    assert labels[:5] == ["wk 0", "", "", "", "wk 4"]
