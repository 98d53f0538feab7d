# mypy: allow-subclassing-any
# (rest_framework has no type stubs here, so its classes are Any to mypy.)
"""Output serializers shared by several API views; each view keeps its input serializer nested
in it. Outputs read only what the selectors fetched (select_related / prefetch_related), so a
list costs a fixed number of queries whatever its length."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduling.models import (
    Course,
    Deviation,
    Dyad,
    Participant,
    Room,
    ScheduledSession,
    Site,
    StaffProfile,
)


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
        return profile.user.get_full_name()

    @extend_schema_field(serializers.ListField(child=serializers.SlugField()))
    def get_sites(self, profile: StaffProfile) -> list[str]:
        # only the sites the reader may see: naming another site would reveal it
        visible: set[int] | None = self.context.get("visible_sites")
        return [site.slug for site in profile.sites.all() if visible is None or site.pk in visible]


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
        """Courses taken as the participant or as the partner of a couple."""
        courses = [*participant.courses.all(), *participant.partner_courses.all()]
        courses.sort(key=lambda c: c.pk)
        # one course serializer for every row of a list: a ModelSerializer builds its fields
        # from the model on first use, which cost more than the rest of a page together
        course_output: CourseOutputSerializer | None = self.__dict__.get("_course_output")
        if course_output is None:
            course_output = self.__dict__["_course_output"] = CourseOutputSerializer()
        return [course_output.to_representation(course) for course in courses]


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
        return sorted(b.user_id for b in session.staff.all() if b.active)


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


class RescheduleOutputSerializer(serializers.Serializer):
    moved = MoveOutputSerializer(many=True)
    deviations = DeviationOutputSerializer(many=True)
    applied = serializers.BooleanField()
