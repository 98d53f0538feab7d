"""No page answers 500, whatever the query string or form: bad values are field errors, pages
the user may not see are 404."""

from typing import Any

import pytest
from django.test import Client

from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db

NASTY = ["", "\x00", "' OR 1=1 --", "9" * 40, "ü\u202e", "<script>x</script>", "-1", "2027-13-45"]
PAGES = ["/today/", "/participants/", "/calendar/", "/protocols/", "/participants/new/"]
PARAMETERS = ["site", "q", "status", "protocol", "page", "view", "by", "date"]


@pytest.mark.parametrize("url", PAGES)
def test_query_strings_never_break_a_page(client: Client, site_a, coordinator_a, url) -> None:
    client.force_login(coordinator_a)
    for name in PARAMETERS:
        for value in NASTY:
            response = client.get(url, {name: value})
            assert response.status_code in (200, 404), (url, name, repr(value))


def test_forms_with_nasty_values_are_field_errors(client: Client, site_a, coordinator_a) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = course.sessions.get(key="dosing-1")
    client.force_login(coordinator_a)
    for value in NASTY:
        fields: dict[str, Any] = dict.fromkeys(
            ("site", "code", "protocol", "start_date", "dyad", "partner", "email"), value
        )
        for action in ("preview", "confirm"):
            response = client.post("/participants/new/", {**fields, "action": action})
            assert response.status_code == 200, repr(value)
            assert 'class="errorlist' in response.content.decode()
        for action in ("preview", "apply", "status"):
            response = client.post(
                f"/sessions/{session.pk}/",
                {"action": action, "date": value, "time": value, "reason": value, "status": value},
            )
            assert response.status_code == 200, (action, repr(value))
    assert course.sessions.get(key="dosing-1").start == session.start
