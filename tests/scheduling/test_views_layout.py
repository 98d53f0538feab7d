"""What the pages show for finding one's way: closed days and holidays marked in the calendar
with their reason, Today's rows linking to their session and (where the policy allows) their
participant, the demo sign-in hint on a development server only, and no menu link a role
cannot follow."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from scheduling.models import ScheduledSession, SiteClosure, StaffBooking
from tests.conftest import enrol_mapp, make_staff

NEW_YORK = ZoneInfo("America/New_York")
pytestmark = pytest.mark.django_db


def closed_headers(page: str) -> dict[str, str]:
    """Day heading text -> its title, for the columns marked closed."""
    found = re.findall(r'<th scope="col" class="[^"]*closed"[^>]*title="([^"]+)">(.*?)<', page)
    return {day.replace("<br>", " "): title for title, day in found}


def test_the_month_marks_closed_days_holidays_and_closures_with_their_reason(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    site_a.country = "US"
    site_a.save()
    SiteClosure.objects.create(site=site_a, date=date(2027, 7, 14), reason="Fire drill")
    client.force_login(coordinator_a)
    page = client.get("/calendar/?site=a&view=month&by=room&date=2027-07-01").content.decode()
    titles = re.findall(r'<th scope="col" class="[^"]*closed"[^>]*title="([^"]+)"', page)
    assert "Closed: Independence Day (observed) (public holiday)" in titles  # Mon 5 Jul 2027
    assert "Closed: Fire drill" in titles
    assert titles.count("Closed: not open on Saturdays") == 5
    assert len(titles) == 4 + 5 + 1 + 1  # Sundays, Saturdays, the holiday, the closure
    # each room's cells on those days are shaded too, with the reason
    rooms = 5
    assert page.count('<td class="closed" title="Closed: Fire drill">') == rooms
    # the screen reader hears why
    assert '<span class="visually-hidden"> (Closed: Fire drill)</span>' in page


def test_the_week_marks_them_too(client: Client, site_a: Any, coordinator_a: Any) -> None:
    client.force_login(coordinator_a)
    page = client.get("/calendar/?site=a&view=week&by=room&date=2027-03-03").content.decode()
    titles = re.findall(r'<th scope="col" class="[^"]*closed"[^>]*title="([^"]+)"', page)
    assert titles == ["Closed: not open on Saturdays", "Closed: not open on Sundays"]


@pytest.fixture
def board(site_a: Any, coordinator_a: Any) -> tuple[ScheduledSession, datetime]:
    """A course and the moment (07:00 on the day of its first assessment) Today is seen at."""
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    assessment = (
        ScheduledSession.objects.filter(course=course, kind="assessment").order_by("start").first()
    )
    assert assessment is not None
    return assessment, assessment.start.astimezone(NEW_YORK).replace(hour=7)


def row_of(page: str, code: str) -> str:
    rows = [row for row in re.findall(r"<tr>(.*?)</tr>", page, re.S) if code in row]
    assert rows, page
    return str(rows[0])


def test_todays_rows_link_to_their_session_and_participant(
    client: Client, coordinator_a: Any, board: tuple[ScheduledSession, datetime]
) -> None:
    assessment, moment = board
    with time_machine.travel(moment, tick=False):
        client.force_login(coordinator_a)
        page = client.get("/today/").content.decode()
    row = row_of(page, "P-001")
    participant = assessment.course.participant
    assert f'<a href="/participants/{participant.pk}/"><strong>P-001</strong></a>' in row
    assert f'<a href="/sessions/{assessment.pk}/">{assessment.title}</a>' in row
    assert '<td class="code">' in row  # the code does not wrap (static/css/app.css)


def test_a_blinded_assessor_gets_the_session_link_but_no_participant_link(
    client: Client, board: tuple[ScheduledSession, datetime]
) -> None:
    assessment, moment = board
    assessor = StaffBooking.objects.get(session=assessment, active=True).user
    with time_machine.travel(moment, tick=False):
        client.force_login(assessor)
        page = client.get("/today/").content.decode()
        participant_page = client.get(f"/participants/{assessment.course.participant_id}/")
        session_page = client.get(f"/sessions/{assessment.pk}/")
    row = row_of(page, "P-001")
    assert f'<a href="/sessions/{assessment.pk}/">' in row
    assert "/participants/" not in row
    assert participant_page.status_code == 404  # the link would lead nowhere
    assert session_page.status_code == 200


def test_a_blinded_assessor_is_not_offered_the_protocol_library(
    client: Client, site_a: Any
) -> None:
    assessor = make_staff("assessor-x", "assessor", site_a)
    client.force_login(assessor)
    page = client.get("/today/").content.decode()
    assert page.count("/protocols/") == 0
    coordinator = make_staff("coordinator-x", "coordinator", site_a)
    client.force_login(coordinator)
    assert 'href="/protocols/"' in client.get("/today/").content.decode()


@pytest.mark.parametrize("path", ["/", "/login/"])
def test_the_demo_hint_is_shown_on_a_development_server_only(
    client: Client, settings: Any, path: str
) -> None:
    settings.DEBUG = True
    shown = client.get(path).content.decode()
    assert "Demo:" in shown
    for user in ("demo-coordinator", "demo-t1a", "demo-assessor1", "demo-night"):
        assert f"<code>{user}</code>" in shown
    assert "manage.py changepassword" in shown
    settings.DEBUG = False
    hidden = client.get(path).content.decode()
    assert "Demo:" not in hidden and "demo-coordinator" not in hidden


def test_a_day_without_sessions_has_no_rows(client: Client, coordinator_a: Any) -> None:
    with time_machine.travel(datetime(2027, 3, 6, 12, tzinfo=NEW_YORK), tick=False):
        client.force_login(coordinator_a)
        page = client.get("/today/").content.decode()
    assert "No sessions." in page
    assert "/sessions/" not in page.split('id="attention"')[0]
