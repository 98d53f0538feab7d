"""Coordinators set up their own sites in the admin: rooms, closure dates, opening hours, dyads
and staff unavailability, and nothing of another site. A new closure date lists the open
sessions it conflicts with and re-plans them in one step: a preview, then apply."""

from __future__ import annotations

from datetime import date, time
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from scheduling import services
from scheduling.models import (
    Dyad,
    OpeningHours,
    Room,
    ScheduledSession,
    SiteClosure,
    Unavailability,
)
from scheduling.selectors import closure_conflicts, local_text
from tests.conftest import enrol_mapp, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def coordinator(site_a, site_b) -> Any:
    user = make_staff("setup-coordinator", "coordinator", site_a)
    user.is_staff = True  # may open the admin; what they do there is the policy's answer
    user.save()
    return user


@pytest.fixture
def browser(client: Client, coordinator) -> Client:
    client.force_login(coordinator)
    return client


def therapist_of(site) -> Any:
    return Dyad.objects.filter(site=site).first().therapist_a  # type: ignore[union-attr]


def add(client: Client, model: str, **data: Any) -> Any:
    return client.post(f"/admin/scheduling/{model}/add/", {**data, "_save": "Save"})


def key_at(course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key)


# --- adding and editing their own site's set-up ----------------------------------------------


def test_a_coordinator_adds_each_kind_of_set_up_at_their_site(browser, site_a) -> None:
    for model in ("room", "siteclosure", "openinghours", "dyad", "unavailability"):
        assert browser.get(f"/admin/scheduling/{model}/add/").status_code == 200, model
    assert (
        add(
            browser,
            "room",
            site=site_a.pk,
            name="a therapy 9",
            kind="therapy",
            overnight_places=0,
            active="on",
        ).status_code
        == 302
    )
    assert Room.objects.filter(site=site_a, name="a therapy 9").exists()
    assert (
        add(
            browser, "siteclosure", site=site_a.pk, date="2027-11-26", reason="staff day"
        ).status_code
        == 302
    )
    assert SiteClosure.objects.filter(site=site_a, date=date(2027, 11, 26)).exists()
    assert (
        add(
            browser, "openinghours", site=site_a.pk, weekday=5, opens="09:00", closes="13:00"
        ).status_code
        == 302
    )
    assert OpeningHours.objects.get(site=site_a, weekday=5).closes == time(13)
    t1, t2 = make_staff("a-new-1", "therapist", site_a), make_staff("a-new-2", "therapist", site_a)
    assert (
        add(
            browser,
            "dyad",
            site=site_a.pk,
            name="a dyad 9",
            therapist_a=t1.pk,
            therapist_b=t2.pk,
            active="on",
        ).status_code
        == 302
    )
    assert Dyad.objects.filter(site=site_a, name="a dyad 9").exists()
    therapist = therapist_of(site_a)
    response = add(
        browser,
        "unavailability",
        user=therapist.pk,
        start_0="2027-06-01",
        start_1="09:00",
        end_0="2027-06-02",
        end_1="09:00",
        reason="training",
    )
    assert response.status_code == 302
    assert Unavailability.objects.filter(user=therapist, reason="training").exists()


