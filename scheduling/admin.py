"""The scheduling admin, for coordinators and support: sites and their resources can be edited;
participants' courses, sessions, bookings and deviations are read-only here, because changing
them means re-planning and re-booking (the services do that), and nothing clinical is deleted.
Every model with a history shows it (who, when, why)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from scheduling.models import (
    Course,
    Deviation,
    Dyad,
    OpeningHours,
    Participant,
    Room,
    RoomBooking,
    ScheduledSession,
    Site,
    SiteClosure,
    StaffBooking,
    StaffProfile,
    Unavailability,
)
from scheduling.selectors import SITE_PATHS, user_site_ids

M = TypeVar("M", bound=Model)

if TYPE_CHECKING:  # simple_history has no type hints: describe the part used here

    class _HistoryAdmin(admin.ModelAdmin[M]):
        def history_form_view(
            self,
            request: HttpRequest,
            object_id: str,
            version_id: str,
            extra_context: dict[str, Any] | None = None,
        ) -> HttpResponse: ...

        def has_change_history_permission(
            self, request: HttpRequest, obj: M | None = None
        ) -> bool: ...

else:
    from simple_history.admin import SimpleHistoryAdmin as _HistoryAdmin


#: how each model the admin shows reaches its site
ADMIN_SITE_PATHS: dict[type[Model], str] = {
    **SITE_PATHS,
    StaffProfile: "sites",
    Unavailability: "user__staff_profile__sites",
    Deviation: "session__course__participant__site",
    RoomBooking: "room__site",
    StaffBooking: "session__course__participant__site",
}


def _site_scoped(queryset: QuerySet[Any], request: HttpRequest) -> QuerySet[Any]:
    """Like the pages, the admin shows a user only the objects of the sites they work at
    (superusers see every site)."""
    sites = user_site_ids(request.user)
    path = ADMIN_SITE_PATHS.get(queryset.model)
    if sites is None:
        return queryset
    if path is None:
        if queryset.model is User:  # people: those who work at the user's sites
            return queryset.filter(staff_profile__sites__in=sites).distinct()
        return queryset
    scoped_rows = queryset.filter(**{f"{path}__in": sites})
    return scoped_rows.distinct() if "sites" in path else scoped_rows


class HistoryAdmin(_HistoryAdmin[M]):
    """Site-scoped lists, forms and choices. The history pages of simple-history, where
    reverting needs the change permission: its history form saves a POSTed revert for anyone
    who may view the object."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[M]:
        return _site_scoped(super().get_queryset(request), request)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault(
            "queryset", _site_scoped(db_field.related_model._default_manager.all(), request)
        )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault(
            "queryset", _site_scoped(db_field.related_model._default_manager.all(), request)
        )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and not self.has_change_history_permission(request):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class ClinicalRecordAdmin(HistoryAdmin[M]):
    """Read-only: written by enrolment, rescheduling and status changes, never deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False


# --- sites and resources -------------------------------------------------------------------


class OpeningHoursInline(admin.TabularInline[OpeningHours, Site]):
    model = OpeningHours
    extra = 0


class SiteClosureInline(admin.TabularInline[SiteClosure, Site]):
    model = SiteClosure
    extra = 0


@admin.register(Site)
class SiteAdmin(HistoryAdmin[Site]):
    list_display = ["name", "slug", "timezone", "country", "subdivision", "phone"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [OpeningHoursInline, SiteClosureInline]


@admin.register(Room)
class RoomAdmin(HistoryAdmin[Room]):
    list_display = ["name", "site", "kind", "overnight_places", "active"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter), "kind", "active"]
    list_select_related = ["site"]
    search_fields = ["name"]


@admin.register(StaffProfile)
class StaffProfileAdmin(HistoryAdmin[StaffProfile]):
    list_display = ["user", "role"]
    list_filter = ["role", ("sites", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["sites"]


@admin.register(Dyad)
class DyadAdmin(HistoryAdmin[Dyad]):
    list_display = ["name", "site", "therapist_a", "therapist_b", "active"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter), "active"]
    list_select_related = ["site", "therapist_a", "therapist_b"]
    search_fields = ["name"]
    autocomplete_fields = ["therapist_a", "therapist_b"]


@admin.register(Unavailability)
class UnavailabilityAdmin(HistoryAdmin[Unavailability]):
    list_display = ["user", "start", "end", "reason"]
    list_select_related = ["user"]
    search_fields = ["user__username", "reason"]
    date_hierarchy = "start"
    autocomplete_fields = ["user"]


# --- participants and their courses --------------------------------------------------------


@admin.register(Participant)
class ParticipantAdmin(HistoryAdmin[Participant]):
    """Contact details can be corrected here; enrolment and status go through the services."""

    list_display = ["code", "site", "status", "preferred_channel", "created_at"]
    list_filter = [("site", admin.RelatedOnlyFieldListFilter), "status"]
    list_select_related = ["site"]
    search_fields = ["code"]
    readonly_fields = ["site", "code", "status", "partner", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Participant | None = None) -> bool:
        return False


class SessionInline(admin.TabularInline[ScheduledSession, Course]):
    model = ScheduledSession
    fields = ("key", "kind", "start", "end", "window_start", "window_end", "status", "room")
    readonly_fields = fields
    ordering = ["start", "key"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("room")


@admin.register(Course)
class CourseAdmin(ClinicalRecordAdmin[Course]):
    list_display = ["id", "participant", "partner", "protocol_version", "dyad", "start_date"]
    list_filter = [
        "status",
        ("participant__site", admin.RelatedOnlyFieldListFilter),
        "protocol_version",
    ]
    list_select_related = ["participant", "partner", "protocol_version__protocol", "dyad"]
    search_fields = ["participant__code", "partner__code"]
    date_hierarchy = "start_date"
    inlines = [SessionInline]


@admin.register(ScheduledSession)
class ScheduledSessionAdmin(ClinicalRecordAdmin[ScheduledSession]):
    list_display = ["key", "participant", "start", "end", "kind", "status", "room"]
    list_filter = [
        "status",
        "kind",
        ("course__participant__site", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["course__participant", "room"]
    search_fields = ["course__participant__code", "key"]
    date_hierarchy = "start"

    @admin.display(ordering="course__participant__code")
    def participant(self, session: ScheduledSession) -> str:
        return session.course.participant.code


@admin.register(Deviation)
class DeviationAdmin(ClinicalRecordAdmin[Deviation]):
    list_display = ["session", "kind", "reason", "created_by", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["session", "created_by"]
    search_fields = ["session__course__participant__code", "reason"]


@admin.register(RoomBooking)
class RoomBookingAdmin(ClinicalRecordAdmin[RoomBooking]):
    list_display = ["room", "session", "begin", "until", "active"]
    list_filter = [
        "active",
        ("room__site", admin.RelatedOnlyFieldListFilter),
        ("room", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["room", "session"]
    date_hierarchy = "begin"


@admin.register(StaffBooking)
class StaffBookingAdmin(ClinicalRecordAdmin[StaffBooking]):
    list_display = ["user", "session", "begin", "until", "active"]
    list_filter = ["active"]
    list_select_related = ["user", "session"]
    search_fields = ["user__username"]
    date_hierarchy = "begin"
