"""What a reminder says: rendered from Django templates (text, HTML, a short SMS text), and
what stands in the way of sending it now. STUB in the foundation commit; filled in by the
messages work (templates/reminders/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduling.models import Reminder


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    sms: str


@dataclass(frozen=True)
class Hold:
    """Why a claimed reminder does not go now: ``status`` is "skipped" (never, with the reason)
    or "pending" (later, at ``due_at``, e.g. the end of the quiet hours)."""

    status: str
    reason: str
    due_at: datetime | None = None


def render(reminder: Reminder) -> Rendered:
    subject = f"Reminder: {reminder.session.title}"
    text = f"{subject}\n"
    return Rendered(subject=subject, text=text, html=f"<p>{subject}</p>", sms=subject)


def hold_reason(reminder: Reminder, now: datetime) -> Hold | None:
    """None when the reminder may go now."""
    return None
