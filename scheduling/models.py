"""Sites and their resources, participants, courses, scheduled sessions, bookings and
deviations. Nothing clinical is hard-deleted (PROTECT everywhere, cancellation is a status), and
every change is kept with who, when and why (django-simple-history)."""

from __future__ import annotations

import calendar
import uuid
from datetime import time
from zoneinfo import available_timezones

import holidays
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from protocol.models import ProtocolVersion
from scheduling.clock import local_text
from scheduling.validators import (
    STUDY_CODE,
    STUDY_CODE_MAX_LENGTH,
    caldav_collection_url,
    plausible_date,
    reminder_contact_errors,
)

WEEKDAYS = list(enumerate(calendar.day_name))


def validate_timezone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone such as America/New_York")


def validate_country(value: str) -> None:
    if value and value not in holidays.list_supported_countries():
        raise ValidationError(f"'{value}' is not a country the holidays package knows (ISO code)")


class Site(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[validate_country],
        help_text="ISO country code whose public holidays close the site",
    )
    subdivision = models.CharField(max_length=10, blank=True, help_text="e.g. NY, or blank")
    address = models.TextField(
        blank=True, help_text="Where participants come; printed on their schedule."
    )
    phone = models.CharField(
        max_length=40, blank=True, help_text="The number participants call to change a date."
    )
    quiet_hours_start = models.TimeField(
        default=time(21, 0), help_text="No message reaches a participant from this local time ..."
    )
    quiet_hours_end = models.TimeField(
        default=time(8, 0),
        help_text="... until this local time; a reminder due then waits for the end.",
    )
    allow_out_of_hours_moves = models.BooleanField(
        "allow moves outside opening hours",
        default=False,
        help_text=(
            "Staff may then move a session outside the opening hours or onto a closed day, "
            "on purpose and with a reason; each such move is recorded as a protocol deviation."
        ),
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.subdivision:
            known = holidays.list_supported_countries().get(self.country, [])
            if self.subdivision not in known:
                message = f"'{self.subdivision}' is not a subdivision of {self.country or '-'}"
                raise ValidationError({"subdivision": message})


class OpeningHours(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=WEEKDAYS)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["site", "weekday"]
        verbose_name_plural = "opening hours"
        constraints = [
            models.UniqueConstraint(fields=["site", "weekday"], name="opening_hours_one_per_day"),
            models.CheckConstraint(condition=Q(opens__lt=F("closes")), name="opening_hours_order"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def clean(self) -> None:
        # the check constraint's own words ("Constraint ... is violated") say nothing to staff
        if self.opens is not None and self.closes is not None and self.opens >= self.closes:
            raise ValidationError(
                {
                    "closes": f"The site must close after it opens: choose a time after "
                    f"{self.opens:%H:%M}."
                }
            )


class SiteClosure(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="closures")
    date = models.DateField(validators=[plausible_date])  # typed in the admin
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["site", "date"]
        constraints = [models.UniqueConstraint(fields=["site", "date"], name="closure_once")]

    def __str__(self) -> str:
        return f"{self.date} {self.reason}"


class Room(models.Model):
    class Kind(models.TextChoices):
        THERAPY = "therapy", "therapy room"
        DOSING = "dosing", "dosing room (serves an overnight stay)"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="rooms")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    overnight_places = models.PositiveSmallIntegerField(
        default=0, help_text="Beds for an overnight stay (dosing rooms; 2 for couples)."
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["site", "kind", "name"]
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="room_name_per_site")]

    def __str__(self) -> str:
        return self.name


class StaffProfile(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin"
        COORDINATOR = "coordinator"
        THERAPIST = "therapist"
        ASSESSOR = "assessor", "remote assessor"
        NIGHT_ATTENDANT = "night_attendant", "night attendant"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    sites = models.ManyToManyField(Site, related_name="staff")
    history = HistoricalRecords(m2m_fields=[sites])

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class Dyad(models.Model):
    """Two co-therapists who see a participant through the whole course."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="dyads")
    name = models.CharField(max_length=100)
    therapist_a = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    therapist_b = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["site", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(therapist_a=F("therapist_b")), name="dyad_two_people"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # the admin's choices hold everyone at the user's sites: a dyad works at its own site
        site = getattr(self, "site_id", None)  # None: the form says the site is missing
        errors = {}
        for name in ("therapist_a", "therapist_b"):
            person = getattr(self, f"{name}_id")
            if site and person and not StaffProfile.objects.filter(user_id=person, sites=site):
                errors[name] = "Choose a therapist who works at this dyad's site."
        if self.therapist_a_id and self.therapist_a_id == self.therapist_b_id:
            errors.setdefault(
                "therapist_b",
                "A dyad is two different therapists: choose someone other than the first.",
            )
        if errors:
            raise ValidationError(errors)

    @property
    def therapist_ids(self) -> tuple[int, int]:
        return (self.therapist_a_id, self.therapist_b_id)


class Unavailability(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="unavailability"
    )
    # typed in the admin: the year check keeps 9999-12-31 out of the planner's date arithmetic
    start = models.DateTimeField(validators=[plausible_date])
    end = models.DateTimeField(validators=[plausible_date])
    reason = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "unavailability"
        constraints = [
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="unavailability_order")
        ]

    def __str__(self) -> str:
        # a person may work at several sites: the active zone (the admin's), shown
        return f"{self.user} {local_text(self.start)} to {local_text(self.end)}"

    def clean(self) -> None:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValidationError(
                {"end": "The unavailability must end after it starts: choose a later end."}
            )


class Participant(models.Model):
    class Status(models.TextChoices):
        SCREENING = "screening"
        ENROLLED = "enrolled"
        IN_TREATMENT = "in_treatment", "in treatment"
        COMPLETED = "completed"
        WITHDRAWN = "withdrawn"

    class Channel(models.TextChoices):
        NONE = "none"
        EMAIL = "email"
        SMS = "sms"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="participants")
    code = models.CharField(
        max_length=STUDY_CODE_MAX_LENGTH,
        validators=[STUDY_CODE],  # the admin's forms; services check it for every other door
        help_text="Study code; no names are needed.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCREENING)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    preferred_channel = models.CharField(
        max_length=10, choices=Channel.choices, default=Channel.NONE
    )
    #: consent to reminders, per channel, with the time it was given (None: no consent);
    #: an inbound STOP clears sms_consent_at, START sets it again
    email_consent_at = models.DateTimeField(
        "email consent given", null=True, blank=True, help_text="Empty: no email reminders."
    )
    sms_consent_at = models.DateTimeField(
        "text message consent given", null=True, blank=True, help_text="Empty: no text messages."
    )
    reminders_paused_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while staff have paused this participant's reminders."
    )
    reminders_pause_reason = models.CharField(max_length=200, blank=True)
    arm_code = models.CharField(max_length=50, blank=True, help_text="Opaque arm/blinding code.")
    partner = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["site", "code"]
        constraints = [
            models.UniqueConstraint(fields=["site", "code"], name="participant_code_per_site")
        ]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        # every door: the admin's form runs it; the enrolment form, the API and the services
        # ask the same rule (scheduling.validators)
        errors = reminder_contact_errors(self.preferred_channel, self.email, self.phone)
        if errors:
            raise ValidationError(errors)


class Course(models.Model):
    """A participant's course: planned with, and kept on, one protocol version. PROTECT: a
    version that a course uses can never disappear. A couple's course has a partner."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"
        WITHDRAWN = "withdrawn"
        ENDED = "ended", "ended early"

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="courses")
    partner = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="partner_courses", null=True, blank=True
    )
    protocol_version = models.ForeignKey(
        ProtocolVersion, on_delete=models.PROTECT, related_name="courses"
    )
    dyad = models.ForeignKey(Dyad, on_delete=models.PROTECT, related_name="courses", null=True)
    start_date = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"course {self.pk} on {self.protocol_version}"


