"""One transport per reminder channel: email through Django's mail backend, text messages through
an SMS provider. Each either returns the id the message is known by or raises a TransportError
that says whether trying again can help, in words a coordinator can act on.

No ORM and no clock: the reminder task decides what an error means for the reminder row.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.validators import validate_email
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

logger = logging.getLogger(__name__)

#: Seconds an SMS provider call may take before it counts as a transient failure.
SMS_TIMEOUT = 10.0


class TransportError(Exception):
    """A message could not be handed over. ``permanent``: sending it again cannot succeed until
    someone corrects something (the address, the number). ``maybe_delivered``: the provider may
    have taken the message before the failure (a timeout after sending), so a retry may
    duplicate it."""

    permanent: bool = False

    def __init__(self, message: str, *, maybe_delivered: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.maybe_delivered = maybe_delivered

    def __str__(self) -> str:
        return self.message


class PermanentError(TransportError):
    permanent = True


class TransientError(TransportError):
    permanent = False


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """A message ready to leave. SMS uses ``to`` and ``text`` only. ``message_id`` is stable
    for one reminder (see :func:`message_id_for`), so a retried email is recognisable.
    ``calendar``: an invitation's iCalendar bytes and its iTIP method ("REQUEST", "CANCEL"),
    sent as a text/calendar alternative that mail clients offer to add to the calendar."""

    to: str
    text: str
    subject: str = ""
    html: str | None = None
    message_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    calendar: tuple[bytes, str] | None = None


def message_id_for(key: str) -> str:
    """A stable RFC 5322 Message-ID for ``key`` (e.g. ``reminder-42``), on the sender's domain."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
    return f"<{key}@{domain}>"


# --- email ---------------------------------------------------------------------------------


def send_email(message: Outgoing, *, connection: BaseEmailBackend | None = None) -> str:
    """Send ``message`` as plain text with an HTML alternative; return its Message-ID.
    ``connection`` defaults to the configured backend (tests pass ``get_connection(host=...,
    port=...)``)."""
    try:
        validate_email(message.to)
    except ValidationError as exc:  # Django would refuse it later with a bare ValueError
        raise PermanentError(
            "The email address is not valid: correct it on the participant's page."
        ) from exc
    message_id = message.message_id or message_id_for(f"message-{uuid.uuid4().hex}")
    email = _Email(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.to],
        headers={**message.headers, "Message-ID": message_id},
        connection=connection or get_connection(fail_silently=False),
    )
    if message.html is not None:
        email.attach_alternative(message.html, "text/html")
    if message.calendar is not None:
        ics, email.calendar_method = message.calendar
        # the last alternative: what a calendar-aware client prefers (RFC 6047)
        email.attach_alternative(ics.decode(), "text/calendar")
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            raise PermanentError(
                "The email address was refused by the clinic's mail server: "
                "correct it on the participant's page."
            ) from exc
        raise _email_try_later(f"refused the address for now ({_codes(codes)})") from exc
    except smtplib.SMTPAuthenticationError as exc:
        # the server's setup, not this message: retrying helps once an administrator fixes it
        raise TransientError(
            "The clinic's mail server refused our sign-in: ask the administrator to check "
            "EMAIL_HOST_USER and EMAIL_HOST_PASSWORD."
        ) from exc
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            raise PermanentError(
                f"The clinic's mail server refused this email (code {exc.smtp_code}): "
                "check the participant's email address, or ask the administrator."
            ) from exc
        raise _email_try_later(f"asked us to try later (code {exc.smtp_code})") from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise _email_try_later("closed the connection", maybe_delivered=True) from exc
    except TimeoutError as exc:  # socket.timeout is TimeoutError since Python 3.10
        raise _email_try_later("did not answer in time", maybe_delivered=True) from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused connection, DNS, TLS
        raise _email_try_later("could not be reached") from exc
    return message_id


class _Email(EmailMultiAlternatives):
    """An email whose text/calendar alternative carries its iTIP method in the Content-Type
    (``text/calendar; charset="utf-8"; method=REQUEST``), as RFC 6047 asks and as Outlook
    and Gmail need to show an invitation rather than an attachment."""

    calendar_method = ""

    def message(self) -> Any:
        message = super().message()
        if self.calendar_method:
            for part in message.walk():
                if part.get_content_type() == "text/calendar":
                    part.set_param("method", self.calendar_method, requote=False)
        return message


def _email_try_later(what: str, *, maybe_delivered: bool = False) -> TransientError:
    return TransientError(
        f"The clinic's mail server {what}: the reminder will be tried again.",
        maybe_delivered=maybe_delivered,
    )


