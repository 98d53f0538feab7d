"""Calendar downloads (.ics) from the pages and the REST API: every export route answers a
calendar that a second parser (vobject) reads back with each session at its wall time in the
site's zone; the same export twice is the same bytes; a moved session keeps its UID with a
higher SEQUENCE and a cancelled one stays, cancelled; another site's calendar is a 404 and a
therapist's is what the access policy lets them see; a participant's own calendar names
neither their code nor a room and holds no forbidden word; the queries do not grow with the
number of participants; a participant's export is in the access log."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from scheduling import messages
from scheduling.models import AccessLog, Dyad, Room, ScheduledSession, Site
from scheduling.services import session_reschedule, session_set_status
from tests.conftest import enrol_mapp, make_staff

pytestmark = pytest.mark.django_db

#: words no staff title may hold: the drug and the diagnosis, and the protocol's own titles
STAFF_TITLE_WORDS = ("mdma", "midomafetamine", "ptsd", "trauma", "dose", "dosing", "session 1")


def page_paths(site: Site, course: Any, room: Room, therapist: Any) -> dict[str, str]:
    return {
        "participant": f"/calendars/participant/{course.participant.pk}.ics",
        "staff": f"/calendars/staff/{therapist.pk}.ics",
        "room": f"/calendars/room/{room.pk}.ics",
        "site": f"/calendars/site/{site.pk}.ics",
        "mine": "/calendars/mine.ics",
    }


def api_paths(site: Site, course: Any, room: Room, therapist: Any) -> dict[str, str]:
    return {
        "participant": f"/api/participants/{course.participant.pk}/calendar.ics",
        "staff": f"/api/staff/{therapist.pk}/calendar.ics",
        "room": f"/api/rooms/{room.pk}/calendar.ics",
        "site": f"/api/sites/{site.pk}/calendar.ics",
        "mine": "/api/me/calendar.ics",
    }


def expected_sessions(kind: str, site: Site, course: Any, room: Room, user: Any) -> set[int]:
    """The sessions each calendar must hold (for a coordinator, who sees the whole site)."""
    sessions = ScheduledSession.objects.filter(course__participant__site=site)
    if kind == "participant":
        sessions = sessions.filter(course=course)
    elif kind == "staff":
        sessions = sessions.filter(staff__user=user, staff__active=True)
    elif kind == "room":
        sessions = sessions.filter(room=room)
    return set(sessions.values_list("pk", flat=True))


def read(body: bytes) -> Any:
    return vobject.readOne(body.decode("utf-8"))


def events_of(body: bytes) -> list[Any]:
    return list(read(body).contents.get("vevent", []))


@pytest.fixture
def world(site_a: Site, coordinator_a: Any) -> dict[str, Any]:
    """Two courses at site A (a room and a therapist with sessions), a user booked on some."""
    course = enrol_mapp(site_a, "RIV-0042", coordinator_a)
    other = enrol_mapp(site_a, "RIV-0043", coordinator_a, start=date(2027, 3, 8))
    dosing = course.sessions.get(key="dosing-1")
    room = dosing.room
    therapist = course.dyad.therapist_a
    return {"course": course, "other": other, "room": room, "therapist": therapist}


@pytest.fixture
def page_client(coordinator_a: Any) -> Client:
    client = Client()
    client.force_login(coordinator_a)
    return client


@pytest.fixture
def api_client(coordinator_a: Any) -> APIClient:
    _, token = AuthToken.objects.create(coordinator_a)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.mark.parametrize("door", ["page", "api"])
@pytest.mark.parametrize("kind", ["participant", "staff", "room", "site", "mine"])
def test_every_export_reads_back_at_the_sessions_wall_times(
    door: str,
    kind: str,
    site_a: Site,
    world: dict[str, Any],
    page_client: Client,
    api_client: APIClient,
) -> None:
    course, room, therapist = world["course"], world["room"], world["therapist"]
    client: Any = page_client if door == "page" else api_client
    paths = (page_paths if door == "page" else api_paths)(site_a, course, room, therapist)
    if kind == "mine":  # the therapist's own, signed in as them
        client = Client() if door == "page" else APIClient()
        client.force_login(therapist) if door == "page" else client.force_authenticate(therapist)
    response = client.get(paths[kind])
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert {"private", "no-store"} <= set(response["Cache-Control"].split(", "))
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.endswith('.ics"')
    assert "RIV" not in disposition and room.name not in disposition  # no PHI in the name
    body = response.content
    events = events_of(body)
    stored = {
        str(s.uid): s for s in ScheduledSession.objects.filter(course__participant__site=site_a)
    }
    user = therapist
    want = expected_sessions("staff" if kind == "mine" else kind, site_a, course, room, user)
    assert want, "the calendar would prove nothing empty"
    assert {stored[e.uid.value].pk for e in events} == want
    assert len(events) == len(want)  # each session once
    zone = ZoneInfo(site_a.timezone)
    for event in events:
        session = stored[event.uid.value]
        start = event.dtstart.value
        assert start.replace(tzinfo=None) == session.start.astimezone(zone).replace(tzinfo=None)
        assert start == session.start  # the same instant too
        if not session.overnight:
            assert event.dtend.value == session.end
        else:  # an overnight stay runs to the next morning
            assert event.dtend.value.astimezone(zone).date() > session.start.astimezone(zone).date()
        assert int(event.sequence.value) == session.sequence
        assert event.status.value == "CONFIRMED"


@pytest.mark.parametrize("kind", ["participant", "staff", "room", "site", "mine"])
def test_names_with_commas_semicolons_and_line_breaks_are_escaped(
    kind: str, site_a: Site, world: dict[str, Any], page_client: Client
) -> None:
    """A site or room named with the characters iCalendar TEXT escapes: every calendar still
    downloads (the calendar's name was written unescaped: a line break was a 500), and both
    parsers read each name back as written; no line is longer than 75 octets (folded)."""
    site_a.name = "Clinic; A, B\nC"
    site_a.address = "1 Main St, Suite 2;\nTown"
    site_a.save()
    room = world["room"]
    room.name = "Room; 1, east"
    room.save()
    course, therapist = world["course"], world["therapist"]
    client = page_client
    if kind == "mine":
        client = Client()
        client.force_login(therapist)
    response = client.get(page_paths(site_a, course, room, therapist)[kind])
    assert response.status_code == 200, response.content[:300]
    body = response.content
    assert all(len(line) <= 75 for line in body.split(b"\r\n"))
    parsed = icalendar.Calendar.from_ical(body)
    other = read(body)
    name = other.contents["x-wr-calname"][0].value
    assert name == other.contents["name"][0].value
    if kind in ("participant", "site"):
        assert site_a.name in name
    if kind == "room":
        assert name == f"{room.name}, {site_a.name}"
    texts = []
    for event, second in zip(parsed.walk("VEVENT"), other.contents["vevent"], strict=True):
        for field in ("summary", "location", "description"):
            if field in second.contents:
                assert str(event[field]) == second.contents[field][0].value
                texts.append(second.contents[field][0].value)
    assert texts and any(site_a.name in text for text in texts)


def test_the_same_export_twice_is_the_same_bytes(
    site_a: Site, world: dict[str, Any], page_client: Client
) -> None:
    paths = page_paths(site_a, world["course"], world["room"], world["therapist"])
    for path in paths.values():
        assert page_client.get(path).content == page_client.get(path).content, path


def test_a_moved_session_keeps_its_uid_with_a_higher_sequence(
    site_a: Site, coordinator_a: Any, page_client: Client
) -> None:
    # a Thursday start: dosing-1 on Monday 29 March 2027, 09:00; two days later is in its window
    course = enrol_mapp(site_a, "RIV-0050", coordinator_a, start=date(2027, 3, 4))
    dosing = course.sessions.get(key="dosing-1")
    path = f"/calendars/participant/{course.participant.pk}.ics"
    before = {e.uid.value: e for e in events_of(page_client.get(path).content)}
    new = datetime(2027, 3, 31, 9, tzinfo=ZoneInfo("America/New_York"))
    session_reschedule(session=dosing, start=new, by=coordinator_a)
    after = {e.uid.value: e for e in events_of(page_client.get(path).content)}
    uid = str(dosing.uid)
    assert set(after) == set(before)  # no event appears twice, none is lost
    assert int(after[uid].sequence.value) > int(before[uid].sequence.value)
    assert after[uid].dtstart.value == new
    assert after[uid].dtstart.value.replace(tzinfo=None) == datetime(2027, 3, 31, 9)


def test_a_cancelled_session_stays_cancelled(
    site_a: Site, coordinator_a: Any, world: dict[str, Any], page_client: Client
) -> None:
    course = world["course"]
    session = course.sessions.get(key="prep-2")
    site_path = f"/calendars/site/{site_a.pk}.ics"
    before = {e.uid.value: e for e in events_of(page_client.get(site_path).content)}
    session_set_status(session=session, status="cancelled", reason="unwell", by=coordinator_a)
    for path in (site_path, f"/calendars/participant/{course.participant.pk}.ics"):
        after = {e.uid.value: e for e in events_of(page_client.get(path).content)}
        event = after[str(session.uid)]
        assert event.status.value == "CANCELLED"
        assert event.summary.value.startswith("Cancelled: ")
    assert int(event.sequence.value) > int(before[str(session.uid)].sequence.value)


@pytest.mark.parametrize("door", ["page", "api"])
def test_another_sites_calendars_are_404(
    door: str, site_a: Site, site_b: Site, world: dict[str, Any], coordinator_b: Any
) -> None:
    client: Any = Client() if door == "page" else APIClient()
    client.force_login(coordinator_b) if door == "page" else client.force_authenticate(
        coordinator_b
    )
    paths = (page_paths if door == "page" else api_paths)(
        site_a, world["course"], world["room"], world["therapist"]
    )
    for kind in ("participant", "staff", "room", "site"):
        response = client.get(paths[kind])
        assert response.status_code == 404, kind
        assert b"RIV" not in response.content
    assert not AccessLog.objects.filter(user=coordinator_b).exists()
    mine = client.get(paths["mine"])  # their own: nothing of site A
    assert mine.status_code == 200 and events_of(mine.content) == []


def test_a_therapist_sees_only_what_the_policy_lets_them(
    site_a: Site, world: dict[str, Any]
) -> None:
    """A therapist of one dyad: their participant's course, not the other dyad's participant;
    the site's and a room's calendars hold only the courses they treat."""
    course, other = world["course"], world["other"]
    therapist = course.dyad.therapist_a
    assert other.dyad != course.dyad
    client = Client()
    client.force_login(therapist)
    assert client.get(f"/calendars/participant/{course.participant.pk}.ics").status_code == 200
    assert client.get(f"/calendars/participant/{other.participant.pk}.ics").status_code == 404
    mine = set(course.sessions.values_list("uid", flat=True))
    for path in (f"/calendars/site/{site_a.pk}.ics", f"/calendars/room/{world['room'].pk}.ics"):
        response = client.get(path)
        assert response.status_code == 200
        uids = {e.uid.value for e in events_of(response.content)}
        assert uids and uids <= {str(u) for u in mine}, path
        assert b"RIV-0043" not in response.content
    # another therapist's calendar: only the sessions of courses this therapist treats
    colleague = other.dyad.therapist_a
    response = client.get(f"/calendars/staff/{colleague.pk}.ics")
    assert response.status_code == 200
    assert {e.uid.value for e in events_of(response.content)} <= {str(u) for u in mine}
    # a remote assessor reaches no participant's and no room's calendar
    assessor = make_staff("assessor-x", "assessor", site_a)
    client.force_login(assessor)
    assert client.get(f"/calendars/participant/{course.participant.pk}.ics").status_code == 404
    assert client.get(f"/calendars/room/{world['room'].pk}.ics").status_code == 404


def test_a_participants_calendar_names_neither_code_nor_room_nor_treatment(
    site_a: Site, world: dict[str, Any], page_client: Client
) -> None:
    course = world["course"]
    body = page_client.get(f"/calendars/participant/{course.participant.pk}.ics").content
    text = body.decode()
    assert "RIV-0042" not in text
    for room in Room.objects.filter(site=site_a):
        assert room.name not in text
    calendar = read(body)
    words = [calendar.contents["x-wr-calname"][0].value]
    for event in calendar.contents["vevent"]:
        for field in ("summary", "description", "location"):
            if field in event.contents:
                words.append(event.contents[field][0].value)
    found = messages.forbidden_words_in("\n".join(words))
    assert not found, f"forbidden words in the participant's calendar: {found}"
    assert settings.REMINDER_FORBIDDEN_WORDS  # the check had words to look for
    assert any("How to prepare" in w for w in words)  # participant-facing, not staff's


def test_preparation_notes_that_name_the_treatment_stay_out_of_a_participants_calendar(
    site_a: Site, world: dict[str, Any], page_client: Client
) -> None:
    """A protocol's notes that a participant reminder may not carry (a forbidden word, the
    study code) are left out of the participant's calendar too; clean notes stay."""
    from protocol.models import SessionTemplate

    course = world["course"]
    templates = SessionTemplate.objects.filter(version=course.protocol_version)
    assert templates.filter(key__in=["dosing-1", "closing"]).count() == 2
    templates.filter(key="dosing-1").update(preparation="Take no other drugs that week.")
    templates.filter(key="closing").update(preparation="Bring the form marked RIV-0042.")
    messages._FACTS.clear()
    body = page_client.get(f"/calendars/participant/{course.participant.pk}.ics").content
    descriptions = [e.description.value for e in events_of(body) if "description" in e.contents]
    text = "\n".join(descriptions)
    assert not messages.forbidden_words_in(text), text
    assert "RIV-0042" not in text
    assert "How to prepare" in text  # the other sessions' notes are still there