class ScheduledSession(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned"
        CONFIRMED = "confirmed"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        MISSED = "missed"

    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="sessions")
    key = models.CharField(max_length=60)
    template_key = models.CharField(max_length=50)
    anchor_key = models.CharField(max_length=50, blank=True)
    kind = models.CharField(max_length=20)
    title = models.CharField(max_length=200)
    start = models.DateTimeField()
    end = models.DateTimeField()
    window_start = models.DateField()
    window_end = models.DateField()
    overnight = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNED)
    room = models.ForeignKey(Room, on_delete=models.PROTECT, null=True, blank=True)
    plan_reason = models.TextField(blank=True, help_text="Why the planner chose this date.")
    #: a rebooking: the cancelled or missed session this one takes the place of (same key)
    replaces = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaced_by"
    )
    #: set on a cancelled or missed session once it is rebooked: the protocol session now
    #: lives in the row that replaces it, which carries the same key
    superseded = models.BooleanField(default=False)
    #: calendar identity: never regenerated; SEQUENCE goes up on every change
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sequence = models.PositiveIntegerField(default=0)
    #: when the row last changed: a calendar's DTSTAMP and LAST-MODIFIED, and a feed's
    #: Last-Modified (scheduling/ical.py, scheduling/feeds.py)
    modified_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["start", "key"]
        constraints = [
            # one current session per protocol session; rebooked ones keep their key beside it
            models.UniqueConstraint(
                fields=["course", "key"],
                condition=Q(superseded=False),
                name="session_key_per_course",
            ),
            models.CheckConstraint(
                condition=Q(superseded=False) | Q(status__in=["cancelled", "missed"]),
                name="session_superseded_is_closed",
            ),
            models.CheckConstraint(condition=Q(start__lt=F("end")), name="session_order"),
        ]
        indexes = [models.Index(fields=["start"], name="session_start")]

    def __str__(self) -> str:
        return f"{self.key} {local_text(self.start, self)}"

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.PLANNED, self.Status.CONFIRMED)


