"""The enrolment page: the planned course is previewed (with anything worth a look) before it
is confirmed; errors show in place and nothing is stored; only coordinators and admins enrol."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from scheduling.models import Course, Dyad, Participant, ScheduledSession, Unavailability
from tests.conftest import enrol_mapp, make_site, make_staff

pytestmark = pytest.mark.django_db


def fields(**extra: Any) -> dict[str, Any]:
    return {
        "site": "a",
        "code": "P-014",
        "protocol": "mapp-ptsd",
        "start_date": "2027-03-01",
        "dyad": "",
        "partner": "",
        "email": "",
        "phone": "",
        "preferred_channel": "none",
        **extra,
    }


def test_preview_shows_the_course_and_books_nothing(client: Client, site_a, coordinator_a):
    client.force_login(coordinator_a)
    assert "/participants/new/" in client.get("/participants/").content.decode()
    response = client.post("/participants/new/", fields(action="preview"))
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('class="kind-dosing"') == 3
    assert "stays overnight" in page
    assert "Confirm and book this course" in page
    assert "America/New_York" in page
    assert "dosing 1" in page  # a room name
    # times in the site's zone (the planner starts sessions at 09:00 there), not UTC
    assert "09:00\N{EN DASH}17:00" in page
    # how long the therapy lasts, and when the course as a whole ends
    assert "about 13 weeks of therapy, ending Wed 2 Jun 2027" in page
    assert (
        "the course as a whole ends with Long-term follow-up assessment on Wed 17 Nov 2027" in page
    )
    assert not Participant.objects.exists()
    assert not ScheduledSession.objects.exists()


def test_confirm_books_the_previewed_course(client: Client, site_a, coordinator_a) -> None:
    client.force_login(coordinator_a)
    preview = client.post("/participants/new/", fields(action="preview")).content.decode()
    digest = preview.split('name="digest" value="')[1].split('"')[0]
    response = client.post(
        "/participants/new/",
        fields(action="confirm", digest=digest, email="p14@example.org", preferred_channel="email"),
    )
    participant = Participant.objects.get(code="P-014")
    assert response.status_code == 302
    assert response["Location"] == f"/participants/{participant.pk}/"
    assert participant.email == "p14@example.org"
    course = Course.objects.get(participant=participant)
    assert course.sessions.count() == ScheduledSession.objects.count() > 20
    history = participant.history.first()
    assert history is not None and history.history_user == coordinator_a


def test_a_changed_plan_is_shown_again_not_booked(client: Client, site_a, coordinator_a):
    client.force_login(coordinator_a)
    preview = client.post("/participants/new/", fields(action="preview")).content.decode()
    digest = preview.split('name="digest" value="')[1].split('"')[0]
    enrol_mapp(site_a, "P-999", coordinator_a)  # someone books meanwhile
    again = client.post("/participants/new/", fields(action="confirm", digest=digest))
    assert again.status_code == 200
    assert "Bookings changed since your last preview" in again.content.decode()
    assert not Participant.objects.filter(code="P-014").exists()


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"code": ""}, "code", "This field is required"),
        ({"code": "Jane Doe"}, "code", "no names"),
        ({"start_date": "2027-02-30"}, "start_date", "Enter a valid date"),
        ({"start_date": "1850-01-01"}, "start_date", "between the years 2000 and 2100"),
        ({"protocol": "nope"}, "protocol", "Select a valid choice"),
        ({"site": "b"}, "site", "Select a valid choice"),
        ({"dyad": "999999"}, "dyad", "Select a valid choice"),
        ({"partner": "P-015"}, "partner", "not a couples protocol"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"protocol": "mdma-cbct-couples"}, "partner", "couples protocol"),
    ],
)
def test_bad_input_is_a_field_error_in_place(
    client: Client, site_a, site_b, coordinator_a, extra, field, message
) -> None:
    client.force_login(coordinator_a)
    response = client.post("/participants/new/", fields(action="preview", **extra))
    assert response.status_code == 200
    page = response.content.decode()
    # the error list sits in the field's own paragraph, before its label
    paragraph = page.split(f'<label for="id_{field}"')[0].rsplit("<p>", 1)[1]
    assert message in paragraph
    assert not Participant.objects.exists()


def test_a_taken_code_and_a_full_site_are_explained(client: Client, coordinator_a, site_a):
    enrol_mapp(site_a, "P-014", coordinator_a)
    client.force_login(coordinator_a)
    taken = client.post("/participants/new/", fields(action="preview")).content.decode()
    assert "Study code P-014 is already used at Site a: give the new participant another" in taken
    empty = make_site("empty", dyads=0)
    make_staff("coord-empty", "coordinator", empty)
    client.force_login(make_staff("coord-2", "coordinator", empty))
    full = client.post(
        "/participants/new/", fields(action="preview", site="empty")
    ).content.decode()
    assert "has no active therapist dyad" in full
    assert Participant.objects.count() == 1


def test_therapists_and_other_sites_cannot_enrol_here(
    client: Client, site_a, therapist_a, coordinator_b
) -> None:
    client.force_login(therapist_a)
    assert client.get("/participants/new/").status_code == 404
    assert "/participants/new/" not in client.get("/participants/").content.decode()
    client.force_login(coordinator_b)
    response = client.post("/participants/new/", fields(action="confirm"))
    assert 'class="errorlist' in response.content.decode()
    assert not Participant.objects.exists()


def test_the_dyad_choices_are_the_users_sites_only(
    client: Client, site_a, site_b, coordinator_a
) -> None:
    """Another site's dyad is neither offered nor accepted: naming it is a field error and
    nothing is booked (not quietly replaced by one of the user's dyads)."""
    mine = list(Dyad.objects.filter(site=site_a))
    theirs = Dyad.objects.filter(site=site_b).first()
    assert mine and theirs is not None
    client.force_login(coordinator_a)
    page = client.get("/participants/new/").content.decode()
    offered = page.split('name="dyad"')[1].split("</select>")[0]
    for dyad in mine:
        assert f'value="{dyad.pk}"' in offered
    assert f'value="{theirs.pk}"' not in offered
    assert theirs.name not in page and site_b.name not in page
    for action in ("preview", "confirm"):
        response = client.post("/participants/new/", fields(action=action, dyad=theirs.pk))
        assert response.status_code == 200
        paragraph = response.content.decode().split('<label for="id_dyad"')[0].rsplit("<p>", 1)[1]
        assert "Select a valid choice" in paragraph
    assert not Participant.objects.exists()
    assert not Course.objects.exists()


def test_a_refused_start_on_the_page_names_the_nearest_dates_that_work(
    client: Client, coordinator_a, site_a
) -> None:
    zone = ZoneInfo(site_a.timezone)
    for dyad in Dyad.objects.filter(site=site_a):
        for therapist in (dyad.therapist_a, dyad.therapist_b):
            Unavailability.objects.create(
                user=therapist,
                start=datetime(2027, 3, 1, tzinfo=zone),
                end=datetime(2027, 3, 2, tzinfo=zone),
                reason="training",
            )
    client.force_login(coordinator_a)
    page = client.post("/participants/new/", fields(action="preview")).content.decode()
    assert "Nearest start dates that work: Tue 2 Mar 2027 (with " in page
    assert not Participant.objects.exists()
