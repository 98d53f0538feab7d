"""The site calendar page: week and month, by room and by therapist, overnight stays carried
into the next morning, moving between weeks and sites; scoped by site and role."""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from scheduling.models import ScheduledSession
from tests.conftest import enrol_mapp as enrol
from tests.conftest import make_staff

NEW_YORK = ZoneInfo("America/New_York")
pytestmark = pytest.mark.django_db


def week_page(client: Client, user, day: date, **extra: str) -> str:
    client.force_login(user)
    query = {"site": "a", "date": day.isoformat(), **extra}
    response = client.get("/calendar/", query)
    assert response.status_code == 200
    return response.content.decode()


def cell(page: str, row: str, column: int) -> str:
    """The ``column``-th day cell (0 = Monday) of the row headed ``row``."""
    tr = page.split(f'<th scope="row">{row}<br>')[1].split("</tr>")[0]
    return tr.split("<td>")[column + 1].split("</td>")[0]


def test_the_dosing_room_shows_the_overnight_stay_into_the_next_morning(
    client, site_a, coordinator_a
) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    dosing = ScheduledSession.objects.get(course=course, key="dosing-1")
    assert dosing.room is not None
    local = dosing.start.astimezone(NEW_YORK)
    page = week_page(client, coordinator_a, local.date())
    day = local.weekday()
    assert "P-001" in cell(page, dosing.room.name, day)
    assert "continues" in cell(page, dosing.room.name, day)
    assert "until" in cell(page, dosing.room.name, day + 1)
    assert "carried" in cell(page, dosing.room.name, day + 1)
    assert f"/sessions/{dosing.pk}/" in page
    assert "America/New_York" in page


def test_by_therapist_rows_are_people_and_their_sessions(client, site_a, coordinator_a) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    prep = ScheduledSession.objects.get(course=course, key="prep-1")
    local = prep.start.astimezone(NEW_YORK)
    assert course.dyad is not None
    therapist = course.dyad.therapist_a.get_username()
    page = week_page(client, coordinator_a, local.date(), by="therapist")
    assert "P-001" in cell(page, therapist, local.weekday())
    assert f"{local:%H:%M}" in cell(page, therapist, local.weekday())


def test_month_view_and_paging_between_weeks(client, site_a, coordinator_a) -> None:
    enrol(site_a, "P-001", coordinator_a)
    page = week_page(client, coordinator_a, date(2027, 3, 10), view="month")
    assert "March 2027" in page
    assert page.count('<th scope="col"') == 1 + 31
    assert "date=2027-02-01" in page and "date=2027-04-01" in page
    week = week_page(client, coordinator_a, date(2027, 3, 10))
    assert "week of 8 March 2027" in week
    assert "date=2027-03-01" in week and "date=2027-03-15" in week


def test_a_therapist_sees_only_their_own_sessions_and_row(client, site_a, coordinator_a) -> None:
    mine = enrol(site_a, "P-001", coordinator_a)
    assert mine.dyad is not None
    other = enrol(site_a, "P-002", coordinator_a)
    assert other.dyad is not None and other.dyad != mine.dyad
    therapist = mine.dyad.therapist_a
    start = min(s.start for s in mine.sessions.all())
    page = week_page(client, therapist, start.astimezone(NEW_YORK).date(), by="therapist")
    assert "P-001" in page and "P-002" not in page
    assert other.dyad.therapist_a.get_username() not in page
    by_room = week_page(client, therapist, start.astimezone(NEW_YORK).date())
    assert "P-002" not in by_room


def test_other_sites_are_404_and_bad_input_is_a_field_error(
    client, site_a, coordinator_a, site_b, coordinator_b
) -> None:
    enrol(site_a, "P-001", coordinator_a)
    client.force_login(coordinator_b)
    assert client.get("/calendar/", {"site": "a"}).status_code == 404
    assert "P-001" not in client.get("/calendar/", {"date": "2027-03-01"}).content.decode()
    client.force_login(coordinator_a)
    for query in (
        {"date": "2027-02-30"},
        {"date": "9999-12-31"},
        {"view": "year"},
        {"by": "<script>"},
    ):
        response = client.get("/calendar/", query)
        assert response.status_code == 200, query
        assert 'class="errorlist' in response.content.decode(), query
    assert client.get("/calendar/").status_code == 200
    client.logout()
    assert client.get("/calendar/").status_code == 302


def test_a_coordinator_of_two_sites_moves_between_them(client, site_a, site_b) -> None:
    both = make_staff("both", "coordinator", site_a, site_b)
    client.force_login(both)
    page = client.get("/calendar/", {"site": "b"}).content.decode()
    assert "Site b" in page and "Europe/London" in page
    assert '<option value="a"' in page


@pytest.mark.parametrize(("view", "by"), [("week", "therapist"), ("month", "room")])
def test_a_busy_calendar_costs_the_same_queries(client, site_a, coordinator_a, view, by) -> None:
    monday = date(2027, 3, 1)

    def count() -> tuple[int, str]:
        client.force_login(coordinator_a)
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/calendar/", {"date": "2027-03-22", "view": view, "by": by})
        assert response.status_code == 200
        return len(queries), response.content.decode()

    enrol(site_a, "P-001", coordinator_a, start=monday)
    few, _ = count()
    for n in range(4):
        enrol(site_a, f"P-10{n}", coordinator_a, start=monday + timedelta(days=n + 1))
    many, page = count()
    assert page.count("P-10") >= 4
    assert many == few <= 12