class RoomBooking(models.Model):
    """A room held by a session. On PostgreSQL an exclusion constraint makes two active
    bookings of one room that overlap in time impossible (see migration 0002)."""

    session = models.ForeignKey(ScheduledSession, on_delete=models.PROTECT, related_name="rooms")
    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="bookings")
    begin = models.DateTimeField()
    until = models.DateTimeField()
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(begin__lt=F("until")), name="room_booking_order")
        ]
        # snapshot reads at enrolment: the active bookings of a site's rooms in a period
        indexes = [models.Index(fields=["room", "begin"], name="room_booking_room_begin")]

    def __str__(self) -> str:
        return f"{self.room} {local_text(self.begin, self)} to {local_text(self.until, self)}"


class StaffBooking(models.Model):
    """A person held by a session; the same exclusion constraint per person."""

    session = models.ForeignKey(ScheduledSession, on_delete=models.PROTECT, related_name="staff")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    begin = models.DateTimeField()
    until = models.DateTimeField()
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(begin__lt=F("until")), name="staff_booking_order")
        ]
        indexes = [models.Index(fields=["user", "begin"], name="staff_booking_user_begin")]

    def __str__(self) -> str:
        return f"{self.user} {local_text(self.begin, self)} to {local_text(self.until, self)}"


class Deviation(models.Model):
    """A recorded departure from the protocol, with who, when and why."""

    class Kind(models.TextChoices):
        OUTSIDE_WINDOW = "outside_window", "session outside its window"
        OUTSIDE_HOURS = "outside_hours", "session outside opening hours"
        CANCELLED = "cancelled", "session cancelled"
        MISSED = "missed", "session missed"

    session = models.ForeignKey(
        ScheduledSession, on_delete=models.PROTECT, related_name="deviations"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.TextField()
    detail = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.session}"


class AccessLog(models.Model):
    """A staff member's read of a participant's record (page, printout, API, admin), kept for
    the site's compliance officer. The route's name, never the URL with its query string."""

    at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="access_log"
    )
    door = models.CharField(max_length=20, help_text="page, print, api or admin")
    route = models.CharField(max_length=100)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "record access"
        verbose_name_plural = "record access log"
        # the compliance officer's question: who read this participant's record, newest first
        indexes = [models.Index(fields=["participant", "-at"], name="access_participant_at")]

    def __str__(self) -> str:
        return f"{self.user} read {self.participant} at {local_text(self.at, self)}"