def test_staff_titles_name_neither_drug_nor_diagnosis(
    site_a: Site, world: dict[str, Any], page_client: Client
) -> None:
    body = page_client.get(f"/calendars/site/{site_a.pk}.ics").content
    summaries = [e.summary.value for e in events_of(body)]
    assert any("RIV-0042" in s for s in summaries)  # staff read the study code
    for summary in summaries:
        for word in STAFF_TITLE_WORDS:
            assert word not in summary.lower(), summary


def test_a_participants_export_is_in_the_access_log(
    coordinator_a: Any, world: dict[str, Any], page_client: Client, api_client: APIClient
) -> None:
    participant = world["course"].participant
    page_client.get(f"/calendars/participant/{participant.pk}.ics")
    api_client.get(f"/api/participants/{participant.pk}/calendar.ics")
    logged = AccessLog.objects.filter(participant=participant, user=coordinator_a)
    assert sorted(logged.values_list("door", "route")) == [
        ("export", "api:calendar-participant"),
        ("export", "calendar-participant"),
    ]


def test_the_queries_do_not_grow_with_the_participants(
    site_a: Site, coordinator_a: Any, page_client: Client
) -> None:
    enrol_mapp(site_a, "RIV-0100", coordinator_a)
    path = f"/calendars/site/{site_a.pk}.ics"
    page_client.get(path)  # the protocol's words, read once per process
    with CaptureQueriesContext(connection) as one:
        first = page_client.get(path)
    dyads = list(Dyad.objects.filter(site=site_a))
    for n in range(1, 4):
        enrol_mapp(
            site_a,
            f"RIV-01{n:02}",
            coordinator_a,
            date(2027, 3, 1) + timedelta(weeks=n),
            dyads[n % 2],
        )
    with CaptureQueriesContext(connection) as many:
        more = page_client.get(path)
    assert len(events_of(more.content)) == 4 * len(events_of(first.content))
    assert len(many) == len(one), [q["sql"][:120] for q in many.captured_queries]


