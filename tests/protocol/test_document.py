"""The JSON protocol document: exact round trips and schema errors (no database)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol.spec import (
    DOCUMENT_FORMAT,
    MESSAGES,
    THERAPY_KINDS,
    Kind,
    ProtocolInvalid,
    parse_document,
    to_document,
)
from tests.conftest import shipped_document

SHIPPED_SLUGS = ["mapp-ptsd", "mdma-cbct-couples"]


@pytest.mark.parametrize("slug", SHIPPED_SLUGS)
def test_shipped_document_round_trips_exactly(slug: str) -> None:
    document = shipped_document(slug)
    assert to_document(parse_document(document)) == document
    text = json.dumps(to_document(parse_document(document)), indent=2)
    again = json.loads(text)
    assert again == document
    assert to_document(parse_document(again)) == document
    # canonical: writing it twice gives the same text
    assert json.dumps(to_document(parse_document(again)), indent=2) == text


def test_half_milligram_doses_survive() -> None:
    document = shipped_document("mdma-cbct-couples")
    dosing = next(s for s in document["sessions"] if s["key"] == "dosing-1")
    assert dosing["dose_plan"]["supplemental_mg"] == 37.5
    out = json.loads(json.dumps(to_document(parse_document(document))))
    dosing_out = next(s for s in out["sessions"] if s["key"] == "dosing-1")
    assert dosing_out["dose_plan"]["supplemental_mg"] == 37.5
    assert isinstance(dosing_out["dose_plan"]["initial_mg"], int)


# --- generated documents -------------------------------------------------------------------

OTHER_KINDS = [k.value for k in Kind if k != Kind.DOSING]
times = st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda hm: f"{hm[0]:02d}:{hm[1]:02d}")
# multiples of 0.5 mg, written the way the exporter writes them (80, not 80.0)
milligrams = st.one_of(
    st.just(37.5), st.integers(1, 2000).map(lambda n: n // 2 if n % 2 == 0 else n / 2)
)
texts = st.text(max_size=30)


@st.composite
def timings(draw: st.DrawFn, anchor: str | None) -> dict[str, Any]:
    target = draw(st.integers(0, 40))
    earliest = draw(st.integers(target - 5, target))
    latest = draw(st.integers(target, target + 5))
    return {"anchor": anchor, "target_days": target, "window_days": [earliest, latest]}


@st.composite
def reminder_rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Zero to three valid rules in every form of "when"; staff by email only."""
    rules = []
    for n in range(draw(st.integers(0, 3))):
        when = draw(
            st.one_of(
                st.integers(1, 336).map(lambda h: {"hours_before": h}),
                st.integers(1, 1440).map(lambda m: {"minutes_before": m}),
                times.map(lambda at: {"day_before_at": at}),
            )
        )
        staff = draw(st.booleans())
        channels = ["email"] if staff else draw(st.sampled_from([["email"], ["sms", "email"]]))
        rules.append(
            {
                "key": f"r-{n}",
                "when": when,
                "audience": ["coordinators", "participant"] if staff else ["participant"],
                "channels": channels,
                "message": draw(st.sampled_from(sorted(MESSAGES))),
            }
        )
    return rules


