"""CSV exports for coordinators: a site's sessions in a range of local dates (filters, local
times with their zone across a DST change, deviations, formula cells neutralised, streamed),
a participant's planned versus actual (every protocol session, held or not), who may export
what (another site's is a 404), bad input as form errors and 400s, and the API's schema."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from scheduling import exports, services
from scheduling.models import AccessLog, Dyad, Room, ScheduledSession, StaffBooking
from tests.conftest import enrol_mapp, make_staff, once_over

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
MARCH = {"from": "2027-03-01", "to": "2027-03-31"}


def site_url(site: Any) -> str:
    return f"/exports/sites/{site.pk}/sessions/"


def api_site_url(site: Any) -> str:
    return f"/api/sites/{site.pk}/sessions-export/"


def read_csv(response: Any) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def signed_in(user: Any, api: bool = False) -> Any:
    client = APIClient() if api else Client()
    client.force_login(user)
    return client


def session(course: Any, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key, superseded=False)


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Any:
    return enrol_mapp(site_a, "P-001", coordinator_a)


# --- the site's sessions -------------------------------------------------------------------


def test_columns_are_documented_and_times_are_local_with_their_zone_across_dst(
    course, site_a, coordinator_a
) -> None:
    response = signed_in(coordinator_a).get(site_url(site_a), MARCH)

    assert response.status_code == 200
    rows = read_csv(response)
    assert list(rows[0]) == [name for name, _ in exports.SITE_COLUMNS]
    by_key = {row["protocol session"]: row for row in rows}
    # 14 March 2027 the clocks go forward: 10:00 stays 10:00, the zone says which
    assert by_key["prep-2"]["start"] == "2027-03-08 10:00 EST"
    assert by_key["prep-2"]["end"] == "2027-03-08 11:30 EST"
    assert by_key["prep-3"]["start"] == "2027-03-15 10:00 EDT"
    assert by_key["prep-2"]["time zone"] == "America/New_York"
    prep = session(course, "prep-2")
    assert prep.start == datetime(2027, 3, 8, 10, tzinfo=NEW_YORK)
    assert by_key["prep-2"]["window start"] == prep.window_start.isoformat()
    assert by_key["prep-2"]["window end"] == prep.window_end.isoformat()
    assert by_key["prep-2"]["room"] == prep.room.name  # type: ignore[union-attr]
    assert by_key["prep-2"]["staff"] == "a-t1a; a-t1b"
    assert by_key["prep-2"]["study code"] == "P-001"
    assert by_key["prep-2"]["status"] == "planned"
    assert by_key["prep-2"]["sequence"] == "0"
    assert by_key["prep-2"]["days outside window"] == "0"
    # staff words, never the treatment
    assert by_key["dosing-1"]["kind"] == "full-day session"
    kinds = " ".join(row["kind"] for row in rows).lower()
    for word in ("dosing", "mdma", "dose", "ptsd"):
        assert word not in kinds
    # only sessions starting on the range's local dates, in start order
    starts = [session(course, row["protocol session"]).start for row in rows]
    assert starts == sorted(starts)
    assert all(s.astimezone(NEW_YORK).month == 3 for s in starts)
    in_march = ScheduledSession.objects.filter(
        course=course,
        start__gte=datetime(2027, 3, 1, tzinfo=NEW_YORK),
        start__lt=datetime(2027, 4, 1, tzinfo=NEW_YORK),
    )
    assert len(rows) == in_march.count() > 5


def test_the_range_is_the_sites_local_dates(course, site_a, coordinator_a) -> None:
    one_day = {"from": "2027-03-08", "to": "2027-03-08"}
    rows = read_csv(signed_in(coordinator_a).get(site_url(site_a), one_day))
    assert [row["protocol session"] for row in rows] == ["prep-2"]


def test_filters_by_kind_status_room_and_staff(course, site_a, coordinator_a) -> None:
    client = signed_in(coordinator_a)
    april = {"from": "2027-03-01", "to": "2027-04-30"}

    phone = read_csv(client.get(site_url(site_a), {**april, "kind": "phone_checkin"}))
    assert phone and {row["kind"] for row in phone} == {"phone check-in"}

    cancelled = session(course, "integration-1c")
    services.session_set_status(
        session=cancelled, status="cancelled", reason="unwell", by=coordinator_a
    )
    rows = read_csv(client.get(site_url(site_a), {**april, "status": "cancelled"}))
    assert "integration-1c" in [row["protocol session"] for row in rows]
    assert {row["status"] for row in rows} == {"cancelled"}

    dosing_room = session(course, "dosing-1").room
    assert dosing_room is not None
    rows = read_csv(client.get(site_url(site_a), {**april, "room": dosing_room.pk}))
    assert rows and {row["room"] for row in rows} == {dosing_room.name}

    assessor = StaffBooking.objects.get(session=session(course, "baseline"), active=True).user
    rows = read_csv(client.get(site_url(site_a), {**april, "therapist": assessor.pk}))
    assert [row["protocol session"] for row in rows] == ["baseline", "interim-1"]


def test_a_session_moved_out_of_its_window_shows_the_deviation_and_the_days(
    course, site_a, coordinator_a
) -> None:
    prep = session(course, "prep-2")
    assert prep.window_end == date(2027, 3, 15)
    services.session_reschedule(
        session=prep,
        start=datetime(2027, 3, 17, 10, tzinfo=NEW_YORK),
        reason="participant travelling",
        by=coordinator_a,
    )

    rows = read_csv(signed_in(coordinator_a).get(site_url(site_a), MARCH))

    row = next(r for r in rows if r["protocol session"] == "prep-2")
    assert row["start"] == "2027-03-17 10:00 EDT"
    assert row["days outside window"] == "2"
    assert row["deviations"] == "session outside its window: participant travelling"
    assert int(row["sequence"]) >= 1


def test_formula_cells_are_neutralised(course, site_a, coordinator_a) -> None:
    room = session(course, "prep-2").room
    assert room is not None
    Room.objects.filter(pk=room.pk).update(name='=HYPERLINK("http://evil.example","x")')
    therapist = course.dyad.therapist_a
    therapist.first_name, therapist.last_name = "@SUM(1+1)", ""
    therapist.save()
    site_a.name = "-2+3 clinic"  # the site's name: never a cell, and no formula anywhere
    site_a.save()

    response = signed_in(coordinator_a).get(site_url(site_a), MARCH)

    text = b"".join(response.streaming_content).decode("utf-8-sig")
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["protocol session"] == "prep-2")
    assert row["room"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["staff"].startswith("'@SUM(1+1)")
    for line in csv.reader(io.StringIO(text)):
        for cell in line:
            assert not cell.startswith(exports.FORMULA_STARTS), cell


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_neutralised_and_numbers_stay_numbers(start: str) -> None:
    assert exports.neutralise(f"{start}1+1") == f"'{start}1+1"
    assert exports.neutralise("P-001") == "P-001"
    assert exports.neutralise(-3) == -3  # days early: our own number, not a formula


def test_the_file_is_streamed_with_a_name_without_phi(course, site_a, coordinator_a) -> None:
    response = signed_in(coordinator_a).get(site_url(site_a), MARCH)

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="sessions-a-2027-03-01-to-2027-03-31.csv"'
    )
    assert "P-001" not in response["Content-Disposition"]
    assert "no-store" in response["Cache-Control"]


def test_queries_do_not_grow_with_the_sessions(site_a, coordinator_a) -> None:
    """Each chunk of rows is read with its staff and deviations in a fixed number of queries."""

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            rows = read_csv(signed_in(coordinator_a).get(site_url(site_a), MARCH))
        assert rows
        return len(captured)

    enrol_mapp(site_a, "P-001", coordinator_a)
    one = queries()
    enrol_mapp(site_a, "P-002", coordinator_a, start=date(2027, 3, 2))
    assert queries() == one


# --- planned versus actual -----------------------------------------------------------------


def test_planned_versus_actual_has_every_protocol_session_held_or_not(
    course, site_a, coordinator_a
) -> None:
    participant = course.participant
    missed = session(course, "phone-1.2")
    with once_over(missed):
        services.session_set_status(
            session=missed, status="missed", reason="no answer", by=coordinator_a
        )
    prep = session(course, "prep-1")
    with once_over(prep):
        services.session_set_status(session=prep, status="completed", by=coordinator_a)
    cancelled = session(course, "prep-2")
    services.session_set_status(
        session=cancelled, status="cancelled", reason="snow", by=coordinator_a
    )
    services.session_rebook(
        session=ScheduledSession.objects.get(pk=cancelled.pk),
        start=datetime(2027, 3, 10, 10, tzinfo=NEW_YORK),
        by=coordinator_a,
    )
    # a protocol session the course never had a session for
    never = session(course, "follow-up")
    for model in (StaffBooking, never.rooms.model, never.reminders.model):
        model.objects.filter(session=never).delete()
    never.delete()
    services.course_end(course=course, reason="moved away", by=coordinator_a)

    response = signed_in(coordinator_a).get(f"/participants/{participant.pk}/planned-vs-actual/")

    assert isinstance(response, StreamingHttpResponse)
    rows = read_csv(response)
    assert list(rows[0]) == [name for name, _ in exports.PLANNED_COLUMNS]
    spec_keys = [row["protocol session"] for row in rows]
    assert len(spec_keys) == len(set(spec_keys)) == 36  # the whole protocol, once each
    assert spec_keys[0] == "prep-1" and spec_keys[-1] == "follow-up"
    by_key = {row["protocol session"]: row for row in rows}
    assert by_key["prep-1"]["status"] == "completed"
    assert by_key["prep-1"]["actual start"] == "2027-03-01 10:00 EST"
    assert by_key["prep-1"]["days outside window"] == "0"
    assert by_key["phone-1.2"]["status"] == "missed"
    assert by_key["phone-1.2"]["actual start"] == ""
    assert by_key["phone-1.2"]["days outside window"] == ""
    assert "session missed: no answer" in by_key["phone-1.2"]["deviations"]
    rebooked = by_key["prep-2"]
    assert rebooked["times rebooked"] == "1"
    assert rebooked["scheduled start"] == "2027-03-10 10:00 EST"
    assert "session cancelled: snow" in rebooked["deviations"]
    # ended early: what was still ahead is cancelled, with the reason
    assert by_key["dosing-3"]["status"] == "cancelled"
    assert "moved away" in by_key["dosing-3"]["deviations"]
    assert by_key["follow-up"]["status"] == "not booked"
    assert by_key["follow-up"]["scheduled start"] == ""
    assert by_key["follow-up"]["course start"] == "2027-03-01"
    name = response["Content-Disposition"]
    assert f"participant-{participant.pk}-" in name and "P-001" not in name
    log = AccessLog.objects.get(participant=participant, user=coordinator_a)
    assert (log.door, log.route) == ("export", "participant-planned-vs-actual")


def test_the_participant_page_links_to_planned_versus_actual(course, coordinator_a) -> None:
    page = signed_in(coordinator_a).get(f"/participants/{course.participant_id}/")
    assert f"/participants/{course.participant_id}/planned-vs-actual/" in page.content.decode()


# --- who may export ------------------------------------------------------------------------


def test_another_sites_site_and_participant_are_404(course, site_a, coordinator_b) -> None:
    page, api = signed_in(coordinator_b), signed_in(coordinator_b, api=True)
    assert page.get(site_url(site_a), MARCH).status_code == 404
    assert api.get(api_site_url(site_a), MARCH).status_code == 404
    pk = course.participant_id
    assert page.get(f"/participants/{pk}/planned-vs-actual/").status_code == 404
    assert api.get(f"/api/participants/{pk}/planned-vs-actual/").status_code == 404
    assert page.get("/exports/", {"site": "a"}).status_code == 404
    assert not AccessLog.objects.filter(participant_id=pk).exists()


def test_therapists_may_not_export_the_site_but_may_export_their_participant(
    course, site_a, coordinator_a
) -> None:
    other = enrol_mapp(
        site_a,
        "P-002",
        coordinator_a,
        dyad=Dyad.objects.exclude(pk=course.dyad_id).get(site=site_a),
    )
    therapist = course.dyad.therapist_a
    page, api = signed_in(therapist), signed_in(therapist, api=True)

    assert page.get(site_url(site_a), MARCH).status_code == 403
    assert api.get(api_site_url(site_a), MARCH).status_code == 403
    assert page.get("/exports/").status_code == 403
    assert "/exports/" not in page.get("/today/").content.decode()  # no menu entry
    treated = page.get(f"/participants/{course.participant_id}/planned-vs-actual/")
    assert treated.status_code == 200 and read_csv(treated)
    assert page.get(f"/participants/{other.participant_id}/planned-vs-actual/").status_code == 404
    response = api.get(f"/api/participants/{course.participant_id}/planned-vs-actual/")
    assert response.status_code == 200
    assert AccessLog.objects.filter(door="api", route="participant-planned-vs-actual").exists()


def test_assessors_and_night_attendants_export_nothing(course, site_a, coordinator_a) -> None:
    assessor = StaffBooking.objects.get(session=session(course, "baseline"), active=True).user
    night = make_staff("night-a", "night_attendant", site_a)
    services.night_attendant_book(
        session=session(course, "dosing-1"), attendant=night, by=coordinator_a
    )
    participant_url = f"/participants/{course.participant_id}/planned-vs-actual/"

    for user in (assessor, night):
        client = signed_in(user)
        assert client.get(site_url(site_a), MARCH).status_code == 403
    # blinded: the participant does not exist for the assessor
    assert signed_in(assessor).get(participant_url).status_code == 404
    # a night attendant sees the participant of their night, not the whole course
    assert signed_in(night).get(participant_url).status_code == 403


def test_the_exports_page_offers_the_form_to_coordinators(site_a, coordinator_a) -> None:
    client = signed_in(coordinator_a)
    page = client.get("/exports/").content.decode()
    assert f'action="{site_url(site_a)}"' in page
    assert 'name="from"' in page and 'name="therapist"' in page
    assert 'href="/exports/"' in client.get("/today/").content.decode()


# --- bad input -----------------------------------------------------------------------------

BAD = [
    ({"to": "2027-03-31"}, "from", "required"),
    ({"from": "2027-02-30", "to": "2027-03-31"}, "from", "valid date"),
    ({"from": "1899-01-01", "to": "2027-03-31"}, "from", "between the years"),
    ({"from": "2027-03-31", "to": "2027-03-01"}, "to", "before the first"),
    ({"from": "2027-01-01", "to": "2028-01-02"}, "to", "at most 366 days"),
    ({**MARCH, "room": "99999999999999999999999"}, "room", "No room"),
    ({**MARCH, "room": "abc"}, "room", "No room"),
    ({**MARCH, "therapist": "0"}, "therapist", "No staff member"),
    ({**MARCH, "kind": "séance"}, "kind", "valid choice"),
    ({**MARCH, "status": "gone"}, "status", "valid choice"),
]


@pytest.mark.parametrize(("query", "field", "words"), BAD)
def test_bad_input_is_a_form_error_on_the_page(query, field, words, site_a, coordinator_a) -> None:
    response = signed_in(coordinator_a).get(site_url(site_a), query)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert words in response.content.decode().replace("&#x27;", "'")


@pytest.mark.parametrize(("query", "field", "words"), BAD)
def test_bad_input_is_a_400_with_field_errors_in_the_api(
    query, field, words, site_a, coordinator_a
) -> None:
    response = signed_in(coordinator_a, api=True).get(api_site_url(site_a), query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert any(words in message for message in response.json()[field])


def test_another_sites_room_and_staff_are_unknown(site_a, site_b, coordinator_a) -> None:
    room_b = Room.objects.filter(site=site_b).order_by("pk")[0]
    staff_b = make_staff("b-someone", "therapist", site_b)
    api = signed_in(coordinator_a, api=True)
    response = api.get(api_site_url(site_a), {**MARCH, "room": room_b.pk, "therapist": staff_b.pk})
    assert response.status_code == 400
    assert set(response.json()) == {"room", "therapist"}


def test_an_empty_api_parameter_is_an_error_and_errors_stay_json(site_a, coordinator_a) -> None:
    api = signed_in(coordinator_a, api=True)
    response = api.get(api_site_url(site_a), {**MARCH, "room": ""}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response.json() == {"room": ["Give a value, or leave the parameter out."]}


def test_the_api_answers_csv(course, site_a, coordinator_a) -> None:
    response = signed_in(coordinator_a, api=True).get(api_site_url(site_a), MARCH)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("study code,")  # no byte-order mark for programs
    assert "2027-03-08 10:00 EST" in text


# --- the contract --------------------------------------------------------------------------


def test_the_schema_documents_the_csv_endpoints() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    site = schema["paths"]["/api/sites/{id}/sessions-export/"]["get"]
    assert "text/csv" in site["responses"]["200"]["content"]
    assert {"400", "401", "403", "404"} <= set(site["responses"])
    params = {p["name"]: p for p in site["parameters"]}
    assert params["from"]["required"] and params["to"]["required"]
    assert {"kind", "status", "room", "therapist"} <= set(params)
    assert "phone_checkin" in params["kind"]["schema"]["enum"]
    planned = schema["paths"]["/api/participants/{id}/planned-vs-actual/"]["get"]
    assert "text/csv" in planned["responses"]["200"]["content"]
    assert "404" in planned["responses"]


def test_the_readme_documents_the_columns() -> None:
    readme = (django_settings.BASE_DIR / "README.md").read_text()
    assert exports.columns_markdown(exports.SITE_COLUMNS) in readme
    assert exports.columns_markdown(exports.PLANNED_COLUMNS) in readme


def test_a_whole_year_is_allowed(site_a, coordinator_a) -> None:
    response = signed_in(coordinator_a).get(
        site_url(site_a), {"from": "2028-01-01", "to": "2028-12-31"}
    )
    assert response.status_code == 200  # 366 days: a leap year, both ends included