def test_the_api_answers_a_calendar_client_that_accepts_only_text_calendar(
    site_a: Site, world: dict[str, Any], api_client: APIClient
) -> None:
    path = f"/api/sites/{site_a.pk}/calendar.ics"
    response = api_client.get(path, HTTP_ACCEPT="text/calendar")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    missing = api_client.get("/api/sites/999999/calendar.ics", HTTP_ACCEPT="text/calendar")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/json"
    assert APIClient().get(path).status_code in (401, 403)  # no token: no calendar


def test_the_api_schema_documents_the_calendars() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in (
        "/api/participants/{id}/calendar.ics",
        "/api/staff/{id}/calendar.ics",
        "/api/rooms/{id}/calendar.ics",
        "/api/sites/{id}/calendar.ics",
        "/api/me/calendar.ics",
    ):
        get = schema["paths"][path]["get"]
        assert list(get["responses"]["200"]["content"]) == ["text/calendar"], path
        assert "application/json" in get["responses"]["401"]["content"], path


def test_the_pages_link_the_downloads(
    site_a: Site, world: dict[str, Any], page_client: Client
) -> None:
    participant = world["course"].participant
    page = page_client.get(f"/participants/{participant.pk}/").content.decode()
    assert f"/calendars/participant/{participant.pk}.ics" in page
    calendar = page_client.get("/calendar/").content.decode()
    assert f"/calendars/site/{site_a.pk}.ics" in calendar
    assert f"/calendars/room/{world['room'].pk}.ics" in calendar
    by_therapist = page_client.get("/calendar/?by=therapist").content.decode()
    assert f"/calendars/staff/{world['therapist'].pk}.ics" in by_therapist
    me = page_client.get("/me/")
    assert me.status_code == 200
    assert "/calendars/mine.ics" in me.content.decode()
    assert 'href="/me/"' in page  # every page links the user's own


def test_a_download_is_get_only(site_a: Site, world: dict[str, Any], page_client: Client) -> None:
    assert page_client.post(f"/calendars/site/{site_a.pk}.ics").status_code == 405
