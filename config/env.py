"""Read the process environment into typed settings, failing loudly on mistakes.

Settings come only from here, so a typo such as ``DATABSE_URL`` must not silently fall back to a
default: any environment variable that looks like one of ours but is not is an error.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

#: Every environment variable the application reads, with what it is for.
KNOWN: dict[str, str] = {
    "DEBUG": "development mode: detailed error pages, a development SECRET_KEY",
    "SECRET_KEY": "Django's signing key; required unless DEBUG is on",
    "DATABASE_URL": "postgres://user@host:5432/name or sqlite:///path (default: SQLite in var/)",
    "REDIS_URL": "Redis address for Celery's broker (default: redis://127.0.0.1:6379/0)",
    "ALLOWED_HOSTS": "comma-separated host names the site answers to",
    "CSRF_TRUSTED_ORIGINS": "comma-separated origins trusted for unsafe requests (https://host)",
    "USE_TZ": "must stay on: instants are stored in UTC",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
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
