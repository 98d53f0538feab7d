from datetime import date

import pytest

from scheduling.models import RoomBooking, ScheduledSession, StaffBooking
from scheduling.services import participant_enrol

pytestmark = pytest.mark.django_db


def test_enrolment_books_every_session(site_a, coordinator_a) -> None:
    course = participant_enrol(
        site=site_a,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )
    sessions = list(ScheduledSession.objects.filter(course=course))
    assert len(sessions) == 36
    dosing = [s for s in sessions if s.kind == "dosing"]
    assert all(s.room and s.room.kind == "dosing" for s in dosing)
    hold = RoomBooking.objects.get(session=dosing[0])
    morning = ScheduledSession.objects.get(course=course, key="integration-1a")
    assert hold.until == morning.end
    assert morning.room_id == dosing[0].room_id
    assert course.dyad is not None
    dyad = set(course.dyad.therapist_ids)
    assert (
        set(StaffBooking.objects.filter(session=dosing[0]).values_list("user_id", flat=True))
        == dyad
    )
