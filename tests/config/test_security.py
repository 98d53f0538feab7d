"""Response and transport hardening: production settings pass ``check --deploy``; HTTPS
redirects and HSTS; the Content-Security-Policy; no caching of pages, admin or API (static
files excepted); access logs without query strings (runserver and gunicorn)."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils.log import ServerFormatter

ROOT = Path(__file__).resolve().parent.parent.parent
PYTHON = sys.executable


def production_env(**variables: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, HTTPS at its default (on), a long
    random SECRET_KEY, a real host name; only what such a process would have."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "clinic.example.org,testserver",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "TWILIO_FROM": "+15005550006",
        **variables,
    }


def check_deploy(**variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(**variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_settings() -> None:
    done = check_deploy()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_warns_when_text_messages_would_only_be_logged() -> None:
    done = check_deploy(TWILIO_ACCOUNT_SID="", SMS_BACKEND="console")
    assert done.returncode != 0
    assert "scheduling.W001" in done.stderr, done.stderr


def test_check_deploy_fails_when_https_is_off() -> None:
    """The check above can fail: without HTTPS, Django names what is missing."""
    done = check_deploy(HTTPS="off")
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr, done.stderr


# Requests through Django's test client inside a process started with the production
# environment: the settings are computed exactly as in production, not patched in.
REQUESTS = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client

def seen(response):
    return {"status": response.status_code, "location": response.get("Location"),
            "hsts": response.get("Strict-Transport-Security")}

client = Client(raise_request_exception=False)  # /healthz needs a database: a 500 is fine
print(json.dumps({
    "http": seen(client.get("/")),
    "https": seen(client.get("/", secure=True)),
    "forwarded": seen(client.get("/", headers={"X-Forwarded-Proto": "https"})),
    "health": seen(client.get("/healthz")),
    "cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE,
                settings.SESSION_COOKIE_HTTPONLY, settings.CSRF_COOKIE_HTTPONLY],
}))
"""