def test_they_edit_their_rooms_and_closures(browser, site_a) -> None:
    room = Room.objects.filter(site=site_a).first()
    assert room is not None
    response = browser.post(
        f"/admin/scheduling/room/{room.pk}/change/",
        {
            "site": site_a.pk,
            "name": "renamed",
            "kind": room.kind,
            "overnight_places": 1,
            "active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    assert Room.objects.get(pk=room.pk).name == "renamed"


@pytest.mark.parametrize("model", ["room", "siteclosure", "openinghours", "dyad"])
def test_nothing_goes_into_a_site_they_do_not_coordinate(browser, site_b, model: str) -> None:
    before = {m: m.objects.count() for m in (Room, SiteClosure, OpeningHours, Dyad)}
    data = {
        "site": site_b.pk,
        "name": "theirs",
        "kind": "therapy",
        "overnight_places": 0,
        "date": "2027-11-26",
        "weekday": 6,
        "opens": "09:00",
        "closes": "12:00",
        "therapist_a": therapist_of(site_b).pk,
        "therapist_b": Dyad.objects.filter(site=site_b).first().therapist_b_id,  # type: ignore[union-attr]
    }
    response = add(browser, model, **data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert {m: m.objects.count() for m in before} == before
    page = browser.get(f"/admin/scheduling/{model}/add/").content.decode()
    assert f'<option value="{site_b.pk}"' not in page


def test_no_unavailability_for_someone_who_works_at_none_of_their_sites(browser, site_b) -> None:
    response = add(
        browser,
        "unavailability",
        user=therapist_of(site_b).pk,
        start_0="2027-06-01",
        start_1="09:00",
        end_0="2027-06-02",
        end_1="09:00",
        reason="x",
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Unavailability.objects.exists()


def test_another_sites_set_up_is_a_404(browser, site_b) -> None:
    closure = SiteClosure.objects.create(site=site_b, date=date(2027, 11, 26))
    room = Room.objects.filter(site=site_b).first()
    assert room is not None
    assert browser.get(f"/admin/scheduling/siteclosure/{closure.pk}/change/").status_code == 302
    assert browser.get(f"/admin/scheduling/siteclosure/{closure.pk}/conflicts/").status_code == 404
    assert browser.post(f"/admin/scheduling/siteclosure/{closure.pk}/conflicts/").status_code == 404
    assert browser.get(f"/admin/scheduling/room/{room.pk}/change/").status_code == 302  # not found


def test_the_calendar_links_to_the_set_up_by_the_policy(browser, site_a) -> None:
    page = browser.get("/calendar/").content.decode()
    assert "/admin/scheduling/siteclosure/add/" in page
    assert "/admin/scheduling/unavailability/add/" in page
    assert "/admin/scheduling/room/add/" in page


# --- a new closure date and the sessions it conflicts with ------------------------------------


def test_a_new_closure_lists_its_conflicts_and_re_plans_them_in_one_step(
    browser, site_a, coordinator
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator)
    prep2 = key_at(course, "prep-2")
    day = prep2.start.astimezone(prep2.start.tzinfo).date()
    assert local_text(prep2.start, site_a.timezone) == "Mon 8 Mar 2027 10:00 EST"
    before = {s.key: s.start for s in course.sessions.all()}
    added = add(browser, "siteclosure", site=site_a.pk, date=day.isoformat(), reason="flooding")
    closure = SiteClosure.objects.get(site=site_a, date=day)
    conflicts_url = f"/admin/scheduling/siteclosure/{closure.pk}/conflicts/"
    assert added["Location"] == conflicts_url  # straight to what it conflicts with
    preview = browser.get(conflicts_url).content.decode()
    assert "P-001" in preview and "(prep-2)" in preview
    assert "Mon 8 Mar 2027 10:00 EST" in preview
    assert "to Tue 9 Mar 2027 10:00 EST" in preview  # the nearest open day, same time
    assert "Re-plan 1 session as shown" in preview
    assert {s.key: s.start for s in course.sessions.all()} == before  # a preview moves nothing
    applied = browser.post(conflicts_url)
    assert applied.status_code == 302
    said = [str(m) for m in get_messages(applied.wsgi_request)]
    assert any("prep-2" in line and "to Tue 9 Mar 2027 10:00 EST" in line for line in said), said
    moved = key_at(course, "prep-2")
    assert local_text(moved.start, site_a.timezone) == "Tue 9 Mar 2027 10:00 EST"
    assert moved.history.first().history_change_reason.startswith(
        "re-planned: Site a is closed on 2027-03-08 (flooding)"
    )
    assert closure_conflicts(closure, coordinator) == []


def test_a_next_morning_session_moves_with_its_night_before(site_a, coordinator) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator)
    dosing, morning = key_at(course, "dosing-1"), key_at(course, "integration-1a")
    closed = morning.start.astimezone(dosing.start.tzinfo).date()
    closure = SiteClosure.objects.create(site=site_a, date=closed, reason="power cut")
    assert [s.key for s in closure_conflicts(closure, coordinator)] == ["integration-1a"]
    result = services.closure_replan(closure=closure, by=coordinator, dry_run=False)
    assert result.applied and not result.refused
    item = result.items[0]
    assert item.moved is not None and item.moved.key == "dosing-1" and item.with_it >= 1
    dosing, morning = key_at(course, "dosing-1"), key_at(course, "integration-1a")
    assert morning.start.date() != closed
    assert (morning.start - dosing.start).days <= 1  # still the morning after


def test_what_cannot_be_re_planned_is_said_and_left_as_it_is(browser, site_a, coordinator):
    course = enrol_mapp(site_a, "P-001", coordinator)
    prep1 = key_at(course, "prep-1")  # the course start: a window of one day
    closure = SiteClosure.objects.create(site=site_a, date=date(2027, 3, 1))
    url = f"/admin/scheduling/siteclosure/{closure.pk}/conflicts/"
    page = browser.get(url).content.decode()
    assert (
        "cannot be re-planned: its window (Mon 1 Mar 2027 to Mon 1 Mar 2027) has no other "
        "day the site is open" in page
    )
    assert "None of them can be re-planned here" in page
    applied = browser.post(url)
    said = [str(m) for m in get_messages(applied.wsgi_request)]
    assert any("cannot be re-planned" in line for line in said)
    assert key_at(course, "prep-1").start == prep1.start


def test_phone_calls_do_not_need_the_site_open(site_a, coordinator) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator)
    call = key_at(course, "phone-1.3")
    closure = SiteClosure.objects.create(
        site=site_a, date=call.start.astimezone(key_at(course, "prep-1").start.tzinfo).date()
    )
    assert call.pk not in [s.pk for s in closure_conflicts(closure, coordinator)]


def test_only_the_sites_coordinators_re_plan(client: Client, site_a, coordinator) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator)
    prep2 = key_at(course, "prep-2")
    closure = SiteClosure.objects.create(site=site_a, date=date(2027, 3, 8))
    therapist = therapist_of(site_a)
    therapist.is_staff = True
    therapist.save()
    client.force_login(therapist)
    url = f"/admin/scheduling/siteclosure/{closure.pk}/conflicts/"
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    assert key_at(course, "prep-2").start == prep2.start


def test_a_closure_added_on_the_sites_page_leads_to_its_conflicts(
    browser, site_a, coordinator
) -> None:
    enrol_mapp(site_a, "P-001", coordinator)
    hours = list(OpeningHours.objects.filter(site=site_a).order_by("pk"))
    data: dict[str, Any] = {
        "name": site_a.name,
        "slug": site_a.slug,
        "timezone": site_a.timezone,
        "country": "",
        "subdivision": "",
        "address": "",
        "phone": "",
        "quiet_hours_start": "21:00",
        "quiet_hours_end": "08:00",
        "hours-TOTAL_FORMS": len(hours),
        "hours-INITIAL_FORMS": len(hours),
        "closures-TOTAL_FORMS": 1,
        "closures-INITIAL_FORMS": 0,
        "closures-0-date": "2027-03-08",
        "closures-0-reason": "flooding",
        "caldav-TOTAL_FORMS": 0,
        "caldav-INITIAL_FORMS": 0,
        "_save": "Save",
    }
    for n, row in enumerate(hours):
        data.update(
            {
                f"hours-{n}-id": row.pk,
                f"hours-{n}-site": site_a.pk,
                f"hours-{n}-weekday": row.weekday,
                f"hours-{n}-opens": "08:00",
                f"hours-{n}-closes": "18:00",
            }
        )
    response = browser.post(f"/admin/scheduling/site/{site_a.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    closure = SiteClosure.objects.get(site=site_a, date=date(2027, 3, 8))
    said = [str(m) for m in get_messages(response.wsgi_request)]
    link = f"/admin/scheduling/siteclosure/{closure.pk}/conflicts/"
    assert any(
        "Open sessions need the site open on Mon 8 Mar 2027" in m and link in m for m in said
    )


def test_a_dyad_works_at_its_own_site(client: Client, site_a, site_b) -> None:
    """A coordinator of two sites cannot pair a therapist of one into a dyad of the other."""
    both = make_staff("coordinator-of-both", "coordinator", site_a, site_b)
    both.is_staff = True
    both.save()
    client.force_login(both)
    response = add(
        client,
        "dyad",
        site=site_a.pk,
        name="mixed",
        therapist_a=therapist_of(site_a).pk,
        therapist_b=therapist_of(site_b).pk,
        active="on",
    )
    assert response.status_code == 200
    assert "Choose a therapist who works at this dyad" in response.content.decode()
    assert not Dyad.objects.filter(name="mixed").exists()
