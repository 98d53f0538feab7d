"""The shared input rules (scheduling.validators) hold in the services themselves, so every door
(pages, API, admin, commands, any other caller) gives one input one answer: a field error that
says what to do, never a 500, and nothing written."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from scheduling import forms
from scheduling.models import Participant, SiteClosure, Unavailability
from scheduling.services import (
    SchedulingError,
    enrolment_preview,
    participant_enrol,
    session_reschedule,
    session_set_status,
)
from scheduling.validators import REASON_MAX_LENGTH, STUDY_CODE, plausible_date
from tests.conftest import enrol_mapp, make_site, make_staff
from tests.scheduling.test_reschedule import db_state

pytestmark = pytest.mark.django_db

BAD_CODES = ["Jane Doe", "P" * 31, "P-1\x00", "-P1", "P/1", "P\u202e1", "ü1", "P1\n", ""]
YEAR_ERROR = "Choose a date between the years 2000 and 2100."


def _enrol(site: Any, by: Any, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "site": site,
        "code": "P-001",
        "protocol_slug": "mapp-ptsd",
        "start_date": date(2027, 3, 1),
        **changes,
    }
    preview = dict(arguments)
    with pytest.raises(SchedulingError) as previewed:
        enrolment_preview(**preview)
    with pytest.raises(SchedulingError) as enrolled:
        participant_enrol(**arguments, by=by)
    assert previewed.value.errors == enrolled.value.errors  # the preview says what enrol would
    return enrolled.value


def test_the_forms_share_the_validators_rules() -> None:
    """Code that imported the rules from the forms keeps working, and gets the same rule."""
    assert forms.STUDY_CODE is STUDY_CODE
    assert forms.plausible_date is plausible_date


@pytest.mark.parametrize("code", BAD_CODES)
def test_a_study_code_that_breaks_the_rule_is_a_field_error(site_a, coordinator_a, code) -> None:
    before = db_state()
    error = _enrol(site_a, coordinator_a, code=code)
    assert set(error.errors) == {"code"}
    assert "study code" in " ".join(error.errors["code"]).lower()
    assert db_state() == before


@pytest.mark.parametrize("code", BAD_CODES[:-1])  # an empty partner code means "no partner"
def test_a_partner_code_that_breaks_the_rule_is_a_field_error(code) -> None:
    site = make_site("c", couples_room=True)
    by = make_staff("coordinator-c", "coordinator", site)
    before = db_state()
    error = _enrol(site, by, protocol_slug="mdma-cbct-couples", partner_code=code)
    assert set(error.errors) == {"partner"}
    assert db_state() == before


@pytest.mark.parametrize(
    "start", [date(1999, 12, 31), date(2101, 1, 1), date(9999, 12, 31), date(1, 1, 1)]
)
def test_an_implausible_course_start_is_a_field_error(site_a, coordinator_a, start) -> None:
    error = _enrol(site_a, coordinator_a, start_date=start)
    assert error.errors == {"start_date": [f"{start.isoformat()}: {YEAR_ERROR}"]}
    assert not Participant.objects.exists()


@pytest.mark.parametrize(
    "start",
    [
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))),  # overflows in UTC
        datetime(9999, 12, 31, 9, 0, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5))),  # underflows in UTC
        datetime(2101, 1, 2, 9, 0, tzinfo=UTC),
        # 2000-01-01 in UTC, but still 1999-12-31 at the site in New York
        datetime(2000, 1, 1, 2, 0, tzinfo=UTC),
    ],
)
def test_a_move_to_an_implausible_year_is_a_field_error(site_a, coordinator_a, start) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = course.sessions.get(key="dosing-1")
    before = db_state()
    for dry_run in (True, False):
        with pytest.raises(SchedulingError) as caught:
            session_reschedule(
                session=dosing, start=start, by=coordinator_a, reason="typo", dry_run=dry_run
            )
        assert set(caught.value.errors) == {"start"}
        assert YEAR_ERROR in caught.value.errors["start"][0]
    assert db_state() == before


def test_the_year_of_a_move_is_the_sites_local_year(site_a, coordinator_a) -> None:
    """2101-01-01 01:00 UTC is still 2100-12-31 in New York: the date the staff see is in
    range, so the answer is about the window (a reason is needed), not about the year."""
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = course.sessions.get(key="dosing-1")
    before = db_state()
    with pytest.raises(SchedulingError) as caught:
        session_reschedule(
            session=dosing, start=datetime(2101, 1, 1, 1, 0, tzinfo=UTC), by=coordinator_a
        )
    assert YEAR_ERROR not in str(caught.value)
    assert db_state() == before


@pytest.mark.parametrize(
    "reason", ["x" * (REASON_MAX_LENGTH + 1), "x" * 100_000, "participant ill\x00"]
)
def test_a_reason_the_audit_cannot_keep_is_a_field_error(site_a, coordinator_a, reason) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    dosing = course.sessions.get(key="dosing-1")
    before = db_state()
    with pytest.raises(SchedulingError) as cancelled:
        session_set_status(session=dosing, status="cancelled", reason=reason, by=coordinator_a)
    with pytest.raises(SchedulingError) as moved:
        session_reschedule(
            session=dosing, start=dosing.start + timedelta(days=1), reason=reason, by=None
        )
    for caught in (cancelled, moved):
        assert set(caught.value.errors) == {"reason"}
        message = caught.value.errors["reason"][0]
        assert message.startswith(("Shorten the reason", "The reason holds a control character"))
    assert db_state() == before


def test_a_reason_of_the_documented_length_is_kept_whole(site_a, coordinator_a) -> None:
    course = enrol_mapp(site_a, "P-001", coordinator_a)
    prep = course.sessions.get(key="prep-2")
    reason = "r" * REASON_MAX_LENGTH
    session_set_status(session=prep, status="cancelled", reason=reason, by=None)
    assert prep.deviations.get().reason == reason
    assert prep.history.latest("history_date").history_change_reason == reason


@pytest.mark.parametrize("day", [date(9999, 12, 31), date(1, 1, 1), date(2101, 1, 1)])
def test_dates_typed_in_the_admin_are_checked_by_the_model(site_a, coordinator_a, day) -> None:
    closure = SiteClosure(site=site_a, date=day, reason="typo")
    with pytest.raises(ValidationError) as caught:
        closure.full_clean()
    assert caught.value.message_dict == {"date": [YEAR_ERROR]}
    moment = datetime.combine(day, datetime.min.time(), UTC)
    period = Unavailability(user=coordinator_a, start=moment, end=moment + timedelta(hours=1))
    with pytest.raises(ValidationError) as caught:
        period.full_clean()
    assert set(caught.value.message_dict) == {"start", "end"}


def test_the_participant_code_rule_is_on_the_model(site_a) -> None:
    with pytest.raises(ValidationError) as caught:
        Participant(site=site_a, code="Jane Doe").full_clean()
    assert set(caught.value.message_dict) == {"code"}
