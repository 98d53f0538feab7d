"""``check --deploy`` warns when reminders would only reach a log."""

from __future__ import annotations

from django.core import checks
from django.test import override_settings


def _ids() -> set[str]:
    return {m.id for m in checks.run_checks(include_deployment_checks=True) if m.id}


def test_console_sms_in_production_is_flagged() -> None:
    with override_settings(SMS_BACKEND="console"):
        assert "scheduling.W001" in _ids()
    with override_settings(SMS_BACKEND="twilio"):
        assert "scheduling.W001" not in _ids()


def test_console_email_is_flagged() -> None:
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend"):
        assert "scheduling.W002" in _ids()
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend"):
        assert "scheduling.W002" not in _ids()
