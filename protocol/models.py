"""Protocol templates as rows. A version is a draft until activated; from then on it is
immutable (only retiring it is allowed), so every course planned with it keeps exactly the
protocol it was planned with. Changing an active protocol means a new draft version."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from protocol import spec as s


def _choices(enum: type[StrEnum]) -> list[tuple[str, str]]:
    return [(member.value, member.value.replace("_", " ")) for member in enum]


class ProtocolLocked(ValidationError):
    """Raised when something tries to change an active or retired protocol version."""


class Protocol(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class ProtocolVersion(models.Model):
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=_choices(s.Status), default=s.Status.DRAFT)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    investigational = models.BooleanField(
        default=True, help_text="Not an approved treatment: shown on every page of the protocol."
    )
    couples = models.BooleanField(default=False, help_text="Two partners share one course.")
    span_min_weeks = models.PositiveSmallIntegerField(
        help_text="Shortest allowed therapy span (first to last therapy session), in weeks."
    )
    span_max_weeks = models.PositiveSmallIntegerField(
        help_text="Longest allowed therapy span, in weeks."
    )
    checkin_escalation_hours = models.PositiveSmallIntegerField(
        default=4,
        help_text="A phone check-in with no outcome this many hours after its time escalates "
        "to the site's coordinators.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["protocol__slug", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["protocol", "version"], name="protocol_version_unique"),
            # New courses use the one active version; older courses keep theirs.
            models.UniqueConstraint(
                fields=["protocol"],
                condition=Q(status="active"),
                name="protocol_one_active_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.protocol.slug} v{self.version} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            stored = ProtocolVersion.objects.filter(pk=self.pk).values().first()
            if stored is not None and stored["status"] != s.Status.DRAFT:
                changed = {
                    name
                    for name, value in stored.items()
                    if name not in {"status", "activated_at"} and getattr(self, name) != value
                }
                allowed = stored["status"] == s.Status.ACTIVE and self.status == s.Status.RETIRED
                if changed or (self.status != stored["status"] and not allowed):
                    raise ProtocolLocked(
                        f"{self.protocol.slug} v{self.version} is {stored['status']} and cannot "
                        "be changed; create a new version instead"
                    )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if not self.is_editable:
            raise ProtocolLocked(f"{self} cannot be deleted; retire it instead")
        return super().delete(*args, **kwargs)

    @property
    def is_editable(self) -> bool:
        return self.status == s.Status.DRAFT


class SessionTemplate(models.Model):
    version = models.ForeignKey(ProtocolVersion, on_delete=models.CASCADE, related_name="sessions")
    position = models.PositiveIntegerField(help_text="Order in the protocol document.")
    key = models.SlugField(max_length=50)
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=_choices(s.Kind))
    duration_minutes = models.PositiveIntegerField()
    overnight = models.BooleanField(default=False)
    start_time = models.TimeField(help_text="Preferred local start time at the site.")
    open_days_apply = models.BooleanField(
        default=True, help_text="Off for sessions held every day, such as phone check-ins."
    )
    staffing = models.CharField(max_length=20, choices=_choices(s.Staffing))
    room = models.CharField(max_length=30, choices=_choices(s.RoomNeed))
    joint = models.BooleanField(default=False, help_text="Couples: both partners attend.")
    preparation = models.TextField(blank=True, help_text="Participant-facing preparation notes.")
    anchor_key = models.SlugField(
        max_length=50, blank=True, help_text="Key of the anchor session; empty: the course start."
    )
    next_morning = models.BooleanField(
        default=False, help_text="The morning after the anchor's overnight stay (fixed day)."
    )
    target_days = models.IntegerField(default=0)
    earliest_days = models.IntegerField(default=0)
    latest_days = models.IntegerField(default=0)
    repeat_count = models.PositiveSmallIntegerField(default=1)
    repeat_interval_days = models.PositiveSmallIntegerField(default=1)
    initial_dose_mg = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    supplemental_dose_mg = models.DecimalField(
        max_digits=6, decimal_places=1, null=True, blank=True
    )
    supplemental_from_minutes = models.PositiveIntegerField(null=True, blank=True)
    supplemental_until_minutes = models.PositiveIntegerField(null=True, blank=True)
    supplemental = models.CharField(
        max_length=20, choices=_choices(s.Supplemental), blank=True, default=""
    )
    #: the session's reminder rules in their document form (protocol-document.schema.json,
    #: $defs/reminder): one list, read and written only through protocol.spec
    reminders = models.JSONField(
        default=list,
        blank=True,
        help_text='A list of rules, e.g. [{"key": "24h", "when": {"hours_before": 24}, '
        '"audience": ["participant"], "channels": ["email", "sms"], "message": "upcoming"}]; '
        'when is hours_before, minutes_before or day_before_at ("18:00").',
    )

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="session_template_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.title}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._check_editable()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._check_editable()
        return super().delete(*args, **kwargs)

    def clean(self) -> None:
        problems = s.rules_problems(self.reminders)
        if problems:
            raise ValidationError({"reminders": problems})

    def _check_editable(self) -> None:
        status = ProtocolVersion.objects.filter(pk=self.version_id).values_list("status", flat=True)
        if status and status[0] != s.Status.DRAFT:
            raise ProtocolLocked(
                f"sessions of a {status[0]} protocol version cannot be changed; "
                "create a new version instead"
            )
