"""Opening hours bind moves made by staff (page and API) as they bind the planner: a time the
session does not fit in, a closed day or a holiday is refused with that rule in the clinic's
words and the nearest times that work; an explicit override, where the site allows it, is
recorded as a deviation. The preview shows room and staff changes; applying says what it did."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from rest_framework.test import APIClient

from protocol.spec import ProtocolSpec
from scheduling.models import (
    Deviation,
    Dyad,
    RoomBooking,
    ScheduledSession,
    SiteClosure,
    StaffBooking,
    Unavailability,
)
from scheduling.planning import SiteCalendar, opening_hours_problem
from scheduling.services import (
    BookingConflict,
    SchedulingError,
    session_reschedule,
    session_set_status,
)
from tests.conftest import enrol_mapp

pytestmark = pytest.mark.django_db
NEW_YORK = ZoneInfo("America/New_York")


def row(course: Any, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key)


def at(session: ScheduledSession, hour: int, minute: int = 0, days: int = 0) -> datetime:
    day = session.start.astimezone(NEW_YORK).date() + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), NEW_YORK)


def state() -> tuple[Any, ...]:
    return (
        sorted(ScheduledSession.objects.values_list("pk", "start", "room_id")),
        RoomBooking.objects.filter(active=True).count(),
        StaffBooking.objects.filter(active=True).count(),
        Deviation.objects.count(),
    )


def nearest(message: str) -> list[datetime]:
    """The times a refusal offers, read back from "Nearest times that work: ... ."."""
    found = re.search(r"Nearest times that work: (.*)\.$", message)
    assert found, message
    return [
        datetime.strptime(text.rsplit(" ", 1)[0], "%a %d %b %Y %H:%M").replace(tzinfo=NEW_YORK)
        for text in found.group(1).split(", ")
    ]


# --- the rule, in the planner (pure) ---------------------------------------------------------


def test_the_rule_in_the_clinics_words(mapp_spec: ProtocolSpec) -> None:
    calendar = SiteCalendar(
        "America/New_York",
        hours=tuple((day, time(9), time(18)) for day in range(5)),
        closures=frozenset({date(2026, 12, 25)}),
        closure_names=((date(2026, 12, 25), "Christmas Day"),),
    )
    dosing = mapp_spec.session("dosing-1")
    monday = date(2027, 3, 1)
    late = datetime.combine(monday, time(17, 30), NEW_YORK)
    assert opening_hours_problem(calendar, dosing, late) == (
        "The site closes at 18:00 on Mondays: an 8-hour dosing session starting 17:30 would "
        "end at 01:30 EST. Choose a start between 09:00 and 10:00 EST, or another day."
    )
    early = datetime.combine(monday, time(3), NEW_YORK)
    assert opening_hours_problem(calendar, dosing, early) == (
        "The site opens at 09:00 on Mondays: an 8-hour dosing session cannot start at "
        "03:00 EST. Choose a start between 09:00 and 10:00 EST, or another day."
    )
    # the daytime part fits: the overnight stay after it is expected
    for fits in (time(9), time(10)):
        assert opening_hours_problem(
            calendar, dosing, datetime.combine(monday, fits, NEW_YORK)
        ) is (None)
    assert opening_hours_problem(calendar, dosing, datetime.combine(monday, time(10, 15), NEW_YORK))
    christmas = datetime.combine(date(2026, 12, 25), time(9), NEW_YORK)
    assert opening_hours_problem(calendar, dosing, christmas) == (
        "The site is closed on Fri 25 Dec 2026 (Christmas Day): the next open day is "
        "Mon 28 Dec 2026."
    )
    saturday = datetime.combine(date(2027, 3, 6), time(10), NEW_YORK)
    assert opening_hours_problem(calendar, dosing, saturday) == (
        "The site is closed on Sat 6 Mar 2027 (Saturday): the next open day is Mon 8 Mar 2027."
    )
    # phone check-ins happen daily, closed days or not, but in daytime
    phone = mapp_spec.session("phone-1")
    assert not phone.open_days_apply
    assert opening_hours_problem(calendar, phone, saturday) is None
    assert opening_hours_problem(calendar, phone, christmas.replace(hour=10)) is None
    night = datetime.combine(date(2027, 3, 6), time(22), NEW_YORK)
    assert opening_hours_problem(calendar, phone, night) == (
        "The site has no opening hours on Saturdays: a 15-minute phone check-in session then "
        "goes in daytime, between 08:00 and 18:00 EST. Choose a start between 08:00 and "
        "17:45 EST."
    )
    late_call = datetime.combine(monday, time(18), NEW_YORK)
    assert str(opening_hours_problem(calendar, phone, late_call)).startswith(
        "The site closes at 18:00 on Mondays: a 15-minute phone check-in session starting "
        "18:00 would end at 18:15 EST."
    )


# --- the service -----------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_8_hour_dosing_at_17_30_is_refused_with_the_closing_time(
    site_a: Any, coordinator_a: Any, dry_run: bool
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = row(course, "dosing-1")
    weekday = dosing.start.astimezone(NEW_YORK).strftime("%A")
    before = state()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(
            session=dosing, start=at(dosing, 17, 30), by=coordinator_a, dry_run=dry_run
        )
    assert set(caught.value.errors) == {"start"}
    message = caught.value.errors["start"][0]
    assert message.startswith(
        f"The site closes at 18:00 on {weekday}s: an 8-hour dosing session starting 17:30 "
        "would end at 01:30 EDT. Choose a start between 08:00 and 10:00 EDT, or another day. "
        "Nearest times that work: "
    )
    offered = nearest(message)
    assert offered and all(t.time() <= time(10) for t in offered)
    assert state() == before
    # each time offered does work
    result = session_reschedule(session=dosing, start=offered[0], by=coordinator_a, dry_run=True)
    assert result.moved[0].new_start == offered[0]


def test_3am_names_the_opening_hours_not_a_busy_room(site_a: Any, coordinator_a: Any) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = row(course, "dosing-1")
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=dosing, start=at(dosing, 3, days=1), by=coordinator_a)
    message = caught.value.errors["start"][0]
    assert message.startswith("The site opens at 08:00 on ")
    assert "cannot start at 03:00 EDT" in message
    assert "room" not in message


def test_a_closure_day_is_refused_naming_its_reason(site_a: Any, coordinator_a: Any) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep_2 = row(course, "prep-2")  # Mon 8 Mar 2027, window Fri 5 to Mon 15 Mar
    SiteClosure.objects.create(site=site_a, date=date(2027, 3, 10), reason="staff training")
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=prep_2, start=at(prep_2, 10, days=2), by=coordinator_a)
    message = caught.value.errors["start"][0]
    assert message.startswith(
        "The site is closed on Wed 10 Mar 2027 (staff training): the next open day is "
        "Thu 11 Mar 2027. Nearest times that work: Thu 11 Mar 2027 10:00 EST"
    )


def test_a_public_holiday_is_refused_by_its_name(site_a: Any, coordinator_a: Any) -> None:
    site_a.country = "US"
    site_a.save()
    course = enrol_mapp(site_a, "P-001", coordinator_a, start=date(2027, 5, 3))
    prep_3 = row(course, "prep-3")  # Mon 17 May; Memorial Day is Mon 31 May
    memorial = datetime.combine(date(2027, 5, 31), time(10), NEW_YORK)
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=prep_3, start=memorial, by=coordinator_a, reason="asked")
    assert caught.value.errors["start"][0].startswith(
        "The site is closed on Mon 31 May 2027 (Memorial Day): the next open day is Tue 1 Jun 2027."
    )


def test_the_override_needs_the_sites_permission_then_a_reason(
    site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = row(course, "dosing-1")
    late = at(dosing, 17, 30)
    before = state()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(
            session=dosing, start=late, by=coordinator_a, outside_hours=True, reason="asked"
        )
    assert set(caught.value.errors) == {"outside_hours"}
    assert caught.value.errors["outside_hours"][0].startswith(
        "Site a does not allow moves outside its opening hours (The site closes at 18:00"
    )
    site_a.allow_out_of_hours_moves = True
    site_a.save()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=dosing, start=late, by=coordinator_a, outside_hours=True)
    assert set(caught.value.errors) == {"reason"}
    assert state() == before
    preview = session_reschedule(
        session=dosing,
        start=late,
        by=coordinator_a,
        outside_hours=True,
        reason="only evening staff that week",
        dry_run=True,
    )
    assert [d.kind for d in preview.deviations] == [Deviation.Kind.OUTSIDE_HOURS]
    assert state() == before
    result = session_reschedule(
        session=dosing,
        start=late,
        by=coordinator_a,
        outside_hours=True,
        reason="only evening staff that week",
    )
    assert result.applied
    deviation = Deviation.objects.get(session=dosing)
    assert deviation.kind == Deviation.Kind.OUTSIDE_HOURS
    assert deviation.reason == "only evening staff that week"
    assert "would end at 01:30 EDT" in deviation.detail
    dosing.refresh_from_db()
    assert dosing.start == late


def test_a_busy_therapist_comes_with_the_nearest_times_that_work(
    site_a: Any, coordinator_a: Any
) -> None:
    dyad = Dyad.objects.filter(site=site_a).first()
    first = enrol_mapp(site_a, "P-001", coordinator_a, dyad=dyad)
    second = enrol_mapp(site_a, "P-002", coordinator_a, start=date(2027, 3, 2), dyad=dyad)
    theirs, mine = row(first, "prep-2"), row(second, "prep-2")
    with pytest.raises(BookingConflict) as caught:
        session_reschedule(session=mine, start=theirs.start, by=coordinator_a)
    message = str(caught.value)
    assert message.startswith("prep-2 cannot be booked at Mon 8 Mar 2027 10:00 EST: ")
    assert "is busy." in message
    offered = nearest(message)
    assert offered[0].date() == date(2027, 3, 8)  # that day first
    for moment in offered:
        session_reschedule(session=mine, start=moment, by=coordinator_a, dry_run=True)


# --- the page --------------------------------------------------------------------------------


def test_a_failed_preview_shows_the_rule_on_the_page(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = row(course, "dosing-1")
    client.force_login(coordinator_a)
    local = dosing.start.astimezone(NEW_YORK)
    response = client.post(
        f"/sessions/{dosing.pk}/",
        {"date": local.date().isoformat(), "time": "17:30", "action": "preview"},
        HTTP_HX_REQUEST="true",
    )
    page = response.content.decode()
    section = page.split('id="move-section"')[1].split("</section>")[0]
    assert response.status_code == 200
    assert "The site closes at 18:00 on" in section
    assert "What would move" not in section


def test_the_preview_shows_room_and_staff_changes_and_applying_says_what_it_did(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    baseline = row(course, "baseline")
    booked = StaffBooking.objects.get(session=baseline, active=True).user
    target = at(baseline, 13)
    Unavailability.objects.create(
        user=booked, start=target - timedelta(hours=1), end=target + timedelta(hours=3)
    )
    client.force_login(coordinator_a)
    form = {"date": target.date().isoformat(), "time": "13:00", "reason": ""}
    page = client.post(f"/sessions/{baseline.pk}/", {**form, "action": "preview"}).content
    section = page.decode().split("What would move")[1]
    assert "Times in America/New_York" in section
    assert f"\N{MINUS SIGN} {booked.username}" in section
    assert re.search(r"\+ a-assessor\d", section)
    assert "<td>Wed 17 Mar 2027 13:00 EDT</td>" in section

    applied = client.post(f"/sessions/{baseline.pk}/", {**form, "action": "apply"}, follow=True)
    assert applied.redirect_chain == [(f"/sessions/{baseline.pk}/", 302)]
    assert "Moved baseline to Wed 17 Mar 2027 13:00 EDT; 0 other sessions re-planned." in (
        applied.content.decode()
    )


def test_the_preview_shows_a_room_change_by_name(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep_2 = row(course, "prep-2")
    old_room = prep_2.room
    assert old_room is not None
    old_room.active = False  # taken out of use: the move books another therapy room
    old_room.save()
    client.force_login(coordinator_a)
    form = {"date": at(prep_2, 11).date().isoformat(), "time": "11:00", "reason": ""}
    page = client.post(f"/sessions/{prep_2.pk}/", {**form, "action": "preview"}).content
    section = page.decode().split("What would move")[1]
    arrow = "\N{RIGHTWARDS ARROW}"
    new_room = re.search(rf"{old_room.name} {arrow} (a therapy \d)", section)
    assert new_room and new_room.group(1) != old_room.name

    applied = client.post(f"/sessions/{prep_2.pk}/", {**form, "action": "apply"}, follow=True)
    assert re.search(
        r"Moved prep-2 to Mon 8 Mar 2027 11:00 EST; \d+ other sessions? re-planned\.",
        applied.content.decode(),
    )


def test_the_api_refuses_22_00_with_a_field_error_and_documents_the_override(
    site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = row(course, "dosing-1")
    api = APIClient()
    api.force_login(coordinator_a)
    before = state()
    response = api.post(
        f"/api/sessions/{dosing.pk}/reschedule/",
        {"start": at(dosing, 22).isoformat(), "dry_run": True},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()) == ["start"]
    assert response.json()["start"][0].startswith("The site closes at 18:00 on")
    refused = api.post(
        f"/api/sessions/{dosing.pk}/reschedule/",
        {"start": at(dosing, 22).isoformat(), "outside_hours": True, "reason": "evening"},
        format="json",
    )
    assert refused.status_code == 400
    assert list(refused.json()) == ["outside_hours"]
    assert state() == before
    schema = api.get("/api/schema/?format=json").json()
    fields = schema["components"]["schemas"]["SessionRescheduleRequest"]["properties"]
    assert "opening hours" in fields["outside_hours"]["description"]


def test_the_page_offers_the_override_only_where_the_site_allows_it(
    client: Client, site_a: Any, coordinator_a: Any
) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = row(course, "dosing-1")
    client.force_login(coordinator_a)
    url = f"/sessions/{dosing.pk}/"
    assert "Outside opening hours, on purpose" not in client.get(url).content.decode()
    site_a.allow_out_of_hours_moves = True
    site_a.save()
    assert "Outside opening hours, on purpose" in client.get(url).content.decode()
    form = {
        "date": dosing.start.astimezone(NEW_YORK).date().isoformat(),
        "time": "17:30",
        "outside_hours": "on",
        "reason": "evening staff only that week",
    }
    before = state()
    page = client.post(url, {**form, "action": "preview"}).content.decode()
    assert "Protocol deviation would be recorded: session outside opening hours" in page
    assert "would end at 01:30 EDT" in page
    assert state() == before
    applied = client.post(url, {**form, "action": "apply"}, follow=True).content.decode()
    assert "deviation recorded: session outside opening hours" in applied
    assert Deviation.objects.get(session=dosing).kind == Deviation.Kind.OUTSIDE_HOURS


def test_a_move_years_away_says_to_check_the_year(site_a: Any, coordinator_a: Any) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep_2 = row(course, "prep-2")
    far = datetime(2099, 3, 9, 10, tzinfo=NEW_YORK)  # a Monday, typed for 2027
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(session=prep_2, start=far, by=coordinator_a, reason="typo")
    message = caught.value.errors["start"][0]
    assert message.startswith("prep-2 cannot move to Mon 9 Mar 2099 10:00 EDT: the therapy ")
    assert "more than the protocol's maximum of 18 weeks: choose an earlier date (check the " in (
        message
    )


def test_rebooking_keeps_the_opening_hours_and_their_override(
    site_a: Any, coordinator_a: Any
) -> None:
    """A rebooking places the new session as a move would: outside the hours it is refused
    with the rule, and where the site allows it the override (with a reason) is offered on
    the page and taken by the API, recorded as a deviation."""
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep = row(course, "prep-2")
    session_set_status(session=prep, status="cancelled", reason="ill", by=coordinator_a)
    evening = at(prep, 19, 0, days=1)
    api = APIClient()
    api.force_authenticate(coordinator_a)
    url = f"/api/sessions/{prep.pk}/rebook/"
    refused = api.post(url, {"start": evening.isoformat()}, format="json")
    assert refused.status_code == 400
    assert "closes at 18:00" in refused.json()["start"][0]
    site_a.allow_out_of_hours_moves = True
    site_a.save()
    client = Client()
    client.force_login(coordinator_a)
    page = client.get(f"/sessions/{prep.pk}/").content.decode()
    assert "Outside opening hours, on purpose" in page.split('id="rebook-section"')[1]
    body = {"start": evening.isoformat(), "outside_hours": True, "reason": "evening only"}
    done = api.post(url, body, format="json")
    assert done.status_code == 200, done.json()
    new = ScheduledSession.objects.get(course=course, key="prep-2", superseded=False)
    assert new.pk != prep.pk and new.start == evening
    assert Deviation.objects.filter(session=new, kind=Deviation.Kind.OUTSIDE_HOURS).exists()
