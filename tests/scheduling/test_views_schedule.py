"""The printable participant schedule: upcoming sessions with date, time, place and how to
prepare, in the site's zone; the study code only, no protocol, drug or diagnosis named."""

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from django.test import Client

from scheduling.models import ScheduledSession
from scheduling.services import session_set_status
from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db


class _Readable(HTMLParser):
    """The text of a page and its attribute values, without the CSRF token's value."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("name") == "csrfmiddlewaretoken":
            return
        self.parts.extend(value for _, value in attrs if value)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def page_text(html: str) -> str:
    parser = _Readable()
    parser.feed(html)
    return "\n".join(parser.parts)


def test_the_schedule_lists_what_the_participant_needs(client: Client, site_a, coordinator_a):
    site_a.address = "1 Clinic Road"
    site_a.phone = "+1 555 0100"
    site_a.save()
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    client.force_login(coordinator_a)
    participant_page = client.get(f"/participants/{course.participant_id}/").content.decode()
    assert f"/participants/{course.participant_id}/schedule/" in participant_page
    page = client.get(f"/participants/{course.participant_id}/schedule/").content.decode()
    assert "P-001" in page and "1 Clinic Road" in page and "+1 555 0100" in page
    assert "America/New_York" in page
    assert "then overnight until the next morning" in page
    assert "By phone: we call you" in page and "By video" in page
    assert "Arrive 15 minutes early" in page  # the dosing session's preparation notes
    assert page.count("<tr>") == course.sessions.count() + 1
    # what a reader could see or a tool could read, minus the CSRF token (random letters that
    # spell "mg" now and then)
    readable = page_text(page).lower()
    for word in ("mdma", "ptsd", "midomafetamine", "post-traumatic"):
        assert word not in readable, word
    assert not re.search(r"\d\s*mg\b|\bmg\b", readable)  # a dose, as "80 mg" or "80mg"
    assert course.dyad is not None
    assert course.dyad.name not in page


def test_past_and_cancelled_sessions_are_left_out(client: Client, site_a, coordinator_a):
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep1 = ScheduledSession.objects.get(course=course, key="prep-1")
    assessment = ScheduledSession.objects.get(course=course, key="baseline")
    session_set_status(session=assessment, status="cancelled", reason="redo", by=coordinator_a)
    with time_machine.travel(prep1.end + timedelta(hours=1), tick=False):
        client.force_login(coordinator_a)
        page = client.get(f"/participants/{course.participant_id}/schedule/").content.decode()
    assert page.count("<tr>") == course.sessions.count() - 2 + 1
    assert prep1.title not in page.split("<tbody>")[1]


def test_other_sites_cannot_print_it(client: Client, site_a, coordinator_a, coordinator_b):
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    client.force_login(coordinator_b)
    assert client.get(f"/participants/{course.participant_id}/schedule/").status_code == 404
    assert client.get("/participants/999999999/schedule/").status_code == 404
