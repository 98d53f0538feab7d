"""Participant list and participant page: search, filters, timeline, scoping."""

from datetime import date, timedelta

import pytest
import time_machine
from django.test import Client

from scheduling.models import Participant, ScheduledSession
from scheduling.services import session_set_status
from tests.conftest import enrol_mapp as enrol

pytestmark = pytest.mark.django_db


def test_the_list_searches_and_filters_and_shows_the_next_session(
    client: Client, site_a, coordinator_a
) -> None:
    enrol(site_a, "P-001", coordinator_a)
    enrol(site_a, "P-002", coordinator_a, start=date(2027, 3, 15))
    Participant.objects.filter(code="P-002").update(status="withdrawn")
    client.force_login(coordinator_a)
    with time_machine.travel(date(2027, 2, 1), tick=False):
        client.force_login(coordinator_a)
        everyone = client.get("/participants/").content.decode()
        client.post("/participants/", {"q": "001"})
        found = client.get("/participants/").content.decode()
        client.post("/participants/", {"clear": "1"})
        withdrawn = client.get("/participants/", {"status": "withdrawn"}).content.decode()
    assert "P-001" in everyone and "P-002" in everyone
    assert "P-001" in found and "P-002" not in found
    assert "P-002" in withdrawn and "P-001" not in withdrawn
    assert "Mon 1 Mar 2027 10:00 EST" in everyone  # P-001's prep-1, in the site's zone, shown


def test_the_study_code_search_is_posted_and_never_in_an_address(
    client: Client, site_a, coordinator_a
) -> None:
    """Post/Redirect/Get: the search lives in the session, the other filters (no PHI) in the
    query string; without JavaScript."""
    enrol(site_a, "P-001", coordinator_a)
    enrol(site_a, "P-014", coordinator_a, start=date(2027, 3, 15))
    client.force_login(coordinator_a)
    posted = client.post("/participants/", {"q": " P-014 ", "status": "enrolled", "next": ""})
    assert posted.status_code == 302
    assert posted["Location"] == "/participants/?status=enrolled"
    assert "P-014" not in posted["Location"]

    found = client.get(posted["Location"]).content.decode()
    assert "P-014" in found and "P-001" not in found
    assert "Searching for “P-014”" in found
    assert 'form method="post"' in found and "csrfmiddlewaretoken" in found
    assert '<option value="enrolled" selected>' in found
    assert "q=" not in found  # no link carries the search (pager, filters)

    assert "P-001" not in client.get("/participants/").content.decode()  # kept while paging

    cleared = client.post("/participants/?status=enrolled", {"q": "P-014", "clear": "1"})
    assert cleared["Location"] == "/participants/"
    listing = client.get("/participants/").content.decode()
    assert "P-001" in listing and "P-014" in listing and "Searching for" not in listing
    # a study code in the query string (an old bookmark) is no search
    assert "P-001" in client.get("/participants/", {"q": "P-014"}).content.decode()


def test_the_search_is_per_session_and_needs_a_csrf_token(site_a, coordinator_a) -> None:
    enrol(site_a, "P-001", coordinator_a)
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(coordinator_a)
    assert checked.post("/participants/", {"q": "P-9"}).status_code == 403
    other = Client()
    other.force_login(coordinator_a)
    other.post("/participants/", {"q": "P-9"})
    assert "P-001" in checked.get("/participants/").content.decode()
    assert "No participants match" in other.get("/participants/").content.decode()


@pytest.mark.parametrize(
    "value", ["\x00", "' OR 1=1 --", "9" * 40, "ü\u202e", "<script>x</script>", "x" * 10_000]
)
def test_a_nasty_search_is_no_error(client: Client, site_a, coordinator_a, value) -> None:
    client.force_login(coordinator_a)
    posted = client.post("/participants/", {"q": value, "status": value, "next": value})
    if "\x00" in value:  # refused before the view reads it, saying why
        assert posted.status_code == 400 and "null character" in posted.content.decode()
        return
    assert posted.status_code == 302
    assert client.get(posted["Location"]).status_code == 200


