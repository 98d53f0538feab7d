"""Forms of the staff pages. Times are entered in the site's local wall-clock time."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django import forms

from scheduling.models import ScheduledSession
from scheduling.planning import local_start


class RescheduleForm(forms.Form):
    date = forms.DateField(label="New date", widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(label="New start time", widget=forms.TimeInput(attrs={"type": "time"}))
    reason = forms.CharField(
        required=False,
        max_length=500,
        help_text="Needed when the session leaves its window (recorded as a protocol deviation).",
    )

    def __init__(self, *args: Any, zone: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = ZoneInfo(zone)

    def start(self) -> datetime:
        """The aware start; a local time that does not exist moves forward by the DST gap."""
        moment, _ = local_start(self.cleaned_data["date"], self.cleaned_data["time"], self.zone)
        return moment


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (value, label)
            for value, label in ScheduledSession.Status.choices
            if value != ScheduledSession.Status.PLANNED
        ]
    )
    reason = forms.CharField(
        required=False, max_length=500, help_text="Needed to cancel or to mark missed."
    )
