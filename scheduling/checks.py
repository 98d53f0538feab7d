"""Deployment checks (``manage.py check --deploy``) for what would make reminders quietly
not reach anyone."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register(deploy=True)
def reminder_channels(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    if settings.SMS_BACKEND == "console":
        found.append(
            Warning(
                "Text-message reminders are only written to the log (SMS_BACKEND=console).",
                hint="Set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM to send them.",
                id="scheduling.W001",
            )
        )
    if settings.EMAIL_BACKEND.endswith("console.EmailBackend"):
        found.append(
            Warning(
                "Email reminders are only written to the console (no EMAIL_HOST).",
                hint="Set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD).",
                id="scheduling.W002",
            )
        )
    return found