class Reminder(models.Model):
    """One message to one recipient on one channel: the outbox. Rows are planned in the same
    transaction as the session they are about, claimed by the beat's sweep, and sent by a task
    that checks again at send time. Nothing is queued ahead as a Celery ETA task."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"

    class Purpose(models.TextChoices):
        REMINDER = "reminder"
        MOVED = "moved", "moved notice"
        ESCALATION = "escalation", "check-in escalation"
        #: a calendar invitation (iTIP) to a staff member booked on the session, or its
        #: cancellation: ``rule_key`` is "request" or "cancel" (scheduling.outbox)
        INVITATION = "invitation", "calendar invitation"

    class Channel(models.TextChoices):
        EMAIL = "email"
        SMS = "sms", "SMS"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="reminders")
    session = models.ForeignKey(
        ScheduledSession, on_delete=models.PROTECT, related_name="reminders"
    )
    #: exactly one of participant and staff is the recipient
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, null=True, blank=True, related_name="reminders"
    )
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reminders",
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.REMINDER)
    rule_key = models.CharField(max_length=50, blank=True, help_text="The protocol's rule.")
    message = models.CharField(max_length=30, help_text="The message template.")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    due_at = models.DateTimeField(help_text="When it goes out (stored in UTC).")
    #: the session start the message speaks of: a send-time check against the session's
    session_start = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True, help_text="Why it has its status, in plain words.")
    idempotency_key = models.CharField(max_length=200, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    #: the current claim: its token and when its lease runs out (then the sweep claims again)
    claim = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(
        max_length=200, blank=True, help_text="Message-ID or the SMS provider's id."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(participant__isnull=True) ^ Q(staff__isnull=True),
                name="reminder_one_recipient",
            ),
        ]
        indexes = [
            # the sweep's question every minute: which open rows are due (or their lease ran out)
            models.Index(
                fields=["due_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="reminder_open_due",
            ),
            models.Index(fields=["participant", "due_at"], name="reminder_participant_due"),
            models.Index(fields=["site", "status", "due_at"], name="reminder_site_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} {self.channel} {local_text(self.due_at, self)}"

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.SENDING)

    #: the key of an escalation a recorded concern wrote:
    #: f"{session uid}{CONCERN_MARK}{outcome id}/u{user id}" (scheduling.checkins)
    CONCERN_MARK = "/escalation/concern-"

    @property
    def concern_id(self) -> int | None:
        """The recorded concern this row escalates, if it is such a row."""
        _, mark, rest = self.idempotency_key.partition(self.CONCERN_MARK)
        number = rest.split("/", 1)[0]
        return int(number) if mark and number.isdigit() else None

    #: the key of an invitation: f"{session uid}{INVITE_MARK}{user id}/s{sequence}", and
    #: "/cancel" after it for a cancellation (scheduling.outbox)
    INVITE_MARK = "/invite/u"

    @property
    def invitation_sequence(self) -> int | None:
        """The session's SEQUENCE an invitation row speaks of (from its key), if it is one."""
        _, mark, rest = self.idempotency_key.partition(self.INVITE_MARK)
        parts = rest.split("/")
        if not mark or len(parts) < 2 or not parts[1].startswith("s"):
            return None
        number = parts[1][1:]
        return int(number) if number.isdigit() else None


class CheckInOutcome(models.Model):
    """What a phone check-in came to, as the therapist recorded it. Several per check-in are
    allowed (no answer, then reached later); the latest counts."""

    class Outcome(models.TextChoices):
        REACHED = "reached"
        NO_ANSWER = "no_answer", "no answer"
        CONCERN = "concern"

    session = models.ForeignKey(
        ScheduledSession, on_delete=models.PROTECT, related_name="checkin_outcomes"
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    note = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-recorded_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} {local_text(self.recorded_at, self)}"


