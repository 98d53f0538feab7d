"""The access policy per role: what each one does reach (the matrix proves what it does not),
the blinded assessor, the night attendant's nights, the record access log, and the admin's
read-only audit history."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from scheduling import access, services
from scheduling.models import AccessLog, Participant, ScheduledSession, StaffBooking, StaffProfile
from tests.conftest import enrol_mapp, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(site_a: Any, coordinator_a: Any) -> Any:
    return enrol_mapp(site_a, "P-001", coordinator_a)


def _assessor(course: Any) -> User:
    baseline = course.sessions.get(key="baseline")
    return StaffBooking.objects.get(session=baseline, active=True).user


def test_a_blinded_assessor_sees_their_assessment_without_doses(client: Client, course) -> None:
    client.force_login(_assessor(course))
    baseline = course.sessions.get(key="baseline")
    page = client.get(f"/sessions/{baseline.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "P-001" in text and "Dose plan" not in text and " mg" not in text
    assert "Reschedule" not in text  # reading is all they do here
    dosing = course.sessions.get(key="dosing-1")
    assert client.get(f"/sessions/{dosing.pk}/").status_code == 404
    assert client.get(f"/participants/{course.participant_id}/").status_code == 404
    assert client.get("/protocols/").status_code == 404
    assert client.get("/protocols/mapp-ptsd/v1/export/").status_code == 404


def test_a_night_attendant_sees_their_night_and_its_dose_but_changes_nothing(
    client: Client, site_a, coordinator_a, course
) -> None:
    night = make_staff("night-1", "night_attendant", site_a)
    dosing = course.sessions.get(key="dosing-1")
    services.night_attendant_book(session=dosing, attendant=night, by=coordinator_a)
    client.force_login(night)
    page = client.get(f"/sessions/{dosing.pk}/").content.decode()
    assert "Dose plan" in page and "Change status" not in page
    refused = client.post(
        f"/sessions/{dosing.pk}/", {"action": "status", "status": "cancelled", "reason": "x"}
    )
    assert refused.status_code == 403
    assert ScheduledSession.objects.get(pk=dosing.pk).status == "planned"
    # the participant's page shows the night, not the rest of the course
    record = client.get(f"/participants/{course.participant_id}/").content.decode()
    assert "Dosing session 1" in record and "Preparatory session 2" not in record
    prep = course.sessions.get(key="prep-2")
    assert client.get(f"/sessions/{prep.pk}/").status_code == 404


def test_only_a_night_attendant_of_the_site_is_booked_on_a_night(
    site_a, site_b, coordinator_a, course
) -> None:
    dosing = course.sessions.get(key="dosing-1")
    for wrong in (
        make_staff("night-b", "night_attendant", site_b),
        make_staff("not-night", "therapist", site_a),
    ):
        with pytest.raises(services.SchedulingError):
            services.night_attendant_book(session=dosing, attendant=wrong, by=coordinator_a)
    with pytest.raises(services.SchedulingError):
        services.night_attendant_book(
            session=course.sessions.get(key="prep-1"),
            attendant=make_staff("night-a", "night_attendant", site_a),
            by=coordinator_a,
        )


def test_a_therapist_acts_on_those_they_treat_only(site_a, coordinator_a, course) -> None:
    mine = course.dyad.therapist_a
    other = enrol_mapp(site_a, "P-002", coordinator_a, dyad=None)
    assert other.dyad_id != course.dyad_id  # the least busy dyad: the site's other one
    session = course.sessions.get(key="prep-2")
    foreign = other.sessions.get(key="prep-2")
    assert access.can(mine, access.Action.RESCHEDULE, session)
    assert not access.can(mine, access.Action.RESCHEDULE, foreign)
    assert not access.can(mine, access.Action.VIEW, foreign)
    assert list(access.scope(Participant.objects.all(), mine)) == [course.participant]


def test_a_user_without_a_site_reaches_nothing(course) -> None:
    lost = make_staff("lost", "coordinator")
    for model in access.RULES:
        assert not access.allows(lost, access.Action.VIEW, model), model


def test_reading_a_record_is_logged_and_a_refused_read_is_not(
    client: Client, coordinator_a, coordinator_b, course
) -> None:
    client.force_login(coordinator_b)
    assert client.get(f"/participants/{course.participant_id}/").status_code == 404
    assert not AccessLog.objects.exists()
    client.force_login(coordinator_a)
    client.get(f"/participants/{course.participant_id}/")
    client.get(f"/participants/{course.participant_id}/schedule/")
    log = list(AccessLog.objects.order_by("pk").values_list("user__username", "door", "route"))
    assert log == [
        ("coordinator-a", "page", "participant"),
        ("coordinator-a", "print", "participant-schedule"),
    ]
    assert all(row.participant_id == course.participant_id for row in AccessLog.objects.all())


def test_the_access_log_is_for_the_sites_administrators(
    client: Client, site_a, coordinator_a, course
) -> None:
    services.access_log_record(
        user=coordinator_a, participant=course.participant, door="page", route="participant"
    )
    officer = make_staff("officer-a", "admin", site_a)
    for user, status in ((coordinator_a, 403), (officer, 200)):
        user.is_staff = True
        user.save()
        client.force_login(user)
        assert client.get("/admin/scheduling/accesslog/").status_code == status


def test_the_audit_history_is_read_only_and_bad_versions_are_404(
    client: Client, course, admin_user
) -> None:
    participant = course.participant
    record = participant.history.first()
    client.force_login(admin_user)
    url = f"/admin/scheduling/participant/{participant.pk}/history/"
    assert client.get(f"{url}{record.history_id}/").status_code == 200
    assert client.get(f"{url}abc/").status_code == 404
    assert client.get(f"{url}99999999/").status_code == 404
    posted = client.post(f"{url}{record.history_id}/", {"email": "someone@example.org"})
    assert posted.status_code == 403
    assert Participant.objects.get(pk=participant.pk).email == participant.email


def test_a_person_shared_with_another_site_is_not_changed_by_one_sites_coordinator(
    client: Client, site_a, site_b, coordinator_a
) -> None:
    shared = make_staff("shared-therapist", "therapist", site_a, site_b)
    coordinator_a.is_staff = True
    coordinator_a.save()
    client.force_login(coordinator_a)
    profile = StaffProfile.objects.get(user=shared)
    url = f"/admin/scheduling/staffprofile/{profile.pk}/change/"
    assert client.get(url).status_code == 200  # readable
    response = client.post(url, {"user": shared.pk, "role": "coordinator", "sites": [site_a.pk]})
    assert response.status_code == 403
    profile.refresh_from_db()
    assert profile.role == "therapist"
    assert set(profile.sites.values_list("slug", flat=True)) == {"a", "b"}


def test_other_apps_admin_models_are_for_superusers_only(
    client: Client, coordinator_a, admin_user
) -> None:
    from django.contrib import admin

    coordinator_a.is_staff = True
    coordinator_a.save()
    outside = [m for m in admin.site._registry if m not in access.RULES]
    assert outside  # groups, lockouts, devices, tokens
    for model in outside:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        client.force_login(coordinator_a)
        assert client.get(url).status_code == 403, model
        client.force_login(admin_user)
        assert client.get(url).status_code == 200, model


def test_the_autocomplete_offers_only_people_of_the_users_sites(
    client: Client, site_a, site_b, coordinator_a
) -> None:
    make_staff("b-only", "therapist", site_b)
    coordinator_a.is_staff = True
    coordinator_a.save()
    client.force_login(coordinator_a)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "scheduling", "model_name": "dyad", "field_name": "therapist_a", "term": ""},
    )
    assert response.status_code == 200
    names = {User.objects.get(pk=row["id"]).username for row in response.json()["results"]}
    assert names and "b-only" not in names
    assert all(User.objects.get(username=n).staff_profile.sites.filter(slug="a") for n in names)
