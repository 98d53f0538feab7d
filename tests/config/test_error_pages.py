"""Error answers speak the clinic's language and say what to do next: the pages' 400, 403,
404 and 500, the form that was out of date (CSRF), and a failed in-page request (htmx), which
would otherwise leave the page as it was without a word."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.views import defaults
from django.views.csrf import csrf_failure

from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_a_404_that_says_what_to_do(client: Client, coordinator_a: Any) -> None:
    client.force_login(coordinator_a)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page
    assert "belongs to a site you do not work at" in page
    assert 'href="/today/"' in page
    assert "The requested resource was not found on this server" not in page


def test_another_sites_participant_is_the_same_404(client: Client, coordinator_b: Any) -> None:
    client.force_login(coordinator_b)
    response = client.get("/participants/999999/")
    assert response.status_code == 404
    assert "belongs to a site you do not work at" in response.content.decode()


def test_a_refusal_is_a_403_that_changes_nothing_and_says_whom_to_ask(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    client.force_login(course.dyad.therapist_a)  # treats P-001, may not withdraw them
    participant = course.participant
    response = client.post(
        f"/participants/{participant.pk}/", {"action": "withdraw", "reason": "moved away"}
    )
    assert response.status_code == 403
    page = response.content.decode()
    assert "<h1>Not allowed</h1>" in page and "your site's coordinator" in page
    assert "Only coordinators and administrators withdraw or end." in page
    participant.refresh_from_db()
    assert participant.status != "withdrawn"


def test_a_form_that_was_out_of_date_says_so(coordinator_a: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(coordinator_a)
    response = client.post("/participants/new/", {"code": "P-001"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "This page was out of date" in page
    assert "Nothing was changed" in page
    assert "CSRF verification failed" not in page


@pytest.mark.parametrize(
    ("view", "status", "said"),
    [
        (defaults.bad_request, 400, "Request not understood"),
        (defaults.server_error, 500, "Something went wrong on our side"),
    ],
)
def test_the_servers_own_errors_are_plain_pages(view: Any, status: int, said: str) -> None:
    request = RequestFactory().get("/")
    response = view(request) if view is defaults.server_error else view(request, Exception())
    assert response.status_code == status
    page = response.content.decode()
    assert said in page and "Go to Today" in page


def test_the_csrf_failure_view_uses_the_clinics_page() -> None:
    response = csrf_failure(RequestFactory().post("/"), reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert "This page was out of date" in response.content.decode()
