"""Rescheduling (scheduling.services.session_reschedule) re-solves, never shifts: a moved
session's dependents are re-planned from their own anchors, the rest stay; the diff, dry runs,
applying with new bookings, windows and deviations, conflicts, and what cannot move.

Expected dates are computed in the test from the protocol spec and the anchors' new dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from protocol.spec import ProtocolSpec
from scheduling.models import (
    Course,
    Deviation,
    Dyad,
    Participant,
    RoomBooking,
    ScheduledSession,
    Site,
    StaffBooking,
)
from scheduling.services import (
    BookingConflict,
    SchedulingError,
    dependents_of,
    participant_enrol,
    session_rebook,
    session_reschedule,
    session_set_status,
)
from tests.conftest import make_site, once_over
from tests.scheduling.test_booking import overlapping_active_bookings

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
# A Thursday: prep-1..3 on Thursdays, baseline (prep-3 + 2 = Sat) on Mon 03-22, dosing-1 on
# Mon 03-29, integration-1a on Tue 03-30. Two days later, dosing-1 is a Wednesday.
START = date(2027, 3, 4)


def enrol(site: Site, code: str, by: Any, start: date = START, **kwargs: Any) -> Course:
    return participant_enrol(
        site=site, code=code, protocol_slug="mapp-ptsd", start_date=start, by=by, **kwargs
    )


def sessions(course: Course) -> dict[str, ScheduledSession]:
    return {s.key: s for s in ScheduledSession.objects.filter(course=course)}


def local(moment: datetime) -> datetime:
    return moment.astimezone(NEW_YORK)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def db_state() -> dict[str, Any]:
    """Everything a reschedule could write: rows, their fields, and the audit history."""
    models: list[Any] = [
        Participant,
        Course,
        ScheduledSession,
        RoomBooking,
        StaffBooking,
        Deviation,
    ]
    state: dict[str, Any] = {m.__name__: m.objects.count() for m in models}
    state |= {f"history {m.__name__}": m.history.count() for m in models}
    state["sessions"] = list(
        ScheduledSession.objects.order_by("pk").values_list(
            "pk", "start", "end", "status", "sequence", "room_id", "window_start", "window_end"
        )
    )
    for model in (RoomBooking, StaffBooking):
        state[model.__name__ + " rows"] = list(
            model.objects.order_by("pk").values_list("pk", "active", "begin", "until")
        )
    return state


def anchored_on(spec: ProtocolSpec, key: str) -> set[str]:
    """Template keys whose anchor chain reaches ``key`` (computed here, not by the service)."""
    anchors = {s.key: s.timing.anchor for s in spec.sessions}
    found = set()
    for template in anchors:
        anchor = anchors[template]
        while anchor is not None:
            if anchor == key:
                found.add(template)
                break
            anchor = anchors[anchor]
    return found


def expected_starts(
    spec: ProtocolSpec, stored: dict[str, ScheduledSession], moved: str, new_start: datetime
) -> dict[str, datetime]:
    """Where every session anchored (through others) on ``moved`` goes when ``moved`` starts at
    ``new_start``: its anchor's new local date plus its target offset, at its preferred time.
    (On this empty site each target day is open and free; asserted below.)"""
    replan = anchored_on(spec, moved)
    days = {key: local(s.start).date() for key, s in stored.items()}
    days[moved] = local(new_start).date()
    starts: dict[str, datetime] = {moved: new_start}
    for template in spec.placement_order():
        if template.key not in replan:
            continue
        assert template.timing.anchor is not None
        anchor_day = days[template.timing.anchor]
        for n in range(1, template.repeat_count + 1):
            key = template.occurrence_key(n)
            shift = template.timing.target_days + (n - 1) * template.repeat_interval_days
            day = anchor_day + timedelta(days=shift)
            if template.open_days_apply:
                assert day.weekday() < 5, key
            starts[key] = datetime.combine(day, template.start_time, NEW_YORK)
            if n == 1:
                days[template.key] = day
    return starts


# --- what depends on what (pure) -----------------------------------------------------------


def test_dependents_of_dosing_1_is_its_anchor_chain(mapp_spec) -> None:
    found = dependents_of(mapp_spec, "dosing-1")
    assert found == anchored_on(mapp_spec, "dosing-1")
    assert {"integration-1a", "integration-1b", "integration-1c", "phone-1", "interim-1"} < found
    assert {"dosing-2", "integration-2a", "dosing-3", "phone-3", "follow-up"} < found
    # endpoint is anchored on baseline, closing on endpoint: neither depends on dosing-1
    assert not found & {"prep-1", "prep-2", "prep-3", "baseline", "endpoint", "closing"}
    assert dependents_of(mapp_spec, "closing") == set()
    assert dependents_of(mapp_spec, "baseline") == anchored_on(mapp_spec, "baseline")


# --- moving dosing-1 two days later --------------------------------------------------------


def _course_and_new_dosing_start(site: Site, by: Any) -> tuple[Course, datetime]:
    course = enrol(site, "P-001", by)
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    assert local(dosing.start) == datetime(2027, 3, 29, 9, tzinfo=NEW_YORK)
    new = datetime(2027, 3, 31, 9, tzinfo=NEW_YORK)
    assert dosing.window_start <= new.date() <= dosing.window_end
    return course, new


def test_dry_run_shows_the_diff_and_writes_nothing(site_a, coordinator_a, mapp_spec) -> None:
    course, new = _course_and_new_dosing_start(site_a, coordinator_a)
    stored = sessions(course)
    expected = expected_starts(mapp_spec, stored, "dosing-1", new)
    before = db_state()
    result = session_reschedule(
        session=stored["dosing-1"], start=new, by=coordinator_a, dry_run=True
    )
    assert db_state() == before
    assert result.applied is False
    assert result.deviations == []
    diff = {m.session.key: (m.old_start, m.new_start) for m in result.moved}
    # exactly the sessions that change: dosing-1 and its whole anchor chain, 3 cycles of it
    assert set(diff) == set(expected)
    assert len(diff) == 1 + (1 + 5 + 1 + 1 + 1) + 1 + (1 + 5 + 1 + 1 + 1) + 1 + (1 + 5 + 1 + 1) + 1
    for key, (old, new_start) in diff.items():
        assert old == stored[key].start, key
        assert new_start == expected[key], key
        assert new_start != old
    for move in result.moved:
        was = stored[move.session.key]
        assert utc(move.new_end) - utc(move.new_start) == was.end - was.start


def test_applying_moves_dependents_from_their_anchors(site_a, coordinator_a, mapp_spec) -> None:
    course, new = _course_and_new_dosing_start(site_a, coordinator_a)
    stored = sessions(course)
    expected = expected_starts(mapp_spec, stored, "dosing-1", new)
    old_bookings = {
        s.key: set(RoomBooking.objects.filter(session=s, active=True).values_list("pk", flat=True))
        | {
            -pk
            for pk in StaffBooking.objects.filter(session=s, active=True).values_list(
                "pk", flat=True
            )
        }
        for s in stored.values()
    }
    result = session_reschedule(session=stored["dosing-1"], start=new, by=coordinator_a)
    assert result.applied is True
    assert result.deviations == []
    assert {m.session.key for m in result.moved} == set(expected)
    after = sessions(course)
    assert len(after) == 36
    for key, session in after.items():
        if key in expected:
            assert session.start == expected[key], key
            assert session.sequence == 1, key
            assert session.window_start <= local(session.start).date() <= session.window_end
            # the old bookings are kept, inactive; new ones hold the new time
            room_ids = {pk for pk in old_bookings[key] if pk > 0}
            staff_ids = {-pk for pk in old_bookings[key] if pk < 0}
            assert not RoomBooking.objects.filter(pk__in=room_ids, active=True).exists()
            assert not StaffBooking.objects.filter(pk__in=staff_ids, active=True).exists()
            assert StaffBooking.objects.filter(pk__in=staff_ids).count() == len(staff_ids)
            new_staff = StaffBooking.objects.filter(session=session, active=True)
            assert {(b.begin, b.until) for b in new_staff} == {(session.start, session.end)}
            assert new_staff.count() == len(staff_ids)
        else:
            assert (session.start, session.sequence) == (stored[key].start, 0), key
            still = {
                pk
                for pk in old_bookings[key]
                if (pk > 0 and RoomBooking.objects.get(pk=pk).active)
                or (pk < 0 and StaffBooking.objects.get(pk=-pk).active)
            }
            assert still == old_bookings[key], key
    # the sessions that do not hang on dosing-1 did not move
    for key in ("prep-1", "prep-2", "prep-3", "baseline", "endpoint", "closing"):
        assert after[key].start == stored[key].start
    # integration-1a is the morning after the new dosing day, in the same (dosing) room: the
    # new dosing booking holds it until integration-1a starts, which holds it until it ends
    morning = after["integration-1a"]
    assert local(morning.start) == datetime(2027, 4, 1, 9, tzinfo=NEW_YORK)
    assert morning.room_id == after["dosing-1"].room_id
    hold = RoomBooking.objects.get(session=after["dosing-1"], active=True)
    assert (hold.room_id, hold.begin, hold.until) == (
        morning.room_id,
        after["dosing-1"].start,
        morning.start,
    )
    own = RoomBooking.objects.get(session=morning, active=True)
    assert (own.room_id, own.begin, own.until) == (morning.room_id, morning.start, morning.end)
    # the old ones, inactive, had the same shape at the old times
    old = stored["integration-1a"]
    assert sorted(
        RoomBooking.objects.filter(
            session__in=[after["dosing-1"], morning], active=False
        ).values_list("begin", "until")
    ) == [(stored["dosing-1"].start, old.start), (old.start, old.end)]
    assert local(after["phone-1.1"].start) == datetime(2027, 4, 2, 10, tzinfo=NEW_YORK)
    assert local(after["dosing-2"].start) == datetime(2027, 4, 28, 9, tzinfo=NEW_YORK)
    assert local(after["follow-up"].start).date() == local(after["dosing-3"].start).date() + (
        timedelta(days=182)
    )


# --- windows and deviations ----------------------------------------------------------------


def _outside(course: Course) -> tuple[ScheduledSession, datetime]:
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    day = dosing.window_end + timedelta(days=1)  # Tue 2027-04-13: baseline + 22
    assert day.weekday() < 4
    return dosing, datetime.combine(day, time(9), NEW_YORK)


def test_outside_the_window_without_a_reason_is_refused(site_a, coordinator_a) -> None:
    dosing, outside = _outside(enrol(site_a, "P-001", coordinator_a))
    before = db_state()
    for dry_run in (False, True):
        with pytest.raises(SchedulingError) as caught:
            session_reschedule(
                session=dosing, start=outside, by=coordinator_a, reason="  ", dry_run=dry_run
            )
        assert set(caught.value.errors) == {"reason"}
        assert "Mon 12 Apr 2027" in caught.value.errors["reason"][0]  # the window's last day
    assert db_state() == before


def test_outside_the_window_with_a_reason_records_a_deviation(site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing, outside = _outside(course)
    result = session_reschedule(
        session=dosing, start=outside, by=coordinator_a, reason="participant in hospital"
    )
    assert result.applied is True
    deviation = Deviation.objects.get(session=dosing)
    assert result.deviations == [deviation]
    assert deviation.kind == Deviation.Kind.OUTSIDE_WINDOW
    assert deviation.reason == "participant in hospital"
    assert deviation.created_by == coordinator_a
    assert "window Thu 25 Mar 2027 to Mon 12 Apr 2027" in deviation.detail
    dosing.refresh_from_db()
    assert dosing.start == outside
    assert sessions(course)["integration-1a"].start == outside + timedelta(days=1)
    # only the moved session's own deviation: its dependents are inside their (new) windows
    assert Deviation.objects.count() == 1


def test_a_dry_run_outside_the_window_shows_the_deviation_and_stores_none(
    site_a, coordinator_a
) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing, outside = _outside(course)
    before = db_state()

    preview = session_reschedule(
        session=dosing,
        start=outside,
        by=coordinator_a,
        reason=" participant in hospital ",
        dry_run=True,
    )

    assert db_state() == before  # no Deviation row, no history, nothing moved
    assert preview.applied is False
    [unsaved] = preview.deviations
    assert unsaved._state.adding  # never saved: no id, no time recorded yet
    fields: Any = unsaved  # (the stubs type both as always set)
    assert (fields.pk, fields.created_at) == (None, None)
    assert (unsaved.session_id, unsaved.kind, unsaved.reason, unsaved.created_by) == (
        dosing.pk,
        Deviation.Kind.OUTSIDE_WINDOW,
        "participant in hospital",
        coordinator_a,
    )

    applied = session_reschedule(
        session=dosing, start=outside, by=coordinator_a, reason=" participant in hospital "
    )

    [stored] = applied.deviations
    assert stored == Deviation.objects.get()
    assert (stored.session_id, stored.kind, stored.reason, stored.created_by) == (
        unsaved.session_id,
        unsaved.kind,
        unsaved.reason,
        unsaved.created_by,
    )
    assert [(m.session.key, m.new_start) for m in applied.moved] == [
        (m.session.key, m.new_start) for m in preview.moved
    ]


# --- conflicts -----------------------------------------------------------------------------


def test_moving_onto_the_dyads_other_course_is_a_conflict(site_a, coordinator_a) -> None:
    dyad = Dyad.objects.filter(site=site_a).order_by("name").first()
    first = sessions(enrol(site_a, "P-001", coordinator_a, date(2027, 3, 1), dyad=dyad))
    second = sessions(enrol(site_a, "P-002", coordinator_a, date(2027, 3, 15), dyad=dyad))
    # P-002's dosing-1 holds the dyad on Thu 2027-04-08 09:00-17:00
    taken = second["dosing-1"]
    assert local(taken.start) == datetime(2027, 4, 8, 9, tzinfo=NEW_YORK)
    moving = first["integration-1c"]  # nothing hangs on it
    target = datetime(2027, 4, 8, 13, tzinfo=NEW_YORK)
    assert moving.window_start <= target.date() <= moving.window_end
    before = db_state()
    with pytest.raises(BookingConflict, match="dyad"):
        session_reschedule(session=moving, start=target, by=coordinator_a)
    assert db_state() == before


def test_moving_onto_a_taken_dosing_room_is_a_conflict(db, coordinator_a) -> None:
    site = make_site("c", dosing_rooms=1, dyads=2)
    first_dyad, second_dyad = Dyad.objects.filter(site=site).order_by("name")
    first = sessions(enrol(site, "P-001", coordinator_a, date(2027, 3, 1), dyad=first_dyad))
    second = sessions(enrol(site, "P-002", coordinator_a, date(2027, 3, 1), dyad=second_dyad))
    # one dosing room: P-002's dosing-1 waits for Monday 03-29 (on Thu the room is held by
    # P-001's dosing-1 until 09:00, then by its integration-1a until 10:30; Friday's next
    # morning is a Saturday)
    assert local(second["dosing-1"].start) == datetime(2027, 3, 29, 9, tzinfo=NEW_YORK)
    before = db_state()
    with pytest.raises(BookingConflict, match="no dosing room free"):
        session_reschedule(
            session=first["dosing-1"], start=second["dosing-1"].start, by=coordinator_a
        )
    assert db_state() == before


# --- what cannot move ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["completed", "cancelled", "missed"])
def test_a_closed_session_cannot_move(site_a, coordinator_a, status) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    prep = ScheduledSession.objects.get(course=course, key="prep-3")
    with once_over(prep):
        session_set_status(session=prep, status=status, by=coordinator_a, reason="for the test")
    before = db_state()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(
            session=prep, start=prep.start + timedelta(days=1), by=coordinator_a, reason="x"
        )
    assert set(caught.value.errors) == {"start"}
    assert status in caught.value.errors["start"][0]
    assert db_state() == before


def test_a_naive_datetime_is_refused(site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    before = db_state()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=dosing, start=datetime(2027, 3, 31, 9), by=coordinator_a)
    assert set(caught.value.errors) == {"start"}
    assert "UTC offset" in caught.value.errors["start"][0]
    assert db_state() == before


def test_a_move_whose_next_morning_is_closed_is_refused(site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    friday = datetime(2027, 4, 2, 9, tzinfo=NEW_YORK)  # integration-1a would be a Saturday
    before = db_state()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=dosing, start=friday, by=coordinator_a)
    assert set(caught.value.errors) == {"start"}
    assert "integration-1a" in caught.value.errors["start"][0]
    assert db_state() == before


# --- found while testing -------------------------------------------------------------------


def test_a_move_onto_the_participants_own_session_is_refused(site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    stored = sessions(course)
    endpoint, closing = stored["endpoint"], stored["closing"]
    assert closing.window_start == local(endpoint.start).date()  # inside closing's window
    # endpoint needs a remote assessor and no room; closing the dyad and a therapy room: no
    # resource is shared, only the participant's time
    before = db_state()
    for dry_run in (True, False):
        with pytest.raises(SchedulingError) as caught:
            session_reschedule(
                session=closing, start=endpoint.start, by=coordinator_a, dry_run=dry_run
            )
        assert set(caught.value.errors) == {"start"}
        message = caught.value.errors["start"][0]
        at = local(endpoint.start)
        when = f"{at:%a} {at.day} {at:%b %Y %H:%M %Z}"
        assert message.startswith(
            f"closing cannot move to {when}: closing at {when} would overlap the participant's "
            "endpoint. Nearest times that work: "
        )
    assert db_state() == before
    # a partial overlap is refused too
    with pytest.raises(SchedulingError, match="would overlap the participant's endpoint"):
        session_reschedule(
            session=closing, start=endpoint.start + timedelta(minutes=45), by=coordinator_a
        )
    assert db_state() == before
    # back to back is fine (half-open ranges)
    session_reschedule(session=closing, start=endpoint.end, by=coordinator_a)
    closing.refresh_from_db()
    assert closing.start == endpoint.end


def test_a_cancelled_session_does_not_take_the_participants_time(site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    stored = sessions(course)
    endpoint, closing = stored["endpoint"], stored["closing"]
    session_set_status(session=endpoint, status="cancelled", by=coordinator_a, reason="unwell")
    session_reschedule(session=closing, start=endpoint.start, by=coordinator_a)
    closing.refresh_from_db()
    assert (closing.start, closing.end) == (endpoint.start, endpoint.end)


def _move_the_next_morning(site: Site, by: Any, hour: int) -> dict[str, Any]:
    """Enrol, move integration-1a from 09:00 to ``hour`` the same day; what the bookings were
    and are."""
    course = enrol(site, "P-001", by)
    stored = sessions(course)
    dosing, morning = stored["dosing-1"], stored["integration-1a"]
    assert local(dosing.start) == datetime(2027, 3, 29, 9, tzinfo=NEW_YORK)
    assert local(morning.start) == datetime(2027, 3, 30, 9, tzinfo=NEW_YORK)
    [old_hold] = RoomBooking.objects.filter(session=dosing, active=True)
    [old_own] = RoomBooking.objects.filter(session=morning, active=True)
    assert (old_hold.begin, old_hold.until) == (dosing.start, morning.start)
    assert (old_own.begin, old_own.until) == (morning.start, morning.end)
    target = datetime(2027, 3, 30, hour, tzinfo=NEW_YORK)
    before = db_state()
    preview = session_reschedule(session=morning, start=target, by=by, dry_run=True)
    assert db_state() == before
    result = session_reschedule(session=morning, start=target, by=by)
    assert [m.session.key for m in preview.moved] == [m.session.key for m in result.moved]
    assert [m.session.key for m in result.moved] == ["integration-1a"]
    assert result.deviations == []
    after = sessions(course)
    return {
        "stored": stored,
        "after": after,
        "old_hold": old_hold,
        "old_own": old_own,
        "room": dosing.room_id,
        "target": target,
    }


def _assert_the_room_hands_over(moved: dict[str, Any], begin: datetime, end: datetime) -> None:
    stored, after, room = moved["stored"], moved["after"], moved["room"]
    dosing, morning = after["dosing-1"], after["integration-1a"]
    # the dosing session stays where it was
    assert (dosing.start, dosing.end, dosing.sequence, dosing.room_id) == (
        stored["dosing-1"].start,
        stored["dosing-1"].end,
        0,
        room,
    )
    assert (local(morning.start), local(morning.end)) == (begin, end)
    assert (morning.sequence, morning.room_id) == (1, room)
    # dosing-1's hold now ends exactly where integration-1a starts: the same booking, with
    # its end moved
    [hold] = RoomBooking.objects.filter(session=dosing, active=True)
    assert hold.pk == moved["old_hold"].pk
    assert (hold.room_id, hold.begin, hold.until) == (room, dosing.start, morning.start)
    assert not RoomBooking.objects.filter(session=dosing, active=False).exists()
    # integration-1a has a new booking of its own; the old one is kept, inactive
    [own] = RoomBooking.objects.filter(session=morning, active=True)
    assert (own.room_id, own.begin, own.until) == (room, morning.start, morning.end)
    old_own = RoomBooking.objects.get(pk=moved["old_own"].pk)
    assert (old_own.active, old_own.begin, old_own.until) == (
        False,
        stored["integration-1a"].start,
        stored["integration-1a"].end,
    )
    staff = StaffBooking.objects.filter(session=morning, active=True)
    assert {(b.begin, b.until) for b in staff} == {(morning.start, morning.end)}
    assert staff.count() == 2
    # nobody else holds the room in between, and no two active bookings overlap
    assert list(
        RoomBooking.objects.filter(
            room_id=room, active=True, begin__lt=morning.end, until__gt=dosing.start
        )
        .order_by("begin")
        .values_list("session__key", "begin", "until")
    ) == [("dosing-1", dosing.start, morning.start), ("integration-1a", morning.start, morning.end)]
    assert overlapping_active_bookings() == []


def test_moving_the_next_morning_session_keeps_its_room_held(site_a, coordinator_a) -> None:
    # later the same day: 09:00 to 11:00, so dosing-1 holds the room until 11:00
    moved = _move_the_next_morning(site_a, coordinator_a, 11)
    tuesday = moved["target"].date()
    _assert_the_room_hands_over(
        moved,
        datetime.combine(tuesday, time(11), NEW_YORK),
        datetime.combine(tuesday, time(12, 30), NEW_YORK),
    )


def test_moving_the_next_morning_session_earlier_shortens_the_dosing_hold(
    site_a, coordinator_a
) -> None:
    moved = _move_the_next_morning(site_a, coordinator_a, 8)
    tuesday = moved["target"].date()
    _assert_the_room_hands_over(
        moved,
        datetime.combine(tuesday, time(8), NEW_YORK),
        datetime.combine(tuesday, time(9, 30), NEW_YORK),
    )


def _the_dosing_room_taken_at(site: Site, by: Any, begin: datetime, until: datetime) -> Course:
    """P-001 enrolled; another course's booking of P-001's dosing room at [begin, until)."""
    course = enrol(site, "P-001", by)
    other = enrol(site, "P-002", by)
    room = sessions(course)["dosing-1"].room_id
    assert room is not None
    RoomBooking.objects.create(
        session=sessions(other)["prep-1"], room_id=room, begin=begin, until=until
    )
    return course


def test_a_dosing_hold_cannot_be_extended_over_someone_elses_booking(site_a, coordinator_a) -> None:
    # the room is taken on Tue 10:45-11:00: integration-1a itself fits at 11:00, but dosing-1
    # would have to hold the room until then
    tuesday = date(2027, 3, 30)
    course = _the_dosing_room_taken_at(
        site_a,
        coordinator_a,
        datetime.combine(tuesday, time(10, 45), NEW_YORK),
        datetime.combine(tuesday, time(11), NEW_YORK),
    )
    morning = sessions(course)["integration-1a"]
    before = db_state()
    # the planner sees the other booking in the overnight stretch the hold would cover
    with pytest.raises(BookingConflict, match=r"integration-1a cannot be booked .* is taken then"):
        session_reschedule(
            session=morning, start=datetime.combine(tuesday, time(11), NEW_YORK), by=coordinator_a
        )
    assert db_state() == before


def test_a_dry_run_refuses_a_dosing_hold_that_cannot_be_extended(site_a, coordinator_a) -> None:
    tuesday = date(2027, 3, 30)
    course = _the_dosing_room_taken_at(
        site_a,
        coordinator_a,
        datetime.combine(tuesday, time(10, 45), NEW_YORK),
        datetime.combine(tuesday, time(11), NEW_YORK),
    )
    morning = sessions(course)["integration-1a"]
    before = db_state()
    with pytest.raises(BookingConflict):
        session_reschedule(
            session=morning,
            start=datetime.combine(tuesday, time(11), NEW_YORK),
            by=coordinator_a,
            dry_run=True,
        )
    assert db_state() == before


def test_a_move_into_the_past_is_refused_and_changes_nothing(site_a, coordinator_a) -> None:
    """Moving a session to a time that has passed would leave it (and the sessions re-planned
    from it) planned in the past, at once overdue: refused with what to do instead."""
    course = enrol(site_a, "P-001", coordinator_a)
    prep_2 = sessions(course)["prep-2"]  # Thu 11 Mar 2027
    with time_machine.travel(datetime(2027, 3, 10, 12, tzinfo=NEW_YORK), tick=False):
        before = db_state()
        for dry_run in (True, False):
            with pytest.raises(SchedulingError) as refused:
                session_reschedule(
                    session=prep_2,
                    start=datetime(2027, 3, 9, 10, tzinfo=NEW_YORK),  # yesterday
                    by=coordinator_a,
                    reason="entered late",
                    dry_run=dry_run,
                )
            [said] = refused.value.errors["start"]
            assert "Tue 9 Mar 2027 10:00 EST has passed" in said
            assert "choose a time from now on" in said
            assert db_state() == before
        # a time still to come is a move as before
        ahead = session_reschedule(
            session=prep_2,
            start=datetime(2027, 3, 12, 10, tzinfo=NEW_YORK),
            by=coordinator_a,
            dry_run=True,
        )
        assert ahead.moved[0].session.key == "prep-2"
        # rebooking a cancelled session goes through the same rule
        session_set_status(session=prep_2, status="cancelled", by=coordinator_a, reason="ill")
        cancelled = db_state()
        with pytest.raises(SchedulingError) as refused:
            session_rebook(
                session=prep_2,
                start=datetime(2027, 3, 9, 10, tzinfo=NEW_YORK),
                by=coordinator_a,
                reason="well again",
            )
        assert "has passed" in refused.value.errors["start"][0]
        assert db_state() == cancelled
