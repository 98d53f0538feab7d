"""The scheduling REST API: enrolment, participants, sessions and their actions, sites, rooms,
staff and dyads, authentication, site scoping on every route, bad input, the OpenAPI schema.

State is built through the API itself (or the services); expectations are read back from the
database rows, never copied from an earlier response."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from scheduling.models import (
    Course,
    Deviation,
    Dyad,
    Participant,
    Room,
    RoomBooking,
    ScheduledSession,
    StaffBooking,
)
from scheduling.services import SchedulingError, participant_enrol
from tests.conftest import make_site, make_staff

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
SESSION_FIELDS = {
    "id",
    "key",
    "kind",
    "start",
    "end",
    "status",
    "window_start",
    "window_end",
    "room",
    "therapists",
}
PARTICIPANT_FIELDS = {"id", "code", "site", "status", "partner", "created_at", "courses"}


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # make_site creates a dozen users; the production hasher would make up most of the runtime
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- helpers -------------------------------------------------------------------------------


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)  # session authentication, as the staff pages use it
    return client


@pytest.fixture
def client_a(coordinator_a: Any) -> APIClient:
    return client_for(coordinator_a)


@pytest.fixture
def client_b(coordinator_b: Any) -> APIClient:
    return client_for(coordinator_b)


def enrol(client: APIClient, **fields: Any) -> Any:
    body = {
        "code": "P-001",
        "site": "a",
        "protocol": "mapp-ptsd",
        "start_date": "2027-03-01",
        **fields,
    }
    return client.post("/api/participants/", body, format="json")


@pytest.fixture
def enrolled(client_a: APIClient) -> dict[str, Any]:
    response = enrol(client_a)
    assert response.status_code == 201, response.json()
    data: dict[str, Any] = response.json()
    return data


@contextmanager
def signed_in_at(moment: datetime, client: APIClient, user: Any) -> Iterator[None]:
    """The clock stopped at ``moment`` and ``client`` signed in afresh: the suite's courses lie
    ahead, and a login from today would have expired by the time they take place."""
    with time_machine.travel(moment, tick=False):
        client.force_login(user)
        yield


def results(response: Any) -> list[Any]:
    """The items of a list's page, after checking the page's envelope."""
    assert response.status_code == 200, response.json()
    data = response.json()
    assert set(data) == {"count", "next", "previous", "results"}
    assert data["count"] >= len(data["results"])
    items: list[Any] = data["results"]
    return items


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Participant, Course, ScheduledSession, RoomBooking, StaffBooking, Deviation)
    }


def session_row(participant_code: str, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course__participant__code=participant_code, key=key)


def snapshot(session: ScheduledSession) -> tuple[Any, ...]:
    session.refresh_from_db()
    return (session.start, session.end, session.status, session.sequence, session.room_id)


def active_staff(session_id: int) -> list[int]:
    return sorted(
        StaffBooking.objects.filter(session_id=session_id, active=True).values_list(
            "user_id", flat=True
        )
    )


# --- enrolment -----------------------------------------------------------------------------


def test_enrolment_answers_201_with_the_participant_and_every_session(
    client_a, coordinator_a
) -> None:
    response = enrol(client_a)

    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == PARTICIPANT_FIELDS | {"sessions"}
    participant = Participant.objects.get(site__slug="a", code="P-001")
    assert (data["id"], data["code"], data["site"], data["status"]) == (
        participant.pk,
        "P-001",
        "a",
        "enrolled",
    )
    course = Course.objects.get(participant=participant)
    assert data["courses"] == [
        {
            "id": course.pk,
            "participant": participant.pk,
            "partner": None,
            "protocol": "mapp-ptsd",
            "protocol_version": course.protocol_version.version,
            "dyad": course.dyad_id,
            "start_date": "2027-03-01",
            "status": "active",
        }
    ]
    rows = {s.pk: s for s in ScheduledSession.objects.filter(course=course)}
    assert len(data["sessions"]) == len(rows) == 36
    assert course.dyad is not None
    for item in data["sessions"]:
        assert set(item) == SESSION_FIELDS
        row = rows[item["id"]]
        assert item["key"] == row.key
        assert item["kind"] == row.kind
        assert datetime.fromisoformat(item["start"]) == row.start
        assert datetime.fromisoformat(item["end"]) == row.end
        assert item["status"] == "planned"
        assert item["window_start"] == row.window_start.isoformat()
        assert item["window_end"] == row.window_end.isoformat()
        assert item["room"] == row.room_id
        assert item["therapists"] == active_staff(row.pk)
        if row.kind == "dosing":
            assert item["room"] is not None
            assert item["therapists"] == sorted(course.dyad.therapist_ids)
    starts = [datetime.fromisoformat(s["start"]) for s in data["sessions"]]
    assert starts == sorted(starts)
    # the services got the requesting user: the audit history names them
    assert ScheduledSession.history.filter(history_user=coordinator_a).count() == 36


def test_enrolment_with_a_chosen_dyad_books_that_dyad(client_a, site_a) -> None:
    dyad = Dyad.objects.filter(site=site_a).order_by("-pk").first()
    assert dyad is not None

    response = enrol(client_a, dyad=dyad.pk)

    assert response.status_code == 201, response.json()
    assert response.json()["courses"][0]["dyad"] == dyad.pk
    dosing = [s for s in response.json()["sessions"] if s["kind"] == "dosing"]
    assert all(s["therapists"] == sorted(dyad.therapist_ids) for s in dosing)


def test_a_couple_is_enrolled_with_the_partner(db) -> None:
    client = client_for(
        make_staff("coordinator-d", "coordinator", make_site("d", couples_room=True))
    )

    response = enrol(client, site="d", protocol="mdma-cbct-couples", partner_code="P-002")

    assert response.status_code == 201, response.json()
    data = response.json()
    partner = Participant.objects.get(site__slug="d", code="P-002")
    assert data["partner"] == partner.pk
    assert data["sessions"]
    listed = client.get(f"/api/participants/{partner.pk}/").json()
    assert [c["id"] for c in listed["courses"]] == [c["id"] for c in data["courses"]]
    partner_sessions = results(client.get(f"/api/participants/{partner.pk}/sessions/"))
    assert {s["id"] for s in partner_sessions} == {s["id"] for s in data["sessions"]}


# --- authentication ------------------------------------------------------------------------


def test_a_token_authenticates(coordinator_a) -> None:
    _, token = AuthToken.objects.create(coordinator_a)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert [s["slug"] for s in results(client.get("/api/sites/"))] == ["a"]
    response = enrol(client)  # a token request needs no CSRF token
    assert response.status_code == 201, response.json()
    assert ScheduledSession.history.filter(history_user=coordinator_a).count() == 36


def test_a_token_is_obtained_with_the_password(coordinator_a) -> None:
    client = APIClient()
    response = client.post(
        "/api/auth/token/",
        {"username": "coordinator-a", "password": "test-password-1234"},
        format="json",
    )
    assert response.status_code == 200
    key = response.json()["token"]
    assert AuthToken.objects.get(user=coordinator_a).token_key == key[:15]  # kept hashed
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/sites/").status_code == 200

    wrong = APIClient().post(
        "/api/auth/token/", {"username": "coordinator-a", "password": "nope"}, format="json"
    )
    assert wrong.status_code == 400


def test_a_wrong_token_is_401(coordinator_a) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/sites/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_session_authentication_keeps_csrf_protection(coordinator_a) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(coordinator_a)
    assert client.get("/api/sites/").status_code == 200
    response = enrol(client)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Participant.objects.count() == 0


ROUTES = [
    ("get", "/api/sites/"),
    ("get", "/api/sites/1/"),
    ("get", "/api/rooms/"),
    ("get", "/api/rooms/1/"),
    ("get", "/api/staff/"),
    ("get", "/api/staff/1/"),
    ("get", "/api/dyads/"),
    ("get", "/api/dyads/1/"),
    ("get", "/api/participants/"),
    ("post", "/api/participants/"),
    ("get", "/api/participants/1/"),
    ("get", "/api/participants/1/sessions/"),
    ("get", "/api/sessions/"),
    ("get", "/api/sessions/1/"),
    ("post", "/api/sessions/1/reschedule/"),
    ("post", "/api/sessions/1/cancel/"),
    ("post", "/api/sessions/1/status/"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_without_credentials_every_route_is_401(db, method: str, url: str) -> None:
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"


# --- site scoping: coordinator_b sees nothing of site A ------------------------------------


@pytest.fixture
def of_site_a(enrolled, site_a, therapist_a) -> dict[str, int]:
    participant = Participant.objects.get(pk=enrolled["id"])
    session = session_row("P-001", "dosing-1")
    assert session.room_id is not None
    return {
        "site": site_a.pk,
        "room": session.room_id,
        "staff": therapist_a.pk,
        "dyad": Dyad.objects.filter(site=site_a).first().pk,  # type: ignore[union-attr]
        "participant": participant.pk,
        "session": session.pk,
    }


@pytest.fixture
def b_enrolled(client_b, site_b) -> dict[str, Any]:
    response = enrol(client_b, site="b", code="B-001")
    assert response.status_code == 201, response.json()
    data: dict[str, Any] = response.json()
    return data


LISTS = {
    "/api/sites/": "site",
    "/api/rooms/": "room",
    "/api/staff/": "staff",
    "/api/dyads/": "dyad",
    "/api/participants/": "participant",
    "/api/sessions/": "session",
}


@pytest.mark.parametrize("url", list(LISTS))
def test_lists_hold_nothing_of_another_site(url, of_site_a, b_enrolled, client_b) -> None:
    response = client_b.get(url)

    assert response.status_code == 200
    ids = {item["id"] for item in results(response)}
    assert ids, "site B's own objects are listed"
    assert of_site_a[LISTS[url]] not in ids
    model_of_a = {
        "site": lambda: {of_site_a["site"]},
        "room": lambda: set(Room.objects.filter(site__slug="a").values_list("pk", flat=True)),
        "staff": lambda: set(
            Dyad.objects.filter(site__slug="a").values_list("therapist_a", flat=True)
        ),
        "dyad": lambda: set(Dyad.objects.filter(site__slug="a").values_list("pk", flat=True)),
        "participant": lambda: {of_site_a["participant"]},
        "session": lambda: set(
            ScheduledSession.objects.filter(course__participant__site__slug="a").values_list(
                "pk", flat=True
            )
        ),
    }[LISTS[url]]()
    assert not ids & model_of_a


@pytest.mark.parametrize(
    "query", ["therapist={staff}", "room={room}", "status=planned", "from=2027-01-01"]
)
def test_filtered_session_lists_hold_nothing_of_another_site(
    query, of_site_a, b_enrolled, client_b
) -> None:
    response = client_b.get(f"/api/sessions/?{query.format(**of_site_a)}")
    assert response.status_code == 200
    assert of_site_a["session"] not in {s["id"] for s in results(response)}
    assert not {s["participant"] for s in results(response)} & {of_site_a["participant"]}


@pytest.mark.parametrize(
    "url",
    [
        "/api/sites/{site}/",
        "/api/rooms/{room}/",
        "/api/staff/{staff}/",
        "/api/dyads/{dyad}/",
        "/api/participants/{participant}/",
        "/api/participants/{participant}/sessions/",
        "/api/sessions/{session}/",
    ],
)
def test_details_of_another_site_are_404(url, of_site_a, client_a, client_b) -> None:
    assert client_a.get(url.format(**of_site_a)).status_code == 200
    response = client_b.get(url.format(**of_site_a))
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("reschedule", {"start": "2027-03-09T10:00:00-05:00", "dry_run": False}),
        ("cancel", {"reason": "participant asked"}),
        ("status", {"status": "confirmed"}),
    ],
)
def test_actions_on_another_sites_session_are_404(action, body, of_site_a, client_b) -> None:
    session = ScheduledSession.objects.get(pk=of_site_a["session"])
    before, rows = snapshot(session), counts()

    response = client_b.post(f"/api/sessions/{session.pk}/{action}/", body, format="json")

    assert response.status_code == 404
    assert snapshot(session) == before
    assert counts() == rows


def test_naming_another_site_in_input_reads_as_unknown(of_site_a, client_b, site_b) -> None:
    rows = counts()
    other = enrol(client_b, site="a", code="B-9")
    unknown = enrol(client_b, site="no-such-site", code="B-9")
    assert other.status_code == unknown.status_code == 400
    assert other.json() == unknown.json()
    assert set(other.json()) == {"site"}
    assert counts() == rows

    listed = client_b.get("/api/sessions/?site=a")
    assert listed.status_code == 400
    assert listed.json() == client_b.get("/api/sessions/?site=no-such-site").json()

    dyad = enrol(client_b, site="b", code="B-9", dyad=of_site_a["dyad"])
    assert dyad.status_code == 400
    assert set(dyad.json()) == {"dyad"}
    assert counts() == rows


def test_a_colleague_at_both_sites_shows_only_the_readers_sites(site_a, site_b, client_b) -> None:
    shared = make_staff("shared", "therapist", site_a, site_b)
    listed = {s["id"]: s for s in results(client_b.get("/api/staff/"))}
    assert listed[shared.pk]["sites"] == ["b"]
    assert client_b.get(f"/api/staff/{shared.pk}/").json()["sites"] == ["b"]


def test_a_user_of_no_site_sees_nothing(enrolled, db) -> None:
    from django.contrib.auth.models import User

    client = client_for(User.objects.create_user("nobody", password="x-password-1234"))
    for url in LISTS:
        assert client.get(url).json() == {
            "count": 0,
            "next": None,
            "previous": None,
            "results": [],
        }
    assert client.get(f"/api/participants/{enrolled['id']}/").status_code == 404


# --- reads ---------------------------------------------------------------------------------


def test_sites_rooms_staff_and_dyads_are_listed_with_details(client_a, site_a) -> None:
    sites = results(client_a.get("/api/sites/"))
    assert sites == [
        {
            "id": site_a.pk,
            "slug": "a",
            "name": "Site a",
            "timezone": "America/New_York",
            "country": "",
            "subdivision": "",
        }
    ]
    assert client_a.get(f"/api/sites/{site_a.pk}/").json() == sites[0]

    rooms = results(client_a.get("/api/rooms/"))
    assert {r["id"] for r in rooms} == set(
        Room.objects.filter(site=site_a).values_list("pk", flat=True)
    )
    room = Room.objects.filter(site=site_a, kind="dosing").first()
    assert room is not None
    assert client_a.get(f"/api/rooms/{room.pk}/").json() == {
        "id": room.pk,
        "site": "a",
        "name": room.name,
        "kind": "dosing",
        "overnight_places": room.overnight_places,
        "active": True,
    }

    dyad = Dyad.objects.filter(site=site_a).first()
    assert dyad is not None
    assert client_a.get(f"/api/dyads/{dyad.pk}/").json() == {
        "id": dyad.pk,
        "site": "a",
        "name": dyad.name,
        "therapists": list(dyad.therapist_ids),
        "active": True,
    }
    assert len(results(client_a.get("/api/dyads/"))) == 2

    staff = client_a.get(f"/api/staff/{dyad.therapist_a_id}/").json()
    assert staff == {
        "id": dyad.therapist_a_id,
        "username": dyad.therapist_a.username,
        "name": dyad.therapist_a.username,  # no full name: the user name (one display name)
        "role": "therapist",
        "sites": ["a"],
    }
    # 2 dyads of 2, 2 assessors and the coordinator
    assert len(results(client_a.get("/api/staff/"))) == 7


def test_participants_are_listed_with_their_sessions(enrolled, client_a) -> None:
    listed = results(client_a.get("/api/participants/"))
    assert [p["code"] for p in listed] == ["P-001"]
    assert set(listed[0]) == PARTICIPANT_FIELDS
    detail = client_a.get(f"/api/participants/{enrolled['id']}/").json()
    assert detail == listed[0]

    sessions = results(client_a.get(f"/api/participants/{enrolled['id']}/sessions/"))
    assert [s["id"] for s in sessions] == [s["id"] for s in enrolled["sessions"]]
    assert {s["participant_code"] for s in sessions} == {"P-001"}
    assert all(set(s) >= SESSION_FIELDS for s in sessions)


def test_session_detail(enrolled, client_a) -> None:
    row = session_row("P-001", "dosing-1")
    data = client_a.get(f"/api/sessions/{row.pk}/").json()
    assert data["key"] == "dosing-1"
    assert data["participant"] == enrolled["id"]
    assert data["course"] == row.course_id
    assert data["therapists"] == active_staff(row.pk)
    assert client_a.get("/api/sessions/999999999/").status_code == 404
    # a number beyond the database's integer range is only a missing session
    assert client_a.get(f"/api/sessions/{10**30}/").status_code == 404


def test_sessions_are_filtered(enrolled, client_a, coordinator_a) -> None:
    def keys(query: str) -> list[str]:
        response = client_a.get(f"/api/sessions/?{query}")
        assert response.status_code == 200, response.json()
        return [s["key"] for s in results(response)]

    every = keys("")
    assert len(every) == 36
    assert keys("site=a") == every
    assert keys("status=planned") == every
    assert keys("status=cancelled") == []

    dosing = session_row("P-001", "dosing-1")
    local_day = dosing.start.astimezone(NEW_YORK).date().isoformat()
    assert keys(f"from={local_day}&to={local_day}") == ["dosing-1"]
    assert keys(f"site=a&from={local_day}&to={local_day}") == ["dosing-1"]
    later = keys(f"from={local_day}")
    assert later[0] == "dosing-1"
    assert len(later) + len(keys(f"to={(dosing.start.date() - timedelta(days=1))}")) == 36

    assert dosing.room_id is not None
    in_room = ScheduledSession.objects.filter(room_id=dosing.room_id).order_by("start", "key")
    assert keys(f"room={dosing.room_id}") == [s.key for s in in_room]

    therapist = active_staff(dosing.pk)[0]
    booked = ScheduledSession.objects.filter(staff__user=therapist, staff__active=True)
    assert keys(f"therapist={therapist}") == [s.key for s in booked.order_by("start", "key")]

    client_a.post(f"/api/sessions/{dosing.pk}/cancel/", {"reason": "ill"}, format="json")
    # the next morning and the phone check-ins go with it
    assert keys("status=cancelled") == [
        "dosing-1",
        "integration-1a",
        *(f"phone-1.{n}" for n in range(1, 6)),
    ]
    # a cancelled session holds nobody any more
    assert "dosing-1" not in keys(f"therapist={therapist}")


def test_the_sessions_list_costs_the_same_queries_for_more_rows(
    client_a, django_assert_max_num_queries
) -> None:
    assert enrol(client_a, code="P-001").status_code == 201
    with CaptureQueriesContext(connection) as one:
        assert len(results(client_a.get("/api/sessions/?page_size=200"))) == 36
    # counted now: the next request clears the connection's query log
    baseline = len(one)
    # session (read and saved, in a savepoint), user, the user's role and sites, the count,
    # the page, its staff bookings
    assert baseline <= 10
    assert enrol(client_a, code="P-002").status_code == 201
    assert enrol(client_a, code="P-003", start_date="2027-06-07").status_code == 201

    with django_assert_max_num_queries(baseline):
        assert len(results(client_a.get("/api/sessions/?page_size=200"))) == 3 * 36
    with django_assert_max_num_queries(baseline + 2):  # the sites' zones for local dates
        page = client_a.get("/api/sessions/?from=2027-03-01&to=2028-12-31&page_size=200")
        assert len(results(page)) == 108
    with django_assert_max_num_queries(baseline + 1):  # courses, and partners' courses
        assert len(results(client_a.get("/api/participants/"))) == 3


def test_a_first_page_shorter_than_the_list_is_read_once_and_counted_once(
    enrolled, client_a
) -> None:
    client_a.get("/api/sessions/?page_size=200")  # the session row is settled
    with CaptureQueriesContext(connection) as whole:
        assert len(results(client_a.get("/api/sessions/?page_size=200"))) == 36
    with CaptureQueriesContext(connection) as part:
        response = client_a.get("/api/sessions/?page_size=10")
        assert len(results(response)) == 10
    assert response.json()["count"] == 36
    assert response.json()["next"].endswith("page=2&page_size=10")
    sql = [query["sql"] for query in part.captured_queries]
    assert sum("COUNT(" in statement for statement in sql) == 1
    # the whole list fits one page and needs no count; the short page adds the count only,
    # not a second reading of the page and its staff bookings
    assert len(part) == len(whole) + 1
    assert [row["key"] for row in results(client_a.get("/api/sessions/?page=2&page_size=10"))]


# --- rescheduling --------------------------------------------------------------------------


def moved_rows(data: dict[str, Any]) -> None:
    """Every move of an applied reschedule is stored, with SEQUENCE up."""
    for move in data["moved"]:
        row = ScheduledSession.objects.get(pk=move["id"])
        assert row.start == datetime.fromisoformat(move["new_start"])
        assert row.sequence == 1
        assert active_staff(row.pk) or row.kind in ("assessment", "follow_up")


def test_reschedule_dry_run_shows_the_move_and_applying_stores_it(enrolled, client_a) -> None:
    # integration-1c: nothing is anchored on it, so it moves alone
    session = session_row("P-001", "integration-1c")
    new_start = (session.start + timedelta(days=1)).astimezone(NEW_YORK)
    assert session.window_start <= new_start.date() <= session.window_end
    rows = counts()
    before = {s.pk: snapshot(s) for s in ScheduledSession.objects.all()}
    url = f"/api/sessions/{session.pk}/reschedule/"

    dry = client_a.post(url, {"start": new_start.isoformat(), "dry_run": True}, format="json")

    assert dry.status_code == 200, dry.json()
    data = dry.json()
    assert data == {
        "moved": [
            {
                "id": session.pk,
                "key": "integration-1c",
                "old_start": data["moved"][0]["old_start"],
                "new_start": data["moved"][0]["new_start"],
                # the same room and people, a day later
                "old_room": session.room_id,
                "room": session.room_id,
                "old_staff": data["moved"][0]["staff"],
                "staff": data["moved"][0]["old_staff"],
            }
        ],
        "deviations": [],
        "applied": False,
    }
    assert datetime.fromisoformat(data["moved"][0]["old_start"]) == session.start
    assert datetime.fromisoformat(data["moved"][0]["new_start"]) == new_start
    assert {s.pk: snapshot(s) for s in ScheduledSession.objects.all()} == before
    assert counts() == rows

    applied = client_a.post(url, {"start": new_start.isoformat()}, format="json")

    assert applied.status_code == 200, applied.json()
    assert applied.json() == {**data, "applied": True}
    moved_rows(data)
    assert Deviation.objects.count() == 0


def test_reschedule_re_plans_the_sessions_anchored_on_the_moved_one(enrolled, client_a) -> None:
    prep_2 = session_row("P-001", "prep-2")
    new_start = (prep_2.start + timedelta(days=1)).astimezone(NEW_YORK)
    url = f"/api/sessions/{prep_2.pk}/reschedule/"

    dry = client_a.post(url, {"start": new_start.isoformat(), "dry_run": True}, format="json")

    assert dry.status_code == 200, dry.json()
    moved = {m["key"]: m for m in dry.json()["moved"]}
    assert datetime.fromisoformat(moved["prep-2"]["new_start"]) == new_start
    assert {"prep-3", "baseline", "dosing-1", "integration-1a"} <= set(moved)
    assert "prep-1" not in moved

    applied = client_a.post(url, {"start": new_start.isoformat()}, format="json")

    assert applied.status_code == 200, applied.json()
    assert applied.json()["moved"] == dry.json()["moved"]
    moved_rows(applied.json())


def test_leaving_the_window_needs_a_reason_and_records_a_deviation(
    enrolled, client_a, coordinator_a
) -> None:
    session = session_row("P-001", "integration-1c")
    outside = datetime.combine(session.window_end + timedelta(days=1), time(14), NEW_YORK)
    assert outside.weekday() < 5
    url = f"/api/sessions/{session.pk}/reschedule/"
    before, rows = snapshot(session), counts()

    refused = client_a.post(url, {"start": outside.isoformat()}, format="json")

    assert refused.status_code == 400
    assert set(refused.json()) == {"reason"}
    assert snapshot(session) == before
    assert counts() == rows

    body = {"start": outside.isoformat(), "reason": " participant travelling "}
    dry = client_a.post(url, {**body, "dry_run": True}, format="json")

    # the dry run shows the deviation that applying would record, unsaved
    assert dry.status_code == 200, dry.json()
    assert dry.json()["applied"] is False
    assert dry.json()["deviations"] == [
        {
            "id": None,
            "kind": "outside_window",
            "reason": "participant travelling",
            "session": session.pk,
            "created_by": coordinator_a.pk,
            "created_at": None,
        }
    ]
    assert snapshot(session) == before
    assert counts() == rows
    assert not Deviation.history.exists()

    moved = client_a.post(url, body, format="json")

    assert moved.status_code == 200, moved.json()
    assert moved.json()["moved"] == dry.json()["moved"]
    [deviation] = moved.json()["deviations"]
    row = Deviation.objects.get()
    assert deviation == {
        **dry.json()["deviations"][0],
        "id": row.pk,
        "created_at": deviation["created_at"],
    }
    assert datetime.fromisoformat(deviation["created_at"]) == row.created_at
    assert snapshot(session)[0] == outside


def test_moving_onto_a_time_the_dyad_is_taken_is_409(client_a, site_a) -> None:
    dyad = Dyad.objects.filter(site=site_a).first()
    assert dyad is not None
    first = enrol(client_a, code="P-001", dyad=dyad.pk)
    second = enrol(client_a, code="P-002", dyad=dyad.pk, start_date="2027-03-15")
    assert (first.status_code, second.status_code) == (201, 201), second.json()
    taken = session_row("P-001", "dosing-1")
    mine = session_row("P-002", "dosing-1")
    before, rows = snapshot(mine), counts()

    response = client_a.post(
        f"/api/sessions/{mine.pk}/reschedule/",
        {"start": taken.start.isoformat(), "reason": "participant asked"},
        format="json",
    )

    assert response.status_code == 409
    assert set(response.json()) == {"detail"}
    assert snapshot(mine) == before
    assert counts() == rows


BAD_MOVES = [
    ({"start": "2027-03-09T10:00:00"}, "start"),  # no UTC offset
    ({"start": "next tuesday"}, "start"),
    ({"start": "2027-02-30T10:00:00-05:00"}, "start"),
    ({"start": "9999-12-31T10:00:00+00:00"}, "start"),
    ({"start": 1_800_000_000}, "start"),
    ({"start": None}, "start"),
    ({}, "start"),
    ({"start": "2027-03-09T10:00:00-05:00", "dry_run": "perhaps"}, "dry_run"),
    ({"start": "2027-03-09T10:00:00-05:00", "reason": ["a", "b"]}, "reason"),
]


@pytest.mark.parametrize(("body", "field"), BAD_MOVES)
def test_bad_reschedule_input_is_400_and_moves_nothing(body, field, enrolled, client_a) -> None:
    session = session_row("P-001", "prep-2")
    before, rows = snapshot(session), counts()

    response = client_a.post(f"/api/sessions/{session.pk}/reschedule/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert snapshot(session) == before
    assert counts() == rows


# --- cancel and status ---------------------------------------------------------------------


def test_cancel_needs_a_reason(enrolled, client_a, coordinator_a) -> None:
    session = session_row("P-001", "dosing-1")
    url = f"/api/sessions/{session.pk}/cancel/"
    before, rows = snapshot(session), counts()

    for body in ({}, {"reason": ""}, {"reason": "   "}):
        refused = client_a.post(url, body, format="json")
        assert refused.status_code == 400
        assert set(refused.json()) == {"reason"}
    assert snapshot(session) == before
    assert counts() == rows

    response = client_a.post(url, {"reason": "participant unwell"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    assert response.json()["therapists"] == []  # room and staff are freed
    assert not RoomBooking.objects.filter(session=session, active=True).exists()
    deviation = Deviation.objects.get(session=session)
    assert (deviation.kind, deviation.reason, deviation.created_by) == (
        "cancelled",
        "participant unwell",
        coordinator_a,
    )
    again = client_a.post(url, {"reason": "twice"}, format="json")
    assert again.status_code == 400
    assert set(again.json()) == {"status"}


def test_status_changes_with_and_without_a_reason(enrolled, client_a, coordinator_a) -> None:
    first = session_row("P-001", "prep-1")
    second = session_row("P-001", "prep-2")

    confirmed = client_a.post(
        f"/api/sessions/{first.pk}/status/", {"status": "confirmed"}, format="json"
    )
    assert confirmed.status_code == 200, confirmed.json()
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["therapists"] == active_staff(first.pk) != []

    # both sessions are over: they can be completed and missed now
    with signed_in_at(second.end + timedelta(minutes=1), client_a, coordinator_a):
        completed = client_a.post(
            f"/api/sessions/{first.pk}/status/", {"status": "completed"}, format="json"
        )
        assert completed.status_code == 200, completed.json()
        assert completed.json()["status"] == "completed"
        assert Deviation.objects.count() == 0

        url = f"/api/sessions/{second.pk}/status/"
        before = snapshot(second)
        refused = client_a.post(url, {"status": "missed"}, format="json")
        assert refused.status_code == 400
        assert set(refused.json()) == {"reason"}
        assert snapshot(second) == before

        missed = client_a.post(url, {"status": "missed", "reason": "no show"}, format="json")
        assert missed.status_code == 200, missed.json()
        assert missed.json()["status"] == "missed"
        assert Deviation.objects.get(session=second).kind == "missed"


@pytest.mark.parametrize("status", ["completed", "missed"])
def test_a_session_that_has_not_started_cannot_be_completed_or_missed(
    status, enrolled, client_a, coordinator_a
) -> None:
    session = session_row("P-001", "dosing-1")
    url = f"/api/sessions/{session.pk}/status/"
    before, rows, staff = snapshot(session), counts(), active_staff(session.pk)

    for moment in (session.start - timedelta(days=1), session.start - timedelta(seconds=1)):
        with signed_in_at(moment, client_a, coordinator_a):
            refused = client_a.post(url, {"status": status, "reason": "no show"}, format="json")
        assert refused.status_code == 400
        assert set(refused.json()) == {"status"}
        assert f"cannot be {status} yet" in refused.json()["status"][0]
        assert snapshot(session) == before
        assert counts() == rows
        assert active_staff(session.pk) == staff != []

    with signed_in_at(session.start + timedelta(seconds=1), client_a, coordinator_a):
        started = client_a.post(url, {"status": status, "reason": "no show"}, format="json")
    assert started.status_code == 200, started.json()
    assert started.json()["status"] == status


def test_a_session_that_has_not_started_can_still_be_cancelled(
    enrolled, client_a, coordinator_a
) -> None:
    session = session_row("P-001", "dosing-1")
    with signed_in_at(session.start - timedelta(days=1), client_a, coordinator_a):
        response = client_a.post(
            f"/api/sessions/{session.pk}/cancel/", {"reason": "participant unwell"}, format="json"
        )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    assert Deviation.objects.get(session=session).kind == "cancelled"


@pytest.mark.parametrize("body", [{"status": "planned"}, {"status": "bogus"}, {}, {"status": 3}])
def test_a_status_that_cannot_be_given_is_400(body, enrolled, client_a) -> None:
    session = session_row("P-001", "prep-1")
    before = snapshot(session)
    response = client_a.post(f"/api/sessions/{session.pk}/status/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"status"}
    assert snapshot(session) == before


# --- bad input writes nothing --------------------------------------------------------------

BAD_ENROLMENTS = [
    ({"start_date": "2027-02-30"}, "start_date"),
    ({"start_date": "first of March"}, "start_date"),
    ({"start_date": 20270301}, "start_date"),
    ({"start_date": None}, "start_date"),
    ({"start_date": "9999-12-01"}, "start_date"),
    ({"start_date": "0001-01-02"}, "start_date"),
    ({"start_date": "2027-03-06"}, "start_date"),  # a Saturday: the site is closed
    ({"protocol": "no-such-protocol"}, "protocol"),
    ({"protocol": "not a slug!"}, "protocol"),
    ({"protocol": {"slug": "mapp-ptsd"}}, "protocol"),
    ({"site": "no-such-site"}, "site"),
    ({"site": None}, "site"),
    ({"site": 1}, "site"),
    ({"code": ""}, "code"),
    ({"code": "x" * 31}, "code"),
    ({"code": ["P-001"]}, "code"),
    ({"code": "P\x00"}, "code"),
    ({"dyad": "the first"}, "dyad"),
    ({"dyad": 10**30}, "dyad"),
    ({"dyad": 999_999}, "dyad"),
    ({"partner_code": "P-002"}, "partner_code"),  # not a couples protocol
    ({"partner_code": "y" * 31}, "partner_code"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_ENROLMENTS)
def test_bad_enrolment_is_400_with_field_errors_and_writes_nothing(
    fields, field, client_a, site_a
) -> None:
    rows = counts()
    response = enrol(client_a, **fields)
    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert all(isinstance(m, str) for m in response.json()[field])
    assert counts() == rows


def test_missing_fields_are_named(client_a, site_a) -> None:
    response = client_a.post("/api/participants/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "site", "protocol", "start_date"}


def test_a_taken_code_is_400_and_writes_nothing(enrolled, client_a) -> None:
    rows = counts()
    response = enrol(client_a)
    assert response.status_code == 400
    assert set(response.json()) == {"code"}
    assert counts() == rows


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ('{"code": "P-001", ', "application/json", 400),
        ("[]", "application/json", 400),
        ('"P-001"', "application/json", 400),
        ("code=P-001&site=a", "application/x-www-form-urlencoded", 415),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    body, content_type, status, client_a, site_a
) -> None:
    response = client_a.generic("POST", "/api/participants/", body, content_type=content_type)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()
    assert Participant.objects.count() == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2027-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2027-03-10&to=2027-03-01", "to"),
        ("from=0001-01-01", "from"),
        ("room=first", "room"),
        ("therapist=-1", "therapist"),
        ("status=bogus", "status"),
        ("site=no-such-site", "site"),
    ],
)
def test_bad_session_filters_are_400_with_field_errors(query, field, client_a, site_a) -> None:
    response = client_a.get(f"/api/sessions/?{query}")
    assert response.status_code == 400
    assert set(response.json()) == {field}


def test_unknown_api_paths_answer_json(client_a) -> None:
    response = client_a.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize(
    "body",
    ["[" * 2000 + "]" * 2000, '{"code": ' * 2000 + "1" + "}" * 2000],
    ids=["arrays", "objects"],
)
def test_json_nested_absurdly_deep_is_400_not_500(body, client_a, site_a) -> None:
    response = client_a.generic("POST", "/api/participants/", body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "JSON parse error" in response.json()["detail"]
    assert counts() == dict.fromkeys(counts(), 0)


def test_an_action_without_the_trailing_slash_is_a_json_404_and_changes_nothing(
    enrolled, client_a
) -> None:
    session = session_row("P-001", "dosing-1")
    before, rows = snapshot(session), counts()

    response = client_a.post(
        f"/api/sessions/{session.pk}/cancel", {"reason": "participant unwell"}, format="json"
    )

    assert response.status_code == 404  # not Django's APPEND_SLASH error, not a redirect
    assert response["Content-Type"] == "application/json"
    assert "slash" in response.json()["detail"]
    assert snapshot(session) == before
    assert counts() == rows


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url", ["/api/nope/", "/api/sessions/1/nope/", "/api/nope"])
def test_unknown_api_paths_answer_json_to_any_method_without_a_csrf_token(
    method, url, coordinator_a
) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(coordinator_a)  # a browser's session, which sends no CSRF token here
    response = getattr(client, method)(url, {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Not found.")
    assert ("slash" in response.json()["detail"]) == (not url.endswith("/"))


@pytest.mark.parametrize("url", ["/api/dyads/a%0Ab/", "/api/dyads/1%0A/", "/api/%0A"])
def test_a_path_with_an_encoded_newline_is_a_json_404(url, client_a) -> None:
    response = client_a.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Not found.")


# --- the OpenAPI schema --------------------------------------------------------------------


def test_the_schema_is_valid_openapi_3(client_a) -> None:
    from drf_spectacular.validation import validate_schema

    response = client_a.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    for path in (
        "/api/participants/",
        "/api/participants/{id}/sessions/",
        "/api/sessions/",
        "/api/sessions/{id}/reschedule/",
        "/api/protocols/{slug}/export/",
    ):
        assert path in schema["paths"]
    assert set(schema["components"]["securitySchemes"]) == {"knoxApiToken", "cookieAuth"}


def test_the_docs_page_serves_swagger_ui_from_this_server(client_a) -> None:
    response = client_a.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()


# --- known bugs in the services and the planner ---------------------------------------------


@pytest.mark.parametrize("start", [date(9999, 12, 1), date(1, 1, 2)])
def test_service_refuses_a_far_off_start_date_as_a_field_error(start, site_a, coordinator_a):
    with pytest.raises(SchedulingError):
        participant_enrol(
            site=site_a, code="P-1", protocol_slug="mapp-ptsd", start_date=start, by=coordinator_a
        )


def test_a_second_course_of_one_dyad_a_day_later_can_be_planned(client_a, site_a) -> None:
    dyad = Dyad.objects.filter(site=site_a).first()
    assert dyad is not None
    assert enrol(client_a, code="P-001", dyad=dyad.pk).status_code == 201
    second = enrol(client_a, code="P-002", dyad=dyad.pk, start_date="2027-03-02")
    assert second.status_code == 201, second.json()


@pytest.mark.parametrize(
    "url",
    [
        "/api/staff/9223372036854775808/",
        "/api/sessions/3825044061794460499968/",
        "/api/participants/99999999999999999999999/sessions/",
    ],
)
def test_a_huge_id_in_the_path_is_404_not_an_overflow(client_a, url) -> None:
    response = client_a.get(url)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.parametrize("param", ["room", "therapist"])
def test_a_huge_id_in_a_filter_is_a_field_error(client_a, param) -> None:
    response = client_a.get("/api/sessions/", {param: str(2**63)})
    assert response.status_code == 400
    assert param in response.json()


def test_a_huge_protocol_version_is_a_field_error(client_a) -> None:
    response = client_a.get("/api/protocols/mapp-ptsd/", {"version": str(2**40)})
    assert response.status_code == 400
    assert "version" in response.json()


def test_the_written_out_outputs_equal_drfs_field_by_field_ones(site_a, coordinator_a) -> None:
    """Sessions, participants and their courses are written out for speed; DRF's own
    serialization of the declared fields must give exactly the same."""
    from rest_framework import serializers as drf

    from scheduling.serializers import (
        CourseOutputSerializer,
        ParticipantOutputSerializer,
        SessionDetailOutputSerializer,
    )

    course = participant_enrol(
        site=site_a,
        code="P-001",
        protocol_slug="mapp-ptsd",
        start_date=date(2027, 3, 1),
        by=coordinator_a,
    )
    for session in ScheduledSession.objects.filter(course=course)[:5]:
        output = SessionDetailOutputSerializer(session)
        assert output.to_representation(session) == drf.ModelSerializer.to_representation(
            output, session
        )
    participant = course.participant
    output = ParticipantOutputSerializer(participant)
    expected = drf.ModelSerializer.to_representation(output, participant)
    assert output.to_representation(participant) == expected
    assert expected["courses"] == [dict(CourseOutputSerializer(course).data)]
