"""Cancelling cascades and rebooking (scheduling.services.session_change_status,
session_rebook): what only makes sense with a cancelled or missed session is cancelled with it
(the next morning, the phone check-ins) and its rooms and staff freed; what has a window of its
own stays planned until the session is rebooked, which re-plans it all. Course and participant
status follow the course."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction

from scheduling import planning, services
from scheduling.models import (
    Course,
    Deviation,
    Participant,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
)
from scheduling.services import Outcome, SchedulingError
from tests.conftest import make_site, once_over

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
TIED = ["integration-1a", *(f"phone-1.{n}" for n in range(1, 6))]


def enrol(site: Site, code: str, by: Any, protocol: str = "mapp-ptsd", **kw: Any) -> Course:
    return services.participant_enrol(
        site=site, code=code, protocol_slug=protocol, start_date=date(2027, 3, 1), by=by, **kw
    )


@pytest.fixture
def course(site_a: Site, coordinator_a: Any) -> Course:
    return enrol(site_a, "P-001", coordinator_a)


def current(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


def held(s: ScheduledSession) -> tuple[int, int]:
    return (
        RoomBooking.objects.filter(session=s, active=True).count(),
        StaffBooking.objects.filter(session=s, active=True).count(),
    )


def state() -> list[Any]:
    return [
        list(ScheduledSession.objects.order_by("pk").values_list("pk", "status", "superseded")),
        list(RoomBooking.objects.order_by("pk").values_list("pk", "active", "until")),
        list(StaffBooking.objects.order_by("pk").values_list("pk", "active")),
        Deviation.objects.count(),
        ScheduledSession.history.count(),
        list(Course.objects.values_list("pk", "status")),
    ]


def test_tied_templates_come_from_the_protocol(mapp_spec, couples_spec) -> None:
    assert planning.tied_to(mapp_spec, "dosing-1") == {"integration-1a", "phone-1"}
    assert planning.tied_to(mapp_spec, "baseline") == set()
    assert planning.tied_to(couples_spec, "dosing-1") == {"conjoint-1a"}


def test_the_preview_says_what_happens_to_each_dependent_and_stores_nothing(
    course, coordinator_a
) -> None:
    dosing = current(course, "dosing-1")
    before = state()
    change = services.session_change_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a, dry_run=True
    )
    assert state() == before
    assert not change.applied
    outcomes = {c.session.key: c.outcome for c in change.consequences}
    assert {k for k, o in outcomes.items() if o is Outcome.CANCELLED_WITH} == set(TIED)
    waiting = {k for k, o in outcomes.items() if o is Outcome.AWAITS_REBOOKING}
    assert {"integration-1b", "integration-1c", "interim-1", "dosing-2", "follow-up"} <= waiting
    assert "integration-2a" in waiting  # through dosing-2: it goes with dosing-2, not dosing-1
    why = next(c.why for c in change.consequences if c.session.key == "integration-1b")
    assert "window of its own" in why and "when dosing-1 is rebooked" in why


def test_cancelling_a_dosing_session_cancels_its_next_morning_and_check_ins(
    course, coordinator_a
) -> None:
    dosing = current(course, "dosing-1")
    morning = current(course, "integration-1a")
    assert held(morning) == (1, 2)
    change = services.session_change_status(
        session=dosing, status="cancelled", reason="participant unwell", by=coordinator_a
    )
    assert change.applied
    for key in ["dosing-1", *TIED]:
        s = current(course, key)
        assert s.status == "cancelled", key
        assert held(s) == (0, 0), key  # the dosing room and the dyad are free again
        deviation = s.deviations.get()
        assert deviation.reason == "participant unwell"
        if key != "dosing-1":
            assert "cancelled with dosing-1" in deviation.detail
            assert "cancelled with dosing-1" in s.history.first().history_change_reason
    assert "integration-1a" in dosing.deviations.get().detail
    later = current(course, "integration-1b")
    assert later.status == "planned" and held(later) == (1, 2)  # left for re-planning
    assert current(course, "dosing-2").status == "planned"


def test_a_missed_dosing_session_cancels_what_goes_with_it(course, coordinator_a) -> None:
    dosing = current(course, "dosing-1")
    with once_over(dosing):
        services.session_set_status(
            session=dosing, status="missed", reason="did not come", by=coordinator_a
        )
    assert current(course, "dosing-1").status == "missed"
    assert {current(course, k).status for k in TIED} == {"cancelled"}


def test_a_cascade_that_fails_stores_nothing(course, coordinator_a) -> None:
    dosing = current(course, "dosing-1")
    before = state()
    with pytest.raises(SchedulingError):
        services.session_change_status(
            session=dosing, status="cancelled", reason="x\x00", by=coordinator_a
        )
    assert state() == before


def test_status_error_names_the_local_time_with_its_zone(course, coordinator_a) -> None:
    prep = current(course, "prep-2")
    with pytest.raises(SchedulingError) as caught:
        services.session_set_status(session=prep, status="completed", by=coordinator_a)
    message = caught.value.errors["status"][0]
    local = prep.start.astimezone(NEW_YORK)
    assert "UTC" not in message
    assert f"{local:%H:%M} {local:%Z}" in message and f"{local:%a}" in message


def _rebook_day(course: Course) -> datetime:
    old = current(course, "dosing-1").start.astimezone(NEW_YORK)
    return old + timedelta(days=7)


def test_rebooking_replaces_the_cancelled_sessions_and_replans_the_dependents(
    course, coordinator_a
) -> None:
    dosing = current(course, "dosing-1")
    old_uids = {k: current(course, k).uid for k in ["dosing-1", *TIED]}
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    new_start = _rebook_day(course)
    before = state()
    preview = services.session_rebook(
        session=dosing, start=new_start, by=coordinator_a, dry_run=True
    )
    assert state() == before
    assert not preview.applied
    assert preview.rebooked[0].session.key == "dosing-1"
    assert {m.session.key for m in preview.rebooked} == {"dosing-1", *TIED}
    assert all(m.session.pk is None for m in preview.rebooked)
    assert "integration-1b" in {m.session.key for m in preview.moved}

    result = services.session_rebook(session=dosing, start=new_start, by=coordinator_a)
    assert result.applied
    new = current(course, "dosing-1")
    assert new.pk != dosing.pk and new.replaces_id == dosing.pk
    assert new.start == new_start and new.status == "planned"
    assert held(new) == (1, 2)
    old = ScheduledSession.objects.get(pk=dosing.pk)
    assert (old.status, old.superseded, old.uid) == ("cancelled", True, old_uids["dosing-1"])
    for key in TIED:
        fresh = current(course, key)
        assert fresh.status == "planned" and fresh.replaces is not None, key
        assert fresh.uid != old_uids[key]  # a new calendar event; the cancelled one stays
        assert held(fresh)[1] >= 1, key
    morning = current(course, "integration-1a")
    assert morning.start.astimezone(NEW_YORK).date() == new_start.date() + timedelta(days=1)
    assert held(morning) == (1, 2)
    later = current(course, "integration-1b")
    assert later.window_start >= new_start.date() + timedelta(days=5)
    # one current session per protocol session, enforced by the database
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledSession.objects.filter(pk=old.pk).update(superseded=False)


def test_rebooking_twice_or_a_planned_session_is_refused(course, coordinator_a) -> None:
    dosing = current(course, "dosing-1")
    with pytest.raises(SchedulingError) as caught:
        services.session_rebook(session=dosing, start=_rebook_day(course), by=coordinator_a)
    assert "only a cancelled or missed session" in caught.value.errors["start"][0]
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    services.session_rebook(session=dosing, start=_rebook_day(course), by=coordinator_a)
    with pytest.raises(SchedulingError) as caught:
        services.session_rebook(session=dosing, start=_rebook_day(course), by=coordinator_a)
    assert "rebooked already" in caught.value.errors["start"][0]


def test_rebooking_outside_the_window_needs_a_reason(course, coordinator_a) -> None:
    dosing = current(course, "dosing-1")
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    far = dosing.start.astimezone(NEW_YORK) + timedelta(days=28)
    before = state()
    with pytest.raises(SchedulingError) as caught:
        services.session_rebook(session=dosing, start=far, by=coordinator_a)
    assert "reason" in caught.value.errors
    assert state() == before


# --- course and participant status -----------------------------------------------------------


def test_the_course_completes_when_nothing_it_needs_is_left(course, coordinator_a) -> None:
    participant = course.participant
    sessions = list(course.sessions.order_by("start"))
    last = sessions[-1]
    with once_over(last):
        for s in sessions[:-1]:
            if s.key == "phone-1.3":  # a missed check-in is not made up later
                services.session_set_status(
                    session=s, status="missed", reason="no answer", by=coordinator_a
                )
            else:
                services.session_set_status(session=s, status="completed", by=coordinator_a)
        participant.refresh_from_db()
        assert participant.status == Participant.Status.IN_TREATMENT
        course.refresh_from_db()
        assert course.status == "active"
        change = services.session_change_status(session=last, status="completed", by=coordinator_a)
    assert change.course_status == "completed"
    course.refresh_from_db()
    participant.refresh_from_db()
    assert course.status == "completed"
    assert participant.status == Participant.Status.COMPLETED


def test_a_cancelled_session_the_protocol_needs_keeps_the_course_open(
    course, coordinator_a
) -> None:
    sessions = list(course.sessions.order_by("start"))
    last = sessions[-1]
    with once_over(last):
        for s in sessions[:-1]:
            services.session_set_status(session=s, status="completed", by=coordinator_a)
        services.session_set_status(
            session=last, status="cancelled", reason="moved away", by=coordinator_a
        )
    course.refresh_from_db()
    assert course.status == "active"  # follow-up still needed: rebook it, or end the course


def test_withdrawing_cancels_everything_planned(course, coordinator_a, site_a) -> None:
    participant = course.participant
    before = state()
    preview = services.participant_withdraw(
        participant=participant, reason="consent withdrawn", by=coordinator_a, dry_run=True
    )
    assert state() == before
    assert len(preview.cancelled) == course.sessions.count()
    with pytest.raises(SchedulingError) as caught:
        services.participant_withdraw(participant=participant, reason=" ", by=coordinator_a)
    assert "reason" in caught.value.errors
    services.participant_withdraw(
        participant=participant, reason="consent withdrawn", by=coordinator_a
    )
    participant.refresh_from_db()
    course.refresh_from_db()
    assert participant.status == "withdrawn" and course.status == "withdrawn"
    assert set(course.sessions.values_list("status", flat=True)) == {"cancelled"}
    assert not RoomBooking.objects.filter(session__course=course, active=True).exists()
    assert not StaffBooking.objects.filter(session__course=course, active=True).exists()
    assert Deviation.objects.filter(session__course=course, reason="consent withdrawn").count() == (
        course.sessions.count()
    )


def test_ending_a_course_early_completes_the_participant(course, coordinator_a) -> None:
    services.course_end(course=course, reason="clinical decision", by=coordinator_a)
    course.refresh_from_db()
    course.participant.refresh_from_db()
    assert course.status == "ended"
    assert course.participant.status == "completed"
    with pytest.raises(SchedulingError):
        services.course_end(course=course, reason="again", by=coordinator_a)


def test_withdrawing_one_partner_ends_the_joint_course_for_both(db, coordinator_a) -> None:
    site = make_site("cpl", couples_room=True)
    joint = enrol(site, "C-01", coordinator_a, protocol="mdma-cbct-couples", partner_code="C-02")
    assert joint.partner is not None
    services.participant_withdraw(
        participant=joint.partner, reason="couple separated", by=coordinator_a
    )
    joint.refresh_from_db()
    assert joint.status == "withdrawn"
    assert set(
        Participant.objects.filter(code__in=["C-01", "C-02"]).values_list("status", flat=True)
    ) == {"withdrawn"}


def test_rebooking_at_the_same_time_books_every_replacement(course, coordinator_a) -> None:
    """Cancelled by mistake, rebooked at the very same time: the phone check-ins land where
    the cancelled ones were, and each is booked all the same."""
    dosing = current(course, "dosing-1")
    services.session_set_status(
        session=dosing, status="cancelled", reason="entered by mistake", by=coordinator_a
    )
    services.session_rebook(session=dosing, start=dosing.start, by=coordinator_a)
    for key in ["dosing-1", *TIED]:
        fresh = current(course, key)
        assert fresh.replaces is not None, key
        assert fresh.start == fresh.replaces.start, key
        assert held(fresh)[1] >= 1, key  # a therapist holds it


def test_a_rebooked_course_can_be_rescheduled_again(course, coordinator_a) -> None:
    dosing = current(course, "dosing-1")
    services.session_set_status(
        session=dosing, status="cancelled", reason="unwell", by=coordinator_a
    )
    services.session_rebook(session=dosing, start=_rebook_day(course), by=coordinator_a)
    new = current(course, "dosing-1")
    later = new.start + timedelta(days=1)
    result = services.session_reschedule(session=new, start=later, by=coordinator_a)
    assert result.applied
    assert current(course, "dosing-1").start == later
    morning = current(course, "integration-1a")
    assert morning.start.astimezone(NEW_YORK).date() == later.astimezone(NEW_YORK).date() + (
        timedelta(days=1)
    )
    # the superseded sessions stay as they were
    assert ScheduledSession.objects.get(pk=dosing.pk).start == dosing.start
