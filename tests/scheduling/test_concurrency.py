"""Concurrent writes, each thread with its own database connection: enrolments that race for
the same dyad, rooms and times, and reschedules that race for the same slot. The database's
exclusion constraints have the last word: no overlap, and every enrolment is all or nothing.

Every racing thread reads its snapshot of the bookings before any of them writes (a barrier
behind the real ``selectors.resources_snapshot``), so the application's own planning check
cannot see the clash: only the exclusion constraints of migration 0002 (``*_no_overlap``) can
stop it, and the tests assert that they did. Without them, every thread would succeed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connections

from scheduling import selectors
from scheduling.models import (
    Course,
    Dyad,
    Participant,
    RoomBooking,
    ScheduledSession,
    StaffBooking,
)
from scheduling.services import (
    BookingConflict,
    participant_enrol,
    session_reschedule,
)
from tests.scheduling.test_booking import overlapping_active_bookings, overlapping_in_python

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = ZoneInfo("America/New_York")
THREADS = 6
T = TypeVar("T")


def run_together(calls: list[Callable[[], T]]) -> list[T | BaseException]:
    """Run ``calls`` in threads released together by a barrier; each thread has its own
    connection, closed when it ends. Returns each call's result or exception, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[T | BaseException] = [RuntimeError("did not run")] * len(calls)

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[n] = calls[n]()
        except BaseException as exc:  # recorded and asserted on by the test
            outcomes[n] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def read_snapshots_together(monkeypatch: pytest.MonkeyPatch, parties: int) -> None:
    """Instrumentation, not a mock: the real ``resources_snapshot`` runs, then each caller
    waits until ``parties`` callers have read theirs. Each thread then plans on bookings
    without the others' and would book the same room, people and times."""
    barrier = threading.Barrier(parties)
    real = selectors.resources_snapshot

    def read_then_wait(*args: Any, **kwargs: Any) -> Any:
        busy = real(*args, **kwargs)
        barrier.wait(timeout=20)
        return busy

    monkeypatch.setattr(selectors, "resources_snapshot", read_then_wait)


def stopped_by_the_constraint(outcome: object) -> bool:
    """The clash was refused by an exclusion constraint, not by the planner's own check."""
    cause = getattr(outcome, "__cause__", None)
    return (
        isinstance(outcome, BookingConflict)
        and isinstance(cause, IntegrityError)
        and "no_overlap" in str(cause)
    )


def test_concurrent_enrolments_with_one_dyad_never_double_book(
    site_a, coordinator_a, monkeypatch
) -> None:
    dyad = Dyad.objects.filter(site=site_a).order_by("name").first()
    assert dyad is not None
    codes = [f"P-{n:03d}" for n in range(1, THREADS + 1)]

    def enrol(code: str) -> Callable[[], Course]:
        return lambda: participant_enrol(
            site=site_a,
            code=code,
            protocol_slug="mapp-ptsd",
            start_date=date(2027, 3, 1),
            by=coordinator_a,
            dyad=dyad,
        )

    read_snapshots_together(monkeypatch, THREADS)
    outcomes = run_together([enrol(code) for code in codes])

    succeeded = [code for code, o in zip(codes, outcomes, strict=True) if isinstance(o, Course)]
    # every thread planned the same course on the same free calendar: one may book it
    assert len(succeeded) == 1, outcomes
    losers = [o for o in outcomes if not isinstance(o, Course)]
    assert all(stopped_by_the_constraint(o) for o in losers), [repr(o) for o in losers]
    # all or nothing per enrolment
    for code, outcome in zip(codes, outcomes, strict=True):
        participant = Participant.objects.filter(site=site_a, code=code).first()
        if code not in succeeded:
            assert participant is None, (code, outcome)
            continue
        assert participant is not None
        course = Course.objects.get(participant=participant)
        assert course.dyad == dyad
        stored = list(ScheduledSession.objects.filter(course=course))
        assert len(stored) == 36
        staffed = set(
            StaffBooking.objects.filter(session__course=course, active=True).values_list(
                "session_id", flat=True
            )
        )
        assert staffed == {s.pk for s in stored}  # every session holds its staff
        rooms = {
            b.session_id: b for b in RoomBooking.objects.filter(session__course=course, active=True)
        }
        # every session with a room books it, the three next-morning sessions included
        assert set(rooms) == {s.pk for s in stored if s.room_id}
        assert len(rooms) == 16
        by_key = {s.key: s for s in stored}
        for n in (1, 2, 3):
            dosing, morning = by_key[f"dosing-{n}"], by_key[f"integration-{n}a"]
            hold, own = rooms[dosing.pk], rooms[morning.pk]
            assert (hold.room_id, hold.begin, hold.until) == (
                dosing.room_id,
                dosing.start,
                morning.start,
            )
            assert (own.room_id, own.begin, own.until) == (
                dosing.room_id,
                morning.start,
                morning.end,
            )
    # nothing left behind by the failed ones
    assert Course.objects.count() == len(succeeded)
    assert ScheduledSession.objects.count() == 36 * len(succeeded)
    assert not StaffBooking.objects.exclude(session__course__participant__code__in=succeeded)
    assert overlapping_active_bookings() == []
    assert overlapping_in_python() == []


def test_concurrent_reschedules_to_one_slot_at_most_one_wins(
    site_a, coordinator_a, monkeypatch
) -> None:
    dyad = Dyad.objects.filter(site=site_a).order_by("name").first()
    assert dyad is not None
    courses = [
        participant_enrol(
            site=site_a,
            code=code,
            protocol_slug="mapp-ptsd",
            start_date=start,
            by=coordinator_a,
            dyad=dyad,
        )
        for code, start in (("P-001", date(2027, 3, 1)), ("P-002", date(2027, 3, 15)))
    ]
    closings = [ScheduledSession.objects.get(course=c, key="closing") for c in courses]
    # a day inside both closing windows, at 15:00, when the dyad is free
    day = max(c.window_start for c in closings)
    assert day <= min(c.window_end for c in closings)
    assert day.weekday() < 5
    slot = datetime.combine(day, time(15), NEW_YORK)
    assert not StaffBooking.objects.filter(
        user__in=dyad.therapist_ids, active=True, begin__lt=slot, until__gt=slot
    ).exists()
    before = {c.pk: (c.start, c.sequence) for c in closings}

    def move(session: ScheduledSession) -> Callable[[], Any]:
        return lambda: session_reschedule(session=session, start=slot, by=coordinator_a)

    read_snapshots_together(monkeypatch, len(closings))
    outcomes = run_together([move(c) for c in closings])

    winners = [n for n, o in enumerate(outcomes) if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    assert all(stopped_by_the_constraint(o) for o in losers), [repr(o) for o in losers]
    for n, closing in enumerate(closings):
        closing.refresh_from_db()
        if n in winners:
            assert closing.start == slot and closing.sequence == 1
        else:
            assert (closing.start, closing.sequence) == before[closing.pk]
            held = StaffBooking.objects.filter(session=closing, active=True)
            assert {b.begin for b in held} == {before[closing.pk][0]}
    at_slot = StaffBooking.objects.filter(user__in=dyad.therapist_ids, active=True, begin=slot)
    assert at_slot.count() == 2  # the dyad, once
    assert overlapping_active_bookings() == []
