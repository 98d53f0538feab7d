"""Reminder rules are protocol data: in the document, checked like every other rule, and
shipped with sensible defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from protocol.spec import Audience, Channel, Kind, ProtocolInvalid, parse_document, to_document
from tests.conftest import shipped_document


def _session(document: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in document["sessions"] if s["key"] == key)


def _problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ProtocolInvalid) as caught:
        parse_document(document)
    return caught.value.problems


def test_shipped_defaults() -> None:
    spec = parse_document(shipped_document("mapp-ptsd"))
    assert spec.checkin_escalation_hours == 4
    dosing = spec.session("dosing-1")
    assert [
        (r.hours_before, r.day_before_at and r.day_before_at.hour) for r in dosing.reminders
    ] == [
        (72, None),
        (None, 18),
    ]
    assert all(r.audience == (Audience.PARTICIPANT,) for r in dosing.reminders)
    assert spec.session("integration-1a").reminders == ()  # on site after the overnight stay
    for key in ("prep-1", "integration-1b", "baseline", "endpoint"):
        (rule,) = spec.session(key).reminders
        assert rule.hours_before == 24 and set(rule.channels) == {Channel.EMAIL, Channel.SMS}
    (call,) = spec.session("phone-1").reminders
    assert call.minutes_before == 15 and call.audience == (Audience.DYAD,)
    assert call.channels == (Channel.EMAIL,)
    couples = parse_document(shipped_document("mdma-cbct-couples"))
    assert all(s.reminders for s in couples.sessions if s.kind == Kind.DOSING)


def test_a_document_without_rules_still_imports_and_exports_them_empty() -> None:
    document = shipped_document("mapp-ptsd")
    del document["check_ins"]
    for session in document["sessions"]:
        del session["reminders"]
    spec = parse_document(document)
    assert spec.checkin_escalation_hours == 4
    exported = to_document(spec)
    assert exported["check_ins"] == {"escalate_after_hours": 4}
    assert all(s["reminders"] == [] for s in exported["sessions"])


def test_rules_are_checked() -> None:
    document = shipped_document("mapp-ptsd")
    prep = _session(document, "prep-1")
    rule = prep["reminders"][0]
    prep["reminders"] = [
        rule,
        copy.deepcopy(rule),
        rule | {"key": "staff", "audience": ["coordinators"], "channels": ["sms"]},
        rule | {"key": "blind", "audience": ["assessor"], "channels": ["email"]},
        rule | {"key": "night", "audience": ["night_attendant"], "channels": ["email"]},
    ]
    problems = _problems(document)
    assert "prep-1: reminder '24h' appears twice; give each reminder its own key" in problems
    assert any("staff (coordinators) are reminded by email only" in p for p in problems)
    assert any("'therapist_dyad' books no assessor" in p for p in problems)
    assert any("only a session with an overnight stay has a night attendant" in p for p in problems)


def test_schema_errors_name_the_place() -> None:
    document = shipped_document("mapp-ptsd")
    _session(document, "prep-1")["reminders"][0]["message"] = "free text of my own"
    _session(document, "prep-2")["reminders"][0]["when"] = {"hours_before": 0}
    problems = _problems(document)
    assert any(p.startswith("sessions/0/reminders/0/message") for p in problems)
    assert any(p.startswith("sessions/1/reminders/0/when") for p in problems)
