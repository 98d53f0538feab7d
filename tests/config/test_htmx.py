"""A partial (htmx) request that is answered with a redirect tells the browser to go there
itself: otherwise the sign-in page would be fetched inside the request and the previewed section
would vanish without a word (a reschedule preview after the sign-in ended "showed nothing")."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db


def test_a_preview_after_the_sign_in_ended_sends_the_browser_to_sign_in(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = course.sessions.get(key="prep-2")
    url = f"/sessions/{session.pk}/"
    form = {"date": "2027-03-09", "time": "10:00", "action": "preview"}

    partial = client.post(url, form, HTTP_HX_REQUEST="true")

    assert partial.status_code == 200
    assert partial["HX-Redirect"] == f"/login/?next={url}"
    assert "Location" not in partial
    assert "no-store" in partial["Cache-Control"]
    # a whole-page request is redirected as before
    page = client.post(url, form)
    assert page.status_code == 302
    assert page["Location"] == f"/login/?next={url}"
    assert "HX-Redirect" not in page


def test_partial_answers_that_are_not_redirects_are_left_alone(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = course.sessions.get(key="prep-2")
    client.force_login(coordinator_a)
    answer = client.post(
        f"/sessions/{session.pk}/",
        {"date": "2027-03-09", "time": "10:00", "action": "preview"},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200
    assert "HX-Redirect" not in answer
    assert "What would move" in answer.content.decode()