def production_requests(**variables: str) -> dict[str, Any]:
    done = subprocess.run(
        [PYTHON, "-c", REQUESTS],
        cwd=ROOT,
        env=production_env(**variables),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_production_redirects_plain_http_and_sends_hsts() -> None:
    report = production_requests()
    assert report["http"]["status"] == 301
    assert report["http"]["location"] == "https://testserver/"
    assert report["http"]["hsts"] is None  # HSTS means something only over HTTPS
    assert report["https"]["status"] == 200
    assert report["https"]["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert report["cookies"] == [True, True, True, True]
    # X-Forwarded-Proto is not trusted unless BEHIND_TLS_PROXY says a proxy sets it
    assert report["forwarded"]["status"] == 301
    # the container's health check asks over plain HTTP and is not redirected
    assert report["health"]["status"] != 301


def test_behind_a_tls_proxy_its_forwarded_proto_counts_as_https() -> None:
    report = production_requests(BEHIND_TLS_PROXY="on")
    assert report["forwarded"]["status"] == 200
    assert report["forwarded"]["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert report["http"]["status"] == 301


# --- Content-Security-Policy and caching, in this process ---------------------------------

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def directives(header: str) -> dict[str, str]:
    parts = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return dict(parts)


@pytest.mark.django_db
def test_pages_send_the_strict_policy_and_no_caching(client: Client, coordinator_a: Any) -> None:
    client.force_login(coordinator_a)
    response = client.get("/today/")
    assert response.status_code == 200
    assert directives(response["Content-Security-Policy"]) == POLICY
    assert "unsafe" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert_not_stored(response)


def assert_not_stored(response: Any) -> None:
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= cache_control, response["Cache-Control"]


@pytest.mark.django_db
def test_admin_api_and_login_responses_are_not_stored(
    client: Client, admin_client: Client, coordinator_a: Any
) -> None:
    assert_not_stored(client.get("/login/"))
    for url in ("/admin/", "/admin/scheduling/site/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_not_stored(response)
    client.force_login(coordinator_a)
    for url in ("/api/sites/", "/api/participants/", "/api/nothing-here/"):
        assert_not_stored(client.get(url))
    assert_not_stored(client.post("/participants/", {"q": "P-1"}))  # redirects too


def test_static_files_stay_cacheable(settings: Any) -> None:
    """WhiteNoise answers static files before the no-store middleware runs. (It reads its
    settings when the middleware is built: a new Client builds it.)"""
    settings.WHITENOISE_USE_FINDERS = True
    response = Client().get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    assert "max-age" in response["Cache-Control"]


TEMPLATES = ROOT / "templates"
INLINE = re.compile(r"\sstyle\s*=|<style\b|<script>|\son[a-z]+\s*=|javascript:", re.IGNORECASE)
#: reminder emails are read in mail clients, not served under the policy; mail clients drop
#: style sheets, so their HTML carries inline styles (and never a script)
EMAILS = TEMPLATES / "reminders"


def test_no_template_has_inline_style_or_script() -> None:
    """The policy would block them; the browser test finds what the templates' includes and
    libraries add."""
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        if EMAILS not in path.parents
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if INLINE.search(line)
    ]
    assert found == []


def test_reminder_emails_carry_no_script_or_handler() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(EMAILS.rglob("*.html"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"<script|\son[a-z]+\s*=|javascript:|<style\b", line, re.IGNORECASE)
    ]
    assert sorted(EMAILS.rglob("*.html")) and found == []


@pytest.mark.django_db
def test_the_api_docs_load_their_start_up_script_as_a_file(
    client: Client, coordinator_a: Any
) -> None:
    client.force_login(coordinator_a)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>" not in html and "<style>" not in html
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', html)
    assert script_url is not None, html
    script = client.get(script_url.group(1).replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


# --- access logs without query strings ------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def server_log() -> Iterator[list[str]]:
    """What runserver's access logger (``django.server``, as LOGGING configures it) writes,
    through its own filters and formatter."""
    logger = logging.getLogger("django.server")
    capture = Lines()
    capture.setFormatter(ServerFormatter("[{server_time}] {message}", style="{"))
    logger.addHandler(capture)
    yield capture.lines
    logger.removeHandler(capture)


def test_runserver_access_log_drops_query_strings(server_log: list[str]) -> None:
    logger = logging.getLogger("django.server")
    # exactly as django.core.servers.basehttp.WSGIRequestHandler.log_message logs a request
    logger.info(
        '"%s" %s %s',
        "GET /participants/?q=P-014&status=active HTTP/1.1",
        "200",
        "5120",
        extra={"status_code": 200, "server_time": "03/Dec/2026 10:00:00"},
    )
    logger.info('"%s" %s %s', "GET /today/ HTTP/1.1", "200", "99", extra={"status_code": 200})
    assert len(server_log) == 2
    assert "P-014" not in server_log[0] and "status=active" not in server_log[0]
    assert '"GET /participants/ HTTP/1.1" 200 5120' in server_log[0]
    assert '"GET /today/ HTTP/1.1" 200 99' in server_log[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_gunicorn_access_log_drops_query_strings(tmp_path: Path) -> None:
    """The web container's gunicorn settings (config/gunicorn.py), run for real."""
    port = free_port()
    log = tmp_path / "access.log"
    server = subprocess.Popen(
        [
            *(PYTHON, "-m", "gunicorn", "config.wsgi:application"),
            *("--config", "config/gunicorn.py", "--bind", f"127.0.0.1:{port}", "--workers", "1"),
            *("--access-logfile", str(log)),
        ],
        cwd=ROOT,
        env=production_env(HTTPS="off", ALLOWED_HOSTS="127.0.0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/?q=P-014&next=/participants/"
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                break
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not answer")
        for _ in range(50):  # gunicorn writes the access line after the response
            if log.exists() and log.read_text():
                break
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    written = log.read_text()
    assert '"GET / HTTP/1.1" 200' in written, written
    assert "P-014" not in written and "participants" not in written and "?" not in written


def test_a_nul_anywhere_in_a_request_is_a_400_that_says_why(client, admin_user) -> None:
    client.force_login(admin_user)
    cases = [
        client.get("/participants/", {"status": "a\x00b"}),
        client.get("/admin/scheduling/scheduledsession/", {"status": "\x00"}),
        client.post("/participants/", {"q": "P-\x00"}),
        client.get("/today/", {"x\x00": "1"}),
    ]
    for response in cases:
        assert response.status_code == 400
        assert "null character" in response.content.decode()
    api = client.get("/api/sessions/", {"status": "\x00"})
    assert api.status_code == 400
    assert "null character" in api.json()["detail"]
    # a JSON body is the serializers' to judge, field by field
    assert client.get("/participants/", {"status": "planned"}).status_code == 200
