"""Forms of the staff pages. Times are entered in the site's local wall-clock time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.utils import timezone

from protocol.spec import Kind
from scheduling.exports import MAX_RANGE_DAYS
from scheduling.messages import STAFF_WHAT
from scheduling.models import CheckInOutcome, Participant, ScheduledSession, SiteCalDav
from scheduling.planning import local_start

# the rules live in scheduling.validators so that every door shares them; re-exported here
from scheduling.validators import (
    REASON_MAX_LENGTH,
    STUDY_CODE,
    STUDY_CODE_MAX_LENGTH,
    plausible_date,
    reminder_contact_errors,
)

#: the reason fields' length message, in the words the services use for the same rule
REASON_TOO_LONG = {
    "max_length": (
        "Shorten the reason to at most %(limit_value)d characters (it has %(show_value)d)."
    )
}

__all__ = [
    "STUDY_CODE",
    "CalendarForm",
    "CheckInForm",
    "EndingForm",
    "EnrolForm",
    "RebookForm",
    "RescheduleForm",
    "SiteCalDavForm",
    "SiteSessionsExportForm",
    "StatusForm",
    "plausible_date",
]


class RescheduleForm(forms.Form):
    date = forms.DateField(
        label="New date",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[plausible_date],
    )
    time = forms.TimeField(label="New start time", widget=forms.TimeInput(attrs={"type": "time"}))
    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        error_messages=REASON_TOO_LONG,
        help_text=(
            "Needed when the session leaves its window or the opening hours (recorded as a "
            "protocol deviation)."
        ),
    )
    outside_hours = forms.BooleanField(
        required=False,
        label="Outside opening hours, on purpose",
        help_text="Recorded as a protocol deviation; needs a reason.",
    )

    def __init__(
        self, *args: Any, zone: str, outside_hours_allowed: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.zone = ZoneInfo(zone)
        if not outside_hours_allowed:  # the site's choice: no override offered
            del self.fields["outside_hours"]

    def start(self) -> datetime:
        """The aware start; a local time that does not exist moves forward by the DST gap."""
        moment, _ = local_start(self.cleaned_data["date"], self.cleaned_data["time"], self.zone)
        return moment


class RebookForm(RescheduleForm):
    """A new date for a cancelled or missed session: the reschedule form's fields, with labels
    that say what it does."""

    def __init__(self, *args: Any, zone: str, **kwargs: Any) -> None:
        super().__init__(*args, zone=zone, **kwargs)
        self.fields["date"].label = "Rebook on"
        self.fields["time"].label = "Start time"
        self.fields[
            "reason"
        ].help_text = (
            "Needed when the new date leaves the session's window (recorded as a deviation)."
        )


class EndingForm(forms.Form):
    """Withdraw a participant or end a course early: a reason, recorded with every session it
    cancels."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        error_messages={**REASON_TOO_LONG, "required": "Give a reason: it is recorded."},
        widget=forms.TextInput(),
    )


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (value, label)
            for value, label in ScheduledSession.Status.choices
            if value != ScheduledSession.Status.PLANNED
        ]
    )
    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        error_messages=REASON_TOO_LONG,
        help_text="Needed to cancel or to mark missed.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # ids of its own: the reschedule form on the same page has a "reason" too
        kwargs.setdefault("auto_id", "id_status_%s")
        super().__init__(*args, **kwargs)


class CheckInForm(forms.Form):
    """What a phone check-in came to. One form per call on Today: each has ids of its own."""

    outcome = forms.ChoiceField(
        choices=CheckInOutcome.Outcome.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose what the call came to."},
    )
    note = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        error_messages={
            "max_length": "Shorten the note to at most %(limit_value)d characters "
            "(it has %(show_value)d)."
        },
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
        help_text="Needed for a concern: the site's coordinators are emailed at once.",
    )

    def __init__(self, *args: Any, session_id: int, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"id_checkin_{session_id}_%s")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data and data.get("outcome") == "concern" and not data.get("note", "").strip():
            self.add_error("note", "Say what the concern is: it goes to the coordinators.")
        return data


