"""Two-factor sign-in (django-otp, TOTP) for admins, coordinators and superusers: enrolment
from a QR code at the first sign-in, a code at every sign-in after, nothing reachable before
it (pages, the admin, the API), and the token endpoint asking for the code too."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "test-password-1234"  # noqa: S105  # tests.conftest.make_staff
TWO_FACTOR = "/login/two-factor/"


def code_of(device: TOTPDevice) -> str:
    """What the user's authenticator app shows now."""
    device.refresh_from_db()
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{value:06d}"


def sign_in(user: Any) -> Client:
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def confirmed_device(user: Any) -> TOTPDevice:
    device: TOTPDevice = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return device


def test_with_the_setting_off_a_password_is_enough(coordinator_a) -> None:
    client = sign_in(coordinator_a)
    assert client.get("/today/").status_code == 200


def test_a_coordinator_without_a_device_enrols_at_first_sign_in(coordinator_a, two_factor) -> None:
    client = sign_in(coordinator_a)
    response = client.get("/participants/")
    assert response.status_code == 302
    assert response["Location"] == f"{TWO_FACTOR}?next=/participants/"

    page = client.get(response["Location"])
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=coordinator_a)
    assert not device.confirmed
    assert "<svg" in html
    assert "otpauth://totp/Course%20scheduler%3Acoordinator-a?secret=" in html
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', html)
    assert secret and secret.group(1).replace(" ", "") in device.config_url
    # under the strict CSP: no inline script, no style attribute
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html
    # a reload keeps the secret the app may have scanned already
    assert client.get(response["Location"]).content.decode().count(secret.group(1)) == 1
    assert TOTPDevice.objects.filter(user=coordinator_a).count() == 1

    wrong = client.post(TWO_FACTOR, {"code": "000000", "next": "/participants/"})
    assert wrong.status_code == 200
    assert "That code was not accepted" in wrong.content.decode()
    assert client.get("/participants/").status_code == 302
    device.refresh_from_db()
    assert not device.confirmed

    with time_machine.travel(timezone.now() + timedelta(seconds=3)):  # past the throttle
        right = client.post(TWO_FACTOR, {"code": code_of(device), "next": "/participants/"})
    assert right.status_code == 302
    assert right["Location"] == "/participants/"
    assert client.get("/participants/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed


def test_a_coordinator_with_a_device_gives_a_code(coordinator_a, two_factor) -> None:
    device = confirmed_device(coordinator_a)
    client = sign_in(coordinator_a)
    assert client.get("/today/")["Location"] == f"{TWO_FACTOR}?next=/today/"
    page = client.get(TWO_FACTOR).content.decode()
    assert "6-digit code" in page and "<svg" not in page  # no new secret to scan

    wrong = client.post(TWO_FACTOR, {"code": "123456"})
    assert "That code was not accepted" in wrong.content.decode()
    assert client.get("/today/").status_code == 302

    with time_machine.travel(timezone.now() + timedelta(seconds=3)):
        right = client.post(TWO_FACTOR, {"code": code_of(device), "next": "https://evil.example/"})
    assert right["Location"] == "/"  # never off the site
    assert client.get("/today/").status_code == 200


def test_a_used_code_is_refused_a_second_time(coordinator_a, two_factor) -> None:
    device = confirmed_device(coordinator_a)
    code = code_of(device)
    assert sign_in(coordinator_a).post(TWO_FACTOR, {"code": code}).status_code == 302
    again = sign_in(coordinator_a).post(TWO_FACTOR, {"code": code})
    assert again.status_code == 200


def test_a_therapist_is_not_asked(therapist_a, two_factor) -> None:
    client = sign_in(therapist_a)
    assert client.get("/today/").status_code == 200


def test_the_admin_waits_for_the_code_too(db, two_factor) -> None:
    User.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{TWO_FACTOR}?next=/admin/"


def test_the_api_with_an_unverified_session_says_what_to_do(coordinator_a, two_factor) -> None:
    client = APIClient()
    client.force_login(coordinator_a)
    response = client.get("/api/sites/")
    assert response.status_code == 403
    assert "two-factor sign-in" in response.json()["detail"]


def test_signing_out_stays_open(coordinator_a, two_factor) -> None:
    client = sign_in(coordinator_a)
    assert client.post("/logout/")["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_the_token_of_a_coordinator_needs_the_code(coordinator_a, two_factor) -> None:
    def ask(**extra: str) -> Any:
        body = {"username": "coordinator-a", "password": PASSWORD, **extra}
        return APIClient().post("/api/auth/token/", body, format="json")

    no_device = ask(otp_token="123456")
    assert no_device.status_code == 400
    assert "sign in once on the web pages" in no_device.json()["otp_token"][0]

    device = confirmed_device(coordinator_a)
    missing = ask()
    assert missing.status_code == 400
    assert "send otp_token" in missing.json()["otp_token"][0]
    wrong = ask(otp_token="000000")
    assert wrong.status_code == 400
    assert "not accepted" in wrong.json()["otp_token"][0]
    with time_machine.travel(timezone.now() + timedelta(seconds=3)):
        right = ask(otp_token=code_of(device))
    assert right.status_code == 200
    assert set(right.json()) == {"token", "expiry"}


def test_the_token_of_a_therapist_needs_no_code(therapist_a, two_factor) -> None:
    body = {"username": therapist_a.username, "password": PASSWORD}
    assert APIClient().post("/api/auth/token/", body, format="json").status_code == 200
