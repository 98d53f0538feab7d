"""The REST API asks the access policy (scheduling.access) at every door: a therapist reaches
only the participants they treat, a night attendant their nights, a blinded remote assessor the
assessments booked to them; only coordinators and administrators enrol. An object the user may
not see is 404, one they see but may not act on is 403, and neither writes anything. Also: the
study-code rule on enrolment, reads of a participant's record logged, lists as bounded pages,
and empty filters refused.

State is built through the API and the services; expectations are read from database rows."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from scheduling.models import (
    AccessLog,
    Course,
    Deviation,
    Dyad,
    Participant,
    RoomBooking,
    ScheduledSession,
    StaffBooking,
)
from tests.conftest import enrol_mapp, make_staff

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Participant, Course, ScheduledSession, RoomBooking, StaffBooking, Deviation)
    }


def snapshot(session_id: int) -> tuple[Any, ...]:
    row = ScheduledSession.objects.get(pk=session_id)
    active = StaffBooking.objects.filter(session_id=session_id, active=True).count()
    return (row.start, row.end, row.status, row.sequence, row.room_id, active)


def items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.json()
    found: list[dict[str, Any]] = response.json()["results"]
    return found


def ids(response: Any) -> set[int]:
    return {item["id"] for item in items(response)}


def enrol_body(**fields: Any) -> dict[str, Any]:
    return {
        "code": "P-100",
        "site": "a",
        "protocol": "mapp-ptsd",
        "start_date": "2027-03-01",
        **fields,
    }


# --- the cast: P-001 treated by dyad 1 of site A; dyad 2's therapists treat nobody ----------


@pytest.fixture
def dyads(site_a) -> list[Dyad]:
    return list(Dyad.objects.filter(site=site_a).order_by("pk"))


@pytest.fixture
def course(site_a, coordinator_a, dyads) -> Course:
    course: Course = enrol_mapp(site_a, "P-001", coordinator_a, dyad=dyads[0])
    return course


@pytest.fixture
def treating(dyads) -> User:
    user: User = dyads[0].therapist_a
    return user


@pytest.fixture
def other_therapist(dyads) -> User:
    user: User = dyads[1].therapist_a
    return user


def session_of(course: Course, key: str) -> ScheduledSession:
    return ScheduledSession.objects.get(course=course, key=key)


@pytest.fixture
def assessor(course) -> User:
    """The remote assessor the enrolment booked the first assessment to."""
    booking = StaffBooking.objects.filter(
        session__course=course, session__kind="assessment", active=True
    ).first()
    assert booking is not None
    user: User = booking.user
    return user


@pytest.fixture
def night_attendant(course, site_a) -> User:
    """A night attendant booked on the night of dosing-1 (no service books them yet)."""
    user: User = make_staff("night-a", "night_attendant", site_a)
    night = session_of(course, "dosing-1")
    assert night.overnight
    StaffBooking.objects.create(session=night, user=user, begin=night.start, until=night.end)
    return user


# --- a therapist reaches the participants they treat, and nothing else ----------------------


def test_a_therapist_lists_only_the_participants_and_sessions_they_treat(
    course, site_a, coordinator_a, treating, other_therapist
) -> None:
    other = enrol_mapp(
        site_a,
        "P-002",
        coordinator_a,
        start=date(2027, 3, 15),
        dyad=Dyad.objects.get(pk=course.dyad_id),
    )
    theirs = set(ScheduledSession.objects.filter(course=course).values_list("pk", flat=True))
    theirs |= set(ScheduledSession.objects.filter(course=other).values_list("pk", flat=True))

    mine = client_for(treating)
    assert ids(mine.get("/api/participants/")) == {course.participant_id, other.participant_id}
    assert ids(mine.get("/api/sessions/?page_size=200")) == theirs

    stranger = client_for(other_therapist)
    assert ids(stranger.get("/api/participants/")) == set()
    listed = stranger.get("/api/sessions/?page_size=200").json()
    assert listed["count"] == 0
    assert listed["results"] == []


@pytest.mark.parametrize(
    "url",
    [
        "/api/participants/{participant}/",
        "/api/participants/{participant}/sessions/",
        "/api/sessions/{session}/",
    ],
)
def test_a_therapist_who_does_not_treat_the_participant_gets_404(
    url, course, other_therapist, treating
) -> None:
    place = {"participant": course.participant_id, "session": session_of(course, "prep-1").pk}

    assert client_for(treating).get(url.format(**place)).status_code == 200
    response = client_for(other_therapist).get(url.format(**place))

    assert response.status_code == 404
    assert set(response.json()) == {"detail"}
    # the refused read is not a read of the record
    assert not AccessLog.objects.filter(user=other_therapist).exists()


ACTIONS = [
    ("reschedule", {"start": "2027-03-09T10:00:00-05:00", "dry_run": False}),
    ("cancel", {"reason": "participant asked"}),
    ("status", {"status": "confirmed"}),
]


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_a_therapist_may_not_act_on_a_session_of_a_participant_they_do_not_treat(
    action, body, course, other_therapist
) -> None:
    session = session_of(course, "prep-2")
    before, rows = snapshot(session.pk), counts()

    response = client_for(other_therapist).post(
        f"/api/sessions/{session.pk}/{action}/", body, format="json"
    )

    assert response.status_code == 404
    assert snapshot(session.pk) == before
    assert counts() == rows


def test_the_treating_therapist_confirms_and_cancels_their_participants_sessions(
    course, treating
) -> None:
    client = client_for(treating)
    first, second = session_of(course, "prep-1"), session_of(course, "prep-2")

    confirmed = client.post(f"/api/sessions/{first.pk}/status/", {"status": "confirmed"})
    cancelled = client.post(f"/api/sessions/{second.pk}/cancel/", {"reason": "unwell"})

    assert confirmed.status_code == 200, confirmed.json()
    assert cancelled.status_code == 200, cancelled.json()
    assert ScheduledSession.objects.get(pk=first.pk).status == "confirmed"
    assert ScheduledSession.objects.get(pk=second.pk).status == "cancelled"
    assert Deviation.objects.get(session=second).created_by == treating


# --- enrolment: coordinators and administrators only ------------------------------------------


@pytest.mark.parametrize("who", ["therapist", "assessor", "night_attendant"])
def test_only_coordinators_and_admins_enrol(who, site_a, treating) -> None:
    user = treating if who == "therapist" else make_staff(f"{who}-x", who, site_a)
    rows = counts()

    for body in (enrol_body(), enrol_body(site="no-such-site"), {}):
        response = client_for(user).post("/api/participants/", body, format="json")
        assert response.status_code == 403, response.json()
        assert set(response.json()) == {"detail"}
    assert counts() == rows


def test_an_admin_enrols(site_a) -> None:
    response = client_for(make_staff("admin-a", "admin", site_a)).post(
        "/api/participants/", enrol_body(), format="json"
    )
    assert response.status_code == 201, response.json()
    assert Participant.objects.filter(site=site_a, code="P-100").exists()


@pytest.mark.parametrize(
    "code", ["Jane Q Public", " P 1", "P/1", "-P1", "P\u00e91", "x" * 31, "P\n1"]
)
@pytest.mark.parametrize("field", ["code", "partner_code"])
def test_enrolment_keeps_the_study_code_rule(code, field, coordinator_a) -> None:
    rows = counts()
    body = enrol_body(**{field: code})
    if field == "partner_code":
        body["protocol"] = "mdma-cbct-couples"

    response = client_for(coordinator_a).post("/api/participants/", body, format="json")

    assert response.status_code == 400, response.json()
    assert set(response.json()) == {field}
    assert counts() == rows


def test_a_reason_longer_than_the_rule_is_refused(course, coordinator_a) -> None:
    session = session_of(course, "prep-2")
    before, rows = snapshot(session.pk), counts()
    client = client_for(coordinator_a)
    for action, body in (
        ("cancel", {"reason": "x" * 2001}),
        ("status", {"status": "cancelled", "reason": "x" * 2001}),
        ("reschedule", {"start": "2027-03-09T10:00:00-05:00", "reason": "x" * 2001}),
    ):
        response = client.post(f"/api/sessions/{session.pk}/{action}/", body, format="json")
        assert response.status_code == 400
        assert set(response.json()) == {"reason"}
    assert snapshot(session.pk) == before
    assert counts() == rows
    kept = client.post(f"/api/sessions/{session.pk}/cancel/", {"reason": "y" * 2000})
    assert kept.status_code == 200, kept.json()
    assert Deviation.objects.get(session=session).reason == "y" * 2000


# --- a remote assessor is blinded: their assessments only ----------------------------------


def test_a_remote_assessor_sees_only_the_assessments_booked_to_them(course, assessor) -> None:
    client = client_for(assessor)
    booked = set(
        StaffBooking.objects.filter(user=assessor, active=True, session__kind="assessment")
        .values_list("session_id", flat=True)
        .distinct()
    )
    assert booked

    assert ids(client.get("/api/sessions/?page_size=200")) == booked
    assert ids(client.get("/api/participants/")) == set()
    assert ids(client.get("/api/rooms/")) == set()
    assert ids(client.get("/api/dyads/")) == set()
    assert ids(client.get("/api/staff/")) == {assessor.pk}
    one = next(iter(booked))
    assert client.get(f"/api/sessions/{one}/").status_code == 200
    assert client.get(f"/api/sessions/{session_of(course, 'dosing-1').pk}/").status_code == 404
    assert client.get(f"/api/participants/{course.participant_id}/").status_code == 404
    assert client.get(f"/api/participants/{course.participant_id}/sessions/").status_code == 404


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_an_assessor_may_not_act_on_their_assessment(action, body, course, assessor) -> None:
    session_id = (
        StaffBooking.objects.filter(user=assessor, active=True).values_list("session", flat=True)
    )[0]
    before, rows = snapshot(session_id), counts()

    response = client_for(assessor).post(
        f"/api/sessions/{session_id}/{action}/", body, format="json"
    )

    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert snapshot(session_id) == before
    assert counts() == rows


# --- a night attendant: their nights ---------------------------------------------------------


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_a_night_attendant_sees_their_night_but_may_not_change_it(
    action, body, course, night_attendant
) -> None:
    client = client_for(night_attendant)
    night = session_of(course, "dosing-1")
    assert ids(client.get("/api/sessions/")) == {night.pk}
    assert ids(client.get("/api/participants/")) == {course.participant_id}
    before, rows = snapshot(night.pk), counts()

    response = client.post(f"/api/sessions/{night.pk}/{action}/", body, format="json")

    assert response.status_code == 403
    assert snapshot(night.pk) == before
    assert counts() == rows
    prep = session_of(course, "prep-1")
    assert client.post(f"/api/sessions/{prep.pk}/{action}/", body).status_code == 404


# --- reads of a participant's record are logged ----------------------------------------------


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("/api/participants/{participant}/", "participant"),
        ("/api/participants/{participant}/sessions/", "participant-sessions"),
        ("/api/sessions/{session}/", "session"),
    ],
)
def test_reading_a_participants_record_is_logged(url, route, course, treating) -> None:
    place = {"participant": course.participant_id, "session": session_of(course, "prep-1").pk}

    assert client_for(treating).get(url.format(**place)).status_code == 200

    entry = AccessLog.objects.get()
    assert (entry.user, entry.participant_id, entry.door, entry.route) == (
        treating,
        course.participant_id,
        "api",
        route,
    )


def test_lists_are_not_logged_as_reads_of_a_record(course, coordinator_a) -> None:
    client = client_for(coordinator_a)
    for url in ("/api/participants/", "/api/sessions/"):
        assert client.get(url).status_code == 200
    assert not AccessLog.objects.exists()


# --- bounded answers --------------------------------------------------------------------------


def test_lists_are_pages_of_50(course, site_a, coordinator_a) -> None:
    enrol_mapp(site_a, "P-002", coordinator_a, start=date(2027, 3, 8))
    total = ScheduledSession.objects.count()
    assert total > 50
    client = client_for(coordinator_a)

    first = client.get("/api/sessions/").json()
    second = client.get(first["next"]).json()

    assert first["count"] == second["count"] == total
    assert len(first["results"]) == 50
    assert len(second["results"]) == total - 50
    assert first["previous"] is None and second["next"] is None
    assert {s["id"] for s in first["results"] + second["results"]} == set(
        ScheduledSession.objects.values_list("pk", flat=True)
    )
    assert len(client.get("/api/sessions/?page_size=200").json()["results"]) == total


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=first", "page"),
        ("page=last", "page"),
        ("page=", "page"),
        ("page_size=0", "page_size"),
        ("page_size=201", "page_size"),
        ("page_size=", "page_size"),
        ("page_size=ten", "page_size"),
    ],
)
@pytest.mark.parametrize("url", ["/api/sessions/", "/api/participants/", "/api/staff/"])
def test_bad_page_numbers_are_field_errors(url, query, field, coordinator_a) -> None:
    response = client_for(coordinator_a).get(f"{url}?{query}")
    assert response.status_code == 400
    assert set(response.json()) == {field}


def test_a_page_after_the_last_is_404(coordinator_a) -> None:
    response = client_for(coordinator_a).get("/api/sites/?page=2")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("param", ["site", "room", "therapist", "status", "from", "to"])
def test_an_empty_filter_is_refused_not_ignored(param, course, coordinator_a) -> None:
    response = client_for(coordinator_a).get(f"/api/sessions/?{param}=")
    assert response.status_code == 400
    assert set(response.json()) == {param}


@pytest.mark.parametrize(
    "url",
    ["/api/participants/", "/api/sessions/", "/api/rooms/", "/api/staff/", "/api/dyads/"],
)
def test_a_therapists_lists_cost_a_fixed_number_of_queries(
    url, site_a, coordinator_a, treating, dyads, django_assert_max_num_queries
) -> None:
    client = client_for(treating)
    enrol_mapp(site_a, "P-001", coordinator_a, dyad=dyads[0])
    client.get(url)  # the session's first read
    # the session (read, and saved: SESSION_SAVE_EVERY_REQUEST), the user, their role and
    # sites, the count, the page and what it prefetches
    with django_assert_max_num_queries(12) as one:
        assert client.get(url).status_code == 200
    few = len(one)
    for n in range(2, 5):
        start = date(2027, 3, 1) + timedelta(weeks=n)
        enrol_mapp(site_a, f"P-00{n}", coordinator_a, start=start, dyad=dyads[n % 2])
    with django_assert_max_num_queries(few):
        assert client.get(f"{url}?page_size=200").status_code == 200


# --- the schema documents every answer --------------------------------------------------------


def test_every_operation_documents_its_errors(coordinator_a) -> None:
    schema = client_for(coordinator_a).get("/api/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        if path == "/api/auth/token/":  # another door: credentials in the body
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            where = f"{method.upper()} {path}"
            assert "401" in codes, where
            if method == "post":
                assert {"400", "403"} <= codes, where
            if "{" in path or "page" in {p["name"] for p in operation.get("parameters", [])}:
                assert "404" in codes, where
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in {"Error", "FieldErrors"}, where
    enrol = schema["components"]["schemas"]["ParticipantEnrolRequest"]
    assert set(enrol["required"]) == {"code", "site", "protocol", "start_date"}
    assert enrol["properties"]["code"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    reschedule = schema["paths"]["/api/sessions/{id}/reschedule/"]["post"]
    assert "409" in reschedule["responses"]
    page = schema["components"]["schemas"]["PaginatedSessionDetailOutputList"]
    assert set(page["required"]) == {"count", "next", "previous", "results"}