def test_the_participant_page_has_the_timeline_and_every_session(
    client: Client, site_a, coordinator_a
) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    first = ScheduledSession.objects.get(course=course, key="prep-1")
    with time_machine.travel(first.end + timedelta(minutes=1), tick=False):
        session_set_status(session=first, status="missed", reason="ill", by=coordinator_a)
        client.force_login(coordinator_a)
        page = client.get(f"/participants/{course.participant_id}/").content.decode()
    assert "<svg" in page and "Course timeline of P-001" in page
    assert page.count('class="mark kind-dosing') == 3
    assert "today</text>" in page
    for s in ScheduledSession.objects.filter(course=course):
        assert s.title in page
    assert "session missed: ill" in page
    assert "investigational" in page


def test_another_sites_participant_is_a_404_and_absent_from_lists(
    client: Client, site_a, coordinator_a, coordinator_b
) -> None:
    course = enrol(site_a, "P-001", coordinator_a)
    client.force_login(coordinator_b)
    assert client.get(f"/participants/{course.participant_id}/").status_code == 404
    assert "P-001" not in client.get("/participants/").content.decode()
    assert client.get("/participants/99999999999999999999/").status_code == 404


def test_the_list_costs_the_same_queries_for_more_participants(
    client: Client, site_a, coordinator_a
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    enrol(site_a, "P-001", coordinator_a)
    client.force_login(coordinator_a)
    with CaptureQueriesContext(connection) as few:
        client.get("/participants/")
    for n in range(2, 5):
        enrol(site_a, f"P-00{n}", coordinator_a, start=date(2027, 3, 1) + timedelta(weeks=2 * n))
    with CaptureQueriesContext(connection) as many:
        page = client.get("/participants/").content.decode()
    assert "P-004" in page
    assert len(many) == len(few)


def test_long_lists_come_in_pages_that_keep_the_filters(client: Client, site_a, coordinator_a):
    Participant.objects.bulk_create(
        Participant(site=site_a, code=f"S-{n:03}", status="screening") for n in range(60)
    )
    client.force_login(coordinator_a)
    first = client.get("/participants/", {"status": "screening"}).content.decode()
    assert "60 participants, page 1 of 2" in first
    assert "S-049" in first and "S-050" not in first
    assert "?status=screening&amp;page=2" in first
    second = client.get("/participants/", {"status": "screening", "page": "2"}).content.decode()
    assert "S-050" in second and "S-049" not in second
    for bad in ("0", "-1", "abc", "99999999999999999999"):
        assert client.get("/participants/", {"page": bad}).status_code == 200


def test_a_therapist_sees_only_the_participants_they_treat(client: Client, site_a, coordinator_a):
    mine = enrol(site_a, "P-001", coordinator_a)
    other = enrol(site_a, "P-002", coordinator_a)
    assert mine.dyad is not None and other.dyad is not None and mine.dyad != other.dyad
    client.force_login(mine.dyad.therapist_b)
    listing = client.get("/participants/").content.decode()
    assert "P-001" in listing and "P-002" not in listing
    assert client.get(f"/participants/{mine.participant_id}/").status_code == 200
    for url in (
        f"/participants/{other.participant_id}/",
        f"/participants/{other.participant_id}/schedule/",
        f"/sessions/{other.sessions.get(key='prep-1').pk}/",
    ):
        assert client.get(url).status_code == 404, url


def test_filter_by_site_and_by_next_session(client: Client, site_a, site_b) -> None:
    from tests.conftest import make_staff

    both = make_staff("both", "coordinator", site_a, site_b)
    soon = enrol(site_a, "P-A1", both)
    later = enrol(site_b, "P-B1", both, start=date(2027, 6, 7))
    Participant.objects.create(site=site_a, code="P-A2", status="screening")
    client.force_login(both)
    first = min(s.start for s in soon.sessions.all())
    with time_machine.travel(first - timedelta(days=2), tick=False):
        client.force_login(both)
        by_site = client.get("/participants/", {"site": "b"}).content.decode()
        within_week = client.get("/participants/", {"next": "7"}).content.decode()
        nothing = client.get("/participants/", {"next": "none"}).content.decode()
    assert "P-B1" in by_site and "P-A1" not in by_site
    assert "P-A1" in within_week and "P-B1" not in within_week and "P-A2" not in within_week
    assert "P-A2" in nothing and "P-A1" not in nothing
    assert later.participant.code == "P-B1"