class CalendarForm(forms.Form):
    """What the site calendar shows; read from the query string, every field optional (the
    site is chosen, or refused with a 404, before the form is read)."""

    view = forms.ChoiceField(
        required=False, choices=[("week", "Week"), ("month", "Month")], label="View"
    )
    by = forms.ChoiceField(
        required=False, choices=[("room", "By room"), ("therapist", "By therapist")], label="Rows"
    )
    date = forms.DateField(
        required=False,
        label="Showing",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[plausible_date],
    )


class EnrolForm(forms.Form):
    """Enrol a participant: the course is previewed, then confirmed. Study codes only."""

    site = forms.ChoiceField()
    code = forms.CharField(
        label="Study code",
        max_length=STUDY_CODE_MAX_LENGTH,
        validators=[STUDY_CODE],
        help_text="The participant's study code, e.g. P-014. No names.",
    )
    protocol = forms.ChoiceField(label="Protocol")
    start_date = forms.DateField(
        label="Course start",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[plausible_date],
    )
    dyad = forms.TypedChoiceField(
        label="Therapist dyad",
        required=False,
        coerce=int,
        empty_value=None,
        help_text="Leave empty to book the least busy dyad that can take the whole course.",
    )
    partner = forms.CharField(
        label="Partner's study code",
        required=False,
        max_length=STUDY_CODE_MAX_LENGTH,
        validators=[STUDY_CODE],
        help_text="Couples protocols only.",
    )
    email = forms.EmailField(
        required=False,
        max_length=Participant._meta.get_field("email").max_length,  # the column's 254
        help_text="For reminders; optional.",
    )
    phone = forms.CharField(required=False, max_length=30, help_text="For reminders; optional.")
    preferred_channel = forms.ChoiceField(
        label="Reminders by", choices=Participant.Channel.choices, initial="none"
    )
    reminder_consent = forms.BooleanField(
        label="The participant consents to reminders on this channel",
        required=False,
        help_text="Recorded with today's date; without it nothing is sent on the channel.",
    )
    back_entry = forms.BooleanField(
        label="Back-entry: this course started before today",
        required=False,
        help_text="Only to record a course that is already under way; give the reason below.",
    )
    back_entry_reason = forms.CharField(
        label="Why it is entered late",
        required=False,
        max_length=REASON_MAX_LENGTH,
        error_messages=REASON_TOO_LONG,
        help_text="Recorded in the audit history of everything the enrolment books.",
    )

    def __init__(
        self,
        *args: Any,
        sites: list[tuple[str, str]],
        protocols: list[tuple[str, str]],
        dyads: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._choices("site", sites)
        self._choices("protocol", protocols)
        self._choices("dyad", [("", "Least busy that fits"), *dyads])

    def _choices(self, name: str, choices: list[Any]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        channel = data.get("preferred_channel", "")
        for name, message in reminder_contact_errors(
            channel, data.get("email") or "", data.get("phone") or ""
        ).items():
            if name not in self.errors:  # an invalid address says so already
                self.add_error(name, message)
        if data.get("back_entry") and not (data.get("back_entry_reason") or "").strip():
            self.add_error("back_entry_reason", "Say why the course is entered late.")
        return data

    def given_back_entry_reason(self) -> str:
        """The reason, when the back-entry box is ticked (a reason alone is not a back-entry)."""
        if not self.cleaned_data.get("back_entry"):
            return ""
        return str(self.cleaned_data.get("back_entry_reason") or "").strip()

    def contact(self) -> dict[str, Any]:
        channel = self.cleaned_data["preferred_channel"]
        found: dict[str, Any] = {
            "email": self.cleaned_data["email"],
            "phone": self.cleaned_data["phone"],
            "preferred_channel": channel,
        }
        if self.cleaned_data.get("reminder_consent") and channel in ("email", "sms"):
            found[f"{channel}_consent_at"] = timezone.now()  # given at enrolment, today
        return found


class SiteSessionsExportForm(forms.Form):
    """A site's sessions as CSV: a range of the site's local dates (a year at most) and
    optional filters. The same form checks the page's and the API's query parameters, so both
    give the same answer; the site is chosen (or refused with a 404) before it is read."""

    error_messages = {
        "reversed": "The last day is before the first: choose a last day on or after %(first)s.",
        "too_long": "Choose at most %(days)d days (this range has %(given)d): export a long "
        "period year by year.",
    }

    kind = forms.ChoiceField(
        required=False,
        choices=[("", "Any kind"), *((k.value, STAFF_WHAT[k]) for k in Kind)],
        label="Kind",
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *ScheduledSession.Status.choices],
        label="Status",
    )
    room = forms.ChoiceField(
        required=False,
        label="Room",
        error_messages={
            "invalid_choice": "No room %(value)s at this site: choose one of its rooms, or "
            "leave the room out."
        },
    )
    therapist = forms.ChoiceField(
        required=False,
        label="Therapist or staff member",
        error_messages={
            "invalid_choice": "No staff member %(value)s works at this site: choose one of "
            "its staff, or leave it out."
        },
    )

    def __init__(
        self,
        *args: Any,
        rooms: list[tuple[str, str]],
        staff: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword: the two dates cannot be class attributes
        self.fields["from"] = forms.DateField(
            label="First day",
            widget=forms.DateInput(attrs={"type": "date"}),
            validators=[plausible_date],
            help_text="The site's local date.",
        )
        self.fields["to"] = forms.DateField(
            label="Last day",
            widget=forms.DateInput(attrs={"type": "date"}),
            validators=[plausible_date],
            help_text=f"Included; at most {MAX_RANGE_DAYS} days after the first.",
        )
        self.order_fields(["from", "to", "kind", "status", "room", "therapist"])
        for name, choices in (
            ("room", [("", "Any room"), *rooms]),
            ("therapist", [("", "Anyone"), *staff]),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("from"), data.get("to")
        if first is not None and last is not None:
            if last < first:
                self.add_error(
                    "to",
                    forms.ValidationError(
                        self.error_messages["reversed"],
                        code="reversed",
                        params={"first": first.isoformat()},
                    ),
                )
            elif last - first >= timedelta(days=MAX_RANGE_DAYS):
                self.add_error(
                    "to",
                    forms.ValidationError(
                        self.error_messages["too_long"],
                        code="too_long",
                        params={"days": MAX_RANGE_DAYS, "given": (last - first).days + 1},
                    ),
                )
        return data

    def filters(self) -> dict[str, Any]:
        """The selector's keyword arguments (call after is_valid())."""
        data = self.cleaned_data
        return {
            "first": data["from"],
            "last": data["to"],
            "kind": data.get("kind") or "",
            "status": data.get("status") or "",
            "room": int(data["room"]) if data.get("room") else None,
            "therapist": int(data["therapist"]) if data.get("therapist") else None,
        }


class SiteCalDavForm(forms.ModelForm):  # type: ignore[type-arg]
    """A site's CalDAV collection and account, on the site's CalDAV page and in the admin.
    The password is write-only: never put back into the page; left empty, the stored one is
    kept."""

    url = forms.URLField(
        label="Collection URL",
        max_length=500,
        assume_scheme="https",  # typed without a scheme: https, never plain http
        help_text=SiteCalDav._meta.get_field("url").help_text,
    )
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the password already set.",
    )

    class Meta:
        model = SiteCalDav
        fields = ["url", "username", "password", "enabled"]

    def clean_password(self) -> str:
        given: str = self.cleaned_data.get("password") or ""
        return given or (self.instance.password if self.instance.pk else "")
