"""No page answers 500, whatever the query string or form: bad values are field errors, pages
the user may not see are 404."""

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from scheduling.models import Deviation, Participant, RoomBooking, ScheduledSession
from tests.conftest import enrol_mapp
from tests.scheduling.test_reschedule import db_state

pytestmark = pytest.mark.django_db

NASTY = [
    "",
    "\x00",
    "' OR 1=1 --",
    "9" * 40,
    "ü\u202e",
    "<script>x</script>",
    "-1",
    "2027-13-45",
    "2027-02-30",
    "9999-12-31",
    "0001-01-01",
    "²",
    "x" * 10_000,
]
PAGES = ["/today/", "/participants/", "/calendar/", "/protocols/", "/participants/new/"]
PARAMETERS = ["site", "q", "status", "protocol", "page", "view", "by", "date", "next"]


def assert_nul_refused(response: Any) -> None:
    """A NUL byte anywhere in a request is a 400 that says what to do."""
    assert response.status_code == 400
    assert "null character" in response.content.decode()


@pytest.mark.parametrize("url", PAGES)
def test_query_strings_never_break_a_page(client: Client, site_a, coordinator_a, url) -> None:
    client.force_login(coordinator_a)
    for name in PARAMETERS:
        for value in NASTY:
            response = client.get(url, {name: value})
            if "\x00" in value:  # refused before any view reads it, saying why
                assert_nul_refused(response)
                continue
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
            if "\x00" in value:
                assert_nul_refused(response)
                continue
            assert response.status_code == 200, repr(value)
            assert 'class="errorlist' in response.content.decode()
        for action in ("preview", "apply", "status"):
            response = client.post(
                f"/sessions/{session.pk}/",
                {"action": action, "date": value, "time": value, "reason": value, "status": value},
            )
            if "\x00" in value:
                assert_nul_refused(response)
                continue
            assert response.status_code == 200, (action, repr(value))
    assert course.sessions.get(key="dosing-1").start == session.start


# --- the findings of the input sweep: each was a 500 -----------------------------------------

LONG_REASON = ("Participant phoned: family emergency abroad, back in three weeks. " * 40)[:1999]
LONG_REASON += "."  # 2000 characters; a form strips the spaces at either end


def _outside_the_window(session: ScheduledSession) -> date:
    """A Monday to Thursday after the session's window (a dosing day needs an open morning
    after it), where a move needs a reason and records a deviation."""
    day = session.window_end + timedelta(days=1)
    while day.weekday() >= 4:
        day += timedelta(days=1)
    return day


def test_the_participants_next_filter_takes_only_its_choices(
    client: Client, site_a, coordinator_a
) -> None:
    enrol_mapp(site_a, "P-001", coordinator_a)
    client.force_login(coordinator_a)
    # "²".isdigit() is True but int("²") fails: it used to reach int() and answer 500
    for value in ("²", "٣", "1e9", "9999", "0", "-7", "77"):
        response = client.get("/participants/", {"next": value})
        assert response.status_code == 200, repr(value)
        assert "P-001" in response.content.decode(), repr(value)  # ignored, not "none found"
    listed = client.get("/participants/", {"next": "none"}).content.decode()
    assert "P-001" not in listed  # the offered choices still filter


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2101-01-01", "1999-12-31"])
def test_a_reschedule_to_an_implausible_year_is_a_field_error(
    client: Client, site_a, coordinator_a, day
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = course.sessions.get(key="dosing-1")
    before = db_state()
    client.force_login(coordinator_a)
    for action in ("preview", "apply"):
        response = client.post(
            f"/sessions/{session.pk}/",
            {"action": action, "date": day, "time": "09:00", "reason": "typing mistake"},
        )
        assert response.status_code == 200, (action, day)
        assert "Choose a date between the years 2000 and 2100" in response.content.decode()
    assert db_state() == before


@pytest.mark.parametrize("length", [2000, 101])
def test_a_long_reason_to_cancel_is_stored_whole(
    client: Client, site_a, coordinator_a, length
) -> None:
    reason = LONG_REASON[:length]
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    session = course.sessions.get(key="prep-2")
    client.force_login(coordinator_a)
    response = client.post(
        f"/sessions/{session.pk}/", {"action": "status", "status": "cancelled", "reason": reason}
    )
    assert response.status_code == 302
    deviation = Deviation.objects.get(session=session)
    assert deviation.reason == reason
    latest = session.history.latest("history_date")
    assert (latest.status, latest.history_change_reason) == ("cancelled", reason)
    assert deviation.history.get().history_change_reason == reason
    released = RoomBooking.history.filter(session_id=session.pk, active=False)
    assert [h.history_change_reason for h in released] == [reason]


def test_a_long_reason_to_move_out_of_the_window_is_stored_whole(
    client: Client, site_a, coordinator_a
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = course.sessions.get(key="dosing-1")
    day = _outside_the_window(dosing)
    client.force_login(coordinator_a)
    form = {"date": day.isoformat(), "time": "09:00", "reason": LONG_REASON}
    preview = client.post(f"/sessions/{dosing.pk}/", {**form, "action": "preview"})
    assert preview.status_code == 200 and "What would move" in preview.content.decode()
    applied = client.post(f"/sessions/{dosing.pk}/", {**form, "action": "apply"})
    assert applied.status_code == 302
    deviation = Deviation.objects.get(session=dosing, kind=Deviation.Kind.OUTSIDE_WINDOW)
    assert deviation.reason == LONG_REASON
    moved = dosing.history.latest("history_date")
    assert moved.start.astimezone(ZoneInfo(site_a.timezone)).date() == day
    assert moved.history_change_reason == LONG_REASON


@pytest.mark.parametrize("action", ["status", "preview", "apply"])
def test_a_reason_longer_than_allowed_is_a_field_error(
    client: Client, site_a, coordinator_a, action
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = course.sessions.get(key="dosing-1")
    day = _outside_the_window(dosing)
    before = db_state()
    client.force_login(coordinator_a)
    response = client.post(
        f"/sessions/{dosing.pk}/",
        {
            "action": action,
            "status": "cancelled",
            "date": day.isoformat(),
            "time": "09:00",
            "reason": LONG_REASON + "!",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Shorten the reason to at most 2000 characters (it has 2001)" in page
    assert db_state() == before


def test_a_study_code_that_breaks_the_rule_is_refused_on_the_page(
    client: Client, site_a, coordinator_a
) -> None:
    client.force_login(coordinator_a)
    base = {
        "site": "a",
        "protocol": "mapp-ptsd",
        "start_date": "2027-03-01",
        "preferred_channel": "none",
    }
    for code in ("Jane Doe", "P" * 31, "P-1\x00", "-P1", "P/1", "P\u202e1", "ü1"):
        for action in ("preview", "confirm"):
            response = client.post("/participants/new/", {**base, "code": code, "action": action})
            if "\x00" in code:
                assert_nul_refused(response)
                continue
            assert response.status_code == 200, repr(code)
            assert 'class="errorlist' in response.content.decode(), repr(code)
    assert not Participant.objects.exists()
