"""The reminder channels against real servers on loopback: aiosmtpd for email, a stand-in for
the SMS provider's HTTP API. What matters: what arrives, and whether a failure is permanent."""

from __future__ import annotations

import email
import email.policy
import logging

import pytest
from django.core.mail import get_connection

from scheduling.channels import (
    ConsoleSms,
    Outgoing,
    PermanentError,
    TransientError,
    TwilioSms,
    message_id_for,
    send_email,
    send_sms,
    sms_transport,
)
from tests.servers import (
    TWILIO_TEST_FROM,
    TWILIO_TEST_SID,
    TWILIO_TEST_TOKEN,
    SmsProviderStub,
    SmtpServer,
    free_port,
)


def reminder(to: str = "p-0042@example.org", key: str = "reminder-42") -> Outgoing:
    return Outgoing(
        to=to,
        subject="Your session on Monday 1 March",
        text="Session on Monday 1 March at 09:00. Reply to this email to change it.",
        html="<p>Session on <strong>Monday 1 March</strong> at 09:00.</p>",
        message_id=message_id_for(key),
    )


def twilio(stub: SmsProviderStub, timeout: float = 10.0) -> TwilioSms:
    return TwilioSms(
        account_sid=TWILIO_TEST_SID,
        auth_token=TWILIO_TEST_TOKEN,
        from_number=TWILIO_TEST_FROM,
        base_url=stub.base_url,
        timeout=timeout,
    )


# --- email ---------------------------------------------------------------------------------


def test_email_arrives_with_text_html_and_our_message_id(smtp_server: SmtpServer) -> None:
    sent_id = send_email(reminder())

    assert sent_id == message_id_for("reminder-42")
    assert sent_id.startswith("<reminder-42@") and sent_id.endswith(">")
    [received] = smtp_server.received
    assert received.message_id == sent_id
    assert received.recipients == ["p-0042@example.org"]
    assert received.sender == "reminders@localhost"
    assert received.subject == "Your session on Monday 1 March"
    assert received.text is not None and "at 09:00. Reply" in received.text
    assert received.html is not None and "<strong>Monday 1 March</strong>" in received.html


def test_a_retry_carries_the_same_message_id(smtp_server: SmtpServer) -> None:
    send_email(reminder())
    send_email(reminder())
    first, second = smtp_server.received
    assert first.message_id == second.message_id


def test_email_without_html_is_plain_text(smtp_server: SmtpServer) -> None:
    plain = Outgoing(to="p-7@example.org", subject="S", text="Plain only", message_id="<k@x>")
    send_email(plain)
    [received] = smtp_server.received
    assert received.html is None
    assert received.text is not None and received.text.strip() == "Plain only"


def test_an_invitation_carries_its_calendar_as_a_text_calendar_alternative_with_its_method(
    smtp_server: SmtpServer,
) -> None:
    """RFC 6047: the iCalendar object in a text/calendar part whose Content-Type names the
    iTIP method, after the text and HTML, so calendar-aware clients offer to add it."""
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\n"
        "UID:3c2f\r\nSEQUENCE:2\r\nSUMMARY:Café · session\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    ).encode()
    invitation = Outgoing(
        to="therapist@example.org",
        subject="Cancelled: RIV-0042 · session",
        text="The session is cancelled.",
        html="<p>The session is cancelled.</p>",
        message_id=message_id_for("invite-1"),
        calendar=(ics, "CANCEL"),
    )
    send_email(invitation)

    [received] = smtp_server.received
    parsed = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html", "text/calendar"]
    calendar = parts[2]
    assert calendar.get_param("method") == "CANCEL"
    assert calendar.get_content_charset() == "utf-8"
    assert 'text/calendar; charset="utf-8"; method=CANCEL' in received.raw.decode()
    assert calendar.get_content().replace("\r\n", "\n") == ics.decode().replace("\r\n", "\n")
    assert received.text is not None and "cancelled" in received.text


def test_email_through_an_explicit_connection() -> None:
    with SmtpServer() as server:
        connection = get_connection(
            "django.core.mail.backends.smtp.EmailBackend", host=server.host, port=server.port
        )
        send_email(reminder(), connection=connection)
        assert server.count == 1