class SiteCalDav(models.Model):
    """Where a site publishes its sessions: a CalDAV calendar collection (a clinic's Nextcloud,
    Radicale, ...) that staff calendars subscribe to. The password is needed in clear to log
    in to that server, so it cannot be hashed: it is never shown back (forms leave it empty,
    the admin says "set" or "not set"), never logged, and kept out of the history."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="caldav")
    url = models.URLField(
        "collection URL",
        max_length=500,
        validators=[caldav_collection_url],
        help_text="The calendar collection's address, e.g. https://cloud.example.org/"
        "remote.php/dav/calendars/clinic/sessions/",
    )
    username = models.CharField("user name", max_length=200, blank=True)
    password = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(
        default=True, help_text="Off: changes are no longer pushed (the collection is kept)."
    )
    #: up whenever the collection or the account changes: pushes planned for an earlier one
    #: are superseded, and every current session is pushed to the new one
    generation = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["password"])

    class Meta:
        verbose_name = "CalDAV publishing"
        verbose_name_plural = "CalDAV publishing"

    def __str__(self) -> str:
        return f"CalDAV publishing of {self.site}"

    def __repr__(self) -> str:  # never the password, even in a traceback's locals
        return f"<SiteCalDav site={self.site_id} url={self.url!r}>"


class CalendarPush(models.Model):
    """One session's state to be PUT to its site's CalDAV collection: a row per session and
    SEQUENCE, planned in the same transaction as the change (scheduling.publishing), claimed
    by the beat's sweep like a reminder, retried with backoff on a transient failure. A newer
    SEQUENCE supersedes an older row still waiting: only the latest state matters."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        SUPERSEDED = "superseded"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="calendar_pushes")
    session = models.ForeignKey(
        ScheduledSession, on_delete=models.PROTECT, related_name="calendar_pushes"
    )
    sequence = models.PositiveIntegerField(help_text="The session's SEQUENCE this row publishes.")
    #: the site's CalDAV settings this row was planned for (SiteCalDav.generation)
    generation = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    due_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    claim = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="The server's answer, in plain words.")
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "sequence", "generation"], name="calendar_push_once"
            ),
        ]
        indexes = [
            # the sweep's question every minute: which open pushes are due (or lease ran out)
            models.Index(
                fields=["due_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="calendar_push_open_due",
            ),
            # the settings page: a site's latest failures
            models.Index(fields=["site", "status", "updated_at"], name="calendar_push_site"),
        ]

    def __str__(self) -> str:
        return f"push of {self.session_id} #{self.sequence} ({self.status})"


class CalendarFeed(models.Model):
    """A live calendar subscription (scheduling/feeds.py): a secret address a calendar client
    fetches every few hours. Only the SHA-256 of the token is stored, so a database copy
    cannot subscribe; the token is shown once, when the feed is created. What a feed shows is
    decided at each fetch by what its owner may see then (scheduling/calendars.py)."""

    class Scope(models.TextChoices):  # the same values as scheduling.calendars.Scope
        PARTICIPANT = "participant"
        THERAPIST = "therapist", "staff member"
        ROOM = "room"
        SITE = "site"
        MINE = "mine", "my sessions"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calendar_feeds"
    )
    scope = models.CharField(max_length=20, choices=Scope.choices)
    #: the participant's, staff member's, room's or site's id; none for "my sessions"
    target = models.PositiveBigIntegerField(null=True, blank=True)
    name = models.CharField(max_length=100)
    #: a participant's own calendar (issued by a coordinator to give to the participant):
    #: neither the study code nor the room, how to prepare
    for_participant = models.BooleanField(default=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    #: what the last calendar served was built from (scheduling/feeds.py), its ETag and when
    #: it last changed: a fetch that finds the same facts answers without building anything
    validator = models.CharField(max_length=64, blank=True, editable=False)
    etag = models.CharField(max_length=70, blank=True, editable=False)
    changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="mine", target__isnull=True)
                | (~Q(scope="mine") & Q(target__isnull=False)),
                name="feed_target_for_scope",
            ),
            models.CheckConstraint(
                condition=Q(for_participant=False) | Q(scope="participant"),
                name="feed_for_participant_is_participant",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
