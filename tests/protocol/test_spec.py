"""The pure protocol model: validation rules (one clear message per problem) and the shipped
templates checked against the default table in protocol-facts.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from decimal import Decimal
from itertools import pairwise

import pytest

from protocol.spec import (
    THERAPY_KINDS,
    Kind,
    ProtocolSpec,
    RoomNeed,
    SessionSpec,
    Status,
    Supplemental,
    Timing,
    target_offsets,
    therapy_span_days,
    validate,
)

# --- helpers -------------------------------------------------------------------------------


def with_session(spec: ProtocolSpec, key: str, **changes: object) -> ProtocolSpec:
    """``spec`` with one session changed (fields of SessionSpec)."""
    assert any(s.key == key for s in spec.sessions), key
    sessions = tuple(
        replace(s, **changes)  # type: ignore[arg-type]
        if s.key == key
        else s
        for s in spec.sessions
    )
    return replace(spec, sessions=sessions)


def cycle_in(message: str) -> list[str]:
    prefix = "anchor cycle: "
    assert message.startswith(prefix), message
    return message[len(prefix) :].split(" -> ")


# --- validation ----------------------------------------------------------------------------


def test_shipped_protocols_are_valid(mapp_spec: ProtocolSpec, couples_spec: ProtocolSpec) -> None:
    assert validate(mapp_spec) == []
    assert validate(couples_spec) == []


def test_two_session_cycle_is_named_in_order(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-3", 7, 3, 14))
    problems = validate(broken)
    assert len(problems) == 1
    path = cycle_in(problems[0])
    assert path[0] == path[-1]
    assert set(path) == {"prep-2", "prep-3"}
    assert len(path) == 3  # a -> b -> a


def test_longer_cycle_follows_the_anchors(mapp_spec: ProtocolSpec) -> None:
    # prep-2 -> baseline -> prep-3 -> prep-2
    broken = with_session(mapp_spec, "prep-2", timing=Timing("baseline", 7, 3, 14))
    problems = validate(broken)
    assert len(problems) == 1
    path = cycle_in(problems[0])
    assert path[0] == path[-1]
    assert set(path) == {"prep-2", "prep-3", "baseline"}
    assert len(path) == 4
    for session, anchor in pairwise(path):
        assert broken.session(session).timing.anchor == anchor


def test_unknown_anchor(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-9", 7, 3, 14))
    problems = validate(broken)
    assert len(problems) == 1
    assert problems[0].startswith("prep-2: ")
    assert "'prep-9'" in problems[0]
    assert "not a session" in problems[0]


def test_target_outside_window(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-1", 20, 3, 14))
    problems = validate(broken)
    assert len(problems) == 1
    assert problems[0].startswith("prep-2: ")
    assert "+20" in problems[0]
    assert "[+3, +14]" in problems[0]
    assert "outside" in problems[0]


def test_target_before_window(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "interim-1", timing=Timing("dosing-1", 10, 14, 27))
    problems = validate(broken)
    assert len(problems) == 1
    assert problems[0].startswith("interim-1: ")
    assert "+10" in problems[0]


def test_reversed_window(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-1", 7, 14, 3))
    problems = validate(broken)
    assert len(problems) == 1
    assert problems[0].startswith("prep-2: ")
    assert "[+14, +3]" in problems[0]
    assert "ends before it starts" in problems[0]


# The MAPP targets, straight from the default table: prep-1 day 0, prep-2 +7, prep-3 +7,
# baseline +2, dosing-1 +7, dosing-2 +28, dosing-3 +28, integration-3c +14.
MAPP_TARGET_SPAN_DAYS = 7 + 7 + 2 + 7 + 28 + 28 + 14


def test_target_span_of_mapp(mapp_spec: ProtocolSpec) -> None:
    offsets = target_offsets(mapp_spec)
    assert therapy_span_days(mapp_spec, offsets) == MAPP_TARGET_SPAN_DAYS
    assert offsets["integration-3c"] - offsets["prep-1"] == MAPP_TARGET_SPAN_DAYS


def test_therapy_span_too_short_for_the_bounds(mapp_spec: ProtocolSpec) -> None:
    weeks = MAPP_TARGET_SPAN_DAYS // 7 + 1  # one week more than the span at target dates
    problems = validate(replace(mapp_spec, span_min_weeks=weeks))
    assert len(problems) == 1
    assert f"({MAPP_TARGET_SPAN_DAYS} days)" in problems[0]
    assert f"{weeks}-18 weeks" in problems[0]


def test_therapy_span_too_long_for_the_bounds(mapp_spec: ProtocolSpec) -> None:
    weeks = MAPP_TARGET_SPAN_DAYS // 7  # 13 weeks = 91 days < 93
    problems = validate(replace(mapp_spec, span_max_weeks=weeks))
    assert len(problems) == 1
    assert f"({MAPP_TARGET_SPAN_DAYS} days)" in problems[0]
    assert f"12-{weeks} weeks" in problems[0]


def test_therapy_span_too_long_when_sessions_move(mapp_spec: ProtocolSpec) -> None:
    # Stretch dosing-3 by 60 days: the span grows past 18 weeks while the bounds stay.
    broken = with_session(mapp_spec, "dosing-3", timing=Timing("dosing-2", 88, 21, 95))
    span = MAPP_TARGET_SPAN_DAYS + 60
    assert span > 18 * 7
    problems = validate(broken)
    assert len(problems) == 1
    assert f"({span} days)" in problems[0]
    assert "outside" in problems[0]


def test_reversed_span_bounds(mapp_spec: ProtocolSpec) -> None:
    problems = validate(replace(mapp_spec, span_min_weeks=18, span_max_weeks=12))
    assert len(problems) == 1
    assert "reversed" in problems[0]


def test_duplicate_keys(mapp_spec: ProtocolSpec) -> None:
    closing = mapp_spec.session("closing")
    broken = replace(mapp_spec, sessions=(*mapp_spec.sessions, closing))
    problems = validate(broken)
    first = [s.key for s in mapp_spec.sessions].index("closing") + 1
    assert len(problems) == 1
    assert "'closing'" in problems[0]
    assert "duplicate" in problems[0]
    assert f"sessions {first} and {len(broken.sessions)}" in problems[0]


def test_next_morning_needs_an_overnight_anchor(mapp_spec: ProtocolSpec) -> None:
    assert not mapp_spec.session("baseline").overnight
    broken = with_session(mapp_spec, "integration-1a", timing=Timing.morning_after("baseline"))
    problems = validate(broken)
    assert len(problems) == 1
    assert problems[0].startswith("integration-1a: ")
    assert "'baseline'" in problems[0]
    assert "overnight" in problems[0]


def test_dosing_session_without_dose_plan(mapp_spec: ProtocolSpec) -> None:
    problems = validate(with_session(mapp_spec, "dosing-1", dose_plan=None))
    assert len(problems) == 1
    assert problems[0].startswith("dosing-1: ")
    assert "dose plan" in problems[0]


def test_non_dosing_session_with_dose_plan(mapp_spec: ProtocolSpec) -> None:
    plan = mapp_spec.session("dosing-1").dose_plan
    problems = validate(with_session(mapp_spec, "prep-1", dose_plan=plan))
    assert len(problems) == 1
    assert problems[0].startswith("prep-1: ")
    assert "dose plan" in problems[0]


def test_anchor_on_a_repeated_session(mapp_spec: ProtocolSpec) -> None:
    assert mapp_spec.session("phone-1").repeat_count > 1
    broken = with_session(mapp_spec, "integration-1b", timing=Timing("phone-1", 7, 5, 10))
    problems = validate(broken)
    assert len(problems) == 1
    assert problems[0].startswith("integration-1b: ")
    assert "'phone-1'" in problems[0]
    assert "repeats" in problems[0]


def test_joint_session_outside_a_couples_protocol(
    mapp_spec: ProtocolSpec, couples_spec: ProtocolSpec
) -> None:
    problems = validate(with_session(mapp_spec, "prep-1", joint=True))
    assert len(problems) == 1
    assert problems[0].startswith("prep-1: ")
    assert "couples" in problems[0]
    # the same flag is fine where the protocol is for couples, and wrong once it is not
    assert couples_spec.session("dosing-1").joint
    assert validate(couples_spec) == []
    assert len(validate(replace(couples_spec, couples=False))) == sum(
        s.joint for s in couples_spec.sessions
    )


def test_no_session_on_the_course_start(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-1", timing=Timing("closing", 0, 0, 0))
    problems = validate(broken)
    assert problems[0] == "no session is anchored on the course start"
    # with every session anchored on another one, the anchors go round: that may be named too
    assert all(cycle_in(p)[0] == cycle_in(p)[-1] for p in problems[1:])
    assert len(problems) <= 2


def test_several_problems_are_all_listed(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-1", 20, 3, 14))
    broken = with_session(broken, "dosing-1", dose_plan=None)
    broken = with_session(broken, "prep-3", joint=True)
    broken = with_session(broken, "integration-1b", timing=Timing("phone-1", 7, 5, 10))
    broken = replace(broken, sessions=(*broken.sessions, broken.session("closing")))
    problems = validate(broken)
    assert len(problems) == 5
    for key in ("prep-2: ", "dosing-1: ", "prep-3: ", "integration-1b: "):
        assert sum(p.startswith(key) for p in problems) == 1, (key, problems)
    assert sum("duplicate" in p for p in problems) == 1


def test_unknown_anchor_is_listed_with_other_problems(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-9", 7, 3, 14))
    broken = with_session(broken, "prep-3", timing=Timing("prep-2", 7, 14, 3))
    problems = validate(broken)
    assert any("'prep-9'" in p for p in problems), problems
    assert any(p.startswith("prep-3: ") for p in problems), problems


# --- the shipped MAPP template against the default table -----------------------------------

# key: (kind, anchor, target, earliest, latest, minutes)
MAPP_TABLE: dict[str, tuple[Kind, str | None, int, int, int, int]] = {
    "prep-1": (Kind.PREPARATORY, None, 0, 0, 0, 90),
    "prep-2": (Kind.PREPARATORY, "prep-1", 7, 3, 14, 90),
    "prep-3": (Kind.PREPARATORY, "prep-2", 7, 3, 14, 90),
    "baseline": (Kind.ASSESSMENT, "prep-3", 2, 1, 14, 90),
    "dosing-1": (Kind.DOSING, "baseline", 7, 3, 21, 8 * 60),
    "integration-1b": (Kind.INTEGRATION, "dosing-1", 7, 5, 10, 90),
    "integration-1c": (Kind.INTEGRATION, "dosing-1", 14, 12, 20, 90),
    "interim-1": (Kind.ASSESSMENT, "dosing-1", 21, 14, 27, 90),
    "dosing-2": (Kind.DOSING, "dosing-1", 28, 21, 35, 8 * 60),
    "dosing-3": (Kind.DOSING, "dosing-2", 28, 21, 35, 8 * 60),
    "endpoint": (Kind.ASSESSMENT, "baseline", 18 * 7, 17 * 7, 19 * 7, 90),
    "closing": (Kind.OTHER, "endpoint", 7, 0, 14, 90),
    "follow-up": (Kind.FOLLOW_UP, "dosing-3", 26 * 7, 24 * 7, 28 * 7, 90),
}


@pytest.mark.parametrize("key", sorted(MAPP_TABLE))
def test_mapp_session_matches_the_table(mapp_spec: ProtocolSpec, key: str) -> None:
    kind, anchor, target, earliest, latest, minutes = MAPP_TABLE[key]
    session = mapp_spec.session(key)
    assert session.kind == kind
    assert session.timing == Timing(anchor, target, earliest, latest)
    assert session.duration_minutes == minutes
    assert session.repeat_count == 1


def test_mapp_dose_plans(mapp_spec: ProtocolSpec) -> None:
    expected = {"dosing-1": (80, 40), "dosing-2": (120, 60), "dosing-3": (120, 60)}
    for key, (initial, supplemental) in expected.items():
        plan = mapp_spec.session(key).dose_plan
        assert plan is not None
        assert plan.initial_mg == Decimal(initial)
        assert plan.supplemental_mg == Decimal(supplemental)
        assert plan.supplemental_mg == plan.initial_mg / 2  # the half dose
        assert plan.supplemental == Supplemental.GIVEN_BY_DEFAULT
        assert plan.supplemental_window_minutes == (90, 120)
    dosing = [s.key for s in mapp_spec.sessions if s.kind == Kind.DOSING]
    assert dosing == list(expected)
    assert all(s.dose_plan is None for s in mapp_spec.sessions if s.kind != Kind.DOSING)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mapp_dosing_is_overnight_with_integration_next_morning(
    mapp_spec: ProtocolSpec, n: int
) -> None:
    dosing = mapp_spec.session(f"dosing-{n}")
    assert dosing.overnight
    assert dosing.room == RoomNeed.DOSING_ROOM_OVERNIGHT
    assert dosing.start_time == time(9, 0)
    morning = mapp_spec.session(f"integration-{n}a")
    assert morning.kind == Kind.INTEGRATION
    assert morning.timing == Timing.morning_after(f"dosing-{n}")
    assert morning.timing.next_morning
    assert morning.start_time == time(9, 0)
    assert morning.duration_minutes == 90
    later = [mapp_spec.session(f"integration-{n}{x}") for x in "bc"]
    assert [s.timing.anchor for s in later] == [f"dosing-{n}"] * 2


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mapp_phone_checkins_daily_for_five_days(mapp_spec: ProtocolSpec, n: int) -> None:
    phone = mapp_spec.session(f"phone-{n}")
    assert phone.kind == Kind.PHONE_CHECKIN
    assert phone.timing.anchor == f"dosing-{n}"
    assert phone.repeat_count == 5
    assert phone.repeat_interval_days == 1
    assert not phone.open_days_apply
    assert phone.room == RoomNeed.NONE
    offsets = target_offsets(mapp_spec)
    days_after = [offsets[f"phone-{n}.{i}"] - offsets[f"dosing-{n}"] for i in range(1, 6)]
    assert days_after == [2, 3, 4, 5, 6]


def test_mapp_totals(mapp_spec: ProtocolSpec) -> None:
    therapy = [s for s in mapp_spec.sessions if s.kind in THERAPY_KINDS]
    counts = {kind: sum(s.kind == kind for s in therapy) for kind in THERAPY_KINDS}
    assert counts == {Kind.PREPARATORY: 3, Kind.DOSING: 3, Kind.INTEGRATION: 9}
    assert sum(s.duration_minutes for s in therapy) == 42 * 60  # ~42 h of therapy
    assert (mapp_spec.span_min_weeks, mapp_spec.span_max_weeks) == (12, 18)
    span = therapy_span_days(mapp_spec, target_offsets(mapp_spec))
    assert 12 * 7 <= span <= 18 * 7


def test_mapp_start_times(mapp_spec: ProtocolSpec) -> None:
    for s in mapp_spec.sessions:
        early = s.kind == Kind.DOSING or s.timing.next_morning
        assert s.start_time == (time(9, 0) if early else time(10, 0)), s.key


def test_mapp_is_labelled_investigational(mapp_spec: ProtocolSpec) -> None:
    assert mapp_spec.investigational
    assert not mapp_spec.couples
    assert mapp_spec.status == Status.ACTIVE
    assert mapp_spec.version == 1
    assert "INVESTIGATIONAL" in mapp_spec.description
    assert "not confirmed" in mapp_spec.description
    assert "Complete Response Letter" in mapp_spec.description


# --- the shipped couples template ---------------------------------------------------------


def test_couples_protocol_shape(couples_spec: ProtocolSpec) -> None:
    assert couples_spec.couples
    assert couples_spec.investigational
    assert "not confirmed" in couples_spec.description
    dosing = [s for s in couples_spec.sessions if s.kind == Kind.DOSING]
    assert [s.key for s in dosing] == ["dosing-1", "dosing-2"]
    for session in dosing:
        assert session.joint
        assert session.overnight
        followers: list[SessionSpec] = [
            s
            for s in couples_spec.sessions
            if s.kind == Kind.INTEGRATION and s.timing.anchor == session.key
        ]
        assert len(followers) == 5
        assert all(s.joint for s in followers)
        morning = [s for s in followers if s.timing.next_morning]
        assert len(morning) == 1
        assert followers[0] is morning[0]  # the first one is the next morning
        targets = [s.timing.target_days for s in followers]
        assert targets == sorted(targets)


def test_couples_doses_and_weeks(couples_spec: ProtocolSpec) -> None:
    plan = couples_spec.session("dosing-1").dose_plan
    assert plan is not None
    assert plan.initial_mg == Decimal(75)
    assert plan.supplemental_mg == Decimal("37.5")
    assert plan.supplemental == Supplemental.OPTIONAL
    offsets = target_offsets(couples_spec)
    # 3 preparatory sessions before the first dosing session
    prep = [s.key for s in couples_spec.sessions if s.kind == Kind.PREPARATORY]
    assert len(prep) == 3
    assert all(offsets[p] < offsets["dosing-1"] for p in prep)
    assert therapy_span_days(couples_spec, offsets) == 7 * 7  # condensed CBCT over 7 weeks


def test_cycle_is_listed_with_other_problems(mapp_spec: ProtocolSpec) -> None:
    broken = with_session(mapp_spec, "prep-2", timing=Timing("prep-3", 7, 3, 14))
    broken = with_session(broken, "dosing-1", dose_plan=None)
    problems = validate(broken)
    assert len(problems) == 2
    assert sum(p.startswith("dosing-1: ") for p in problems) == 1
    assert sum(p.startswith("anchor cycle: ") for p in problems) == 1