def test_451_is_transient_then_the_retry_arrives(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_next(1)
    with pytest.raises(TransientError) as failure:
        send_email(reminder())
    assert failure.value.permanent is False
    assert "tried again" in str(failure.value)
    assert smtp_server.count == 0

    send_email(reminder())
    assert smtp_server.count == 1
    assert smtp_server.refusals == 1


def test_550_for_the_recipient_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_recipient("gone@example.org")
    with pytest.raises(PermanentError) as failure:
        send_email(reminder(to="gone@example.org"))
    assert failure.value.permanent is True
    assert "correct it on the participant's page" in str(failure.value)
    assert smtp_server.count == 0
    send_email(reminder(to="p-0042@example.org"))  # others still arrive
    assert smtp_server.count == 1


@pytest.mark.parametrize("to", ["not an address", "a@b@c", "p-1@example.org\nBcc: x@y.org"])
def test_an_invalid_address_is_permanent_and_nothing_is_sent(
    smtp_server: SmtpServer, to: str
) -> None:
    with pytest.raises(PermanentError) as failure:
        send_email(reminder(to=to))
    assert "email address is not valid" in str(failure.value)
    assert smtp_server.count == 0


def test_mail_server_down_is_transient() -> None:
    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=free_port()
    )
    with pytest.raises(TransientError) as failure:
        send_email(reminder(), connection=connection)
    assert "could not be reached" in str(failure.value)
    assert failure.value.maybe_delivered is False


# --- text messages -------------------------------------------------------------------------


def test_sms_reaches_the_provider_and_returns_its_sid(sms_provider: SmsProviderStub) -> None:
    sid = send_sms(Outgoing(to="+15551234567", text="Session Monday 09:00."))

    [received] = sms_provider.received
    assert sid == received.sid and sid.startswith("SM")
    assert (received.to, received.from_) == ("+15551234567", TWILIO_TEST_FROM)
    assert received.body == "Session Monday 09:00."
    assert received.account_sid == received.auth_user == TWILIO_TEST_SID


def test_sms_transport_follows_the_settings(sms_provider: SmsProviderStub, settings) -> None:
    assert isinstance(sms_transport(), TwilioSms)
    settings.SMS_BACKEND = "console"
    assert isinstance(sms_transport(), ConsoleSms)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (21211, "refused by the SMS provider as invalid"),
        (21614, "not a mobile number"),
        (21610, "replied STOP"),
    ],
)
def test_a_refused_number_is_permanent(
    sms_provider: SmsProviderStub, code: int, words: str
) -> None:
    sms_provider.refuse_number("+15550000000", code)
    with pytest.raises(PermanentError) as failure:
        twilio(sms_provider).send("+15550000000", "Session Monday 09:00.")
    assert words in str(failure.value)
    assert "+15550000000" not in str(failure.value)
    assert sms_provider.count == 0
    assert sms_provider.calls == 1


def test_503_is_transient_then_the_retry_arrives(sms_provider: SmsProviderStub) -> None:
    sms_provider.fail_next(1, status=503)
    transport = twilio(sms_provider)
    with pytest.raises(TransientError) as failure:
        transport.send("+15551234567", "Session Monday 09:00.")
    assert "HTTP 503" in str(failure.value)
    assert failure.value.maybe_delivered is False
    assert sms_provider.count == 0

    assert transport.send("+15551234567", "Session Monday 09:00.").startswith("SM")
    assert sms_provider.count == 1


def test_429_is_transient(sms_provider: SmsProviderStub) -> None:
    sms_provider.fail_next(1, status=429)
    with pytest.raises(TransientError):
        twilio(sms_provider).send("+15551234567", "Session Monday 09:00.")


def test_a_slow_provider_is_transient_and_may_have_sent(sms_provider: SmsProviderStub) -> None:
    sms_provider.slow_next(1, seconds=1.0)
    with pytest.raises(TransientError) as failure:
        twilio(sms_provider, timeout=0.2).send("+15551234567", "Session Monday 09:00.")
    assert "did not answer in time" in str(failure.value)
    assert failure.value.maybe_delivered is True  # the provider took it, only late
    assert len(sms_provider.wait_for(1, timeout=5)) == 1


def test_provider_down_is_transient() -> None:
    transport = TwilioSms(
        account_sid=TWILIO_TEST_SID,
        auth_token=TWILIO_TEST_TOKEN,
        from_number=TWILIO_TEST_FROM,
        base_url=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(TransientError) as failure:
        transport.send("+15551234567", "Session Monday 09:00.")
    assert "could not be reached" in str(failure.value)
    assert failure.value.maybe_delivered is False


def test_wrong_credentials_ask_the_administrator(sms_provider: SmsProviderStub) -> None:
    transport = TwilioSms(
        account_sid=TWILIO_TEST_SID,
        auth_token="wrong-token",
        from_number=TWILIO_TEST_FROM,
        base_url=sms_provider.base_url,
    )
    with pytest.raises(TransientError) as failure:
        transport.send("+15551234567", "Session Monday 09:00.")
    assert "TWILIO_AUTH_TOKEN" in str(failure.value)
    assert sms_provider.count == 0


def test_console_sms_logs_only_the_last_four_digits(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scheduling.channels"):
        sid = ConsoleSms().send("+1 (555) 987-6543", "Session Monday 09:00.")
    assert sid.startswith("console-")
    assert caplog.messages == ["SMS to ***6543: Session Monday 09:00."]
    assert "987" not in caplog.text and "555" not in caplog.text
