"""Phone check-ins are staff work: the therapist booked on a call records what it came to, a
concern escalates to the site's coordinators at once (outbox rows in the same transaction),
and Today shows the calls with a form, and what needs attention: calls nobody reached after
the protocol's hours, concerns, and reminders that failed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.test import Client

from protocol.models import ProtocolVersion
from scheduling import clock
from scheduling.checkins import checkin_record, concern_key
from scheduling.models import (
    CheckInOutcome,
    Course,
    Reminder,
    ScheduledSession,
    StaffBooking,
)
from scheduling.selectors import REMINDERS_SHOWN
from scheduling.services import SchedulingError, session_set_status
from tests.conftest import enrol_mapp, make_staff

pytestmark = pytest.mark.django_db
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Course:
    found: Course = enrol_mapp(site_a, "P-001", coordinator_a)
    return found


def call(course: Course, n: int = 1) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=f"phone-1.{n}")


def caller(session: ScheduledSession) -> Any:
    """The therapist booked on the call."""
    return StaffBooking.objects.get(session=session, active=True).user


def at(moment: datetime) -> time_machine.travel:
    return time_machine.travel(moment, tick=False)


def outbox_row(session: ScheduledSession, suffix: str, **fields: Any) -> Reminder:
    """A reminder row, made directly (the outbox's planning is tested on its own)."""
    values: dict[str, Any] = {
        "site": session.course.participant.site,
        "session": session,
        "participant": session.course.participant,
        "rule_key": "24h",
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


def concern_rows() -> Any:
    """The escalations a concern wrote (not the overdue ones the outbox plans itself)."""
    return Reminder.objects.filter(idempotency_key__contains="/escalation/concern-")


# --- the service -----------------------------------------------------------------------------


def test_a_concern_escalates_at_once_to_every_coordinator_of_the_site(
    course: Course, coordinator_a: Any, site_a: Any, coordinator_b: Any
) -> None:
    second = make_staff("coordinator-a2", "coordinator", site_a)
    gone = make_staff("coordinator-a3", "coordinator", site_a)
    gone.is_active = False
    gone.save()
    session = call(course)
    moment = session.start + timedelta(minutes=20)
    planned = outbox()
    with at(moment):
        row = checkin_record(
            session=session, outcome="concern", note="Low mood, call back", by=caller(session)
        )
    assert row.outcome == "concern" and row.note == "Low mood, call back"
    sent = concern_rows().order_by("staff_id")
    assert [r.staff_id for r in sent] == sorted([coordinator_a.pk, second.pk])
    # the concern wrote its escalations and touched none of the planned rows
    assert [r for r in outbox() if r["id"] not in {s.pk for s in sent}] == planned
    for r in sent:
        assert r.purpose == "escalation" and r.rule_key == "concern"
        assert r.message == "checkin_escalation" and r.channel == "email"
        assert r.status == "pending" and r.due_at == moment and r.session_start == session.start
        assert r.site_id == site_a.pk and r.participant_id is None
        assert r.staff_id is not None
        assert r.idempotency_key == concern_key(session, row.pk, r.staff_id)
        assert r.idempotency_key == f"{session.uid}/escalation/concern-{row.pk}/u{r.staff_id}"


def test_a_concern_needs_a_note_and_nothing_is_written_without_it(course: Course) -> None:
    session = call(course)
    before = outbox()
    with at(session.start), pytest.raises(SchedulingError) as refused:
        checkin_record(session=session, outcome="concern", note="  ", by=caller(session))
    assert "note" in refused.value.errors
    assert not CheckInOutcome.objects.exists() and outbox() == before


@pytest.mark.parametrize("who", ["other therapist", "assessor", "night attendant", "other site"])
def test_only_the_booked_therapist_or_the_sites_coordinators_record(
    course: Course, site_a: Any, coordinator_b: Any, who: str
) -> None:
    session = call(course)
    by = {
        "other therapist": course.dyad.therapist_b,  # type: ignore[union-attr]
        "assessor": make_staff("assessor-x", "assessor", site_a),
        "night attendant": make_staff("night-x", "night_attendant", site_a),
        "other site": coordinator_b,
    }[who]
    before = outbox()
    with at(session.start), pytest.raises(PermissionDenied, match="booked on this check-in"):
        checkin_record(session=session, outcome="concern", note="worried", by=by)
    assert not CheckInOutcome.objects.exists() and outbox() == before


def test_a_coordinator_records_and_several_outcomes_are_kept(
    course: Course, coordinator_a: Any
) -> None:
    session = call(course)
    before = outbox()
    with at(session.start + timedelta(minutes=5)):
        checkin_record(session=session, outcome="no_answer", note="", by=caller(session))
    with at(session.start + timedelta(hours=1)):
        checkin_record(session=session, outcome="reached", note="fine", by=coordinator_a)
    assert list(session.checkin_outcomes.values_list("outcome", flat=True)) == [
        "reached",
        "no_answer",
    ]
    assert outbox() == before  # only a concern escalates at once


def test_cancelled_later_and_other_sessions_are_refused_in_the_clinics_words(
    course: Course, coordinator_a: Any
) -> None:
    session = call(course)
    with at(session.start - timedelta(days=1)), pytest.raises(SchedulingError) as early:
        checkin_record(session=session, outcome="reached", note="", by=coordinator_a)
    assert "on the day of the call" in early.value.errors["session"][0]
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    with at(dosing.start), pytest.raises(SchedulingError) as other:
        checkin_record(session=dosing, outcome="reached", note="", by=coordinator_a)
    assert "not a phone check-in" in other.value.errors["session"][0]
    cancelled = session_set_status(
        session=call(course, 2), status="cancelled", reason="travelling", by=coordinator_a
    )
    with at(cancelled.start), pytest.raises(SchedulingError) as gone:
        checkin_record(session=cancelled, outcome="reached", note="", by=coordinator_a)
    assert "cancelled" in gone.value.errors["session"][0]
    with at(session.start), pytest.raises(SchedulingError) as bad:
        checkin_record(session=session, outcome="maybe", note="", by=coordinator_a)
    assert "outcome" in bad.value.errors
    assert not CheckInOutcome.objects.exists()


# --- Today -----------------------------------------------------------------------------------


def today(client: Client, user: Any, moment: datetime) -> str:
    with at(moment):
        client.force_login(user)
        response = client.get("/today/")
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"')[1].split("</ul>")[0]


def test_today_shows_the_call_to_its_therapist_and_the_form_records_it(
    client: Client, course: Course
) -> None:
    session = call(course)
    therapist = caller(session)
    page = today(client, therapist, session.start - timedelta(hours=2))
    calls = section(page, "checkins")
    assert f'id="checkin-{session.pk}"' in calls and "P-001" in calls
    assert f'hx-post="/sessions/{session.pk}/checkin/"' in calls
    # the other therapist of the dyad is not booked on it: not theirs to make
    other = today(client, course.dyad.therapist_b, session.start)  # type: ignore[union-attr]
    assert f'id="checkin-{session.pk}"' not in other
    with at(session.start + timedelta(minutes=10)):
        client.force_login(therapist)
        answer = client.post(
            f"/sessions/{session.pk}/checkin/",
            {"outcome": "reached", "note": "doing well"},
            headers={"HX-Request": "true"},
        )
    assert answer.status_code == 200
    swapped = answer.content.decode()
    assert f'id="checkin-{session.pk}"' in swapped and "Reached: doing well" in swapped
    assert CheckInOutcome.objects.get(session=session).recorded_by == therapist


def test_without_htmx_the_form_returns_to_today_and_errors_show_on_the_form(
    client: Client, course: Course
) -> None:
    session = call(course)
    therapist = caller(session)
    with at(session.start + timedelta(minutes=10)):
        client.force_login(therapist)
        done = client.post(f"/sessions/{session.pk}/checkin/", {"outcome": "no_answer"})
        assert done.status_code == 302 and done["Location"] == "/today/?site=a"
        refused = client.post(
            f"/sessions/{session.pk}/checkin/",
            {"outcome": "concern", "note": ""},
            headers={"HX-Request": "true"},
        )
        assert refused.status_code == 200  # htmx swaps the form with its error
        assert "Say what the concern is" in refused.content.decode()
        other = course.dyad.therapist_b  # type: ignore[union-attr]
        client.force_login(other)
        forbidden = client.post(f"/sessions/{session.pk}/checkin/", {"outcome": "reached"})
        assert forbidden.status_code == 403
        assert client.get(f"/sessions/{session.pk}/checkin/").status_code == 405
    assert list(CheckInOutcome.objects.values_list("outcome", flat=True)) == ["no_answer"]


def test_an_earlier_unanswered_call_stays_on_today_until_someone_reaches_them(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    first = call(course, 1)
    next_day = call(course, 2).start - timedelta(hours=3)
    page = today(client, coordinator_a, next_day)
    assert f'id="checkin-{first.pk}"' in section(page, "checkins")
    with at(first.start + timedelta(hours=1)):
        checkin_record(session=first, outcome="reached", note="", by=coordinator_a)
    page = today(client, coordinator_a, next_day)
    assert f'id="checkin-{first.pk}"' not in page
    assert f'id="checkin-{call(course, 2).pk}"' in page


def test_a_call_nobody_reached_needs_attention_after_the_protocols_hours(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    session = call(course)
    ProtocolVersion.objects.filter(pk=course.protocol_version_id).update(checkin_escalation_hours=2)
    early = today(client, coordinator_a, session.start + timedelta(hours=1, minutes=59))
    assert 'id="attention-late-checkins"' not in early
    with at(session.start + timedelta(minutes=30)):
        checkin_record(session=session, outcome="no_answer", note="", by=caller(session))
    late = today(client, coordinator_a, session.start + timedelta(hours=2))
    item = section(late, "attention-late-checkins")
    assert f'href="/sessions/{session.pk}/"' in item and "P-001" in item
    assert "no answer" in item and "after 2 hours" in item
    with at(session.start + timedelta(hours=3)):
        checkin_record(session=session, outcome="reached", note="", by=caller(session))
    calm = today(client, coordinator_a, session.start + timedelta(hours=4))
    assert (
        f'href="/sessions/{session.pk}/"'
        not in calm.split('id="attention"')[1].split('id="attention-overdue"')[0]
    )


def test_a_concern_and_a_failed_reminder_need_attention(
    client: Client, course: Course, coordinator_a: Any, site_b: Any, coordinator_b: Any
) -> None:
    session = call(course)
    with at(session.start + timedelta(minutes=15)):
        checkin_record(session=session, outcome="concern", note="Not sleeping", by=caller(session))
    dosing = ScheduledSession.objects.get(course=course, key="dosing-2")
    with at(session.start + timedelta(minutes=30)):  # failed (updated) in the last two weeks
        outbox_row(
            dosing, "failed", status="failed", reason="The mail server refused the address (550)."
        )
        outbox_row(dosing, "sent", status="sent", sent_at=dosing.start - timedelta(days=1))
    page = today(client, coordinator_a, session.start + timedelta(hours=1))
    concern = section(page, "attention-concerns")
    assert "Not sleeping" in concern and f'href="/sessions/{session.pk}/"' in concern
    failed = section(page, "attention-failed-reminders")
    assert "refused the address (550)" in failed and f'href="/sessions/{dosing.pk}/"' in failed
    assert failed.count("<li>") == 1  # the sent one is not news
    # another site's coordinator sees none of it
    elsewhere = today(client, coordinator_b, session.start + timedelta(hours=1))
    assert "Not sleeping" not in elsewhere and "(550)" not in elsewhere


def test_today_costs_a_bounded_number_of_queries_with_calls_and_failures(
    client: Client, site_a: Any, coordinator_a: Any, django_assert_max_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = enrol_mapp(site_a, "P-001", coordinator_a)
    moment = call(first).start - timedelta(hours=1)

    def count() -> int:
        with at(moment):
            client.force_login(coordinator_a)
            with CaptureQueriesContext(connection) as queries:
                assert client.get("/today/").status_code == 200
        return len(queries)

    with at(moment):
        outbox_row(call(first), "f1", status="failed", reason="bounced", due_at=moment)
    few = count()
    for n in range(3):
        other = enrol_mapp(site_a, f"P-10{n}", coordinator_a, start=first.start_date)
        with at(moment):
            outbox_row(call(other), f"f{n}", status="failed", reason="bounced", due_at=moment)
        with at(call(other).start):
            checkin_record(session=call(other), outcome="concern", note="worried", by=coordinator_a)
    assert count() == few
    with at(moment):
        client.force_login(coordinator_a)
        page = client.get("/today/").content.decode()
    assert section(page, "attention-failed-reminders").count("<li>") == 4
    day = moment.astimezone(NEW_YORK).date()
    calls = [
        s
        for s in ScheduledSession.objects.filter(kind="phone_checkin")
        if s.start.astimezone(NEW_YORK).date() == day
    ]
    assert len(calls) >= 2
    assert section(page, "checkins").count('class="checkin"') == len(calls)
    with django_assert_max_num_queries(26), at(moment):
        client.get("/today/")


# --- the participant's and the session's pages --------------------------------------------


def test_the_pages_list_reminders_planned_sent_and_why_not(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    planned = outbox_row(dosing, "planned")
    outbox_row(
        dosing,
        "sent",
        rule_key="72h",
        status="sent",
        sent_at=dosing.start - timedelta(hours=72),
        due_at=dosing.start - timedelta(hours=72),
    )
    outbox_row(dosing, "skipped", rule_key="eve", status="skipped", reason="no SMS consent")
    outbox_row(dosing, "cancelled", rule_key="x", status="cancelled", reason="the session moved")
    # the four made here, with what enrolment planned for the participant's sessions
    theirs = Reminder.objects.filter(session__course__participant=course.participant).exclude(
        purpose=Reminder.Purpose.INVITATION  # on each session's page, not the participant's
    )
    assert 4 < theirs.count() <= REMINDERS_SHOWN
    client.force_login(coordinator_a)
    page = client.get(f"/participants/{course.participant_id}/").content.decode()
    listed = page.split('id="reminders-list"')[1].split("</table>")[0]
    assert listed.count('class="reminder ') == theirs.count()
    for status in Reminder.Status.values:
        shown = listed.count(f'data-status="{status}"')
        assert shown == theirs.filter(status=status).count(), status
    assert "no SMS consent" in listed and "the session moved" in listed
    # times in the site's zone, not UTC
    assert f"goes out {clock.local_text(planned.due_at, course.participant.site)}" in listed
    assert f"{planned.due_at:%a %-d %b %Y %H:%M}" not in listed
    assert "EDT" in listed and f'href="/sessions/{dosing.pk}/"' in listed
    session_page = client.get(f"/sessions/{dosing.pk}/").content.decode()
    on_session = session_page.split('id="reminders-list"')[1].split("</table>")[0]
    assert on_session.count('class="reminder ') == Reminder.objects.filter(session=dosing).count()
    assert "no SMS consent" in on_session and "the session moved" in on_session


def test_a_blinded_assessor_sees_no_reminders_on_their_assessment(
    client: Client, course: Course
) -> None:
    baseline = ScheduledSession.objects.get(course=course, key="baseline")
    outbox_row(baseline, "planned")
    assessor = caller(baseline)
    client.force_login(assessor)
    page = client.get(f"/sessions/{baseline.pk}/")
    assert page.status_code == 200
    assert 'id="reminders"' not in page.content.decode()


def test_the_calls_own_page_offers_the_form_to_those_who_record_it(
    client: Client, course: Course, coordinator_a: Any
) -> None:
    session = call(course)
    with at(session.start + timedelta(hours=5)):
        checkin_record(session=session, outcome="no_answer", note="voicemail", by=coordinator_a)
        client.force_login(coordinator_a)
        page = client.get(f"/sessions/{session.pk}/").content.decode()
        assert f'hx-post="/sessions/{session.pk}/checkin/"' in page
        assert "No answer: voicemail" in page.split('id="checkin-outcomes"')[1]
        client.force_login(course.dyad.therapist_b)  # type: ignore[union-attr]
        other = client.get(f"/sessions/{session.pk}/").content.decode()
    assert "/checkin/" not in other and "No answer: voicemail" in other