def _codes(codes: list[int]) -> str:
    return ", ".join(str(code) for code in sorted(set(codes)))


# --- text messages -------------------------------------------------------------------------


class SmsTransport(Protocol):
    def send(self, to: str, text: str) -> str:
        """Hand ``text`` to the provider for ``to`` (+E.164); return the provider's id."""
        ...


def masked(number: str) -> str:
    """A phone number as logs may show it: the last four digits only."""
    digits = [c for c in number if c.isdigit()]
    return "***" + "".join(digits[-4:])


class ConsoleSms:
    """Logs instead of sending (``make run``, or no Twilio credentials)."""

    def send(self, to: str, text: str) -> str:
        logger.info("SMS to %s: %s", masked(to), text)
        return f"console-{uuid.uuid4()}"


# Twilio error codes after which the same message to the same number can never succeed.
_INVALID_NUMBER = {21211, 21217, 21401, 21421}
_NOT_MOBILE = {21614}
_UNSUBSCRIBED = {21610}
_UNREACHABLE = {21408, 21612, 21635}


class TwilioSms:
    """Twilio's Messages API. ``base_url`` replaces https://api.twilio.com (the test stub)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = "",
        timeout: float = SMS_TIMEOUT,
    ) -> None:
        self.from_number = from_number
        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")

    def send(self, to: str, text: str) -> str:
        try:
            created = self.client.messages.create(to=to, from_=self.from_number, body=text)
        except TwilioRestException as exc:
            raise _twilio_error(exc.status, exc.code) from exc
        except requests.Timeout as exc:
            # a read timeout comes after the request went out: Twilio may have taken it
            raise TransientError(
                "The SMS provider did not answer in time: the reminder will be tried again.",
                maybe_delivered=not isinstance(exc, requests.ConnectTimeout),
            ) from exc
        except requests.ConnectionError as exc:
            raise TransientError(
                "The SMS provider could not be reached: the reminder will be tried again.",
                maybe_delivered=_after_sending(exc),
            ) from exc
        except (TwilioException, requests.RequestException, ValueError) as exc:
            # an answer that is not the JSON Twilio sends: a proxy's error page, an outage
            raise TransientError(
                "The SMS provider gave an answer we could not read: "
                "the reminder will be tried again."
            ) from exc
        sid: str = created.sid
        return sid


def _after_sending(exc: requests.ConnectionError) -> bool:
    """Whether a connection error may have come after Twilio received the request (the
    connection dropped before the answer) rather than before (refused, no route)."""
    reason = exc.args[0] if exc.args else None
    text = repr(getattr(reason, "reason", reason))
    return not any(
        word in text for word in ("NewConnectionError", "NameResolutionError", "refused")
    )


def _twilio_error(status: int, code: Any) -> TransportError:
    if code in _INVALID_NUMBER:
        return PermanentError(
            "The phone number was refused by the SMS provider as invalid: "
            "correct it on the participant's page."
        )
    if code in _NOT_MOBILE:
        return PermanentError(
            "The phone number cannot receive text messages (not a mobile number): "
            "correct it on the participant's page or remind by email."
        )
    if code in _UNSUBSCRIBED:
        return PermanentError(
            "The participant replied STOP to our text messages, so the SMS provider will not "
            "deliver them: remind by email, or ask the participant to reply START."
        )
    if code in _UNREACHABLE:
        return PermanentError(
            "The SMS provider cannot deliver to this number's country or network: "
            "remind by email, or ask the administrator to enable it."
        )
    if status in (401, 403):
        # the account's setup, not this message: retrying helps once an administrator fixes it
        return TransientError(
            "The SMS provider refused our account credentials: ask the administrator to check "
            "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."
        )
    if status == 429 or status >= 500:
        return TransientError(
            f"The SMS provider is busy or unavailable (HTTP {status}): "
            "the reminder will be tried again."
        )
    return PermanentError(
        f"The SMS provider refused this text message (error {code}): "
        "check the participant's phone number, or ask the administrator."
    )


def sms_transport() -> SmsTransport:
    """The transport the settings choose (SMS_BACKEND), read at call time."""
    if settings.SMS_BACKEND == "twilio":
        return TwilioSms(
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            from_number=settings.TWILIO_FROM,
            base_url=settings.SMS_API_BASE_URL,
        )
    return ConsoleSms()


def send_sms(message: Outgoing, *, transport: SmsTransport | None = None) -> str:
    """Send ``message.text`` to ``message.to``; return the provider's message id."""
    return (transport or sms_transport()).send(message.to, message.text)
