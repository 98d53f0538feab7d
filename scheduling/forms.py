"""Forms of the staff pages. Times are entered in the site's local wall-clock time."""

from __future__ import annotations

import datetime as dt
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


class CalendarForm(forms.Form):
    """What the site calendar shows; read from the query string, every field optional."""

    site = forms.ChoiceField(required=False)
    view = forms.ChoiceField(
        required=False, choices=[("week", "Week"), ("month", "Month")], label="View"
    )
    by = forms.ChoiceField(
        required=False, choices=[("room", "By room"), ("therapist", "By therapist")], label="Rows"
    )
    date = forms.DateField(
        required=False, label="Showing", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, sites: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        site_field = self.fields["site"]
        assert isinstance(site_field, forms.ChoiceField)
        site_field.choices = sites

    def clean_date(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("date")
        if day is not None and not 2000 <= day.year <= 2100:
            raise forms.ValidationError("Choose a date between 2000 and 2100.")
        return day