def session_document(
    key: str, kind: str, timing: dict[str, Any], draw: st.DrawFn, **overrides: Any
) -> dict[str, Any]:
    session = {
        "key": key,
        "title": draw(st.text(min_size=1, max_size=30)),
        "kind": kind,
        "duration_minutes": draw(st.integers(1, 1440)),
        "overnight": False,
        "start_time": draw(times),
        "open_days_apply": draw(st.booleans()),
        "staffing": draw(st.sampled_from(["therapist_dyad", "one_therapist", "none"])),
        "room": draw(st.sampled_from(["none", "therapy_room"])),
        "joint": False,
        "preparation": draw(texts),
        "timing": timing,
        "repeat": {"count": 1, "interval_days": 1},
        "dose_plan": None,
        "reminders": draw(reminder_rules()),
    }
    session.update(overrides)
    return session


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A small valid document: a chain of sessions from the course start, optionally a dosing
    session with its next-morning session, optionally a repeated session at the end."""
    couples = draw(st.booleans())
    sessions: list[dict[str, Any]] = []
    previous: str | None = None
    for i in range(draw(st.integers(1, 5))):
        key = f"s-{i}"
        timing = draw(timings(previous))
        sessions.append(
            session_document(
                key,
                draw(st.sampled_from(OTHER_KINDS)),
                timing,
                draw,
                joint=couples and draw(st.booleans()),
            )
        )
        previous = key
    if draw(st.booleans()):
        supplemental = draw(st.sampled_from(["given_by_default", "optional", "none"]))
        first = draw(st.integers(0, 300))
        plan = {
            "initial_mg": draw(milligrams),
            "supplemental_mg": None if supplemental == "none" else draw(milligrams),
            "supplemental_window_minutes": (
                None if supplemental == "none" else [first, draw(st.integers(first, 1440))]
            ),
            "supplemental": supplemental,
        }
        sessions.append(
            session_document(
                "dosing",
                "dosing",
                draw(timings(previous)),
                draw,
                overnight=True,
                room="dosing_room_overnight",
                dose_plan=plan,
            )
        )
        sessions.append(
            session_document(
                "morning", "integration", {"anchor": "dosing", "next_morning": True}, draw
            )
        )
    if draw(st.booleans()):
        sessions.append(
            session_document(
                "calls",
                "phone_checkin",
                draw(timings("s-0")),
                draw,
                repeat={"count": draw(st.integers(2, 7)), "interval_days": draw(st.integers(1, 3))},
            )
        )
    span = _therapy_span(sessions)
    return {
        "format": DOCUMENT_FORMAT,
        "slug": draw(st.sampled_from(["a", "test-protocol", "x-1-y"])),
        "name": draw(st.text(min_size=1, max_size=40)),
        "version": draw(st.integers(1, 50)),
        "status": draw(st.sampled_from(["draft", "active", "retired"])),
        "investigational": draw(st.booleans()),
        "couples": couples,
        "description": draw(texts),
        "therapy_span_weeks": {"min": span // 7, "max": -(-span // 7)},
        "check_ins": {"escalate_after_hours": draw(st.integers(1, 72))},
        "sessions": sessions,
    }


def _therapy_span(sessions: list[dict[str, Any]]) -> int:
    """The span at target dates, computed here independently of protocol.spec."""
    base: dict[str | None, int] = {None: 0}
    days = []
    for s in sessions:  # anchors always come first in generated documents
        timing = s["timing"]
        offset = base[timing["anchor"]] + (
            1 if timing.get("next_morning") else timing["target_days"]
        )
        base[s["key"]] = offset
        if s["kind"] in {k.value for k in THERAPY_KINDS}:
            repeat = s["repeat"]
            days += [offset + n * repeat["interval_days"] for n in range(repeat["count"])]
    return max(days) - min(days) if days else 0


@settings(max_examples=75, deadline=None)
@given(documents())
def test_generated_documents_round_trip(document: dict[str, Any]) -> None:
    spec = parse_document(document)
    assert len(spec.sessions) == len(document["sessions"])
    assert to_document(spec) == document
    text = json.dumps(document, sort_keys=True)
    again = to_document(parse_document(json.loads(text)))
    assert json.dumps(again, sort_keys=True) == text


@settings(max_examples=30, deadline=None)
@given(documents(), st.integers(0, 23), st.integers(0, 59))
@example(shipped_document("mapp-ptsd"), 9, 5)
def test_changed_start_time_is_kept(document: dict[str, Any], hour: int, minute: int) -> None:
    document = copy.deepcopy(document)
    document["sessions"][0]["start_time"] = f"{hour:02d}:{minute:02d}"
    spec = parse_document(document)
    assert (spec.sessions[0].start_time.hour, spec.sessions[0].start_time.minute) == (hour, minute)
    assert to_document(spec)["sessions"][0]["start_time"] == f"{hour:02d}:{minute:02d}"


# --- schema errors -------------------------------------------------------------------------


def problems_of(document: Any) -> list[str]:
    with pytest.raises(ProtocolInvalid) as caught:
        parse_document(document)
    assert caught.value.problems, "ProtocolInvalid without problems"
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


def mapp() -> dict[str, Any]:
    return shipped_document("mapp-ptsd")


def test_wrong_type() -> None:
    document = mapp()
    document["version"] = "1"
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("version: ")
    assert "integer" in problems[0]


def test_wrong_type_in_a_session() -> None:
    document = mapp()
    document["sessions"][3]["duration_minutes"] = "90"
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("sessions/3/duration_minutes: ")


def test_unknown_field_at_the_top() -> None:
    document = mapp()
    document["colour"] = "blue"
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("document: ")
    assert "'colour'" in problems[0]


def test_unknown_field_in_a_session() -> None:
    document = mapp()
    document["sessions"][5]["colour"] = "blue"
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("sessions/5: ")
    assert "'colour'" in problems[0]


@pytest.mark.parametrize("value", ["25:00", "9:00", "09:60", "0900", ""])
def test_bad_start_time(value: str) -> None:
    document = mapp()
    document["sessions"][0]["start_time"] = value
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("sessions/0/start_time: ")
    assert repr(value) in problems[0]


def test_bad_kind() -> None:
    document = mapp()
    document["sessions"][1]["kind"] = "massage"
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("sessions/1/kind: ")
    assert "'massage'" in problems[0]


def test_missing_field() -> None:
    document = mapp()
    del document["sessions"][2]["title"]
    del document["description"]
    problems = problems_of(document)
    assert len(problems) == 2
    assert any(p.startswith("sessions/2: ") and "'title'" in p for p in problems)
    assert any(p.startswith("document: ") and "'description'" in p for p in problems)


def test_wrong_format_marker() -> None:
    document = mapp()
    document["format"] = "protocol-document/2"
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("format: ")


def test_all_schema_errors_are_listed() -> None:
    document = mapp()
    document["version"] = 0
    document["sessions"][0]["start_time"] = "25:00"
    document["sessions"][1]["kind"] = "massage"
    document["sessions"][2]["joint"] = "yes"
    document["extra"] = True
    problems = problems_of(document)
    assert len(problems) == 5
    prefixes = ["version: ", "sessions/0/start_time: ", "sessions/1/kind: ", "sessions/2/joint: "]
    for prefix in prefixes:
        assert sum(p.startswith(prefix) for p in problems) == 1, (prefix, problems)


def test_rules_are_checked_after_the_schema() -> None:
    document = mapp()
    document["sessions"][1]["timing"]["target_days"] = 30  # window is [3, 14]
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith("prep-2: ")


@pytest.mark.parametrize("value", [None, [], [mapp()], "mapp-ptsd", 3, 1.5, True])
def test_non_object_is_rejected(value: Any) -> None:
    problems = problems_of(value)
    assert len(problems) == 1
    assert problems[0].startswith("document: ")
    assert "object" in problems[0]


def test_empty_object_lists_every_missing_field() -> None:
    problems = problems_of({})
    required = ["format", "slug", "name", "version", "status", "sessions"]
    for name in required:
        assert any(f"'{name}'" in p for p in problems), (name, problems)
    assert all(p.startswith("document: ") for p in problems)


def test_wrong_type_inside_timing_names_the_field() -> None:
    document = mapp()
    document["sessions"][1]["timing"]["target_days"] = "7"
    problems = problems_of(document)
    assert len(problems) == 1
    assert "target_days" in problems[0]
    assert "unexpected" not in problems[0]


def test_bad_dose_names_the_field() -> None:
    document = mapp()
    document["sessions"][4]["dose_plan"]["initial_mg"] = 80.3
    problems = problems_of(document)
    assert len(problems) == 1
    assert "initial_mg" in problems[0] or "multiple of 0.5" in problems[0]
    assert "not of type 'null'" not in problems[0]
