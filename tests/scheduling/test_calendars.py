"""Which sessions a calendar shows and how each reads (scheduling/calendars.py), through the
pure builder (scheduling/ical.py), read back with a second, independent parser (vobject)."""

from __future__ import annotations

from typing import Any

import pytest
import vobject
from django.core.exceptions import ObjectDoesNotExist

from scheduling.calendars import Scope, calendar_sessions, session_event
from scheduling.ical import calendar
from tests.conftest import enrol_mapp


@pytest.mark.django_db
def test_a_site_calendar_has_every_session_once_at_its_local_wall_time(
    site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "RIV-0042", coordinator_a)
    sessions = list(calendar_sessions(coordinator_a, Scope.SITE, site_a.pk))
    assert {s.pk for s in sessions} == set(course.sessions.values_list("pk", flat=True))
    data = calendar([session_event(s) for s in sessions], name="Site")
    parsed = vobject.readOne(data.decode())
    events = parsed.contents["vevent"]
    assert len(events) == len(sessions)
    for event, session in zip(events, sessions, strict=True):
        assert event.uid.value == str(session.uid)
        local = session.start.astimezone(event.dtstart.value.tzinfo)
        assert event.dtstart.value.replace(tzinfo=None) == local.replace(tzinfo=None)
        assert "RIV-0042" in event.summary.value  # staff read the study code, no name
        for word in ("mdma", "ptsd", "dosing", "dose", "session 1"):
            assert word not in event.summary.value.lower()  # never the protocol's own title
    for word in ("mdma", "ptsd", "midomafetamine", "trauma"):
        assert word not in data.decode().lower()


@pytest.mark.django_db
def test_another_sites_calendar_is_a_404(site_a: Any, site_b: Any, coordinator_b: Any) -> None:
    with pytest.raises(ObjectDoesNotExist):  # the pages' and the API's 404
        calendar_sessions(coordinator_b, Scope.SITE, site_a.pk)


@pytest.mark.django_db
def test_a_participants_own_calendar_names_neither_code_nor_room(
    site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "RIV-0042", coordinator_a)
    sessions = calendar_sessions(coordinator_a, Scope.PARTICIPANT, course.participant.pk)
    data = calendar([session_event(s, for_participant=True) for s in sessions], name="Mine")
    text = data.decode()
    assert "RIV-0042" not in text
    for room in site_a.rooms.all():
        assert room.name not in text
