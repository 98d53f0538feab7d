"""Settings come from the environment and stop the process on mistakes. Each case starts a
fresh Python process with a minimal, controlled environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent.parent

REPORT = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"),
    "debug": settings.DEBUG, "time_zone": settings.TIME_ZONE, "use_tz": settings.USE_TZ,
    "broker": settings.CELERY_BROKER_URL,
    "email_backend": settings.EMAIL_BACKEND, "email_host": settings.EMAIL_HOST,
    "email_port": settings.EMAIL_PORT, "email_tls": settings.EMAIL_USE_TLS,
    "from": settings.DEFAULT_FROM_EMAIL, "sms_backend": settings.SMS_BACKEND,
}))
"""


def start_django(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-c", REPORT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_of(**variables: str) -> dict[str, object]:
    done = start_django(**variables)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def failure_of(**variables: str) -> str:
    done = start_django(**variables)
    assert done.returncode != 0, done.stdout
    assert "ImproperlyConfigured" in done.stderr
    return done.stderr


def test_debug_without_database_url_uses_sqlite() -> None:
    report = settings_of(DEBUG="1")
    assert report["engine"] == "django.db.backends.sqlite3"
    assert str(report["name"]).startswith(str(ROOT / "var"))
    assert report["debug"] is True
    assert report["use_tz"] is True
    assert report["time_zone"] == "UTC"
    assert report["broker"] == "redis://127.0.0.1:6379/0"


def test_postgres_database_url() -> None:
    report = settings_of(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        SECRET_KEY="not-a-secret",
        REDIS_URL="redis://127.0.0.1:6379/15",
    )
    assert report["engine"] == "django.db.backends.postgresql"
    assert (report["name"], report["host"]) == ("test", "127.0.0.1")
    assert report["debug"] is False
    assert report["time_zone"] == "UTC"
    assert report["use_tz"] is True
    assert report["broker"] == "redis://127.0.0.1:6379/15"


def test_misspelled_variable_is_an_error() -> None:
    stderr = failure_of(DEBUG="1", DATABSE_URL="postgres://postgres@127.0.0.1:5432/test")
    assert "DATABSE_URL" in stderr
    assert "did you mean DATABASE_URL" in stderr


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DEBUG": "0"}, "SECRET_KEY is required"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://root@127.0.0.1/app"}, "DATABASE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"DEBUG": "1", "USE_TZ": "false"}, "USE_TZ"),
    ],
    ids=["debug-maybe", "no-secret-key", "mysql", "redis-http", "use-tz-off"],
)
def test_invalid_settings_stop_the_process(variables: dict[str, str], expected: str) -> None:
    stderr = failure_of(**variables)
    assert expected in stderr


def test_email_and_sms_under_debug_stay_on_the_console() -> None:
    report = settings_of(DEBUG="1")
    assert report["email_backend"] == "django.core.mail.backends.console.EmailBackend"
    assert report["sms_backend"] == "console"


def test_email_goes_to_smtp_on_localhost_unless_debug() -> None:
    report = settings_of(SECRET_KEY="not-a-secret")
    assert report["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (report["email_host"], report["email_port"]) == ("localhost", 25)
    assert report["from"] == "reminders@localhost"
    assert report["sms_backend"] == "console"


def test_email_server_and_twilio_from_the_environment() -> None:
    report = settings_of(
        DEBUG="1",
        EMAIL_HOST="smtp.example.org",
        EMAIL_PORT="587",
        EMAIL_USE_TLS="true",
        DEFAULT_FROM_EMAIL="Clinic <reminders@example.org>",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="not-a-token",
        TWILIO_FROM="+15005550006",
    )
    assert report["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (report["email_host"], report["email_port"]) == ("smtp.example.org", 587)
    assert report["email_tls"] is True
    assert report["from"] == "Clinic <reminders@example.org>"
    assert report["sms_backend"] == "twilio"  # credentials given: twilio unless said otherwise


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"EMAIL_PORT": "0"}, "EMAIL_PORT='0' is not a whole number from 1 to 65535"),
        ({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "choose one"),
        ({"SMS_BACKEND": "carrier-pigeon"}, "SMS_BACKEND='CARRIER-PIGEON' is not one of"),
        ({"SMS_BACKEND": "twilio"}, "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID"),
        ({"SMS_API_BASE_URL": "127.0.0.1:8000"}, "SMS_API_BASE_URL must start with http"),
        ({"TWILIO_AUTH_TOKN": "x"}, "did you mean TWILIO_AUTH_TOKEN"),
        ({"EMAIL_HOTS": "smtp.example.org"}, "did you mean EMAIL_HOST"),
    ],
    ids=[
        "port-0",
        "tls-and-ssl",
        "sms-unknown",
        "twilio-no-credentials",
        "sms-url",
        "tokn",
        "hots",
    ],
)
def test_invalid_channel_settings_stop_the_process(
    variables: dict[str, str], expected: str
) -> None:
    stderr = failure_of(DEBUG="1", **variables)
    assert expected in stderr


def test_secret_key_is_not_required_in_debug() -> None:
    assert settings_of(DEBUG="yes")["debug"] is True


@pytest.mark.django_db
def test_landing_and_health_check(client: Client) -> None:
    landing = client.get("/")
    assert landing.status_code == 200
    assert b"Log in" in landing.content
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


@pytest.mark.django_db
def test_landing_sends_staff_to_today_and_others_to_log_in(
    admin_client: Client, client: Client
) -> None:
    assert admin_client.get("/").url == "/today/"  # type: ignore[attr-defined]
    page = client.get("/")
    assert page.status_code == 200
    assert b'href="/login/"' in page.content
