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
