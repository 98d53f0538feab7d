"""The SMS provider's inbound webhook (POST /hooks/sms/): a valid Twilio signature is
required; STOP and its synonyms withdraw text-message consent, START gives it again."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from twilio.request_validator import RequestValidator

from scheduling import outbox
from scheduling.models import Participant, Site
from tests.conftest import make_site

pytestmark = pytest.mark.django_db

TOKEN = "test-twilio-auth-token"  # noqa: S105  # a test value, signs test requests
URL = "http://testserver/hooks/sms/"


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.TWILIO_AUTH_TOKEN = TOKEN


@pytest.fixture
def site() -> Site:
    made: Site = make_site("w", dyads=0, assessors=0)
    return made


def person(site: Site, code: str, phone: str, consent: bool = True) -> Participant:
    found = Participant.objects.create(
        site=site, code=code, phone=phone, preferred_channel="sms", status="enrolled"
    )
    if consent:
        outbox.participant_consent_set(
            participant=found, channel="sms", given=True, by=None, source="test"
        )
    return found


def post(body: str, sender: str, signature: str | None = None) -> Any:
    data = {"From": sender, "Body": body, "To": "+15005550006", "MessageSid": "SM123"}
    if signature is None:
        signature = RequestValidator(TOKEN).compute_signature(URL, data)
    return Client().post("/hooks/sms/", data, HTTP_X_TWILIO_SIGNATURE=signature)


def consent(found: Participant) -> bool:
    found.refresh_from_db()
    return found.sms_consent_at is not None


@pytest.mark.parametrize("word", ["STOP", "stop", " Unsubscribe ", "STOPALL", "QUIT", "END"])
def test_stop_withdraws_consent_of_that_number_only(site: Site, word: str) -> None:
    one = person(site, "W-1", "(212) 555-0100")
    other = person(site, "W-2", "+1 212 555 0199")
    response = post(word, "+12125550100")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Response/>" in response.content
    assert not consent(one)
    assert consent(other)
    assert one.history.first().history_change_reason == "sms consent withdrawn (text message reply)"


def test_start_gives_consent_again(site: Site) -> None:
    one = person(site, "W-1", "212-555-0100", consent=False)
    assert post("START", "+12125550100").status_code == 200
    assert consent(one)
    assert post("hello", "+12125550100").status_code == 200  # anything else: ignored
    assert consent(one)


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
def test_a_missing_or_wrong_signature_is_refused_and_changes_nothing(
    site: Site, signature: str
) -> None:
    one = person(site, "W-1", "+1 212 555 0100")
    response = post("STOP", "+12125550100", signature=signature)
    assert response.status_code == 403
    assert consent(one)


def test_a_signature_over_other_values_is_refused(site: Site) -> None:
    one = person(site, "W-1", "+1 212 555 0100")
    signed = RequestValidator(TOKEN).compute_signature(
        URL, {"From": "+12125550100", "Body": "START", "To": "+15005550006", "MessageSid": "SM1"}
    )
    assert post("STOP", "+12125550100", signature=signed).status_code == 403
    assert consent(one)


def test_without_a_configured_token_everything_is_refused(site: Site, settings: Any) -> None:
    settings.TWILIO_AUTH_TOKEN = ""
    one = person(site, "W-1", "+1 212 555 0100")
    assert post("STOP", "+12125550100").status_code == 403
    assert consent(one)


def test_get_is_not_allowed(site: Site) -> None:
    assert Client().get("/hooks/sms/").status_code == 405


def test_a_number_sharing_only_its_last_digits_is_someone_else(site: Site) -> None:
    # a START from abroad must not give consent for a participant whose stored number
    # merely ends with the same seven digits (typed without its area code)
    short = person(site, "W-1", "555-0100", consent=False)
    assert post("START", "+442075550100").status_code == 200
    assert not consent(short)
    # the same number written nationally (trunk 0) and internationally is one number
    london = person(site, "W-2", "020 7555 0199", consent=True)
    assert post("STOP", "+442075550199").status_code == 200
    assert not consent(london)
