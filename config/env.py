"""Read the process environment into typed settings, failing loudly on mistakes.

Settings come only from here, so a typo such as ``DATABSE_URL`` must not silently fall back to a
default: any environment variable that looks like one of ours but is not is an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

#: Every environment variable the application reads, with what it is for.
KNOWN: dict[str, str] = {
    "DEBUG": "development mode: detailed error pages, a development SECRET_KEY",
    "SECRET_KEY": "Django's signing key; required unless DEBUG is on",
    "DATABASE_URL": "postgres://user@host:5432/name or sqlite:///path (default: SQLite in var/)",
    "DATABASE_PREPARED_STATEMENTS": "on/off: prepared statements on PostgreSQL (default on)",
    "REDIS_URL": "Redis address for Celery's broker (default: redis://127.0.0.1:6379/0)",
    "ALLOWED_HOSTS": "comma-separated host names the site answers to",
    "CSRF_TRUSTED_ORIGINS": "comma-separated origins trusted for unsafe requests (https://host)",
    "USE_TZ": "must stay on: instants are stored in UTC",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
    "HTTPS": "served over HTTPS (default on unless DEBUG): redirect to https, HSTS, Secure cookies",
    "BEHIND_TLS_PROXY": "trust X-Forwarded-Proto: https from the TLS-terminating proxy in front",
    "LOGIN_FAILURE_LIMIT": "failed sign-ins (one user name from one address) before a lockout",
    "LOGIN_COOLOFF_MINUTES": "minutes a sign-in lockout lasts after the last failed try",
    "SESSION_IDLE_MINUTES": "minutes without a request after which a signed-in session ends",
    "SESSION_MAX_HOURS": "hours after sign-in after which a session ends, however busy",
    "API_TOKEN_HOURS": "hours an API token from POST /api/auth/token/ stays valid",
    "TWO_FACTOR_REQUIRED": "two-factor sign-in for admins, coordinators and superusers "
    "(default: on unless DEBUG)",
    "EMAIL_HOST": "SMTP server reminders are sent through (default: the console under DEBUG, "
    "else localhost)",
    "EMAIL_PORT": "SMTP server port (default: 25)",
    "EMAIL_HOST_USER": "SMTP user name, if the server asks for a sign-in",
    "EMAIL_HOST_PASSWORD": "SMTP password, if the server asks for a sign-in",
    "EMAIL_USE_TLS": "STARTTLS to the SMTP server (usually port 587)",
    "EMAIL_USE_SSL": "implicit TLS to the SMTP server (usually port 465)",
    "DEFAULT_FROM_EMAIL": "sender address of reminders (default: reminders@localhost)",
    "SMS_BACKEND": "console (log only, the default without Twilio credentials) or twilio",
    "TWILIO_ACCOUNT_SID": "Twilio account SID for text-message reminders (AC...)",
    "TWILIO_AUTH_TOKEN": "Twilio auth token",
    "TWILIO_FROM": "the Twilio phone number text messages come from (+E.164)",
    "SMS_API_BASE_URL": "tests only: the SMS provider's API address (a stub on loopback)",
    "REMINDER_SWEEP_SECONDS": "seconds between the beat's sweeps for due reminders (default: 60)",
    "REMINDER_LEASE_SECONDS": "seconds a claimed reminder waits for its send task before the sweep "
    "claims it again (default: 300)",
    "REMINDER_BATCH": "reminders one sweep claims per transaction (default: 500)",
    "REMINDER_MAX_ATTEMPTS": "tries of one reminder before it is failed (default: 4)",
    "REMINDER_RETRY_SECONDS": "comma-separated waits before the 2nd, 3rd, ... try after a "
    "transient error (default: 60,300,900)",
    "CALDAV_TIMEOUT": "seconds a CalDAV server has to answer a push (default: 10)",
    "CALDAV_LEASE_SECONDS": "a claimed CalDAV push not reported after this is claimed again "
    "(default: 300)",
    "CALDAV_BATCH": "CalDAV pushes one sweep claims per transaction (default: 200)",
    "CALDAV_MAX_ATTEMPTS": "tries of one CalDAV push before it is failed (default: 8)",
    "CALDAV_RETRY_SECONDS": "comma-separated waits before the 2nd, 3rd, ... try of a CalDAV "
    "push after a transient error (default: 60,300,900,3600)",
    "SITE_URL": "the address staff open the site at (https://host), for links in emails",
    "REMINDER_FORBIDDEN_WORDS": "comma-separated words no reminder may contain, added to the "
    "built-in list (the drug, the diagnosis, the arm...); word* matches the word's forms",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


class Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        check_spelling(environ)

    def text(self, name: str, default: str | None = None) -> str | None:
        _known(name)
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false")

    def items(self, name: str, default: list[str]) -> list[str]:
        value = self.text(name)
        if value is None:
            return default
        return [item.strip() for item in value.split(",") if item.strip()]

    def count(self, name: str, default: int, maximum: int) -> int:
        """A whole number from 1 to ``maximum``: limits and durations, where 0 or a negative
        number would switch a protection off without saying so."""
        value = self.text(name)
        if value is None:
            return default
        # plain ASCII digits: str.isdigit() takes "²", which int() then refuses with a traceback
        if not re.fullmatch(r"[0-9]{1,9}", value) or not 1 <= int(value) <= maximum:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not a whole number from 1 to {maximum}"
            )
        return int(value)

    def one_of(self, name: str, default: str, choices: set[str]) -> str:
        value = (self.text(name) or default).upper()
        if value not in choices:
            raise ImproperlyConfigured(
                f"{name}={value!r} is not one of {', '.join(sorted(choices))}"
            )
        return value

    def log_level(self) -> str:
        return self.one_of("LOG_LEVEL", "INFO", _LOG_LEVELS)


def _known(name: str) -> None:
    if name not in KNOWN:  # a programming error, not a user one
        raise KeyError(f"{name} is not declared in config.env.KNOWN")


def check_spelling(environ: Mapping[str, str]) -> None:
    """Reject variables that are one typo away from a setting we read."""
    for name in environ:
        if name in KNOWN:
            continue
        close = difflib.get_close_matches(name.upper(), KNOWN, n=1, cutoff=0.8)
        if close:
            raise ImproperlyConfigured(
                f"Unknown setting {name}; did you mean {close[0]}? "
                f"(settings read: {', '.join(sorted(KNOWN))})"
            )
