"""The API's reminders and check-ins: a participant's reminders as a page, scoped like every
list (another site's participant is a 404, a blinded assessor reaches none); recording a
check-in outcome answers 201 with the escalations a concern wrote, 400 with field errors on
bad input, 403 for someone who sees the call but does not make it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from scheduling.models import CheckInOutcome, Course, Reminder, ScheduledSession, StaffBooking
from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Course:
    found: Course = enrol_mapp(site_a, "P-001", coordinator_a)
    return found


def reminder(session: ScheduledSession, suffix: str, **fields: Any) -> Reminder:
    values: dict[str, Any] = {
        "site": session.course.participant.site,
        "session": session,
        "participant": session.course.participant,
        "message": "upcoming",
        "channel": "email",
        "due_at": session.start - timedelta(hours=24),
        "session_start": session.start,
        "idempotency_key": f"{session.uid}/{suffix}",
    }
    values.update(fields)
    return Reminder.objects.create(**values)


def outbox() -> list[dict[str, object]]:
    """Every outbox row as stored. Enrolment plans rows (the call reminders, the overdue
    escalations), so "nothing written" reads: the same rows before and after."""
    return [dict(row) for row in Reminder.objects.order_by("pk").values()]


def test_a_participants_reminders_are_a_scoped_page(
    course: Course, coordinator_a: Any, coordinator_b: Any
) -> None:
    sessions = list(course.sessions.order_by("start")[:3])
    made = [
        reminder(sessions[0], "one", status="sent", sent_at=sessions[0].start),
        reminder(sessions[1], "two", status="skipped", reason="no email consent"),
        reminder(sessions[2], "three"),
    ]
    # the three made here, with what enrolment planned for the participant's sessions
    expected = list(
        Reminder.objects.filter(session__course__participant=course.participant)
        .order_by("due_at", "pk")
        .values_list("pk", flat=True)
    )
    assert {r.pk for r in made} < set(expected)
    url = f"/api/participants/{course.participant_id}/reminders/"
    answer = client_for(coordinator_a).get(url, {"page_size": 2})
    assert answer.status_code == 200
    body = answer.json()
    assert body["count"] == len(expected) and body["next"] and len(body["results"]) == 2
    assert [r["id"] for r in body["results"]] == expected[:2]
    results = body["results"]
    page = 1
    while body["next"]:  # every page, in due order
        page += 1
        body = client_for(coordinator_a).get(url, {"page": page, "page_size": 2}).json()
        results += body["results"]
    assert [r["id"] for r in results] == expected
    found = {r["id"]: r for r in results}
    first = found[made[0].pk]
    assert first["status"] == "sent" and first["channel"] == "email"
    assert first["participant"] == course.participant_id and first["staff"] is None
    assert first["idempotency_key"] == made[0].idempotency_key
    assert found[made[1].pk]["reason"] == "no email consent"
    assert found[made[2].pk]["reason"] == "" and found[made[2].pk]["status"] == "pending"
    assert client_for(coordinator_b).get(url).status_code == 404


def test_a_blinded_assessor_reaches_no_reminders(course: Course) -> None:
    baseline = ScheduledSession.objects.get(course=course, key="baseline")
    reminder(baseline, "assessment")
    assessor = StaffBooking.objects.get(session=baseline, active=True).user
    url = f"/api/participants/{course.participant_id}/reminders/"
    assert client_for(assessor).get(url).status_code == 404


def test_recording_a_concern_answers_201_with_its_escalations(
    course: Course, coordinator_a: Any
) -> None:
    call = ScheduledSession.objects.get(course=course, key="phone-1.1")
    therapist = StaffBooking.objects.get(session=call, active=True).user
    with time_machine.travel(call.start + timedelta(minutes=20), tick=False):
        answer = client_for(therapist).post(
            f"/api/sessions/{call.pk}/checkin-outcome/",
            {"outcome": "concern", "note": "Not sleeping"},
            format="json",
        )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["outcome"] == "concern" and body["note"] == "Not sleeping"
    assert body["recorded_by"] == therapist.pk and body["session"] == call.pk
    assert [e["staff"] for e in body["escalations"]] == [coordinator_a.pk]
    assert body["escalations"][0]["purpose"] == "escalation"
    # the concern's escalation, not the overdue ones the outbox planned at enrolment
    written = Reminder.objects.filter(idempotency_key__contains="/escalation/concern-")
    assert [e["id"] for e in body["escalations"]] == [r.pk for r in written]
    assert written.get().idempotency_key == (
        f"{call.uid}/escalation/concern-{body['id']}/u{coordinator_a.pk}"
    )


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"outcome": "concern"}, "note"),
        ({"outcome": "concern", "note": "  "}, "note"),
        ({"outcome": "fine"}, "outcome"),
        ({"note": "hello"}, "outcome"),
        ({"outcome": "reached", "note": "x" * 2001}, "note"),
    ],
)
def test_bad_input_is_a_400_with_field_errors_and_nothing_is_written(
    course: Course, coordinator_a: Any, sent: dict[str, Any], field: str
) -> None:
    call = ScheduledSession.objects.get(course=course, key="phone-1.1")
    before = outbox()
    with time_machine.travel(call.start, tick=False):
        answer = client_for(coordinator_a).post(
            f"/api/sessions/{call.pk}/checkin-outcome/", sent, format="json"
        )
    assert answer.status_code == 400 and field in answer.json()
    assert not CheckInOutcome.objects.exists() and outbox() == before


def test_a_session_that_is_no_call_or_lies_ahead_is_a_400_on_session(
    course: Course, coordinator_a: Any
) -> None:
    call = ScheduledSession.objects.get(course=course, key="phone-1.1")
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    client = client_for(coordinator_a)
    with time_machine.travel(call.start - timedelta(days=2), tick=False):
        for session in (call, dosing):
            answer = client.post(
                f"/api/sessions/{session.pk}/checkin-outcome/", {"outcome": "reached"}
            )
            assert answer.status_code == 400 and "session" in answer.json()
    assert not CheckInOutcome.objects.exists()


def test_someone_who_sees_the_call_but_does_not_make_it_gets_403(
    course: Course, coordinator_b: Any
) -> None:
    call = ScheduledSession.objects.get(course=course, key="phone-1.1")
    other = course.dyad.therapist_b  # type: ignore[union-attr]
    url = f"/api/sessions/{call.pk}/checkin-outcome/"
    with time_machine.travel(call.start, tick=False):
        assert client_for(other).post(url, {"outcome": "reached"}).status_code == 403
        assert client_for(coordinator_b).post(url, {"outcome": "reached"}).status_code == 404
    assert not CheckInOutcome.objects.exists()


def test_both_operations_are_in_the_schema(client: Any) -> None:
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert "get" in paths["/api/participants/{id}/reminders/"]
    operation = paths["/api/sessions/{id}/checkin-outcome/"]["post"]
    assert {"201", "400", "403", "404"} <= set(operation["responses"])
