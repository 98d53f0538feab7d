"""The input rules every door shares (pages, the API, the admin, services and commands), so
that one input gets one answer whichever way it comes in."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

#: a study code, not a name: letters and digits with - _ . between them, at most 30
STUDY_CODE_MAX_LENGTH = 30
STUDY_CODE = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z",
    "Use the study code: letters, digits and - _ . only (no spaces, no names).",
    code="study_code",
)

#: the longest reason a person can give (cancelling, moving out of a window, withdrawing); the
#: audit history keeps it whole
REASON_MAX_LENGTH = 2000

#: dates outside these years are typing mistakes (and would overflow date arithmetic)
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


def plausible_date(day: dt.date) -> None:
    """One year check for every date (and the date of every date-time) a person enters."""
    if isinstance(day, dt.datetime):
        day = day.date()
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise ValidationError(
            f"Choose a date between the years {EARLIEST_YEAR} and {LATEST_YEAR}.",
            code="implausible_date",
        )


#: a phone number as people write one: digits with + ( ) . - / and spaces, at least 7 digits
PHONE = re.compile(r"\+?[0-9 ().\-/]+")
PHONE_MIN_DIGITS = 7


def reminder_contact_errors(channel: str, email: str, phone: str) -> dict[str, str]:
    """The reminder channel needs its address: SMS a phone number, email an email address;
    a phone given is a phone number. Field name -> message (the field to fill in), empty when
    the contact details fit."""
    given = phone.strip()
    digits = sum(c.isdigit() for c in given)
    if given and (PHONE.fullmatch(given) is None or digits < PHONE_MIN_DIGITS):
        return {
            "phone": "Enter the phone number with its digits (at least 7), e.g. +1 555 010 0100; "
            "or leave it empty."
        }
    if channel == "sms" and not phone.strip():
        return {"phone": "Reminders by SMS need a phone number: give one, or choose another way."}
    if channel == "email" and not email.strip():
        return {
            "email": "Reminders by email need an email address: give one, or choose another way."
        }
    return {}


def caldav_collection_url(url: str) -> None:
    """A CalDAV collection's address: http or https, with a host and no credentials in it
    (they have their own fields, and a URL is shown back and may be logged); https unless the
    server is on this machine (loopback) or the application runs in DEBUG. The password goes
    to that server with every push: over plain http anyone on the way could read it."""
    from urllib.parse import urlsplit

    from django.conf import settings

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise ValidationError(
            "This is not a web address: give the collection's URL, such as "
            "https://cloud.example.org/remote.php/dav/calendars/clinic/sessions/",
            code="caldav_url",
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValidationError(
            "Give the collection's https:// address, such as "
            "https://cloud.example.org/remote.php/dav/calendars/clinic/sessions/",
            code="caldav_url",
        )
    if parts.username or parts.password:
        raise ValidationError(
            "Take the user name and password out of the address and put them in their own "
            "fields: an address is shown on pages, a password never is.",
            code="caldav_url",
        )
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if parts.scheme == "http" and not (loopback or settings.DEBUG):
        raise ValidationError(
            "Use https:// for the CalDAV server: the password travels with every change, and "
            "plain http would show it to anyone on the way. Plain http is only accepted for a "
            "server on this machine.",
            code="caldav_url",
        )
