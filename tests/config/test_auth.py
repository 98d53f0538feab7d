"""Signing in: lockout after repeated failures on the login page, the admin and the token
endpoint; throttling of the token endpoint; password rules; API tokens that expire and die
with a password change; sessions that end when idle and after SESSION_MAX_HOURS; logs that
never hold the password. Everything runs on the real database and Redis."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from config.env import Env

pytestmark = pytest.mark.django_db

PASSWORD = "test-password-1234"  # noqa: S105  # tests.conftest.make_staff
WRONG = "Wrong-Horse-Battery-77"


def fail_login(
    client: Client, path: str = "/login/", username: str = "coordinator-a", **headers: str
) -> Any:
    return client.post(path, {"username": username, "password": WRONG}, headers=headers)


def token_request(
    username: str = "coordinator-a",
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> Any:
    body = {"username": username, "password": password, **extra}
    return APIClient().post("/api/auth/token/", body, format="json", headers=headers)


# --- lockout --------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_login_page_for_the_cool_off(coordinator_a) -> None:
    client = Client()
    for _ in range(4):
        assert fail_login(client).status_code == 200  # the form again, with its error
    locked = fail_login(client)
    assert locked.status_code == 429
    assert "Wait 15 minutes" in locked.content.decode()
    assert locked["Retry-After"] == "900"

    right = client.post("/login/", {"username": "coordinator-a", "password": PASSWORD})
    assert right.status_code == 429  # even the right password waits
    assert "_auth_user_id" not in client.session

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        after = client.post("/login/", {"username": "coordinator-a", "password": PASSWORD})
    assert after.status_code == 302
    assert client.session["_auth_user_id"] == str(coordinator_a.pk)


def test_a_lockout_holds_one_user_name_only(coordinator_a, therapist_a) -> None:
    client = Client()
    for _ in range(5):
        fail_login(client)
    other = client.post("/login/", {"username": therapist_a.username, "password": PASSWORD})
    assert other.status_code == 302


def test_a_success_clears_the_count(coordinator_a) -> None:
    client = Client()
    for _ in range(4):
        fail_login(client)
    client.post("/login/", {"username": "coordinator-a", "password": PASSWORD})
    client.post("/logout/")
    for _ in range(4):
        assert fail_login(client).status_code == 200


def test_the_admin_login_locks_out_too(db) -> None:
    User.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    for _ in range(4):
        assert fail_login(client, "/admin/login/", "root").status_code == 200
    assert fail_login(client, "/admin/login/", "root").status_code == 429
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 429
    assert "ask an administrator to unlock" in response.content.decode()


def test_the_token_endpoint_locks_out_with_json(coordinator_a) -> None:
    for _ in range(4):
        assert token_request(password=WRONG).status_code == 400
    locked = token_request(password=WRONG)
    assert locked.status_code == 429
    assert "Wait 15 minutes" in locked.json()["detail"]
    right = token_request()
    assert right.status_code == 429
    assert "token" not in right.json()
    assert not AuthToken.objects.exists()


def test_a_made_up_forwarded_address_does_not_escape_the_lockout(coordinator_a) -> None:
    client = Client()
    for n in range(4):
        fail_login(client, **{"X-Forwarded-For": f"10.0.0.{n}"})
    assert fail_login(client, **{"X-Forwarded-For": "10.0.0.99"}).status_code == 429


def test_behind_the_tls_proxy_the_address_it_appended_counts(coordinator_a, settings) -> None:
    settings.AXES_CLIENT_IP_CALLABLE = "config.auth.forwarded_client_address"
    client = Client()
    for _ in range(5):
        fail_login(client, **{"X-Forwarded-For": "10.9.9.9, 203.0.113.7"})
    elsewhere = client.post(
        "/login/",
        {"username": "coordinator-a", "password": PASSWORD},
        headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.2"},
    )
    assert elsewhere.status_code == 302  # another computer behind the same proxy


def test_the_token_endpoint_is_throttled_whatever_the_user_name(db) -> None:
    for n in range(10):
        response = token_request(username=f"nobody-{n}", headers={"X-Forwarded-For": f"10.1.{n}"})
        assert response.status_code == 400
    throttled = token_request(username="nobody-else")
    assert throttled.status_code == 429
    assert "throttled" in throttled.json()["detail"]


def test_failed_logins_and_lockouts_are_logged_without_the_password(
    coordinator_a, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client()
    for _ in range(6):
        fail_login(client)
    for _ in range(6):
        token_request(username="coordinator-b", password=WRONG)

    messages = [record.getMessage() for record in caplog.records]
    assert any("Locking out" in message for message in messages)
    assert any("login failure" in message for message in messages)
    for record in caplog.records:
        assert WRONG not in record.getMessage()
        assert WRONG not in repr(record.__dict__)
        # the user name is masked too: it can be a person's name
        assert "coordinator-a" not in record.getMessage()


# --- passwords and tokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["short-pass1", "password1234", "839201746352", "coordinator-a-1"],
)
def test_weak_passwords_are_refused(coordinator_a, password: str) -> None:
    with pytest.raises(ValidationError):
        validate_password(password, coordinator_a)


def test_a_long_random_password_passes(coordinator_a) -> None:
    validate_password("vivid-lantern-orchard-42", coordinator_a)


def test_a_token_comes_with_its_expiry_and_expires(coordinator_a, settings) -> None:
    response = token_request()
    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/sites/").status_code == 200
    expiry = AuthToken.objects.get(user=coordinator_a).expiry
    assert timedelta(hours=9, minutes=59) < expiry - timezone.now() <= timedelta(hours=10)

    with time_machine.travel(expiry + timedelta(seconds=1)):
        assert client.get("/api/sites/").status_code == 401


def test_a_password_change_revokes_every_api_token(coordinator_a, therapist_a) -> None:
    _, first = AuthToken.objects.create(coordinator_a)
    _, second = AuthToken.objects.create(coordinator_a)
    _, others = AuthToken.objects.create(therapist_a)

    coordinator_a.set_password("a-new-long-password-991")
    coordinator_a.save()

    for token, status in ((first, 401), (second, 401), (others, 200)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert client.get("/api/sites/").status_code == status


def test_a_re_hash_of_the_same_password_keeps_the_tokens(coordinator_a, settings) -> None:
    """Signing in re-hashes a password stored with an older hasher: not a change."""
    AuthToken.objects.create(coordinator_a)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert Client().post("/login/", {"username": "coordinator-a", "password": PASSWORD})
    assert User.objects.get(pk=coordinator_a.pk).password.startswith("pbkdf2_sha256$")
    assert AuthToken.objects.filter(user=coordinator_a).count() == 1


def test_the_schema_describes_the_token_endpoint(db) -> None:
    client = APIClient()
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/auth/token/"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "429"}
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][request.rsplit("/", 1)[-1]]["properties"]
    assert set(fields) == {"username", "password", "otp_token"}
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(schema["components"]["schemas"][response.rsplit("/", 1)[-1]]["properties"]) == {
        "token",
        "expiry",
    }


# --- sessions --------------------------------------------------------------------------------


def test_the_session_cookie_ends_with_the_browser(coordinator_a) -> None:
    client = Client()
    response = client.post("/login/", {"username": "coordinator-a", "password": PASSWORD})
    assert response.cookies["sessionid"]["expires"] == ""
    assert response.cookies["sessionid"]["max-age"] == ""


def test_an_idle_session_ends(coordinator_a) -> None:
    client = Client()
    client.force_login(coordinator_a)
    start = timezone.now()
    with time_machine.travel(start + timedelta(minutes=25), tick=False):
        assert client.get("/today/").status_code == 200  # a request restarts the idle clock
    with time_machine.travel(start + timedelta(minutes=50), tick=False):
        assert client.get("/today/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=81), tick=False):
        response = client.get("/today/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_busy_session_ends_after_session_max_hours(coordinator_a, settings) -> None:
    settings.SESSION_MAX_HOURS = 1
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.post("/login/", {"username": "coordinator-a", "password": PASSWORD})
    for minutes in (20, 40, 59):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert client.get("/today/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        response = client.get("/today/")
        assert response.status_code == 302
        assert response["Location"] == "/login/?next=/today/"
        assert "_auth_user_id" not in client.session


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3", "five", "101", "²", "٣", "1" * 400])
def test_a_limit_that_would_switch_a_protection_off_stops_the_start(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="LOGIN_FAILURE_LIMIT="):
        Env({"LOGIN_FAILURE_LIMIT": value}).count("LOGIN_FAILURE_LIMIT", 5, maximum=100)


SIGN_IN_REPORT = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps([settings.TWO_FACTOR_REQUIRED, settings.AXES_FAILURE_LIMIT,
    settings.SESSION_COOKIE_AGE, settings.REST_KNOX["TOKEN_TTL"].total_seconds()]))
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"DEBUG": "1"}, [False, 5, 1800, 36000]),  # make run's demo: no phone needed
        ({"SECRET_KEY": "not-a-secret"}, [True, 5, 1800, 36000]),  # production
        (
            {
                "SECRET_KEY": "not-a-secret",
                "LOGIN_FAILURE_LIMIT": "8",
                "SESSION_IDLE_MINUTES": "15",
                "API_TOKEN_HOURS": "2",
            },
            [True, 8, 900, 7200],
        ),
    ],
)
def test_sign_in_settings_come_from_the_environment(
    variables: dict[str, str], expected: list[object]
) -> None:
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "config.settings", **variables}
    done = subprocess.run(
        [sys.executable, "-c", SIGN_IN_REPORT],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
