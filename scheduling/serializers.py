# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""Output serializers shared by several API views; each view keeps its input serializer nested
in it. Outputs read only what the selectors fetched (select_related / prefetch_related), so a
list costs a fixed number of queries whatever its length."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduling.clock import display_name
from scheduling.models import (
    CheckInOutcome,
    Course,
    Deviation,
    Dyad,
    Participant,
    Reminder,
    Room,
    ScheduledSession,
    Site,
    StaffProfile,
)


def instant(moment: datetime) -> str:
    """An aware instant as DRF writes it (ISO 8601 in UTC, ``Z`` for +00:00)."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class SiteOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "slug", "name", "timezone", "country", "subdivision"]


class RoomOutputSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Room
        fields = ["id", "site", "name", "kind", "overnight_places", "active"]


class StaffOutputSerializer(serializers.Serializer):
    """A staff member, identified by their user id (the id sessions list as therapists)."""

    id = serializers.IntegerField(source="user_id")
    username = serializers.CharField(source="user.username")
    name = serializers.SerializerMethodField()
    role = serializers.ChoiceField(choices=StaffProfile.Role.choices)
    sites = serializers.SerializerMethodField()

    def get_name(self, profile: StaffProfile) -> str:
        return display_name(profile.user)

    @extend_schema_field(serializers.ListField(child=serializers.SlugField()))
    def get_sites(self, profile: StaffProfile) -> list[str]:
        # only the sites the reader may see: naming another site would reveal it
        visible: set[int] | None = self.context.get("visible_sites")
        sites = getattr(profile, "site_list", None)  # the API's prefetch, as a list
        listed = profile.sites.all() if sites is None else sites
        return [site.slug for site in listed if visible is None or site.pk in visible]


class DyadOutputSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    therapists = serializers.SerializerMethodField()

    class Meta:
        model = Dyad
        fields = ["id", "site", "name", "therapists", "active"]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_therapists(self, dyad: Dyad) -> list[int]:
        return list(dyad.therapist_ids)


class CourseOutputSerializer(serializers.ModelSerializer):
    protocol = serializers.CharField(source="protocol_version.protocol.slug")
    protocol_version = serializers.IntegerField(source="protocol_version.version")

    class Meta:
        model = Course
        fields = [
            "id",
            "participant",
            "partner",
            "protocol",
            "protocol_version",
            "dyad",
            "start_date",
            "status",
        ]


class ParticipantOutputSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    courses = serializers.SerializerMethodField()

    class Meta:
        model = Participant
        fields = ["id", "code", "site", "status", "partner", "created_at", "courses"]

    @extend_schema_field(CourseOutputSerializer(many=True))
    def get_courses(self, participant: Participant) -> list[dict[str, Any]]:
        """Courses taken as the participant or as the partner of a couple (the fields of
        CourseOutputSerializer, written out: one per course of a page)."""
        if hasattr(participant, "visible_courses"):  # prefetched as lists by the API
            courses = [*participant.visible_courses, *getattr(participant, "partner_of", [])]
        else:
            courses = [*participant.courses.all(), *participant.partner_courses.all()]
        courses.sort(key=lambda c: c.pk)
        # one course serializer for every row of a list: a ModelSerializer builds its fields
        # from the model on first use, which cost more than the rest of a page together
        return [
            {
                "id": course.pk,
                "participant": course.participant_id,
                "partner": course.partner_id,
                "protocol": course.protocol_version.protocol.slug,
                "protocol_version": course.protocol_version.version,
                "dyad": course.dyad_id,
                "start_date": course.start_date.isoformat(),
                "status": course.status,
            }
            for course in courses
        ]

    def to_representation(self, participant: Participant) -> dict[str, Any]:
        """The declared fields, written out for a page of 50 (see SessionOutputSerializer);
        a subclass that declares more fields is serialized field by field."""
        if type(self) is not ParticipantOutputSerializer:
            data: dict[str, Any] = super().to_representation(participant)
            return data
        return {
            "id": participant.pk,
            "code": participant.code,
            "site": participant.site.slug,
            "status": participant.status,
            "partner": participant.partner_id,
            "created_at": instant(participant.created_at),
            "courses": self.get_courses(participant),
        }


class SessionOutputSerializer(serializers.ModelSerializer):
    """A scheduled session as enrolment returns it. ``room``: id or null; ``therapists``: the
    user ids the session holds (its active staff bookings)."""

    therapists = serializers.SerializerMethodField()

    class Meta:
        model = ScheduledSession
        fields = [
            "id",
            "key",
            "kind",
            "start",
            "end",
            "status",
            "window_start",
            "window_end",
            "room",
            "therapists",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_therapists(self, session: ScheduledSession) -> list[int]:
        # reads the prefetched bookings: filtering in SQL would cost a query per session
        held = getattr(session, "active_staff", None)  # the API's prefetch, as a list
        bookings = session.staff.all() if held is None else held
        return sorted(b.user_id for b in bookings if b.active)

    def to_representation(self, session: ScheduledSession) -> dict[str, Any]:
        """The declared fields, written out: a page holds 50 sessions, and DRF's field by field
        machinery cost more than the queries (same values and formats; the schema test and the
        API tests hold it to the declared fields)."""
        return {
            "id": session.pk,
            "key": session.key,
            "kind": session.kind,
            "start": instant(session.start),
            "end": instant(session.end),
            "status": session.status,
            "window_start": session.window_start.isoformat(),
            "window_end": session.window_end.isoformat(),
            "room": session.room_id,
            "therapists": self.get_therapists(session),
        }


class SessionDetailOutputSerializer(SessionOutputSerializer):
    """A session in lists and details: also whose course it belongs to."""

    participant = serializers.IntegerField(source="course.participant_id")
    participant_code = serializers.CharField(source="course.participant.code")

    class Meta(SessionOutputSerializer.Meta):
        fields = [
            *SessionOutputSerializer.Meta.fields,
            "title",
            "course",
            "participant",
            "participant_code",
            "overnight",
            "sequence",
            "plan_reason",
        ]

    def to_representation(self, session: ScheduledSession) -> dict[str, Any]:
        return {
            **super().to_representation(session),
            "title": session.title,
            "course": session.course_id,
            "participant": session.course.participant_id,
            "participant_code": session.course.participant.code,
            "overnight": session.overnight,
            "sequence": session.sequence,
            "plan_reason": session.plan_reason,
        }


class DeviationOutputSerializer(serializers.ModelSerializer):
    """A deviation; a dry run shows the one applying would record, unsaved (no id, no time)."""

    id = serializers.IntegerField(allow_null=True, read_only=True, help_text="null in a dry run")
    created_at = serializers.DateTimeField(
        allow_null=True, read_only=True, help_text="null in a dry run"
    )

    class Meta:
        model = Deviation
        fields = ["id", "kind", "reason", "session", "created_by", "created_at"]


class MoveOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="session.pk")
    key = serializers.CharField(source="session.key")
    old_start = serializers.DateTimeField()
    new_start = serializers.DateTimeField()
    old_room = serializers.IntegerField(allow_null=True, help_text="Room id before the move.")
    room = serializers.IntegerField(allow_null=True, help_text="Room id after the move.")
    old_staff = serializers.ListField(
        child=serializers.IntegerField(), help_text="User ids booked before the move."
    )
    staff = serializers.ListField(
        child=serializers.IntegerField(), help_text="User ids booked after the move."
    )


class RescheduleOutputSerializer(serializers.Serializer):
    moved = MoveOutputSerializer(many=True)
    deviations = DeviationOutputSerializer(many=True)
    applied = serializers.BooleanField()


class ConsequenceOutputSerializer(serializers.Serializer):
    """A session anchored on the one whose status changes, and what the change does to it."""

    id = serializers.IntegerField(source="session.pk")
    key = serializers.CharField(source="session.key")
    start = serializers.DateTimeField(source="session.start")
    outcome = serializers.ChoiceField(
        choices=[
            ("cancelled_with", "cancelled with it"),
            ("awaits_rebooking", "stays planned; re-planned when it is rebooked"),
        ]
    )
    why = serializers.CharField()


class SessionStatusOutputSerializer(SessionDetailOutputSerializer):
    """The session after a status change (as it is, in a dry run), what the change does to the
    sessions anchored on it, and the course's new status when the change completes it."""

    applied = serializers.BooleanField()
    dependents = ConsequenceOutputSerializer(many=True)
    course_status = serializers.CharField(allow_null=True)

    class Meta(SessionDetailOutputSerializer.Meta):
        fields = [
            *SessionDetailOutputSerializer.Meta.fields,
            "applied",
            "dependents",
            "course_status",
        ]


class RebookedOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(
        source="session.pk", allow_null=True, help_text="null in a dry run"
    )
    key = serializers.CharField(source="session.key")
    replaces = serializers.IntegerField(
        source="session.replaces_id", help_text="the cancelled or missed session it replaces"
    )
    new_start = serializers.DateTimeField()
    new_end = serializers.DateTimeField()
    room = serializers.IntegerField(allow_null=True)


class RebookOutputSerializer(serializers.Serializer):
    session = serializers.IntegerField(
        source="session.pk", allow_null=True, help_text="the new session; null in a dry run"
    )
    rebooked = RebookedOutputSerializer(many=True)
    moved = MoveOutputSerializer(many=True)
    deviations = DeviationOutputSerializer(many=True)
    applied = serializers.BooleanField()


class EndingOutputSerializer(serializers.Serializer):
    """Withdrawing a participant or ending a course: what is (or, in a dry run, would be)
    cancelled and the statuses that follow."""

    status = serializers.CharField(help_text="the courses' new status")
    courses = serializers.SerializerMethodField()
    participants = serializers.SerializerMethodField()
    cancelled = SessionOutputSerializer(many=True)
    applied = serializers.BooleanField()

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_courses(self, ending: Any) -> list[int]:
        return [c.pk for c in ending.courses]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_participants(self, ending: Any) -> list[int]:
        return [p.pk for p in ending.participants]


class ReminderOutputSerializer(serializers.ModelSerializer):
    """One row of the outbox: a reminder, a moved notice or a check-in escalation, to a
    participant or to a staff member (exactly one of ``participant`` and ``staff``), with its
    status and the reason for it. Times are UTC."""

    class Meta:
        model = Reminder
        fields = [
            "id",
            "session",
            "purpose",
            "rule_key",
            "message",
            "channel",
            "participant",
            "staff",
            "due_at",
            "session_start",
            "status",
            "reason",
            "attempts",
            "sent_at",
            "idempotency_key",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CheckInOutcomeOutputSerializer(serializers.ModelSerializer):
    """A recorded check-in outcome and, for a concern, the escalation emails it wrote
    (``context["escalations"]``)."""

    escalations = serializers.SerializerMethodField()

    class Meta:
        model = CheckInOutcome
        fields = ["id", "session", "outcome", "note", "recorded_by", "recorded_at", "escalations"]
        read_only_fields = fields

    @extend_schema_field(ReminderOutputSerializer(many=True))
    def get_escalations(self, row: CheckInOutcome) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = ReminderOutputSerializer(
            self.context.get("escalations", []), many=True
        ).data
        return data
